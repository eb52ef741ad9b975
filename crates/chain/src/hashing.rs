//! Hash maps whose iteration order is reproducible.
//!
//! std's `HashMap` draws a fresh random key for every map, so two runs of the same inputs can
//! walk a map in different orders, and anything decided in that order (which expired transfer
//! is reported first, which peer a request goes to) differs between runs. The simulator must
//! replay a run byte for byte from its seed, so the chain and protocol crates use these aliases
//! instead: SipHash (std's hasher) keyed by one process-wide secret.
//!
//! The secret defaults to a fixed value (tests and the simulator are reproducible). A node
//! facing real peers calls [`set_process_key`] with random bytes at start, so a peer cannot
//! precompute keys that collide in our tables.

use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// The key used when none was set: reproducible runs.
const FIXED_KEY: u64 = 0x706f_7763_6861_696e;

static PROCESS_KEY: OnceLock<u64> = OnceLock::new();

/// Sets the process-wide key. Only the first call counts and it must come before any map is
/// built (a map built earlier would use the fixed key, which stays correct, only predictable);
/// returns whether this call set it.
pub fn set_process_key(key: u64) -> bool {
    PROCESS_KEY.set(key).is_ok()
}

/// Builds SipHash hashers keyed by the process key.
#[derive(Clone, Copy, Debug)]
pub struct KeyedState {
    key: u64,
}

impl Default for KeyedState {
    fn default() -> KeyedState {
        KeyedState {
            key: *PROCESS_KEY.get_or_init(|| FIXED_KEY),
        }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        // `DefaultHasher::new` has fixed keys; absorbing the secret first makes the state
        // every key is hashed from depend on it.
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(self.key);
        hasher
    }
}

/// A `HashMap` with a reproducible order.
pub type HashMap<K, V> = std::collections::HashMap<K, V, KeyedState>;
/// A `HashSet` with a reproducible order.
pub type HashSet<T> = std::collections::HashSet<T, KeyedState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_maps_built_alike_iterate_alike() {
        let build = || {
            let mut map: HashMap<u64, u64> = HashMap::default();
            for n in 0..1_000u64 {
                map.insert(n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n);
            }
            map.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(build(), build());
    }
}
