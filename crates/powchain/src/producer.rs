//! Produces blocks on a chain of any store: random signed transfers between dev accounts
//! into a mempool, a template, the mining threads, the import. `demo` runs it in memory,
//! `mine` into a database file.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use powchain_chain::spec::DevAccounts;
use powchain_chain::{
    Amount, Block, Chain, Keypair, Memo, Mempool, MempoolConfig, MempoolError, Removal, Store,
    TxId, UnsignedTransfer,
};
use powchain_node::miner::{Miner, MinerConfig, Solution};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A block the producer mined and imported.
pub struct Mined {
    /// The block, as committed.
    pub block: Block,
    /// Fees it collected.
    pub fees: Amount,
    /// Hashes all threads tried for it.
    pub hashes: u64,
    /// Time from template to solution.
    pub elapsed: Duration,
    /// Transfers that left the mempool for another reason than being confirmed.
    pub dropped: Vec<(TxId, Removal)>,
}

/// Mines blocks of random transfers on `chain`.
pub struct Producer<S: Store> {
    /// The chain blocks go into.
    pub chain: Chain<S>,
    mempool: Mempool,
    miner: Miner,
    solutions: Receiver<Solution>,
    rng: ChaCha8Rng,
    dev: DevAccounts,
}

impl<S: Store> Producer<S> {
    /// A producer on `chain`, with transfers drawn from `seed`, mining with `config`.
    pub fn new(chain: Chain<S>, config: MinerConfig, seed: u64) -> anyhow::Result<Producer<S>> {
        let Some(dev) = chain.spec().dev_accounts.filter(|dev| dev.count >= 2) else {
            bail!(
                "chain {:?} funds fewer than two dev accounts; blocks here move coins between them",
                chain.spec().name
            );
        };
        let (sender, solutions) = std::sync::mpsc::channel();
        Ok(Producer {
            chain,
            mempool: Mempool::new(MempoolConfig::default()),
            miner: Miner::start(config, sender)?,
            solutions,
            rng: ChaCha8Rng::seed_from_u64(seed),
            dev,
        })
    }

    /// The dev accounts transfers move between.
    pub fn dev_accounts(&self) -> DevAccounts {
        self.dev
    }

    /// Submits `count` random transfers; returns the refusals (dev index, reason).
    pub fn submit_transfers(&mut self, count: u64) -> anyhow::Result<Vec<(u64, MempoolError)>> {
        let spec = self.chain.spec().clone();
        let chain_id = self.chain.chain_id();
        let mut refused = Vec::new();
        for _ in 0..count {
            let from = self.rng.random_range(0..self.dev.count);
            let to = (from + self.rng.random_range(1..self.dev.count)) % self.dev.count;
            let sender = Keypair::dev(from);
            let account = self.chain.account(&sender.address())?.unwrap_or_default();
            let spendable = self
                .mempool
                .pending_balance(&sender.address(), account.balance);
            let fee = spec.fee_min;
            let ceiling = (spendable.0.saturating_sub(fee.0) / 4).min(spec.amount_max.0);
            if ceiling == 0 {
                continue;
            }
            let transfer = UnsignedTransfer {
                to: Keypair::dev(to).address(),
                amount: Amount(self.rng.random_range(1..=ceiling)),
                fee,
                nonce: self.mempool.next_nonce(&sender.address(), account.nonce),
                memo: Memo::default(),
            }
            .sign(&sender, &chain_id);
            let result =
                self.mempool
                    .add(transfer, self.chain.store(), &spec, &chain_id, crate::now());
            if let Err(error) = result {
                refused.push((from, error));
            }
        }
        Ok(refused)
    }

    /// Mines the pending transfers into a block paying dev account 0, and imports it: when
    /// this returns, the block is committed.
    pub fn mine_block(&mut self) -> anyhow::Result<Mined> {
        let miner_address = Keypair::dev(0).address();
        let template = self
            .chain
            .block_template(&self.mempool, miner_address, crate::now(), 0)?;
        let (started, hashes_before) = (Instant::now(), self.miner.hashes());
        let generation = self.miner.mine(template.block);
        let block = loop {
            let solution = self
                .solutions
                .recv()
                .context("the mining threads stopped unexpectedly")?;
            if solution.generation == generation {
                break solution.block;
            }
        };
        let elapsed = started.elapsed();
        let hashes = self.miner.hashes() - hashes_before;
        let outcome = self.chain.import_block(block.clone(), crate::now())?;
        let change = outcome
            .tip_change
            .context("a freshly mined template did not extend the tip")?;
        let spec = self.chain.spec().clone();
        let dropped = self
            .mempool
            .on_tip_change(&change, self.chain.store(), &spec, crate::now())?
            .into_iter()
            .filter(|(_, why)| *why != Removal::Confirmed)
            .collect();
        Ok(Mined {
            block,
            fees: template.fees,
            hashes,
            elapsed,
            dropped,
        })
    }

    /// The mining configuration.
    pub fn miner_config(&self) -> MinerConfig {
        self.miner.config()
    }
}

/// The flags every block-producing command shares.
#[derive(Args, Debug)]
pub struct ProducerArgs {
    /// Transfers submitted before each block (0..=1000).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub txs_per_block: u64,
    /// Seed for the random transfers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mining threads (1..=1024; default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    miner_threads: Option<u64>,
}

impl<S: Store> Producer<S> {
    /// A producer configured by the command line.
    pub fn from_args(chain: Chain<S>, args: &ProducerArgs) -> anyhow::Result<Producer<S>> {
        let mut config = MinerConfig::detect();
        if let Some(threads) = args.miner_threads {
            config.threads = usize::try_from(threads)?;
        }
        Producer::new(chain, config, args.seed)
    }
}
