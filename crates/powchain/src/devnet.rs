//! `powchain devnet`: a whole network on this machine, live.
//!
//! Real nodes (the protocol state machine and its tokio driver, one redb file each) on
//! loopback TCP or unix sockets, connected in a chosen topology, all mining the dev chain, with
//! a load of random signed transfers. Every node's events are stamped as they arrive; at the
//! end mining stops, the network is given a moment to agree, and the report says what
//! happened: blocks, stale blocks, reorgs, propagation delays, transaction latency and rate,
//! and whether every node ended on one tip.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use powchain_api::ApiEvent;
use powchain_chain::{Amount, BlockHash, Height, Keypair, Memo, MempoolConfig, UnsignedTransfer};
use powchain_node::driver::{self, DriverConfig, Handle, bind_unix};
use powchain_node::miner::MinerConfig;
use powchain_node::store::RedbStore;
use powchain_protocol::{Command, Event, Node, NodeConfig};
use powchain_sim::report::{
    Report, TipReport, TreeBlock, percentiles, round3, stale_rate, tree_svg,
};
use powchain_sim::scenario::{Span, parse_span};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::node::rpc::{Rpc, RpcSetting};

/// Flags of `powchain devnet`.
#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Nodes (2..=64).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// `tcp` or `unix`.
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// `line`, `ring`, `full` or `random:K` (each node dials K random others).
    #[arg(long, default_value = "ring")]
    topology: String,
    /// The chain: a preset (`dev`, `seed`, or `load` with 10,000 funded accounts and large
    /// blocks) or a chain spec file.
    #[arg(long, default_value = "dev")]
    chain: String,
    /// Random signed transfers submitted per second, across the network.
    #[arg(long, default_value_t = 2.0)]
    tx_rate: f64,
    /// How long to run (`90s`, `5m`, `1h`); without it, until Ctrl-C.
    #[arg(long)]
    duration: Option<String>,
    /// Where the nodes' databases go (default: a temporary directory, removed at the end).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Draw the block tree (forks included) as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Seed for the topology and the transfers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve no HTTP API (by default each node serves one on loopback: node 0 on port 8645
    /// when it is free, the others on free ports; the explorer page is at `/`).
    #[arg(long)]
    no_api: bool,
}

/// Parses `90`, `90s`, `5m`, `1h` (the simulator's duration syntax), up to a week.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let span = parse_span(text).map_err(anyhow::Error::msg)?;
    if !(Span::from_ms(100)..=Span::from_secs(7 * 86_400)).contains(&span) {
        bail!("a duration between 0.1 s and a week, please: {text:?}");
    }
    Ok(Duration::from_micros(span.0))
}

/// Which nodes each node dials.
fn topology(name: &str, nodes: usize, rng: &mut ChaCha8Rng) -> anyhow::Result<Vec<Vec<usize>>> {
    let mut dials = vec![Vec::new(); nodes];
    match name {
        "line" => (1..nodes).for_each(|i| dials[i].push(i - 1)),
        "ring" => (0..nodes).for_each(|i| dials[i].push((i + 1) % nodes)),
        "full" => (0..nodes).for_each(|i| dials[i].extend((0..i).collect::<Vec<_>>())),
        other => {
            let Some(k) = other
                .strip_prefix("random:")
                .and_then(|k| k.parse::<usize>().ok())
            else {
                bail!("--topology is line, ring, full or random:K, not {other:?}");
            };
            let k = k.clamp(1, nodes - 1);
            for (i, targets) in dials.iter_mut().enumerate() {
                while targets.len() < k {
                    let target = rng.random_range(0..nodes);
                    if target != i && !targets.contains(&target) {
                        targets.push(target);
                    }
                }
            }
        }
    }
    Ok(dials)
}

/// Runs the devnet.
pub fn run(args: &DevnetArgs) -> anyhow::Result<()> {
    if !(2..=64).contains(&args.nodes) {
        bail!("--nodes must be between 2 and 64, got {}", args.nodes);
    }
    if !(0.0..=1_000.0).contains(&args.tx_rate) {
        bail!("--tx-rate must be between 0 and 1000 per second");
    }
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    let unix = match args.transport.as_str() {
        "tcp" => false,
        "unix" => true,
        other => bail!("--transport is tcp or unix, not {other:?}"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let dials = topology(&args.topology, args.nodes, &mut rng)?;
    // Without --datadir, a private directory of a random name made exclusively (so nobody
    // can have created it first), removed on every way out when `_temporary` is dropped.
    let (datadir, _temporary) = match &args.datadir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            (dir.clone(), None)
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("powchain-devnet-")
                .tempdir()
                .context("cannot create a private directory in the temp directory")?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    // Nodes commit blocks on the runtime's threads: give them room beside the miners.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((args.nodes + 2).min(32))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(devnet(args, duration, unix, dials, &datadir, rng))
}

struct Running {
    handle: Handle<RedbStore>,
    api: Option<Rpc>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Node<RedbStore>>,
}

async fn devnet(
    args: &DevnetArgs,
    duration: Option<Duration>,
    unix: bool,
    dials: Vec<Vec<usize>>,
    datadir: &std::path::Path,
    mut rng: ChaCha8Rng,
) -> anyhow::Result<()> {
    let spec = crate::load_spec(&args.chain, None)?;
    // The random transfers move coins among the first ten dev accounts.
    let senders = spec.dev_accounts.map_or(0, |dev| dev.count).min(10);
    if args.tx_rate > 0.0 && senders < 2 {
        bail!(
            "chain {:?} funds fewer than two dev accounts, so devnet has no one to send \
             transfers: use --tx-rate 0, or a chain with dev accounts",
            spec.name
        );
    }
    let count = args.nodes;
    // Bind every listener first, so every address is known before anyone dials.
    let mut configs = Vec::new();
    let mut addresses = Vec::new();
    for index in 0..count {
        let mut config = DriverConfig::new();
        config.miner = Some(MinerConfig {
            threads: 1,
            ..MinerConfig::detect()
        });
        let address = if unix {
            let path = datadir.join(format!("node.{index}"));
            config.unix = Some(bind_unix(&path)?);
            path.to_string_lossy().into_owned()
        } else {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let address = listener.local_addr()?.to_string();
            config.tcp = Some(listener);
            address
        };
        configs.push(config);
        addresses.push(address);
    }
    println!(
        "devnet: {count} nodes on {} ({} topology), chain \"dev\", {} transfers/s, datadir {}",
        if unix { "unix sockets" } else { "loopback TCP" },
        args.topology,
        args.tx_rate,
        datadir.display()
    );
    let (stamped_sender, mut stamped) = mpsc::unbounded_channel::<(usize, Instant, Event)>();
    let mut nodes = Vec::new();
    for (index, driver_config) in configs.into_iter().enumerate() {
        let db = datadir.join(format!("node-{index}.redb"));
        let store = RedbStore::open(&db)?;
        let book = Box::new(store.addresses());
        let chain = crate::open_chain(spec.clone(), store, &db)?;
        let mut config = NodeConfig::new(rng.random());
        config.listen = Some(addresses[index].clone());
        config.number = u32::try_from(index).ok();
        config.outbound_target = dials[index].len();
        config.miner_address = Some(Keypair::dev(index as u64 % 10).address());
        config.mempool = MempoolConfig::for_chain(&spec);
        let mut node = Node::new(config, chain, rng.random()).with_address_store(book)?;
        for target in &dials[index] {
            node.add_address(&addresses[*target]);
        }
        let (handle, mut events, stop, task) = driver::spawn(node, driver_config);
        // Each node's API keeps its cookie and address files in a directory of its own, which
        // the clients take as --datadir.
        let api = if args.no_api {
            None
        } else {
            let dir = datadir.join(format!("node-{index}"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Rpc::start(
                RpcSetting::Default,
                false,
                &dir,
                handle.clone(),
                spec.clone(),
            )
            .await?
        };
        let sender = stamped_sender.clone();
        let api_events = api.as_ref().map(|api| api.events.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Some(api) = &api_events {
                    ApiEvent::publish(api, &event);
                }
                if sender.send((index, Instant::now(), event)).is_err() {
                    return;
                }
            }
        });
        match &api {
            Some(api) => println!(
                "  node {index}: {}   explorer http://{}/   (clients: --datadir {})",
                addresses[index],
                api.address,
                datadir.join(format!("node-{index}")).display()
            ),
            None => println!("  node {index}: {}", addresses[index]),
        }
        nodes.push(Running {
            handle,
            api,
            stop,
            task,
        });
    }
    drop(stamped_sender);
    println!(
        "  attach another node with: powchain node --ephemeral --peers {}",
        addresses[0]
    );
    for node in &nodes {
        node.handle.command(Command::Automine(true)).await;
    }
    let started = Instant::now();
    let mut metrics = Metrics::default();
    let mut status = tokio::time::interval(Duration::from_secs(2));
    let mut load = tokio::time::interval(Duration::from_secs_f64(1.0 / args.tx_rate.max(0.001)));
    let stop = crate::node::stop_signal();
    tokio::pin!(stop);
    let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            Some((index, at, event)) = stamped.recv() => metrics.record(index, at, event),
            _ = load.tick(), if args.tx_rate > 0.0 => {
                submit_transfer(&nodes, senders, &mut rng, &mut metrics).await;
            }
            _ = status.tick() => print_status(&nodes, &metrics, started).await,
            _ = &mut deadline => break,
            _ = &mut stop => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("stopping the miners and letting the network agree…");
    for node in &nodes {
        node.handle.command(Command::Automine(false)).await;
    }
    let settle = Instant::now();
    let mut nudged = false;
    let converged = loop {
        while let Ok((index, at, event)) = stamped.try_recv() {
            metrics.record(index, at, event);
        }
        let now_tips = tips(&nodes).await;
        // A node whose driver stopped answers nothing: that is not agreement.
        if now_tips.iter().all(|tip| tip.1 != BlockHash::ZERO)
            && now_tips.windows(2).all(|pair| pair[0].1 == pair[1].1)
        {
            break true;
        }
        // Branches of equal work never resolve on their own: one more block settles them.
        if !nudged && settle.elapsed() > Duration::from_secs(2) {
            nudged = true;
            let before = now_tips[0].0;
            nodes[0].handle.command(Command::Automine(true)).await;
            let waiting = Instant::now();
            while tips(&nodes[..1]).await[0].0 <= before
                && waiting.elapsed() < Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            nodes[0].handle.command(Command::Automine(false)).await;
        }
        if settle.elapsed() > Duration::from_secs(20) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while let Ok((index, at, event)) = stamped.try_recv() {
        metrics.record(index, at, event);
    }
    let report = metrics.report(&nodes, seconds, converged).await;
    print!("{}", report.to_text("devnet report"));
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if let Some(path) = &args.svg {
        let svg = metrics.svg(&nodes).await;
        std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        println!("block tree drawn in {}", path.display());
    }
    for node in nodes {
        if let Some(api) = node.api {
            api.stop();
        }
        let _ = node.stop.send(true);
        let _ = node.task.await;
    }
    Ok(())
}

async fn tips(nodes: &[Running]) -> Vec<(u64, BlockHash)> {
    let mut tips = Vec::new();
    for node in nodes {
        let tip = node
            .handle
            .inspect(|node| {
                let tip = node.chain().tip();
                (tip.height.0, tip.hash)
            })
            .await
            .unwrap_or((0, BlockHash::ZERO));
        tips.push(tip);
    }
    tips
}

async fn submit_transfer(
    nodes: &[Running],
    senders: u64,
    rng: &mut ChaCha8Rng,
    metrics: &mut Metrics,
) {
    let index = rng.random_range(0..nodes.len());
    let from = rng.random_range(0..senders);
    let to = (from + rng.random_range(1..senders)) % senders;
    let amount = rng.random_range(1..1_000u64);
    let submitted = nodes[index]
        .handle
        .build_and_submit(move |node| {
            let key = Keypair::dev(from);
            let nonce = node.next_nonce(&key.address());
            UnsignedTransfer {
                to: Keypair::dev(to).address(),
                amount: Amount(amount),
                fee: node.chain().spec().fee_min,
                nonce,
                memo: Memo::default(),
            }
            .sign(&key, &node.chain().chain_id())
        })
        .await
        .and_then(Result::ok);
    if let Some(id) = submitted {
        metrics.submitted.insert(id, Instant::now());
    }
}

async fn print_status(nodes: &[Running], metrics: &Metrics, started: Instant) {
    let mut line = format!("[{:>5.0}s]", started.elapsed().as_secs_f64());
    for (index, node) in nodes.iter().enumerate() {
        let summary = tokio::time::timeout(
            Duration::from_millis(500),
            node.handle.inspect(|node| {
                let tip = node.chain().tip();
                (
                    tip.height.0,
                    // Past the zeros every block shares: digits that change with the tip.
                    tip.hash.distinctive(6),
                    node.peers().len(),
                    node.mempool().len(),
                )
            }),
        )
        .await
        .ok()
        .flatten();
        if let Some((height, hash, peers, mempool)) = summary {
            line.push_str(&format!(" | n{index} h{height} {hash} p{peers} m{mempool}"));
        }
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    line.push_str(&format!(
        " || {:.0} blocks/min, {} reorgs",
        metrics.mined.len() as f64 / minutes.max(1e-9),
        metrics.reorgs
    ));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    if std::io::stdout().is_terminal() {
        let _ = out.flush();
    }
}

/// What the event streams told us.
#[derive(Default)]
struct Metrics {
    /// Block -> (miner, when it accepted its own block, height).
    mined: HashMap<BlockHash, (usize, Instant, Height)>,
    /// (node, tip) -> when that node moved to it.
    arrivals: Vec<(usize, BlockHash, Instant)>,
    reorgs: usize,
    deepest_reorg: usize,
    submitted: HashMap<powchain_chain::TxId, Instant>,
}

impl Metrics {
    fn record(&mut self, index: usize, at: Instant, event: Event) {
        match event {
            Event::Mined { hash, height, .. } => {
                self.mined.insert(hash, (index, at, height));
                self.arrivals.push((index, hash, at));
            }
            Event::TipChanged {
                hash, disconnected, ..
            } => {
                self.arrivals.push((index, hash, at));
                if disconnected > 0 {
                    self.reorgs += 1;
                    self.deepest_reorg = self.deepest_reorg.max(disconnected);
                }
            }
            _ => {}
        }
    }

    async fn report(&self, nodes: &[Running], seconds: f64, converged: bool) -> Report {
        let final_tips = tips(nodes).await;
        // The best chain of node 0, with the blocks' transactions.
        let best: Vec<(BlockHash, Vec<powchain_chain::TxId>)> = nodes[0]
            .handle
            .inspect(|node| {
                let chain = node.chain();
                (1..=chain.tip().height.0)
                    .filter_map(|h| chain.block_at(Height(h)).ok().flatten())
                    .map(|block| (block.hash(), block.txs.iter().map(|tx| tx.id()).collect()))
                    .collect()
            })
            .await
            .unwrap_or_default();
        let on_best: HashMap<BlockHash, usize> = best
            .iter()
            .enumerate()
            .map(|(i, (hash, _))| (*hash, i))
            .collect();
        let stale = self
            .mined
            .keys()
            .filter(|hash| !on_best.contains_key(hash))
            .count();
        // Propagation: from the miner accepting its block to each other node moving to it.
        let mut delays = Vec::new();
        let mut first_arrival: HashMap<(usize, BlockHash), Instant> = HashMap::new();
        for (index, hash, at) in &self.arrivals {
            first_arrival.entry((*index, *hash)).or_insert(*at);
        }
        for (hash, (miner, mined_at, _)) in &self.mined {
            for index in 0..nodes.len() {
                if index == *miner {
                    continue;
                }
                if let Some(at) = first_arrival.get(&(index, *hash)) {
                    delays.push(at.saturating_duration_since(*mined_at).as_secs_f64() * 1_000.0);
                }
            }
        }
        // Confirmation: from submission to the mining of the block that holds the transfer.
        let mut confirmations = Vec::new();
        for (hash, ids) in &best {
            let Some((_, mined_at, _)) = self.mined.get(hash) else {
                continue;
            };
            for id in ids {
                if let Some(submitted) = self.submitted.get(id) {
                    confirmations.push(
                        mined_at.saturating_duration_since(*submitted).as_secs_f64() * 1_000.0,
                    );
                }
            }
        }
        let blocks_mined = self.mined.len();
        Report {
            nodes: nodes.len(),
            seconds: round3(seconds),
            blocks_mined,
            stale_blocks: stale,
            stale_rate: stale_rate(stale, blocks_mined),
            reorgs: self.reorgs,
            deepest_reorg: self.deepest_reorg,
            propagation_ms: percentiles(&mut delays),
            tx_submitted: self.submitted.len(),
            tx_confirmed: confirmations.len(),
            tx_confirmation_ms: percentiles(&mut confirmations),
            tx_per_sec: confirmations.len() as f64 / seconds.max(1e-9),
            converged,
            tips: final_tips
                .iter()
                .enumerate()
                .map(|(node, (height, hash))| TipReport {
                    node,
                    height: *height,
                    hash: hash.to_string(),
                })
                .collect(),
        }
    }

    /// The block tree: the best chain on one row, stale blocks greyed below it.
    async fn svg(&self, nodes: &[Running]) -> String {
        let mined: Vec<(BlockHash, usize, u64)> = self
            .mined
            .iter()
            .map(|(hash, (miner, _, height))| (*hash, *miner, height.0))
            .collect();
        let blocks: Vec<TreeBlock> = nodes[0]
            .handle
            .inspect(move |node| {
                let chain = node.chain();
                mined
                    .iter()
                    .filter_map(|(hash, miner, height)| {
                        let entry = chain.tree().get(hash)?;
                        Some(TreeBlock {
                            hash: *hash,
                            parent: entry.header.prev_hash,
                            height: *height,
                            miner: *miner,
                            best: chain.tree().is_on_best(hash),
                        })
                    })
                    .collect()
            })
            .await
            .unwrap_or_default();
        tree_svg("powchain devnet", &blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_topologies() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("0").is_err());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            topology("line", 3, &mut rng).unwrap(),
            vec![vec![], vec![0], vec![1]]
        );
        assert_eq!(
            topology("ring", 3, &mut rng).unwrap(),
            vec![vec![1], vec![2], vec![0]]
        );
        let random = topology("random:2", 5, &mut rng).unwrap();
        assert!(
            random
                .iter()
                .enumerate()
                .all(|(i, d)| d.len() == 2 && !d.contains(&i))
        );
        assert!(topology("star", 3, &mut rng).is_err());
    }
}
