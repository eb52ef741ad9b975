//! The block tree: every known block's index entry, the best chain, and fork choice.
//!
//! The tree lives in memory and holds headers only (bodies are in the store). It answers
//! what validation needs of a block's ancestors (median time past, the expected target),
//! which block is the best candidate tip (most cumulative work; among equal work, the one
//! seen first), and the path between two tips (the blocks to disconnect and to connect).
//!
//! Side branches are bounded: blocks off the best chain are pruned, with their descendants,
//! once they are more than `side_depth_max` below the tip, or when there are more than
//! `side_blocks_max` of them or they take more than `side_bytes_max` (lowest first). Pruning
//! bounds memory; it is not a maximum reorg depth. A pruned branch that is sent again, with
//! more work than the tip, still wins, so two halves of a long partition still converge.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::hashing::{HashMap, HashSet};

use crate::block::BlockContext;
use crate::hash::BlockHash;
use crate::header::Header;
use crate::pow::{Target, Work};
use crate::spec::ChainSpec;
use crate::store::{BlockStatus, IndexEntry};
use crate::units::{Height, Timestamp};

/// How many blocks the median time past looks at.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// Why an index read from a store does not form a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The tip is not in the index.
    #[error("tip {0:?} is not in the block index")]
    MissingTip(BlockHash),
    /// A best-chain block's parent is missing.
    #[error("block {0:?} on the best chain has no parent in the index")]
    Broken(BlockHash),
}

/// The block index in memory.
#[derive(Clone, Debug)]
pub struct BlockTree {
    entries: HashMap<BlockHash, IndexEntry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// Entries that are not invalid, ordered so that the last is the best candidate.
    candidates: BTreeSet<(Work, Reverse<u64>, BlockHash)>,
    /// Entries off the best chain, by height, for pruning.
    side: BTreeSet<(Height, BlockHash)>,
    /// Bytes of the side entries that still have a body (invalid ones have none).
    side_bytes: u64,
    /// The best chain: `best[h]` is the block at height `h`.
    best: Vec<BlockHash>,
    next_seq: u64,
}

impl BlockTree {
    /// A tree of the given entries, with the best chain ending at `tip`.
    pub fn new(
        entries: impl IntoIterator<Item = (BlockHash, IndexEntry)>,
        tip: BlockHash,
    ) -> Result<BlockTree, TreeError> {
        let entries: HashMap<BlockHash, IndexEntry> = entries.into_iter().collect();
        let mut best = Vec::new();
        let mut cursor = tip;
        loop {
            let entry = entries.get(&cursor).ok_or(if best.is_empty() {
                TreeError::MissingTip(tip)
            } else {
                TreeError::Broken(*best.last().unwrap_or(&tip))
            })?;
            best.push(cursor);
            if entry.header.height == Height::GENESIS {
                break;
            }
            cursor = entry.header.prev_hash;
        }
        best.reverse();
        let mut tree = BlockTree {
            next_seq: entries.values().map(|e| e.seq + 1).max().unwrap_or(0),
            entries: HashMap::default(),
            children: HashMap::default(),
            candidates: BTreeSet::new(),
            side: BTreeSet::new(),
            side_bytes: 0,
            best: Vec::new(),
        };
        tree.best = best;
        let on_best: HashSet<BlockHash> = tree.best.iter().copied().collect();
        for (hash, entry) in entries {
            tree.link(hash, entry, on_best.contains(&hash));
        }
        Ok(tree)
    }

    fn link(&mut self, hash: BlockHash, entry: IndexEntry, on_best: bool) {
        if entry.header.height != Height::GENESIS {
            self.children
                .entry(entry.header.prev_hash)
                .or_default()
                .push(hash);
        }
        if entry.status != BlockStatus::Invalid {
            self.candidates
                .insert((entry.chain_work, Reverse(entry.seq), hash));
        }
        if !on_best {
            self.side.insert((entry.header.height, hash));
            self.side_bytes += body_bytes(&entry);
        }
        self.entries.insert(hash, entry);
    }

    /// A sequence number for a newly arrived block.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Adds a block whose parent is in the tree, as a side block (fork choice comes later).
    pub fn insert(&mut self, hash: BlockHash, entry: IndexEntry) {
        self.link(hash, entry, false);
    }

    /// A block's entry.
    pub fn get(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.entries.get(hash)
    }

    /// How many blocks the tree knows, invalid ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree is empty (never, once opened: genesis is always there).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many blocks are off the best chain.
    pub fn side_len(&self) -> usize {
        self.side.len()
    }

    /// Bytes of the side-branch blocks whose bodies are kept.
    pub fn side_bytes(&self) -> u64 {
        self.side_bytes
    }

    /// The tip of the best chain.
    pub fn tip(&self) -> BlockHash {
        *self.best.last().unwrap_or(&BlockHash::ZERO)
    }

    /// The tip's entry.
    pub fn tip_entry(&self) -> &IndexEntry {
        &self.entries[&self.tip()]
    }

    /// The best chain's height.
    pub fn height(&self) -> Height {
        Height(self.best.len().saturating_sub(1) as u64)
    }

    /// Blocks off the best chain at `from` and above, lowest first (for a view of forks).
    pub fn side_blocks_from(&self, from: Height) -> impl Iterator<Item = BlockHash> + '_ {
        self.side
            .range((from, BlockHash::ZERO)..)
            .map(|(_, hash)| *hash)
    }

    /// The best-chain block at `height`.
    pub fn best_at(&self, height: Height) -> Option<BlockHash> {
        usize::try_from(height.0)
            .ok()
            .and_then(|h| self.best.get(h).copied())
    }

    /// Whether `hash` is on the best chain.
    pub fn is_on_best(&self, hash: &BlockHash) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|e| self.best_at(e.header.height) == Some(*hash))
    }

    /// The block with the most work that is not invalid (first seen among equals).
    pub fn best_candidate(&self) -> BlockHash {
        self.candidates
            .last()
            .map(|(_, _, hash)| *hash)
            .unwrap_or_else(|| self.tip())
    }

    /// Every block of the most work that is not invalid, first seen first.
    pub fn most_work_candidates(&self) -> impl Iterator<Item = BlockHash> + '_ {
        let work = self.candidates.last().map(|(work, _, _)| *work);
        work.into_iter().flat_map(|work| {
            self.candidates
                .range((work, Reverse(u64::MAX), BlockHash::ZERO)..)
                .rev()
                .map(|(_, _, hash)| *hash)
        })
    }

    /// The ancestor of `hash` at `height` (itself at its own height).
    pub fn ancestor(&self, hash: &BlockHash, height: Height) -> Option<BlockHash> {
        let mut cursor = *hash;
        loop {
            let entry = self.entries.get(&cursor)?;
            if entry.header.height == height {
                return Some(cursor);
            }
            if entry.header.height < height {
                return None;
            }
            // Jump straight to the best chain once on it.
            if self.best_at(entry.header.height) == Some(cursor) {
                return self.best_at(height);
            }
            cursor = entry.header.prev_hash;
        }
    }

    /// Median of the times of `hash` and up to 10 of its ancestors.
    pub fn median_time_past(&self, hash: &BlockHash) -> Timestamp {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cursor = Some(*hash);
        while let Some(entry) = cursor.and_then(|h| self.entries.get(&h)) {
            times.push(entry.header.time);
            if times.len() == MEDIAN_TIME_SPAN || entry.header.height == Height::GENESIS {
                break;
            }
            cursor = Some(entry.header.prev_hash);
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or_default()
    }

    /// The target a child of `parent` must have.
    pub fn expected_target(&self, parent: &BlockHash, spec: &ChainSpec) -> Target {
        let Some(entry) = self.entries.get(parent) else {
            return spec.genesis_target();
        };
        expected_target_after(&entry.header, spec, |height| {
            self.ancestor(parent, height)
                .and_then(|h| self.entries.get(&h))
                .map(|e| e.header.time)
        })
    }

    /// What a child of `parent` is checked against.
    pub fn child_context(
        &self,
        parent: &BlockHash,
        spec: &ChainSpec,
        now: Timestamp,
    ) -> Option<BlockContext> {
        let entry = self.entries.get(parent)?;
        Some(BlockContext {
            parent: *parent,
            height: entry.header.height.next()?,
            expected_target: self.expected_target(parent, spec),
            median_time_past: self.median_time_past(parent),
            now,
        })
    }

    /// The blocks to disconnect (from `from` down, exclusive of the fork point) and to
    /// connect (from the fork point up to `to`) to move the tip from `from` to `to`.
    pub fn path(&self, from: &BlockHash, to: &BlockHash) -> (Vec<BlockHash>, Vec<BlockHash>) {
        let (mut down, mut up) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (*from, *to);
        let height = |hash: &BlockHash| self.entries.get(hash).map_or(0, |e| e.header.height.0);
        let parent = |hash: &BlockHash| self.entries.get(hash).map(|e| e.header.prev_hash);
        while a != b {
            if height(&a) >= height(&b) {
                down.push(a);
                match parent(&a) {
                    Some(p) if height(&a) > 0 => a = p,
                    _ => break,
                }
            } else {
                up.push(b);
                match parent(&b) {
                    Some(p) => b = p,
                    None => break,
                }
            }
        }
        up.reverse();
        (down, up)
    }

    /// Moves the best chain along a path from [`BlockTree::path`], marking connected blocks.
    pub fn switch_best(&mut self, disconnected: &[BlockHash], connected: &[BlockHash]) {
        for hash in disconnected {
            if let Some(entry) = self.entries.get(hash) {
                self.side.insert((entry.header.height, *hash));
                self.side_bytes += body_bytes(entry);
            }
            self.best.pop();
        }
        for hash in connected {
            if let Some(entry) = self.entries.get_mut(hash) {
                entry.status = BlockStatus::Connected;
                if self.side.remove(&(entry.header.height, *hash)) {
                    self.side_bytes -= body_bytes(entry);
                }
                self.best.push(*hash);
            }
        }
    }

    /// Marks `hash` and all its descendants invalid; returns them with their new entries.
    pub fn mark_invalid(&mut self, hash: &BlockHash) -> Vec<(BlockHash, IndexEntry)> {
        let mut marked = Vec::new();
        let mut stack = vec![*hash];
        while let Some(current) = stack.pop() {
            if let Some(entry) = self.entries.get_mut(&current)
                && entry.status != BlockStatus::Invalid
            {
                self.candidates
                    .remove(&(entry.chain_work, Reverse(entry.seq), current));
                if self.side.contains(&(entry.header.height, current)) {
                    self.side_bytes -= body_bytes(entry);
                }
                entry.status = BlockStatus::Invalid;
                marked.push((current, *entry));
            }
            stack.extend(self.children.get(&current).into_iter().flatten());
        }
        marked
    }

    /// Prunes side blocks (with their descendants) more than `depth_max` below the tip, then
    /// the lowest side blocks while more than `count_max` remain or their bodies take more
    /// than `bytes_max`. Returns what was removed.
    pub fn prune(&mut self, depth_max: u64, count_max: usize, bytes_max: u64) -> Vec<BlockHash> {
        let cut = Height(self.height().0.saturating_sub(depth_max));
        let mut removed = Vec::new();
        while let Some(&(height, hash)) = self.side.first() {
            if height >= cut && self.side.len() <= count_max && self.side_bytes <= bytes_max {
                break;
            }
            self.remove_subtree(hash, &mut removed);
        }
        removed
    }

    fn remove_subtree(&mut self, root: BlockHash, removed: &mut Vec<BlockHash>) {
        if let Some(entry) = self.entries.get(&root)
            && let Some(siblings) = self.children.get_mut(&entry.header.prev_hash)
        {
            siblings.retain(|h| *h != root);
        }
        let mut stack = vec![root];
        while let Some(hash) = stack.pop() {
            if let Some(entry) = self.entries.remove(&hash) {
                self.candidates
                    .remove(&(entry.chain_work, Reverse(entry.seq), hash));
                if self.side.remove(&(entry.header.height, hash)) {
                    self.side_bytes -= body_bytes(&entry);
                }
                removed.push(hash);
            }
            stack.extend(self.children.remove(&hash).into_iter().flatten());
        }
    }

    /// Up to `count` best-chain hashes from `height` up.
    pub fn best_range(&self, height: Height, count: usize) -> &[BlockHash] {
        let start = usize::try_from(height.0)
            .unwrap_or(usize::MAX)
            .min(self.best.len());
        let end = start.saturating_add(count).min(self.best.len());
        &self.best[start..end]
    }
}

/// Bytes an entry's body takes in the store: none once it is found invalid.
fn body_bytes(entry: &IndexEntry) -> u64 {
    match entry.status {
        BlockStatus::Invalid => 0,
        _ => u64::from(entry.bytes),
    }
}

/// The target a child of `parent` must have, wherever the parent's ancestors are kept:
/// `time_at(height)` gives the time of the parent's ancestor at `height` (asked only at a
/// retarget, for the first block of the window). The block tree uses it for blocks it
/// holds, and header sync for headers whose parent is only queued, so a header is held to
/// the same target whether or not its parent's block has arrived.
pub fn expected_target_after(
    parent: &Header,
    spec: &ChainSpec,
    time_at: impl FnOnce(Height) -> Option<Timestamp>,
) -> Target {
    let Some(rule) = &spec.retarget else {
        return spec.genesis_target();
    };
    let height = parent.height.0 + 1;
    if !rule.adjusts_at(height) {
        return parent.target;
    }
    // The window is the `window_blocks` blocks ending at the parent, measured from the
    // block before it, so that consecutive windows share their boundary block and no
    // interval goes unmeasured (Bitcoin's off-by-one leaves one out, which is what makes
    // its time-warp attack possible). A window never reaches back to genesis, whose time
    // is a constant of the spec rather than when anyone mined, so the first window is
    // measured from block 1 and has two intervals fewer.
    let first_height = Height(height.saturating_sub(rule.window_blocks + 1).max(1));
    let intervals = parent.height.0.saturating_sub(first_height.0);
    if intervals == 0 {
        return parent.target;
    }
    let Some(first_time) = time_at(first_height) else {
        return parent.target;
    };
    let actual_ms = parent.time.ms_since(first_time);
    rule.next_target(parent.target, actual_ms, intervals)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash512;
    use crate::header::{HEADER_VERSION, Header};

    /// Index entries built by hand: headers with arbitrary fields, no proof of work.
    struct Blocks {
        entries: Vec<(BlockHash, IndexEntry)>,
        /// The target of blocks added from now on.
        target: Target,
    }

    impl Blocks {
        /// Genesis alone, one unit of work, at time `time`.
        fn new(time: u64) -> (Blocks, BlockHash) {
            let header = Header {
                version: HEADER_VERSION,
                height: Height::GENESIS,
                prev_hash: BlockHash::ZERO,
                tx_root: Hash512::ZERO,
                time: Timestamp(time),
                target: Target(u128::MAX),
                nonce: 0,
            };
            let entry = IndexEntry {
                header,
                chain_work: Work(1),
                status: BlockStatus::Connected,
                seq: 0,
                bytes: 100,
            };
            let hash = header.hash();
            (
                Blocks {
                    entries: vec![(hash, entry)],
                    target: Target(u128::MAX),
                },
                hash,
            )
        }

        fn entry(&self, hash: BlockHash) -> IndexEntry {
            self.entries.iter().find(|(h, _)| *h == hash).unwrap().1
        }

        /// A child of `parent` adding `work`, at `time`, seen after every block so far (its
        /// arrival number also tells it apart from its siblings).
        fn add_at(&mut self, parent: BlockHash, work: u128, time: u64) -> BlockHash {
            let parent_entry = self.entry(parent);
            let seq = self.entries.len() as u64;
            let header = Header {
                version: HEADER_VERSION,
                height: parent_entry.header.height.next().unwrap(),
                prev_hash: parent,
                tx_root: Hash512::ZERO,
                time: Timestamp(time),
                target: self.target,
                nonce: seq,
            };
            let hash = header.hash();
            self.entries.push((
                hash,
                IndexEntry {
                    header,
                    chain_work: Work(parent_entry.chain_work.0 + work),
                    status: BlockStatus::Checked,
                    seq,
                    bytes: 100,
                },
            ));
            hash
        }

        /// A child of `parent` adding one unit of work, a second after it.
        fn add(&mut self, parent: BlockHash) -> BlockHash {
            let time = self.entry(parent).header.time.0 + 1_000;
            self.add_at(parent, 1, time)
        }

        /// `count` blocks on `parent`, lowest first.
        fn extend(&mut self, parent: BlockHash, count: usize) -> Vec<BlockHash> {
            let mut hashes = Vec::with_capacity(count);
            let mut tip = parent;
            for _ in 0..count {
                tip = self.add(tip);
                hashes.push(tip);
            }
            hashes
        }

        fn tree(&self, tip: BlockHash) -> BlockTree {
            BlockTree::new(self.entries.iter().copied(), tip).unwrap()
        }
    }

    /// The best chain `g a1 a2 a3 a4` (tip `a4`, work 5) and a side branch `a2 b3 b4 b5`
    /// (work 6), as `[g, a1, a2, a3, a4]` and `[b3, b4, b5]`.
    fn forked() -> (Blocks, [BlockHash; 5], [BlockHash; 3]) {
        let (mut blocks, g) = Blocks::new(1_000);
        let a = blocks.extend(g, 4);
        let b = blocks.extend(a[1], 3);
        (blocks, [g, a[0], a[1], a[2], a[3]], [b[0], b[1], b[2]])
    }

    #[test]
    fn retargets_over_each_window_but_never_from_genesis() {
        use crate::pow::{DifficultyBits, RetargetRule};
        let bits = |n| DifficultyBits::new(n).unwrap();
        let mut spec = ChainSpec::dev();
        spec.difficulty_bits = bits(20);
        spec.retarget = Some(RetargetRule {
            block_interval_ms: 1_000,
            window_blocks: 3,
            clamp_factor: 4,
            easiest: bits(1),
            hardest: bits(80),
        });
        let start = bits(20).target();
        // Genesis a day before block 1: that day must not count.
        let (mut blocks, g) = Blocks::new(0);
        blocks.target = start;
        let day = 86_400_000;
        let b1 = blocks.add_at(g, 1, day);
        let b2 = blocks.add_at(b1, 1, day + 2_000);
        let tree = blocks.tree(b2);
        // Height 2 is not an adjustment height: the parent's target carries on.
        assert_eq!(tree.expected_target(&b1, &spec), start);
        // Height 3 adjusts over blocks 1..=2 (genesis left out): one interval of 2 s against
        // 1 s, twice as easy.
        let doubled = tree.expected_target(&b2, &spec);
        assert_eq!(doubled.0, start.0 * 2);
        // The next window, blocks 3..=5, is measured from block 2: three intervals took 1.5 s
        // against 3 s, so it is twice as hard again.
        blocks.target = doubled;
        let b3 = blocks.add_at(b2, 1, day + 2_500);
        let b4 = blocks.add_at(b3, 1, day + 3_000);
        let b5 = blocks.add_at(b4, 1, day + 3_500);
        let tree = blocks.tree(b5);
        assert_eq!(tree.expected_target(&b4, &spec), doubled);
        assert_eq!(tree.expected_target(&b5, &spec), start);
        // Without a retarget rule every block has the spec's target.
        let fixed = spec.clone().with_fixed_difficulty(bits(7));
        assert_eq!(tree.expected_target(&b5, &fixed), bits(7).target());
    }

    fn sorted(mut hashes: Vec<BlockHash>) -> Vec<BlockHash> {
        hashes.sort();
        hashes
    }

    #[test]
    fn new_follows_the_tip_back_to_genesis() {
        let (blocks, a, b) = forked();
        let tree = blocks.tree(a[4]);
        assert_eq!(tree.len(), 8);
        assert_eq!(tree.tip(), a[4]);
        assert_eq!(tree.height(), Height(4));
        assert_eq!(tree.best_range(Height(0), 10), &a[..]);
        assert_eq!(tree.side_len(), 3);
        assert!(tree.is_on_best(&a[3]));
        assert!(!tree.is_on_best(&b[0]));
        let missing = BlockHash(Hash512::digest(b"missing"));
        assert_eq!(
            BlockTree::new(blocks.entries.iter().copied(), missing).unwrap_err(),
            TreeError::MissingTip(missing)
        );
        // Without a2, the best chain breaks at a3, whose parent is missing.
        let broken = blocks.entries.iter().copied().filter(|(h, _)| *h != a[2]);
        assert_eq!(
            BlockTree::new(broken, a[4]).unwrap_err(),
            TreeError::Broken(a[3])
        );
    }

    #[test]
    fn path_between_tips_on_different_branches() {
        let (blocks, a, b) = forked();
        let tree = blocks.tree(a[4]);
        // Down from the old tip to the fork point a2 (exclusive), then up from it.
        assert_eq!(tree.path(&a[4], &b[2]), (vec![a[4], a[3]], b.to_vec()));
        assert_eq!(
            tree.path(&b[2], &a[4]),
            (vec![b[2], b[1], b[0]], vec![a[3], a[4]])
        );
        // Tips of equal height on different branches.
        assert_eq!(tree.path(&a[3], &b[0]), (vec![a[3]], vec![b[0]]));
        // Moving to an ancestor only disconnects; moving to a descendant only connects.
        assert_eq!(tree.path(&a[4], &a[2]), (vec![a[4], a[3]], vec![]));
        assert_eq!(tree.path(&a[1], &b[1]), (vec![], vec![a[2], b[0], b[1]]));
        assert_eq!(tree.path(&a[4], &a[4]), (vec![], vec![]));
    }

    #[test]
    fn side_blocks_from_lists_the_branch_off_the_best_chain_lowest_first() {
        let (blocks, a, b) = forked();
        let tree = blocks.tree(a[4]);
        assert_eq!(tree.side_blocks_from(Height(0)).collect::<Vec<_>>(), b);
        assert_eq!(tree.side_blocks_from(Height(4)).collect::<Vec<_>>(), b[1..]);
        assert_eq!(tree.side_blocks_from(Height(6)).count(), 0);
        // Seen from the other tip, the side branch is the a branch above the fork.
        let tree = blocks.tree(b[2]);
        assert_eq!(
            tree.side_blocks_from(Height(0)).collect::<Vec<_>>(),
            [a[3], a[4]]
        );
    }

    #[test]
    fn switch_best_moves_the_best_chain_along_a_path() {
        let (blocks, a, b) = forked();
        let mut tree = blocks.tree(a[4]);
        let (down, up) = tree.path(&a[4], &b[2]);
        tree.switch_best(&down, &up);
        assert_eq!(tree.tip(), b[2]);
        assert_eq!(tree.height(), Height(5));
        assert_eq!(
            tree.best_range(Height(0), 10),
            &[a[0], a[1], a[2], b[0], b[1], b[2]]
        );
        for hash in &b {
            assert!(tree.is_on_best(hash));
            assert_eq!(tree.get(hash).unwrap().status, BlockStatus::Connected);
        }
        // The old branch is a side branch now, still there to switch back to.
        assert!(!tree.is_on_best(&a[3]) && !tree.is_on_best(&a[4]));
        assert_eq!(tree.side_len(), 2);
        assert_eq!(tree.len(), 8);
        let (down, up) = tree.path(&b[2], &a[4]);
        tree.switch_best(&down, &up);
        assert_eq!(tree.tip(), a[4]);
        assert_eq!(tree.best_range(Height(0), 10), &a[..]);
        assert_eq!(tree.side_len(), 3);
    }

    #[test]
    fn ancestor_walks_side_branches_and_the_best_chain() {
        let (blocks, a, b) = forked();
        let tree = blocks.tree(a[4]);
        assert_eq!(tree.ancestor(&b[2], Height(5)), Some(b[2]));
        assert_eq!(tree.ancestor(&b[2], Height(3)), Some(b[0]));
        // Below the fork point the side branch's ancestors are the best chain's.
        assert_eq!(tree.ancestor(&b[2], Height(2)), Some(a[2]));
        assert_eq!(tree.ancestor(&b[2], Height(0)), Some(a[0]));
        assert_eq!(tree.ancestor(&a[4], Height(1)), Some(a[1]));
        assert_eq!(tree.ancestor(&a[4], Height(5)), None);
        let unknown = BlockHash(Hash512::digest(b"unknown"));
        assert_eq!(tree.ancestor(&unknown, Height(0)), None);
    }

    #[test]
    fn median_time_past_of_fewer_than_eleven_blocks() {
        let (mut blocks, g) = Blocks::new(900);
        let h1 = blocks.add_at(g, 1, 800);
        let h2 = blocks.add_at(h1, 1, 700);
        let h3 = blocks.add_at(h2, 1, 950);
        let h4 = blocks.add_at(h3, 1, 20);
        let tree = blocks.tree(h4);
        assert_eq!(tree.median_time_past(&g), Timestamp(900));
        // Of an even count, the upper of the two middle times.
        assert_eq!(tree.median_time_past(&h1), Timestamp(900));
        assert_eq!(tree.median_time_past(&h2), Timestamp(800));
        assert_eq!(tree.median_time_past(&h4), Timestamp(800));
        let unknown = BlockHash(Hash512::digest(b"unknown"));
        assert_eq!(tree.median_time_past(&unknown), Timestamp(0));
    }

    #[test]
    fn median_time_past_looks_at_the_last_eleven_blocks_only() {
        // Heights 0..=3 are late; the eleven blocks from height 4 up are unsorted.
        let times = [
            900, 800, 700, 600, 20, 70, 30, 60, 40, 50, 15, 85, 25, 75, 35,
        ];
        let (mut blocks, g) = Blocks::new(times[0]);
        let mut tip = g;
        for time in &times[1..] {
            tip = blocks.add_at(tip, 1, *time);
        }
        let tree = blocks.tree(tip);
        // The median of 15 20 25 30 35 [40] 50 60 70 75 85. Counting one block more
        // (600) or one fewer (20) would give 50; all fifteen would give 60.
        assert_eq!(tree.median_time_past(&tip), Timestamp(40));
        // A side block on top sees its own time and ten of its ancestors.
        let side = blocks.add_at(tree.best_at(Height(13)).unwrap(), 1, 10);
        let tree = blocks.tree(tip);
        // Heights 4..=13 and the side block: 10 15 20 25 30 [40] 50 60 70 75 85.
        assert_eq!(tree.median_time_past(&side), Timestamp(40));
    }

    #[test]
    fn best_candidate_prefers_work_then_first_seen() {
        let (mut blocks, g) = Blocks::new(1_000);
        let x = blocks.add(g);
        let y = blocks.add(g);
        let (x_entry, y_entry) = (blocks.entry(x), blocks.entry(y));
        assert_eq!(x_entry.chain_work, y_entry.chain_work);
        let tree = BlockTree::new([blocks.entries[0], (x, x_entry), (y, y_entry)], g).unwrap();
        assert_eq!(tree.best_candidate(), x);
        // The same blocks, y seen first: the hashes are the same, the choice is not.
        let later = IndexEntry {
            seq: y_entry.seq + 1,
            ..x_entry
        };
        let mut tree = BlockTree::new([blocks.entries[0], (x, later), (y, y_entry)], g).unwrap();
        assert_eq!(tree.best_candidate(), y);
        // More work beats being seen first.
        let z = blocks.add_at(x, 1, 3_000);
        let mut z_entry = blocks.entry(z);
        z_entry.seq = tree.next_seq();
        tree.insert(z, z_entry);
        assert_eq!(tree.best_candidate(), z);
        // A block with as much work as z, seen later, does not take its place.
        let w = blocks.add_at(y, 1, 3_000);
        let mut w_entry = blocks.entry(w);
        w_entry.seq = tree.next_seq();
        assert!(w_entry.seq > z_entry.seq);
        tree.insert(w, w_entry);
        assert_eq!(tree.best_candidate(), z);
    }

    #[test]
    fn mark_invalid_marks_descendants_and_drops_them_from_candidates() {
        let (mut blocks, a, b) = forked();
        // c4 is a sibling of b4, on b3, with as much work as a4 but seen after it.
        let c4 = blocks.add(b[0]);
        let mut tree = blocks.tree(a[4]);
        assert_eq!(tree.best_candidate(), b[2]);
        let marked = tree.mark_invalid(&b[1]);
        assert_eq!(
            sorted(marked.iter().map(|(h, _)| *h).collect()),
            sorted(vec![b[1], b[2]])
        );
        for (hash, entry) in &marked {
            assert_eq!(entry.status, BlockStatus::Invalid);
            assert_eq!(tree.get(hash), Some(entry));
        }
        // b3 and its other child stay valid; among equal work the tip was seen first.
        assert_eq!(tree.get(&b[0]).unwrap().status, BlockStatus::Checked);
        assert_eq!(tree.get(&c4).unwrap().status, BlockStatus::Checked);
        assert_eq!(tree.best_candidate(), a[4]);
        // Marking b3 marks what is left below it, and nothing twice.
        let marked = tree.mark_invalid(&b[0]);
        assert_eq!(
            sorted(marked.iter().map(|(h, _)| *h).collect()),
            sorted(vec![b[0], c4])
        );
        assert!(tree.mark_invalid(&b[0]).is_empty());
        // Invalid blocks stay in the tree, so they are recognised when seen again.
        assert_eq!(tree.len(), 9);
        assert_eq!(tree.best_candidate(), a[4]);
    }

    #[test]
    fn prune_removes_deep_side_branches_with_their_descendants() {
        let (mut blocks, g) = Blocks::new(1_000);
        let a = blocks.extend(g, 10);
        let tip = a[9];
        // Side branches forking off the best chain (a[i] is at height i + 1).
        let s2 = blocks.add(a[0]);
        let s3 = blocks.add(s2);
        let u6 = blocks.add(a[4]);
        // u7 is only three blocks below the tip but goes with u6, and it has the most work.
        let u7 = blocks.add_at(u6, 100, 20_000);
        let v7 = blocks.add(a[5]);
        let t8 = blocks.add(a[6]);
        let mut tree = blocks.tree(tip);
        assert_eq!(tree.side_len(), 6);
        assert_eq!(tree.best_candidate(), u7);
        // The cut is height 7: blocks exactly three below the tip stay.
        let removed = tree.prune(3, usize::MAX, u64::MAX);
        assert_eq!(sorted(removed), sorted(vec![s2, s3, u6, u7]));
        for hash in [s2, s3, u6, u7] {
            assert!(tree.get(&hash).is_none());
        }
        assert_eq!(tree.side_len(), 2);
        assert_eq!(tree.len(), 13);
        assert_eq!(tree.best_candidate(), tip);
        assert!(tree.get(&v7).is_some() && tree.get(&t8).is_some());
        assert_eq!(tree.tip(), tip);
        // Nothing more to prune.
        assert!(tree.prune(3, usize::MAX, u64::MAX).is_empty());
        // Over the count cap, the lowest side blocks go first.
        assert_eq!(tree.prune(3, 1, u64::MAX), vec![v7]);
        assert_eq!(tree.side_len(), 1);
        assert_eq!(tree.side_bytes(), 100);
        assert!(tree.get(&t8).is_some());
        // A pruned block's parent forgets it: invalidating the parent reaches no pruned block.
        let marked = tree.mark_invalid(&a[6]);
        assert_eq!(
            sorted(marked.iter().map(|(h, _)| *h).collect()),
            sorted(vec![a[6], a[7], a[8], a[9], t8])
        );
        let marked = tree.mark_invalid(&a[4]);
        assert_eq!(
            sorted(marked.iter().map(|(h, _)| *h).collect()),
            sorted(vec![a[4], a[5]])
        );
    }

    #[test]
    fn prune_keeps_everything_while_the_chain_is_short() {
        let (blocks, a, b) = forked();
        let mut tree = blocks.tree(a[4]);
        assert!(tree.prune(10, usize::MAX, u64::MAX).is_empty());
        assert_eq!(tree.side_bytes(), 300);
        // The byte cap applies all the same, taking whole branches from the lowest up.
        let mut by_bytes = tree.clone();
        assert_eq!(
            sorted(by_bytes.prune(10, usize::MAX, 299)),
            sorted(b.to_vec())
        );
        assert_eq!(by_bytes.side_bytes(), 0);
        // So does the count cap.
        assert_eq!(sorted(tree.prune(10, 2, u64::MAX)), sorted(b.to_vec()));
        assert_eq!(tree.side_len(), 0);
        assert_eq!(tree.best_candidate(), a[4]);
    }
}
