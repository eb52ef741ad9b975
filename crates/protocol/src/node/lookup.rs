//! Finding a block or a transfer by what a person typed: a height, a whole hash, or the
//! first digits of one (a short id as the session and the explorer print it). Read-only,
//! for the session and the API; each lookup is one range read of the store's ordered keys
//! and a scan of the bounded mempool, however long the chain.

use powchain_chain::{
    BlockHash, BlockName, HashPrefix, MatchError, Matches, PREFIX_MATCHES_MAX, Store, TxId,
};

use super::Node;

/// Why a name found no single block or transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Nothing, or several, begin with the digits.
    #[error(transparent)]
    Match(#[from] MatchError),
    /// No block at that height on the best chain.
    #[error("no block at height {0} on this node's best chain")]
    NoHeight(u64),
    /// The store failed to answer.
    #[error("{0}")]
    Store(String),
}

impl<S: Store> Node<S> {
    /// The block `name` stands for: the best chain's at a height, or the one held whose
    /// hash begins with the digits. A whole hash is taken as given (held or not: the
    /// caller's read says).
    pub fn find_block(&self, name: &BlockName) -> Result<BlockHash, LookupError> {
        match name {
            BlockName::Height(height) => self
                .chain()
                .tree()
                .best_at(*height)
                .ok_or(LookupError::NoHeight(height.0)),
            BlockName::Prefix(prefix) => match prefix.whole() {
                Some(hash) => Ok(BlockHash(hash)),
                None => Ok(self.blocks_matching(prefix)?.one("block", prefix)?),
            },
        }
    }

    /// The transfer whose id begins with `prefix`, pending or on the best chain (a store
    /// without a transaction index has only the pending ones to offer). A whole id is taken
    /// as given.
    pub fn find_transfer(&self, prefix: &HashPrefix) -> Result<TxId, LookupError> {
        match prefix.whole() {
            Some(id) => Ok(TxId(id)),
            None => Ok(self
                .transfers_matching(prefix)?
                .one("transaction", prefix)?),
        }
    }

    /// Every block and transfer whose id begins with `prefix` (at most
    /// [`PREFIX_MATCHES_MAX`] of each, and whether there are more): the explorer's search.
    pub fn search(
        &self,
        prefix: &HashPrefix,
    ) -> Result<(Matches<BlockHash>, Matches<TxId>), LookupError> {
        Ok((
            self.blocks_matching(prefix)?,
            self.transfers_matching(prefix)?,
        ))
    }

    fn blocks_matching(&self, prefix: &HashPrefix) -> Result<Matches<BlockHash>, LookupError> {
        self.chain()
            .store()
            .blocks_with_prefix(prefix, PREFIX_MATCHES_MAX)
            .map_err(|e| LookupError::Store(e.to_string()))
    }

    fn transfers_matching(&self, prefix: &HashPrefix) -> Result<Matches<TxId>, LookupError> {
        let pending = self.mempool().with_prefix(prefix, PREFIX_MATCHES_MAX);
        let mined = match self.chain().store().tx_index() {
            Some(index) => index
                .txs_with_prefix(prefix, PREFIX_MATCHES_MAX)
                .map_err(|e| LookupError::Store(e.to_string()))?,
            None => Matches::of([], 0),
        };
        Ok(pending.merge(mined, PREFIX_MATCHES_MAX))
    }
}
