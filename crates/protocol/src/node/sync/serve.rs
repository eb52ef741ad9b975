//! What sync reads from the chain: our block locator, and the answers to peers' requests for
//! headers and blocks. Reads only; the dispatcher sends the answers and notes what the peer
//! now knows.

use powchain_chain::{Block, BlockHash, Chain, Header, Height, Store, StoreError};

use crate::message::{BLOCKS_MESSAGE_BYTES_MAX, HEADERS_PER_MESSAGE_MAX, LOCATOR_HASHES_MAX};

/// Best-chain hashes from the tip back to genesis: the last ten one by one, then with
/// doubling gaps, genesis always last.
pub fn locator<S: Store>(chain: &Chain<S>) -> Vec<BlockHash> {
    let tree = chain.tree();
    let mut hashes = Vec::new();
    let mut height = tree.height().0;
    let mut step = 1u64;
    while hashes.len() < LOCATOR_HASHES_MAX - 1 {
        if let Some(hash) = tree.best_at(Height(height)) {
            hashes.push(hash);
        }
        if height == 0 {
            return hashes;
        }
        if hashes.len() >= 10 {
            step = step.saturating_mul(2);
        }
        height = height.saturating_sub(step);
    }
    hashes.extend(tree.best_at(Height(0)));
    hashes
}

/// Best-chain headers after the first locator hash on our best chain (after genesis when
/// none is), at most [`HEADERS_PER_MESSAGE_MAX`].
pub fn headers_after<S: Store>(chain: &Chain<S>, locator: &[BlockHash]) -> Vec<Header> {
    let tree = chain.tree();
    let start = locator
        .iter()
        .find(|hash| tree.is_on_best(hash))
        .and_then(|hash| tree.get(hash))
        .map_or(Height(0), |entry| entry.header.height);
    tree.best_range(Height(start.0 + 1), HEADERS_PER_MESSAGE_MAX)
        .iter()
        .filter_map(|hash| tree.get(hash).map(|entry| entry.header))
        .collect()
}

/// The answer to a request for blocks: the blocks we have (each request's hash once), in
/// batches that fit a frame, and the hashes we lack. A store error ends the answer where it
/// happened.
#[derive(Debug, Default)]
pub struct BlocksAnswer {
    /// `Blocks` messages to send, in order.
    pub batches: Vec<Vec<Block>>,
    /// What goes in the `NotFound`.
    pub missing: Vec<BlockHash>,
    /// The store failed while reading (the batches before it still go out).
    pub failed: Option<StoreError>,
}

/// Reads the blocks `hashes` asks for.
pub fn blocks<S: Store>(chain: &Chain<S>, hashes: &[BlockHash]) -> BlocksAnswer {
    let mut unique: Vec<BlockHash> = Vec::with_capacity(hashes.len());
    for hash in hashes {
        if !unique.contains(hash) {
            unique.push(*hash);
        }
    }
    let mut answer = BlocksAnswer::default();
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    for hash in unique {
        let block = match chain.block(&hash) {
            Ok(Some(block)) => block,
            Ok(None) => {
                answer.missing.push(hash);
                continue;
            }
            Err(error) => {
                answer.failed = Some(error);
                answer.missing.clear();
                return answer;
            }
        };
        // Consensus size plus room for postcard's length prefixes.
        let bytes = block.encoded_len() + 1_024;
        if !batch.is_empty() && batch_bytes + bytes > BLOCKS_MESSAGE_BYTES_MAX {
            answer.batches.push(std::mem::take(&mut batch));
            batch_bytes = 0;
        }
        batch_bytes += bytes;
        batch.push(block.as_ref().clone());
    }
    if !batch.is_empty() {
        answer.batches.push(batch);
    }
    answer
}

#[cfg(test)]
mod tests {
    use powchain_chain::{ChainSpec, MemStore};

    use super::*;

    #[test]
    fn the_locator_of_a_fresh_chain_is_its_genesis() {
        let chain = Chain::open(ChainSpec::dev(), MemStore::new(), Default::default()).unwrap();
        assert_eq!(locator(&chain), vec![chain.chain_id()]);
        assert!(headers_after(&chain, &locator(&chain)).is_empty());
    }

    #[test]
    fn blocks_we_lack_are_named_once() {
        let chain = Chain::open(ChainSpec::dev(), MemStore::new(), Default::default()).unwrap();
        let genesis = chain.chain_id();
        let answer = blocks(
            &chain,
            &[genesis, BlockHash::ZERO, genesis, BlockHash::ZERO],
        );
        assert_eq!(answer.batches.len(), 1);
        assert_eq!(answer.batches[0].len(), 1);
        assert_eq!(answer.missing, vec![BlockHash::ZERO]);
        assert!(answer.failed.is_none());
    }
}
