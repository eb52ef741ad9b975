//! `powchain bench`: how fast the node is, measured on this machine, with a reference
//! measured in the same run next to every figure (machines are noisy and differ).
//!
//! - `hash` ([`hash`]): hashing and mining rates as ratios to `sha2`'s compression, and the
//!   miner's cancellation latency.
//! - `store` ([`store`]): durable block commits per second for small and full blocks, next to
//!   redb's raw durable commit rate, and start-up time against chain length.
//! - `sync`, `propagation` ([`network`]): a fresh node syncing over loopback, and a block
//!   crossing a loopback network.
//! - `sim` ([`sim`]): the simulator at 1,000 nodes for a simulated day (not part of `all`:
//!   it takes most of a minute).
//! - `load` ([`load`]): signed transfers through the API of a 4-node devnet for a minute, as
//!   a ratio to one core's signature verification (not part of `all`).

mod hash;
mod load;
mod network;
mod propagation;
mod sim;
mod store;
mod verify;

use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};
use powchain_node::sha512::Backend;
use serde::Serialize;

/// Which benchmarks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// Hash, store, sync and propagation (sim and load take minutes each: name them).
    All,
    /// Hashing and mining.
    Hash,
    /// The chain database.
    Store,
    /// A fresh node syncing a long chain from a peer over loopback.
    Sync,
    /// A block crossing a 16-node loopback network.
    Propagation,
    /// The simulator: 1,000 nodes for a simulated day.
    Sim,
    /// Transfers through the API of a 4-node devnet.
    Load,
}

/// Flags of `powchain bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which benchmarks (by default hash, store, sync and propagation).
    #[arg(value_enum, default_value_t = Suite::All)]
    suite: Suite,
    /// Seconds per measurement (0.1..=60).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Threads for the multi-threaded miner entry (default: one per core).
    #[arg(long)]
    miner_threads: Option<usize>,
    /// Blocks in the chain the sync bench downloads (at least 100).
    #[arg(long, default_value_t = 10_000)]
    sync_blocks: u64,
    /// Transfers in each block of the sync bench's chain (1..=1000).
    #[arg(long, default_value_t = 100)]
    sync_block_transfers: u64,
    /// Nodes in the propagation bench (2..=64).
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// Blocks the propagation bench sends across the network (1..=1000).
    #[arg(long, default_value_t = 20)]
    propagation_blocks: usize,
    /// Bytes of transfers in each block of the propagation bench, which every node holds
    /// before the block is mined (0: blocks with only their coinbase).
    #[arg(long, default_value_t = 0)]
    block_bytes: usize,
    /// Nodes in the simulator bench (2..=10000).
    #[arg(long, default_value_t = 1_000)]
    sim_nodes: usize,
    /// Simulated time of the simulator bench (`6h`, `1d`).
    #[arg(long, default_value = "1d")]
    sim_duration: String,
    /// Seconds of load in the load bench (10..=3600).
    #[arg(long, default_value_t = 60.0)]
    load_seconds: f64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
struct Report {
    cpu_backend: &'static str,
    cores: usize,
    seconds_per_measurement: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    hash: Option<hash::HashReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<store::StoreReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<network::SyncReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    propagation: Option<propagation::PropagationReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sim: Option<sim::SimBenchReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<load::LoadReport>,
}

/// Runs the chosen benchmarks and prints the report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if !(0.1..=60.0).contains(&args.seconds) {
        anyhow::bail!("--seconds must be between 0.1 and 60, got {}", args.seconds);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.miner_threads.unwrap_or(cores);
    if !(1..=1024).contains(&threads) {
        anyhow::bail!("--miner-threads must be between 1 and 1024, got {threads}");
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let progress = |name: &str| {
        if !args.json {
            eprintln!("measuring {name}…");
        }
    };
    let hash = match args.suite {
        Suite::All | Suite::Hash => Some(hash::measure_all(duration, threads, &progress)?),
        _ => None,
    };
    if args.sync_blocks < 100 {
        anyhow::bail!(
            "--sync-blocks must be at least 100, got {}",
            args.sync_blocks
        );
    }
    if !(1..=1_000).contains(&args.sync_block_transfers) {
        anyhow::bail!(
            "--sync-block-transfers must be 1..=1000, got {}",
            args.sync_block_transfers
        );
    }
    if !(2..=64).contains(&args.nodes) || !(1..=1_000).contains(&args.propagation_blocks) {
        anyhow::bail!("--nodes must be 2..=64 and --propagation-blocks 1..=1000");
    }
    let store = match args.suite {
        Suite::All | Suite::Store => Some(store::measure_all(duration, &progress)?),
        _ => None,
    };
    let sync = match args.suite {
        Suite::All | Suite::Sync => Some(network::sync(
            args.sync_blocks,
            args.sync_block_transfers,
            &progress,
        )?),
        _ => None,
    };
    let propagation = match args.suite {
        Suite::All | Suite::Propagation => Some(propagation::run(
            args.nodes,
            args.propagation_blocks,
            args.block_bytes,
            &progress,
        )?),
        _ => None,
    };
    let sim = match args.suite {
        Suite::Sim => {
            let duration = powchain_sim::scenario::parse_span(&args.sim_duration)
                .map_err(anyhow::Error::msg)?;
            if !(2..=10_000).contains(&args.sim_nodes) || duration.0 == 0 {
                anyhow::bail!("--sim-nodes must be 2..=10000 and --sim-duration more than zero");
            }
            Some(sim::measure(args.sim_nodes, duration, &progress)?)
        }
        _ => None,
    };
    let load = match args.suite {
        Suite::Load => {
            if !(10.0..=3_600.0).contains(&args.load_seconds) {
                anyhow::bail!("--load-seconds must be between 10 and 3600");
            }
            Some(load::measure(args.load_seconds, &progress)?)
        }
        _ => None,
    };
    let report = Report {
        cpu_backend: Backend::detect().name(),
        cores,
        seconds_per_measurement: args.seconds,
        hash,
        store,
        sync,
        propagation,
        sim,
        load,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        // A single network suite prints its own object; anything else the whole report.
        let text = match (args.suite, &report.sync, &report.propagation) {
            (Suite::Sync, Some(sync), _) => serde_json::to_string_pretty(sync)?,
            (Suite::Propagation, _, Some(propagation)) => {
                serde_json::to_string_pretty(propagation)?
            }
            (Suite::Sim, _, _) if report.sim.is_some() => {
                serde_json::to_string_pretty(&report.sim)?
            }
            (Suite::Load, _, _) if report.load.is_some() => {
                serde_json::to_string_pretty(&report.load)?
            }
            _ => serde_json::to_string_pretty(&report)?,
        };
        writeln!(out, "{text}")?;
        return Ok(());
    }
    writeln!(
        out,
        "powchain bench: {} cores, best backend {}, {} s per measurement",
        report.cores, report.cpu_backend, report.seconds_per_measurement
    )?;
    if let Some(hash) = &report.hash {
        hash::print(hash, &mut out)?;
    }
    if let Some(store) = &report.store {
        store::print(store, &mut out)?;
    }
    if let Some(sync) = &report.sync {
        network::print_sync(sync, &mut out)?;
    }
    if let Some(propagation) = &report.propagation {
        propagation::print(propagation, &mut out)?;
    }
    if let Some(sim) = &report.sim {
        sim::print(sim, &mut out)?;
    }
    if let Some(load) = &report.load {
        load::print(load, &mut out)?;
    }
    Ok(())
}
