//! The bounded sets the managers remember per-peer inventory with: which blocks and transfers
//! a peer has, which blocks not to ask it for, which transfers were refused.
//!
//! A node keeps up to `known_inventory_max` block hashes and as many transfer ids for each
//! of its peers, so these sets are most of what a node holds per connection (in the
//! simulator, three quarters of the heap when they held the 64-byte ids themselves). A set
//! keeps an 8-byte fingerprint of each member instead: keyed SipHash of the id, with the
//! process key of [`powchain_chain::hashing`], random in a node that faces real peers. Two
//! members share a fingerprint with odds of about one in 2^64 per pair; a peer that wanted
//! two of its transfers to collide (so that one is never relayed where the other was) cannot
//! aim without the key. Bitcoin Core makes the same trade with rolling Bloom filters, whose
//! false positives are far more frequent (one in a million).

use std::collections::VecDeque;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::marker::PhantomData;

use powchain_chain::hashing::KeyedState;
use powchain_chain::{BlockHash, TxId};

/// What a [`BoundedSet`] can hold: anything with a 64-bit fingerprint.
pub trait Fingerprint {
    /// 64 bits that tell this value from others.
    fn fingerprint(&self) -> u64;
}

impl Fingerprint for BlockHash {
    fn fingerprint(&self) -> u64 {
        KeyedState::default().hash_one(self)
    }
}

impl Fingerprint for TxId {
    fn fingerprint(&self) -> u64 {
        KeyedState::default().hash_one(self)
    }
}

/// Integers are their own fingerprint (spread by an odd multiplier, a bijection), exactly.
impl Fingerprint for u64 {
    fn fingerprint(&self) -> u64 {
        self.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// A fingerprint is already uniform: the table uses it as its hash, unchanged.
#[derive(Default)]
struct Unchanged(u64);

impl Hasher for Unchanged {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the set holds `u64`s); fold anything else in anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type FingerprintSet = std::collections::HashSet<u64, BuildHasherDefault<Unchanged>>;

/// A set that forgets its oldest members beyond a bound.
#[derive(Clone, Debug)]
pub struct BoundedSet<T: Fingerprint> {
    members: FingerprintSet,
    order: VecDeque<u64>,
    max: usize,
    holds: PhantomData<fn(&T)>,
}

impl<T: Fingerprint> BoundedSet<T> {
    /// An empty set of at most `max` members.
    pub fn new(max: usize) -> BoundedSet<T> {
        BoundedSet {
            members: FingerprintSet::default(),
            order: VecDeque::new(),
            max,
            holds: PhantomData,
        }
    }

    /// Adds `value`; returns whether it was new.
    pub fn insert(&mut self, value: T) -> bool {
        let key = value.fingerprint();
        if self.max == 0 || !self.members.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.max {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
        true
    }

    /// Whether `value` is a member.
    pub fn contains(&self, value: &T) -> bool {
        self.members.contains(&value.fingerprint())
    }

    /// Forgets every member.
    pub fn clear(&mut self) {
        self.members.clear();
        self.order.clear();
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use powchain_chain::Hash512;

    use super::*;

    #[test]
    fn a_bounded_set_forgets_the_oldest() {
        let mut set = BoundedSet::new(2);
        assert!(set.insert(1u64));
        assert!(!set.insert(1));
        assert!(set.insert(2));
        assert!(set.insert(3));
        assert!(!set.contains(&1));
        assert!(set.contains(&2) && set.contains(&3));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn distinct_ids_are_distinct_members() {
        let mut set = BoundedSet::new(10_000);
        let ids: Vec<TxId> = (0u32..10_000)
            .map(|i| TxId(Hash512::digest(&i.to_le_bytes())))
            .collect();
        assert!(ids.iter().all(|id| set.insert(*id)));
        assert!(ids.iter().all(|id| set.contains(id)));
        assert!(!set.contains(&TxId(Hash512::digest(b"another"))));
        assert_eq!(set.len(), 10_000);
    }

    #[test]
    fn a_set_of_no_members_holds_nothing() {
        let mut set = BoundedSet::new(0);
        assert!(!set.insert(BlockHash::ZERO));
        assert!(!set.contains(&BlockHash::ZERO));
        assert!(set.is_empty());
    }
}
