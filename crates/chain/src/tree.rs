//! The block tree: every known block's index entry, the best chain, and fork choice.
//!
//! The tree lives in memory and holds headers only (bodies are in the store). It answers
//! what validation needs of a block's ancestors (median time past, the expected target),
//! which block is the best candidate tip (most cumulative work; among equal work, the one
//! seen first), and the path between two tips (the blocks to disconnect and to connect).
//!
//! Side branches are bounded: blocks off the best chain are pruned, with their descendants,
//! once they are more than `side_depth_max` below the tip, or when there are more than
//! `side_blocks_max` of them (lowest first). A branch that forks deeper than that can no
//! longer win: that is the node's maximum reorg depth.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use crate::block::BlockContext;
use crate::hash::BlockHash;
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
            entries: HashMap::new(),
            children: HashMap::new(),
            candidates: BTreeSet::new(),
            side: BTreeSet::new(),
            best: Vec::new(),
        };
        tree.best = best;
        let on_best: std::collections::HashSet<BlockHash> = tree.best.iter().copied().collect();
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
        let Some(rule) = &spec.retarget else {
            return spec.genesis_target();
        };
        let height = entry.header.height.0 + 1;
        if !rule.adjusts_at(height) {
            return entry.header.target;
        }
        // The window is the `window_blocks` blocks ending at the parent.
        let first_height = Height(height - rule.window_blocks);
        let first_time = self
            .ancestor(parent, first_height)
            .and_then(|h| self.entries.get(&h))
            .map_or(entry.header.time, |e| e.header.time);
        rule.next_target(entry.header.target, entry.header.time.ms_since(first_time))
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
            }
            self.best.pop();
        }
        for hash in connected {
            if let Some(entry) = self.entries.get_mut(hash) {
                entry.status = BlockStatus::Connected;
                self.side.remove(&(entry.header.height, *hash));
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
                entry.status = BlockStatus::Invalid;
                marked.push((current, *entry));
            }
            stack.extend(self.children.get(&current).into_iter().flatten());
        }
        marked
    }

    /// Prunes side blocks (with their descendants) more than `depth_max` below the tip, then
    /// the lowest side blocks while more than `count_max` remain. Returns what was removed.
    pub fn prune(&mut self, depth_max: u64, count_max: usize) -> Vec<BlockHash> {
        let cut = Height(self.height().0.saturating_sub(depth_max));
        let mut removed = Vec::new();
        while let Some(&(height, hash)) = self.side.first() {
            if height >= cut && self.side.len() <= count_max {
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
                self.side.remove(&(entry.header.height, hash));
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
