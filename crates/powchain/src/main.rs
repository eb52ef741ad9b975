//! The `powchain` command: parses flags, reads the clock and files, and calls the library.
//!
//! Subcommands:
//! - `devnet`: a network of real nodes on this machine (`devnet.rs`); `sim`: one in
//!   simulated time (`sim.rs`); `sweep`: many sims over a grid of parameters and seeds
//!   (`sweep.rs`); `node`: one node, its session and its HTTP API (`node/`).
//! - `status`, `block`, `balance`, `send`, `peers`, `mine`: clients of a running node's API
//!   (`client.rs`); `mine --db`, `export`, `import`: a chain database file (`database.rs`).
//! - `demo`: builds a chain in memory, mines blocks with random signed transfers between dev
//!   accounts, and prints every block and the final balances.
//! - `bench`: speed, as ratios to a reference measured in the same run.
//! - `wallet new|list|show`: keys in their own file.
//! - `spec`: prints a chain spec as TOML with its genesis hash (a start for custom specs).

#![forbid(unsafe_code)]

mod bench;
mod client;
mod database;
mod demo;
mod devnet;
mod node;
mod producer;
mod sim;
mod sweep;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use powchain_chain::spec::PRESETS;
use powchain_chain::{ChainSpec, DifficultyBits};

/// A proof-of-work blockchain node small enough to read in an afternoon.
#[derive(Parser, Debug)]
#[command(name = "powchain", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A whole network on this machine: nodes mining and trading over loopback, a live
    /// status, and a report at the end.
    Devnet(devnet::DevnetArgs),
    /// Simulate a network in simulated time: hundreds of nodes, latency, partitions,
    /// crashes, an adversary; reproducible from a seed, with named checks at the end.
    Sim(sim::SimArgs),
    /// Run a scenario over a grid of parameters and seeds on every core: mean and 95%
    /// interval per point, as CSV, JSON and an SVG plot; in shards that merge.
    Sweep(sweep::SweepArgs),
    /// Mine a few blocks of random signed transfers in memory and print them.
    Demo(demo::DemoArgs),
    /// Benchmarks (hashing, the store, sync, propagation, the simulator, a loaded devnet),
    /// each reported as ratios to references measured in the same run.
    Bench(bench::BenchArgs),
    /// Run a node: peers over TCP or unix sockets, the seed's session on stdin.
    Node(Box<node::NodeArgs>),
    /// Ask the running node to mine a block of its pending transactions; with --db, mine
    /// blocks of random transfers into a database file instead.
    Mine(Box<database::MineArgs>),
    /// The running node's chain, peers, mempool and mining, in a few lines.
    Status(client::ClientArgs),
    /// A block of the running node's chain, by height or hash (default: the tip).
    Block {
        /// A height, or a block hash: all 128 hex digits or the first 8 or more.
        which: Option<String>,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// A transaction, pending on the running node or on its best chain.
    Tx {
        /// The transaction id: all 128 hex digits or the first 8 or more.
        #[arg(value_name = "ID")]
        txid: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// An account's balance, nonce and recent transactions, by dev number or address.
    Balance {
        /// A dev account number (or dev:N) or an address.
        who: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Sign a transfer here and submit it to the running node.
    Send {
        #[command(flatten)]
        send: client::SendArgs,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// The running node's peers: address, direction, tip, round trip, traffic.
    Peers(client::ClientArgs),
    /// Write a database's best chain as JSON.
    Export(database::ExportArgs),
    /// Read a JSON chain into a database, validating every block as if from a peer.
    Import(database::ImportArgs),
    /// Verify a database file: every block against its hash and root, and the best chain
    /// replayed against the stored tip and accounts.
    Check(database::CheckArgs),
    /// Create or list wallet keys (kept in their own file, mode 0600).
    Wallet {
        #[command(subcommand)]
        action: WalletAction,
        /// The wallet file (default: wallet.keys in --datadir, where the node and the
        /// clients look for it).
        #[arg(long, global = true)]
        wallet: Option<PathBuf>,
        /// The data directory whose wallet.keys to use.
        #[arg(long, global = true, default_value = "powchain-data")]
        datadir: PathBuf,
    },
    /// Print a chain spec as TOML, with its genesis hash.
    Spec {
        /// `dev`, `seed`, or a TOML spec file.
        #[arg(long, default_value = "dev")]
        chain: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Nodes facing peers key their hash tables with a secret, so a peer cannot aim for
    // collisions; the simulator keeps the fixed key, for runs that replay exactly.
    if matches!(cli.command, Command::Node(_) | Command::Devnet(_)) {
        powchain_chain::hashing::set_process_key(rand::random());
    }
    // The signature checks' pool, named so that a profile or `bench load` can tell its time
    // from the miner's and the async runtime's. Failing only leaves rayon's own default.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("verify-{index}"))
        .build_global();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Devnet(args) => devnet::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Node(args) => node::run(*args),
        Command::Bench(args) => bench::run(&args),
        Command::Mine(args) if args.db.is_some() => database::mine(&args),
        Command::Mine(args) => client::mine(
            &args.client,
            &client::MineOrder {
                blocks: args.blocks.unwrap_or(1),
                allow_empty: args.allow_empty,
                timeout: std::time::Duration::from_secs(args.timeout),
                no_wait: args.no_wait,
            },
        ),
        Command::Status(client) => client::status(&client),
        Command::Block { which, client } => client::block(&client, which.as_deref()),
        Command::Tx { txid, client } => client::tx(&client, &txid),
        Command::Balance { who, client } => client::balance(&client, &who),
        Command::Send { send, client } => client::send(&client, &send),
        Command::Peers(client) => client::peers(&client),
        Command::Export(args) => database::export(&args),
        Command::Import(args) => database::import(&args),
        Command::Check(args) => database::check(&args),
        Command::Wallet {
            action,
            wallet,
            datadir,
        } => {
            let path = wallet.unwrap_or_else(|| datadir.join("wallet.keys"));
            run_wallet(action, &path)
        }
        Command::Spec { chain } => print_spec(&chain),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`powchain demo | head`): not an error of ours.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand, Debug)]
enum WalletAction {
    /// Generate a key and add it to the wallet file.
    New,
    /// List the wallet's addresses.
    List,
    /// Where the wallet is, and its addresses numbered.
    Show,
}

fn run_wallet(action: WalletAction, path: &Path) -> anyhow::Result<()> {
    let mut wallet = powchain_node::wallet::Wallet::open(path)?;
    let mut out = std::io::stdout().lock();
    match action {
        WalletAction::New => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let key = powchain_chain::Keypair::generate(&mut rand::rng());
            let address = key.address();
            wallet.add(key)?;
            writeln!(out, "{address}")?;
            eprintln!("added to {} (mode 0600)", path.display());
        }
        WalletAction::List => {
            for key in wallet.keys() {
                writeln!(out, "{}", key.address())?;
            }
        }
        WalletAction::Show => {
            writeln!(
                out,
                "wallet {} with {} keys",
                path.display(),
                wallet.keys().len()
            )?;
            for (index, key) in wallet.keys().iter().enumerate() {
                writeln!(out, "  {index}: {}", key.address())?;
            }
        }
    }
    Ok(())
}

fn print_spec(chain: &str) -> anyhow::Result<()> {
    let spec = load_spec(chain, None)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "# genesis hash: {}", spec.genesis_hash())?;
    write!(out, "{}", spec.to_toml_string())?;
    Ok(())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Opens `store`'s chain for `spec`; a database of another chain is refused with what
/// differs and the command line that opens it (`db`: the file, for the message).
pub fn open_chain<S: powchain_chain::Store>(
    spec: ChainSpec,
    store: S,
    db: &std::path::Path,
) -> anyhow::Result<powchain_chain::Chain<S>> {
    use powchain_chain::OpenError;
    let error =
        match powchain_chain::Chain::open(spec, store, powchain_chain::ChainConfig::default()) {
            Ok(chain) => return Ok(chain),
            Err(error) => error,
        };
    let fix = match &error {
        OpenError::WrongChain {
            stored_difficulty_bits: Some(bits),
            differences,
            ..
        } if differences.len() == 1 => format!("start with --difficulty {bits}, as it was made"),
        OpenError::WrongChain { stored_name, .. } => format!(
            "start with the --chain and --difficulty it was made with (chain {stored_name:?})"
        ),
        _ => return Err(error.into()),
    };
    Err(anyhow::anyhow!(
        "{}: {error}\n  to open it, {fix}; for a new chain, give another --db or --datadir",
        db.display()
    ))
}

/// A preset by name, or a TOML spec from a file; with `difficulty`, a fixed difficulty in
/// leading zero bits instead of the spec's (the seed's setting).
pub fn load_spec(chain: &str, difficulty: Option<u64>) -> anyhow::Result<ChainSpec> {
    let spec = match ChainSpec::preset(chain) {
        Some(spec) => spec,
        None if Path::new(chain).is_file() => {
            let text = std::fs::read_to_string(chain)
                .with_context(|| format!("cannot read chain spec {chain}"))?;
            ChainSpec::from_toml_str(&text).with_context(|| format!("in chain spec {chain}"))?
        }
        None => bail!(
            "--chain {chain:?} is neither a preset ({}) nor a spec file",
            PRESETS.join(", ")
        ),
    };
    match difficulty {
        Some(bits) => Ok(spec.with_fixed_difficulty(DifficultyBits::new(bits)?)),
        None => Ok(spec),
    }
}

/// The wall clock, in the chain's unit: the driver's, so every part of the binary reads
/// the same clock.
pub use powchain_node::driver::now;
