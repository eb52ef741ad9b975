//! The block header and its fixed 172-byte consensus encoding.
//!
//! ```text
//! offset  size  field
//!      0     4  version      u32 big-endian
//!      4     8  height       u64 big-endian
//!     12    64  prev_hash    parent's block hash (zero for genesis)
//!     76    64  tx_root      Merkle root of the transaction ids
//!    140     8  time         u64 big-endian, milliseconds since the Unix epoch
//!    148    16  target       u128 big-endian (see `pow`)
//!    164     8  nonce        u64 big-endian
//!    172        end
//! ```
//!
//! The block hash is SHA-512 of these bytes. SHA-512 works on 128-byte blocks: the first
//! holds everything up to the middle of `tx_root`, which does not change while a miner
//! searches nonces and rolls the time, so a miner hashes it once and each attempt costs one
//! compression of the second block. See `docs/adr/0001-consensus-encoding.md`.

use serde::{Deserialize, Serialize};

use crate::hash::{BlockHash, HASH_BYTES, Hash512};
use crate::pow::Target;
use crate::units::{Height, Timestamp};

/// Size of an encoded header in bytes.
pub const HEADER_BYTES: usize = 172;
/// Bytes of the header that a miner's SHA-512 midstate covers (the first SHA-512 block).
pub const HEADER_MIDSTATE_BYTES: usize = 128;
/// Offset of the nonce within the encoded header.
pub const HEADER_NONCE_OFFSET: usize = 164;
/// Offset of the time within the encoded header.
pub const HEADER_TIME_OFFSET: usize = 140;
/// The header version this code writes and accepts.
pub const HEADER_VERSION: u32 = 1;

/// A block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// Encoding version; blocks with another version are rejected.
    pub version: u32,
    /// Height of the block; committing to it makes every coinbase unique.
    pub height: Height,
    /// Hash of the parent block.
    pub prev_hash: BlockHash,
    /// Merkle root of the block's transaction ids (see `block::tx_root`).
    pub tx_root: Hash512,
    /// When the block was made, by its miner's clock.
    pub time: Timestamp,
    /// The proof-of-work target this block claims to meet.
    pub target: Target,
    /// The value a miner varies.
    pub nonce: u64,
}

impl Header {
    /// The 172-byte consensus encoding.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..4].copy_from_slice(&self.version.to_be_bytes());
        out[4..12].copy_from_slice(&self.height.0.to_be_bytes());
        out[12..76].copy_from_slice(&self.prev_hash.0.0);
        out[76..140].copy_from_slice(&self.tx_root.0);
        out[140..148].copy_from_slice(&self.time.0.to_be_bytes());
        out[148..164].copy_from_slice(&self.target.0.to_be_bytes());
        out[164..172].copy_from_slice(&self.nonce.to_be_bytes());
        out
    }

    /// Reads a 172-byte encoding. Every byte string of that length is some header, so this
    /// cannot fail; whether the header is *valid* is validation's question.
    pub fn decode(bytes: &[u8; HEADER_BYTES]) -> Header {
        Header {
            version: u32::from_be_bytes(array(&bytes[0..4])),
            height: Height(u64::from_be_bytes(array(&bytes[4..12]))),
            prev_hash: BlockHash(Hash512(array(&bytes[12..76]))),
            tx_root: Hash512(array(&bytes[76..140])),
            time: Timestamp(u64::from_be_bytes(array(&bytes[140..148]))),
            target: Target(u128::from_be_bytes(array(&bytes[148..164]))),
            nonce: u64::from_be_bytes(array(&bytes[164..172])),
        }
    }

    /// The block hash: SHA-512 of the encoding.
    pub fn hash(&self) -> BlockHash {
        BlockHash(Hash512::digest(&self.encode()))
    }

    /// Whether the header's hash meets the target it names.
    pub fn meets_own_target(&self) -> bool {
        self.target.is_met_by(&self.hash().0)
    }
}

/// Copies a slice of known length into an array (the slices above are fixed ranges).
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

const _: () = assert!(HEADER_BYTES == 4 + 8 + HASH_BYTES * 2 + 8 + 16 + 8);
const _: () = assert!(HEADER_TIME_OFFSET >= HEADER_MIDSTATE_BYTES);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            version: HEADER_VERSION,
            height: Height(7),
            prev_hash: BlockHash(Hash512::digest(b"parent")),
            tx_root: Hash512::digest(b"txs"),
            time: Timestamp(1_700_000_000_000),
            target: Target(u128::MAX >> 14),
            nonce: 0x0102_0304_0506_0708,
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let header = sample();
        assert_eq!(Header::decode(&header.encode()), header);
    }

    #[test]
    fn nonce_is_last_and_big_endian() {
        let bytes = sample().encode();
        assert_eq!(
            &bytes[HEADER_NONCE_OFFSET..],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            "the nonce occupies the last 8 bytes"
        );
    }

    #[test]
    fn nonce_and_time_leave_the_first_sha512_block_unchanged() {
        let mut other = sample();
        other.nonce += 1;
        other.time = Timestamp(other.time.0 + 1000);
        let (a, b) = (sample().encode(), other.encode());
        assert_eq!(a[..HEADER_MIDSTATE_BYTES], b[..HEADER_MIDSTATE_BYTES]);
        assert_ne!(sample().hash(), other.hash());
    }
}
