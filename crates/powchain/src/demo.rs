//! `powchain demo`: the chain core at work, in memory.
//!
//! Each round submits random signed transfers between dev accounts to a mempool, builds a
//! block template, mines it with the mining threads, imports it, and prints the block. At the
//! end it prints every dev account's balance and checks that the supply equals the genesis
//! allocations plus the block rewards. The transfers are reproducible from `--seed`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;
use powchain_chain::{Chain, ChainConfig, Keypair, MemStore, Transaction};

use crate::producer::{Producer, ProducerArgs};

/// Flags of `powchain demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// `dev`, `seed`, or a TOML spec file.
    #[arg(long, default_value = "dev")]
    chain: String,
    /// A fixed difficulty in leading zero bits (1..=80) instead of the spec's.
    #[arg(long)]
    difficulty: Option<u64>,
    /// Blocks to mine (1..=1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    blocks: u64,
    #[command(flatten)]
    producer: ProducerArgs,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let spec = crate::load_spec(&args.chain, args.difficulty)?;
    let chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default())
        .context("opening an in-memory chain")?;
    let mut producer = Producer::from_args(chain, &args.producer)?;
    let dev = producer.dev_accounts();
    let difficulty = match &spec.retarget {
        Some(rule) => format!(
            "{} bits, retargeting toward {} ms blocks",
            spec.difficulty_bits.get(),
            rule.block_interval_ms
        ),
        None => format!("{} bits, fixed", spec.difficulty_bits.get()),
    };
    writeln!(
        out,
        "chain {:?}: genesis {}, difficulty {difficulty}, {} dev accounts with {} coins, reward {}",
        spec.name,
        spec.genesis_hash().short(16),
        dev.count,
        dev.balance,
        spec.block_reward
    )?;
    let config = producer.miner_config();
    writeln!(
        out,
        "mining with {} threads, SHA-512 backend {}",
        config.threads, config.backend
    )?;
    for _ in 0..args.blocks {
        for (from, error) in producer.submit_transfers(args.producer.txs_per_block)? {
            writeln!(out, "  refused transfer from dev {from}: {error}")?;
        }
        let mined = producer.mine_block()?;
        let block = &mined.block;
        let rate = mined.hashes as f64 / mined.elapsed.as_secs_f64().max(1e-9) / 1e6;
        writeln!(
            out,
            "block {:>3}  {}…  {} txs, fees {}  nonce {}  {} hashes in {} ms ({rate:.2} MH/s)",
            block.header.height,
            block.hash().short(16),
            block.txs.len(),
            mined.fees,
            block.header.nonce,
            mined.hashes,
            mined.elapsed.as_millis()
        )?;
        for tx in &block.txs {
            writeln!(out, "    {}", describe(tx, &spec))?;
        }
        for (id, why) in &mined.dropped {
            writeln!(out, "  transfer {} left the mempool: {why:?}", id.short(12))?;
        }
    }
    let chain = &producer.chain;
    writeln!(out, "balances at height {}:", chain.tip().height)?;
    let mut supply: u128 = 0;
    for index in 0..dev.count {
        let balance = chain
            .account(&Keypair::dev(index).address())?
            .map_or(0, |a| a.balance.0);
        supply += u128::from(balance);
        writeln!(out, "  dev {index:>2}  {balance}")?;
    }
    let allocations = u128::from(dev.count) * u128::from(dev.balance.0);
    let rewards = u128::from(spec.block_reward.0) * u128::from(chain.tip().height.0);
    writeln!(
        out,
        "supply {supply} = allocations {allocations} + rewards {rewards}: {}",
        if supply == allocations + rewards {
            "conserved"
        } else {
            "NOT CONSERVED"
        }
    )?;
    if supply != allocations + rewards {
        bail!("supply is not conserved");
    }
    Ok(())
}

/// One line about a transaction, naming dev accounts by index.
fn describe(tx: &Transaction, spec: &powchain_chain::ChainSpec) -> String {
    let name = |address: &powchain_chain::Address| match spec.dev_index(address) {
        Some(index) => format!("dev {index}"),
        None => address.short(12),
    };
    match tx {
        Transaction::Coinbase(c) => format!("coinbase: {} to {}", c.amount, name(&c.to)),
        Transaction::Transfer(t) => format!(
            "{} from {} to {} (fee {}, nonce {})",
            t.amount,
            name(&t.from),
            name(&t.to),
            t.fee,
            t.nonce
        ),
    }
}
