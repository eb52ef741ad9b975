//! Compact blocks, after BIP 152: a block sent as its header, the coinbase and a 6-byte
//! short id per transfer, rebuilt by the receiver from the transfers it already holds.
//!
//! A block of a megabyte is mostly transfers the receiver has seen a few seconds earlier,
//! relayed on their own. Sent whole, every hop carries them a second time; sent compact, a
//! hop carries 6 bytes per transfer (about 40 KB for a 1 MB block), and the receiver asks
//! for the few it lacks by their place in the block.
//!
//! **Short ids** are SipHash-2-4 of the transfer id, keyed per block and per sender: the key
//! is the first 16 bytes of `H(block hash ‖ nonce)`, with a nonce the sender draws. Nobody
//! can grind transfers whose short ids collide in every block (the key is only known once
//! the block exists, and each sender picks its own nonce), so a collision is an accident of
//! 48 bits, which the receiver survives: an id two pool transfers share, or that the
//! compact block gives twice, is asked for like a missing one, and a rebuilt block whose
//! transfer root does not match its header is fetched whole.
//!
//! This module is the pure part: building a compact block from a block, and rebuilding one
//! from a pool ([`Rebuild`]). Which peer is asked, and what the node does on each outcome,
//! is `node::compact`.

use std::collections::HashMap;
use std::hash::Hasher;

use powchain_chain::block::tx_root_of_ids;
use powchain_chain::hash::Hash512;
use powchain_chain::{Block, BlockHash, Header, Transaction, Transfer, TxId};
use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher24;

/// Bytes in a short transfer id (BIP 152's 6).
pub const SHORT_ID_BYTES: usize = 6;

/// A transfer's id, shortened with a per-block key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShortId(pub [u8; SHORT_ID_BYTES]);

/// A transaction the sender includes whole, at its place in the block: the coinbase,
/// which no receiver can have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefilled {
    /// Its index in the block.
    pub index: u32,
    /// The transaction.
    pub tx: Transaction,
}

/// A block as its header, the transactions sent whole, and a short id for each of the rest,
/// in block order (the places the prefilled ones leave free).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactBlock {
    /// The block's header.
    pub header: Header,
    /// The sender's nonce for this block's short-id key.
    pub nonce: u64,
    /// The other transactions' short ids.
    pub short_ids: Vec<ShortId>,
    /// Transactions sent whole, by ascending index.
    pub prefilled: Vec<Prefilled>,
}

/// The SipHash key of one block's short ids, from one sender.
#[derive(Clone, Copy, Debug)]
pub struct ShortIdKey {
    k0: u64,
    k1: u64,
}

impl ShortIdKey {
    /// The key for block `hash` with the sender's `nonce`.
    pub fn new(hash: &BlockHash, nonce: u64) -> ShortIdKey {
        let digest = Hash512::digest_parts(&[&hash.0.0, &nonce.to_le_bytes()]);
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest.0[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        ShortIdKey {
            k0: word(0),
            k1: word(8),
        }
    }

    /// The short id of transfer `id`: SipHash-2-4's low 48 bits.
    pub fn short_id(&self, id: &TxId) -> ShortId {
        let mut hasher = SipHasher24::new_with_keys(self.k0, self.k1);
        hasher.write(&id.0.0);
        let bytes = hasher.finish().to_le_bytes();
        let mut short = [0u8; SHORT_ID_BYTES];
        short.copy_from_slice(&bytes[..SHORT_ID_BYTES]);
        ShortId(short)
    }
}

impl CompactBlock {
    /// `block` in compact form with the sender's `nonce`: the coinbase sent whole, every
    /// transfer by its short id.
    pub fn of(block: &Block, hash: &BlockHash, nonce: u64) -> CompactBlock {
        let key = ShortIdKey::new(hash, nonce);
        let mut short_ids = Vec::with_capacity(block.txs.len().saturating_sub(1));
        let mut prefilled = Vec::new();
        for (index, tx) in block.txs.iter().enumerate() {
            match tx {
                Transaction::Transfer(transfer) => short_ids.push(key.short_id(&transfer.id())),
                Transaction::Coinbase(_) => prefilled.push(Prefilled {
                    index: index as u32,
                    tx: tx.clone(),
                }),
            }
        }
        CompactBlock {
            header: block.header,
            nonce,
            short_ids,
            prefilled,
        }
    }

    /// How many transactions the block holds.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }
}

/// Why a compact block cannot be rebuilt at all, whatever the pool holds: the sender's
/// doing (an honest sender never sends one), so a disconnect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// More transactions than a block may hold.
    #[error("compact block of {count} transactions, over the block limit of {max}")]
    TooManyTransactions {
        /// Transactions it claims.
        count: usize,
        /// The chain's limit.
        max: usize,
    },
    /// A prefilled index out of order or past the end.
    #[error("compact block prefills index {0} out of order or past its end")]
    BadPrefilledIndex(u32),
    /// No coinbase, or a transfer sent in its place.
    #[error("compact block does not start with its coinbase")]
    NoCoinbase,
    /// An answer with another number of transfers than were asked for.
    #[error("{sent} transfers sent for {asked} asked")]
    WrongTransferCount {
        /// How many were asked for.
        asked: usize,
        /// How many came.
        sent: usize,
    },
}

/// A block being rebuilt from a compact block: the places filled so far, and the ones the
/// sender is asked for.
#[derive(Debug)]
pub struct Rebuild {
    header: Header,
    slots: Vec<Option<Transaction>>,
    /// The ids of the pool's transfers in `slots`, kept so the root check does not hash
    /// them again.
    ids: Vec<Option<TxId>>,
    missing: Vec<u32>,
}

/// What a compact block needs next.
#[derive(Debug)]
pub enum Rebuilt {
    /// Every transaction was at hand: the block, whose transfer root matched its header.
    Block(Block),
    /// These places (ascending) are to be asked of the sender.
    Missing(Rebuild),
    /// The pieces do not make the block the header commits to (a short-id collision that
    /// chose the wrong transfer, or a sender that lied): fetch it whole.
    Mismatch,
    /// The compact block names one short id twice: BIP 152 fetches such a block whole.
    DuplicateShortIds,
}

impl Rebuild {
    /// Starts rebuilding `compact` (of block `hash`, its header's) from `pool`'s transfers,
    /// after checking its shape against a block's limit of `block_txs_max` transactions.
    pub fn start<'a>(
        compact: &CompactBlock,
        hash: &BlockHash,
        block_txs_max: usize,
        pool: impl IntoIterator<Item = (&'a TxId, &'a Transfer)>,
    ) -> Result<Rebuilt, CompactError> {
        let count = compact.tx_count();
        if count > block_txs_max {
            return Err(CompactError::TooManyTransactions {
                count,
                max: block_txs_max,
            });
        }
        let mut slots: Vec<Option<Transaction>> = vec![None; count];
        let mut ids: Vec<Option<TxId>> = vec![None; count];
        let mut previous: Option<u32> = None;
        for prefilled in &compact.prefilled {
            let index = prefilled.index;
            if previous.is_some_and(|p| index <= p) || index as usize >= count {
                return Err(CompactError::BadPrefilledIndex(index));
            }
            previous = Some(index);
            slots[index as usize] = Some(prefilled.tx.clone());
        }
        if !matches!(slots.first(), Some(Some(Transaction::Coinbase(_))))
            || compact
                .prefilled
                .iter()
                .skip(1)
                .any(|p| matches!(p.tx, Transaction::Coinbase(_)))
        {
            return Err(CompactError::NoCoinbase);
        }
        // Each short id's place in the block: the free places, in order.
        let free = (0..count as u32).filter(|index| slots[*index as usize].is_none());
        let mut places: HashMap<ShortId, u32> = HashMap::with_capacity(compact.short_ids.len());
        for (short, index) in compact.short_ids.iter().zip(free) {
            if places.insert(*short, index).is_some() {
                return Ok(Rebuilt::DuplicateShortIds);
            }
        }
        let key = ShortIdKey::new(hash, compact.nonce);
        // Places two pool transfers both claim: neither is trusted, the sender is asked.
        let mut ambiguous: Vec<u32> = Vec::new();
        for (id, transfer) in pool {
            let Some(index) = places.get(&key.short_id(id)) else {
                continue;
            };
            let slot = &mut slots[*index as usize];
            if slot.is_some() {
                ambiguous.push(*index);
            } else {
                *slot = Some(Transaction::Transfer(transfer.clone()));
                ids[*index as usize] = Some(*id);
            }
        }
        for index in ambiguous {
            slots[index as usize] = None;
            ids[index as usize] = None;
        }
        let missing: Vec<u32> = (0..count as u32)
            .filter(|index| slots[*index as usize].is_none())
            .collect();
        let rebuild = Rebuild {
            header: compact.header,
            slots,
            ids,
            missing,
        };
        Ok(if rebuild.missing.is_empty() {
            rebuild.finish()
        } else {
            Rebuilt::Missing(rebuild)
        })
    }

    /// The places to ask the sender for, ascending.
    pub fn missing(&self) -> &[u32] {
        &self.missing
    }

    /// Fills the missing places with the sender's answer, in the order they were asked.
    pub fn fill(mut self, transfers: Vec<Transfer>) -> Result<Rebuilt, CompactError> {
        if transfers.len() != self.missing.len() {
            return Err(CompactError::WrongTransferCount {
                asked: self.missing.len(),
                sent: transfers.len(),
            });
        }
        for (index, transfer) in self.missing.drain(..).zip(transfers) {
            self.slots[index as usize] = Some(Transaction::Transfer(transfer));
        }
        Ok(self.finish())
    }

    /// The block, if its transactions make the root its header commits to.
    fn finish(self) -> Rebuilt {
        let txs: Vec<Transaction> = self.slots.into_iter().flatten().collect();
        let ids: Vec<TxId> = txs
            .iter()
            .zip(self.ids)
            .map(|(tx, id)| id.unwrap_or_else(|| tx.id()))
            .collect();
        if tx_root_of_ids(&ids) != self.header.tx_root {
            return Rebuilt::Mismatch;
        }
        Rebuilt::Block(Block {
            header: self.header,
            txs,
        })
    }
}

#[cfg(test)]
mod tests {
    use powchain_chain::block::tx_root;
    use powchain_chain::tx::Coinbase;

    use crate::message::Message;
    use powchain_chain::{Amount, ChainSpec, Height, Keypair};

    use super::*;

    fn transfers(count: u64) -> Vec<Transfer> {
        powchain_testkit::transfers(&ChainSpec::dev().genesis_hash(), 0, 1, 0..count)
    }

    fn block_of(transfers: &[Transfer]) -> Block {
        let mut txs = vec![Transaction::Coinbase(Coinbase {
            height: Height(1),
            to: Keypair::dev(0).address(),
            amount: Amount(50),
            extra_nonce: 0,
        })];
        txs.extend(transfers.iter().cloned().map(Transaction::Transfer));
        let mut header = ChainSpec::dev().genesis_block().header;
        header.height = Height(1);
        header.tx_root = tx_root(&txs);
        Block { header, txs }
    }

    fn pool(transfers: &[Transfer]) -> Vec<(TxId, Transfer)> {
        transfers.iter().map(|t| (t.id(), t.clone())).collect()
    }

    fn start(compact: &CompactBlock, pool: &[(TxId, Transfer)]) -> Rebuilt {
        let hash = compact.header.hash();
        Rebuild::start(compact, &hash, 10_000, pool.iter().map(|(id, t)| (id, t))).expect("shape")
    }

    #[test]
    fn a_full_pool_rebuilds_the_block_without_asking() {
        let transfers = transfers(40);
        let block = block_of(&transfers);
        let compact = CompactBlock::of(&block, &block.hash(), 7);
        assert_eq!(compact.short_ids.len(), 40);
        assert!(Message::CompactBlock(compact.clone()).encoded_len() * 10 < block.encoded_len());
        match start(&compact, &pool(&transfers)) {
            Rebuilt::Block(rebuilt) => assert_eq!(rebuilt, block),
            other => panic!("expected the block, got {other:?}"),
        }
    }

    #[test]
    fn what_the_pool_lacks_is_asked_for_by_place_and_filled() {
        let transfers = transfers(20);
        let block = block_of(&transfers);
        let compact = CompactBlock::of(&block, &block.hash(), 7);
        let held: Vec<Transfer> = transfers
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, t)| t.clone())
            .collect();
        let Rebuilt::Missing(rebuild) = start(&compact, &pool(&held)) else {
            panic!("expected missing transfers");
        };
        // Transfers 0, 3, 6 ... sit at block places 1, 4, 7 ... (the coinbase is place 0).
        let expected: Vec<u32> = (0..20).filter(|i| i % 3 == 0).map(|i| i + 1).collect();
        assert_eq!(rebuild.missing(), expected);
        let answer: Vec<Transfer> = expected
            .iter()
            .map(|i| transfers[*i as usize - 1].clone())
            .collect();
        assert!(matches!(
            rebuild.fill(answer[1..].to_vec()),
            Err(CompactError::WrongTransferCount { .. })
        ));
        let Rebuilt::Missing(rebuild) = start(&compact, &pool(&held)) else {
            panic!("expected missing transfers");
        };
        match rebuild.fill(answer) {
            Ok(Rebuilt::Block(rebuilt)) => assert_eq!(rebuilt, block),
            other => panic!("expected the block, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_answer_is_a_mismatch_not_a_block() {
        let transfers = transfers(6);
        let block = block_of(&transfers);
        let compact = CompactBlock::of(&block, &block.hash(), 1);
        let Rebuilt::Missing(rebuild) = start(&compact, &pool(&transfers[1..])) else {
            panic!("expected a missing transfer");
        };
        assert_eq!(rebuild.missing(), [1]);
        let others = self::transfers(8);
        assert!(matches!(
            rebuild.fill(vec![others[7].clone()]),
            Ok(Rebuilt::Mismatch)
        ));
    }

    #[test]
    fn a_short_id_two_pool_transfers_share_is_asked_for() {
        let transfers = transfers(5);
        let block = block_of(&transfers[..3]);
        let mut compact = CompactBlock::of(&block, &block.hash(), 3);
        // A collision made to order: the pool transfer not in the block gets the short id
        // of the block's second transfer, by giving the compact block that id instead.
        let key = ShortIdKey::new(&block.hash(), 3);
        let outsider = &transfers[4];
        compact.short_ids[1] = key.short_id(&outsider.id());
        let mut held = pool(&transfers);
        // The pool also holds another transfer claiming the same place: a true collision
        // needs 2^48 tries, so the test puts the outsider's id in twice under two entries.
        held.push((outsider.id(), outsider.clone()));
        let Rebuilt::Missing(rebuild) = start(&compact, &held) else {
            panic!("expected the shared place to be asked for");
        };
        assert_eq!(rebuild.missing(), [2]);
        // The sender answers with the block's own transfer: the root matches again.
        match rebuild.fill(vec![transfers[1].clone()]) {
            Ok(Rebuilt::Block(rebuilt)) => assert_eq!(rebuilt, block),
            other => panic!("expected the block, got {other:?}"),
        }
    }

    #[test]
    fn a_collision_that_picks_the_wrong_transfer_is_caught_by_the_root() {
        let transfers = transfers(4);
        let block = block_of(&transfers[..3]);
        let mut compact = CompactBlock::of(&block, &block.hash(), 3);
        let key = ShortIdKey::new(&block.hash(), 3);
        // The pool holds an outsider under the short id of place 2, and not the block's own.
        compact.short_ids[1] = key.short_id(&transfers[3].id());
        let held = pool(&[
            transfers[0].clone(),
            transfers[2].clone(),
            transfers[3].clone(),
        ]);
        assert!(matches!(start(&compact, &held), Rebuilt::Mismatch));
    }

    #[test]
    fn a_bogus_shape_is_refused_and_a_repeated_id_fetched_whole() {
        let transfers = transfers(3);
        let block = block_of(&transfers);
        let compact = CompactBlock::of(&block, &block.hash(), 9);
        let held = pool(&transfers);
        let refused = |compact: &CompactBlock, max| {
            let hash = compact.header.hash();
            Rebuild::start(compact, &hash, max, held.iter().map(|(id, t)| (id, t))).err()
        };
        assert!(matches!(
            refused(&compact, 3),
            Some(CompactError::TooManyTransactions { count: 4, max: 3 })
        ));
        let mut past_the_end = compact.clone();
        past_the_end.prefilled[0].index = 4;
        assert_eq!(
            refused(&past_the_end, 100),
            Some(CompactError::BadPrefilledIndex(4))
        );
        let mut no_coinbase = compact.clone();
        no_coinbase.prefilled[0].index = 2;
        assert_eq!(refused(&no_coinbase, 100), Some(CompactError::NoCoinbase));
        let mut twice = compact.clone();
        twice.prefilled.push(twice.prefilled[0].clone());
        assert_eq!(
            refused(&twice, 100),
            Some(CompactError::BadPrefilledIndex(0))
        );
        let mut repeated = compact;
        repeated.short_ids[2] = repeated.short_ids[0];
        assert!(matches!(
            start(&repeated, &held),
            Rebuilt::DuplicateShortIds
        ));
    }

    #[test]
    fn keys_differ_by_nonce_and_block() {
        let id = transfers(1)[0].id();
        let hash = ChainSpec::dev().genesis_hash();
        let other = ChainSpec::seed().genesis_hash();
        let a = ShortIdKey::new(&hash, 1).short_id(&id);
        assert_eq!(a, ShortIdKey::new(&hash, 1).short_id(&id));
        assert_ne!(a, ShortIdKey::new(&hash, 2).short_id(&id));
        assert_ne!(a, ShortIdKey::new(&other, 1).short_id(&id));
    }
}
