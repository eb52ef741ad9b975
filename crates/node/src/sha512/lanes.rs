//! Vectors of 64-bit lanes: the operations SHA-512 needs, for each backend.
//!
//! # Safety
//!
//! [`Avx512`] and [`Avx2`] wrap SIMD registers whose methods execute AVX-512F or AVX2
//! instructions. Their only constructors, [`Lanes::splat`] and [`Lanes::from_lanes`], are
//! `unsafe`: the caller promises the CPU has the instructions (the dispatch functions check
//! with `is_x86_feature_detected!` first). A value of these types therefore exists only on a
//! CPU that can run its methods, which is why the methods themselves are safe. All methods
//! are `#[inline(always)]` so that they are compiled inside the caller's
//! `#[target_feature]` function, where the intrinsics inline to single instructions.

/// The most lanes any backend has.
pub const MAX_LANES: usize = 8;

/// A vector of `COUNT` 64-bit lanes.
pub trait Lanes: Copy {
    /// Lanes per vector.
    const COUNT: usize;

    /// Every lane `value`.
    ///
    /// # Safety
    /// The CPU must support this type's instructions.
    unsafe fn splat(value: u64) -> Self;

    /// Lane `i` from `values[i]` (the first `COUNT` values).
    ///
    /// # Safety
    /// The CPU must support this type's instructions.
    unsafe fn from_lanes(values: &[u64; MAX_LANES]) -> Self;

    /// Writes lane `i` to `out[i]`.
    fn store(self, out: &mut [u64; MAX_LANES]);

    /// Lane-wise wrapping addition.
    fn add(self, other: Self) -> Self;
    /// Lane-wise exclusive or.
    fn xor(self, other: Self) -> Self;
    /// Lane-wise or.
    fn or(self, other: Self) -> Self;
    /// Lane-wise rotate right by `bits` (a constant after inlining).
    fn rotr(self, bits: u32) -> Self;
    /// Lane-wise shift right by `bits`.
    fn shr(self, bits: u32) -> Self;
    /// Lane-wise shift left by `bits`.
    fn shl(self, bits: u32) -> Self;
    /// `a ^ b ^ c`.
    fn xor3(a: Self, b: Self, c: Self) -> Self;
    /// SHA-2's choose: `(e & f) ^ (!e & g)`.
    fn choose(e: Self, f: Self, g: Self) -> Self;
    /// SHA-2's majority: `(a & b) ^ (a & c) ^ (b & c)`.
    fn majority(a: Self, b: Self, c: Self) -> Self;
}

/// One lane in a plain `u64`: runs anywhere.
#[derive(Clone, Copy, Debug)]
pub struct Portable(u64);

impl Lanes for Portable {
    const COUNT: usize = 1;

    #[inline(always)]
    unsafe fn splat(value: u64) -> Self {
        Portable(value)
    }

    #[inline(always)]
    unsafe fn from_lanes(values: &[u64; MAX_LANES]) -> Self {
        Portable(values[0])
    }

    #[inline(always)]
    fn store(self, out: &mut [u64; MAX_LANES]) {
        out[0] = self.0;
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Portable(self.0.wrapping_add(other.0))
    }

    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        Portable(self.0 ^ other.0)
    }

    #[inline(always)]
    fn or(self, other: Self) -> Self {
        Portable(self.0 | other.0)
    }

    #[inline(always)]
    fn rotr(self, bits: u32) -> Self {
        Portable(self.0.rotate_right(bits))
    }

    #[inline(always)]
    fn shr(self, bits: u32) -> Self {
        Portable(self.0 >> bits)
    }

    #[inline(always)]
    fn shl(self, bits: u32) -> Self {
        Portable(self.0 << bits)
    }

    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        Portable(a.0 ^ b.0 ^ c.0)
    }

    #[inline(always)]
    fn choose(e: Self, f: Self, g: Self) -> Self {
        Portable((e.0 & f.0) ^ (!e.0 & g.0))
    }

    #[inline(always)]
    fn majority(a: Self, b: Self, c: Self) -> Self {
        Portable((a.0 & b.0) ^ (a.0 & c.0) ^ (b.0 & c.0))
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Lanes, MAX_LANES};

    /// Eight lanes in an AVX-512 register. See the module's safety note.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx512(__m512i);

    // SAFETY (every `unsafe` block below): a value of `Avx512` exists only if the CPU has
    // AVX-512F, because its constructors are `unsafe fn`s whose callers promise it.
    impl Lanes for Avx512 {
        const COUNT: usize = 8;

        #[inline(always)]
        unsafe fn splat(value: u64) -> Self {
            Avx512(unsafe { _mm512_set1_epi64(value as i64) })
        }

        #[inline(always)]
        unsafe fn from_lanes(values: &[u64; MAX_LANES]) -> Self {
            // SAFETY: [u64; 8] and __m512i have the same size, and every bit pattern is valid.
            Avx512(unsafe { std::mem::transmute::<[u64; 8], __m512i>(*values) })
        }

        #[inline(always)]
        fn store(self, out: &mut [u64; MAX_LANES]) {
            // SAFETY: as in `from_lanes`.
            *out = unsafe { std::mem::transmute::<__m512i, [u64; 8]>(self.0) };
        }

        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Avx512(unsafe { _mm512_add_epi64(self.0, other.0) })
        }

        #[inline(always)]
        fn xor(self, other: Self) -> Self {
            Avx512(unsafe { _mm512_xor_si512(self.0, other.0) })
        }

        #[inline(always)]
        fn or(self, other: Self) -> Self {
            Avx512(unsafe { _mm512_or_si512(self.0, other.0) })
        }

        #[inline(always)]
        fn rotr(self, bits: u32) -> Self {
            Avx512(unsafe { _mm512_rorv_epi64(self.0, _mm512_set1_epi64(i64::from(bits))) })
        }

        #[inline(always)]
        fn shr(self, bits: u32) -> Self {
            Avx512(unsafe { _mm512_srlv_epi64(self.0, _mm512_set1_epi64(i64::from(bits))) })
        }

        #[inline(always)]
        fn shl(self, bits: u32) -> Self {
            Avx512(unsafe { _mm512_sllv_epi64(self.0, _mm512_set1_epi64(i64::from(bits))) })
        }

        #[inline(always)]
        fn xor3(a: Self, b: Self, c: Self) -> Self {
            // Truth table 0x96: a ^ b ^ c.
            Avx512(unsafe { _mm512_ternarylogic_epi64::<0x96>(a.0, b.0, c.0) })
        }

        #[inline(always)]
        fn choose(e: Self, f: Self, g: Self) -> Self {
            // Truth table 0xCA: e ? f : g.
            Avx512(unsafe { _mm512_ternarylogic_epi64::<0xCA>(e.0, f.0, g.0) })
        }

        #[inline(always)]
        fn majority(a: Self, b: Self, c: Self) -> Self {
            // Truth table 0xE8: at least two of a, b, c.
            Avx512(unsafe { _mm512_ternarylogic_epi64::<0xE8>(a.0, b.0, c.0) })
        }
    }

    /// Four lanes in an AVX2 register. See the module's safety note.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx2(__m256i);

    // SAFETY (every `unsafe` block below): a value of `Avx2` exists only if the CPU has AVX2,
    // because its constructors are `unsafe fn`s whose callers promise it.
    impl Lanes for Avx2 {
        const COUNT: usize = 4;

        #[inline(always)]
        unsafe fn splat(value: u64) -> Self {
            Avx2(unsafe { _mm256_set1_epi64x(value as i64) })
        }

        #[inline(always)]
        unsafe fn from_lanes(values: &[u64; MAX_LANES]) -> Self {
            let four = [values[0], values[1], values[2], values[3]];
            // SAFETY: [u64; 4] and __m256i have the same size, and every bit pattern is valid.
            Avx2(unsafe { std::mem::transmute::<[u64; 4], __m256i>(four) })
        }

        #[inline(always)]
        fn store(self, out: &mut [u64; MAX_LANES]) {
            // SAFETY: as in `from_lanes`.
            let four = unsafe { std::mem::transmute::<__m256i, [u64; 4]>(self.0) };
            out[..4].copy_from_slice(&four);
        }

        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Avx2(unsafe { _mm256_add_epi64(self.0, other.0) })
        }

        #[inline(always)]
        fn xor(self, other: Self) -> Self {
            Avx2(unsafe { _mm256_xor_si256(self.0, other.0) })
        }

        #[inline(always)]
        fn or(self, other: Self) -> Self {
            Avx2(unsafe { _mm256_or_si256(self.0, other.0) })
        }

        #[inline(always)]
        fn rotr(self, bits: u32) -> Self {
            self.shr(bits).or(self.shl(64 - bits))
        }

        #[inline(always)]
        fn shr(self, bits: u32) -> Self {
            Avx2(unsafe { _mm256_srlv_epi64(self.0, _mm256_set1_epi64x(i64::from(bits))) })
        }

        #[inline(always)]
        fn shl(self, bits: u32) -> Self {
            Avx2(unsafe { _mm256_sllv_epi64(self.0, _mm256_set1_epi64x(i64::from(bits))) })
        }

        #[inline(always)]
        fn xor3(a: Self, b: Self, c: Self) -> Self {
            a.xor(b).xor(c)
        }

        #[inline(always)]
        fn choose(e: Self, f: Self, g: Self) -> Self {
            // (e & f) ^ (!e & g) == g ^ (e & (f ^ g)): one operation fewer.
            g.xor(Avx2(unsafe { _mm256_and_si256(e.0, f.xor(g).0) }))
        }

        #[inline(always)]
        fn majority(a: Self, b: Self, c: Self) -> Self {
            // (a & b) | (c & (a | b)).
            let both = unsafe { _mm256_and_si256(a.0, b.0) };
            let either = unsafe { _mm256_and_si256(c.0, a.or(b).0) };
            Avx2(both).or(Avx2(either))
        }
    }
}
