//! Signatures already found valid, so a transfer's signature is checked once per process:
//! when it enters the mempool, not again when the block holding it arrives (Bitcoin Core
//! keeps the same kind of cache). The simulator runs many nodes in one process, so each
//! signature is checked once for all of them; what a check costs in simulated time is
//! charged per node by the simulator's cost model, not here.
//!
//! An entry is the SHA-512 of the signed bytes, the signature and the key: a hit means
//! exactly this signature over exactly these bytes verified before. Only successes are kept,
//! so a bad signature is checked (and refused) every time. The cache is bounded; the oldest
//! entries go first.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use crate::hash::Hash512;
use crate::hashing::HashSet;

/// Signatures remembered (about 10 MB at 64 bytes each, twice over for the order).
pub const SIGNATURES_MAX: usize = 80_000;

struct Cache {
    set: HashSet<Hash512>,
    order: VecDeque<Hash512>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Whether `key` verified before.
pub fn contains(key: &Hash512) -> bool {
    let guard = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    guard.as_ref().is_some_and(|cache| cache.set.contains(key))
}

/// Remembers that `key` verified.
pub fn insert(key: Hash512) {
    let mut guard = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = guard.get_or_insert_with(|| Cache {
        set: HashSet::default(),
        order: VecDeque::new(),
    });
    if cache.set.insert(key) {
        cache.order.push_back(key);
        if cache.order.len() > SIGNATURES_MAX
            && let Some(oldest) = cache.order.pop_front()
        {
            cache.set.remove(&oldest);
        }
    }
}
