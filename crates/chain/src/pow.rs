//! Proof of work: targets, the work they represent, and retargeting.
//!
//! A block is valid when the SHA-512 of its header, read as a 512-bit big-endian number, is at
//! most the block's target. Every target powchain uses has its low 384 bits all ones, so the
//! comparison only needs the hash's first 128 bits, and a target is stored as those 128 bits
//! ([`Target`]). The seed's "difficulty n" (the hash starts with n zero bits) is exactly the
//! target `u128::MAX >> n`; [`DifficultyBits`] checks that n is within 1..=80.
//!
//! A block's [`Work`] is the expected number of hashes needed to meet its target,
//! `2^128 / (target + 1)`, so difficulty n is worth exactly `2^n` hashes. Fork choice sums it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Hash512;

/// The smallest difficulty the seed allows, in leading zero bits.
pub const DIFFICULTY_BITS_MIN: u8 = 1;
/// The largest difficulty the seed allows, in leading zero bits.
pub const DIFFICULTY_BITS_MAX: u8 = 80;

/// A difficulty in leading zero bits, known to be within 1..=80.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DifficultyBits(u8);

/// A difficulty outside 1..=80.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "difficulty must be between {DIFFICULTY_BITS_MIN} and {DIFFICULTY_BITS_MAX} leading zero bits, got {0}"
)]
pub struct DifficultyOutOfRange(pub u64);

impl DifficultyBits {
    /// Checks that `bits` is within 1..=80. Out-of-range values are an error, never clamped.
    pub fn new(bits: u64) -> Result<DifficultyBits, DifficultyOutOfRange> {
        match u8::try_from(bits) {
            Ok(small) if (DIFFICULTY_BITS_MIN..=DIFFICULTY_BITS_MAX).contains(&small) => {
                Ok(DifficultyBits(small))
            }
            _ => Err(DifficultyOutOfRange(bits)),
        }
    }

    /// For constants: `const { DifficultyBits::new_const(14) }` fails the build if out of range.
    pub const fn new_const(bits: u8) -> DifficultyBits {
        assert!(bits >= DIFFICULTY_BITS_MIN && bits <= DIFFICULTY_BITS_MAX);
        DifficultyBits(bits)
    }

    /// The number of bits.
    pub fn get(self) -> u8 {
        self.0
    }

    /// The target a hash meets exactly when it starts with this many zero bits.
    pub fn target(self) -> Target {
        Target(u128::MAX >> self.0)
    }
}

impl<'de> Deserialize<'de> for DifficultyBits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bits = u64::deserialize(deserializer)?;
        DifficultyBits::new(bits).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DifficultyBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bits", self.0)
    }
}

/// The first 128 bits of a 512-bit target whose other bits are all ones. Serialised as 32 hex
/// digits in human-readable formats (JSON readers often lose integers above 2^53).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target(pub u128);

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&format!("{:032x}", self.0))
        } else {
            serializer.serialize_u128(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            if text.len() != 32 {
                return Err(serde::de::Error::custom("a target is 32 hex digits"));
            }
            u128::from_str_radix(&text, 16)
                .map(Target)
                .map_err(|_| serde::de::Error::custom("a target is 32 hex digits"))
        } else {
            u128::deserialize(deserializer).map(Target)
        }
    }
}

impl Target {
    /// Whether `hash` meets this target.
    pub fn is_met_by(self, hash: &Hash512) -> bool {
        hash.leading_u128() <= self.0
    }

    /// The expected number of hashes to meet this target: `2^128 / (target + 1)`.
    pub fn work(self) -> Work {
        match self.0.checked_add(1) {
            // 2^128 / (t + 1) computed without 2^128: (2^128 - 1 - t) / (t + 1) + 1.
            // Target 0 would be 2^128 hashes: saturate one short of it.
            Some(divisor) => Work(((!self.0) / divisor).saturating_add(1)),
            None => Work(1),
        }
    }

    /// The difficulty in (fractional) leading zero bits, for people: log2 of the work.
    pub fn difficulty_bits(self) -> f64 {
        (self.work().0 as f64).log2()
    }
}

/// An amount of proof of work, in expected hashes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Work(pub u128);

impl Work {
    /// `self + other`, or `None` on overflow (2^128 expected hashes: never in practice).
    pub fn checked_add(self, other: Work) -> Option<Work> {
        self.0.checked_add(other.0).map(Work)
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a chain spec moves the target toward a block interval.
///
/// Every `window_blocks` blocks the target is scaled by how long the last window took against
/// how long it should have taken (see `tree::BlockTree::expected_target`), the factor clamped to `1/clamp_factor..=clamp_factor`
/// (Bitcoin clamps to 4), and the result kept between `hardest` and `easiest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetargetRule {
    /// The block interval to steer toward, in milliseconds.
    pub block_interval_ms: u64,
    /// How many blocks lie between adjustments (at least 2).
    pub window_blocks: u64,
    /// The largest factor by which one adjustment may change the target (at least 1).
    pub clamp_factor: u64,
    /// The easiest difficulty a retarget may reach.
    pub easiest: DifficultyBits,
    /// The hardest difficulty a retarget may reach.
    pub hardest: DifficultyBits,
}

impl RetargetRule {
    /// Whether a block at `height` gets a new target.
    pub fn adjusts_at(&self, height: u64) -> bool {
        height != 0 && height.is_multiple_of(self.window_blocks)
    }

    /// The target after a window whose `intervals` block intervals took `actual_ms`.
    pub fn next_target(&self, previous: Target, actual_ms: u64, intervals: u64) -> Target {
        let expected_ms = self
            .block_interval_ms
            .saturating_mul(intervals.max(1))
            .max(1);
        let actual_ms = actual_ms.clamp(
            (expected_ms / self.clamp_factor).max(1),
            expected_ms.saturating_mul(self.clamp_factor),
        );
        let scaled = mul_div(previous.0, actual_ms, expected_ms);
        Target(scaled.clamp(self.hardest.target().0, self.easiest.target().0))
    }
}

/// `value * numerator / denominator`, rounded down, saturating at `u128::MAX`.
fn mul_div(value: u128, numerator: u64, denominator: u64) -> u128 {
    let (numerator, denominator) = (u128::from(numerator), u128::from(denominator));
    // value = q * d + r, so value * n / d = q * n + (r * n) / d, and r * n fits in u128.
    let (quotient, remainder) = (value / denominator, value % denominator);
    quotient
        .checked_mul(numerator)
        .and_then(|whole| whole.checked_add(remainder * numerator / denominator))
        .unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_bits_rejects_out_of_range_without_clamping() {
        assert_eq!(DifficultyBits::new(0), Err(DifficultyOutOfRange(0)));
        assert_eq!(DifficultyBits::new(81), Err(DifficultyOutOfRange(81)));
        assert_eq!(DifficultyBits::new(300), Err(DifficultyOutOfRange(300)));
        assert_eq!(DifficultyBits::new(14).unwrap().get(), 14);
        let message = DifficultyBits::new(0).unwrap_err().to_string();
        assert!(message.contains("between 1 and 80"), "{message}");
    }

    #[test]
    fn difficulty_n_is_exactly_n_leading_zero_bits() {
        for bits in [1u8, 7, 8, 14, 33, 80] {
            let target = DifficultyBits::new(bits.into()).unwrap().target();
            let mut passing = [0xffu8; 64];
            passing[..usize::from(bits / 8)].fill(0);
            passing[usize::from(bits / 8)] = 0xff >> (bits % 8);
            let hash = Hash512(passing);
            assert_eq!(hash.leading_zero_bits(), u32::from(bits));
            assert!(
                target.is_met_by(&hash),
                "{bits} zero bits meet difficulty {bits}"
            );
            let mut failing = passing;
            failing[usize::from((bits - 1) / 8)] |= 0x80 >> ((bits - 1) % 8);
            assert!(!target.is_met_by(&Hash512(failing)));
            assert_eq!(target.work(), Work(1u128 << bits));
        }
    }

    #[test]
    fn work_of_the_easiest_targets() {
        assert_eq!(Target(u128::MAX).work(), Work(1));
        assert_eq!(Target(u128::MAX >> 1).work(), Work(2));
        assert_eq!(Target(0).work(), Work(u128::MAX));
    }

    fn rule() -> RetargetRule {
        RetargetRule {
            block_interval_ms: 1_000,
            window_blocks: 11,
            clamp_factor: 4,
            easiest: DifficultyBits::new(1).unwrap(),
            hardest: DifficultyBits::new(80).unwrap(),
        }
    }

    #[test]
    fn retarget_scales_with_the_window_and_clamps() {
        let start = DifficultyBits::new(20).unwrap().target();
        // On schedule: unchanged.
        assert_eq!(rule().next_target(start, 10_000, 10), start);
        // Twice as slow: the target doubles (one bit easier), exactly.
        assert_eq!(rule().next_target(start, 20_000, 10).0, start.0 * 2);
        // Ten times too fast: clamped to a quarter.
        assert_eq!(rule().next_target(start, 1_000, 10).0, start.0 / 4);
        // Never easier than `easiest`, never harder than `hardest`.
        let easy = rule().easiest.target();
        assert_eq!(rule().next_target(easy, 40_000, 10), easy);
        let hard = rule().hardest.target();
        assert_eq!(rule().next_target(hard, 0, 10), hard);
        assert!(rule().adjusts_at(11) && !rule().adjusts_at(0) && !rule().adjusts_at(12));
    }

    #[test]
    fn mul_div_is_exact_and_saturates() {
        assert_eq!(mul_div(u128::MAX, 1, 1), u128::MAX);
        assert_eq!(mul_div(u128::MAX, 3, 2), u128::MAX);
        assert_eq!(mul_div(10, 3, 4), 7);
        assert_eq!(mul_div(u128::MAX / 3, 3, 3), u128::MAX / 3);
    }
}
