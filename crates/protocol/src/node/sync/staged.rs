//! Headers of a branch that does not yet come near our chain's work, held per peer.
//!
//! A header that passes every check but whose chain work is below the queue threshold
//! (the minimum chain work, or our tip's work less a margin of blocks, whichever is more:
//! Bitcoin Core's anti-DoS work threshold) is **staged, not queued**: its block is not
//! downloaded, it takes no place in the shared download queue, and it is charged to the
//! peer whose answer carried it (at most `staged_headers_per_peer_max`). Only when a
//! descendant carries the branch past the threshold is the branch queued, oldest first.
//!
//! So a fork from deep in the chain, where blocks were cheap to mine, costs us its headers'
//! checks and a bounded amount of memory, never a download or a side branch on disk. The
//! next headers request to the peer starts at the stage's tip, and an announcement that
//! builds on it is staged too, so a growing branch is fetched once, not from the fork
//! again for each new block. A staged branch goes when its peer does and when the peer's
//! stage is full.

use powchain_chain::BlockHash;
use powchain_chain::hashing::HashMap;

use super::download::Wanted;

/// One peer's staged headers.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    headers: HashMap<BlockHash, Wanted>,
}

impl Staged {
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&Wanted> {
        self.headers.get(hash)
    }

    pub fn insert(&mut self, hash: BlockHash, wanted: Wanted) {
        self.headers.insert(hash, wanted);
    }

    /// The highest staged header (the first of equals by hash): where the next headers
    /// request to its peer starts.
    pub fn tip(&self) -> Option<BlockHash> {
        self.headers
            .iter()
            .max_by_key(|(hash, wanted)| (wanted.header.height, std::cmp::Reverse(**hash)))
            .map(|(hash, _)| *hash)
    }

    pub fn clear(&mut self) {
        self.headers = HashMap::default();
    }

    /// Takes the staged branch that ends at `tip` (if `tip` is staged): `tip` and its staged
    /// ancestors, oldest first.
    pub fn take_branch(&mut self, tip: &BlockHash) -> Vec<(BlockHash, Wanted)> {
        let mut branch = Vec::new();
        let mut cursor = *tip;
        while let Some(wanted) = self.headers.remove(&cursor) {
            branch.push((cursor, wanted));
            cursor = wanted.header.prev_hash;
        }
        branch.reverse();
        branch
    }
}

#[cfg(test)]
mod tests {
    use powchain_chain::{ChainSpec, Height, Work};

    use super::*;

    #[test]
    fn a_branch_is_taken_oldest_first_and_other_branches_stay() {
        let genesis = ChainSpec::dev().genesis_block().header;
        let mut staged = Staged::default();
        let mut branch = |first_nonce: u64| {
            let mut parent = genesis;
            let mut hashes = Vec::new();
            for height in 1..=3 {
                let mut header = parent;
                header.prev_hash = parent.hash();
                header.height = Height(height);
                header.nonce = first_nonce + height;
                let chain_work = Work(height.into());
                staged.insert(header.hash(), Wanted { header, chain_work });
                hashes.push(header.hash());
                parent = header;
            }
            hashes
        };
        let one = branch(0);
        let two = branch(100);
        assert_eq!(staged.len(), 6);
        let taken: Vec<BlockHash> = staged
            .take_branch(&one[2])
            .into_iter()
            .map(|(hash, _)| hash)
            .collect();
        assert_eq!(taken, one);
        assert_eq!(staged.len(), 3);
        assert!(staged.get(&two[0]).is_some());
        assert!(staged.take_branch(&one[2]).is_empty());
    }
}
