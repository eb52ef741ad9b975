//! The nonce search: one header, many nonces, one SHA-512 compression per attempt.
//!
//! A header is 172 bytes, so its SHA-512 is two compressions. The first covers bytes 0..128
//! (version, height, parent, most of the transaction root), which a miner never changes: it
//! is computed once, the *midstate*. The second block holds the end of the transaction
//! root, the time, the target and the nonce, then SHA-512's padding:
//!
//! ```text
//! block offset  0..12 tx_root tail | 12..20 time | 20..36 target | 36..44 nonce | 0x80 | 0…
//!             | 112..128 message length in bits (1376)
//! word          W0 W1 W2 W3 constant, W4 = target tail | nonce high half,
//!               W5 = nonce low half | 0x80 padding, W6..W15 constant
//! ```
//!
//! So lanes differ only in W4 and W5. A hash meets the target when its first 128 bits, the
//! final state words H0 and H1, are at most the target (see `powchain_chain::pow`).

use powchain_chain::Header;
use powchain_chain::header::{HEADER_BYTES, HEADER_MIDSTATE_BYTES, HEADER_NONCE_OFFSET};

use super::lanes::{Lanes, MAX_LANES, Portable};
use super::{Backend, INITIAL_STATE, compress_blocks, rounds};

/// A header prepared for nonce search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceSearch {
    midstate: [u64; 8],
    /// The second block's words with the nonce's bits zero.
    words: [u64; 16],
    target: u128,
}

/// The nonce's position in the second block.
const NONCE_IN_BLOCK: usize = HEADER_NONCE_OFFSET - HEADER_MIDSTATE_BYTES;
const _: () = assert!(
    NONCE_IN_BLOCK == 36,
    "the W4/W5 split below assumes offset 36"
);

impl NonceSearch {
    /// Prepares `header` (its nonce is ignored).
    pub fn new(header: &Header) -> NonceSearch {
        let encoded = header.encode();
        let mut first = [0u8; 128];
        first.copy_from_slice(&encoded[..HEADER_MIDSTATE_BYTES]);
        let mut midstate = [INITIAL_STATE];
        compress_blocks(Backend::Portable, &mut midstate, &[first]);
        let block = second_block(&encoded);
        let mut words = [0u64; 16];
        for (i, word) in words.iter_mut().enumerate() {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&block[8 * i..8 * i + 8]);
            *word = u64::from_be_bytes(bytes);
        }
        NonceSearch {
            midstate: midstate[0],
            words,
            target: header.target.0,
        }
    }

    /// Tries nonces `start`, `start + 1`, … (`count` of them, stopping at `u64::MAX`) and
    /// returns the first whose hash meets the target. A backend this CPU lacks runs as
    /// `Portable`.
    pub fn search(&self, backend: Backend, start: u64, count: u64) -> Option<u64> {
        let count = count.min(u64::MAX - start);
        match backend.or_portable() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `or_portable` returned Avx512 only because the CPU has AVX-512F.
            Backend::Avx512 => unsafe { search_avx512(self, start, count) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `or_portable` returned Avx2 only because the CPU has AVX2.
            Backend::Avx2 => unsafe { search_avx2(self, start, count) },
            // SAFETY: Portable uses no special instructions.
            _ => unsafe { search_lanes::<Portable>(self, start, count) },
        }
    }

    /// The first 128 bits of the header's hash with `nonce`, as proof of work reads them.
    pub fn leading_u128(&self, nonce: u64) -> u128 {
        let mut state = [self.midstate];
        let mut block = [0u8; 128];
        for (i, word) in self.words_for(nonce).iter().enumerate() {
            block[8 * i..8 * i + 8].copy_from_slice(&word.to_be_bytes());
        }
        compress_blocks(Backend::Portable, &mut state, &[block]);
        (u128::from(state[0][0]) << 64) | u128::from(state[0][1])
    }

    fn words_for(&self, nonce: u64) -> [u64; 16] {
        let mut words = self.words;
        words[4] |= nonce >> 32;
        words[5] |= nonce << 32;
        words
    }
}

/// Bytes 128..172 of the header, SHA-512's padding byte, zeros, and the length in bits; with
/// the nonce's 8 bytes zeroed.
fn second_block(encoded: &[u8; HEADER_BYTES]) -> [u8; 128] {
    let mut block = [0u8; 128];
    let tail = HEADER_BYTES - HEADER_MIDSTATE_BYTES;
    block[..tail].copy_from_slice(&encoded[HEADER_MIDSTATE_BYTES..]);
    block[NONCE_IN_BLOCK..NONCE_IN_BLOCK + 8].fill(0);
    block[tail] = 0x80;
    let bits = (HEADER_BYTES as u128) * 8;
    block[112..].copy_from_slice(&bits.to_be_bytes());
    block
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn search_avx512(search: &NonceSearch, start: u64, count: u64) -> Option<u64> {
    // SAFETY: this function is compiled with AVX-512F and only called where the CPU has it.
    unsafe { search_lanes::<super::lanes::Avx512>(search, start, count) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn search_avx2(search: &NonceSearch, start: u64, count: u64) -> Option<u64> {
    // SAFETY: this function is compiled with AVX2 and only called where the CPU has it.
    unsafe { search_lanes::<super::lanes::Avx2>(search, start, count) }
}

/// The search loop, `V::COUNT` nonces per compression call.
///
/// # Safety
/// The CPU must support `V`'s instructions.
#[inline(always)]
unsafe fn search_lanes<V: Lanes>(search: &NonceSearch, start: u64, count: u64) -> Option<u64> {
    let lanes = V::COUNT as u64;
    let mut offsets = [0u64; MAX_LANES];
    for (lane, offset) in offsets.iter_mut().enumerate() {
        *offset = lane as u64;
    }
    // SAFETY: the caller promises the CPU supports V.
    let (mut nonces, step, midstate, words) = unsafe {
        let mut midstate = [V::splat(0); 8];
        for (vector, word) in midstate.iter_mut().zip(search.midstate) {
            *vector = V::splat(word);
        }
        let mut words = [V::splat(0); 16];
        for (vector, word) in words.iter_mut().zip(search.words) {
            *vector = V::splat(word);
        }
        (
            V::splat(start).add(V::from_lanes(&offsets)),
            V::splat(lanes),
            midstate,
            words,
        )
    };
    let (target_high, target_low) = ((search.target >> 64) as u64, search.target as u64);
    let (mut high, mut low) = ([0u64; MAX_LANES], [0u64; MAX_LANES]);
    let mut tried = 0u64;
    while tried < count {
        let mut w = words;
        w[4] = w[4].or(nonces.shr(32));
        w[5] = w[5].or(nonces.shl(32));
        let mut state = midstate;
        rounds::compress(&mut state, &mut w);
        state[0].store(&mut high);
        state[1].store(&mut low);
        for lane in 0..V::COUNT {
            let meets =
                high[lane] < target_high || (high[lane] == target_high && low[lane] <= target_low);
            if meets
                && let Some(offset) = tried.checked_add(lane as u64)
                && offset < count
            {
                return Some(start + offset);
            }
        }
        nonces = nonces.add(step);
        tried = tried.saturating_add(lanes);
    }
    None
}

#[cfg(test)]
mod tests {
    use powchain_chain::{ChainSpec, Target};

    use super::*;

    #[test]
    fn midstate_and_second_block_give_the_header_hash() {
        let mut header = ChainSpec::dev().genesis_block().header;
        let search = NonceSearch::new(&header);
        for nonce in [0, 1, 0xdead_beef, u64::MAX] {
            header.nonce = nonce;
            assert_eq!(
                search.leading_u128(nonce),
                header.hash().0.leading_u128(),
                "{nonce}"
            );
        }
    }

    #[test]
    fn every_backend_finds_the_first_solution() {
        let mut header = ChainSpec::dev().genesis_block().header;
        header.target = Target(u128::MAX >> 6);
        let search = NonceSearch::new(&header);
        let expected = (0..u64::MAX)
            .find(|&nonce| search.leading_u128(nonce) <= header.target.0)
            .unwrap();
        for backend in Backend::supported() {
            assert_eq!(
                search.search(backend, 0, 1 << 20),
                Some(expected),
                "{backend}"
            );
            // Starting just past it finds a later one; a range that ends before it finds none.
            assert!(search.search(backend, expected + 1, 1 << 20).unwrap() > expected);
            assert_eq!(search.search(backend, 0, expected), None, "{backend}");
        }
    }

    #[test]
    fn the_range_end_is_respected_at_u64_max() {
        let mut header = ChainSpec::dev().genesis_block().header;
        header.target = Target(u128::MAX);
        let search = NonceSearch::new(&header);
        for backend in Backend::supported() {
            assert_eq!(
                search.search(backend, u64::MAX - 3, 100),
                Some(u64::MAX - 3)
            );
            assert_eq!(search.search(backend, u64::MAX, 100), None);
        }
    }
}
