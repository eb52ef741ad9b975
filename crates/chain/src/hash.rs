//! SHA-512 digests and the identifiers built on them.
//!
//! [`Hash512`] is a raw 64-byte digest. [`BlockHash`] and [`TxId`] wrap it so that a block id
//! can never be passed where a transaction id is expected. All three print as lowercase hex
//! and serialise as hex in human-readable formats (JSON) and as 64 raw bytes in binary ones
//! (postcard).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};

/// Length of a SHA-512 digest in bytes.
pub const HASH_BYTES: usize = 64;

/// A SHA-512 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hash512(pub [u8; HASH_BYTES]);

/// Hash tables see the digest's last 16 bytes, not all 64: a digest is already uniform, so
/// 128 bits tell entries apart as well as 512 do and the table's hasher (keyed SipHash, see
/// [`crate::hashing`]) does a quarter of the work on every lookup. The last bytes, because a
/// block hash's first ones are the zeros its proof of work bought.
impl std::hash::Hash for Hash512 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (_, tail) = self.0.split_at(HASH_BYTES - 16);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(tail);
        state.write_u128(u128::from_le_bytes(bytes));
    }
}

impl Hash512 {
    /// The all-zero digest, used as the parent of genesis.
    pub const ZERO: Hash512 = Hash512([0; HASH_BYTES]);

    /// SHA-512 of `bytes`.
    pub fn digest(bytes: &[u8]) -> Hash512 {
        Hash512(Sha512::digest(bytes).into())
    }

    /// SHA-512 of the concatenation of `parts`, without building the concatenation.
    pub fn digest_parts(parts: &[&[u8]]) -> Hash512 {
        let mut hasher = Sha512::new();
        for part in parts {
            hasher.update(part);
        }
        Hash512(hasher.finalize().into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.0
    }

    /// The digest's first 16 bytes as a big-endian integer: the part proof of work compares.
    pub fn leading_u128(&self) -> u128 {
        let mut head = [0u8; 16];
        head.copy_from_slice(&self.0[..16]);
        u128::from_be_bytes(head)
    }

    /// Number of leading zero bits (0..=512), the seed's measure of a hash.
    pub fn leading_zero_bits(&self) -> u32 {
        let mut bits = 0;
        for byte in self.0 {
            if byte == 0 {
                bits += 8;
            } else {
                return bits + byte.leading_zeros();
            }
        }
        bits
    }

    /// The first `chars` hex digits, for logs and tables.
    pub fn short(&self, chars: usize) -> String {
        let mut text = hex::encode(self.0);
        text.truncate(chars);
        text
    }

    /// `chars` hex digits that tell hashes apart at a glance: those after the leading
    /// zeros (which a block hash's work bought, and every block of a chain shares).
    pub fn distinctive(&self, chars: usize) -> String {
        let text = hex::encode(self.0);
        let digits = text.trim_start_matches('0');
        digits.chars().take(chars).collect()
    }
}

/// Why a hex string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHashError {
    /// The string has the wrong number of hex digits.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Digits required.
        expected: usize,
        /// Digits given.
        got: usize,
    },
    /// The string holds a character that is not a hex digit.
    #[error("a hash holds only hex digits 0-9 and a-f")]
    NotHex,
}

impl AsRef<Hash512> for Hash512 {
    fn as_ref(&self) -> &Hash512 {
        self
    }
}

impl FromStr for Hash512 {
    type Err = ParseHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_hex_array(text).map(Hash512)
    }
}

/// Parses exactly `N` bytes written as `2 * N` hex digits.
pub(crate) fn parse_hex_array<const N: usize>(text: &str) -> Result<[u8; N], ParseHashError> {
    if text.len() != 2 * N {
        return Err(ParseHashError::Length {
            expected: 2 * N,
            got: text.len(),
        });
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| ParseHashError::NotHex)?;
    Ok(bytes)
}

impl fmt::Display for Hash512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.short(16))
    }
}

impl Serialize for Hash512 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Hash512 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::bytes::deserialize(deserializer).map(Hash512)
    }
}

/// Declares a newtype over [`Hash512`] with the same printing and parsing.
macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Hash512);

        impl $name {
            /// The all-zero value.
            pub const ZERO: $name = $name(Hash512::ZERO);

            /// The first `chars` hex digits.
            pub fn short(&self, chars: usize) -> String {
                self.0.short(chars)
            }

            /// `chars` hex digits after the leading zeros (see [`Hash512::distinctive`]).
            pub fn distinctive(&self, chars: usize) -> String {
                self.0.distinctive(chars)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<Hash512> for $name {
            fn as_ref(&self) -> &Hash512 {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }
    };
}

hash_newtype!(
    /// A block's id: SHA-512 of its 172-byte header encoding.
    BlockHash
);
hash_newtype!(
    /// A transaction's id: SHA-512 of its consensus encoding, signature included.
    TxId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinctive_digits_skip_the_leading_zeros() {
        let mut bytes = [0u8; HASH_BYTES];
        bytes[2] = 0x0a;
        bytes[3] = 0xbc;
        bytes[4] = 0xde;
        assert_eq!(Hash512(bytes).short(6), "00000a");
        assert_eq!(Hash512(bytes).distinctive(6), "abcde0");
        assert_eq!(Hash512::ZERO.distinctive(6), "");
    }

    #[test]
    fn digest_matches_the_published_sha512_of_abc() {
        let expected = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                        2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        assert_eq!(Hash512::digest(b"abc").to_string(), expected);
        assert_eq!(
            Hash512::digest_parts(&[b"a", b"bc"]),
            Hash512::digest(b"abc")
        );
    }

    #[test]
    fn hex_round_trip_and_clear_errors() {
        let hash = Hash512::digest(b"powchain");
        assert_eq!(hash.to_string().parse::<Hash512>(), Ok(hash));
        assert_eq!(
            "abc".parse::<Hash512>(),
            Err(ParseHashError::Length {
                expected: 128,
                got: 3
            })
        );
        assert_eq!(
            "zz".repeat(64).parse::<Hash512>(),
            Err(ParseHashError::NotHex)
        );
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut bytes = [0xffu8; 64];
        assert_eq!(Hash512(bytes).leading_zero_bits(), 0);
        bytes[0] = 0;
        bytes[1] = 0b0001_0000;
        assert_eq!(Hash512(bytes).leading_zero_bits(), 11);
        assert_eq!(Hash512::ZERO.leading_zero_bits(), 512);
    }

    #[test]
    fn binary_and_text_serialisation() {
        let id = TxId(Hash512::digest(b"x"));
        let binary = postcard::to_stdvec(&id).unwrap();
        assert_eq!(binary.len(), 64);
        assert_eq!(postcard::from_bytes::<TxId>(&binary).unwrap(), id);
    }
}
