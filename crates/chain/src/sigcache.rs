//! Signatures already found valid, so a transfer's signature is checked once: when it
//! enters the mempool, not again when the block holding it arrives (Bitcoin Core keeps the
//! same kind of cache).
//!
//! **A cache is an object its owner hands out, never a process-wide static.** A node's
//! chain owns one and its mempool shares it (`Mempool::sharing_signatures`); the simulator
//! hands one cache to all its nodes, so each signature is checked once for all of them (what
//! a check costs in simulated time is charged per node by its cost model, not here); a
//! benchmark that measures verification starts with a cold one. Clones share one cache.
//!
//! An entry is the SHA-512 of the signed bytes, the signature and the key: a hit means
//! exactly this signature over exactly these bytes verified before. Only successes are kept,
//! so a bad signature is checked (and refused) every time. The cache is bounded; the oldest
//! entries go first.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::hash::Hash512;
use crate::hashing::HashSet;

/// Signatures remembered by default (about 10 MB at 64 bytes each, twice over for the
/// order).
pub const SIGNATURES_MAX: usize = 80_000;

#[derive(Default)]
struct Entries {
    set: HashSet<Hash512>,
    order: VecDeque<Hash512>,
}

/// A bounded set of verified signatures; clones share it.
#[derive(Clone)]
pub struct SigCache {
    entries: Arc<Mutex<Entries>>,
    capacity: usize,
}

impl Default for SigCache {
    fn default() -> SigCache {
        SigCache::new(SIGNATURES_MAX)
    }
}

impl fmt::Debug for SigCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigCache({} of {})", self.len(), self.capacity)
    }
}

impl SigCache {
    /// An empty cache of at most `capacity` signatures.
    pub fn new(capacity: usize) -> SigCache {
        SigCache {
            entries: Arc::new(Mutex::new(Entries::default())),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key` verified before.
    pub fn contains(&self, key: &Hash512) -> bool {
        self.lock().set.contains(key)
    }

    /// Whether each of `keys` verified before, under one lock.
    pub fn contains_each(&self, keys: &[Hash512]) -> Vec<bool> {
        let entries = self.lock();
        keys.iter().map(|key| entries.set.contains(key)).collect()
    }

    /// Remembers that `key` verified.
    pub fn insert(&self, key: Hash512) {
        self.insert_all([key]);
    }

    /// Remembers that every one of `keys` verified, under one lock.
    pub fn insert_all(&self, keys: impl IntoIterator<Item = Hash512>) {
        let mut entries = self.lock();
        for key in keys {
            if entries.set.insert(key) {
                entries.order.push_back(key);
                if entries.order.len() > self.capacity
                    && let Some(oldest) = entries.order.pop_front()
                {
                    entries.set.remove(&oldest);
                }
            }
        }
    }

    /// How many signatures it holds.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` is this same cache (a clone of it), not merely an equal one.
    pub fn is_shared_with(&self, other: &SigCache) -> bool {
        Arc::ptr_eq(&self.entries, &other.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_and_the_oldest_goes_first() {
        let cache = SigCache::new(2);
        let shared = cache.clone();
        let other = SigCache::new(2);
        let keys: Vec<Hash512> = (0u8..3).map(|i| Hash512::digest(&[i])).collect();
        cache.insert(keys[0]);
        assert!(shared.contains(&keys[0]) && !other.contains(&keys[0]));
        assert!(cache.is_shared_with(&shared) && !cache.is_shared_with(&other));
        shared.insert(keys[1]);
        shared.insert(keys[2]);
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains(&keys[0]) && cache.contains(&keys[2]));
    }
}
