//! `powchain bench hash`: hashing speed, as ratios to a reference measured in the same run.
//!
//! Machines are noisy and differ, so every rate is also printed as a ratio to `sha2`'s
//! single-block compression measured seconds earlier on the same machine. The entries:
//!
//! - `seed-json`: what seed 000 does per nonce: the whole block payload (100 account
//!   balances, the transactions, a timestamp) as JSON, then SHA-512 of it.
//! - `sha2-header`: `sha2` hashing the 172-byte header from scratch (two compressions).
//! - `sha2-compress`: `sha2` compressing one block onto a midstate: the reference.
//! - `multibuffer-<backend>`: the raw multi-buffer compression, per backend this CPU has.
//! - `miner`: the mining threads on a real template, with 1 thread and with one per core.
//! - `openssl-sha512`: `openssl speed -evp sha512` on 16 KiB buffers, in compressions per
//!   second, when `openssl` is installed.
//!
//! Then the cancellation latency: how long until every mining thread has dropped its work
//! after a new template is published (the worst of several tries).

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use powchain_chain::{
    Chain, ChainConfig, ChainSpec, Keypair, MemStore, Mempool, MempoolConfig, Target,
};
use powchain_node::miner::{Miner, MinerConfig};
use powchain_node::sha512::{Backend, compress_repeatedly};
use serde::Serialize;
use sha2::{Digest, Sha512};

/// One measured rate.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    name: String,
    threads: usize,
    hashes_per_sec: f64,
    ratio_to_sha2_compress: f64,
}

/// What the hash suite measured.
#[derive(Debug, Serialize)]
pub struct HashReport {
    results: Vec<Entry>,
    cancel_latency_ms: f64,
    cancel_latency_median_ms: f64,
    #[serde(skip)]
    threads: usize,
}

/// Measures every hashing rate, `duration` each, and the cancellation latency with
/// `threads` mining threads; `progress` is told what is being measured.
pub fn measure_all(
    duration: Duration,
    threads: usize,
    progress: &dyn Fn(&str),
) -> anyhow::Result<HashReport> {
    let mut rates: Vec<(String, usize, f64)> = Vec::new();
    progress("seed-json");
    rates.push(("seed-json".into(), 1, seed_json_rate(duration)));
    progress("sha2-header");
    rates.push(("sha2-header".into(), 1, sha2_header_rate(duration)));
    progress("sha2-compress");
    let reference = sha2_compress_rate(duration);
    rates.push(("sha2-compress".into(), 1, reference));
    for backend in Backend::supported() {
        let name = format!("multibuffer-{backend}");
        progress(&name);
        rates.push((name, 1, multibuffer_rate(backend, duration)));
    }
    let mut miner_threads = vec![1];
    if threads > 1 {
        miner_threads.push(threads);
    }
    for count in miner_threads {
        progress(&format!("miner with {count} threads"));
        rates.push(("miner".into(), count, miner_rate(count, duration)?));
    }
    if let Some(rate) = openssl_rate(duration.as_secs_f64()) {
        rates.push(("openssl-sha512".into(), 1, rate));
    }
    progress("cancellation latency");
    let (worst, median) = cancel_latency(threads)?;
    Ok(HashReport {
        results: rates
            .into_iter()
            .map(|(name, threads, rate)| Entry {
                name,
                threads,
                hashes_per_sec: rate.round(),
                ratio_to_sha2_compress: (rate / reference * 1000.0).round() / 1000.0,
            })
            .collect(),
        cancel_latency_ms: (worst * 1000.0).round() / 1000.0,
        cancel_latency_median_ms: (median * 1000.0).round() / 1000.0,
        threads,
    })
}

/// Prints the report as a table.
pub fn print(report: &HashReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<22} {:>7} {:>16} {:>12}",
        "name", "threads", "hashes/s", "vs sha2-compress"
    )?;
    for entry in &report.results {
        writeln!(
            out,
            "{:<22} {:>7} {:>16} {:>12.3}",
            entry.name,
            entry.threads,
            format_rate(entry.hashes_per_sec),
            entry.ratio_to_sha2_compress
        )?;
    }
    writeln!(
        out,
        "cancellation latency: {:.3} ms worst, {:.3} ms median ({} threads, {CANCEL_TRIES} tries)",
        report.cancel_latency_ms, report.cancel_latency_median_ms, report.threads
    )
}

fn format_rate(rate: f64) -> String {
    format!("{:.3} M", rate / 1e6)
}

/// Calls `work` (which returns the hashes it did) until `duration` has passed.
fn measure(duration: Duration, mut work: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut hashes = 0u64;
    while start.elapsed() < duration {
        hashes += work();
    }
    hashes as f64 / start.elapsed().as_secs_f64()
}

/// Seed 000's block payload, serialised to JSON for every nonce.
#[derive(Serialize)]
struct SeedPayload {
    id: u64,
    transactions: BTreeSet<SeedTransaction>,
    balances: BTreeMap<u64, u32>,
    timestamp: String,
    previous_hash: Vec<u8>,
    nonce: (usize, usize),
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct SeedTransaction {
    from: u64,
    to: u64,
    amount: u32,
    timestamp: String,
}

fn seed_json_rate(duration: Duration) -> f64 {
    let mut payload = SeedPayload {
        id: 1,
        transactions: (0..2)
            .map(|i| SeedTransaction {
                from: 2 + i,
                to: 3 + i,
                amount: 5,
                timestamp: format!("2021-01-31T12:00:0{i}.123456789Z"),
            })
            .collect(),
        balances: (0..100).map(|account| (account, 10)).collect(),
        timestamp: "2021-01-31T12:00:05.123456789Z".into(),
        previous_hash: Sha512::digest(b"genesis_hash").to_vec(),
        nonce: (0, 0),
    };
    measure(duration, || {
        for _ in 0..64 {
            payload.nonce.1 += 1;
            let json = serde_json::to_string(&payload).unwrap_or_default();
            black_box(Sha512::digest(json.as_bytes()));
        }
        64
    })
}

fn sha2_header_rate(duration: Duration) -> f64 {
    let mut header = ChainSpec::dev().genesis_block().header;
    measure(duration, || {
        for _ in 0..4096 {
            header.nonce += 1;
            black_box(Sha512::digest(header.encode()));
        }
        4096
    })
}

fn sha2_compress_rate(duration: Duration) -> f64 {
    let mut state = [0x6a09e667f3bcc908u64; 8];
    let mut block = [0u8; 128];
    measure(duration, || {
        for nonce in 0..4096u64 {
            block[40..48].copy_from_slice(&nonce.to_be_bytes());
            let mut next = state;
            sha2::block_api::compress512(&mut next, &[block]);
            state[0] ^= black_box(next[0]);
        }
        4096
    })
}

fn multibuffer_rate(backend: Backend, duration: Duration) -> f64 {
    let calls = 4096u64;
    measure(duration, || {
        // Opaque inputs: the compiler cannot compute the result once and reuse it.
        black_box(compress_repeatedly(black_box(backend), black_box(calls)));
        calls * backend.lanes() as u64
    })
}

/// A template on the dev chain whose target nothing meets, so the miner never stops.
fn endless_template() -> anyhow::Result<powchain_chain::Block> {
    let chain = Chain::open(ChainSpec::dev(), MemStore::new(), ChainConfig::default())
        .context("opening an in-memory chain")?;
    let mut template = chain
        .block_template(
            &Mempool::new(MempoolConfig::default()),
            Keypair::dev(0).address(),
            crate::now(),
            0,
        )?
        .block;
    template.header.target = Target(0);
    Ok(template)
}

fn start_miner(threads: usize) -> anyhow::Result<Miner> {
    let (sender, _solutions) = mpsc::channel();
    Ok(Miner::start(
        MinerConfig {
            threads,
            ..MinerConfig::detect()
        },
        sender,
    )?)
}

fn miner_rate(threads: usize, duration: Duration) -> anyhow::Result<f64> {
    let miner = start_miner(threads)?;
    let generation = miner.mine(endless_template()?);
    wait_for(|| miner.threads_on(generation) == threads && miner.hashes() > 0)?;
    let (start, before) = (Instant::now(), miner.hashes());
    std::thread::sleep(duration);
    let hashes = miner.hashes() - before;
    Ok(hashes as f64 / start.elapsed().as_secs_f64())
}

const CANCEL_TRIES: usize = 20;

/// The worst and median time, in ms, from publishing a new template until every thread has
/// dropped the old one.
fn cancel_latency(threads: usize) -> anyhow::Result<(f64, f64)> {
    let miner = start_miner(threads)?;
    let template = endless_template()?;
    let mut latencies = Vec::with_capacity(CANCEL_TRIES);
    let generation = miner.mine(template.clone());
    wait_for(|| miner.threads_on(generation) == threads)?;
    for _ in 0..CANCEL_TRIES {
        // Let the threads get into a batch before the new work arrives.
        let before = miner.hashes();
        wait_for(|| miner.hashes() > before)?;
        let start = Instant::now();
        let generation = miner.mine(template.clone());
        wait_for(|| miner.all_on_since(generation).is_some())?;
        let stopped = miner.all_on_since(generation).unwrap_or(start);
        latencies.push(stopped.saturating_duration_since(start).as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let worst = latencies.last().copied().unwrap_or_default();
    Ok((worst, latencies[latencies.len() / 2]))
}

/// Polls `condition` every 50 µs (sleeping, so the mining threads keep the cores) until it
/// holds; gives up after ten seconds.
fn wait_for(mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("the miner did not respond within 10 s");
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}

/// `openssl speed -evp sha512` on 16 KiB buffers, converted to compressions per second.
fn openssl_rate(seconds: f64) -> Option<f64> {
    let seconds = seconds.ceil().max(1.0).to_string();
    let output = Command::new("openssl")
        .args([
            "speed", "-evp", "sha512", "-bytes", "16384", "-seconds", &seconds,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The last line reads "sha512  <thousands of bytes per second>k".
    let line = text.lines().rev().find(|line| line.starts_with("sha512"))?;
    let field = line.split_whitespace().last()?;
    let kilobytes: f64 = field.trim_end_matches('k').parse().ok()?;
    Some(kilobytes * 1000.0 / 128.0)
}
