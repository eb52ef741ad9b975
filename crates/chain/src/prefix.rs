//! Short ids: a block or a transaction named by the first hex digits of its 128, as a person
//! copies them from a line that printed 16.
//!
//! A [`HashPrefix`] is at least [`PREFIX_DIGITS_MIN`] hex digits. It stands for the range of
//! digests that begin with it, so a store whose keys are digests in byte order answers it
//! with one range read ([`crate::store::Store::blocks_with_prefix`]); a lookup asks for a
//! few matches more than it shows, so it can tell one match from several without reading
//! them all.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::hash::{HASH_BYTES, Hash512};
use crate::units::Height;

/// The fewest hex digits a prefix may have. Eight digits are 32 bits; a block hash's first
/// digits are the zeros its work bought, so a short prefix of a block is often shared, and
/// the answer then lists the matches.
pub const PREFIX_DIGITS_MIN: usize = 8;

/// The most matches a lookup reports; past it, the answer says there are more.
pub const PREFIX_MATCHES_MAX: usize = 10;

/// The first hex digits of a digest (lowercase, 8 to 128 of them).
#[derive(Clone, PartialEq, Eq)]
pub struct HashPrefix {
    digits: String,
    lowest: [u8; HASH_BYTES],
    highest: [u8; HASH_BYTES],
}

/// Why a string is not a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Fewer digits than [`PREFIX_DIGITS_MIN`].
    #[error(
        "{got} hex digits are too few to find a block or a transaction: give at least {PREFIX_DIGITS_MIN}"
    )]
    TooShort {
        /// Digits given.
        got: usize,
    },
    /// More digits than a digest has.
    #[error("a hash has 128 hex digits, not {got}")]
    TooLong {
        /// Digits given.
        got: usize,
    },
    /// A character that is not a hex digit.
    #[error("a hash holds only hex digits 0-9 and a-f")]
    NotHex,
}

impl FromStr for HashPrefix {
    type Err = PrefixError;

    /// Takes the digits as typed: case does not matter, and a leading `0x` is dropped.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let text = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PrefixError::NotHex);
        }
        let got = text.len();
        if got < PREFIX_DIGITS_MIN {
            return Err(PrefixError::TooShort { got });
        }
        if got > 2 * HASH_BYTES {
            return Err(PrefixError::TooLong { got });
        }
        let digits = text.to_ascii_lowercase();
        let mut lowest = [0u8; HASH_BYTES];
        let mut highest = [0xffu8; HASH_BYTES];
        for (index, digit) in digits.bytes().enumerate() {
            let value = hex_value(digit);
            let byte = index / 2;
            if index % 2 == 0 {
                lowest[byte] = value << 4;
                highest[byte] = (value << 4) | 0x0f;
            } else {
                lowest[byte] |= value;
                highest[byte] = (highest[byte] & 0xf0) | value;
            }
        }
        Ok(HashPrefix {
            digits,
            lowest,
            highest,
        })
    }
}

/// A checked hex digit's value.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit.to_ascii_lowercase() - b'a' + 10,
    }
}

impl HashPrefix {
    /// The digits, lowercase.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Whether `hash` begins with these digits.
    pub fn matches(&self, hash: &Hash512) -> bool {
        self.range().contains(&hash.0)
    }

    /// The digests that begin with these digits, in byte order: the lowest is the digits
    /// followed by zeros, the highest the digits followed by `f`s.
    pub fn range(&self) -> RangeInclusive<[u8; HASH_BYTES]> {
        self.lowest..=self.highest
    }

    /// The whole digest, when all 128 digits were given.
    pub fn whole(&self) -> Option<Hash512> {
        (self.digits.len() == 2 * HASH_BYTES).then_some(Hash512(self.lowest))
    }
}

impl fmt::Display for HashPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl fmt::Debug for HashPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashPrefix({})", self.digits)
    }
}

/// What a prefix found: at most `limit` ids in order, and whether there were more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matches<T> {
    /// The ids found, lowest first.
    pub found: Vec<T>,
    /// Whether more than these begin with the prefix.
    pub more: bool,
}

impl<T> Matches<T> {
    /// The first `limit` of `ids` (read one past `limit` to know whether there are more).
    pub fn of(ids: impl IntoIterator<Item = T>, limit: usize) -> Matches<T> {
        let mut found: Vec<T> = ids.into_iter().take(limit.saturating_add(1)).collect();
        let more = found.len() > limit;
        found.truncate(limit);
        Matches { found, more }
    }
}

impl<T> Matches<T> {
    /// The same matches, each id made into another kind (a digest into a block hash).
    pub fn map<U>(self, into: impl FnMut(T) -> U) -> Matches<U> {
        Matches {
            found: self.found.into_iter().map(into).collect(),
            more: self.more,
        }
    }
}

impl<T: Ord> Matches<T> {
    /// Both lists as one, in order, each id once, at most `limit` (a transfer is looked
    /// for among the pending and in the index).
    pub fn merge(self, other: Matches<T>, limit: usize) -> Matches<T> {
        let more = self.more || other.more;
        let mut found = self.found;
        found.extend(other.found);
        found.sort_unstable();
        found.dedup();
        let mut merged = Matches::of(found, limit);
        merged.more |= more;
        merged
    }
}

impl<T: AsRef<Hash512>> Matches<T> {
    /// The one id found, or why there is not one: none, or several (listed, 16 digits
    /// each, with what to type instead). `what` names the kind: "block", "transaction".
    pub fn one(mut self, what: &'static str, prefix: &HashPrefix) -> Result<T, MatchError> {
        match self.found.len() {
            1 if !self.more => Ok(self.found.remove(0)),
            0 => Err(MatchError::None {
                what,
                prefix: prefix.digits().to_owned(),
            }),
            _ => Err(MatchError::Several {
                what,
                prefix: prefix.digits().to_owned(),
                found: self.found.iter().map(|id| id.as_ref().short(16)).collect(),
                more: self.more,
            }),
        }
    }
}

/// Why a prefix did not name one block or transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// Nothing held begins with it.
    #[error("no {what} beginning with {prefix} on this node")]
    None {
        /// "block" or "transaction".
        what: &'static str,
        /// The digits given.
        prefix: String,
    },
    /// More than one begins with it.
    #[error(
        "{prefix} begins {} {what}s: {}{}; give more digits",
        if *more { "more than these" } else { "these" },
        found.join(", "),
        if *more { ", ..." } else { "" }
    )]
    Several {
        /// "block" or "transaction".
        what: &'static str,
        /// The digits given.
        prefix: String,
        /// The first of those found, 16 digits each.
        found: Vec<String>,
        /// Whether there are more than those listed.
        more: bool,
    },
}

/// How a person names a block: by its height on the best chain, or by the first digits of
/// its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockName {
    /// Digits with no leading zero (or `0`): a height.
    Height(Height),
    /// At least 8 hex digits: a hash's beginning (every hash whose work bought a zero
    /// digit begins with `0`, so a typed short id is never taken for a height).
    Prefix(HashPrefix),
}

impl FromStr for BlockName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let decimal = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if decimal && (text == "0" || !text.starts_with('0') || text.len() < PREFIX_DIGITS_MIN) {
            return text
                .parse::<u64>()
                .map(|height| BlockName::Height(Height(height)))
                .map_err(|e| format!("{text:?} is not a height: {e}"));
        }
        text.parse().map(BlockName::Prefix).map_err(|e| {
            format!(
                "{text:?} is neither a height nor a block hash (at least {PREFIX_DIGITS_MIN} of its hex digits): {e}"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_from(digits: &str) -> Hash512 {
        let mut text = digits.to_owned();
        text.extend(std::iter::repeat_n('0', 128 - digits.len()));
        text.parse().unwrap()
    }

    #[test]
    fn a_prefix_matches_exactly_the_hashes_that_begin_with_it() {
        let odd: HashPrefix = "00ab12c34".parse().unwrap();
        assert!(odd.matches(&hash_from("00ab12c34")));
        assert!(odd.matches(&hash_from("00ab12c34f")));
        assert!(!odd.matches(&hash_from("00ab12c35")));
        assert!(!odd.matches(&hash_from("00ab12c33ffff")));
        let even: HashPrefix = "00AB12C3".parse().unwrap();
        assert_eq!(even.digits(), "00ab12c3");
        assert!(even.matches(&hash_from("00ab12c3ff")));
        assert!(!even.matches(&hash_from("00ab12c4")));
        let range = even.range();
        assert_eq!(range.start()[..4], [0x00, 0xab, 0x12, 0xc3]);
        assert!(range.start()[4..].iter().all(|b| *b == 0));
        assert!(range.end()[4..].iter().all(|b| *b == 0xff));
    }

    #[test]
    fn too_short_too_long_and_not_hex_are_refused_with_the_reason() {
        assert_eq!(
            "0abc123".parse::<HashPrefix>(),
            Err(PrefixError::TooShort { got: 7 })
        );
        assert_eq!(
            "a".repeat(129).parse::<HashPrefix>(),
            Err(PrefixError::TooLong { got: 129 })
        );
        assert_eq!("0abc123z".parse::<HashPrefix>(), Err(PrefixError::NotHex));
        let error = "12".parse::<HashPrefix>().unwrap_err().to_string();
        assert!(error.contains("at least 8"), "{error}");
    }

    #[test]
    fn all_128_digits_are_the_whole_hash() {
        let hash = Hash512::digest(b"abc");
        let prefix: HashPrefix = format!("0x{hash}").parse().unwrap();
        assert_eq!(prefix.whole(), Some(hash));
        assert!(prefix.matches(&hash));
        assert_eq!(hash.short(16).parse::<HashPrefix>().unwrap().whole(), None);
    }

    #[test]
    fn a_block_is_named_by_height_or_by_the_digits_of_its_hash() {
        assert_eq!("0".parse(), Ok(BlockName::Height(Height(0))));
        assert_eq!("1390".parse(), Ok(BlockName::Height(Height(1390))));
        assert_eq!(
            "12345678901".parse(),
            Ok(BlockName::Height(Height(12345678901)))
        );
        // A short id the session printed, digits only: a hash, not a height.
        let printed = "0000268412345678";
        assert_eq!(
            printed.parse::<BlockName>(),
            Ok(BlockName::Prefix(printed.parse().unwrap()))
        );
        assert!(matches!(
            "0000ed29".parse::<BlockName>(),
            Ok(BlockName::Prefix(_))
        ));
        let short = "0000ed2".parse::<BlockName>().unwrap_err();
        assert!(short.contains("at least 8"), "{short}");
        assert!("tip".parse::<BlockName>().is_err());
    }

    #[test]
    fn one_match_is_the_answer_and_several_are_listed() {
        let prefix: HashPrefix = "00000000".parse().unwrap();
        let a = Hash512::ZERO;
        let b = hash_from("0000000001");
        assert_eq!(Matches::of([a], 10).one("block", &prefix), Ok(a));
        let none = Matches::<Hash512>::of([], 10)
            .one("block", &prefix)
            .unwrap_err();
        assert_eq!(
            none.to_string(),
            "no block beginning with 00000000 on this node"
        );
        let several = Matches::of([a, b], 10).one("block", &prefix).unwrap_err();
        let text = several.to_string();
        assert!(
            text.contains("begins these blocks: 0000000000000000, 0000000001000000"),
            "{text}"
        );
        assert!(text.ends_with("give more digits"), "{text}");
        // One listed but more held: still ambiguous.
        let more = Matches::of([a, b], 1)
            .one("transaction", &prefix)
            .unwrap_err();
        assert!(
            more.to_string().contains("more than these transactions"),
            "{more}"
        );
    }

    #[test]
    fn merged_matches_are_in_order_and_each_once() {
        let merged = Matches::of([1, 5, 9], 10).merge(Matches::of([5, 2], 10), 3);
        assert_eq!(merged.found, vec![1, 2, 5]);
        assert!(merged.more);
    }

    #[test]
    fn matches_say_whether_there_were_more() {
        assert_eq!(
            Matches::of(0..3, 5),
            Matches {
                found: vec![0, 1, 2],
                more: false
            }
        );
        assert_eq!(
            Matches::of(0..30, 2),
            Matches {
                found: vec![0, 1],
                more: true
            }
        );
    }
}
