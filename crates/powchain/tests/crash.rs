//! kill -9 at random moments: `powchain mine` writes blocks into a database and announces each
//! after its commit; the test kills it, reopens the database and checks that it opens, that
//! every announced block is on the best chain, and that the state equals a replay of the
//! chain. `POWCHAIN_CRASH_ITERATIONS` sets the number of kills (default 20) and
//! `POWCHAIN_CRASH_SEED` the seed of the kill moments; `scripts/crash-test.sh` runs hundreds.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use powchain_chain::state::StateOverlay;
use powchain_chain::{BlockHash, Chain, ChainConfig, ChainSpec, Height};
use powchain_node::store::RedbStore;
use powchain_testkit::TempDir;
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
    powchain_testkit::spec("crash-test", 14)
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

/// Opens the database after a kill; it must open, as a chain.
fn reopen(db: &Path, spec: &ChainSpec, when: &str) -> Chain<RedbStore> {
    let store =
        RedbStore::open(db).unwrap_or_else(|e| panic!("{when}: the database does not open: {e}"));
    Chain::open(spec.clone(), store, ChainConfig::default())
        .unwrap_or_else(|e| panic!("{when}: the chain does not open: {e}"))
}

/// The stored accounts must equal a replay of the best chain from genesis.
fn assert_state_is_a_replay(chain: &Chain<RedbStore>, spec: &ChainSpec, when: &str) {
    let empty = BTreeMap::new();
    let mut replayed = StateOverlay::new(&empty);
    for height in 0..=chain.tip().height.0 {
        let block = chain
            .block_at(Height(height))
            .unwrap()
            .expect("best-chain block");
        replayed
            .connect_block(&block.txs, spec)
            .unwrap_or_else(|e| panic!("{when}: block {height} replays: {e}"));
    }
    let replayed: BTreeMap<_, _> = replayed
        .into_changes()
        .into_iter()
        .filter_map(|(address, account)| account.map(|a| (address, a)))
        .collect();
    let stored: BTreeMap<_, _> = chain.store().all_accounts().unwrap().into_iter().collect();
    assert_eq!(
        stored, replayed,
        "{when}: state is not a replay of the chain"
    );
}

#[test]
fn kill_9_loses_nothing_announced() {
    let iterations = env_number("POWCHAIN_CRASH_ITERATIONS", 20);
    let mut rng = ChaCha8Rng::seed_from_u64(env_number("POWCHAIN_CRASH_SEED", 9));
    let dir = TempDir::new("crash");
    let spec = spec();
    let spec_file = dir.file("spec.toml");
    std::fs::write(&spec_file, spec.to_toml_string()).unwrap();
    let db = dir.file("chain.redb");
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

        let chain = reopen(&db, &spec, &format!("iteration {iteration}"));
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
        assert_state_is_a_replay(&chain, &spec, &format!("iteration {iteration}"));
    }
    eprintln!(
        "kill -9: {iterations} kills, {} blocks announced, 0 lost, state = replay every time; \
         {committed_unannounced} kills fell between a commit and its announcement",
        announced.len()
    );
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Mines `blocks` blocks into a new database (its own seed, so its own branch from genesis).
fn mine_chain(db: &Path, spec_file: &Path, seed: u64, blocks: u64) {
    let status = Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args(["mine", "--miner-threads", "1", "--txs-per-block", "3"])
        .arg("--db")
        .arg(db)
        .arg("--chain")
        .arg(spec_file)
        .args(["--seed", &seed.to_string(), "--blocks", &blocks.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("powchain mine runs");
    assert!(status.success());
}

/// Serves the chain in `db` on a free loopback port; returns the process and its address.
fn serve(db: &Path, spec_file: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args([
            "node",
            "--no-repl",
            "--rpc",
            "off",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--db")
        .arg(db)
        .arg("--chain")
        .arg(spec_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the source node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the source node says where it listens")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("others connect with: --peers ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Killed(child), address)
}

/// Runs a node that syncs `db` from `source` and kills it with SIGKILL after `millis`; returns
/// the tips it announced (height, short hash) before the kill.
fn sync_and_kill(db: &Path, spec_file: &Path, source: &str, millis: u64) -> Vec<(u64, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args(["node", "--no-repl", "--rpc", "off", "--peers", source])
        .arg("--db")
        .arg(db)
        .arg("--chain")
        .arg(spec_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the syncing node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut tips = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // "new tip HASH at height H (…)" or "reorg: …; tip HASH at height H (…)"
            let Some(rest) = line.split("tip ").nth(1) else {
                continue;
            };
            let words: Vec<&str> = rest.split(' ').collect();
            if let [hash, "at", "height", height, ..] = words[..]
                && let Ok(height) = height.parse()
            {
                tips.push((height, hash.to_owned()));
            }
        }
        tips
    });
    std::thread::sleep(Duration::from_millis(millis));
    child.kill().expect("SIGKILL delivered");
    child.wait().expect("the child is reaped");
    reader.join().expect("the reader ends with the pipe")
}

/// kill -9 while a node syncs a chain from a peer, and then while it reorganises onto a
/// heavier branch from genesis: after every kill the database opens, the last tip the node
/// announced is on its best chain (or under a heavier tip, after the reorganisation began), and
/// the state equals a replay. Rounds start from an empty database, so kills land while the node
/// works; `POWCHAIN_SYNC_CRASH_ITERATIONS` sets the least number of kills.
#[test]
fn kill_9_while_syncing_and_reorganising_loses_nothing_announced() {
    let iterations = env_number("POWCHAIN_SYNC_CRASH_ITERATIONS", 8);
    let mut rng = ChaCha8Rng::seed_from_u64(env_number("POWCHAIN_CRASH_SEED", 9));
    let dir = TempDir::new("synccrash");
    let spec = spec();
    let spec_file = dir.file("spec.toml");
    std::fs::write(&spec_file, spec.to_toml_string()).unwrap();
    // Branch A, then a longer branch B from genesis: syncing B after A is a deep reorg.
    let (a_db, b_db) = (dir.file("a.redb"), dir.file("b.redb"));
    mine_chain(&a_db, &spec_file, 1, 400);
    mine_chain(&b_db, &spec_file, 2, 600);
    let sources = [serve(&a_db, &spec_file), serve(&b_db, &spec_file)];
    let db = dir.file("node.redb");
    let mut kills = 0;
    let mut mid_way = 0;
    // Rounds from an empty database: sync branch A under kills until caught up, then
    // reorganise onto B under kills until caught up; again until enough kills.
    while kills < iterations {
        let _ = std::fs::remove_file(&db);
        let mut reorganised = false;
        for (phase, (_, address), length) in
            [("sync", &sources[0], 400u64), ("reorg", &sources[1], 600)]
        {
            let mut done = false;
            let mut iteration = 0;
            while !done {
                iteration += 1;
                assert!(iteration < 200, "{phase}: never caught up");
                let tips = sync_and_kill(&db, &spec_file, address, rng.random_range(30..400));
                kills += 1;
                let chain = reopen(&db, &spec, &format!("{phase} kill {iteration}"));
                let tip = chain.tip();
                if let Some((height, short)) = tips.last() {
                    let on_best = chain
                        .tree()
                        .best_at(Height(*height))
                        .is_some_and(|hash| hash.to_string().starts_with(short.as_str()));
                    assert!(
                        on_best || tip.height.0 > *height,
                        "{phase} kill {iteration}: announced tip {short} at {height} is lost (tip at {})",
                        tip.height
                    );
                }
                if phase == "reorg" && tips.iter().any(|(h, _)| *h > 400) {
                    reorganised = true;
                }
                assert_state_is_a_replay(&chain, &spec, &format!("{phase} kill {iteration}"));
                // A kill that left the node short of the source's tip landed mid-sync (or
                // mid-reorganisation).
                if tip.height.0 < length {
                    mid_way += 1;
                }
                done = tip.height.0 == length;
            }
        }
        assert!(reorganised, "the reorg phase never moved onto branch B");
    }
    assert!(mid_way > 0, "no kill landed before the node caught up");
    eprintln!(
        "kill -9 while syncing and reorganising: {kills} kills ({mid_way} before the node had \
         caught up), nothing announced lost, state = replay every time"
    );
}
