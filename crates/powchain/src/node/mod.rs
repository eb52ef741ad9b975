//! `powchain node`: a node started the way either seed starts one, with the seed's
//! interactive session on stdin and the HTTP API (with the explorer page) on loopback.
//!
//! ```text
//!   stdin ──(thread: rustyline on a terminal, plain lines otherwise)──> session ──> Handle
//!   HTTP ──> rpc.rs (axum, powchain-api) ─────────────────────────────────────────> Handle
//!   driver events ──> one printed line each, and the API's event stream;
//!                     every 10 s: "N peers known, M connected"
//! ```
//!
//! This file holds the flags, the storage and [`serve`], the steps from listeners to
//! shutdown; the session's lines are parsed in [`session`] and answered in [`commands`], one
//! file per group of commands; [`events`] prints the driver's events; [`rpc`] serves the API.

mod commands;
mod events;
pub(crate) mod rpc;
mod session;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use powchain_api::ApiEvent;
use powchain_chain::{Address, Chain, ChainConfig, ChainSpec, MemStore, Store};
use powchain_node::driver::{self, DriverConfig, Handle, bind_unix};
use powchain_node::mempool_file::{self, MEMPOOL_FILE};
use powchain_node::miner::MinerConfig;
use powchain_node::store::RedbStore;
use powchain_protocol::{AddressStore, Command, Node, NodeConfig};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use commands::Session;
use rpc::{Rpc, RpcSetting};
use session::{AccountRef, Line};

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
    /// Where the database, the wallet and the API's files live, locked by one node at a time
    /// (default: beside --db as FILE.data, or powchain-data, or powchain-data/node-N).
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
    /// Who mined blocks pay: a dev account number or an address (default: the first key of
    /// the node's wallet, or dev account 0 without one).
    #[arg(long)]
    miner_address: Option<String>,
    /// Download no block of a chain with less total work than this, in expected hashes
    /// (the "total work" `powchain status` prints). For joining a network
    /// whose chain you know: a fresh node then fetches nothing of a lighter fork.
    #[arg(long, value_name = "WORK", default_value_t = 0)]
    minimum_chain_work: u128,
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

/// The data directory of a database given alone: `a.redb` -> `a.data` beside it.
fn data_dir_beside(db: &Path) -> PathBuf {
    let stem = db.file_stem().unwrap_or(db.as_os_str());
    let mut name = stem.to_os_string();
    name.push(".data");
    db.with_file_name(name)
}

/// Takes the data directory's `.lock` (as bitcoind does): one node per directory, or the
/// second would overwrite the first's API address, cookie and wallet.
fn lock_data_dir(datadir: &Path) -> anyhow::Result<std::fs::File> {
    let path = datadir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is in use by another running node; give this one its own directory (--datadir DIR, or its own --db FILE), or stop the other first",
            datadir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
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
        let chain = Chain::open(spec, MemStore::indexed(), ChainConfig::default())?;
        runtime.block_on(serve(args, rpc, chain, None, None))
    } else {
        // The wallet and the API's files live in the data directory: --datadir, or one per
        // database beside it (`a.redb` -> `a.data/`, so nodes started in one directory with
        // their own --db never share them), or powchain-data.
        let beside_db = args.db.as_ref().map(|db| data_dir_beside(db));
        let datadir = args
            .datadir
            .clone()
            .or(beside_db)
            .unwrap_or_else(|| default_datadir(args.id));
        std::fs::create_dir_all(&datadir)
            .with_context(|| format!("cannot create {}", datadir.display()))?;
        // Held until the node stops: the lock goes with the process, however it ends.
        let _lock = lock_data_dir(&datadir)?;
        let db = args
            .db
            .clone()
            .unwrap_or_else(|| datadir.join("chain.redb"));
        let store = RedbStore::open(&db)?;
        let addresses: Box<dyn AddressStore> = Box::new(store.addresses());
        let chain = crate::open_chain(spec, store, &db)?;
        println!(
            "data: database {}, wallet {} (clients: --datadir {})",
            db.display(),
            datadir.join("wallet.keys").display(),
            datadir.display()
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

/// Where node N's unix socket is: --socket-dir, or `powchain-nodes` in the temp directory.
fn socket_dir(args: &NodeArgs) -> PathBuf {
    args.socket_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("powchain-nodes"))
}

/// Node N's unix socket in `dir`, the address that `ConnectTo N` dials.
fn socket_path(dir: &Path, id: u32) -> String {
    dir.join(format!("node.{id}"))
        .to_string_lossy()
        .into_owned()
}

/// The address an account names: a dev account of this chain, or an address as typed.
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

/// Runs the node until the session or a signal stops it, as a sequence of steps: the
/// listeners, the node, the driver, the API, the event printer, the session, the shutdown.
async fn serve<S: Store + Send + 'static>(
    args: NodeArgs,
    rpc: RpcSetting,
    chain: Chain<S>,
    addresses: Option<Box<dyn AddressStore>>,
    datadir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let spec = chain.spec().clone();
    let sockets = socket_dir(&args);
    let Listeners {
        driver: driver_config,
        listen,
        where_to_connect,
    } = bind_listeners(&args, &sockets).await?;
    let wallet = datadir.as_ref().map(|dir| dir.join("wallet.keys"));
    let mut node = build_node(&args, &spec, chain, addresses, listen, wallet.as_deref())?;
    print_start(&spec, &node, &where_to_connect);
    let mempool_file = datadir.as_ref().map(|dir| dir.join(MEMPOOL_FILE));
    if let Some(path) = &mempool_file {
        load_mempool(&mut node, path);
    }
    let (handle, events, shutdown, task) = driver::spawn(node, driver_config);
    let api = start_api(&args, rpc, datadir.as_deref(), &handle, &spec).await?;
    if args.mine {
        handle.command(Command::Automine(true)).await;
    }
    let printer = tokio::spawn(events::print(events, handle.clone(), api.events()));
    let mut session = Session {
        handle: handle.clone(),
        spec,
        sockets: sockets.clone(),
        wallet: datadir.map(|dir| dir.join("wallet.keys")),
    };
    run_session(&args, &mut session).await;
    let node = shut_down(&args, &sockets, api, shutdown, task).await?;
    // The driver is gone, so the printer ends once it has printed the last events (a
    // store failure's among them).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), printer).await;
    if let Some(path) = &mempool_file {
        save_mempool(&node, path);
    }
    match node.failure() {
        Some(error) => bail!(
            "the node stopped because its database failed: {error}\n\
             every block it announced before is in the file; check the disk, then the file \
             with `powchain check --db FILE`"
        ),
        None => Ok(()),
    }
}

/// Submits the transfers a clean shutdown saved (see `powchain_node::mempool_file`), each
/// checked again: the chain may have confirmed or spent them meanwhile. A file that cannot
/// be read is reported and left for the user; the node starts without it.
fn load_mempool<S: Store>(node: &mut Node<S>, path: &Path) {
    match mempool_file::load(path, node.chain().chain_id()) {
        Ok(transfers) if transfers.is_empty() => {}
        Ok(transfers) => {
            let count = transfers.len();
            let refused = transfers
                .into_iter()
                .filter(|transfer| {
                    node.submit_transfer(transfer.clone(), driver::now())
                        .is_err()
                })
                .count();
            println!(
                "mempool: {} pending transfers read from {} ({refused} no longer valid)",
                count - refused,
                path.display()
            );
        }
        Err(error) => {
            let aside = path.with_extension("dat.unreadable");
            let _ = std::fs::rename(path, &aside);
            eprintln!(
                "WARNING: the saved mempool was not read ({error}); it is kept as {}",
                aside.display()
            );
        }
    }
}

/// Saves the pending transfers for the next start, lowest nonce first.
fn save_mempool<S: Store>(node: &Node<S>, path: &Path) {
    let mut transfers: Vec<_> = node
        .mempool()
        .transfers()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    transfers.sort_by_key(|transfer| transfer.nonce);
    match mempool_file::save(path, node.chain().chain_id(), transfers.iter().copied()) {
        Ok(()) if transfers.is_empty() => {}
        Ok(()) => println!(
            "mempool: {} pending transfers saved to {}",
            transfers.len(),
            path.display()
        ),
        Err(error) => eprintln!("WARNING: the mempool was not saved: {error}"),
    }
}

/// What the listeners give the rest of `serve`.
struct Listeners {
    /// The driver's configuration: the bound sockets and the miner.
    driver: DriverConfig,
    /// The address this node tells its peers to dial back.
    listen: Option<String>,
    /// How other nodes connect to this one, for the start-up line.
    where_to_connect: Vec<String>,
}

/// Binds what the flags ask to listen on (node N's unix socket, a TCP address) and sets the
/// miner's threads: the driver's configuration, bound before anything starts so that a
/// taken address stops the node at once.
async fn bind_listeners(args: &NodeArgs, sockets: &Path) -> anyhow::Result<Listeners> {
    let mut driver_config = DriverConfig::new();
    let mut listen = None;
    let mut where_to_connect = Vec::new();
    if let Some(id) = args.id {
        let path = socket_path(sockets, id);
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
    Ok(Listeners {
        driver: driver_config,
        listen,
        where_to_connect,
    })
}

/// The node itself: its configuration (the address it listens on, an outbound slot for
/// every --peers address, who mined blocks pay), the address book it keeps, and the --peers
/// addresses to dial.
fn build_node<S: Store>(
    args: &NodeArgs,
    spec: &ChainSpec,
    chain: Chain<S>,
    addresses: Option<Box<dyn AddressStore>>,
    listen: Option<String>,
    wallet: Option<&Path>,
) -> anyhow::Result<Node<S>> {
    let mut config = NodeConfig::new(rand::random());
    // Blocks pay the node's own wallet once it has a key (seed 003's miner), else dev
    // account 0, unless --miner-address says otherwise.
    if let Some(path) = wallet.filter(|path| path.exists()) {
        let wallet = powchain_node::wallet::Wallet::open(path)?;
        if let (Some(key), None) = (wallet.keys().first(), &args.miner_address) {
            println!(
                "mined blocks pay {} (the first key of {})",
                key.address(),
                path.display()
            );
            config.miner_address = Some(key.address());
        }
    }
    config.listen = listen;
    config.number = args.id;
    config.outbound_target = config.outbound_target.max(args.peers.len());
    config.minimum_chain_work = powchain_chain::Work(args.minimum_chain_work);
    config.mempool = powchain_chain::MempoolConfig::for_chain(spec);
    if let Some(miner) = &args.miner_address {
        // The flag takes what the session's `balance` takes: a dev number or an address.
        let who = session::parse(&format!("balance {miner}"))
            .ok()
            .and_then(|line| match line {
                Line::Balance(who) => Some(who),
                _ => None,
            })
            .with_context(|| format!("--miner-address {miner:?} is not an account"))?;
        config.miner_address = Some(resolve_account(spec, &who).map_err(anyhow::Error::msg)?);
    }
    let mut node = Node::new(config, chain, rand::random());
    if let Some(addresses) = addresses {
        node = node.with_address_store(addresses)?;
    }
    for peer in &args.peers {
        node.add_address(peer);
    }
    Ok(node)
}

/// Says which chain and tip the node starts from, and how other nodes reach it.
fn print_start<S: Store>(spec: &ChainSpec, node: &Node<S>, where_to_connect: &[String]) {
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
}

/// The API server, and the private directory an ephemeral node keeps its cookie in.
struct Api {
    server: Option<Rpc>,
    ephemeral_dir: Option<tempfile::TempDir>,
}

impl Api {
    /// Where the event printer passes events on to `/api/v1/events`.
    fn events(&self) -> Option<broadcast::Sender<ApiEvent>> {
        self.server.as_ref().map(|server| server.events.clone())
    }

    /// Stops serving, and removes the cookie with its ephemeral directory.
    fn stop(self) {
        if let Some(server) = self.server {
            server.stop();
        }
        // Dropping the directory removes it with the cookie.
        drop(self.ephemeral_dir);
    }
}

/// Starts the API as --rpc says, its cookie in the data directory (an ephemeral node's in a
/// private directory of its own, gone at exit), and says where the clients find it.
async fn start_api<S: Store + Send + 'static>(
    args: &NodeArgs,
    rpc: RpcSetting,
    datadir: Option<&Path>,
    handle: &Handle<S>,
    spec: &ChainSpec,
) -> anyhow::Result<Api> {
    let ephemeral_dir = match (datadir, rpc) {
        (None, RpcSetting::Default | RpcSetting::At(_)) => Some(private_temp_dir()?),
        _ => None,
    };
    let rpc_dir = datadir.or(ephemeral_dir.as_ref().map(tempfile::TempDir::path));
    let server = match rpc_dir {
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
    if let Some(server) = &server {
        println!(
            "API and explorer on http://{} (token in {})",
            server.address,
            server.cookie.display()
        );
        if let Some(dir) = &ephemeral_dir {
            println!(
                "clients reach this node with --datadir {}",
                dir.path().display()
            );
        }
    }
    Ok(Api {
        server,
        ephemeral_dir,
    })
}

/// The session on stdin (none with --no-repl): runs each line until `quit`, the end of stdin
/// (unless peers are served: then the node runs on as a daemon), or SIGINT or SIGTERM.
async fn run_session<S: Store + 'static>(args: &NodeArgs, session: &mut Session<S>) {
    let serving = args.id.is_some() || args.listen.is_some() || !args.peers.is_empty();
    let lines = if args.no_repl {
        None
    } else {
        Some(read_stdin())
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
                // The node ended by itself (its store failed).
                _ = session.handle.stopped() => break,
            }
        }
    } else {
        tokio::select! {
            _ = stop => {}
            _ = session.handle.stopped() => {}
        }
    }
}

/// Stops in an order that leaves nothing behind: the API and its cookie first, then the
/// driver (which says goodbye to peers and saves what it must), then node N's socket file.
async fn shut_down<S: Store>(
    args: &NodeArgs,
    sockets: &Path,
    api: Api,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Node<S>>,
) -> anyhow::Result<Node<S>> {
    println!("shutting down: saying goodbye to peers");
    api.stop();
    let _ = shutdown.send(true);
    let node = task.await;
    if let Some(id) = args.id {
        // Leave no socket behind for others to dial.
        let _ = std::fs::remove_file(socket_path(sockets, id));
    }
    node.context("the node's task failed")
}

/// A new directory only this user can enter (0700, a random name created exclusively, so
/// nobody can have made it first), for an ephemeral node's cookie; removed when dropped.
fn private_temp_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("powchain-node-")
        .tempdir()
        .context("cannot create a private directory in the temp directory")
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
