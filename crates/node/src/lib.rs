//! powchain's node layer: what runs on real hardware around the sans-IO core.
//!
//! - [`sha512`]: multi-buffer SHA-512 (AVX-512, AVX2, portable) and the nonce search from a
//!   header's midstate: one compression per attempt.
//! - [`miner`]: mining threads that search disjoint nonce ranges of the current block
//!   template and drop stale work within milliseconds of a new one.
//! - [`store`]: the chain in one redb file, one durable transaction per imported block, and
//!   the peer address book; [`tx_index`]: where the best chain holds each transaction.
//! - [`mempool_file`]: the pending transfers kept across a clean restart.
//! - [`wallet`]: private keys in their own file (mode 0600), never in the chain database.

pub mod driver;
pub mod mempool_file;
pub mod miner;
pub mod sha512;
pub mod store;
pub mod tx_index;
pub mod wallet;
