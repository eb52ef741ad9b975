//! The threaded miner on real templates: every backend's blocks pass the chain's ordinary
//! validation, ranges are disjoint, the extra nonce rolls, and new work replaces old.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
use std::time::Duration;

use powchain_chain::{
    Amount, Block, Chain, ChainConfig, ChainSpec, Keypair, MemStore, Mempool, MempoolConfig,
    Placement, Target, Timestamp, Transaction,
};
use powchain_node::miner::{Miner, MinerConfig, MinerError, Solution};
use powchain_node::sha512::Backend;
use powchain_node::sha512::mining::NonceSearch;
use powchain_testkit::{spec_with_dev_accounts, wait_until};

/// Generous: only a broken miner takes this long, and the test then fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(120);

/// The chain the miner works for, at `bits`: four dev accounts of 1,000 coins.
fn spec(bits: u64) -> ChainSpec {
    spec_with_dev_accounts("miner-test", bits, 4, Amount(1_000))
}

fn config(backend: Backend, threads: usize) -> MinerConfig {
    MinerConfig {
        threads,
        backend,
        batch_nonces: 1 << 10,
        range_nonces: None,
    }
}

/// A template on a fresh chain of `spec`, a minute after genesis, with no transfers.
fn empty_chain_template(spec: &ChainSpec, extra_nonce: u64) -> Block {
    let now = Timestamp(spec.genesis_time_ms + 60_000);
    let chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default()).unwrap();
    chain
        .block_template(
            &Mempool::new(MempoolConfig::default()),
            Keypair::dev(0).address(),
            now,
            extra_nonce,
        )
        .unwrap()
        .block
}

#[test]
fn every_backend_mines_blocks_the_chain_accepts() {
    for backend in Backend::supported() {
        let spec = spec(12);
        let now = Timestamp(spec.genesis_time_ms + 60_000);
        let mut chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default()).unwrap();
        let mempool = Mempool::new(MempoolConfig::default());
        let (sender, solutions) = mpsc::channel();
        let threads = 2;
        let miner = Miner::start(config(backend, threads), sender).unwrap();
        let span = u64::MAX / threads as u64;
        for height in 1..=3u64 {
            let template = chain
                .block_template(
                    &mempool,
                    Keypair::dev(0).address(),
                    Timestamp(now.0 + height),
                    0,
                )
                .unwrap();
            let generation = miner.mine(template.block);
            let Solution {
                generation: solved,
                block,
                thread,
            } = solutions.recv_timeout(DEADLINE).expect("a solution");
            assert_eq!(solved, generation, "{backend}");
            let first = span * thread as u64;
            assert!(
                (first..first + span).contains(&block.header.nonce),
                "{backend}: thread {thread} left its range"
            );
            let outcome = chain.import_block(block, now).unwrap();
            assert_eq!(outcome.placement, Placement::BestChain, "{backend}");
            assert_eq!(chain.tip().height.0, height);
        }
        assert!(miner.hashes() > 0);
    }
}

#[test]
fn an_exhausted_range_rolls_the_extra_nonce() {
    let spec = spec(12);
    let now = Timestamp(spec.genesis_time_ms + 60_000);
    let mut chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default()).unwrap();
    let template = empty_chain_template(&spec, 7);
    // One nonce per range: unless nonce 0 solves the template (it does not: checked here),
    // the solution must come from a rolled coinbase.
    let search = NonceSearch::new(&template.header);
    assert!(search.leading_u128(0) > template.header.target.0);
    for backend in Backend::supported() {
        let (sender, solutions) = mpsc::channel();
        let miner = Miner::start(
            MinerConfig {
                range_nonces: Some(1),
                ..config(backend, 1)
            },
            sender,
        )
        .unwrap();
        miner.mine(template.clone());
        let solution = solutions.recv_timeout(DEADLINE).expect("a solution");
        let Some(Transaction::Coinbase(coinbase)) = solution.block.txs.first() else {
            panic!("the coinbase stays first");
        };
        assert!(
            coinbase.extra_nonce > 7,
            "{backend}: the extra nonce rolled"
        );
        assert_eq!(solution.block.header.nonce, 0, "one nonce per range");
        let mut copy = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default()).unwrap();
        copy.import_block(solution.block, now).unwrap();
    }
    chain.import_block(template, now).unwrap_err();
}

#[test]
fn new_work_replaces_old_in_every_thread() {
    let mut impossible = empty_chain_template(&spec(12), 0);
    impossible.header.target = Target(0);
    let (sender, solutions) = mpsc::channel();
    let threads = 2;
    let miner = Miner::start(config(Backend::detect(), threads), sender).unwrap();
    let first = miner.mine(impossible.clone());
    wait_until("the threads to start hashing", DEADLINE, || {
        miner.threads_on(first) == threads && miner.hashes() > 0
    });
    let second = miner.mine(impossible);
    assert_eq!(second, first + 1);
    wait_until("every thread to take the new work", DEADLINE, || {
        miner.threads_on(second) == threads
    });
    let paused = miner.pause();
    wait_until("every thread to stop", DEADLINE, || {
        miner.threads_on(paused) == threads
    });
    assert!(solutions.try_recv().is_err(), "nothing meets a zero target");
}

#[test]
fn a_miner_needs_threads() {
    let (sender, _solutions) = mpsc::channel();
    assert!(matches!(
        Miner::start(config(Backend::Portable, 0), sender),
        Err(MinerError::Config)
    ));
}

#[test]
fn configs_that_could_stall_are_refused() {
    let refused = |config: MinerConfig| {
        let (sender, _solutions) = mpsc::channel();
        matches!(Miner::start(config, sender), Err(MinerError::Config))
    };
    let base = config(Backend::Portable, 2);
    assert!(refused(MinerConfig {
        batch_nonces: 0,
        ..base
    }));
    assert!(refused(MinerConfig {
        batch_nonces: powchain_node::miner::BATCH_NONCES_MAX + 1,
        ..base
    }));
    assert!(refused(MinerConfig {
        range_nonces: Some(0),
        ..base
    }));
    // Two ranges of 2^63 + 1 nonces do not fit in 64 bits.
    assert!(refused(MinerConfig {
        range_nonces: Some((1 << 63) + 1),
        ..base
    }));
}

#[test]
fn a_template_without_coinbase_ends_the_threads_work_instead_of_spinning() {
    let mut template = empty_chain_template(&spec(12), 0);
    template.txs.clear();
    template.header.target = Target(0);
    let (sender, solutions) = mpsc::channel();
    let miner = Miner::start(
        MinerConfig {
            range_nonces: Some(16),
            ..config(Backend::Portable, 2)
        },
        sender,
    )
    .unwrap();
    let generation = miner.mine(template);
    // Each thread tries its 16 nonces once, cannot roll, and stops hashing.
    wait_until("both ranges to be tried", DEADLINE, || miner.hashes() >= 32);
    assert_eq!(miner.hashes(), 32);
    assert!(miner.threads_on(generation) == 2);
    assert!(solutions.try_recv().is_err());
}

/// The nice value of every thread of this process named `miner-…`, from /proc (Linux).
fn miner_thread_nice_values() -> Option<Vec<i64>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut values = Vec::new();
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // "tid (name) state ppid …": the nice value is the 19th field, the 17th after the
        // name (which may hold spaces, so split after its closing parenthesis).
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // Exactly `miner-N` (the test binary's own main thread is `miner-<hash>`).
        let is_miner = head.rsplit_once("(miner-").is_some_and(|(_, index)| {
            !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
        });
        if !is_miner {
            continue;
        }
        values.push(rest.split_whitespace().nth(16)?.parse().ok()?);
    }
    Some(values)
}

#[test]
fn miner_threads_run_at_the_lowest_priority() {
    if miner_thread_nice_values().is_none() {
        eprintln!("skipped: this system has no /proc/self/task to read thread priorities from");
        return;
    }
    let (sender, _solutions) = mpsc::channel();
    let miner = Miner::start(config(Backend::detect(), 2), sender).unwrap();
    wait_until("the miner's threads at nice 19", DEADLINE, || {
        let values = miner_thread_nice_values().unwrap_or_default();
        if values.len() >= 2 && values.iter().all(|&nice| nice == 19) {
            Ok(())
        } else {
            Err(format!("miner threads' nice values: {values:?}"))
        }
    });
    drop(miner);
}
