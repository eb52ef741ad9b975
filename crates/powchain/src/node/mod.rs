//! `powchain node`: a node started the way either seed starts one, with the seed's
//! interactive session on stdin and the HTTP API (with the explorer page) on loopback.
//!
//! ```text
//!   stdin ──(thread: rustyline on a terminal, plain lines otherwise)──> session ──> Handle
//!   HTTP ──> rpc.rs (axum, powchain-api) ─────────────────────────────────────────> Handle
//!   driver events ──> one printed line each, and the API's event stream;
//!                     every 10 s: "N peers known, M connected"
//! ```

pub(crate) mod rpc;
mod session;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use powchain_api::ApiEvent;
use powchain_chain::{
    Address, Amount, BlockHash, Chain, ChainConfig, ChainSpec, Height, Keypair, MemStore, Memo,
    Store, TxId, UnsignedTransfer,
};
use powchain_node::driver::{self, DriverConfig, Handle, bind_unix};
use powchain_node::miner::MinerConfig;
use powchain_node::store::RedbStore;
use powchain_node::wallet::Wallet;
use powchain_protocol::{AddressStore, Command, Event, Node, NodeConfig, PeerId};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use rpc::{Rpc, RpcSetting};
use session::{AccountRef, HELP, Line, PeerRef};

/// How many recent blocks `tx` looks through for a confirmed transaction.
const TX_SEARCH_BLOCKS: u64 = 10_000;

/// Flags of `powchain node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Seed 000's node number: listen on the unix socket `node.N` in --socket-dir.
    #[arg(short = 'n', long = "id")]
    id: Option<u32>,
    /// Where the unix sockets of numbered nodes live.
    #[arg(long)]
    socket_dir: Option<PathBuf>,
    /// Listen for TCP peers on `ip:port` (seed 003's port).
    #[arg(long)]
    listen: Option<String>,
    /// Peers to connect to, comma-separated `ip:port` or socket paths (seed 003's list).
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// The chain database file (created with genesis when absent).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Where the database and the wallet live (default: powchain-data, or powchain-data/node-N).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Keep nothing on disk.
    #[arg(long)]
    ephemeral: bool,
    /// `dev`, `seed`, or a TOML spec file.
    #[arg(long, default_value = "dev")]
    chain: String,
    /// A fixed difficulty in leading zero bits (1..=80), the seed's setting.
    #[arg(long)]
    difficulty: Option<u64>,
    /// Mine continuously, empty blocks included (seed 003).
    #[arg(long)]
    mine: bool,
    /// Mining threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    miner_threads: Option<u64>,
    /// Who mined blocks pay: a dev account number or an address (default: dev account 0).
    #[arg(long)]
    miner_address: Option<String>,
    /// Ignore stdin: run until SIGINT or SIGTERM.
    #[arg(long)]
    no_repl: bool,
    /// Stop when stdin ends, even when serving peers.
    #[arg(long)]
    exit_on_eof: bool,
    /// Log level for stderr (error, warn, info, debug, trace).
    #[arg(long, default_value = "warn")]
    log: String,
    /// The HTTP API and explorer: `ip:port`, or `off` (default: 127.0.0.1:8645, or a free
    /// port when that one is taken).
    #[arg(long, value_name = "ADDR|off")]
    rpc: Option<String>,
    /// Allow --rpc to bind an address other than loopback.
    #[arg(long)]
    rpc_allow_remote: bool,
}

/// Runs `powchain node`.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let levels = ["error", "warn", "info", "debug", "trace", "off"];
    if !levels.contains(&args.log.as_str()) && !args.log.contains('=') {
        bail!(
            "--log is one of {} (or a filter like powchain_node=debug)",
            levels.join(", ")
        );
    }
    if args.ephemeral && (args.db.is_some() || args.datadir.is_some()) {
        bail!("--ephemeral keeps nothing on disk: leave out --db and --datadir");
    }
    let rpc = RpcSetting::parse(args.rpc.as_deref())?;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {:?} is not a log level", args.log))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let spec = crate::load_spec(&args.chain, args.difficulty)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.ephemeral {
        let chain = Chain::open(spec, MemStore::new(), ChainConfig::default())?;
        runtime.block_on(serve(args, rpc, chain, None, None))
    } else {
        // The wallet lives next to the database: in --datadir, beside --db, or in powchain-data.
        let beside_db = args.db.as_ref().and_then(|db| db.parent()).map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_path_buf()
            }
        });
        let datadir = args
            .datadir
            .clone()
            .or(beside_db)
            .unwrap_or_else(|| default_datadir(args.id));
        std::fs::create_dir_all(&datadir)
            .with_context(|| format!("cannot create {}", datadir.display()))?;
        let db = args
            .db
            .clone()
            .unwrap_or_else(|| datadir.join("chain.redb"));
        let store = RedbStore::open(&db)?;
        let addresses: Box<dyn AddressStore> = Box::new(store.addresses());
        let chain = Chain::open(spec, store, ChainConfig::default())?;
        println!(
            "data: database {}, wallet {}",
            db.display(),
            datadir.join("wallet.keys").display()
        );
        runtime.block_on(serve(args, rpc, chain, Some(addresses), Some(datadir)))
    }
}

/// Where a node keeps its files without --datadir or --db: `powchain-data`, or
/// `powchain-data/node-N` for node N (the clients look there too).
pub(crate) fn default_datadir(id: Option<u32>) -> PathBuf {
    match id {
        Some(id) => PathBuf::from("powchain-data").join(format!("node-{id}")),
        None => PathBuf::from("powchain-data"),
    }
}

fn socket_dir(args: &NodeArgs) -> PathBuf {
    args.socket_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("powchain-nodes"))
}

fn socket_path(dir: &Path, id: u32) -> String {
    dir.join(format!("node.{id}"))
        .to_string_lossy()
        .into_owned()
}

fn resolve_account(spec: &ChainSpec, who: &AccountRef) -> Result<Address, String> {
    match who {
        AccountRef::Dev(index) => spec.dev_address(*index).ok_or_else(|| {
            let count = spec.dev_accounts.map_or(0, |d| d.count);
            format!(
                "there is no dev account {index}: this chain has accounts 0 to {}",
                count.saturating_sub(1)
            )
        }),
        AccountRef::Address(hex) => hex.parse().map_err(|e| format!("{e}")),
    }
}

async fn serve<S: Store + Send + 'static>(
    args: NodeArgs,
    rpc: RpcSetting,
    chain: Chain<S>,
    addresses: Option<Box<dyn AddressStore>>,
    datadir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let spec = chain.spec().clone();
    let sockets = socket_dir(&args);
    let mut driver_config = DriverConfig::new();
    let mut listen = None;
    let mut where_to_connect = Vec::new();
    if let Some(id) = args.id {
        let path = socket_path(&sockets, id);
        driver_config.unix =
            Some(bind_unix(Path::new(&path)).with_context(|| format!("cannot listen on {path}"))?);
        where_to_connect.push(format!("ConnectTo {id} (socket {path})"));
        listen = Some(path);
    }
    if let Some(address) = &args.listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr()?.to_string();
        driver_config.tcp = Some(listener);
        where_to_connect.push(format!("--peers {bound}"));
        listen = Some(bound);
    }
    let mut miner = MinerConfig::detect();
    if let Some(threads) = args.miner_threads {
        miner.threads = usize::try_from(threads)?;
    }
    driver_config.miner = Some(miner);
    let mut config = NodeConfig::new(rand::random());
    config.listen = listen;
    config.outbound_target = config.outbound_target.max(args.peers.len());
    if let Some(miner) = &args.miner_address {
        let who = session::parse(&format!("balance {miner}"))
            .ok()
            .and_then(|line| match line {
                Line::Balance(who) => Some(who),
                _ => None,
            })
            .with_context(|| format!("--miner-address {miner:?} is not an account"))?;
        config.miner_address = Some(resolve_account(&spec, &who).map_err(anyhow::Error::msg)?);
    }
    let mut node = Node::new(config, chain, rand::random());
    if let Some(addresses) = addresses {
        node = node.with_address_store(addresses)?;
    }
    for peer in &args.peers {
        node.add_address(peer);
    }
    let tip = node.chain().tip();
    println!(
        "chain {:?} (genesis {}), tip {} at height {}",
        spec.name,
        spec.genesis_hash().short(16),
        tip.hash.short(16),
        tip.height
    );
    if where_to_connect.is_empty() {
        println!("not listening: other nodes cannot connect to this one (use -n N or --listen)");
    } else {
        println!("others connect with: {}", where_to_connect.join(", or "));
    }
    let (handle, events, shutdown, task) = driver::spawn(node, driver_config);
    // An ephemeral node keeps its cookie in a private directory of its own, gone at exit.
    let ephemeral_dir = match (&datadir, rpc) {
        (None, RpcSetting::Default | RpcSetting::At(_)) => Some(private_temp_dir()?),
        _ => None,
    };
    let rpc_dir = datadir.clone().or_else(|| ephemeral_dir.clone());
    let api = match &rpc_dir {
        Some(dir) => {
            Rpc::start(
                rpc,
                args.rpc_allow_remote,
                dir,
                handle.clone(),
                spec.clone(),
            )
            .await?
        }
        None => None,
    };
    if let Some(api) = &api {
        println!(
            "API and explorer on http://{} (token in {})",
            api.address,
            api.cookie.display()
        );
        if let Some(dir) = &ephemeral_dir {
            println!("clients reach this node with --datadir {}", dir.display());
        }
    }
    if args.mine {
        handle.command(Command::Automine(true)).await;
    }
    tokio::spawn(print_events(
        events,
        handle.clone(),
        api.as_ref().map(|api| api.events.clone()),
    ));
    let serving = args.id.is_some() || args.listen.is_some() || !args.peers.is_empty();
    let lines = if args.no_repl {
        None
    } else {
        Some(read_stdin())
    };
    let mut session = Session {
        handle: handle.clone(),
        spec,
        sockets: sockets.clone(),
        wallet: datadir.map(|dir| dir.join("wallet.keys")),
    };
    let stop = stop_signal();
    tokio::pin!(stop);
    if let Some(mut lines) = lines {
        loop {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => {
                        if !session.execute(&line).await {
                            break;
                        }
                    }
                    None => {
                        if args.exit_on_eof || !serving {
                            break;
                        }
                        // stdin is gone but peers are served: run as a daemon from here.
                        (&mut stop).await;
                        break;
                    }
                },
                _ = &mut stop => break,
            }
        }
    } else {
        stop.await;
    }
    println!("shutting down: saying goodbye to peers");
    if let Some(api) = api {
        api.stop();
    }
    if let Some(dir) = ephemeral_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = shutdown.send(true);
    let _ = task.await;
    if let Some(id) = args.id {
        // Leave no socket behind for others to dial.
        let _ = std::fs::remove_file(socket_path(&sockets, id));
    }
    Ok(())
}

/// A new directory only this user can enter, for an ephemeral node's cookie.
fn private_temp_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "powchain-node-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Reads stdin on its own thread: with line editing and history on a terminal, plain lines
/// (no prompt, no escape codes) otherwise.
fn read_stdin() -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel(64);
    std::thread::spawn(move || {
        if std::io::stdin().is_terminal()
            && let Ok(mut editor) = rustyline::DefaultEditor::new()
        {
            loop {
                let line = match editor.readline("powchain> ") {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        line
                    }
                    // The terminal is in raw mode, so Ctrl-C arrives here, not as SIGINT.
                    Err(rustyline::error::ReadlineError::Interrupted) => "quit".to_owned(),
                    Err(_) => return,
                };
                if sender.blocking_send(line).is_err() {
                    return;
                }
            }
        }
        let mut buffer = Vec::new();
        let mut stdin = std::io::stdin().lock();
        loop {
            buffer.clear();
            // Bounded: a line longer than the limit is cut and reported by the parser.
            match std::io::BufRead::read_until(
                &mut std::io::Read::take(&mut stdin, session::LINE_BYTES_MAX as u64 + 1),
                b'\n',
                &mut buffer,
            ) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if buffer.len() > session::LINE_BYTES_MAX && buffer.last() != Some(&b'\n') {
                        // Over the limit: the rest of this line is dropped, never run.
                        let mut rest = Vec::new();
                        loop {
                            rest.clear();
                            match std::io::BufRead::read_until(
                                &mut std::io::Read::take(&mut stdin, 64 * 1024),
                                b'\n',
                                &mut rest,
                            ) {
                                Ok(0) | Err(_) => break,
                                Ok(_) if rest.last() == Some(&b'\n') => break,
                                Ok(_) => {}
                            }
                        }
                    }
                    let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
                    if sender.blocking_send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

/// Prints each event as one line, and seed 003's peer report every 10 s. While far behind
/// on a terminal, sync progress is a progress bar instead of lines.
async fn print_events<S: Store + 'static>(
    mut events: mpsc::Receiver<Event>,
    handle: Handle<S>,
    api: Option<broadcast::Sender<ApiEvent>>,
) {
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    let terminal = std::io::stdout().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::SyncProgress { height, remaining, blocks_per_sec }) if terminal => {
                    let bar = bar.get_or_insert_with(|| {
                        let bar = indicatif::ProgressBar::new(0);
                        bar.set_style(
                            indicatif::ProgressStyle::with_template(
                                "syncing [{bar:40}] {pos}/{len} blocks {msg}",
                            )
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                        );
                        bar
                    });
                    bar.set_length(height.0 + remaining as u64);
                    bar.set_position(height.0);
                    bar.set_message(format!("{blocks_per_sec:.0} blocks/s"));
                }
                Some(event) => {
                    if let Some(api) = &api {
                        ApiEvent::publish(api, &event);
                    }
                    if let (Some(done), Event::TipChanged { .. }) = (&bar, &event) {
                        let caught_up = handle
                            .inspect(|node| node.download_queue_len() == 0)
                            .await
                            .unwrap_or(true);
                        if caught_up {
                            done.finish_and_clear();
                            bar = None;
                        } else {
                            // Far behind: the bar speaks for every block.
                            continue;
                        }
                    }
                    if let Some(line) = describe(&event) {
                        println!("{line}");
                    }
                }
                None => return,
            },
            _ = report.tick() => {
                let Some((known, connected)) = handle
                    .inspect(|node| (node.addresses().len(), node.peers().len()))
                    .await
                else {
                    return;
                };
                println!("{known} peers known, {connected} connected");
            }
        }
    }
}

fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::PeerReady {
            peer,
            address,
            height,
            ..
        } => format!("peer {peer} connected: {address} (height {height})"),
        Event::PeerGone {
            peer,
            address,
            reason,
        } => format!("peer {peer} disconnected: {address}: {reason}"),
        Event::ConnectFailed { reason, .. } => reason.clone(),
        Event::EchoRequested { peer, message } => format!("echo from peer {peer}: {message}"),
        Event::EchoReplied { peer, message } => format!("echo reply from peer {peer}: {message}"),
        Event::AddressesLearned { peer, new } => {
            format!("peer {peer} told us of {new} new addresses")
        }
        Event::TipChanged {
            hash,
            height,
            disconnected,
            connected,
            from,
        } => {
            let source = from.map_or("here".to_string(), |peer| format!("from peer {peer}"));
            if *disconnected > 0 {
                format!(
                    "reorg: {disconnected} blocks out, {connected} in; tip {} at height {height} ({source})",
                    hash.short(16)
                )
            } else {
                format!("new tip {} at height {height} ({source})", hash.short(16))
            }
        }
        Event::Mined { hash, height, txs } => {
            format!(
                "mined block {height} {} with {txs} transactions",
                hash.short(16)
            )
        }
        Event::NothingToMine => {
            "WARNING: empty pool of pending transactions, nothing to mine".to_string()
        }
        Event::TransferAccepted {
            id,
            from: Some(peer),
        } => {
            format!("transaction {} from peer {peer}", id.short(16))
        }
        Event::TransferAccepted { from: None, .. } => return None,
        Event::TransferRefused { error } => format!("transaction refused: {error}"),
        Event::TransferDropped { id, reason } => {
            format!("transaction {} left the mempool: {reason}", id.short(16))
        }
        Event::SyncProgress {
            height,
            remaining,
            blocks_per_sec,
        } => format!(
            "syncing: height {height}, {remaining} blocks to go, {blocks_per_sec:.0} blocks/s"
        ),
        Event::StoreFailed(error) => format!("ERROR: the database failed: {error}"),
    })
}

/// The session's state: how to reach the node, and what names mean.
struct Session<S: Store> {
    handle: Handle<S>,
    spec: ChainSpec,
    sockets: PathBuf,
    wallet: Option<PathBuf>,
}

impl<S: Store + 'static> Session<S> {
    /// Runs one line and prints its answer; false on `quit`.
    async fn execute(&mut self, line: &str) -> bool {
        match session::parse(line) {
            Ok(Line::Quit) => return false,
            Ok(parsed) => match self.answer(parsed).await {
                Ok(Some(text)) => println!("{text}"),
                Ok(None) => {}
                Err(error) => println!("error: {error}"),
            },
            Err(error) => println!("error: {error}"),
        }
        true
    }

    fn address_of(&self, peer: &PeerRef) -> String {
        match peer {
            PeerRef::Id(id) => socket_path(&self.sockets, *id),
            PeerRef::Address(address) => address.clone(),
        }
    }

    async fn peer_id(&self, peer: &PeerRef) -> Result<PeerId, String> {
        let address = self.address_of(peer);
        let lookup = address.clone();
        let found = self
            .handle
            .inspect(move |node| node.peer_by_address(&lookup))
            .await
            .flatten();
        found.ok_or_else(|| match peer {
            PeerRef::Id(id) => format!("not connected to node {id}; type ConnectTo {id} first"),
            PeerRef::Address(_) => {
                format!("not connected to {address}; type connect {address} first")
            }
        })
    }

    async fn answer(&mut self, line: Line) -> Result<Option<String>, String> {
        let stopped = || "the node has stopped".to_string();
        match line {
            Line::Empty | Line::Quit => Ok(None),
            Line::Help => Ok(Some(
                HELP.iter()
                    .map(|(syntax, example)| format!("  {syntax:<45} e.g. {example}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )),
            Line::Connect(peer) => {
                let address = self.address_of(&peer);
                // Nodes remove their socket when they stop; one killed outright leaves it, and
                // then the dial itself reports that nothing answers.
                if let PeerRef::Id(id) = peer
                    && !Path::new(&address).exists()
                {
                    return Err(format!("node {id} is not active (no socket at {address})"));
                }
                self.handle.command(Command::Connect(address.clone())).await;
                Ok(Some(format!("connecting to {address}")))
            }
            Line::Echo(peer, message) => {
                let id = self.peer_id(&peer).await?;
                self.handle
                    .command(Command::Echo { peer: id, message })
                    .await;
                Ok(Some("echo sent".into()))
            }
            Line::Sync(peer) => {
                let id = self.peer_id(&peer).await?;
                self.handle.command(Command::SyncWith(id)).await;
                Ok(Some("asked for its peers and its chain".into()))
            }
            Line::Send {
                from,
                to,
                amount,
                fee,
            } => {
                let to = resolve_account(&self.spec, &to)?;
                let key = self.key_for(&from)?;
                let fee = Amount(fee.unwrap_or(self.spec.fee_min.0));
                let chain_id = self.spec.genesis_hash();
                let result = self
                    .handle
                    .build_and_submit(move |node| {
                        let nonce = node.next_nonce(&key.address());
                        UnsignedTransfer {
                            to,
                            amount: Amount(amount),
                            fee,
                            nonce,
                            memo: Memo::default(),
                        }
                        .sign(&key, &chain_id)
                    })
                    .await
                    .ok_or_else(stopped)?;
                let id: TxId = result.map_err(|e| e.to_string())?;
                Ok(Some(format!(
                    "transaction {id} of {amount} coins accepted into the mempool"
                )))
            }
            Line::Mine => {
                self.handle.command(Command::MineOnce).await;
                Ok(None)
            }
            Line::Balance(who) => {
                let address = resolve_account(&self.spec, &who)?;
                let (confirmed, pending) = self
                    .handle
                    .inspect(move |node| {
                        let confirmed = node
                            .chain()
                            .account(&address)
                            .ok()
                            .flatten()
                            .map(|a| a.balance);
                        let pending = node
                            .mempool()
                            .pending_balance(&address, confirmed.unwrap_or_default());
                        (confirmed, pending)
                    })
                    .await
                    .ok_or_else(stopped)?;
                let name = match who {
                    AccountRef::Dev(index) => index.to_string(),
                    AccountRef::Address(hex) => hex,
                };
                match (confirmed, pending) {
                    (Some(confirmed), pending) if pending != confirmed => Ok(Some(format!(
                        "Balance of {name}: {confirmed} (with pending transactions: {pending})"
                    ))),
                    (Some(confirmed), _) => Ok(Some(format!("Balance of {name}: {confirmed}"))),
                    (None, pending) if pending > Amount::ZERO => Ok(Some(format!(
                        "Balance of {name}: 0 (with pending transactions: {pending})"
                    ))),
                    (None, _) => Err(format!("account {name} doesn't exist on this chain")),
                }
            }
            Line::Peers => {
                let peers = self
                    .handle
                    .inspect(|node| node.peers())
                    .await
                    .ok_or_else(stopped)?;
                if peers.is_empty() {
                    return Ok(Some("no peers".into()));
                }
                Ok(Some(
                    peers
                        .into_iter()
                        .map(|(id, address, direction, node_id, height)| {
                            format!("peer {id}: {address} ({direction:?}, node {node_id:016x}, height {height})")
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                ))
            }
            Line::Chain => {
                let text = self
                    .handle
                    .inspect(|node| {
                        let chain = node.chain();
                        let tip = chain.tip();
                        let mut lines = vec![format!(
                            "tip {} at height {}, total work {}, difficulty {:.1} bits",
                            tip.hash,
                            tip.height,
                            tip.chain_work,
                            tip.header.target.difficulty_bits()
                        )];
                        for height in (tip.height.0.saturating_sub(4)..=tip.height.0).rev() {
                            if let Ok(Some(block)) = chain.block_at(Height(height)) {
                                lines.push(format!(
                                    "  {height:>6} {} {} txs",
                                    block.hash().short(16),
                                    block.txs.len()
                                ));
                            }
                        }
                        lines.join("\n")
                    })
                    .await
                    .ok_or_else(stopped)?;
                Ok(Some(text))
            }
            Line::Block(which) => {
                let text = self
                    .handle
                    .inspect(move |node| {
                        let chain = node.chain();
                        let block = match which.parse::<u64>() {
                            Ok(height) => chain.block_at(Height(height)),
                            Err(_) => match which.parse::<BlockHash>() {
                                Ok(hash) => chain.block(&hash),
                                Err(e) => {
                                    return Err(format!(
                                        "{which:?} is neither a height nor a block hash: {e}"
                                    ));
                                }
                            },
                        };
                        match block {
                            Ok(Some(block)) => Ok(format!(
                                "block {} {}\n  parent {}\n  time {} ms, nonce {}\n{}",
                                block.header.height,
                                block.hash(),
                                block.header.prev_hash.short(16),
                                block.header.time.0,
                                block.header.nonce,
                                block
                                    .txs
                                    .iter()
                                    .map(|tx| format!("  {} {tx}", tx.id().short(16)))
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            )),
                            Ok(None) => Err(format!("no block {which} on this node")),
                            Err(e) => Err(e.to_string()),
                        }
                    })
                    .await
                    .ok_or_else(stopped)??;
                Ok(Some(text))
            }
            Line::Tx(id) => {
                let id: TxId = id
                    .parse()
                    .map_err(|e| format!("a transaction id is 128 hex digits: {e}"))?;
                let text = self
                    .handle
                    .inspect(move |node| {
                        if let Some(transfer) = node.mempool().get(&id) {
                            return Ok(format!(
                                "pending: {} coins, fee {}, nonce {}",
                                transfer.amount, transfer.fee, transfer.nonce
                            ));
                        }
                        // No transaction index yet: look through the recent best chain.
                        let chain = node.chain();
                        let tip = chain.tip().height.0;
                        for height in (tip.saturating_sub(TX_SEARCH_BLOCKS)..=tip).rev() {
                            let Ok(Some(block)) = chain.block_at(Height(height)) else {
                                continue;
                            };
                            if let Some(tx) = block.txs.iter().find(|tx| tx.id() == id) {
                                return Ok(format!(
                                    "in block {height} ({} confirmations): {tx}",
                                    tip - height + 1
                                ));
                            }
                        }
                        Err(format!(
                            "transaction {} is neither pending nor in the last {TX_SEARCH_BLOCKS} blocks",
                            id.short(16)
                        ))
                    })
                    .await
                    .ok_or_else(stopped)??;
                Ok(Some(text))
            }
            Line::Mempool => {
                let text = self
                    .handle
                    .inspect(|node| {
                        let transfers = node.mempool().transfers();
                        let mut lines = vec![format!("{} pending transactions", transfers.len())];
                        for (id, transfer) in transfers.iter().take(20) {
                            lines.push(format!(
                                "  {} {} coins, fee {}, nonce {}",
                                id.short(16),
                                transfer.amount,
                                transfer.fee,
                                transfer.nonce
                            ));
                        }
                        lines.join("\n")
                    })
                    .await
                    .ok_or_else(stopped)?;
                Ok(Some(text))
            }
            Line::Automine(on) => {
                self.handle.command(Command::Automine(on)).await;
                Ok(Some(format!("automine {}", if on { "on" } else { "off" })))
            }
            Line::WalletNew => {
                let path = self
                    .wallet
                    .clone()
                    .ok_or("an --ephemeral node keeps no wallet")?;
                let mut wallet = Wallet::open(&path).map_err(|e| e.to_string())?;
                let key = Keypair::generate(&mut rand::rng());
                let address = key.address();
                wallet.add(key).map_err(|e| e.to_string())?;
                Ok(Some(format!("new key {address} in {}", path.display())))
            }
            Line::WalletList => {
                let path = self
                    .wallet
                    .clone()
                    .ok_or("an --ephemeral node keeps no wallet")?;
                let wallet = Wallet::open(&path).map_err(|e| e.to_string())?;
                if wallet.keys().is_empty() {
                    return Ok(Some("the wallet is empty; type wallet new".into()));
                }
                Ok(Some(
                    wallet
                        .keys()
                        .iter()
                        .map(|k| k.address().to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ))
            }
        }
    }

    /// The key that signs for `from`: a dev account, or an address in the wallet.
    fn key_for(&self, from: &AccountRef) -> Result<Keypair, String> {
        match from {
            AccountRef::Dev(index) => {
                resolve_account(&self.spec, from)?;
                Ok(Keypair::dev(*index))
            }
            AccountRef::Address(hex) => {
                let path = self
                    .wallet
                    .clone()
                    .ok_or("only dev accounts can send from an --ephemeral node")?;
                let wallet = Wallet::open(&path).map_err(|e| e.to_string())?;
                wallet
                    .keys()
                    .iter()
                    .find(|key| key.address().to_string() == *hex)
                    .cloned()
                    .ok_or_else(|| format!("the wallet {} has no key for {hex}", path.display()))
            }
        }
    }
}
