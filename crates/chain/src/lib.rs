//! powchain's consensus core. No I/O, no clock, no unseeded randomness: time comes in as a
//! `now` argument and every outcome is returned as data.
//!
//! ```text
//!   Block (untrusted) ──check_block──> CheckedBlock ──Chain::import_block──> ImportOutcome
//!                                            │                                  │
//!                 BlockTree (index, fork choice, side branches)     TipChange { disconnected,
//!                 OrphanPool (blocks waiting for a parent)                      connected }
//!                 StateOverlay (balances, nonces, undo)                         │
//!                 Store (blocks, index, state, undo, tip)      Mempool::on_tip_change
//! ```
//!
//! The parts, bottom up:
//! - [`hash`], [`units`], [`keys`], [`pow`]: digests and ids, amounts and heights, addresses
//!   and signatures, targets and work.
//! - [`signature`]: the signature rule, checked one at a time or in batches on all cores,
//!   with one answer.
//! - [`header`], [`tx`], [`block`]: the consensus encoding (fixed header, transaction ids,
//!   signing bytes, transaction root) and block validation.
//! - [`spec`]: chain specs (`dev`, `seed`, TOML files) and their deterministic genesis.
//! - [`state`]: accounts, applying and undoing blocks.
//! - [`store`]: the [`store::Store`] trait and the in-memory [`store::MemStore`].
//! - [`tree`], [`orphans`], [`chain`]: the block tree and fork choice, orphans, and
//!   [`chain::Chain`], which ties them together behind `import_block`.
//! - [`mempool`]: pending transfers and block templates.
//! - [`prefix`]: short ids, a block or a transaction named by its hash's first digits.
//! - [`miner`]: a simple reference miner.
//! - [`hashing`], [`sigcache`], [`parallel`]: reproducible hash maps, the cache of
//!   signatures already verified that a chain owns and shares, and work spread over the
//!   cores in input order.

#![forbid(unsafe_code)]
// Errors name blocks and accounts by their 64- and 32-byte ids, by value, so they are larger
// than clippy likes. They are returned on the rare invalid path only; boxing them would add
// noise at every construction site and save nothing measurable.
#![allow(clippy::result_large_err)]

pub mod block;
mod bytes;
pub mod chain;
pub mod hash;
pub mod hashing;
pub mod header;
pub mod keys;
pub mod mem_index;
pub mod mempool;
pub mod miner;
pub mod orphans;
pub mod parallel;
pub mod pow;
pub mod prefix;
pub mod sigcache;
pub mod signature;
pub mod spec;
pub mod state;
pub mod store;
pub mod tree;
pub mod tx;
pub mod units;

pub use block::{Block, BlockError, CheckedBlock};
pub use chain::{
    BlockTemplate, Chain, ChainConfig, ImportError, ImportOutcome, OpenError, Placement, TieBreak,
    TipChange, TipInfo,
};
pub use hash::{BlockHash, Hash512, TxId};
pub use header::Header;
pub use keys::{Address, Keypair, Signature};
pub use mempool::{Mempool, MempoolConfig, MempoolError, Removal};
pub use pow::{DifficultyBits, Target, Work};
pub use prefix::{BlockName, HashPrefix, MatchError, Matches, PREFIX_MATCHES_MAX};
pub use spec::ChainSpec;
pub use state::{Account, AccountReader};
pub use store::{BlockReader, MemStore, Store, StoreError, TxIndex};
pub use tx::{Memo, Transaction, Transfer, TxError, UnsignedTransfer};
pub use units::{Amount, Height, Timestamp};
