//! Where the chain keeps its blocks, index and state: the [`Store`] trait, its atomic
//! [`WriteBatch`], and [`MemStore`], the in-memory implementation for tests and simulation.
//!
//! The chain changes a store only through [`Store::commit`], one batch per imported block,
//! holding the block, its index entry, its state effects, its undo data and the new tip
//! together. A durable store (redb, in the node crate) makes each batch one write
//! transaction, so a crash leaves the store either before or after the batch.

use std::collections::{BTreeMap, BTreeSet};

use crate::hashing::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::block::Block;
use crate::hash::{BlockHash, Hash512, TxId};
use crate::header::Header;
use crate::keys::Address;
use crate::mem_index::MemTxIndex;
use crate::pow::Work;
use crate::prefix::{HashPrefix, Matches};
use crate::state::{Account, AccountReader, BlockUndo};
use crate::units::Height;

/// A store failed: the disk, the file, or data that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// How far a stored block has been validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockStatus {
    /// Passed every check but those against state; never connected.
    Checked,
    /// Was connected to the best chain once, so its transactions are valid on its parent.
    Connected,
    /// Failed against state, or descends from such a block. Its body is not kept.
    Invalid,
}

/// One entry of the block index: what the block tree needs of a block without its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The block's header.
    pub header: Header,
    /// Sum of the work of the block and all its ancestors.
    pub chain_work: Work,
    /// Validation status.
    pub status: BlockStatus,
    /// Arrival order, for "first seen wins" among equal work.
    pub seq: u64,
    /// Size of the block's consensus encoding, for the side-branch byte bound.
    pub bytes: u32,
}

/// The chain's identity, written when a store is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainIdentity {
    /// The chain spec's name.
    pub name: String,
    /// Its genesis hash.
    pub genesis: BlockHash,
}

/// Changes to commit together.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Blocks to store.
    pub put_blocks: Vec<(BlockHash, Arc<Block>)>,
    /// Blocks to delete (pruned side branches, invalid blocks).
    pub delete_blocks: Vec<BlockHash>,
    /// Index entries to write.
    pub put_index: Vec<(BlockHash, IndexEntry)>,
    /// Index entries to delete.
    pub delete_index: Vec<BlockHash>,
    /// Accounts to write (`None`: delete).
    pub accounts: BTreeMap<Address, Option<Account>>,
    /// Undo data to write.
    pub put_undo: Vec<(BlockHash, BlockUndo)>,
    /// Undo data to delete (blocks that left the best chain).
    pub delete_undo: Vec<BlockHash>,
    /// Best-chain heights to set.
    pub put_best: Vec<(Height, BlockHash)>,
    /// Best-chain heights to clear (the best chain got shorter).
    pub delete_best: Vec<Height>,
    /// The new tip.
    pub tip: Option<BlockHash>,
    /// The identity, on creation.
    pub identity: Option<ChainIdentity>,
}

impl WriteBatch {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.put_blocks.is_empty()
            && self.delete_blocks.is_empty()
            && self.put_index.is_empty()
            && self.delete_index.is_empty()
            && self.accounts.is_empty()
            && self.put_undo.is_empty()
            && self.delete_undo.is_empty()
            && self.put_best.is_empty()
            && self.delete_best.is_empty()
            && self.tip.is_none()
            && self.identity.is_none()
    }
}

/// Blocks, index, best chain, state, undo data and tip.
pub trait Store: AccountReader {
    /// The chain this store holds, if it was initialised.
    fn identity(&self) -> Result<Option<ChainIdentity>, StoreError>;
    /// A block's body.
    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError>;
    /// A best-chain block's undo data.
    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError>;
    /// The best-chain block at `height`.
    fn best_at(&self, height: Height) -> Result<Option<BlockHash>, StoreError>;
    /// The tip of the best chain.
    fn tip(&self) -> Result<Option<BlockHash>, StoreError>;
    /// The whole block index, read once at start-up.
    fn index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError>;
    /// The blocks held whose hash begins with `prefix`, lowest first: at most `limit`, and
    /// whether there are more (a short id typed by a person; see [`crate::prefix`]).
    fn blocks_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<BlockHash>, StoreError>;
    /// Applies `batch` atomically: all of it or none of it. Within a batch, deletes apply
    /// after puts, so a block stored and pruned by the same import ends up absent.
    fn commit(&mut self, batch: WriteBatch) -> Result<(), StoreError>;
    /// The store's transaction index, if it keeps one (readers without it scan blocks).
    fn tx_index(&self) -> Option<&dyn TxIndex> {
        None
    }
    /// A reader of its blocks for other threads, if it has one: the API reads block bodies
    /// through it, so decoding and checking them does not hold up the node's event loop.
    fn block_reader(&self) -> Option<Arc<dyn BlockReader>> {
        None
    }
}

/// Reads committed blocks from any thread while the node runs (the redb store: each read
/// is a read transaction of its own, which sees the last commit and never waits for one).
pub trait BlockReader: Send + Sync {
    /// A block's body, checked as [`Store::block`] checks it.
    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError>;
}

/// Where the best chain holds each transaction, and each account's transactions: kept by a
/// store in the same commit as the best chain it describes.
pub trait TxIndex {
    /// The best-chain height of the block holding transaction `id`, and its position among
    /// the block's transactions.
    fn tx_location(&self, id: &TxId) -> Result<Option<(Height, u32)>, StoreError>;
    /// Up to `limit` best-chain transactions that pay `address` or are paid by it, newest
    /// first: each one's block height and position.
    fn account_txs(
        &self,
        address: &Address,
        limit: usize,
    ) -> Result<Vec<(Height, u32)>, StoreError>;
    /// The best-chain transactions whose id begins with `prefix`, lowest first: at most
    /// `limit`, and whether there are more.
    fn txs_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<TxId>, StoreError>;
}

/// A store in memory. Nothing survives the process; commits cannot fail. It survives a
/// simulated crash: the simulator keeps it while the node that used it is gone.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    identity: Option<ChainIdentity>,
    blocks: HashMap<BlockHash, Arc<Block>>,
    index: HashMap<BlockHash, IndexEntry>,
    accounts: BTreeMap<Address, Account>,
    undo: HashMap<BlockHash, BlockUndo>,
    best: BTreeMap<Height, BlockHash>,
    tip: Option<BlockHash>,
    tx_index: Option<MemTxIndex>,
    /// The stored blocks' hashes in order, kept with the transaction index (a node that
    /// serves the API finds short ids in it); without, a prefix is looked for by a scan.
    block_order: Option<BTreeSet<BlockHash>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// An empty store that keeps a transaction index ([`MemTxIndex`]): for a node that
    /// serves the API. The simulator's thousands of nodes go without.
    pub fn indexed() -> MemStore {
        MemStore {
            tx_index: Some(MemTxIndex::default()),
            block_order: Some(BTreeSet::new()),
            ..MemStore::default()
        }
    }

    /// Every account, for tests and the supply check.
    pub fn accounts(&self) -> &BTreeMap<Address, Account> {
        &self.accounts
    }

    /// How many block bodies are stored.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

impl AccountReader for MemStore {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts.get(address).copied())
    }
}

impl Store for MemStore {
    fn identity(&self) -> Result<Option<ChainIdentity>, StoreError> {
        Ok(self.identity.clone())
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError> {
        Ok(self.blocks.get(hash).cloned())
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        Ok(self.undo.get(hash).cloned())
    }

    fn best_at(&self, height: Height) -> Result<Option<BlockHash>, StoreError> {
        Ok(self.best.get(&height).copied())
    }

    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        Ok(self.tip)
    }

    fn index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        Ok(self.index.iter().map(|(h, e)| (*h, *e)).collect())
    }

    fn blocks_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<BlockHash>, StoreError> {
        let range = prefix.range();
        let (lowest, highest) = (
            BlockHash(Hash512(*range.start())),
            BlockHash(Hash512(*range.end())),
        );
        Ok(match &self.block_order {
            Some(order) => Matches::of(order.range(lowest..=highest).copied(), limit),
            None => {
                let mut found: Vec<BlockHash> = self
                    .blocks
                    .keys()
                    .filter(|hash| prefix.matches(&hash.0))
                    .copied()
                    .collect();
                found.sort_unstable();
                Matches::of(found, limit)
            }
        })
    }

    fn commit(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        if let Some(index) = &mut self.tx_index {
            // Before anything moves: the blocks leaving their heights are still here.
            let changed = batch
                .delete_best
                .iter()
                .chain(batch.put_best.iter().map(|(h, _)| h));
            for height in changed {
                if let Some(block) = self.best.get(height).and_then(|hash| self.blocks.get(hash)) {
                    index.apply_block(block, *height, false);
                }
            }
            let put: HashMap<&BlockHash, &Arc<Block>> = batch
                .put_blocks
                .iter()
                .map(|(hash, block)| (hash, block))
                .collect();
            for (height, hash) in &batch.put_best {
                let block = put.get(hash).copied().or_else(|| self.blocks.get(hash));
                if let Some(block) = block {
                    index.apply_block(block, *height, true);
                }
            }
        }
        if let Some(order) = &mut self.block_order {
            order.extend(batch.put_blocks.iter().map(|(hash, _)| *hash));
            for hash in &batch.delete_blocks {
                order.remove(hash);
            }
        }
        self.blocks.extend(batch.put_blocks);
        for hash in batch.delete_blocks {
            self.blocks.remove(&hash);
        }
        self.index.extend(batch.put_index);
        for hash in batch.delete_index {
            self.index.remove(&hash);
        }
        for (address, account) in batch.accounts {
            match account {
                Some(account) => self.accounts.insert(address, account),
                None => self.accounts.remove(&address),
            };
        }
        self.undo.extend(batch.put_undo);
        for hash in batch.delete_undo {
            self.undo.remove(&hash);
        }
        self.best.extend(batch.put_best);
        for height in batch.delete_best {
            self.best.remove(&height);
        }
        if let Some(tip) = batch.tip {
            self.tip = Some(tip);
        }
        if let Some(identity) = batch.identity {
            self.identity = Some(identity);
        }
        Ok(())
    }

    fn tx_index(&self) -> Option<&dyn TxIndex> {
        self.tx_index.as_ref().map(|index| index as &dyn TxIndex)
    }
}
