//! The transaction index of a [`MemStore`](crate::store::MemStore) that keeps one
//! (`MemStore::indexed`): where the best chain holds each transaction, and each account's
//! transactions, in memory. The redb store keeps the same index in its file
//! (`powchain_node::tx_index`); a node without a database gets this one, so the API's reads
//! are lookups on every node, never scans of recent blocks.
//!
//! It follows the best chain inside the store's commit: a block leaving a height is
//! unindexed, the block arriving there is indexed.

use std::collections::{BTreeMap, BTreeSet};

use crate::block::Block;
use crate::hash::{Hash512, TxId};
use crate::hashing::HashMap;
use crate::keys::Address;
use crate::prefix::{HashPrefix, Matches};
use crate::store::{StoreError, TxIndex};
use crate::units::Height;

/// A transaction's place: its block's best-chain height and its position in the block.
type Location = (Height, u32);

/// The index (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct MemTxIndex {
    /// In id order, so a short id is one range read.
    txs: BTreeMap<TxId, Location>,
    accounts: HashMap<Address, BTreeSet<Location>>,
}

impl MemTxIndex {
    /// Adds (`add`) or removes every transaction of `block`, at best-chain `height`.
    pub(crate) fn apply_block(&mut self, block: &Block, height: Height, add: bool) {
        for (position, tx) in block.txs.iter().enumerate() {
            let location = (height, position as u32);
            let id = tx.id();
            if add {
                self.txs.insert(id, location);
            } else if self.txs.get(&id) == Some(&location) {
                self.txs.remove(&id);
            }
            for address in tx.accounts() {
                let locations = self.accounts.entry(address).or_default();
                if add {
                    locations.insert(location);
                } else {
                    locations.remove(&location);
                    if locations.is_empty() {
                        self.accounts.remove(&address);
                    }
                }
            }
        }
    }
}

impl TxIndex for MemTxIndex {
    fn tx_location(&self, id: &TxId) -> Result<Option<(Height, u32)>, StoreError> {
        Ok(self.txs.get(id).copied())
    }

    fn account_txs(
        &self,
        address: &Address,
        limit: usize,
    ) -> Result<Vec<(Height, u32)>, StoreError> {
        Ok(self
            .accounts
            .get(address)
            .map(|locations| locations.iter().rev().take(limit).copied().collect())
            .unwrap_or_default())
    }

    fn txs_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<TxId>, StoreError> {
        let range = prefix.range();
        let (lowest, highest) = (TxId(Hash512(*range.start())), TxId(Hash512(*range.end())));
        Ok(Matches::of(
            self.txs.range(lowest..=highest).map(|(id, _)| *id),
            limit,
        ))
    }
}
