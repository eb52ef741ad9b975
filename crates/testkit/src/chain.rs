//! Test chains: the dev chain's rules, renamed and at a fixed difficulty, so that blocks come
//! as fast as a test needs and no two test files share a genesis by accident.

use powchain_chain::block::tx_root;
use powchain_chain::spec::DevAccounts;
use powchain_chain::{
    Amount, Block, BlockHash, ChainSpec, DifficultyBits, Keypair, Memo, Transfer, UnsignedTransfer,
};

/// The dev chain named `name`, at a fixed `difficulty_bits` (no retargeting), funding the dev
/// chain's own dev accounts.
///
/// The name is part of the genesis, so each caller keeps its own name (and its own genesis
/// hash); the bits must be in the chain's range (1 to 80), or the test fails here.
pub fn spec(name: &str, difficulty_bits: u64) -> ChainSpec {
    let bits = DifficultyBits::new(difficulty_bits).expect("the test's difficulty is in range");
    let mut spec = ChainSpec::dev().with_fixed_difficulty(bits);
    spec.name = name.into();
    spec
}

/// As [`spec`], funding dev accounts `0..count` with `balance` each instead: small balances
/// keep the numbers a test checks readable.
pub fn spec_with_dev_accounts(
    name: &str,
    difficulty_bits: u64,
    count: u64,
    balance: Amount,
) -> ChainSpec {
    let mut spec = spec(name, difficulty_bits);
    spec.dev_accounts = Some(DevAccounts { count, balance });
    spec
}

/// `block` with its transaction root set and a nonce that meets its own target (the first
/// one, counting from 0: test chains are easy).
pub fn seal(mut block: Block) -> Block {
    block.header.tx_root = tx_root(&block.txs);
    block.header.nonce = 0;
    while !block.header.meets_own_target() {
        block.header.nonce += 1;
    }
    block
}

/// Transfers of 1 coin (fee 1) from dev account `from` to dev account `to`, one per nonce in
/// `nonces`, signed for chain `chain_id`.
pub fn transfers(
    chain_id: &BlockHash,
    from: u64,
    to: u64,
    nonces: impl IntoIterator<Item = u64>,
) -> Vec<Transfer> {
    nonces
        .into_iter()
        .map(|nonce| {
            UnsignedTransfer {
                to: Keypair::dev(to).address(),
                amount: Amount(1),
                fee: Amount(1),
                nonce,
                memo: Memo::default(),
            }
            .sign(&Keypair::dev(from), chain_id)
        })
        .collect()
}
