//! Peer addresses the node knows: seed 003's set of valid peers, grown by gossip.
//!
//! An address learned from a peer is only a candidate until this node has connected to it
//! and finished a handshake: then it is verified, and only verified addresses are passed on
//! to others. Failed connections back off exponentially; an address that turned out to be
//! this node itself is never dialled again.
//!
//! **One source cannot crowd out the others** (Bitcoin Core's addrman keeps its new table
//! in buckets by the source's network group for this). An address a peer taught is charged
//! to the peer's network group: one group may hold at most an eighth of the book's
//! unverified addresses, and past that its newest replaces its own worst. When the book is
//! full, room is made in the group that holds the most unverified addresses. Verified
//! addresses are never pushed out by learned ones, nor are the addresses the local user gave
//! (`--peers`, `connect`).
//!
//! The book outlives a run through an [`AddressStore`]: the node's redb file keeps it in a
//! table of its own (`powchain_node::store::RedbAddresses`), tests and the simulator in
//! memory ([`MemAddresses`], which survives a simulated crash). Addresses are not consensus
//! data: the chain's `Store` knows nothing of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use powchain_chain::{StoreError, Timestamp};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    verified: bool,
    /// Given by the local user: never pushed out.
    pinned: bool,
    /// The network group of the peer that taught it (`None`: not taught by a peer).
    source: Option<String>,
    /// Kept from an earlier run: worth keeping again until it keeps failing.
    kept: bool,
    is_self: bool,
    failures: u32,
    next_try: Timestamp,
}

impl Entry {
    /// Worth dialling at `now`: not this node, not waiting out a backoff.
    fn is_dialable(&self, now: Timestamp) -> bool {
        !self.is_self && self.next_try <= now
    }
}

/// Failed connections in a row after which a kept address is forgotten.
pub const KEPT_FAILURES_MAX: u32 = 8;

/// Random draws [`AddressBook::random_candidate`] tries before it looks at every address.
const RANDOM_DRAWS: usize = 8;

/// Known addresses, bounded.
#[derive(Clone, Debug)]
pub struct AddressBook {
    entries: BTreeMap<String, Entry>,
    max: usize,
    /// Bumped by every change, so the node saves the book only when it changed.
    revision: u64,
}

impl AddressBook {
    /// An empty book of at most `max` addresses.
    pub fn new(max: usize) -> AddressBook {
        AddressBook {
            entries: BTreeMap::new(),
            max,
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

    /// Adds a candidate not taught by a peer; returns whether it was new. When full, room
    /// is made as the module docs say, or the newcomer is dropped.
    pub fn add(&mut self, address: &str) -> bool {
        self.insert(address, Entry::default())
    }

    /// Adds an address the local user gave: never pushed out by learned ones.
    pub fn add_pinned(&mut self, address: &str) {
        self.add(address);
        if let Some(entry) = self.entries.get_mut(address)
            && !entry.pinned
        {
            self.revision += 1;
            entry.pinned = true;
        }
    }

    /// Whether the local user gave `address`.
    pub fn is_pinned(&self, address: &str) -> bool {
        self.entries.get(address).is_some_and(|entry| entry.pinned)
    }

    /// Adds an address a peer of network group `source` taught; returns whether it was new.
    /// A source at its share replaces its own worst unverified address.
    pub fn learn(&mut self, address: &str, source: &str) -> bool {
        if address.is_empty() || self.entries.contains_key(address) {
            return false;
        }
        let share = (self.max / 8).max(1);
        let from_source = |entry: &Entry| {
            !entry.verified && !entry.pinned && entry.source.as_deref() == Some(source)
        };
        if self.entries.values().filter(|e| from_source(e)).count() >= share {
            let worst = self
                .entries
                .iter()
                .filter(|(_, entry)| from_source(entry))
                .max_by_key(|(_, entry)| entry.failures)
                .map(|(address, _)| address.clone());
            if let Some(worst) = worst {
                self.entries.remove(&worst);
            }
        }
        let entry = Entry {
            source: Some(source.to_owned()),
            ..Entry::default()
        };
        self.insert(address, entry)
    }

    /// Inserts a new entry, making room when full: an unverified, unpinned address of the
    /// group holding the most of them (its most failed one), or none and the newcomer is
    /// dropped.
    fn insert(&mut self, address: &str, entry: Entry) -> bool {
        if address.is_empty() || self.entries.contains_key(address) {
            return false;
        }
        if self.entries.len() >= self.max {
            let evictable = |entry: &Entry| !entry.verified && !entry.pinned;
            let mut groups: BTreeMap<Option<&str>, usize> = BTreeMap::new();
            for entry in self.entries.values().filter(|e| evictable(e)) {
                *groups.entry(entry.source.as_deref()).or_default() += 1;
            }
            let crowded = groups
                .into_iter()
                .max_by_key(|(_, count)| *count)
                .map(|(group, _)| group.map(str::to_owned));
            let victim = crowded.and_then(|group| {
                self.entries
                    .iter()
                    .filter(|(_, e)| evictable(e) && e.source == group)
                    .max_by_key(|(_, e)| e.failures)
                    .map(|(address, _)| address.clone())
            });
            match victim {
                Some(victim) => {
                    self.entries.remove(&victim);
                }
                None => return false,
            }
        }
        self.entries.insert(address.to_owned(), entry);
        self.revision += 1;
        true
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

    /// A handshake over a connection we dialled to `address` succeeded.
    pub fn mark_verified(&mut self, address: &str) {
        self.add(address);
        if let Some(entry) = self.entries.get_mut(address)
            && (!entry.verified || entry.failures > 0)
        {
            self.revision += 1;
            entry.verified = true;
            entry.failures = 0;
        }
    }

    /// `address` is this node: never dial it again, never pass it on.
    pub fn mark_self(&mut self, address: &str) {
        self.add(address);
        if let Some(entry) = self.entries.get_mut(address) {
            self.revision += 1;
            entry.is_self = true;
            entry.verified = false;
        }
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

    #[test]
    fn only_verified_addresses_are_passed_on() {
        let mut book = AddressBook::new(10);
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
        let mut book = AddressBook::new(10);
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
        let mut book = AddressBook::new(10);
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

    #[test]
    fn bounded_with_unverified_addresses_making_room() {
        let mut book = AddressBook::new(2);
        book.add("a");
        book.mark_verified("a");
        book.add("b");
        book.mark_failed("b", Timestamp(0), 1, 1);
        assert!(book.add("c"));
        assert!(book.contains("a") && book.contains("c") && !book.contains("b"));
        book.mark_verified("c");
        assert!(
            !book.add("d"),
            "every address is verified: the newcomer is dropped"
        );
        assert_eq!(book.len(), 2);
    }

    /// One source teaching many addresses holds at most an eighth of the book; what other
    /// sources taught, what was verified and what the user gave stay.
    #[test]
    fn one_source_cannot_crowd_out_the_others() {
        let mut book = AddressBook::new(64);
        book.add_pinned("198.51.100.1:1");
        for i in 0..6 {
            assert!(book.learn(&format!("192.0.2.{i}:1"), "10.1"));
        }
        book.learn("192.0.2.200:1", "10.2");
        book.mark_verified("192.0.2.200:1");
        for i in 0..1_000 {
            book.learn(&format!("203.0.{}.{}:1", i / 250, i % 250), "10.66");
        }
        let from = |prefix: &str| {
            book.entries
                .keys()
                .filter(|a| a.starts_with(prefix))
                .count()
        };
        assert_eq!(
            from("203.0."),
            8,
            "the flooding source holds its share, 64 / 8"
        );
        assert_eq!(from("192.0.2."), 7, "the other sources' addresses all stay");
        assert!(book.contains("198.51.100.1:1"));
        // A full book makes room in the most crowded group, never among the pinned or
        // verified.
        for i in 0..100 {
            book.learn(&format!("100.64.{i}.1:1"), &format!("20.{i}"));
        }
        assert_eq!(book.len(), 64);
        assert!(book.contains("198.51.100.1:1"), "pinned");
        assert!(book.contains("192.0.2.200:1"), "verified");
    }

    #[test]
    fn a_random_candidate_is_any_dialable_address_failed_ones_too() {
        let mut book = AddressBook::new(10);
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
