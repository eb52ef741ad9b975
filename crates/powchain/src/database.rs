//! Commands on a chain database file: `mine`, `export`, `import` and `check`.
//!
//! `mine` produces blocks into the file and announces each one only after its commit
//! returned, so every announced block survives a crash. `export` writes the best chain as
//! JSON (format in `docs/chain-json.md`); `import` reads such a file and validates every block
//! as if a peer had sent it. `check` verifies a whole file: every stored block against its
//! hash and transaction root, and the best chain replayed from genesis against the stored
//! tip and accounts.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use powchain_chain::{Block, BlockHash, Chain, ChainConfig, ChainSpec, Height, Placement, Store};
use powchain_node::store::RedbStore;
use serde::{Deserialize, Serialize};

use crate::producer::{Producer, ProducerArgs};

/// The format name written into and required from export files.
pub const EXPORT_FORMAT: &str = "powchain-chain/1";
/// Largest export file `import` reads, in bytes.
pub const IMPORT_BYTES_MAX: u64 = 1 << 30;

/// Flags naming a database and its chain.
#[derive(Args, Debug)]
pub struct DbArgs {
    /// The chain database (created with genesis when absent).
    #[arg(long)]
    db: PathBuf,
    /// `dev`, `seed`, or a TOML spec file. Without it: the preset the database holds, or
    /// `dev` for a new database.
    #[arg(long)]
    chain: Option<String>,
}

/// Flags of `powchain mine`: with --db, mine into a database file (no node needed);
/// without, ask the running node to mine one block of its pending transactions, or
/// `--blocks N` (empty ones too with `--allow-empty`).
#[derive(Args, Debug)]
pub struct MineArgs {
    /// Mine into this chain database (created with genesis when absent) instead of asking a
    /// running node.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// With --db: `dev`, `seed`, or a TOML spec file (default: the preset the database
    /// holds, or `dev` for a new database).
    #[arg(long, requires = "db")]
    chain: Option<String>,
    /// Blocks to mine. With --db: without it, mine until stopped; asking a node: one.
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Asking a node: mine even with nothing pending (empty blocks), as developer chains'
    /// "generate N" does; without it an empty mempool is refused (the seed's `Mine` rule).
    #[arg(long, conflicts_with = "db")]
    pub allow_empty: bool,
    #[command(flatten)]
    producer: ProducerArgs,
    /// The running node to ask (without --db).
    #[command(flatten)]
    pub client: crate::client::ClientArgs,
    /// Without --db: return once the node has started, rather than wait for the block.
    #[arg(long, conflicts_with = "db")]
    pub no_wait: bool,
    /// Without --db: how long to wait for the blocks, in seconds.
    #[arg(long, default_value_t = 120, conflicts_with = "db")]
    pub timeout: u64,
}

/// Flags of `powchain export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The JSON file to write (`-` for standard output).
    #[arg(long)]
    out: PathBuf,
}

/// Flags of `powchain import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The JSON file to read (`-` for standard input).
    #[arg(long = "in")]
    input: PathBuf,
}

/// Flags of `powchain check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The chain database to verify (never created or changed).
    #[arg(long)]
    db: PathBuf,
    /// `dev`, `seed`, or a TOML spec file. Without it: the preset the database holds.
    #[arg(long)]
    chain: Option<String>,
}

/// The chain spec for a database: `--chain` if given; otherwise the preset whose genesis
/// the database holds or, for a new database, `expected` (or `dev`).
fn spec_for(
    args: &DbArgs,
    store: &RedbStore,
    expected: Option<BlockHash>,
) -> anyhow::Result<ChainSpec> {
    if let Some(chain) = &args.chain {
        return crate::load_spec(chain, None);
    }
    let genesis = match (store.identity()?, expected) {
        (Some(identity), _) => identity.genesis,
        (None, Some(genesis)) => genesis,
        (None, None) => return Ok(ChainSpec::dev()),
    };
    let identity = store
        .identity()?
        .unwrap_or(powchain_chain::store::ChainIdentity {
            name: "(new database)".into(),
            genesis,
        });
    powchain_chain::spec::PRESETS
        .iter()
        .filter_map(|name| ChainSpec::preset(name))
        .find(|spec| spec.genesis_hash() == genesis)
        .with_context(|| {
            format!(
                "{}: chain {:?} (genesis {}) is not a preset: pass --chain with its spec file",
                args.db.display(),
                identity.name,
                identity.genesis
            )
        })
}

/// Refuses a database file that is not there, saying why it must be (`why`).
fn must_exist(db: &Path, why: &str) -> anyhow::Result<()> {
    if !db.is_file() {
        bail!("{} does not exist ({why})", db.display());
    }
    Ok(())
}

/// Opens the database and its chain (`expected`: the genesis a new database should get
/// when `--chain` is not given).
fn open(args: &DbArgs, expected: Option<BlockHash>) -> anyhow::Result<Chain<RedbStore>> {
    let store = RedbStore::open(&args.db)?;
    let spec = spec_for(args, &store, expected)?;
    crate::open_chain(spec, store, &args.db)
}

/// `powchain mine`.
pub fn mine(args: &MineArgs) -> anyhow::Result<()> {
    let Some(path) = &args.db else {
        bail!("powchain mine without --db asks a running node (see `powchain mine --help`)");
    };
    let db = DbArgs {
        db: path.clone(),
        chain: args.chain.clone(),
    };
    let chain = open(&db, None)?;
    let mut out = std::io::stdout().lock();
    let tip = chain.tip();
    writeln!(
        out,
        "database {}: chain {:?}, tip {} at height {}",
        db.db.display(),
        chain.spec().name,
        tip.hash.short(16),
        tip.height
    )?;
    out.flush()?;
    let mut producer = Producer::from_args(chain, &args.producer)?;
    let mut mined = 0u64;
    while args.blocks.is_none_or(|blocks| mined < blocks) {
        producer.submit_transfers(args.producer.txs_per_block)?;
        let block = producer.mine_block()?.block;
        // The commit has returned: only now is the block announced.
        writeln!(
            out,
            "block {} {} committed",
            block.header.height,
            block.hash()
        )?;
        out.flush()?;
        mined += 1;
    }
    Ok(())
}

/// The export file: the chain's identity and its best chain, genesis first.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportFile {
    format: String,
    chain: ExportChain,
    blocks: Vec<ExportBlock>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportChain {
    name: String,
    genesis: BlockHash,
}

// No `deny_unknown_fields` here: serde does not support it together with `flatten`.
#[derive(Serialize, Deserialize)]
struct ExportBlock {
    hash: BlockHash,
    #[serde(flatten)]
    block: Block,
}

/// `powchain export`.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    must_exist(
        &args.db.db,
        "export reads a database, never makes one; `powchain mine --db FILE --blocks N` or `powchain import` makes one",
    )?;
    let chain = open(&args.db, None)?;
    let writer: Box<dyn Write> = if args.out == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        Box::new(file)
    };
    let mut out = BufWriter::new(writer);
    // Written block by block, so a long chain is never held in memory whole.
    let identity = ExportChain {
        name: chain.spec().name.clone(),
        genesis: chain.chain_id(),
    };
    write!(
        out,
        "{{\n  \"format\": {},\n  \"chain\": {},\n  \"blocks\": [",
        serde_json::to_string(EXPORT_FORMAT)?,
        serde_json::to_string(&identity)?
    )?;
    let height = chain.tip().height;
    for h in 0..=height.0 {
        let block = chain
            .block_at(Height(h))?
            .with_context(|| format!("the database has no block at height {h}"))?;
        let entry = ExportBlock {
            hash: block.hash(),
            block: block.as_ref().clone(),
        };
        let separator = if h == 0 { "\n    " } else { ",\n    " };
        write!(out, "{separator}{}", serde_json::to_string(&entry)?)?;
    }
    writeln!(out, "\n  ]\n}}")?;
    out.flush()?;
    if args.out != Path::new("-") {
        eprintln!(
            "exported {} blocks (genesis to height {height}) to {}",
            height.0 + 1,
            args.out.display()
        );
    }
    Ok(())
}

/// `powchain import`.
pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let reader: Box<dyn Read> = if args.input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(file)
    };
    let mut text = Vec::new();
    reader
        .take(IMPORT_BYTES_MAX + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    if text.len() as u64 > IMPORT_BYTES_MAX {
        bail!(
            "{} is larger than {IMPORT_BYTES_MAX} bytes",
            args.input.display()
        );
    }
    let file: ExportFile = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a powchain chain export", args.input.display()))?;
    drop(text);
    if file.format != EXPORT_FORMAT {
        bail!(
            "unknown export format {:?}, expected {EXPORT_FORMAT:?}",
            file.format
        );
    }
    let mut chain = open(&args.db, Some(file.chain.genesis))?;
    if file.chain.genesis != chain.chain_id() {
        bail!(
            "the file holds chain {:?} (genesis {}), the database chain {:?} (genesis {})",
            file.chain.name,
            file.chain.genesis,
            chain.spec().name,
            chain.chain_id()
        );
    }
    let mut blocks = file.blocks.into_iter().enumerate();
    match blocks.next() {
        Some((_, first)) if first.block.hash() == chain.chain_id() => {}
        _ => bail!("the first block of the file is not this chain's genesis"),
    }
    let (mut imported, mut known) = (0u64, 0u64);
    for (position, entry) in blocks {
        let hash = entry.block.hash();
        if hash != entry.hash {
            bail!(
                "block {position}: its header hashes to {hash}, not the {} the file says",
                entry.hash
            );
        }
        let outcome = chain
            .import_block(entry.block, crate::now())
            .with_context(|| format!("block {position} ({hash}) refused"))?;
        match outcome.placement {
            Placement::AlreadyKnown => known += 1,
            Placement::Orphan { .. } => {
                bail!("block {position} ({hash}) does not follow the blocks before it")
            }
            _ => imported += 1,
        }
    }
    let tip = chain.tip();
    eprintln!(
        "imported {imported} blocks ({known} already known); tip {} at height {}",
        tip.hash, tip.height
    );
    Ok(())
}

/// `powchain check`: reads every block the file holds and replays its best chain. Fails,
/// naming what is wrong, on the first fault of each kind.
pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    must_exist(&args.db, "check reads a file, never makes one")?;
    let db = DbArgs {
        db: args.db.clone(),
        chain: args.chain.clone(),
    };
    let chain = open(&db, None)?;
    let store = chain.store();
    let tip = chain.tip();
    println!(
        "database {}: chain {:?}, tip {} at height {}",
        db.db.display(),
        chain.spec().name,
        tip.hash.short(16),
        tip.height
    );
    // 1. Every stored body against its hash and root (`RedbStore::block` checks both).
    let index = store.index()?;
    let mut bodies = 0u64;
    let mut damaged = Vec::new();
    for (hash, entry) in &index {
        if entry.status == powchain_chain::store::BlockStatus::Invalid {
            continue;
        }
        match store.block(hash) {
            Ok(Some(_)) => bodies += 1,
            Ok(None) => damaged.push(format!("block {hash} is indexed but its body is missing")),
            Err(error) => damaged.push(error.0),
        }
    }
    println!(
        "blocks: {} indexed, {bodies} bodies read and matching their hash and root",
        index.len()
    );
    if let Some(first) = damaged.first() {
        bail!("{} damaged block(s); the first: {first}", damaged.len());
    }
    // 2. The best chain replayed on a fresh chain: the same tip and the same accounts.
    let mut replay = Chain::open(
        chain.spec().clone(),
        powchain_chain::MemStore::new(),
        ChainConfig::default(),
    )?;
    for height in 1..=tip.height.0 {
        let block = chain
            .block_at(Height(height))?
            .with_context(|| format!("the best chain has no block at height {height}"))?;
        let hash = block.hash();
        let outcome = replay
            .import_block(block.as_ref().clone(), block.header.time)
            .with_context(|| format!("block {hash} at height {height} does not replay"))?;
        if outcome.placement != Placement::BestChain {
            bail!(
                "block {hash} at height {height} replays as {:?}",
                outcome.placement
            );
        }
    }
    if replay.tip().hash != tip.hash {
        bail!(
            "the replay ends at {}, the file's tip is {}",
            replay.tip().hash,
            tip.hash
        );
    }
    let stored = store.all_accounts()?;
    let replayed = replay.store().accounts();
    let differs = stored.len() != replayed.len()
        || stored
            .iter()
            .any(|(address, account)| replayed.get(address) != Some(account));
    if differs {
        bail!(
            "the stored accounts ({}) are not the replay's ({}): the state is damaged",
            stored.len(),
            replayed.len()
        );
    }
    println!(
        "replay: {} blocks from genesis reach the same tip and the same {} accounts",
        tip.height.0,
        stored.len()
    );
    println!("ok");
    Ok(())
}
