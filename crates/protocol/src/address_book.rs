//! Peer addresses the node knows: seed 003's set of valid peers, grown by gossip.
//!
//! An address learned from a peer is only a candidate until this node has connected to it
//! and finished a handshake: then it is verified, and only verified addresses are passed on
//! to others. Failed connections back off exponentially; an address that turned out to be
//! this node itself is never dialled again.
//!
//! **Two tables of hashed buckets, as Bitcoin Core's addrman keeps them**, so that what one
//! source teaches cannot push out what others taught, and an attacker cannot choose where its
//! addresses land:
//!
//! - The *new* table holds candidates (three quarters of the book). Where a candidate may sit
//!   is a keyed hash of the network group of the peer that taught it and of its own group: one
//!   source group reaches only an eighth of the table's buckets, and one slot in each for a
//!   given address. A newcomer whose slot is taken is dropped, unless the one there is
//!   *terrible* (it failed [`TERRIBLE_FAILURES`] dials in a row): learning never displaces a
//!   candidate that may still work, whatever the number of sources teaching.
//! - The *tried* table holds verified addresses (the other quarter), at a slot hashed from
//!   the address and its group (one group reaches an eighth of the buckets). A verified
//!   newcomer takes a taken slot only if the one there failed a dial since it last worked
//!   (Bitcoin Core tests the occupant before it evicts it; here the feelers test it, and its
//!   failure decides); the one it replaces goes back to the new table.
//! - The addresses the local user gave (`--peers`, `connect`) sit outside both tables and
//!   are never pushed out; so do the few that turned out to be this node.
//!
//! The hash key comes from the node's seed: a real node draws it at random, so a peer
//! cannot aim at an honest address's slot; a simulated run stays reproducible. Addresses
//! that are not public (loopback, private, a unix socket path, a simulated node's name) are
//! each a group of their own for the slots, or a test network on one machine would share a
//! single bucket.
//!
//! The book outlives a run through an [`AddressStore`]: the node's redb file keeps it in a
//! table of its own (`powchain_node::store::RedbAddresses`), tests and the simulator in
//! memory ([`MemAddresses`], which survives a simulated crash). Addresses are not consensus
//! data: the chain's `Store` knows nothing of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use powchain_chain::{Hash512, StoreError, Timestamp};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::netgroup::{is_public, net_group};

/// Where an address sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// A slot of the new table.
    New(usize),
    /// A slot of the tried table.
    Tried(usize),
    /// Outside the tables: given by the local user, or this node itself.
    Outside,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    place: Place,
    verified: bool,
    /// Given by the local user: never pushed out.
    pinned: bool,
    /// The network group of the peer that taught it (its own group when no peer did).
    source: String,
    /// Kept from an earlier run: worth keeping again until it keeps failing.
    kept: bool,
    is_self: bool,
    /// Failed dials since it last worked.
    failures: u32,
    next_try: Timestamp,
}

impl Entry {
    fn new(place: Place, source: &str) -> Entry {
        Entry {
            place,
            verified: false,
            pinned: false,
            source: source.to_owned(),
            kept: false,
            is_self: false,
            failures: 0,
            next_try: Timestamp(0),
        }
    }

    /// Worth dialling at `now`: not this node, not waiting out a backoff.
    fn is_dialable(&self, now: Timestamp) -> bool {
        !self.is_self && self.next_try <= now
    }

    /// Not worth its slot any more: it failed too often in a row.
    fn is_terrible(&self) -> bool {
        !self.pinned && !self.is_self && self.failures >= TERRIBLE_FAILURES
    }
}

/// Failed connections in a row after which a kept address is forgotten.
pub const KEPT_FAILURES_MAX: u32 = 8;

/// Failed dials in a row after which a candidate's slot goes to the next address that
/// hashes to it.
pub const TERRIBLE_FAILURES: u32 = 3;

/// Random draws [`AddressBook::random_candidate`] tries before it looks at every address.
const RANDOM_DRAWS: usize = 8;

/// Slots per bucket in a book of 1,024 addresses or more (Bitcoin Core's buckets hold 64).
const BUCKET_SLOTS_MAX: usize = 16;

/// The share of a table's buckets one source group (new) or one address group (tried)
/// reaches: one in this many.
const GROUP_SPREAD: usize = 8;

/// Addresses of this node kept outside the tables, at most.
const SELF_MAX: usize = 16;

/// One table of buckets, each of `slots` slots.
#[derive(Clone, Debug)]
struct Table {
    slots: Vec<Option<String>>,
    buckets: usize,
    slots_per_bucket: usize,
}

impl Table {
    fn new(capacity: usize, slots_per_bucket: usize) -> Table {
        let buckets = (capacity / slots_per_bucket).max(1);
        Table {
            slots: vec![None; buckets * slots_per_bucket],
            buckets,
            slots_per_bucket,
        }
    }

    /// The buckets one group reaches.
    fn spread(&self) -> u64 {
        (self.buckets / GROUP_SPREAD).max(1) as u64
    }

    /// The slot index of `address` in `bucket`.
    fn slot(&self, key: &[u8; 32], bucket: u64, address: &str) -> usize {
        let bucket = (bucket % self.buckets as u64) as usize;
        let within = keyed(key, &[b"slot", &bucket.to_le_bytes(), address.as_bytes()]);
        bucket * self.slots_per_bucket + (within % self.slots_per_bucket as u64) as usize
    }
}

/// A keyed hash of `parts`, each prefixed by its length so no two lists of parts meet.
fn keyed(key: &[u8; 32], parts: &[&[u8]]) -> u64 {
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2 + 1);
    let lengths: Vec<[u8; 8]> = parts
        .iter()
        .map(|p| (p.len() as u64).to_le_bytes())
        .collect();
    all.push(key);
    for (part, length) in parts.iter().zip(&lengths) {
        all.push(length);
        all.push(part);
    }
    let digest = Hash512::digest_parts(&all);
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(head)
}

/// The group an address counts in for the slots (see the module docs).
fn slot_group(address: &str) -> String {
    if is_public(address) {
        net_group(address)
    } else {
        address.to_owned()
    }
}

/// Known addresses, bounded.
#[derive(Clone, Debug)]
pub struct AddressBook {
    entries: BTreeMap<String, Entry>,
    new_table: Table,
    tried_table: Table,
    key: [u8; 32],
    /// Bumped by every change, so the node saves the book only when it changed.
    revision: u64,
}

impl AddressBook {
    /// An empty book of about `max` addresses in its tables (and the user's own outside
    /// them), placed by hashes keyed with `key`.
    pub fn new(max: usize, key: [u8; 32]) -> AddressBook {
        let slots_per_bucket = (max / 64).clamp(1, BUCKET_SLOTS_MAX);
        let tried = (max / 4).max(1);
        AddressBook {
            entries: BTreeMap::new(),
            new_table: Table::new(max.saturating_sub(tried).max(1), slots_per_bucket),
            tried_table: Table::new(tried, slots_per_bucket),
            key,
            revision: 0,
        }
    }

    /// A number that changes whenever the book does.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// How many addresses it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The new-table slot of `address` taught by a peer of group `source`.
    fn new_slot(&self, address: &str, source: &str) -> usize {
        let table = &self.new_table;
        let group = slot_group(address);
        let which = keyed(
            &self.key,
            &[b"new-group", source.as_bytes(), group.as_bytes()],
        ) % table.spread();
        let bucket = keyed(
            &self.key,
            &[b"new-bucket", source.as_bytes(), &which.to_le_bytes()],
        );
        table.slot(&self.key, bucket, address)
    }

    /// The tried-table slot of `address`.
    fn tried_slot(&self, address: &str) -> usize {
        let table = &self.tried_table;
        let group = slot_group(address);
        let which = keyed(&self.key, &[b"tried-address", address.as_bytes()]) % table.spread();
        let bucket = keyed(
            &self.key,
            &[b"tried-bucket", group.as_bytes(), &which.to_le_bytes()],
        );
        table.slot(&self.key, bucket, address)
    }

    /// Adds a candidate not taught by a peer; returns whether it was new. Its slot is as if
    /// it taught itself.
    pub fn add(&mut self, address: &str) -> bool {
        self.learn(address, &slot_group(address))
    }

    /// Adds an address the local user gave: outside the tables, never pushed out.
    pub fn add_pinned(&mut self, address: &str) {
        if address.is_empty() {
            return;
        }
        if self.is_pinned(address) {
            return;
        }
        self.move_outside(address).pinned = true;
    }

    /// Takes `address` out of the tables (adding it if it is new), to sit outside them.
    fn move_outside(&mut self, address: &str) -> &mut Entry {
        if let Some(place) = self.entries.get(address).map(|entry| entry.place) {
            self.free_slot(place);
        }
        self.revision += 1;
        let entry = self
            .entries
            .entry(address.to_owned())
            .or_insert_with(|| Entry::new(Place::Outside, &slot_group(address)));
        entry.place = Place::Outside;
        entry
    }

    /// Whether the local user gave `address`.
    pub fn is_pinned(&self, address: &str) -> bool {
        self.entries.get(address).is_some_and(|entry| entry.pinned)
    }

    /// Adds an address a peer of network group `source` taught; returns whether it was
    /// new. It takes its slot in the new table if the slot is free or its holder terrible;
    /// otherwise it is dropped.
    pub fn learn(&mut self, address: &str, source: &str) -> bool {
        if address.is_empty() || self.entries.contains_key(address) {
            return false;
        }
        let slot = self.new_slot(address, source);
        if !self.clear_for(Place::New(slot), false) {
            return false;
        }
        self.new_table.slots[slot] = Some(address.to_owned());
        self.entries
            .insert(address.to_owned(), Entry::new(Place::New(slot), source));
        self.revision += 1;
        true
    }

    /// Makes `place` free for a newcomer: true if it is free, or its holder could be
    /// removed (terrible, or `any` says whoever holds it goes).
    fn clear_for(&mut self, place: Place, any: bool) -> bool {
        let Some(holder) = self.holder(place) else {
            return true;
        };
        let goes = any || self.entries.get(&holder).is_none_or(Entry::is_terrible);
        if goes {
            self.entries.remove(&holder);
            self.free_slot(place);
        }
        goes
    }

    /// Who holds `place`.
    fn holder(&self, place: Place) -> Option<String> {
        match place {
            Place::New(slot) => self.new_table.slots[slot].clone(),
            Place::Tried(slot) => self.tried_table.slots[slot].clone(),
            Place::Outside => None,
        }
    }

    fn free_slot(&mut self, place: Place) {
        match place {
            Place::New(slot) => self.new_table.slots[slot] = None,
            Place::Tried(slot) => self.tried_table.slots[slot] = None,
            Place::Outside => {}
        }
    }

    /// Forgets `address`: it is not dialled again unless given or taught anew. Whether it
    /// was known.
    pub fn forget(&mut self, address: &str) -> bool {
        let Some(entry) = self.entries.remove(address) else {
            return false;
        };
        self.free_slot(entry.place);
        self.revision += 1;
        true
    }

    /// Failed dials to `address` since it last worked (0 when unknown).
    pub fn failures(&self, address: &str) -> u32 {
        self.entries.get(address).map_or(0, |entry| entry.failures)
    }

    /// Adds an address kept from an earlier run.
    pub fn add_kept(&mut self, address: &str) {
        self.add(address);
        if let Some(entry) = self.entries.get_mut(address) {
            self.revision += 1;
            entry.kept = true;
        }
    }

    /// What to keep for the next run: verified addresses, and kept ones that have not failed
    /// [`KEPT_FAILURES_MAX`] times in a row.
    pub fn to_keep(&self, limit: usize) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                !e.is_self && (e.verified || (e.kept && e.failures < KEPT_FAILURES_MAX))
            })
            .take(limit)
            .map(|(address, _)| address.clone())
            .collect()
    }

    /// Whether `address` is in the book.
    pub fn contains(&self, address: &str) -> bool {
        self.entries.contains_key(address)
    }

    /// Whether `address` is in the book as verified.
    pub fn is_verified(&self, address: &str) -> bool {
        self.entries
            .get(address)
            .is_some_and(|entry| entry.verified)
    }

    /// A handshake over a connection we dialled to `address` succeeded: it moves to the
    /// tried table, as the module docs say (a pinned address stays where it is).
    pub fn mark_verified(&mut self, address: &str) {
        if address.is_empty() {
            return;
        }
        if let Some(entry) = self.entries.get_mut(address)
            && (entry.pinned || entry.is_self || matches!(entry.place, Place::Tried(_)))
        {
            if !entry.is_self && (!entry.verified || entry.failures > 0) {
                entry.verified = true;
                entry.failures = 0;
                self.revision += 1;
            }
            return;
        }
        self.revision += 1;
        let slot = self.tried_slot(address);
        if let Some(holder) = self.holder(Place::Tried(slot)) {
            if self.entries.get(&holder).is_some_and(|e| e.failures == 0) {
                // The one there still works: this one stays a candidate, its failures gone.
                self.add(address);
                if let Some(entry) = self.entries.get_mut(address) {
                    entry.failures = 0;
                }
                return;
            }
            self.demote(&holder);
        }
        let mut entry = match self.entries.remove(address) {
            Some(entry) => {
                self.free_slot(entry.place);
                entry
            }
            None => Entry::new(Place::Outside, &slot_group(address)),
        };
        entry.place = Place::Tried(slot);
        entry.verified = true;
        entry.failures = 0;
        self.tried_table.slots[slot] = Some(address.to_owned());
        self.entries.insert(address.to_owned(), entry);
    }

    /// Moves `address` from the tried table back to the new one: to its slot there, which
    /// it takes from whoever holds it (a tried address has worked before), or dropped.
    fn demote(&mut self, address: &str) {
        let Some(entry) = self.entries.get(address) else {
            return;
        };
        let (place, source) = (entry.place, entry.source.clone());
        self.free_slot(place);
        let slot = self.new_slot(address, &source);
        self.clear_for(Place::New(slot), true);
        self.new_table.slots[slot] = Some(address.to_owned());
        if let Some(entry) = self.entries.get_mut(address) {
            entry.place = Place::New(slot);
            entry.verified = false;
        }
    }

    /// `address` is this node: never dial it again, never pass it on.
    pub fn mark_self(&mut self, address: &str) {
        if address.is_empty() {
            return;
        }
        if self.entries.get(address).is_some_and(|e| e.is_self) {
            return;
        }
        if self.entries.values().filter(|e| e.is_self).count() >= SELF_MAX {
            // More addresses of ours than any machine has: forget it instead.
            if let Some(entry) = self.entries.remove(address) {
                self.free_slot(entry.place);
                self.revision += 1;
            }
            return;
        }
        let entry = self.move_outside(address);
        entry.is_self = true;
        entry.verified = false;
    }

    /// Dialling `address` failed: wait `base_ms * 2^failures`, at most `max_ms`, before the
    /// next try.
    pub fn mark_failed(&mut self, address: &str, now: Timestamp, base_ms: u64, max_ms: u64) {
        if let Some(entry) = self.entries.get_mut(address) {
            self.revision += 1;
            let backoff = base_ms
                .saturating_mul(1u64 << entry.failures.min(30))
                .min(max_ms);
            entry.failures = entry.failures.saturating_add(1);
            entry.next_try = now.saturating_add_ms(backoff);
        }
    }

    /// Verified addresses, a random choice of at most `limit`, leaving out `except`. Random,
    /// not the first in order: if every node passed on the same few addresses, every node
    /// would dial the same few peers and find them full.
    pub fn verified(&self, limit: usize, except: &[&str], rng: &mut impl Rng) -> Vec<String> {
        let mut verified: Vec<&String> = self
            .entries
            .iter()
            .filter(|(address, entry)| entry.verified && !except.contains(&address.as_str()))
            .map(|(address, _)| address)
            .collect();
        verified.shuffle(rng);
        verified.into_iter().take(limit).cloned().collect()
    }

    /// Addresses worth dialling now (not self, not waiting out a backoff), verified ones
    /// first, then fewest failures, in random order within each rank; leaving out those
    /// `skip` says are connected or being dialled.
    pub fn candidates(
        &self,
        now: Timestamp,
        rng: &mut impl Rng,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut candidates: Vec<(&String, &Entry)> = self
            .entries
            .iter()
            .filter(|(address, entry)| entry.is_dialable(now) && !skip(address))
            .collect();
        candidates.shuffle(rng);
        candidates.sort_by_key(|(_, entry)| (!entry.verified, entry.failures));
        candidates.into_iter().map(|(a, _)| a.clone()).collect()
    }

    /// The earliest instant an address other than those `skip` names is worth dialling
    /// (in the past when one already is).
    pub fn next_dialable(&self, skip: impl Fn(&str) -> bool) -> Option<Timestamp> {
        self.entries
            .iter()
            .filter(|(address, entry)| !entry.is_self && !skip(address))
            .map(|(_, entry)| entry.next_try)
            .min()
    }

    /// One address worth dialling now, chosen uniformly among them whatever their rank (a
    /// feeler tests addresses, failed ones included), without sorting the book.
    pub fn random_candidate(
        &self,
        now: Timestamp,
        rng: &mut impl Rng,
        skip: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let eligible = |address: &str, entry: &Entry| entry.is_dialable(now) && !skip(address);
        // Most addresses are eligible: a few random draws find one, each checked once.
        if !self.entries.is_empty() {
            for _ in 0..RANDOM_DRAWS {
                let index = rng.random_range(0..self.entries.len());
                if let Some((address, entry)) = self.entries.iter().nth(index)
                    && eligible(address, entry)
                {
                    return Some(address.clone());
                }
            }
        }
        // Few are: reservoir sampling over all, the n-th eligible one replacing the pick with
        // chance 1/n.
        let mut pick = None;
        let mut seen = 0u32;
        for (address, entry) in &self.entries {
            if !eligible(address, entry) {
                continue;
            }
            seen += 1;
            if rng.random_range(0..seen) == 0 {
                pick = Some(address);
            }
        }
        pick.cloned()
    }
}

/// Where the address book is kept across restarts.
pub trait AddressStore: Send {
    /// The addresses the last run kept.
    fn load(&self) -> Result<Vec<String>, StoreError>;
    /// Replaces the kept addresses with `addresses`.
    fn save(&mut self, addresses: &[String]) -> Result<(), StoreError>;
}

/// Addresses kept in memory. Clones share one list, so a simulated node that crashes and
/// restarts with a clone finds what it saved before.
#[derive(Clone, Debug, Default)]
pub struct MemAddresses {
    kept: Arc<Mutex<Vec<String>>>,
}

impl MemAddresses {
    /// A store that already holds `addresses` (as if an earlier run kept them).
    pub fn holding(addresses: Vec<String>) -> MemAddresses {
        MemAddresses {
            kept: Arc::new(Mutex::new(addresses)),
        }
    }

    /// What it holds.
    pub fn kept(&self) -> Vec<String> {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AddressStore for MemAddresses {
    fn load(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.kept())
    }

    fn save(&mut self, addresses: &[String]) -> Result<(), StoreError> {
        *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = addresses.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn only_verified_addresses_are_passed_on() {
        let mut book = AddressBook::new(10, KEY);
        assert!(book.add("127.0.0.1:1"));
        assert!(!book.add("127.0.0.1:1"));
        assert!(
            book.verified(10, &[], &mut ChaCha8Rng::seed_from_u64(1))
                .is_empty()
        );
        book.mark_verified("127.0.0.1:1");
        assert_eq!(
            book.verified(10, &[], &mut ChaCha8Rng::seed_from_u64(1)),
            vec!["127.0.0.1:1".to_string()]
        );
        assert!(
            book.verified(10, &["127.0.0.1:1"], &mut ChaCha8Rng::seed_from_u64(1))
                .is_empty()
        );
    }

    #[test]
    fn failures_back_off_exponentially_and_self_is_never_dialled() {
        let mut book = AddressBook::new(10, KEY);
        book.add("a");
        book.mark_failed("a", Timestamp(0), 1_000, 5_000);
        assert!(
            book.candidates(Timestamp(999), &mut ChaCha8Rng::seed_from_u64(1), |_| false)
                .is_empty()
        );
        assert_eq!(
            book.candidates(Timestamp(1_000), &mut ChaCha8Rng::seed_from_u64(1), |_| {
                false
            }),
            vec!["a"]
        );
        book.mark_failed("a", Timestamp(1_000), 1_000, 5_000);
        assert!(
            book.candidates(Timestamp(2_999), &mut ChaCha8Rng::seed_from_u64(1), |_| {
                false
            })
            .is_empty()
        );
        for _ in 0..10 {
            book.mark_failed("a", Timestamp(0), 1_000, 5_000);
        }
        assert_eq!(
            book.candidates(Timestamp(5_000), &mut ChaCha8Rng::seed_from_u64(1), |_| {
                false
            }),
            vec!["a"]
        );
        book.mark_self("a");
        assert!(
            book.candidates(Timestamp(10_000), &mut ChaCha8Rng::seed_from_u64(1), |_| {
                false
            })
            .is_empty()
        );
    }

    #[test]
    fn kept_addresses_survive_until_they_keep_failing() {
        let mut book = AddressBook::new(10, KEY);
        book.add_kept("old");
        book.add("heard-of");
        book.add("mine");
        book.mark_verified("mine");
        assert_eq!(
            book.to_keep(10),
            vec!["mine".to_string(), "old".to_string()]
        );
        for _ in 0..KEPT_FAILURES_MAX {
            book.mark_failed("old", Timestamp(0), 1, 1);
        }
        assert_eq!(book.to_keep(10), vec!["mine".to_string()]);
    }

    /// A public address in the `i`-th of many /16 groups, and the name of such a group.
    fn public(i: usize, host: usize) -> String {
        format!("45.{}.{}.{host}:8333", i / 250, i % 250)
    }

    fn group(i: usize) -> String {
        format!("{}.{}", 100 + i / 250, i % 250)
    }

    /// In a book of 4, one source reaches one new slot: a second address from it is dropped,
    /// until the first has failed often enough to be terrible.
    #[test]
    fn a_taken_slot_drops_the_newcomer_unless_its_holder_is_terrible() {
        let mut book = AddressBook::new(4, KEY);
        assert!(book.learn("45.0.0.1:1", "10.1"));
        assert!(!book.learn("45.0.0.2:1", "10.1"));
        for _ in 1..TERRIBLE_FAILURES {
            book.mark_failed("45.0.0.1:1", Timestamp(0), 1, 1);
        }
        assert!(!book.learn("45.0.0.2:1", "10.1"), "not yet terrible");
        book.mark_failed("45.0.0.1:1", Timestamp(0), 1, 1);
        assert!(book.learn("45.0.0.2:1", "10.1"));
        assert!(!book.contains("45.0.0.1:1") && book.contains("45.0.0.2:1"));
    }

    /// One source teaching ten thousand addresses reaches an eighth of the new table's
    /// buckets (6 of 48, 16 slots each, in a book of 1,024), and fewer slots than that, as
    /// some of its addresses hash to the same slot.
    #[test]
    fn one_source_reaches_an_eighth_of_the_new_table() {
        let mut book = AddressBook::new(1_024, KEY);
        let learned = (0..10_000)
            .filter(|&i| book.learn(&public(i % 62_500, 1 + i / 62_500), "66.6"))
            .count();
        assert!((48..=96).contains(&learned), "{learned} learned");
        assert_eq!(book.len(), learned);
    }

    /// However many groups an attacker teaches from, what is learned only fills free slots:
    /// every address other sources taught, the verified ones and the user's stay. (A book
    /// that made room in its most crowded source group dropped the honest ones here: the
    /// honest sources each taught more than any one of the attacker's.)
    #[test]
    fn many_sources_cannot_push_out_what_others_taught() {
        let mut book = AddressBook::new(1_024, KEY);
        book.add_pinned("198.51.100.1:1");
        let honest: Vec<String> = (0..300)
            .map(|i| format!("{}.{}.0.1:8333", 20 + i / 200, i % 200))
            .enumerate()
            .filter(|(i, address)| book.learn(address, &format!("31.{}", i % 10)))
            .map(|(_, address)| address)
            .collect();
        assert!(
            honest.len() > 150,
            "{} of 300 honest addresses",
            honest.len()
        );
        book.mark_verified(&honest[0]);
        assert!(book.is_verified(&honest[0]));
        for source in 0..5_000 {
            for host in 1..=4 {
                book.learn(&public(source, host), &group(source));
            }
        }
        assert!(book.len() <= 1_024 + 1, "{} addresses", book.len());
        let lost = honest.iter().filter(|a| !book.contains(a)).count();
        assert_eq!(lost, 0, "honest addresses pushed out");
        assert!(book.is_verified(&honest[0]));
        assert!(book.contains("198.51.100.1:1"), "pinned");
    }

    /// In a book of 8, two addresses of one group share one tried slot: the second takes it
    /// only once the first has failed a dial since it last worked, and the first goes back
    /// to the candidates.
    #[test]
    fn a_verified_address_takes_a_tried_slot_only_from_one_that_failed() {
        let mut book = AddressBook::new(8, KEY);
        let (first, second) = ("45.1.0.1:1", "45.1.0.2:1");
        book.add(first);
        book.mark_verified(first);
        book.mark_failed(second, Timestamp(0), 1, 1);
        book.mark_verified(second);
        assert!(book.is_verified(first));
        assert!(book.contains(second) && !book.is_verified(second));
        book.mark_failed(first, Timestamp(0), 1, 1);
        book.mark_verified(second);
        assert!(book.is_verified(second));
        assert!(book.contains(first) && !book.is_verified(first));
        assert_eq!(
            book.verified(10, &[], &mut ChaCha8Rng::seed_from_u64(1)),
            vec![second.to_string()]
        );
    }

    /// The addresses of this node and the user's sit outside the tables: a full table does
    /// not push them out, and they take no slot.
    #[test]
    fn the_users_addresses_and_our_own_sit_outside_the_tables() {
        let mut book = AddressBook::new(4, KEY);
        book.add_pinned("45.0.0.1:1");
        book.add("45.9.0.1:1");
        book.mark_self("45.9.0.1:1");
        assert!(book.learn("45.0.0.2:1", "10.1"));
        assert!(book.learn("45.0.0.3:1", "10.2") || book.learn("45.0.0.3:1", "10.3"));
        assert!(book.is_pinned("45.0.0.1:1"));
        assert!(book.to_keep(10).iter().all(|a| a != "45.9.0.1:1"));
        assert!(
            book.candidates(Timestamp(0), &mut ChaCha8Rng::seed_from_u64(1), |_| false)
                .iter()
                .all(|a| a != "45.9.0.1:1"),
            "never dialled again"
        );
    }

    #[test]
    fn a_random_candidate_is_any_dialable_address_failed_ones_too() {
        let mut book = AddressBook::new(10, KEY);
        for address in ["a", "b", "c", "d", "me"] {
            book.add(address);
        }
        book.mark_verified("a");
        book.mark_failed("b", Timestamp(0), 1_000, 5_000);
        book.mark_failed("c", Timestamp(0), 1_000, 5_000);
        book.mark_self("me");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = BTreeMap::new();
        for _ in 0..3_000 {
            let pick = book.random_candidate(Timestamp(1_000), &mut rng, |a| a == "d");
            *seen.entry(pick.unwrap()).or_insert(0) += 1;
        }
        // "d" is skipped and "me" is this node; a, b and c come about a third of the time each.
        assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(
            seen.values().all(|&n| (800..1_200).contains(&n)),
            "{seen:?}"
        );
        // Waiting out a backoff: not a candidate.
        assert_eq!(
            book.random_candidate(Timestamp(999), &mut rng, |a| a == "d"),
            Some("a".to_string())
        );
        assert_eq!(
            book.random_candidate(Timestamp(999), &mut rng, |_| true),
            None
        );
    }
}
