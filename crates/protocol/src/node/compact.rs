//! The compact relay manager: blocks being rebuilt from compact blocks, one per peer, and
//! the compact forms of the blocks we serve.
//!
//! Compact blocks are BIP 152's low-bandwidth mode: a new block is still announced by its
//! header, and a node that wants it asks for it in compact form when it is the one block
//! after our tip (the only case where the mempool holds its transfers); deeper blocks come
//! whole, as in sync. What is asked is a block download like any other (in flight, timed
//! out, charged to the peer), so a compact block nobody asked for is unrequested data, and
//! only the peer asked may answer for the transfers it lacks.
//!
//! - **One rebuild per peer, and at most `compact_rebuilds_max` in all**: a rebuild holds a
//!   block's worth of transfers until the peer answers. Past the bound the block is fetched
//!   whole.
//! - **Every way a rebuild can fail falls back to the whole block** from the same peer: a
//!   repeated short id, two pool transfers with one short id (asked for instead), a root
//!   that does not match. Only a compact block no honest node sends (more transactions than
//!   a block holds, no coinbase, misplaced prefills, an answer of the wrong length) costs
//!   the peer its connection.
//! - **A served compact block is built once** and kept for the few peers that ask for the
//!   same new block, with one nonce drawn for it.

use std::collections::{BTreeMap, VecDeque};

use powchain_chain::{Block, BlockHash};

use crate::compact::{CompactBlock, Rebuild};
use crate::peer::PeerId;

/// Compact forms of recently served blocks kept.
const SERVED_KEPT: usize = 4;

/// What compact relay counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Compact blocks received that the mempool rebuilt whole.
    pub rebuilt_at_once: u64,
    /// Compact blocks that needed transfers from their sender.
    pub rebuilt_after_asking: u64,
    /// Transfers asked for by place.
    pub transfers_asked: u64,
    /// Compact blocks fetched whole instead.
    pub fell_back: u64,
}

/// Rebuilds under way and compact blocks served.
#[derive(Debug)]
pub(crate) struct CompactRelay {
    rebuilds: BTreeMap<PeerId, (BlockHash, Rebuild)>,
    rebuilds_max: usize,
    served: VecDeque<(BlockHash, CompactBlock)>,
    pub stats: CompactStats,
}

impl CompactRelay {
    pub fn new(rebuilds_max: usize) -> CompactRelay {
        CompactRelay {
            rebuilds: BTreeMap::new(),
            rebuilds_max,
            served: VecDeque::new(),
            stats: CompactStats::default(),
        }
    }

    /// Whether another rebuild may wait for `peer`'s answer: one at a time per peer (so an
    /// answer is never taken for another block's), `rebuilds_max` in all. A rebuild whose
    /// block `still_asked` no longer says is asked of the peer (given up on, or arrived
    /// by other means) is dropped first.
    pub fn has_room_for(&mut self, peer: PeerId, still_asked: impl Fn(&BlockHash) -> bool) -> bool {
        if let Some((hash, _)) = self.rebuilds.get(&peer)
            && !still_asked(hash)
        {
            self.rebuilds.remove(&peer);
        }
        !self.rebuilds.contains_key(&peer) && self.rebuilds.len() < self.rebuilds_max
    }

    /// `rebuild` of block `hash` waits for `peer`'s answer (after [`Self::has_room_for`]).
    pub fn wait_for(&mut self, peer: PeerId, hash: BlockHash, rebuild: Rebuild) {
        self.stats.transfers_asked += rebuild.missing().len() as u64;
        self.rebuilds.insert(peer, (hash, rebuild));
    }

    /// The rebuild of block `hash` waiting for `peer`'s answer.
    pub fn take(&mut self, peer: PeerId, hash: &BlockHash) -> Option<Rebuild> {
        match self.rebuilds.get(&peer) {
            Some((waiting, _)) if waiting == hash => self.rebuilds.remove(&peer).map(|(_, r)| r),
            _ => None,
        }
    }

    pub fn peer_gone(&mut self, peer: PeerId) {
        self.rebuilds.remove(&peer);
    }

    /// The compact form of `block` to serve, built with `nonce` unless kept already.
    pub fn serve(
        &mut self,
        block: &Block,
        hash: &BlockHash,
        nonce: impl FnOnce() -> u64,
    ) -> CompactBlock {
        if let Some((_, compact)) = self.served.iter().find(|(kept, _)| kept == hash) {
            return compact.clone();
        }
        let compact = CompactBlock::of(block, hash, nonce());
        if self.served.len() == SERVED_KEPT {
            self.served.pop_front();
        }
        self.served.push_back((*hash, compact.clone()));
        compact
    }
}
