//! The address manager: the address book (seed 003's set of valid peers), address gossip,
//! and keeping the book across restarts.
//!
//! Now and then (every `ping_interval_ms`, while the book is less than half full) one random
//! ready peer is asked for addresses; `SyncWith` asks a peer and dials what it answers. A
//! request to a peer answers it the verified addresses we know (never its own) and our own.
//!
//! - **Only answers are taken**: `Addresses` that nobody asked for are ignored, so gossip
//!   cannot flood the book, and one request takes one answer.
//! - **Only verified addresses are passed on** (the book's rule: connected to and handshaken).
//! - **The book is saved only when it changed**, at most every
//!   [`ADDRESSES_SAVE_INTERVAL_MS`] and at shutdown.

use std::collections::BTreeMap;

use powchain_chain::Timestamp;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::address_book::AddressBook;
use crate::message::{ADDRESSES_PER_MESSAGE_MAX, Message};
use crate::node::config::NodeConfig;
use crate::node::outbox::Outbox;
use crate::peer::PeerId;

/// How often the verified addresses are written to the store, if they changed (and at
/// shutdown). Bitcoin Core writes its peers file every 15 minutes too: a crash loses at most
/// that much of what was learned, which the next run learns again from its peers.
pub const ADDRESSES_SAVE_INTERVAL_MS: u64 = 15 * 60_000;

/// The book, the outstanding requests, and when it was last gossiped and saved.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub book: AddressBook,
    /// Peers asked for addresses and not answered yet, and whether to dial the answer.
    requested: BTreeMap<PeerId, bool>,
    last_gossip: Timestamp,
    last_saved: Timestamp,
    /// The book's revision when it was last saved.
    saved_revision: Option<u64>,
    book_max: usize,
    gossip_interval_ms: u64,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
}

impl Addresses {
    /// An empty book, its slots hashed with `key` (see `address_book`).
    pub fn new(config: &NodeConfig, key: [u8; 32]) -> Addresses {
        Addresses {
            book: AddressBook::new(config.address_book_max, key),
            requested: BTreeMap::new(),
            last_gossip: Timestamp(0),
            last_saved: Timestamp(0),
            saved_revision: None,
            book_max: config.address_book_max,
            gossip_interval_ms: config.ping_interval_ms,
            backoff_base_ms: config.backoff_base_ms,
            backoff_max_ms: config.backoff_max_ms,
        }
    }

    /// Dialling `address` failed (or it closed before the handshake): back off.
    pub fn dial_failed(&mut self, address: &str, now: Timestamp) {
        self.book
            .mark_failed(address, now, self.backoff_base_ms, self.backoff_max_ms);
    }

    pub fn peer_gone(&mut self, peer: PeerId) {
        self.requested.remove(&peer);
    }

    /// Asks `peer` for addresses; `dial` the answer or only learn it.
    pub fn request(&mut self, peer: PeerId, dial: bool, out: &mut Outbox) {
        self.requested.insert(peer, dial);
        out.send(peer, Message::GetAddresses);
    }

    /// How many requests are unanswered (each to a ready peer).
    pub fn requested_count(&self) -> usize {
        self.requested.len()
    }

    /// Whether a request to `peer` is unanswered.
    pub fn is_requested(&self, peer: PeerId) -> bool {
        self.requested.contains_key(&peer)
    }

    /// Takes the request an `Addresses` from `peer` answers: whether to dial what it lists
    /// (`None`: nobody asked, and the message is ignored).
    pub fn take_request(&mut self, peer: PeerId) -> Option<bool> {
        self.requested.remove(&peer)
    }

    /// Answers `peer`'s request: verified addresses other than `except` (the peer's own),
    /// and `listen`, ours.
    pub fn answer(
        &self,
        peer: PeerId,
        except: &[&str],
        listen: Option<&str>,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) {
        let mut addresses = self
            .book
            .verified(ADDRESSES_PER_MESSAGE_MAX - 1, except, rng);
        addresses.extend(listen.map(str::to_owned));
        out.send(peer, Message::Addresses(addresses));
    }

    /// Asks one random peer of `ready` (in id order, none with a request outstanding) for
    /// addresses, when it is time and the book has room.
    pub fn gossip(
        &mut self,
        ready: &[PeerId],
        now: Timestamp,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) {
        let due = now.ms_since(self.last_gossip) >= self.gossip_interval_ms;
        if !due || ready.is_empty() || self.book.len() >= self.book_max / 2 {
            return;
        }
        self.last_gossip = now;
        let peer = ready[rng.random_range(0..ready.len())];
        self.request(peer, false, out);
    }

    /// When gossip is next due, if some ready peer could be asked (`can_ask`) and the book
    /// has room.
    pub fn next_gossip(&self, can_ask: bool) -> Option<Timestamp> {
        (can_ask && self.book.len() < self.book_max / 2)
            .then(|| self.last_gossip.saturating_add_ms(self.gossip_interval_ms))
    }

    /// When the book is next saved, if it changed since it last was.
    pub fn next_save(&self) -> Option<Timestamp> {
        (self.saved_revision != Some(self.book.revision())).then(|| {
            self.last_saved
                .saturating_add_ms(ADDRESSES_SAVE_INTERVAL_MS)
        })
    }

    /// The book as it is now is the one the store holds.
    pub fn mark_saved(&mut self) {
        self.saved_revision = Some(self.book.revision());
    }

    /// Whether the book is due to be saved at `now`.
    pub fn save_due(&self, now: Timestamp) -> bool {
        now.ms_since(self.last_saved) >= ADDRESSES_SAVE_INTERVAL_MS
    }

    /// Saving at `now`: the addresses to keep, if the book changed since it was last saved.
    pub fn save_now(&mut self, now: Timestamp) -> Option<Vec<String>> {
        self.last_saved = now;
        if self.saved_revision == Some(self.book.revision()) {
            return None;
        }
        self.saved_revision = Some(self.book.revision());
        Some(self.book.to_keep(self.book_max))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::node::outbox::Output;

    fn addresses() -> Addresses {
        let mut addresses = Addresses::new(&NodeConfig::new(1), [7; 32]);
        addresses.book.add_kept("10.0.0.1:1");
        addresses
    }

    #[test]
    fn one_request_takes_one_answer() {
        let mut addresses = addresses();
        let mut out = Outbox::default();
        assert_eq!(addresses.take_request(3), None);
        addresses.request(3, true, &mut out);
        assert_eq!(
            out.drain(),
            vec![Output::Send {
                peer: 3,
                message: Message::GetAddresses
            }]
        );
        assert!(addresses.is_requested(3));
        assert_eq!(addresses.take_request(3), Some(true));
        assert_eq!(addresses.take_request(3), None);
    }

    #[test]
    fn gossip_asks_one_ready_peer_per_interval() {
        let mut addresses = addresses();
        let mut out = Outbox::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let interval = NodeConfig::new(1).ping_interval_ms;
        addresses.gossip(&[4, 5], Timestamp(interval), &mut rng, &mut out);
        assert_eq!(out.drain().len(), 1);
        addresses.gossip(&[4, 5], Timestamp(interval + 1), &mut rng, &mut out);
        assert!(out.drain().is_empty());
        addresses.gossip(&[], Timestamp(3 * interval), &mut rng, &mut out);
        assert!(out.drain().is_empty());
    }

    #[test]
    fn the_book_is_saved_only_when_it_changed() {
        let mut addresses = addresses();
        assert!(addresses.save_now(Timestamp(0)).is_some());
        assert!(addresses.save_now(Timestamp(1)).is_none());
        assert!(!addresses.save_due(Timestamp(1)));
        addresses.book.add("10.0.0.2:1");
        assert!(addresses.save_now(Timestamp(2)).is_some());
        assert!(addresses.save_due(Timestamp(2 + ADDRESSES_SAVE_INTERVAL_MS)));
    }
}
