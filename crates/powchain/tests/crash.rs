//! kill -9 at random moments: `powchain mine` writes blocks into a database and announces each
//! after its commit; the test kills it, reopens the database and checks that it opens, that
//! every announced block is on the best chain, and that the state equals a replay of the
//! chain. `POWCHAIN_CRASH_ITERATIONS` sets the number of kills (default 20) and
//! `POWCHAIN_CRASH_SEED` the seed of the kill moments; `scripts/crash-test.sh` runs hundreds.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use powchain_chain::state::StateOverlay;
use powchain_chain::{BlockHash, Chain, ChainConfig, ChainSpec, DifficultyBits, Height};
use powchain_node::store::RedbStore;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Only a hung child takes this long; the test then fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(120);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The dev chain at a fixed 14 bits: blocks come fast however many are mined.
fn spec() -> ChainSpec {
    let mut spec = ChainSpec::dev().with_fixed_difficulty(DifficultyBits::new(14).unwrap());
    spec.name = "crash-test".into();
    spec
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `powchain mine` until it has announced `announcements` blocks (plus a random extra
/// moment), kills it with SIGKILL, and returns the blocks it announced.
fn mine_and_kill(
    db: &Path,
    spec_file: &Path,
    seed: u64,
    announcements: usize,
    extra_micros: u64,
) -> Vec<(Height, BlockHash)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args(["mine", "--miner-threads", "1", "--txs-per-block", "4"])
        .arg("--db")
        .arg(db)
        .arg("--chain")
        .arg(spec_file)
        .args(["--seed", &seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("powchain starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut announced = Vec::new();
    let mut started = false;
    while !started || announced.len() < announcements {
        let line = match received.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("powchain mine printed nothing for {DEADLINE:?}");
            }
        };
        if line.starts_with("database ") {
            started = true;
        } else if let ["block", height, hash, "committed"] = line.split(' ').collect::<Vec<_>>()[..]
        {
            announced.push((
                Height(height.parse().expect("a height")),
                hash.parse().expect("a block hash"),
            ));
        }
    }
    // A random moment after the last announcement: mid-mining, mid-commit, or between.
    std::thread::sleep(Duration::from_micros(extra_micros));
    child.kill().expect("SIGKILL delivered");
    child.wait().expect("the child is reaped");
    // The pipe closed with the child; lines already in it were printed before the kill, so
    // they count too.
    let _ = reader.join();
    for line in received.try_iter() {
        if let ["block", height, hash, "committed"] = line.split(' ').collect::<Vec<_>>()[..] {
            announced.push((Height(height.parse().unwrap()), hash.parse().unwrap()));
        }
    }
    announced
}

#[test]
fn kill_9_loses_nothing_announced() {
    let iterations = env_number("POWCHAIN_CRASH_ITERATIONS", 20);
    let mut rng = ChaCha8Rng::seed_from_u64(env_number("POWCHAIN_CRASH_SEED", 9));
    let dir = TempDir(std::env::temp_dir().join(format!("powchain-crash-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let spec = spec();
    let spec_file = dir.0.join("spec.toml");
    std::fs::write(&spec_file, spec.to_toml_string()).unwrap();
    let db = dir.0.join("chain.redb");
    let mut announced: Vec<(Height, BlockHash)> = Vec::new();
    // Kills that landed after a commit but before its announcement reached us.
    let mut committed_unannounced = 0;
    for iteration in 0..iterations {
        let wanted = rng.random_range(0..4usize);
        let extra = if rng.random_ratio(1, 2) {
            0
        } else {
            rng.random_range(0..20_000)
        };
        announced.extend(mine_and_kill(&db, &spec_file, iteration, wanted, extra));

        let store = RedbStore::open(&db)
            .unwrap_or_else(|e| panic!("iteration {iteration}: the database does not open: {e}"));
        let chain = Chain::open(spec.clone(), store, ChainConfig::default())
            .unwrap_or_else(|e| panic!("iteration {iteration}: the chain does not open: {e}"));
        for (height, hash) in &announced {
            assert_eq!(
                chain.tree().best_at(*height),
                Some(*hash),
                "iteration {iteration}: announced block {height} is lost"
            );
        }
        let tip = chain.tip();
        assert!(tip.header.meets_own_target() || tip.height == Height::GENESIS);
        let last_announced = announced.last().map_or(Height::GENESIS, |(h, _)| *h);
        if tip.height > last_announced {
            committed_unannounced += 1;
        }
        let empty = BTreeMap::new();
        let mut replayed = StateOverlay::new(&empty);
        for height in 0..=tip.height.0 {
            let block = chain
                .block_at(Height(height))
                .unwrap()
                .expect("best-chain block");
            replayed
                .connect_block(&block.txs, &spec)
                .unwrap_or_else(|e| panic!("iteration {iteration}: block {height} replays: {e}"));
        }
        let replayed: BTreeMap<_, _> = replayed
            .into_changes()
            .into_iter()
            .filter_map(|(address, account)| account.map(|a| (address, a)))
            .collect();
        let stored: BTreeMap<_, _> = chain.store().all_accounts().unwrap().into_iter().collect();
        assert_eq!(
            stored, replayed,
            "iteration {iteration}: state is not a replay of the chain"
        );
    }
    eprintln!(
        "kill -9: {iterations} kills, {} blocks announced, 0 lost, state = replay every time; \
         {committed_unannounced} kills fell between a commit and its announcement",
        announced.len()
    );
}
