//! `powchain bench store`: the chain database's durable commits, next to redb's own.
//!
//! - Small blocks (a coinbase) and full blocks (as many transfers as a block may hold) are
//!   imported into a redb file; only the store's commit is timed (one durable write
//!   transaction per block: block, index entry, state changes, undo data, tip).
//! - `raw redb`: one durable write transaction inserting one 64-byte value, the floor any
//!   durable commit on this disk pays; and the same with one value in each of eight tables,
//!   the floor for a commit that changes as many B-tree leaves as a small block's does
//!   (block, index entry, best height, account, undo, tip, transaction index twice). redb
//!   writes every changed leaf and its path copy-on-write, so a commit's cost grows with
//!   the leaves it changes, in one table or in many: that, not the store's code, is most
//!   of what a small block costs beyond the first floor. Each kind of commit also reports
//!   the bytes and write calls it made (`/proc/self/io`), which show it.
//! - Start-up: opening the database at two chain lengths (reading the block index, never
//!   replaying blocks).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use powchain_chain::prefix::{HashPrefix, Matches};
use powchain_chain::spec::DevAccounts;
use powchain_chain::state::{Account, AccountReader, BlockUndo};
use powchain_chain::store::{ChainIdentity, IndexEntry, Store, StoreError, WriteBatch};
use powchain_chain::{
    Address, Amount, Block, BlockHash, Chain, ChainConfig, ChainSpec, DifficultyBits, Height,
    Keypair, Memo, Mempool, MempoolConfig, UnsignedTransfer, miner,
};
use powchain_node::store::RedbStore;
use serde::Serialize;

/// Dev accounts in the bench chain: one sender per transfer of a full block.
const SENDERS: u64 = 4_000;

/// What the store suite measured.
#[derive(Debug, Serialize)]
pub struct StoreReport {
    small_block_commits_per_sec: f64,
    full_block_commits_per_sec: f64,
    full_block_txs: usize,
    full_block_bytes: usize,
    raw_redb_commits_per_sec: f64,
    /// The same, named as the benchmark's keys are documented.
    raw_commits_per_sec: f64,
    /// `small_block_commits_per_sec / raw_commits_per_sec`.
    small_block_ratio: f64,
    /// One durable commit of one 64-byte value in each of [`SMALL_BLOCK_LEAVES`] tables.
    raw_scattered_commits_per_sec: f64,
    /// `small_block_commits_per_sec / raw_scattered_commits_per_sec`.
    small_block_ratio_to_scattered: f64,
    /// What each kind of commit wrote: the process's write calls and bytes (Linux's
    /// `/proc/self/io`) over the commits; absent where that file is not.
    written_per_commit: Option<WrittenPerCommit>,
    open: Vec<OpenTime>,
}

/// Bytes and write calls per durable commit (what redb's copy-on-write pages cost).
#[derive(Debug, Serialize)]
struct WrittenPerCommit {
    raw: Written,
    raw_scattered: Written,
    small_block: Written,
}

/// Bytes and write calls per commit.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Written {
    bytes: f64,
    calls: f64,
}

/// The process's bytes written and write calls so far (`wchar`, `syscw`), on Linux.
fn written_so_far() -> Option<(u64, u64)> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some((field("wchar:")?, field("syscw:")?))
}

/// What was written between `before` and now, per one of `commits`.
fn written_since(before: Option<(u64, u64)>, commits: u64) -> Option<Written> {
    let ((bytes_before, calls_before), (bytes, calls)) = (before?, written_so_far()?);
    let commits = commits.max(1) as f64;
    Some(Written {
        bytes: (bytes.saturating_sub(bytes_before) as f64 / commits).round(),
        calls: (calls.saturating_sub(calls_before) as f64 / commits * 10.0).round() / 10.0,
    })
}

/// B-tree leaves a small block's commit changes (one per table it writes).
const SMALL_BLOCK_LEAVES: usize = 8;

/// How long opening a database of `blocks` blocks took.
#[derive(Debug, Serialize)]
struct OpenTime {
    blocks: u64,
    ms: f64,
}

/// A store that times its commits.
struct TimedStore {
    inner: RedbStore,
    commits: u64,
    committing: Duration,
}

impl AccountReader for TimedStore {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        self.inner.account(address)
    }
}

impl Store for TimedStore {
    fn identity(&self) -> Result<Option<ChainIdentity>, StoreError> {
        self.inner.identity()
    }
    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError> {
        self.inner.block(hash)
    }
    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        self.inner.undo(hash)
    }
    fn best_at(&self, height: Height) -> Result<Option<BlockHash>, StoreError> {
        self.inner.best_at(height)
    }
    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        self.inner.tip()
    }
    fn index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        self.inner.index()
    }
    fn blocks_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<BlockHash>, StoreError> {
        self.inner.blocks_with_prefix(prefix, limit)
    }
    fn commit(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.inner.commit(batch);
        self.committing += start.elapsed();
        self.commits += 1;
        result
    }
}

/// A dev chain with a trivial fixed difficulty and enough funded senders for a full block.
fn bench_spec() -> ChainSpec {
    let mut spec = ChainSpec::dev().with_fixed_difficulty(DifficultyBits::new_const(1));
    spec.name = "bench-store".into();
    spec.dev_accounts = Some(DevAccounts {
        count: SENDERS,
        balance: Amount(1_000_000),
    });
    spec
}

fn open(spec: &ChainSpec, path: &Path) -> anyhow::Result<Chain<TimedStore>> {
    let store = TimedStore {
        inner: RedbStore::open(path)?,
        commits: 0,
        committing: Duration::ZERO,
    };
    Ok(Chain::open(spec.clone(), store, ChainConfig::default())?)
}

/// Mines `mempool`'s transfers (or none) on the tip and imports the block.
fn add_block(chain: &mut Chain<TimedStore>, mempool: &Mempool) -> anyhow::Result<Block> {
    let mut template = chain
        .block_template(mempool, Keypair::dev(0).address(), crate::now(), 0)?
        .block;
    miner::mine(&mut template);
    chain.import_block(template.clone(), crate::now())?;
    Ok(template)
}

/// Commits per second over the commits made while `work` ran.
fn commit_rate(
    chain: &mut Chain<TimedStore>,
    work: impl FnOnce(&mut Chain<TimedStore>) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let (commits, committing) = (chain.store().commits, chain.store().committing);
    work(chain)?;
    let commits = chain.store().commits - commits;
    let committing = chain.store().committing - committing;
    Ok(commits as f64 / committing.as_secs_f64().max(1e-9))
}

/// A directory for the bench's files, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the store suite, `duration` per measurement.
pub fn measure_all(duration: Duration, progress: &dyn Fn(&str)) -> anyhow::Result<StoreReport> {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("powchain-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).context("cannot create a scratch directory")?;
    let spec = bench_spec();
    let path = scratch.0.join("chain.redb");
    let mut chain = open(&spec, &path)?;
    let empty = Mempool::new(MempoolConfig::default());

    progress("small block commits");
    let (before, commits_before) = (written_so_far(), chain.store().commits);
    let small = commit_rate(&mut chain, |chain| {
        let start = Instant::now();
        while start.elapsed() < duration {
            add_block(chain, &empty)?;
        }
        Ok(())
    })?;
    let short_length = chain.tip().height.0;
    let small_written = written_since(before, chain.store().commits - commits_before);

    progress("full block commits");
    let chain_id = chain.chain_id();
    let mut full_block = (0, 0);
    let full = commit_rate(&mut chain, |chain| {
        let start = Instant::now();
        // At least two full blocks, whatever the duration.
        for round in 0u64.. {
            if round >= 2 && start.elapsed() >= duration {
                break;
            }
            let mut mempool = Mempool::new(MempoolConfig::default());
            let capacity = spec.limits.block_txs_max as u64 - 1;
            for sender in 0..capacity.min(SENDERS) {
                let transfer = UnsignedTransfer {
                    to: Keypair::dev((sender + 1) % SENDERS).address(),
                    amount: Amount(1),
                    fee: spec.fee_min,
                    nonce: round,
                    memo: Memo::default(),
                }
                .sign(&Keypair::dev(sender), &chain_id);
                mempool.add(transfer, chain.store(), &spec, &chain_id, crate::now())?;
            }
            let block = add_block(chain, &mempool)?;
            full_block = (block.txs.len(), block.encoded_len());
        }
        Ok(())
    })?;

    progress("raw redb commits");
    let (raw, raw_written) = raw_redb_rate(&scratch.0.join("raw.redb"), duration, 1)?;
    let (scattered, scattered_written) = raw_redb_rate(
        &scratch.0.join("scattered.redb"),
        duration,
        SMALL_BLOCK_LEAVES,
    )?;

    progress("start-up time against chain length");
    let mut open_times = Vec::new();
    drop(chain);
    open_times.push(time_open(&spec, &path)?);
    // Four times as long: start-up should grow with the index only.
    let mut chain = open(&spec, &path)?;
    while chain.tip().height.0 < short_length * 4 {
        add_block(&mut chain, &empty)?;
    }
    drop(chain);
    open_times.push(time_open(&spec, &path)?);

    Ok(StoreReport {
        small_block_commits_per_sec: small.round(),
        full_block_commits_per_sec: (full * 100.0).round() / 100.0,
        full_block_txs: full_block.0,
        full_block_bytes: full_block.1,
        raw_redb_commits_per_sec: raw.round(),
        raw_commits_per_sec: raw.round(),
        small_block_ratio: ratio(small, raw),
        raw_scattered_commits_per_sec: scattered.round(),
        small_block_ratio_to_scattered: ratio(small, scattered),
        written_per_commit: match (raw_written, scattered_written, small_written) {
            (Some(raw), Some(raw_scattered), Some(small_block)) => Some(WrittenPerCommit {
                raw,
                raw_scattered,
                small_block,
            }),
            _ => None,
        },
        open: open_times,
    })
}

fn time_open(spec: &ChainSpec, path: &Path) -> anyhow::Result<OpenTime> {
    let start = Instant::now();
    let chain = open(spec, path)?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(OpenTime {
        blocks: chain.tip().height.0 + 1,
        ms: (ms * 1000.0).round() / 1000.0,
    })
}

/// `a / b`, to three places.
fn ratio(a: f64, b: f64) -> f64 {
    (a / b.max(1e-9) * 1000.0).round() / 1000.0
}

/// Durable commits per second, each inserting one 64-byte value into each of `tables`
/// tables (each a leaf of its own), and what each wrote.
fn raw_redb_rate(
    path: &Path,
    duration: Duration,
    tables: usize,
) -> anyhow::Result<(f64, Option<Written>)> {
    const NAMES: [&str; SMALL_BLOCK_LEAVES] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    let db = redb::Database::create(path)?;
    let value = [7u8; 64];
    let before = written_so_far();
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < duration {
        let txn = db.begin_write()?;
        for name in NAMES.iter().take(tables) {
            let definition: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(name);
            let mut table = txn.open_table(definition)?;
            table.insert(commits, value.as_slice())?;
        }
        txn.commit()?;
        commits += 1;
    }
    let rate = commits as f64 / start.elapsed().as_secs_f64();
    Ok((rate, written_since(before, commits)))
}

/// Prints the report as a table.
pub fn print(report: &StoreReport, out: &mut dyn Write) -> std::io::Result<()> {
    let raw = report.raw_redb_commits_per_sec.max(1.0);
    writeln!(
        out,
        "{:<40} {:>14} {:>12}",
        "store (durable)", "commits/s", "vs raw redb"
    )?;
    for (name, rate) in [
        (
            "raw redb commit (one 64-byte value)",
            report.raw_redb_commits_per_sec,
        ),
        (
            "raw redb commit (a value in 8 tables)",
            report.raw_scattered_commits_per_sec,
        ),
        (
            "small block (coinbase only)",
            report.small_block_commits_per_sec,
        ),
        (
            &*format!(
                "full block ({} txs, {} KiB)",
                report.full_block_txs,
                report.full_block_bytes / 1024
            ),
            report.full_block_commits_per_sec,
        ),
    ] {
        writeln!(out, "{name:<40} {rate:>14.2} {:>12.3}", rate / raw)?;
    }
    writeln!(
        out,
        "a small block commits at x{:.3} of the 8-table floor (the leaves it changes)",
        report.small_block_ratio_to_scattered
    )?;
    if let Some(written) = &report.written_per_commit {
        for (name, each) in [
            ("raw redb, one value", written.raw),
            ("raw redb, 8 tables", written.raw_scattered),
            ("small block", written.small_block),
        ] {
            writeln!(
                out,
                "written per commit, {name:<19} {:>8.0} bytes in {:>5.1} write calls",
                each.bytes, each.calls
            )?;
        }
    }
    for open in &report.open {
        writeln!(
            out,
            "start-up with {:>6} blocks: {:.3} ms (index read, no replay)",
            open.blocks, open.ms
        )?;
    }
    if let [short, long] = &report.open[..]
        && long.blocks > short.blocks
    {
        let per_block = (long.ms - short.ms) / (long.blocks - short.blocks) as f64 * 1000.0;
        writeln!(
            out,
            "start-up grows by {per_block:.2} µs per block (its index entry)"
        )?;
    }
    Ok(())
}
