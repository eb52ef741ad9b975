//! Blocks whose parent is not known yet, bounded by count and bytes.
//!
//! When the pool is full the oldest orphan goes first. An orphan is only admitted after the
//! cheap checks that need no parent (its hash meets its own target, and that target is no
//! easier than the chain allows), so filling the pool costs real proof of work.

use std::collections::BTreeMap;

use crate::hashing::HashMap;

use crate::block::Block;
use crate::hash::BlockHash;

/// The orphan pool.
#[derive(Clone, Debug)]
pub struct OrphanPool {
    blocks: HashMap<BlockHash, (Block, usize, u64)>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    by_age: BTreeMap<u64, BlockHash>,
    bytes: usize,
    next_seq: u64,
    count_max: usize,
    bytes_max: usize,
}

impl OrphanPool {
    /// An empty pool holding at most `count_max` blocks and `bytes_max` bytes.
    pub fn new(count_max: usize, bytes_max: usize) -> OrphanPool {
        OrphanPool {
            blocks: HashMap::default(),
            by_parent: HashMap::default(),
            by_age: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
            count_max,
            bytes_max,
        }
    }

    /// Whether `hash` is waiting here.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// How many orphans wait.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Bytes held (consensus encoding).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `block`, evicting the oldest orphans to stay within bounds. Returns the evicted.
    /// A block larger than the whole byte budget is not kept (and is returned as evicted).
    pub fn insert(&mut self, hash: BlockHash, block: Block) -> Vec<BlockHash> {
        let size = block.encoded_len();
        if size > self.bytes_max || self.count_max == 0 {
            return vec![hash];
        }
        let mut evicted = Vec::new();
        while self.blocks.len() >= self.count_max || self.bytes + size > self.bytes_max {
            let Some((_, oldest)) = self.by_age.first_key_value() else {
                break;
            };
            let oldest = *oldest;
            self.remove(&oldest);
            evicted.push(oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_parent
            .entry(block.header.prev_hash)
            .or_default()
            .push(hash);
        self.by_age.insert(seq, hash);
        self.bytes += size;
        self.blocks.insert(hash, (block, size, seq));
        evicted
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Block> {
        let (block, size, seq) = self.blocks.remove(hash)?;
        self.bytes -= size;
        self.by_age.remove(&seq);
        if let Some(siblings) = self.by_parent.get_mut(&block.header.prev_hash) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&block.header.prev_hash);
            }
        }
        Some(block)
    }

    /// Removes and returns the orphans whose parent is `parent`, oldest first.
    pub fn take_children(&mut self, parent: &BlockHash) -> Vec<(BlockHash, Block)> {
        let hashes = self.by_parent.get(parent).cloned().unwrap_or_default();
        hashes
            .into_iter()
            .filter_map(|hash| self.remove(&hash).map(|block| (hash, block)))
            .collect()
    }

    /// The parent an orphan is waiting for.
    pub fn missing_parent(&self, hash: &BlockHash) -> Option<BlockHash> {
        self.blocks.get(hash).map(|(b, _, _)| b.header.prev_hash)
    }

    /// The root of the chain of orphans `hash` belongs to: the block the node should fetch.
    pub fn root_parent(&self, hash: &BlockHash) -> Option<BlockHash> {
        let mut parent = self.missing_parent(hash)?;
        // Bounded by the pool size: each step moves to a distinct orphan.
        for _ in 0..self.blocks.len() {
            match self.missing_parent(&parent) {
                Some(grandparent) => parent = grandparent,
                None => break,
            }
        }
        Some(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash512;
    use crate::header::{HEADER_VERSION, Header};
    use crate::pow::Target;
    use crate::units::{Height, Timestamp};

    fn block(parent: BlockHash, nonce: u64) -> (BlockHash, Block) {
        let header = Header {
            version: HEADER_VERSION,
            height: Height(1),
            prev_hash: parent,
            tx_root: Hash512::ZERO,
            time: Timestamp(0),
            target: Target(u128::MAX),
            nonce,
        };
        (
            header.hash(),
            Block {
                header,
                txs: vec![],
            },
        )
    }

    #[test]
    fn bounded_by_count_oldest_first() {
        let mut pool = OrphanPool::new(2, usize::MAX);
        let (a, block_a) = block(BlockHash::ZERO, 1);
        let (b, block_b) = block(BlockHash::ZERO, 2);
        let (c, block_c) = block(a, 3);
        assert!(pool.insert(a, block_a).is_empty());
        assert!(pool.insert(b, block_b).is_empty());
        assert_eq!(pool.insert(c, block_c), vec![a]);
        assert_eq!(pool.len(), 2);
        assert!(!pool.contains(&a));
        assert_eq!(pool.take_children(&BlockHash::ZERO).len(), 1);
        assert_eq!(pool.take_children(&a).len(), 1);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn bounded_by_bytes_and_finds_the_root() {
        let one = block(BlockHash::ZERO, 0).1.encoded_len();
        let mut pool = OrphanPool::new(100, one * 2);
        let (a, block_a) = block(BlockHash::ZERO, 1);
        let (b, block_b) = block(a, 2);
        pool.insert(a, block_a);
        pool.insert(b, block_b);
        assert_eq!(pool.root_parent(&b), Some(BlockHash::ZERO));
        let (c, block_c) = block(b, 3);
        assert_eq!(pool.insert(c, block_c), vec![a]);
        assert!(pool.bytes() <= one * 2);
    }
}
