//! Blocks the node wants, lowest first, who queued each, and who each was asked of.
//!
//! Headers that passed their checks make their blocks wanted. The scheduler hands each peer
//! the lowest wanted blocks it can supply that nobody is fetching, within a window above the
//! tip (so what arrives out of order fits the chain's orphan pool) and looking at a bounded
//! number of entries. Entries are kept by height, so **the blocks inside the window are
//! always the first looked at, whatever else is queued** (a fresh tip, one above ours, is
//! first by itself), and a block that arrives leaves no trace.
//!
//! **Each entry is charged to the peer whose headers or announcement queued it**: a peer may
//! have at most `per_peer_max` queued, and its entries go when it does, so one peer cannot
//! fill the queue for everyone, nor leave it full after it has gone. **Entries expire**: one
//! nobody has fetched within its lifetime goes, with what builds on it, so a block nobody
//! delivers does not keep its place while its peer stays.

use std::collections::BTreeSet;

use powchain_chain::hashing::HashMap;

use powchain_chain::{BlockHash, Header, Height, Timestamp, Work};

use crate::peer::PeerId;

/// A block whose header passed its checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub header: Header,
    pub chain_work: Work,
}

/// A wanted block, the peer it is charged to, and when it was queued.
#[derive(Clone, Copy, Debug)]
struct Entry {
    wanted: Wanted,
    queued_by: PeerId,
    queued_at: Timestamp,
}

/// The download queue.
#[derive(Debug)]
pub(crate) struct Download {
    wanted: HashMap<BlockHash, Entry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    by_height: BTreeSet<(Height, BlockHash)>,
    requested: HashMap<BlockHash, (PeerId, Timestamp)>,
    /// Entries charged to each peer.
    queued_by: HashMap<PeerId, usize>,
    max: usize,
    per_peer_max: usize,
}

impl Download {
    pub fn new(max: usize, per_peer_max: usize) -> Download {
        Download {
            wanted: HashMap::default(),
            children: HashMap::default(),
            by_height: BTreeSet::new(),
            requested: HashMap::default(),
            queued_by: HashMap::default(),
            max,
            per_peer_max,
        }
    }

    /// Blocks wanted.
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Blocks being fetched.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.requested.len()
    }

    /// Whether `peer` may queue no more (the queue is full, or its share is).
    pub fn is_full_for(&self, peer: PeerId) -> bool {
        self.wanted.len() >= self.max
            || self.queued_by.get(&peer).copied().unwrap_or(0) >= self.per_peer_max
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&Wanted> {
        self.wanted.get(hash).map(|entry| &entry.wanted)
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.wanted.contains_key(hash)
    }

    /// Wants a block, charged to `queued_by`. False when the queue or its share is full.
    pub fn want(
        &mut self,
        hash: BlockHash,
        wanted: Wanted,
        queued_by: PeerId,
        now: Timestamp,
    ) -> bool {
        if self.wanted.contains_key(&hash) {
            return true;
        }
        if self.is_full_for(queued_by) {
            return false;
        }
        self.children
            .entry(wanted.header.prev_hash)
            .or_default()
            .push(hash);
        self.by_height.insert((wanted.header.height, hash));
        *self.queued_by.entry(queued_by).or_default() += 1;
        self.wanted.insert(
            hash,
            Entry {
                wanted,
                queued_by,
                queued_at: now,
            },
        );
        true
    }

    /// The block arrived (or is no longer needed): forget it.
    pub fn remove(&mut self, hash: &BlockHash) {
        self.requested.remove(hash);
        let Some(entry) = self.wanted.remove(hash) else {
            return;
        };
        let header = entry.wanted.header;
        self.by_height.remove(&(header.height, *hash));
        if let Some(count) = self.queued_by.get_mut(&entry.queued_by) {
            *count -= 1;
            if *count == 0 {
                self.queued_by.remove(&entry.queued_by);
            }
        }
        if let Some(siblings) = self.children.get_mut(&header.prev_hash) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.children.remove(&header.prev_hash);
            }
        }
    }

    /// Forgets `hash` and every wanted block that builds on it.
    pub fn remove_with_descendants(&mut self, hash: &BlockHash) {
        let mut stack = vec![*hash];
        while let Some(current) = stack.pop() {
            stack.extend(self.children.get(&current).into_iter().flatten().copied());
            self.remove(&current);
        }
    }

    /// `peer` is gone: the blocks charged to it (and what builds on them) are no longer
    /// wanted, unless someone is fetching them already (the request runs its course, so a
    /// block asked for is never asked for twice). Headers of a chain others have come again
    /// from them.
    pub fn forget_queued_by(&mut self, peer: PeerId) {
        if !self.queued_by.contains_key(&peer) {
            return;
        }
        let mut stack: Vec<BlockHash> = self
            .wanted
            .iter()
            .filter(|(_, entry)| entry.queued_by == peer)
            .map(|(hash, _)| *hash)
            .collect();
        while let Some(hash) = stack.pop() {
            stack.extend(self.children.get(&hash).into_iter().flatten().copied());
            if !self.requested.contains_key(&hash) {
                self.remove(&hash);
            }
        }
    }

    /// Drops the entries nobody is fetching that were queued more than `lifetime_ms` ago,
    /// with what builds on them: a block nobody delivers does not hold its place (and its
    /// queuing peer's share) for ever. Returns how many entries went.
    pub fn expire(&mut self, now: Timestamp, lifetime_ms: u64) -> usize {
        let before = self.wanted.len();
        let expired: Vec<BlockHash> = self
            .wanted
            .iter()
            .filter(|(hash, entry)| {
                now.ms_since(entry.queued_at) > lifetime_ms && !self.requested.contains_key(hash)
            })
            .map(|(hash, _)| *hash)
            .collect();
        for hash in &expired {
            self.remove_with_descendants(hash);
        }
        before - self.wanted.len()
    }

    /// Who `hash` was asked of.
    pub fn requested_from(&self, hash: &BlockHash) -> Option<PeerId> {
        self.requested.get(hash).map(|(peer, _)| *peer)
    }

    /// `hash` is being fetched from `peer` (it came to us unasked, and we take it).
    pub fn mark_requested(&mut self, hash: &BlockHash, peer: PeerId, now: Timestamp) {
        self.requested.insert(*hash, (peer, now));
    }

    /// The request for `hash` is over (timed out, not found, peer gone): ask again later.
    pub fn release(&mut self, hash: &BlockHash) {
        self.requested.remove(hash);
    }

    /// Picks up to `room` blocks for `peer`, the lowest first, among the first `scan_max`
    /// entries at heights up to `height_max`, that `can_supply` says the peer has; marks them
    /// requested.
    pub fn pick(
        &mut self,
        peer: PeerId,
        room: usize,
        scan_max: usize,
        height_max: Height,
        now: Timestamp,
        can_supply: impl Fn(&BlockHash, &Wanted) -> bool,
    ) -> Vec<BlockHash> {
        let mut picked = Vec::new();
        if room == 0 {
            return picked;
        }
        for (height, hash) in self.by_height.iter().take(scan_max) {
            if *height > height_max || picked.len() >= room {
                break;
            }
            if self.requested.contains_key(hash) {
                continue;
            }
            if let Some(entry) = self.wanted.get(hash)
                && can_supply(hash, &entry.wanted)
            {
                picked.push(*hash);
            }
        }
        for hash in &picked {
            self.requested.insert(*hash, (peer, now));
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use powchain_chain::{ChainSpec, Target};

    use super::*;

    fn chain(length: u64) -> Vec<(BlockHash, Wanted)> {
        let mut parent = ChainSpec::dev().genesis_block().header;
        (1..=length)
            .map(|height| {
                let mut header = parent;
                header.prev_hash = parent.hash();
                header.height = Height(height);
                header.target = Target(u128::MAX);
                parent = header;
                (
                    header.hash(),
                    Wanted {
                        header,
                        chain_work: Work(height.into()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn picks_in_order_within_the_window_and_never_twice() {
        let blocks = chain(10);
        let mut download = Download::new(100, 100);
        for (hash, wanted) in &blocks {
            assert!(download.want(*hash, *wanted, 7, Timestamp(0)));
        }
        let first = download.pick(1, 3, 100, Height(5), Timestamp(0), |_, _| true);
        assert_eq!(first, vec![blocks[0].0, blocks[1].0, blocks[2].0]);
        let second = download.pick(2, 10, 100, Height(5), Timestamp(0), |_, _| true);
        assert_eq!(
            second,
            vec![blocks[3].0, blocks[4].0],
            "only up to height 5"
        );
        download.release(&blocks[0].0);
        assert_eq!(
            download.pick(2, 10, 100, Height(5), Timestamp(0), |_, _| true),
            vec![blocks[0].0]
        );
        assert_eq!(download.in_flight(), 5);
    }

    /// A block nobody fetched within its lifetime goes with what builds on it, and its
    /// peer's share is free again; what is being fetched stays.
    #[test]
    fn entries_nobody_fetches_expire_with_their_descendants() {
        let blocks = chain(6);
        let mut download = Download::new(100, 6);
        for (hash, wanted) in &blocks[..3] {
            assert!(download.want(*hash, *wanted, 7, Timestamp(0)));
        }
        for (hash, wanted) in &blocks[3..] {
            assert!(download.want(*hash, *wanted, 7, Timestamp(500)));
        }
        assert!(download.is_full_for(7));
        // Block 1 is being fetched.
        assert_eq!(
            download.pick(1, 1, 100, Height(1), Timestamp(0), |_, _| true),
            vec![blocks[0].0]
        );
        assert_eq!(download.expire(Timestamp(1_000), 1_000), 0, "not yet");
        // Block 2 is past its lifetime: it goes, and 3 to 6 (built on it) with it.
        assert_eq!(download.expire(Timestamp(1_001), 1_000), 5);
        assert!(download.contains(&blocks[0].0), "block 1 is being fetched");
        assert!(!download.is_full_for(7), "the peer's share is free again");
        assert_eq!(download.len(), 1);
    }

    #[test]
    fn the_window_is_found_first_whatever_was_queued_before_it() {
        // Thousands of blocks far above the window were queued first; the window's block,
        // queued last, is still the one picked, and the scan bound is not spent on them.
        let blocks = chain(5_000);
        let mut download = Download::new(10_000, 10_000);
        for (hash, wanted) in blocks[100..].iter() {
            download.want(*hash, *wanted, 7, Timestamp(0));
        }
        download.want(blocks[0].0, blocks[0].1, 8, Timestamp(0));
        let picked = download.pick(1, 10, 16, Height(1), Timestamp(0), |_, _| true);
        assert_eq!(picked, vec![blocks[0].0]);
    }

    #[test]
    fn arrivals_leave_nothing_behind() {
        let blocks = chain(5);
        let mut download = Download::new(100, 100);
        for (hash, wanted) in &blocks {
            download.want(*hash, *wanted, 7, Timestamp(0));
        }
        download.remove(&blocks[0].0);
        download.remove(&blocks[1].0);
        let picked = download.pick(1, 1, 1, Height(10), Timestamp(0), |_, _| true);
        assert_eq!(picked, vec![blocks[2].0]);
        assert_eq!(download.len(), 3);
        assert_eq!(download.by_height.len(), 3);
    }

    #[test]
    fn descendants_go_with_their_ancestor() {
        let blocks = chain(6);
        let mut download = Download::new(100, 100);
        for (hash, wanted) in blocks.iter().rev() {
            // Queue order does not matter for descendants.
            download.want(*hash, *wanted, 7, Timestamp(0));
        }
        download.remove_with_descendants(&blocks[2].0);
        assert_eq!(download.len(), 2);
        assert!(download.contains(&blocks[1].0) && !download.contains(&blocks[5].0));
    }

    #[test]
    fn bounded_in_all_and_for_each_peer() {
        let blocks = chain(5);
        let mut download = Download::new(4, 2);
        assert!(download.want(blocks[0].0, blocks[0].1, 7, Timestamp(0)));
        assert!(download.want(blocks[1].0, blocks[1].1, 7, Timestamp(0)));
        assert!(
            !download.want(blocks[2].0, blocks[2].1, 7, Timestamp(0)),
            "peer 7's share"
        );
        assert!(download.is_full_for(7) && !download.is_full_for(8));
        assert!(download.want(blocks[2].0, blocks[2].1, 8, Timestamp(0)));
        assert!(download.want(blocks[3].0, blocks[3].1, 8, Timestamp(0)));
        assert!(
            !download.want(blocks[4].0, blocks[4].1, 9, Timestamp(0)),
            "the whole queue"
        );
        // A block that arrives frees its peer's share.
        download.remove(&blocks[0].0);
        assert!(!download.is_full_for(7));
    }

    #[test]
    fn a_peer_that_leaves_takes_what_it_queued_with_it() {
        let blocks = chain(6);
        let mut download = Download::new(100, 100);
        for (hash, wanted) in &blocks[..3] {
            download.want(*hash, *wanted, 7, Timestamp(0));
        }
        for (hash, wanted) in &blocks[3..] {
            download.want(*hash, *wanted, 8, Timestamp(0));
        }
        download.forget_queued_by(8);
        assert_eq!(download.len(), 3);
        // What builds on the leaver's blocks goes too, whoever queued it.
        download.want(blocks[3].0, blocks[3].1, 8, Timestamp(0));
        download.want(blocks[4].0, blocks[4].1, 9, Timestamp(0));
        download.forget_queued_by(8);
        assert_eq!(download.len(), 3);
        assert!(!download.queued_by.contains_key(&8) && !download.queued_by.contains_key(&9));
        // A block being fetched stays until its request ends.
        download.want(blocks[3].0, blocks[3].1, 8, Timestamp(0));
        assert_eq!(
            download.pick(1, 1, 10, Height(10), Timestamp(0), |h, _| *h == blocks[3].0),
            vec![blocks[3].0]
        );
        download.forget_queued_by(8);
        assert!(download.contains(&blocks[3].0));
    }
}
