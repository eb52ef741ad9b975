//! Helpers shared by the chain's integration tests: small specs, block building on any
//! parent, and a naive replay model to hold the real chain against.

#![allow(dead_code)]

use std::collections::BTreeMap;

use powchain_chain::block::tx_root;
use powchain_chain::header::HEADER_VERSION;
use powchain_chain::pow::RetargetRule;
use powchain_chain::spec::DevAccounts;
use powchain_chain::state::StateOverlay;
use powchain_chain::tx::Coinbase;
use powchain_chain::{
    Account, AccountReader, Address, Amount, Block, BlockHash, Chain, ChainConfig, ChainSpec,
    DifficultyBits, Header, Height, Keypair, MemStore, Memo, Timestamp, Transaction, Transfer,
    UnsignedTransfer,
};

/// A clock far enough past genesis that no test block is "from the future".
pub fn late_now(spec: &ChainSpec) -> Timestamp {
    Timestamp(spec.genesis_time_ms + 1_000_000_000)
}

/// A dev-like spec with an easy fixed difficulty, so tests mine in microseconds.
pub fn easy_spec() -> ChainSpec {
    let mut spec = ChainSpec::dev().with_fixed_difficulty(DifficultyBits::new(4).unwrap());
    spec.name = "test".into();
    spec.dev_accounts = Some(DevAccounts {
        count: 6,
        balance: Amount(1_000),
    });
    spec
}

/// A spec whose difficulty retargets every 2 blocks by up to 4x toward 1-second blocks,
/// between 1 and `hardest` bits, so that branches mined at different speeds carry different
/// work per block.
pub fn retargeting_spec(hardest: u64) -> ChainSpec {
    let mut spec = easy_spec();
    spec.retarget = Some(RetargetRule {
        block_interval_ms: 1_000,
        window_blocks: 2,
        clamp_factor: 4,
        easiest: DifficultyBits::new(1).unwrap(),
        hardest: DifficultyBits::new(hardest).unwrap(),
    });
    spec
}

/// A chain on a fresh in-memory store.
pub fn open(spec: ChainSpec) -> Chain<MemStore> {
    Chain::open(spec, MemStore::new(), ChainConfig::default()).expect("a fresh store opens")
}

/// A signed transfer between dev accounts.
pub fn transfer(
    spec: &ChainSpec,
    from: u64,
    to: u64,
    amount: u64,
    fee: u64,
    nonce: u64,
) -> Transfer {
    UnsignedTransfer {
        to: Keypair::dev(to).address(),
        amount: Amount(amount),
        fee: Amount(fee),
        nonce,
        memo: Memo::default(),
    }
    .sign(&Keypair::dev(from), &spec.genesis_hash())
}

/// A mined block on `parent` (any known block, not only the tip) at `time`, paying the
/// reward and fees to dev account `miner`.
pub fn block_on(
    chain: &Chain<MemStore>,
    parent: BlockHash,
    transfers: Vec<Transfer>,
    time: Timestamp,
    miner: u64,
) -> Block {
    let spec = chain.spec();
    let context = chain
        .tree()
        .child_context(&parent, spec, time)
        .expect("parent is known");
    let fees = Amount::checked_sum(transfers.iter().map(|t| t.fee)).unwrap();
    let mut txs = vec![Transaction::Coinbase(Coinbase {
        height: context.height,
        to: Keypair::dev(miner).address(),
        amount: spec.block_reward.checked_add(fees).unwrap(),
        extra_nonce: 0,
    })];
    txs.extend(transfers.into_iter().map(Transaction::Transfer));
    let mut block = Block {
        header: Header {
            version: HEADER_VERSION,
            height: context.height,
            prev_hash: parent,
            tx_root: tx_root(&txs),
            time,
            target: context.expected_target,
            nonce: 0,
        },
        txs,
    };
    powchain_chain::miner::mine(&mut block);
    block
}

/// The state a naive model computes by replaying `blocks` (genesis first) from nothing.
pub fn replay(spec: &ChainSpec, blocks: &[Block]) -> BTreeMap<Address, Account> {
    let empty = BTreeMap::new();
    let mut overlay = StateOverlay::new(&empty);
    for block in blocks {
        overlay
            .connect_block(&block.txs, spec)
            .expect("best-chain blocks replay");
    }
    overlay
        .into_changes()
        .into_iter()
        .filter_map(|(address, account)| account.map(|a| (address, a)))
        .collect()
}

/// The best chain's blocks, genesis first.
pub fn best_blocks(chain: &Chain<MemStore>) -> Vec<Block> {
    (0..=chain.tip().height.0)
        .map(|h| {
            chain
                .block_at(Height(h))
                .unwrap()
                .expect("best-chain block stored")
                .as_ref()
                .clone()
        })
        .collect()
}

/// Sum of all balances.
pub fn total_supply(chain: &Chain<MemStore>) -> u128 {
    chain
        .store()
        .accounts()
        .values()
        .map(|a| u128::from(a.balance.0))
        .sum()
}

/// Allocations plus the rewards of every best-chain block after genesis.
pub fn expected_supply(chain: &Chain<MemStore>) -> u128 {
    let spec = chain.spec();
    let allocations: u128 = spec
        .genesis_allocations()
        .iter()
        .map(|a| u128::from(a.balance.0))
        .sum();
    allocations + u128::from(spec.block_reward.0) * u128::from(chain.tip().height.0)
}

/// A dev account's confirmed balance.
pub fn balance(chain: &Chain<MemStore>, index: u64) -> u64 {
    chain
        .store()
        .account(&Keypair::dev(index).address())
        .unwrap()
        .map_or(0, |a| a.balance.0)
}
