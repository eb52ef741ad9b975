//! The compact relay manager: blocks being rebuilt from compact blocks, one per peer, the
//! compact forms of the blocks we serve, and the peers that push new blocks to us compact.
//!
//! Compact blocks follow BIP 152 in both of its modes:
//!
//! - **Low bandwidth** (every peer): a new block is announced by its header, and a node that
//!   wants it asks for it in compact form when it is the one block after our tip (the only
//!   case where the mempool holds its transfers); deeper blocks come whole, as in sync.
//! - **High bandwidth** (up to `compact_high_bandwidth_peers`): the peers that most recently
//!   gave us a new tip first are asked (`SendCompact`) to push each new tip block compact at
//!   once, which saves the announce-and-ask round trip on every hop. A pushed compact block
//!   is taken as its header's announcement first (its proof of work and place checked, as
//!   any announced header's), and rebuilt only when it is the block after our tip and
//!   nobody is fetching it yet; a peer that drops out of the set is told to stop. Only a peer
//!   we asked may push: from any other, a compact block is unrequested data.
//!
//! What is asked or pushed is a block download like any other (in flight, timed out,
//! charged to the peer), and only the peer that sent the compact block may answer for the
//! transfers it lacks.
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
//!   same new block, or are pushed it, with one nonce drawn for it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Compact blocks pushed to us unasked by a high-bandwidth peer and taken as their
    /// block's download (the rebuild is counted with the others).
    pub pushed_taken: u64,
}

/// A change to the peers asked to push blocks to us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HighBandwidthChange {
    /// Asked to push from now on.
    pub asked: Option<PeerId>,
    /// Told to stop: the longest since it gave us a new tip first.
    pub stopped: Option<PeerId>,
}

/// Rebuilds under way and compact blocks served.
#[derive(Debug)]
pub(crate) struct CompactRelay {
    rebuilds: BTreeMap<PeerId, (BlockHash, Rebuild)>,
    rebuilds_max: usize,
    served: VecDeque<(BlockHash, CompactBlock)>,
    /// Peers asked to push, the latest to give us a new tip first at the front.
    high_bandwidth: VecDeque<PeerId>,
    high_bandwidth_max: usize,
    /// Every peer asked to push on this connection, stopped ones included: what they
    /// pushed before reading our stop is late, not abuse.
    ever_asked: BTreeSet<PeerId>,
    pub stats: CompactStats,
}

impl CompactRelay {
    pub fn new(rebuilds_max: usize, high_bandwidth_max: usize) -> CompactRelay {
        CompactRelay {
            rebuilds: BTreeMap::new(),
            rebuilds_max,
            served: VecDeque::new(),
            high_bandwidth: VecDeque::new(),
            high_bandwidth_max,
            ever_asked: BTreeSet::new(),
            stats: CompactStats::default(),
        }
    }

    /// `peer` gave us a new tip before anyone else: it becomes the first of the peers that
    /// push to us, and the one that has gone longest without doing so may have to stop.
    pub fn delivered_first(&mut self, peer: PeerId) -> HighBandwidthChange {
        if self.high_bandwidth_max == 0 {
            return HighBandwidthChange::default();
        }
        if let Some(place) = self.high_bandwidth.iter().position(|p| *p == peer) {
            self.high_bandwidth.remove(place);
            self.high_bandwidth.push_front(peer);
            return HighBandwidthChange::default();
        }
        self.high_bandwidth.push_front(peer);
        self.ever_asked.insert(peer);
        let stopped = if self.high_bandwidth.len() > self.high_bandwidth_max {
            self.high_bandwidth.pop_back()
        } else {
            None
        };
        HighBandwidthChange {
            asked: Some(peer),
            stopped,
        }
    }

    /// Whether `peer` was asked to push compact blocks to us on this connection.
    pub fn may_push(&self, peer: PeerId) -> bool {
        self.ever_asked.contains(&peer)
    }

    /// The peers asked to push to us now, the latest to deliver first at the front.
    pub fn high_bandwidth_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.high_bandwidth.iter().copied()
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
        self.high_bandwidth.retain(|p| *p != peer);
        self.ever_asked.remove(&peer);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_first_deliverers_push_and_the_oldest_is_stopped() {
        let mut relay = CompactRelay::new(8, 3);
        for peer in 1..=3 {
            let change = relay.delivered_first(peer);
            assert_eq!(change.asked, Some(peer));
            assert_eq!(change.stopped, None);
        }
        // Peer 1 delivers again: it moves to the front, nobody is asked or stopped.
        assert_eq!(relay.delivered_first(1), HighBandwidthChange::default());
        // Peer 4 is asked; peer 2, the longest without a first delivery, stops.
        let change = relay.delivered_first(4);
        assert_eq!((change.asked, change.stopped), (Some(4), Some(2)));
        assert_eq!(relay.high_bandwidth_peers().collect::<Vec<_>>(), [4, 1, 3]);
        assert!(relay.may_push(2), "its late pushes are not abuse");
        assert!(!relay.may_push(5));
        relay.peer_gone(2);
        assert!(!relay.may_push(2));
    }

    #[test]
    fn with_no_high_bandwidth_peers_nobody_is_asked() {
        let mut relay = CompactRelay::new(8, 0);
        assert_eq!(relay.delivered_first(1), HighBandwidthChange::default());
        assert!(!relay.may_push(1));
    }
}
