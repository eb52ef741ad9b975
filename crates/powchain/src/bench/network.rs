//! `powchain bench sync`: the network's cost, measured (and the loopback helpers the
//! propagation bench shares).
//!
//! - sync: a chain of signed transfers is built in memory, then a fresh node downloads it
//!   from a node that has it, over loopback TCP (headers first, then blocks). Two references
//!   are measured in the same run: one core's batch verification rate, which bounds how fast
//!   any node can check the chain's signatures on this machine's cores, and the same blocks
//!   validated and connected directly, without a network, as the syncing node does it (each
//!   message's signatures at once, then its blocks one by one), each with a cold cache.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powchain_chain::block::tx_root;
use powchain_chain::header::HEADER_VERSION;
use powchain_chain::spec::DevAccounts;
use powchain_chain::tx::{Coinbase, first_bad_signature};
use powchain_chain::{
    Amount, Block, Chain, ChainConfig, ChainSpec, DifficultyBits, Header, Keypair, MemStore, Memo,
    Timestamp, Transaction, Transfer, UnsignedTransfer, miner,
};
use powchain_node::driver::{self, DriverConfig};
use powchain_protocol::message::BLOCKS_PER_MESSAGE_MAX;
use powchain_protocol::{Node, NodeConfig};
use rayon::prelude::*;
use serde::Serialize;
use tokio::net::TcpListener;

use super::verify;

/// Accounts that send the transfers, round robin.
const SENDERS: u64 = 64;

/// What the sync bench measured.
#[derive(Debug, Serialize)]
pub struct SyncReport {
    blocks: u64,
    transfers_per_block: u64,
    transfers: u64,
    sync_seconds: f64,
    blocks_per_sec: f64,
    transfers_per_sec: f64,
    /// One core's batch verification rate, measured first, before any chain exists.
    batch_verifications_per_sec_per_core: f64,
    cores: usize,
    /// The fastest the transfers' signatures can be checked on this machine:
    /// `transfers / (batch rate per core x cores)`.
    bound_seconds: f64,
    /// `sync_seconds / bound_seconds` (the goal is at most 1.5).
    bound_ratio: f64,
    /// All cores verifying batches at once, measured: what the cores really give together.
    batch_verifications_per_sec_all_cores: f64,
    /// `sync_seconds / (transfers / all cores' measured rate)`.
    measured_bound_ratio: f64,
    /// The same blocks validated and connected without a network, cold cache.
    validation_seconds: f64,
    /// `sync_seconds / validation_seconds`: what the network costs.
    network_ratio: f64,
}

fn sync_spec() -> ChainSpec {
    let mut spec = ChainSpec::dev().with_fixed_difficulty(DifficultyBits::new_const(1));
    spec.name = "bench-sync".into();
    spec.dev_accounts = Some(DevAccounts {
        count: SENDERS,
        balance: Amount(1_000_000_000),
    });
    spec
}

/// `blocks` blocks of `per_block` transfers each, genesis excluded, valid in order. The
/// transfers are signed on all cores.
fn build_chain(spec: &ChainSpec, blocks: u64, per_block: u64) -> anyhow::Result<Vec<Block>> {
    let chain_id = spec.genesis_hash();
    let keys: Vec<Keypair> = (0..SENDERS).map(Keypair::dev).collect();
    let mut nonces = vec![0u64; SENDERS as usize];
    let mut unsigned = Vec::with_capacity((blocks * per_block) as usize);
    for height in 1..=blocks {
        for k in 0..per_block {
            let sender = ((height * per_block + k) % SENDERS) as usize;
            let transfer = UnsignedTransfer {
                to: keys[(sender + 1) % SENDERS as usize].address(),
                amount: Amount(1),
                fee: spec.fee_min,
                nonce: nonces[sender],
                memo: Memo::default(),
            };
            nonces[sender] += 1;
            unsigned.push((sender, transfer));
        }
    }
    let signed: Vec<Transaction> = unsigned
        .into_par_iter()
        .map(|(sender, transfer)| Transaction::Transfer(transfer.sign(&keys[sender], &chain_id)))
        .collect();
    let mut signed = signed.into_iter();
    let mut parent = spec.genesis_block().header;
    let mut out = Vec::with_capacity(blocks as usize);
    for height in 1..=blocks {
        let mut txs = vec![Transaction::Coinbase(Coinbase {
            height: powchain_chain::Height(height),
            to: keys[0].address(),
            amount: Amount(spec.block_reward.0 + per_block * spec.fee_min.0),
            extra_nonce: 0,
        })];
        txs.extend(signed.by_ref().take(per_block as usize));
        let mut block = Block {
            header: Header {
                version: HEADER_VERSION,
                height: powchain_chain::Height(height),
                prev_hash: parent.hash(),
                tx_root: tx_root(&txs),
                time: Timestamp(parent.time.0 + 1_000),
                target: spec.genesis_target(),
                nonce: 0,
            },
            txs,
        };
        miner::mine(&mut block);
        parent = block.header;
        out.push(block);
    }
    Ok(out)
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(super) fn driver_config(listener: Option<TcpListener>) -> DriverConfig {
    let mut config = DriverConfig::new();
    config.tcp = listener;
    config.tick = Duration::from_millis(20);
    config
}

/// Polls `condition` every millisecond until it holds or `limit` passes.
pub(super) async fn until<F, Fut>(
    limit: Duration,
    what: &str,
    mut condition: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        if start.elapsed() > limit {
            bail!("gave up waiting for {what} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Runs the sync bench on a chain of `blocks` blocks of `per_block` transfers.
pub fn sync(blocks: u64, per_block: u64, progress: &dyn Fn(&str)) -> anyhow::Result<SyncReport> {
    let spec = sync_spec();
    let chain_id = spec.genesis_hash();
    progress("one core's batch verification rate (the reference)");
    let samples = verify::sample_transfers(&chain_id);
    let batch_rate = verify::batch_rate(&samples, &chain_id);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    progress("the batch verification rate of all cores at once");
    let together = verify::batch_rate_together(&samples, &chain_id, cores);
    progress(&format!(
        "building a chain of {blocks} blocks of {per_block} transfers"
    ));
    let chain_blocks = build_chain(&spec, blocks, per_block)?;
    let now = Timestamp(spec.genesis_time_ms + (blocks + 10) * 1_000);

    progress("validating it without a network");
    // Every chain here has a signature cache of its own: the reference pass warms none of
    // what the synced node must check.
    let mut direct = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default())?;
    let started = Instant::now();
    // As the syncing node does: each message's blocks have their signatures checked at
    // once, then are imported one by one.
    for message in chain_blocks.chunks(BLOCKS_PER_MESSAGE_MAX) {
        let transfers: Vec<&Transfer> = message
            .iter()
            .flat_map(|block| &block.txs)
            .filter_map(Transaction::as_transfer)
            .collect();
        if first_bad_signature(&transfers, &chain_id, direct.sig_cache()).is_some() {
            bail!("the bench's own chain holds a bad signature");
        }
        for block in message {
            direct.import_block(block.clone(), now)?;
        }
    }
    let validation_seconds = started.elapsed().as_secs_f64();

    // The source: a node that already has the chain. It shares the reference pass's cache
    // (only to be built faster); the node that syncs starts with an empty one of its own.
    let mut source_chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default())?
        .sharing_signatures(direct.sig_cache().clone());
    drop(direct);
    for block in chain_blocks {
        source_chain.import_block(block, now)?;
    }
    let tip = source_chain.tip().hash;
    progress("syncing it over loopback TCP");
    let runtime = runtime()?;
    let sync_seconds = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (_source, _source_events, source_stop, source_task) = driver::spawn(
            Node::new(NodeConfig::new(1), source_chain, 1),
            driver_config(Some(listener)),
        );
        let fresh = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default())?;
        let mut config = NodeConfig::new(2);
        config.outbound_target = 1;
        let mut node = Node::new(config, fresh, 2);
        node.add_address(&address);
        let started = Instant::now();
        let (handle, _events, stop, task) = driver::spawn(node, driver_config(None));
        until(Duration::from_secs(3_600), "the sync", || {
            let handle = handle.clone();
            async move { handle.inspect(|node| node.chain().tip().hash).await == Some(tip) }
        })
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let _ = source_stop.send(true);
        let _ = task.await;
        let _ = source_task.await;
        anyhow::Ok(seconds)
    })?;
    let transfers = blocks * per_block;
    let bound_seconds = transfers as f64 / (batch_rate * cores as f64).max(1e-9);
    Ok(SyncReport {
        blocks,
        transfers_per_block: per_block,
        transfers,
        sync_seconds: round3(sync_seconds),
        blocks_per_sec: (blocks as f64 / sync_seconds).round(),
        transfers_per_sec: (transfers as f64 / sync_seconds).round(),
        batch_verifications_per_sec_per_core: batch_rate.round(),
        cores,
        bound_seconds: round3(bound_seconds),
        bound_ratio: round3(sync_seconds / bound_seconds.max(1e-9)),
        batch_verifications_per_sec_all_cores: together.round(),
        measured_bound_ratio: round3(sync_seconds * together.max(1e-9) / transfers as f64),
        validation_seconds: round3(validation_seconds),
        network_ratio: round3(sync_seconds / validation_seconds.max(1e-9)),
    })
}

pub(super) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Prints the sync report.
pub fn print_sync(report: &SyncReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "sync: {} blocks of {} transfers ({} transfers) over loopback TCP in {:.3} s: \
         {} blocks/s, {} transfers/s",
        report.blocks,
        report.transfers_per_block,
        report.transfers,
        report.sync_seconds,
        report.blocks_per_sec,
        report.transfers_per_sec
    )?;
    writeln!(
        out,
        "  bound: {} transfers / ({:.0} batch verifications/s per core x {} cores) = {:.3} s; \
         sync took x{:.3} of it",
        report.transfers,
        report.batch_verifications_per_sec_per_core,
        report.cores,
        report.bound_seconds,
        report.bound_ratio
    )?;
    writeln!(
        out,
        "  the {} cores verifying batches at once measured {:.0}/s (x{:.2} one core's): \
         sync took x{:.3} of that bound",
        report.cores,
        report.batch_verifications_per_sec_all_cores,
        report.batch_verifications_per_sec_all_cores
            / report.batch_verifications_per_sec_per_core.max(1e-9),
        report.measured_bound_ratio
    )?;
    writeln!(
        out,
        "  validating the same blocks without a network (cold cache) took {:.3} s: \
         the network costs x{:.3}",
        report.validation_seconds, report.network_ratio
    )
}
