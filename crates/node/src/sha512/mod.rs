//! Multi-buffer SHA-512: several independent compressions per call, one per SIMD lane.
//!
//! ```text
//!   Backend::detect()  ->  Avx512 (8 lanes) | Avx2 (4 lanes) | Portable (1 lane)
//!        │
//!        ├── compress_blocks: general, N (state, block) pairs at once (tests, benches)
//!        └── mining::search:  one header, many nonces, from a precomputed midstate
//! ```
//!
//! The rounds are written once, generic over [`lanes::Lanes`], and instantiated inside a
//! `#[target_feature]` function per backend so the intrinsics inline. The `unsafe` is in
//! `lanes.rs` (the vector types and their safety argument), in the three generic kernels
//! (`compress_groups`, `repeat`, `mining::search_lanes`: `unsafe fn`s, because they build
//! vectors), and at the three dispatch points (`compress_blocks`, `compress_repeatedly`,
//! `NonceSearch::search`), each guarded by runtime CPU detection.

pub(crate) mod lanes;
pub mod mining;
mod rounds;

use std::fmt;

use lanes::Lanes;

/// SHA-512's initial state.
pub const INITIAL_STATE: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// A way to compute SHA-512 compressions on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// AVX-512F: eight messages per call, native 64-bit rotates and three-input logic.
    Avx512,
    /// AVX2: four messages per call.
    Avx2,
    /// Plain Rust, one message per call: runs anywhere.
    Portable,
}

impl Backend {
    /// Every backend, fastest first.
    pub const ALL: [Backend; 3] = [Backend::Avx512, Backend::Avx2, Backend::Portable];

    /// The fastest backend this CPU supports.
    pub fn detect() -> Backend {
        Backend::ALL
            .into_iter()
            .find(|backend| backend.is_supported())
            .unwrap_or(Backend::Portable)
    }

    /// Every backend this CPU supports, fastest first.
    pub fn supported() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|backend| backend.is_supported())
            .collect()
    }

    /// Whether this CPU has the instructions the backend uses.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx512 | Backend::Avx2 => false,
            Backend::Portable => true,
        }
    }

    /// Messages per call.
    pub fn lanes(self) -> usize {
        match self {
            Backend::Avx512 => 8,
            Backend::Avx2 => 4,
            Backend::Portable => 1,
        }
    }

    /// A short name for tables and flags.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Avx512 => "avx512",
            Backend::Avx2 => "avx2",
            Backend::Portable => "portable",
        }
    }

    /// The backend named `name`, if this CPU supports it.
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL
            .into_iter()
            .find(|backend| backend.name() == name && backend.is_supported())
    }

    /// This backend if supported, otherwise the portable one: what every entry point runs.
    fn or_portable(self) -> Backend {
        if self.is_supported() {
            self
        } else {
            Backend::Portable
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Compresses each `blocks[i]` into `states[i]`, `backend.lanes()` at a time (a backend this
/// CPU lacks runs as `Portable`). Any number of pairs is fine; a partial last group is padded.
pub fn compress_blocks(backend: Backend, states: &mut [[u64; 8]], blocks: &[[u8; 128]]) {
    let count = states.len().min(blocks.len());
    match backend.or_portable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `or_portable` returned Avx512 only because the CPU has AVX-512F.
        Backend::Avx512 => unsafe { compress_avx512(&mut states[..count], &blocks[..count]) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `or_portable` returned Avx2 only because the CPU has AVX2.
        Backend::Avx2 => unsafe { compress_avx2(&mut states[..count], &blocks[..count]) },
        // SAFETY: Portable uses no special instructions.
        _ => unsafe { compress_groups::<lanes::Portable>(&mut states[..count], &blocks[..count]) },
    }
}

/// Runs `calls` compressions of `backend.lanes()` messages each, feeding every result into the
/// next call's state and message, and returns the final state of lane 0 (so none of it can
/// be optimised away).
/// This is the raw multi-buffer rate: no transposition, no nonce handling, no target check.
pub fn compress_repeatedly(backend: Backend, calls: u64) -> [u64; 8] {
    match backend.or_portable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `or_portable` returned Avx512 only because the CPU has AVX-512F.
        Backend::Avx512 => unsafe { repeat_avx512(calls) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `or_portable` returned Avx2 only because the CPU has AVX2.
        Backend::Avx2 => unsafe { repeat_avx2(calls) },
        // SAFETY: Portable uses no special instructions.
        _ => unsafe { repeat::<lanes::Portable>(calls) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn repeat_avx512(calls: u64) -> [u64; 8] {
    // SAFETY: this function is compiled with AVX-512F and only called where the CPU has it.
    unsafe { repeat::<lanes::Avx512>(calls) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn repeat_avx2(calls: u64) -> [u64; 8] {
    // SAFETY: this function is compiled with AVX2 and only called where the CPU has it.
    unsafe { repeat::<lanes::Avx2>(calls) }
}

/// # Safety
/// The CPU must support `V`'s instructions.
#[inline(always)]
unsafe fn repeat<V: Lanes>(calls: u64) -> [u64; 8] {
    // SAFETY: the caller promises the CPU supports V.
    let (mut state, message) = unsafe {
        let mut state = [V::splat(0); 8];
        for (vector, word) in state.iter_mut().zip(INITIAL_STATE) {
            *vector = V::splat(word);
        }
        let mut message = [V::splat(0); 16];
        for (i, vector) in message.iter_mut().enumerate() {
            *vector = V::splat(i as u64);
        }
        (state, message)
    };
    for _ in 0..calls {
        // The message depends on the previous result, so no part of the schedule can be
        // hoisted out of the loop: every call does the full work of a fresh message.
        let mut w = message;
        for (i, word) in w.iter_mut().enumerate() {
            *word = word.add(state[i % 8]);
        }
        rounds::compress(&mut state, &mut w);
    }
    let mut out = [0u64; 8];
    let mut lanes_out = [0u64; lanes::MAX_LANES];
    for (word, vector) in out.iter_mut().zip(state) {
        vector.store(&mut lanes_out);
        *word = lanes_out[0];
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn compress_avx512(states: &mut [[u64; 8]], blocks: &[[u8; 128]]) {
    // SAFETY: this function is compiled with AVX-512F and only called where the CPU has it.
    unsafe { compress_groups::<lanes::Avx512>(states, blocks) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn compress_avx2(states: &mut [[u64; 8]], blocks: &[[u8; 128]]) {
    // SAFETY: this function is compiled with AVX2 and only called where the CPU has it.
    unsafe { compress_groups::<lanes::Avx2>(states, blocks) };
}

/// Transposes groups of `V::COUNT` messages into lanes, compresses, and transposes back.
///
/// # Safety
/// The CPU must support `V`'s instructions.
#[inline(always)]
unsafe fn compress_groups<V: Lanes>(states: &mut [[u64; 8]], blocks: &[[u8; 128]]) {
    let lanes = V::COUNT;
    for (state_group, block_group) in states.chunks_mut(lanes).zip(blocks.chunks(lanes)) {
        let mut words = [[0u64; lanes::MAX_LANES]; 16];
        let mut state_words = [[0u64; lanes::MAX_LANES]; 8];
        for (lane, (state, block)) in state_group.iter().zip(block_group).enumerate() {
            for i in 0..16 {
                let mut word = [0u8; 8];
                word.copy_from_slice(&block[8 * i..8 * i + 8]);
                words[i][lane] = u64::from_be_bytes(word);
            }
            for i in 0..8 {
                state_words[i][lane] = state[i];
            }
        }
        // SAFETY: the caller promises the CPU supports V.
        let mut w: [V; 16] = std::array::from_fn(|i| unsafe { V::from_lanes(&words[i]) });
        let mut state: [V; 8] = std::array::from_fn(|i| unsafe { V::from_lanes(&state_words[i]) });
        rounds::compress(&mut state, &mut w);
        for (i, word) in state.iter().enumerate() {
            word.store(&mut state_words[i]);
        }
        for (lane, out) in state_group.iter_mut().enumerate() {
            for i in 0..8 {
                out[i] = state_words[i][lane];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha2_compress(state: &mut [u64; 8], block: &[u8; 128]) {
        sha2::block_api::compress512(state, &[*block]);
    }

    #[test]
    fn every_supported_backend_matches_sha2_on_known_blocks() {
        let mut blocks = vec![[0u8; 128], [0xffu8; 128]];
        let mut counting = [0u8; 128];
        for (i, byte) in counting.iter_mut().enumerate() {
            *byte = i as u8;
        }
        blocks.push(counting);
        // 11 messages: full groups and a partial one for every lane count.
        let blocks: Vec<[u8; 128]> = blocks.iter().cycle().take(11).copied().collect();
        for backend in Backend::supported() {
            let mut states = vec![INITIAL_STATE; blocks.len()];
            for (i, state) in states.iter_mut().enumerate() {
                state[i % 8] ^= i as u64;
            }
            let mut expected = states.clone();
            for (state, block) in expected.iter_mut().zip(&blocks) {
                sha2_compress(state, block);
            }
            compress_blocks(backend, &mut states, &blocks);
            assert_eq!(states, expected, "{backend}");
        }
    }

    #[test]
    fn repeated_compression_chains_like_sha2() {
        let mut expected = INITIAL_STATE;
        for _ in 0..3 {
            let mut fed = [0u8; 128];
            for i in 0..16 {
                let word = (i as u64).wrapping_add(expected[i % 8]);
                fed[8 * i..8 * i + 8].copy_from_slice(&word.to_be_bytes());
            }
            sha2_compress(&mut expected, &fed);
        }
        for backend in Backend::supported() {
            assert_eq!(compress_repeatedly(backend, 3), expected, "{backend}");
        }
    }

    #[test]
    fn detection_is_consistent() {
        let best = Backend::detect();
        assert!(best.is_supported());
        assert_eq!(Backend::supported()[0], best);
        assert!(Backend::supported().contains(&Backend::Portable));
        assert_eq!(Backend::from_name("portable"), Some(Backend::Portable));
        assert_eq!(Backend::from_name("nope"), None);
    }
}
