//! `powchain bench propagation`: a block crossing a loopback network, compact and whole.
//!
//! `nodes` nodes on loopback TCP, each dialling the next three (a ring with chords). Before
//! each round, transfers making a block of about `--block-bytes` are given to one node and
//! relayed until every mempool holds them all and the network is quiet (no node sent
//! anything for 100 ms); then one node at a time mines a block of
//! them, and the time from the miner finding it to the last node accepting it is recorded,
//! with every byte the nodes sent from the moment mining starts until all agree on the tip.
//! The same rounds run three times, on fresh networks from the same signed transfers: with
//! compact blocks as a node runs by default (BIP 152's high-bandwidth mode: the peers that
//! last gave a node a tip first push the next block compact, unasked), with compact blocks
//! only ever announced and asked for (low-bandwidth mode), and with every node fetching
//! blocks whole.
//!
//! Bytes per block per hop are the network's bytes for the round over `nodes - 1`, the
//! deliveries a block needs: what a block costs the network, announcements, requests and
//! pings included, whichever way it travels.

use std::time::{Duration, Instant};

use anyhow::bail;
use powchain_chain::{
    Amount, BlockHash, Chain, ChainConfig, ChainSpec, DifficultyBits, Keypair, MemStore, Memo,
    MempoolConfig, Transaction, Transfer, UnsignedTransfer,
};
use powchain_node::driver::{self, Handle};
use powchain_node::miner::MinerConfig;
use powchain_protocol::{Command, Event, Node, NodeConfig};
use rayon::prelude::*;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::network::{driver_config, round3, runtime, until};

/// Transfers per submit to the first node (the API's batch limit).
const SUBMIT_BATCH: usize = 1_000;

/// One relay mode's figures.
#[derive(Debug, Serialize)]
pub struct RelayFigures {
    /// Bytes the network sent per block, over the `nodes - 1` deliveries it needs.
    bytes_per_block_hop: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// What the propagation bench measured.
#[derive(Debug, Serialize)]
pub struct PropagationReport {
    nodes: usize,
    blocks: usize,
    /// Asked-for block size; 0: blocks with only their coinbase.
    block_bytes: usize,
    transfers_per_block: usize,
    /// Blocks as compact blocks (short transfer ids, rebuilt from the mempool), pushed by
    /// high-bandwidth peers: the default.
    compact: RelayFigures,
    /// Compact blocks announced and asked for on every hop (no peer pushes).
    compact_low_bandwidth: RelayFigures,
    /// Blocks fetched whole.
    full: RelayFigures,
    /// `full.bytes_per_block_hop / compact.bytes_per_block_hop` (goal: 10 or more with
    /// 1 MB blocks).
    bytes_ratio: f64,
    /// `compact.p50_ms / full.p50_ms` (goal: below 1).
    p50_ratio: f64,
    /// `compact_low_bandwidth.p50_ms / full.p50_ms`.
    low_bandwidth_p50_ratio: f64,
}

/// How the nodes of one network relay blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relay {
    /// Compact, pushed by high-bandwidth peers (the node's default).
    Pushed,
    /// Compact, announced and asked for.
    Asked,
    /// Whole blocks.
    Whole,
}

/// The chain: the load preset's 10,000 funded accounts and big blocks, at a fixed
/// difficulty of 20 bits (a block in a few tenths of a second on one thread).
fn spec() -> ChainSpec {
    let mut spec = ChainSpec::load().with_fixed_difficulty(DifficultyBits::new_const(20));
    spec.name = "bench-propagation".into();
    spec
}

/// `rounds` sets of `per_block` transfers, valid in order, signed on all cores: account
/// `i % accounts` sends the `i`-th, so each sender is only a few nonces ahead.
fn transfers(spec: &ChainSpec, rounds: usize, per_block: usize) -> Vec<Vec<Transfer>> {
    let accounts = spec.dev_accounts.map_or(1, |dev| dev.count).max(1);
    let chain_id = spec.genesis_hash();
    let keys: Vec<(Keypair, powchain_chain::Address)> = (0..accounts)
        .into_par_iter()
        .map(|index| {
            let key = Keypair::dev(index);
            let address = key.address();
            (key, address)
        })
        .collect();
    let total = (rounds * per_block) as u64;
    let signed: Vec<Transfer> = (0..total)
        .into_par_iter()
        .map(|i| {
            let sender = (i % accounts) as usize;
            UnsignedTransfer {
                to: keys[(sender + 1) % keys.len()].1,
                amount: Amount(1),
                fee: spec.fee_min,
                nonce: i / accounts,
                memo: Memo::default(),
            }
            .sign(&keys[sender].0, &chain_id)
        })
        .collect();
    signed
        .chunks(per_block.max(1))
        .map(<[Transfer]>::to_vec)
        .collect()
}

/// How many transfers make a block of about `block_bytes`, within the chain's limits.
fn transfers_for(spec: &ChainSpec, block_bytes: usize) -> anyhow::Result<usize> {
    if block_bytes == 0 {
        return Ok(0);
    }
    if block_bytes > spec.limits.block_bytes_max as usize {
        bail!(
            "--block-bytes {block_bytes} is over the bench chain's block limit of {} bytes",
            spec.limits.block_bytes_max
        );
    }
    // Every transfer of the bench has the same size: one stands for all.
    let sample = UnsignedTransfer {
        to: Keypair::dev(1).address(),
        amount: Amount(1),
        fee: spec.fee_min,
        nonce: 0,
        memo: Memo::default(),
    }
    .sign(&Keypair::dev(0), &spec.genesis_hash());
    let each = Transaction::Transfer(sample).encoded_len().max(1);
    Ok((block_bytes / each).min(spec.limits.block_txs_max as usize - 1))
}

/// Runs the bench: `nodes` nodes, `blocks` blocks of about `block_bytes`, both ways.
pub fn run(
    nodes: usize,
    blocks: usize,
    block_bytes: usize,
    progress: &dyn Fn(&str),
) -> anyhow::Result<PropagationReport> {
    let spec = spec();
    let per_block = transfers_for(&spec, block_bytes)?;
    progress(&format!(
        "signing {} transfers ({per_block} per block)",
        blocks * per_block
    ));
    let rounds = transfers(&spec, blocks, per_block);
    let runtime = runtime()?;
    progress(&format!("{nodes} nodes on loopback, compact blocks pushed"));
    let compact = runtime.block_on(one_mode(&spec, nodes, &rounds, Relay::Pushed, progress))?;
    progress(&format!(
        "{nodes} nodes on loopback, compact blocks asked for"
    ));
    let asked = runtime.block_on(one_mode(&spec, nodes, &rounds, Relay::Asked, progress))?;
    progress(&format!("{nodes} nodes on loopback, whole blocks"));
    let full = runtime.block_on(one_mode(&spec, nodes, &rounds, Relay::Whole, progress))?;
    Ok(PropagationReport {
        nodes,
        blocks,
        block_bytes,
        transfers_per_block: per_block,
        bytes_ratio: round3(full.bytes_per_block_hop / compact.bytes_per_block_hop.max(1.0)),
        p50_ratio: round3(compact.p50_ms / full.p50_ms.max(1e-9)),
        low_bandwidth_p50_ratio: round3(asked.p50_ms / full.p50_ms.max(1e-9)),
        compact,
        compact_low_bandwidth: asked,
        full,
    })
}

/// One fresh network, every node relaying blocks as `relay` says, through all rounds.
async fn one_mode(
    spec: &ChainSpec,
    nodes: usize,
    rounds: &[Vec<Transfer>],
    relay: Relay,
    progress: &dyn Fn(&str),
) -> anyhow::Result<RelayFigures> {
    let mut listeners = Vec::new();
    for _ in 0..nodes {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let addresses: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()?;
    let mut handles: Vec<Handle<MemStore>> = Vec::new();
    let mut events: Vec<mpsc::Receiver<Event>> = Vec::new();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default())?;
        let mut config = NodeConfig::new(100 + index as u64);
        config.listen = Some(addresses[index].clone());
        config.outbound_target = 3;
        config.compact_blocks = relay != Relay::Whole;
        if relay == Relay::Asked {
            config.compact_high_bandwidth_peers = 0;
        }
        // Room for a few blocks' worth of transfers, whatever `--block-bytes` asks.
        config.mempool = MempoolConfig::for_chain(spec);
        let mut node = Node::new(config, chain, index as u64);
        // A ring plus chords: every node dials the next three.
        for step in 1..=3.min(nodes - 1) {
            node.add_address(&addresses[(index + step) % nodes]);
        }
        let mut driver = driver_config(Some(listener));
        driver.miner = Some(MinerConfig {
            threads: 1,
            ..MinerConfig::detect()
        });
        let (handle, receiver, stop, task) = driver::spawn(node, driver);
        handles.push(handle);
        events.push(receiver);
        stops.push(stop);
        tasks.push(task);
    }
    let degree = 3.min(nodes - 1);
    until(Duration::from_secs(60), "the network to form", || {
        let handles = handles.clone();
        async move {
            for handle in &handles {
                if handle.inspect(|node| node.peers().len()).await.unwrap_or(0) < degree {
                    return false;
                }
            }
            true
        }
    })
    .await?;
    // Every node's events are stamped the moment they arrive, by one task per node, so
    // reading them one node after another does not add to the latency.
    let (stamped_sender, mut stamped) = mpsc::unbounded_channel::<(usize, Instant, Event)>();
    for (index, mut receiver) in events.into_iter().enumerate() {
        let sender = stamped_sender.clone();
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                if sender.send((index, Instant::now(), event)).is_err() {
                    return;
                }
            }
        });
    }
    let mut latencies = Vec::new();
    let mut bytes = 0u64;
    for (round, transfers) in rounds.iter().enumerate() {
        let miner = round % nodes;
        fill_mempools(&handles, transfers, round).await?;
        // Relay goes on after every pool is full (copies of what a node already has, sent
        // before it told anyone): what is left is worked off before the block, so the block
        // does not wait behind it.
        until_quiet(&handles).await;
        let sent_before = bytes_sent(&handles).await;
        while stamped.try_recv().is_ok() {}
        handles[miner].command(Command::Automine(true)).await;
        let latency = until_everyone_has_it(&handles, &mut stamped, miner, round).await?;
        latencies.push(latency);
        // Let every node settle on the same tip before the next round.
        until(Duration::from_secs(60), "agreement", || {
            let handles = handles.clone();
            async move {
                let mut tips: Vec<Option<BlockHash>> = Vec::new();
                for handle in &handles {
                    tips.push(handle.inspect(|node| node.chain().tip().hash).await);
                }
                tips.windows(2).all(|pair| pair[0] == pair[1])
            }
        })
        .await?;
        bytes += bytes_sent(&handles).await.saturating_sub(sent_before);
        if round % 5 == 4 {
            progress(&format!("{} of {} blocks", round + 1, rounds.len()));
        }
    }
    for stop in stops {
        let _ = stop.send(true);
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    };
    let hops = (rounds.len() * (nodes - 1)).max(1) as f64;
    Ok(RelayFigures {
        bytes_per_block_hop: round3(bytes as f64 / hops),
        p50_ms: round3(percentile(0.5)),
        p99_ms: round3(percentile(0.99)),
    })
}

/// Gives the round's transfers to one node and waits until every pool holds them all.
async fn fill_mempools(
    handles: &[Handle<MemStore>],
    transfers: &[Transfer],
    round: usize,
) -> anyhow::Result<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let entry = &handles[(round + 1) % handles.len()];
    for batch in transfers.chunks(SUBMIT_BATCH) {
        let Some(results) = entry.submit_transfers(batch.to_vec()).await else {
            bail!("the node stopped");
        };
        if let Some(error) = results.into_iter().find_map(Result::err) {
            bail!("round {round}: a transfer was refused: {error}");
        }
    }
    let want = transfers.len();
    until(
        Duration::from_secs(120),
        "every mempool to hold the round's transfers",
        || {
            let handles = handles.to_vec();
            async move {
                for handle in &handles {
                    if handle
                        .inspect(|node| node.mempool().len())
                        .await
                        .unwrap_or(0)
                        < want
                    {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await
}

/// Waits until no node has sent anything for 100 ms (at most 30 s: the status poll never
/// stops).
async fn until_quiet(handles: &[Handle<MemStore>]) {
    let start = Instant::now();
    let mut last = bytes_sent(handles).await;
    while start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = bytes_sent(handles).await;
        if now == last {
            return;
        }
        last = now;
    }
}

/// Every node's bytes sent so far, summed.
async fn bytes_sent(handles: &[Handle<MemStore>]) -> u64 {
    let mut total = 0;
    for handle in handles {
        total += handle
            .inspect(|node| node.stats().bytes_out)
            .await
            .unwrap_or(0);
    }
    total
}

/// Waits for the miner's block and for every other node to accept it; the time between,
/// in milliseconds. Stops the miner once it has found one.
async fn until_everyone_has_it(
    handles: &[Handle<MemStore>],
    stamped: &mut mpsc::UnboundedReceiver<(usize, Instant, Event)>,
    miner: usize,
    round: usize,
) -> anyhow::Result<f64> {
    let nodes = handles.len();
    let mut mined: Option<(BlockHash, Instant)> = None;
    let mut reached = vec![false; nodes];
    let mut pending: Vec<(usize, Instant, BlockHash)> = Vec::new();
    let mut last = Instant::now();
    while reached.iter().filter(|r| **r).count() < nodes - 1 {
        let Ok(Some((index, at, event))) =
            tokio::time::timeout(Duration::from_secs(60), stamped.recv()).await
        else {
            bail!("round {round}: the block did not reach every node within a minute");
        };
        match event {
            Event::Mined { hash, .. } if index == miner && mined.is_none() => {
                handles[miner].command(Command::Automine(false)).await;
                mined = Some((hash, at));
                last = at;
            }
            Event::TipChanged { hash: tip, .. } if index != miner => {
                pending.push((index, at, tip));
            }
            _ => {}
        }
        let Some((hash, _)) = mined else { continue };
        for (index, at, tip) in pending.drain(..) {
            if reached[index] {
                continue;
            }
            // The block itself, or a later one that came with it.
            let has_it = tip == hash
                || handles[index]
                    .inspect(move |node| node.chain().tree().is_on_best(&hash))
                    .await
                    .unwrap_or(false);
            if has_it {
                reached[index] = true;
                last = last.max(at);
            }
        }
    }
    let Some((_, started)) = mined else {
        bail!("round {round}: no block was mined");
    };
    Ok(last.duration_since(started).as_secs_f64() * 1000.0)
}

/// Prints the propagation report.
pub fn print(report: &PropagationReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "propagation: {} blocks of {} transfers (--block-bytes {}) across {} loopback nodes, \
         miner to last node",
        report.blocks, report.transfers_per_block, report.block_bytes, report.nodes
    )?;
    writeln!(
        out,
        "  relay             bytes/block/hop   median ms   99th pct ms"
    )?;
    for (name, figures) in [
        ("compact, pushed", &report.compact),
        ("compact, asked", &report.compact_low_bandwidth),
        ("whole", &report.full),
    ] {
        writeln!(
            out,
            "  {name:<16} {:>16.0} {:>11.3} {:>13.3}",
            figures.bytes_per_block_hop, figures.p50_ms, figures.p99_ms
        )?;
    }
    writeln!(
        out,
        "  compact blocks send x{:.1} fewer bytes per hop; their median time is x{:.3} of \
         whole blocks' pushed, x{:.3} asked for",
        report.bytes_ratio, report.p50_ratio, report.low_bandwidth_p50_ratio
    )
}
