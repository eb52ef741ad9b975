//! Blocks the node wants, in download order, and who each was asked of.
//!
//! Headers that passed their checks make their blocks wanted. The scheduler hands each peer
//! the first wanted blocks it can supply that nobody is fetching, looking at a bounded number
//! of entries and only within a window above the tip (so what arrives out of order fits the
//! chain's orphan pool). Entries are never moved: a block that arrives, or stops being
//! wanted, leaves a stale entry that is dropped when it reaches the front, so scheduling costs
//! the blocks in flight plus the scan bound, never the length of the queue.

use std::collections::VecDeque;

use powchain_chain::hashing::HashMap;

use powchain_chain::{BlockHash, Header, Height, Timestamp, Work};

use crate::peer::PeerId;

/// A block whose header passed its checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub header: Header,
    pub chain_work: Work,
}

/// The download queue.
#[derive(Debug)]
pub(crate) struct Download {
    wanted: HashMap<BlockHash, Wanted>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    order: VecDeque<BlockHash>,
    requested: HashMap<BlockHash, (PeerId, Timestamp)>,
    max: usize,
}

impl Download {
    pub fn new(max: usize) -> Download {
        Download {
            wanted: HashMap::default(),
            children: HashMap::default(),
            order: VecDeque::new(),
            requested: HashMap::default(),
            max,
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

    pub fn is_full(&self) -> bool {
        self.wanted.len() >= self.max
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&Wanted> {
        self.wanted.get(hash)
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.wanted.contains_key(hash)
    }

    /// Wants a block; `urgent` puts it first (a fresh tip). False when full.
    pub fn want(&mut self, hash: BlockHash, wanted: Wanted, urgent: bool) -> bool {
        if self.wanted.contains_key(&hash) {
            return true;
        }
        if self.is_full() {
            return false;
        }
        self.children
            .entry(wanted.header.prev_hash)
            .or_default()
            .push(hash);
        self.wanted.insert(hash, wanted);
        if urgent {
            self.order.push_front(hash);
        } else {
            self.order.push_back(hash);
        }
        true
    }

    /// The block arrived (or is no longer needed): forget it.
    pub fn remove(&mut self, hash: &BlockHash) {
        self.requested.remove(hash);
        if let Some(wanted) = self.wanted.remove(hash)
            && let Some(siblings) = self.children.get_mut(&wanted.header.prev_hash)
        {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.children.remove(&wanted.header.prev_hash);
            }
        }
    }

    /// Forgets `hash` and every wanted block that builds on it.
    pub fn remove_with_descendants(&mut self, hash: &BlockHash) {
        let mut stack = vec![*hash];
        while let Some(current) = stack.pop() {
            stack.extend(self.children.remove(&current).into_iter().flatten());
            self.remove(&current);
        }
    }

    /// Who `hash` was asked of.
    pub fn requested_from(&self, hash: &BlockHash) -> Option<PeerId> {
        self.requested.get(hash).map(|(peer, _)| *peer)
    }

    /// The request for `hash` is over (timed out, not found, peer gone): ask again later.
    pub fn release(&mut self, hash: &BlockHash) {
        self.requested.remove(hash);
    }

    /// Picks up to `room` blocks for `peer`, among the first `scan_max` live entries, at
    /// heights up to `height_max`, that `can_supply` says the peer has; marks them requested.
    pub fn pick(
        &mut self,
        peer: PeerId,
        room: usize,
        scan_max: usize,
        height_max: Height,
        now: Timestamp,
        can_supply: impl Fn(&BlockHash, &Wanted) -> bool,
    ) -> Vec<BlockHash> {
        while let Some(front) = self.order.front() {
            if self.wanted.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
        let mut picked = Vec::new();
        if room == 0 {
            return picked;
        }
        let mut scanned = 0;
        for hash in &self.order {
            if scanned >= scan_max || picked.len() >= room {
                break;
            }
            let Some(wanted) = self.wanted.get(hash) else {
                continue;
            };
            scanned += 1;
            if self.requested.contains_key(hash) || wanted.header.height > height_max {
                continue;
            }
            if can_supply(hash, wanted) {
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
        let mut download = Download::new(100);
        for (hash, wanted) in &blocks {
            assert!(download.want(*hash, *wanted, false));
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

    #[test]
    fn arrivals_leave_stale_entries_that_cost_nothing() {
        let blocks = chain(5);
        let mut download = Download::new(100);
        for (hash, wanted) in &blocks {
            download.want(*hash, *wanted, false);
        }
        download.remove(&blocks[0].0);
        download.remove(&blocks[1].0);
        let picked = download.pick(1, 1, 1, Height(10), Timestamp(0), |_, _| true);
        assert_eq!(picked, vec![blocks[2].0]);
        assert_eq!(download.len(), 3);
    }

    #[test]
    fn descendants_go_with_their_ancestor() {
        let blocks = chain(6);
        let mut download = Download::new(100);
        for (hash, wanted) in blocks.iter().rev() {
            // Queue order does not matter for descendants.
            download.want(*hash, *wanted, true);
        }
        download.remove_with_descendants(&blocks[2].0);
        assert_eq!(download.len(), 2);
        assert!(download.contains(&blocks[1].0) && !download.contains(&blocks[5].0));
    }

    #[test]
    fn bounded() {
        let blocks = chain(3);
        let mut download = Download::new(2);
        assert!(download.want(blocks[0].0, blocks[0].1, false));
        assert!(download.want(blocks[1].0, blocks[1].1, false));
        assert!(!download.want(blocks[2].0, blocks[2].1, false));
        assert!(download.is_full());
    }
}
