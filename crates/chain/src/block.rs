//! Blocks, the transaction root, and block validation.
//!
//! A [`Block`] is what arrives from a peer or a file: nothing about it is trusted.
//! [`check_block`] turns it into a [`CheckedBlock`], the only kind the block tree stores,
//! after every check that does not need account state: the link to its parent, proof of
//! work, the target the chain demands, timestamps, limits, the transaction root, the coinbase
//! and every signature. What needs state (nonces, balances, known accounts) is checked when
//! the block is connected to the best chain (`state::connect_block`).

use crate::hashing::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hash::{BlockHash, Hash512, TxId};
use crate::header::{HEADER_BYTES, HEADER_VERSION, Header};
use crate::parallel;
use crate::pow::Target;
use crate::sigcache::SigCache;
use crate::spec::ChainSpec;
use crate::tx::{Transaction, Transfer, TxError, first_bad_signature};
use crate::units::{Amount, Height, Timestamp};

/// A block as received: a header and its transactions, coinbase first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions; the first is the coinbase.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// The block's hash (hashes the header; callers that need it often keep it).
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// Header plus the consensus encodings of the transactions: what the byte limit counts.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES + self.txs.iter().map(Transaction::encoded_len).sum::<usize>()
    }
}

/// Merkle root of the transactions' ids.
///
/// Leaves are SHA-512(0x00 || txid), inner nodes SHA-512(0x01 || left || right), and an odd
/// node at the end of a level moves up unchanged. The prefixes keep a leaf from passing for
/// an inner node, and not duplicating the odd node avoids Bitcoin's CVE-2012-2459, where two
/// different transaction lists had the same root. An empty list has the all-zero root.
pub fn tx_root(txs: &[Transaction]) -> Hash512 {
    let ids: Vec<TxId> = txs.iter().map(Transaction::id).collect();
    tx_root_of_ids(&ids)
}

/// [`tx_root`] over ids already computed.
pub fn tx_root_of_ids(ids: &[TxId]) -> Hash512 {
    let mut level: Vec<Hash512> =
        parallel::map(ids, |id| Hash512::digest_parts(&[&[0x00], &id.0.0]));
    if level.is_empty() {
        return Hash512::ZERO;
    }
    while level.len() > 1 {
        level = parallel::map_chunks(&level, 2, |pair| match pair {
            [left, right] => Hash512::digest_parts(&[&[0x01], &left.0, &right.0]),
            [odd] => *odd,
            _ => unreachable!("chunks(2) yields one or two items"),
        });
    }
    level[0]
}

/// What a block is checked against: facts about its parent that the block tree knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// The hash the block must name as its parent.
    pub parent: BlockHash,
    /// The height the block must have (parent's + 1).
    pub height: Height,
    /// The target the chain demands at this height.
    pub expected_target: Target,
    /// Median time of the last 11 blocks up to the parent; the block must be later.
    pub median_time_past: Timestamp,
    /// The validating node's clock.
    pub now: Timestamp,
}

/// A block that passed [`check_block`], with what the checks computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBlock {
    block: Arc<Block>,
    hash: BlockHash,
    txids: Vec<TxId>,
    fees: Amount,
}

impl CheckedBlock {
    /// The block.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// Its hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// Its header.
    pub fn header(&self) -> &Header {
        &self.block.header
    }

    /// Its transactions' ids, in order.
    pub fn txids(&self) -> &[TxId] {
        &self.txids
    }

    /// The sum of its transfers' fees.
    pub fn fees(&self) -> Amount {
        self.fees
    }

    /// Genesis, which is not validated: it is defined by the spec.
    pub fn genesis(spec: &ChainSpec) -> CheckedBlock {
        let block = spec.genesis_block();
        CheckedBlock {
            hash: block.hash(),
            txids: block.txs.iter().map(Transaction::id).collect(),
            fees: Amount::ZERO,
            block: Arc::new(block),
        }
    }
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// A header version this node does not know.
    #[error("block version {0} is not {HEADER_VERSION}")]
    BadVersion(u32),
    /// The header names another parent than the one it was checked against.
    #[error("block's parent is {got:?}, expected {expected:?}")]
    WrongParent {
        /// The parent it was checked against.
        expected: BlockHash,
        /// The parent the header names.
        got: BlockHash,
    },
    /// The header's height is not its parent's plus one.
    #[error("block claims height {got}, but its parent makes it {expected}")]
    WrongHeight {
        /// Parent's height + 1.
        expected: Height,
        /// The header's height.
        got: Height,
    },
    /// The header's target is not the one the chain demands.
    #[error("block's target {got:#x} is not the chain's {expected:#x}")]
    WrongTarget {
        /// What the chain demands.
        expected: u128,
        /// What the header says.
        got: u128,
    },
    /// The hash does not meet the target.
    #[error("block hash {0:?} does not meet its target: bad proof of work")]
    BadProofOfWork(BlockHash),
    /// Time not after the median of the last 11 blocks.
    #[error("block time {time} is not after the median time past {median}")]
    TimeTooOld {
        /// The block's time.
        time: Timestamp,
        /// The median it must exceed.
        median: Timestamp,
    },
    /// Time too far past the validating node's clock.
    #[error("block time {time} is more than {max_ms} ms after now ({now})")]
    TimeTooNew {
        /// The block's time.
        time: Timestamp,
        /// The node's clock.
        now: Timestamp,
        /// The allowed lead.
        max_ms: u64,
    },
    /// No transactions at all: even the coinbase is missing.
    #[error("block has no transactions; the first must be the coinbase")]
    NoCoinbase,
    /// More transactions than the chain allows.
    #[error("block has {count} transactions; the limit is {max}")]
    TooManyTxs {
        /// How many.
        count: usize,
        /// The limit.
        max: u32,
    },
    /// More bytes than the chain allows.
    #[error("block is {bytes} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: u32,
    },
    /// The first transaction is not a coinbase.
    #[error("the first transaction is not a coinbase")]
    FirstNotCoinbase,
    /// A coinbase anywhere but first.
    #[error("transaction {0} is a second coinbase")]
    ExtraCoinbase(usize),
    /// The coinbase names another height.
    #[error("coinbase is for height {got}, the block is at {expected}")]
    CoinbaseHeight {
        /// The block's height.
        expected: Height,
        /// The coinbase's.
        got: Height,
    },
    /// The coinbase pays something other than reward plus fees.
    #[error("coinbase pays {got}, but reward plus fees is {expected}")]
    CoinbaseAmount {
        /// Reward plus fees.
        expected: Amount,
        /// What it pays.
        got: Amount,
    },
    /// Fees or reward overflow.
    #[error("reward plus fees overflows")]
    FeesOverflow,
    /// The transaction root does not match the transactions.
    #[error("transaction root does not match the transactions")]
    BadTxRoot,
    /// A transaction appears twice.
    #[error("transaction {0:?} appears twice")]
    DuplicateTx(TxId),
    /// A transaction is invalid.
    #[error("transaction {index} is invalid: {error}")]
    BadTransaction {
        /// Its position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
}

impl BlockError {
    /// Whether this verdict holds for every block with this hash, so that the hash can be
    /// remembered as invalid. True for the rules on the header, and for the rules on the
    /// transactions once the transaction root has tied them to the header. False for the
    /// clock-dependent future-time rule, and for a body that does not match its header or is
    /// too big to hash: another body could be the right one, and remembering the hash would
    /// let anyone censor a valid block by sending it with a bad body first.
    pub fn binds_hash(&self) -> bool {
        !matches!(
            self,
            BlockError::TimeTooNew { .. }
                | BlockError::BadTxRoot
                | BlockError::TooManyTxs { .. }
                | BlockError::TooLarge { .. }
                | BlockError::WrongParent { .. }
        )
    }

    /// Whether the peer that sent the block is at fault, so that it is dropped and refused.
    /// Wider than [`BlockError::binds_hash`]: a body that does not match its header, or is too
    /// big, condemns no hash (another body could be the right one) but is the doing of whoever
    /// sent it. Not at fault: a time ahead of our clock (the clock may be ours that is wrong)
    /// and a parent other than the one the block was checked against (our bookkeeping).
    pub fn blames_sender(&self) -> bool {
        !matches!(
            self,
            BlockError::TimeTooNew { .. } | BlockError::WrongParent { .. }
        )
    }
}

/// The rules every transfer must meet whatever the state: amount, self-transfer, fee, size.
/// The signature is checked separately because it is the expensive part.
pub fn check_transfer_rules(transfer: &Transfer, spec: &ChainSpec) -> Result<(), TxError> {
    if transfer.amount == Amount::ZERO || transfer.amount > spec.amount_max {
        return Err(TxError::InvalidAmount {
            amount: transfer.amount,
            max: spec.amount_max,
        });
    }
    if transfer.from == transfer.to {
        return Err(TxError::SelfTransfer);
    }
    if transfer.fee < spec.fee_min {
        return Err(TxError::FeeTooLow {
            fee: transfer.fee,
            min: spec.fee_min,
        });
    }
    let memo_bytes_max = spec.limits.memo_bytes_max as usize;
    if transfer.memo.len() > memo_bytes_max {
        return Err(TxError::TooLarge {
            bytes: transfer.encoded_len(),
            memo_bytes: transfer.memo.len(),
            memo_bytes_max,
        });
    }
    transfer.cost().ok_or(TxError::CostOverflow)?;
    Ok(())
}

/// Checks everything about `block` that does not need account state; a signature
/// `signatures` holds is not checked again.
pub fn check_block(
    block: Block,
    spec: &ChainSpec,
    chain_id: &BlockHash,
    context: &BlockContext,
    signatures: &SigCache,
) -> Result<CheckedBlock, BlockError> {
    let header = &block.header;
    if header.version != HEADER_VERSION {
        return Err(BlockError::BadVersion(header.version));
    }
    if header.prev_hash != context.parent {
        return Err(BlockError::WrongParent {
            expected: context.parent,
            got: header.prev_hash,
        });
    }
    if header.height != context.height {
        return Err(BlockError::WrongHeight {
            expected: context.height,
            got: header.height,
        });
    }
    if header.target != context.expected_target {
        return Err(BlockError::WrongTarget {
            expected: context.expected_target.0,
            got: header.target.0,
        });
    }
    let hash = header.hash();
    if !header.target.is_met_by(&hash.0) {
        return Err(BlockError::BadProofOfWork(hash));
    }
    if header.time <= context.median_time_past {
        return Err(BlockError::TimeTooOld {
            time: header.time,
            median: context.median_time_past,
        });
    }
    let max_ms = spec.limits.block_time_future_max_ms;
    if header.time > context.now.saturating_add_ms(max_ms) {
        return Err(BlockError::TimeTooNew {
            time: header.time,
            now: context.now,
            max_ms,
        });
    }
    check_limits(&block, spec)?;
    let txids: Vec<TxId> = parallel::map(&block.txs, Transaction::id);
    if tx_root_of_ids(&txids) != header.tx_root {
        return Err(BlockError::BadTxRoot);
    }
    // From here on the transactions are the ones the header hash commits to.
    check_body(&block, spec)?;
    let mut seen = HashSet::with_capacity_and_hasher(txids.len(), Default::default());
    if let Some(duplicate) = txids.iter().find(|id| !seen.insert(**id)) {
        return Err(BlockError::DuplicateTx(*duplicate));
    }
    let fees = check_coinbase_amount(&block, spec)?;
    // All the block's signatures at once, in batches across the cores; the first bad one
    // is named by its place in the block.
    let (places, transfers): (Vec<usize>, Vec<&Transfer>) = block
        .txs
        .iter()
        .enumerate()
        .filter_map(|(index, tx)| Some((index, tx.as_transfer()?)))
        .unzip();
    if let Some(bad) = first_bad_signature(&transfers, chain_id, signatures) {
        return Err(BlockError::BadTransaction {
            index: places[bad],
            error: TxError::BadSignature,
        });
    }
    Ok(CheckedBlock {
        block: Arc::new(block),
        hash,
        txids,
        fees,
    })
}

/// Count and size limits, checked before hashing every transaction.
fn check_limits(block: &Block, spec: &ChainSpec) -> Result<(), BlockError> {
    let limits = &spec.limits;
    if block.txs.len() > limits.block_txs_max as usize {
        return Err(BlockError::TooManyTxs {
            count: block.txs.len(),
            max: limits.block_txs_max,
        });
    }
    let bytes = block.encoded_len();
    if bytes > limits.block_bytes_max as usize {
        return Err(BlockError::TooLarge {
            bytes,
            max: limits.block_bytes_max,
        });
    }
    Ok(())
}

/// Coinbase placement and height, and every transfer's stateless rules.
fn check_body(block: &Block, spec: &ChainSpec) -> Result<(), BlockError> {
    let Some(first) = block.txs.first() else {
        return Err(BlockError::NoCoinbase);
    };
    let Transaction::Coinbase(coinbase) = first else {
        return Err(BlockError::FirstNotCoinbase);
    };
    if coinbase.height != block.header.height {
        return Err(BlockError::CoinbaseHeight {
            expected: block.header.height,
            got: coinbase.height,
        });
    }
    for (index, tx) in block.txs.iter().enumerate().skip(1) {
        match tx {
            Transaction::Coinbase(_) => return Err(BlockError::ExtraCoinbase(index)),
            Transaction::Transfer(transfer) => check_transfer_rules(transfer, spec)
                .map_err(|error| BlockError::BadTransaction { index, error })?,
        }
    }
    Ok(())
}

/// Checks that the coinbase pays exactly reward plus fees; returns the fees.
fn check_coinbase_amount(block: &Block, spec: &ChainSpec) -> Result<Amount, BlockError> {
    let fees = Amount::checked_sum(
        block
            .txs
            .iter()
            .filter_map(Transaction::as_transfer)
            .map(|t| t.fee),
    )
    .ok_or(BlockError::FeesOverflow)?;
    let expected = spec
        .block_reward
        .checked_add(fees)
        .ok_or(BlockError::FeesOverflow)?;
    let got = block
        .txs
        .first()
        .and_then(Transaction::as_coinbase)
        .map(|c| c.amount)
        .ok_or(BlockError::FirstNotCoinbase)?;
    if got != expected {
        return Err(BlockError::CoinbaseAmount { expected, got });
    }
    Ok(fees)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::pow::DifficultyBits;
    use crate::tx::{Coinbase, Memo, UnsignedTransfer};

    /// A dev spec with a trivial difficulty, so a test block needs a handful of hashes.
    fn spec() -> ChainSpec {
        ChainSpec::dev().with_fixed_difficulty(DifficultyBits::new(1).unwrap())
    }

    fn pay(spec: &ChainSpec, amount: u64, fee: u64, memo: usize) -> Transfer {
        UnsignedTransfer {
            to: Keypair::dev(2).address(),
            amount: Amount(amount),
            fee: Amount(fee),
            nonce: 0,
            memo: Memo::new(vec![b'm'; memo]).unwrap(),
        }
        .sign(&Keypair::dev(1), &spec.genesis_hash())
    }

    fn context(spec: &ChainSpec) -> BlockContext {
        BlockContext {
            parent: spec.genesis_hash(),
            height: Height(1),
            expected_target: spec.genesis_target(),
            median_time_past: Timestamp(spec.genesis_time_ms),
            now: Timestamp(spec.genesis_time_ms + 10_000),
        }
    }

    /// A mined block at height 1 holding `txs` as given (coinbase included or not).
    fn block_of(spec: &ChainSpec, txs: Vec<Transaction>) -> Block {
        let mut block = Block {
            header: Header {
                version: HEADER_VERSION,
                height: Height(1),
                prev_hash: spec.genesis_hash(),
                tx_root: tx_root(&txs),
                time: Timestamp(spec.genesis_time_ms + 1),
                target: spec.genesis_target(),
                nonce: 0,
            },
            txs,
        };
        crate::miner::mine(&mut block);
        block
    }

    fn coinbase(spec: &ChainSpec, height: u64, fees: u64) -> Transaction {
        Transaction::Coinbase(Coinbase {
            height: Height(height),
            to: Keypair::dev(0).address(),
            amount: Amount(spec.block_reward.0 + fees),
            extra_nonce: 0,
        })
    }

    fn rejects(spec: &ChainSpec, block: Block) -> BlockError {
        let chain_id = spec.genesis_hash();
        check_block(block, spec, &chain_id, &context(spec), &SigCache::default()).unwrap_err()
    }

    #[test]
    fn a_sender_is_blamed_for_bodies_that_condemn_no_hash() {
        let unbound = [
            BlockError::BadTxRoot,
            BlockError::TooManyTxs { count: 9, max: 8 },
            BlockError::TooLarge { bytes: 9, max: 8 },
        ];
        for error in unbound {
            assert!(!error.binds_hash(), "{error}");
            assert!(error.blames_sender(), "{error}");
        }
        let clock = BlockError::TimeTooNew {
            time: Timestamp(2),
            now: Timestamp(1),
            max_ms: 0,
        };
        assert!(!clock.binds_hash() && !clock.blames_sender());
        assert!(BlockError::DuplicateTx(TxId::ZERO).blames_sender());
    }

    #[test]
    fn a_well_formed_block_passes_and_keeps_what_was_computed() {
        let spec = spec();
        let transfer = pay(&spec, 5, 2, 0);
        let block = block_of(
            &spec,
            vec![coinbase(&spec, 1, 2), Transaction::Transfer(transfer)],
        );
        let hash = block.hash();
        let checked = check_block(
            block,
            &spec,
            &spec.genesis_hash(),
            &context(&spec),
            &SigCache::default(),
        )
        .unwrap();
        assert_eq!(checked.hash(), hash);
        assert_eq!(checked.fees(), Amount(2));
        assert_eq!(checked.txids().len(), 2);
    }

    #[test]
    fn a_bad_signature_anywhere_in_a_block_is_named_by_its_place() {
        let spec = spec();
        let chain_id = spec.genesis_hash();
        let transfers: Vec<Transfer> = (0..150)
            .map(|nonce| {
                UnsignedTransfer {
                    to: Keypair::dev(2).address(),
                    amount: Amount(1),
                    fee: Amount(1),
                    nonce,
                    memo: Memo::default(),
                }
                .sign(&Keypair::dev(1), &chain_id)
            })
            .collect();
        for bad in [0, 63, 64, 149] {
            let mut txs = vec![coinbase(&spec, 1, 150)];
            for (index, transfer) in transfers.iter().enumerate() {
                let mut transfer = transfer.clone();
                if index == bad {
                    transfer.signature.0[10] ^= 1;
                }
                txs.push(Transaction::Transfer(transfer));
            }
            let cache = SigCache::default();
            let error = check_block(
                block_of(&spec, txs),
                &spec,
                &chain_id,
                &context(&spec),
                &cache,
            )
            .unwrap_err();
            assert_eq!(
                error,
                BlockError::BadTransaction {
                    index: bad + 1,
                    error: TxError::BadSignature
                }
            );
            // The good ones before it were remembered; none after it was taken as good.
            assert_eq!(cache.len(), bad);
        }
        let mut txs = vec![coinbase(&spec, 1, 150)];
        txs.extend(transfers.into_iter().map(Transaction::Transfer));
        let cache = SigCache::default();
        check_block(
            block_of(&spec, txs),
            &spec,
            &chain_id,
            &context(&spec),
            &cache,
        )
        .unwrap();
        assert_eq!(cache.len(), 150);
    }

    #[test]
    fn coinbase_placement_and_height() {
        let spec = spec();
        let transfer = Transaction::Transfer(pay(&spec, 5, 1, 0));
        assert_eq!(
            rejects(&spec, block_of(&spec, vec![])),
            BlockError::NoCoinbase
        );
        assert_eq!(
            rejects(&spec, block_of(&spec, vec![transfer.clone()])),
            BlockError::FirstNotCoinbase
        );
        let two = vec![coinbase(&spec, 1, 0), coinbase(&spec, 1, 0)];
        assert_eq!(
            rejects(&spec, block_of(&spec, two)),
            BlockError::ExtraCoinbase(1)
        );
        assert!(matches!(
            rejects(&spec, block_of(&spec, vec![coinbase(&spec, 2, 0)])),
            BlockError::CoinbaseHeight { .. }
        ));
        let twice = vec![coinbase(&spec, 1, 2), transfer.clone(), transfer];
        assert!(matches!(
            rejects(&spec, block_of(&spec, twice)),
            BlockError::DuplicateTx(_)
        ));
    }

    #[test]
    fn count_and_size_limits() {
        let mut spec = spec();
        spec.limits.block_txs_max = 1;
        let txs = vec![
            coinbase(&spec, 1, 1),
            Transaction::Transfer(pay(&spec, 5, 1, 0)),
        ];
        assert_eq!(
            rejects(&spec, block_of(&spec, txs.clone())),
            BlockError::TooManyTxs { count: 2, max: 1 }
        );
        // The limit is part of the rules, so the genesis hash changes with it: build the
        // block for the changed spec (its size does not depend on the genesis hash).
        let bytes = block_of(&self::spec(), txs).encoded_len();
        let mut spec = self::spec();
        spec.limits.block_bytes_max = (bytes - 1) as u32;
        let txs = vec![
            coinbase(&spec, 1, 1),
            Transaction::Transfer(pay(&spec, 5, 1, 0)),
        ];
        assert_eq!(
            rejects(&spec, block_of(&spec, txs)),
            BlockError::TooLarge {
                bytes,
                max: spec.limits.block_bytes_max
            }
        );
    }

    #[test]
    fn header_rules() {
        let spec = spec();
        let mut block = block_of(&spec, vec![coinbase(&spec, 1, 0)]);
        block.header.version = 2;
        crate::miner::mine(&mut block);
        assert_eq!(rejects(&spec, block), BlockError::BadVersion(2));
        let mut block = block_of(&spec, vec![coinbase(&spec, 1, 0)]);
        block.header.prev_hash = BlockHash::ZERO;
        crate::miner::mine(&mut block);
        assert!(matches!(
            rejects(&spec, block),
            BlockError::WrongParent { .. }
        ));
        let mut block = block_of(&spec, vec![coinbase(&spec, 1, 0)]);
        block.header.height = Height(2);
        crate::miner::mine(&mut block);
        assert!(matches!(
            rejects(&spec, block),
            BlockError::WrongHeight { .. }
        ));
    }

    #[test]
    fn transfer_rules_each_have_their_error() {
        let spec = spec();
        let rule = |amount, fee, memo| check_transfer_rules(&pay(&spec, amount, fee, memo), &spec);
        assert_eq!(rule(5, 1, 0), Ok(()));
        assert!(matches!(rule(0, 1, 0), Err(TxError::InvalidAmount { .. })));
        assert_eq!(
            rule(5, 0, 0),
            Err(TxError::FeeTooLow {
                fee: Amount(0),
                min: Amount(1)
            })
        );
        let memo_bytes_max = spec.limits.memo_bytes_max as usize;
        assert!(matches!(
            rule(5, 1, memo_bytes_max + 1),
            Err(TxError::TooLarge { memo_bytes, .. }) if memo_bytes == memo_bytes_max + 1
        ));
        assert_eq!(rule(5, 1, memo_bytes_max), Ok(()));
        assert_eq!(rule(u64::MAX, 1, 0), Err(TxError::CostOverflow));
        let mut to_self = pay(&spec, 5, 1, 0);
        to_self.to = to_self.from;
        assert_eq!(
            check_transfer_rules(&to_self, &spec),
            Err(TxError::SelfTransfer)
        );
        // A bad signature is caught by check_block, as the last and most expensive check.
        let mut forged = pay(&spec, 5, 1, 0);
        forged.amount = Amount(6);
        let block = block_of(
            &spec,
            vec![coinbase(&spec, 1, 1), Transaction::Transfer(forged)],
        );
        assert_eq!(
            rejects(&spec, block),
            BlockError::BadTransaction {
                index: 1,
                error: TxError::BadSignature
            }
        );
    }

    fn ids(n: usize) -> Vec<TxId> {
        (0..n)
            .map(|i| TxId(Hash512::digest(&i.to_be_bytes())))
            .collect()
    }

    #[test]
    fn tx_root_shapes() {
        assert_eq!(tx_root_of_ids(&[]), Hash512::ZERO);
        let one = ids(1);
        assert_eq!(
            tx_root_of_ids(&one),
            Hash512::digest_parts(&[&[0], &one[0].0.0])
        );
        // Every length gives a distinct root, and order matters.
        let roots: HashSet<Hash512> = (1..20).map(|n| tx_root_of_ids(&ids(n))).collect();
        assert_eq!(roots.len(), 19);
        let mut swapped = ids(4);
        swapped.swap(1, 2);
        assert_ne!(tx_root_of_ids(&swapped), tx_root_of_ids(&ids(4)));
    }

    #[test]
    fn odd_levels_are_not_duplicated() {
        // Bitcoin's mutation: [a, b, c] and [a, b, c, c] must not share a root.
        let three = ids(3);
        let mut four = three.clone();
        four.push(three[2]);
        assert_ne!(tx_root_of_ids(&three), tx_root_of_ids(&four));
    }
}
