//! What the fuzz targets share: the chain they validate against. Its proof of work is the
//! easiest there is (one leading zero bit), so half of all mutated blocks still pass it and
//! reach the checks behind it; everything else is the `dev` chain's rules.

use powchain_chain::{Chain, ChainConfig, ChainSpec, DifficultyBits, MemStore, Timestamp};

/// The fuzzed chain's rules (the corpus generator, `powchain-protocol`'s `fuzz_corpus`
/// example, builds its blocks under the same ones).
pub fn spec() -> ChainSpec {
    let mut spec = ChainSpec::dev();
    spec.name = "fuzz".into();
    spec.with_fixed_difficulty(DifficultyBits::new(1).expect("1 bit is a difficulty"))
}

/// A fresh chain at genesis, in memory.
pub fn chain() -> Chain<MemStore> {
    Chain::open(spec(), MemStore::new(), ChainConfig::default()).expect("a new chain opens")
}

/// "Now" for the targets: an hour after genesis, so block times have room either side.
pub fn now() -> Timestamp {
    Timestamp(spec().genesis_time_ms + 3_600_000)
}
