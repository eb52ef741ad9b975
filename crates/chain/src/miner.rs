//! A simple single-threaded miner: tries nonces one by one, hashing the whole header.
//!
//! Enough for tests, the seed's `Mine` command and the demo. The node's fast miner (SHA-512
//! midstate, several lanes, several threads) lives in the node crate; this one is the
//! reference it is checked against.

use crate::block::Block;
use crate::header::Header;

/// Searches nonces from `header.nonce` for at most `attempts` tries. On success the header
/// holds the winning nonce and `true` is returned; otherwise the nonce is where it stopped.
pub fn search_nonce(header: &mut Header, attempts: u64) -> bool {
    for _ in 0..attempts {
        if header.meets_own_target() {
            return true;
        }
        header.nonce = header.nonce.wrapping_add(1);
    }
    false
}

/// Mines `block` until its header meets its target, rolling the time forward by a
/// millisecond whenever every nonce has been tried. Returns the number of hashes tried.
pub fn mine(block: &mut Block) -> u64 {
    const BATCH: u64 = 1 << 20;
    let mut tried = 0u64;
    loop {
        let start = block.header.nonce;
        if search_nonce(&mut block.header, BATCH) {
            return tried + block.header.nonce.wrapping_sub(start) + 1;
        }
        tried += BATCH;
        if block.header.nonce < start {
            // Wrapped around: every nonce failed at this time.
            block.header.time.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ChainSpec;

    #[test]
    fn mined_headers_meet_their_target() {
        let mut block = ChainSpec::seed().genesis_block();
        block.header.target = crate::pow::DifficultyBits::new(10).unwrap().target();
        let tried = mine(&mut block);
        assert!(block.header.meets_own_target());
        assert!(block.header.hash().0.leading_zero_bits() >= 10);
        assert!(tried >= 1);
    }

    #[test]
    fn search_gives_up_after_its_attempts() {
        let mut header = ChainSpec::seed().genesis_block().header;
        header.target = crate::pow::Target(0);
        assert!(!search_nonce(&mut header, 10));
        assert_eq!(header.nonce, 10);
    }
}
