//! The node state machine: the seed's "inbound queue, one sequential main process, outbound
//! queue", with no I/O. `Node` is a thin dispatcher over managers, each the only owner of
//! its state and of its own per-peer map:
//!
//! ```text
//!  driver ──peer_connected / connect_failed / peer_disconnected──┐
//!         ──frame_received (one per frame, decoded or not)─────────┤
//!         ──command (user) / tick(now) / block_mined──────────────┤
//!                                                                 v
//!   Node (dispatcher: chain, mempool, stats, rng; sequences every reaction)
//!     │  inputs: mod.rs (connections), messages.rs (frames), time.rs (tick),
//!     │          reactions.rs (tip change, mined blocks, commands)
//!     ├─ connections  handshake, slots, bans, dials, feelers      connections.rs
//!     ├─ addresses    the book, gossip, saving it                  addresses.rs
//!     ├─ liveness     pings and their timeouts                     liveness.rs
//!     ├─ sync         header sync, block download, serving         sync/
//!     ├─ inventory    known blocks and transfers, relay, announce  inventory.rs
//!     ├─ compact      compact blocks being rebuilt, and served     compact.rs
//!     └─ mining       automine, mine once, template refresh        mining.rs
//!                                                                 │ all write into one
//!  driver <── Output::{Send, Connect, Disconnect, Mine, Event} ────┘ Outbox (drain: `outputs`)
//! ```
//!
//! Managers never call each other. Only the dispatcher chains a reaction across them: a
//! block imported here changes the tip, which goes to the mempool, then to relay (transfers
//! of disconnected blocks) and announcement, then to mining; a disconnect goes to every
//! manager that keeps the peer, then to the download scheduler. A peer that finishes its
//! handshake becomes known to liveness, sync and inventory at once.
//!
//! Outbound slots are filled from the address book and then kept. On their own they can keep
//! a network split after the fault that split it is gone: while the halves were apart every
//! node filled its slots within its own half, so nobody needs a new connection when the
//! halves could talk again (the simulator's partition-heal scenario found exactly this). So,
//! as Bitcoin Core does, a node with its slots full opens a *feeler* every
//! `feeler_interval_ms` to a random address it is not connected to. The hello tells each side
//! the other's tip; a feeler with more work stays until we have synced its chain, and is
//! closed otherwise (after `handshake_timeout_ms`, so a far side that is behind can ask us
//! for headers first). Feelers also keep the address book's verified addresses fresh.

mod addresses;
mod command;
mod compact;
mod compact_messages;
mod config;
mod connections;
mod eviction;
mod inventory;
mod liveness;
mod lookup;
mod messages;
mod mining;
mod outbox;
mod reactions;
mod summary;
mod sync;
mod time;

use powchain_chain::{Chain, Height, Mempool, Store, StoreError, Timestamp};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::address_book::{AddressBook, AddressStore};
use crate::message::{Hello, Message, PROTOCOL_VERSION, REASON_BYTES_MAX, TipSummary};
use crate::netgroup::{is_learnable, net_group};
use crate::peer::{Direction, DisconnectReason, PeerId, PeerInfo};
use addresses::Addresses;
use compact::CompactRelay;
use connections::{Connection, Connections};
use inventory::Inventory;
use liveness::Pinger;
use mining::MiningControl;
use outbox::Outbox;
use sync::Sync;

pub use addresses::ADDRESSES_SAVE_INTERVAL_MS;
pub use command::Command;
pub use compact::CompactStats;
pub use config::NodeConfig;
pub use lookup::LookupError;
pub use outbox::{Event, Output};
pub use summary::{NodeStats, PeerSummary};

/// The node.
pub struct Node<S: Store> {
    config: NodeConfig,
    chain: Chain<S>,
    mempool: Mempool,
    connections: Connections,
    addresses: Addresses,
    liveness: Pinger,
    sync: Sync,
    inventory: Inventory,
    compact: CompactRelay,
    mining: MiningControl,
    /// Every random choice (ping nonces, gossip targets, dial candidates, extra nonces):
    /// one seeded stream, so a run replays exactly.
    rng: ChaCha8Rng,
    /// Where the address book is kept across restarts (`None`: it is not).
    address_store: Option<Box<dyn AddressStore>>,
    out: Outbox,
    stats: NodeStats,
    /// Why the node stopped, if its store failed: the chain in memory may then be ahead of
    /// the file, so it imports, mines and takes nothing more (the driver ends it).
    failure: Option<String>,
}

/// The key that places addresses in the book's buckets: from the node's seed, but not from
/// its random stream, whose draws would then all shift.
fn address_key(seed: u64) -> [u8; 32] {
    ChaCha8Rng::seed_from_u64(seed ^ 0x6164_6472_6573_7365).random()
}

impl<S: Store> Node<S> {
    /// A node on `chain`; `seed` drives its random choices (ping nonces, gossip targets).
    /// Its address book starts empty and is not kept: see [`Node::with_address_store`].
    pub fn new(config: NodeConfig, chain: Chain<S>, seed: u64) -> Node<S> {
        Node {
            // The pool shares the chain's signature cache: a block's transfers that were
            // admitted here are not checked again.
            mempool: Mempool::new(config.mempool).sharing_signatures(chain.sig_cache().clone()),
            connections: Connections::new(&config),
            addresses: Addresses::new(&config, address_key(seed)),
            liveness: Pinger::new(&config),
            sync: Sync::new(&config),
            inventory: Inventory::new(&config),
            compact: CompactRelay::new(
                config.compact_rebuilds_max,
                if config.compact_blocks {
                    config.compact_high_bandwidth_peers
                } else {
                    0
                },
            ),
            mining: MiningControl::new(&config),
            config,
            chain,
            rng: ChaCha8Rng::seed_from_u64(seed),
            address_store: None,
            out: Outbox::default(),
            stats: NodeStats::default(),
            failure: None,
        }
    }

    /// Why the node stopped, if its store failed (see [`Event::StoreFailed`]).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The store failed: the node stops mining and taking transfers, and says why once.
    pub(super) fn store_failed(&mut self, error: &dyn std::fmt::Display) {
        if self.failure.is_some() {
            return;
        }
        let error = error.to_string();
        self.failure = Some(error.clone());
        self.out.push(Output::Mine(None));
        self.out.event(Event::StoreFailed(error));
    }

    /// Keeps the address book in `store` (at most every `ADDRESSES_SAVE_INTERVAL_MS`, if it
    /// changed, and at shutdown); the addresses it kept from an earlier run become dial
    /// candidates again. Call it before adding addresses. A store that cannot be read is an
    /// error: the node would otherwise start without its peers and overwrite them.
    pub fn with_address_store(
        mut self,
        store: Box<dyn AddressStore>,
    ) -> Result<Node<S>, StoreError> {
        for address in store.load()? {
            self.addresses.book.add_kept(&address);
        }
        // What was just read is what the store holds: nothing to save until it changes.
        self.addresses.mark_saved();
        self.address_store = Some(store);
        Ok(self)
    }

    // ---- reads ---------------------------------------------------------------------------

    /// The chain.
    pub fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// Gives the chain back, dropping everything else (a simulated crash).
    pub fn into_chain(self) -> Chain<S> {
        self.chain
    }

    /// What compact relay counted.
    pub fn compact_stats(&self) -> CompactStats {
        self.compact.stats
    }

    /// The peers asked to push new blocks to us compact (BIP 152's high-bandwidth mode),
    /// the latest to give us a new tip first at the front.
    pub fn compact_high_bandwidth_peers(&self) -> Vec<PeerId> {
        self.compact.high_bandwidth_peers().collect()
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The known addresses.
    pub fn addresses(&self) -> &AddressBook {
        &self.addresses.book
    }

    /// Ready peers: id, address, direction, node id and reported tip height.
    pub fn peers(&self) -> Vec<(PeerId, String, Direction, u64, Height)> {
        self.peer_summaries()
            .into_iter()
            .map(|p| (p.id, p.address, p.direction, p.node_id, p.tip_height))
            .collect()
    }

    /// What an operator wants to know of each ready peer.
    pub fn peer_summaries(&self) -> Vec<PeerSummary> {
        self.connections
            .iter()
            .filter_map(|(id, peer)| {
                let hello = peer.hello.as_ref()?;
                let tip = self.sync.tip(id).unwrap_or(hello.tip);
                Some(PeerSummary {
                    id,
                    address: peer.info.address.clone(),
                    direction: peer.info.direction,
                    node_id: hello.node_id,
                    agent: hello.agent.clone(),
                    number: hello.number,
                    tip_height: tip.height,
                    tip_hash: tip.hash,
                    rtt_ms: self.liveness.rtt_ms(id),
                    feeler: peer.feeler,
                    connected_at: peer.connected_at,
                    bytes_in: peer.bytes_in,
                    bytes_out: peer.bytes_out,
                })
            })
            .collect()
    }

    /// What the node has done since it started.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// The connection to `address` (as dialled, or as the peer says it listens).
    pub fn peer_by_address(&self, address: &str) -> Option<PeerId> {
        self.connections.by_address(address)
    }

    /// Whether connections with this ban key are refused at `now`.
    pub fn is_banned(&self, ban_key: &str, now: Timestamp) -> bool {
        self.connections.is_banned(ban_key, now)
    }

    /// Whether automine is on.
    pub fn is_automining(&self) -> bool {
        self.mining.is_automining()
    }

    /// Blocks waiting to be downloaded.
    pub fn download_queue_len(&self) -> usize {
        self.sync.queue_len()
    }

    /// The nonce `address`'s next transfer should carry: after its confirmed nonce and any
    /// unbroken run of its pending transfers.
    pub fn next_nonce(&self, address: &powchain_chain::Address) -> u64 {
        let confirmed = self
            .chain
            .account(address)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.mempool.next_nonce(address, confirmed.nonce)
    }

    /// Takes everything the driver must do, oldest first.
    pub fn outputs(&mut self) -> Vec<Output> {
        self.out.drain()
    }

    pub(super) fn tip_summary(&self) -> TipSummary {
        let tip = self.chain.tip();
        TipSummary {
            hash: tip.hash,
            height: tip.height,
            work: tip.chain_work,
        }
    }

    // ---- connections -------------------------------------------------------------------

    /// Adds an address to dial when the node wants more peers (seed 003's peer list): the
    /// local user's, never pushed out by what peers teach.
    pub fn add_address(&mut self, address: &str) {
        self.addresses.book.add_pinned(address);
    }

    /// A connection opened (either way). The node says hello, or refuses it.
    pub fn peer_connected(&mut self, peer: PeerId, info: PeerInfo, now: Timestamp) {
        match self.connections.open(peer, info, now) {
            None => {}
            // Full: an inbound peer may make room (see `eviction`), or the newcomer goes.
            Some(DisconnectReason::TooManyInbound) => match self.inbound_to_evict(peer) {
                Some(victim) => self.disconnect(victim, DisconnectReason::Evicted, now),
                None => return self.disconnect(peer, DisconnectReason::TooManyInbound, now),
            },
            Some(reason) => return self.disconnect(peer, reason, now),
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            genesis: self.chain.chain_id(),
            node_id: self.config.node_id,
            listen: self.config.listen.clone(),
            tip: self.tip_summary(),
            agent: self.config.agent.clone(),
            number: self.config.number,
        };
        self.out.send(peer, Message::Hello(hello));
    }

    /// Whether a peer may teach us `address` (see `crate::netgroup`).
    pub(super) fn may_learn(&self, address: &str) -> bool {
        self.config.learn_any_address || is_learnable(address)
    }

    /// The inbound peer to evict for `newcomer`, if any (see `eviction`).
    fn inbound_to_evict(&self, newcomer: PeerId) -> Option<PeerId> {
        let candidates = self
            .connections
            .iter()
            .filter(|(id, c)| *id != newcomer && c.info.direction == Direction::Inbound)
            .map(|(id, c)| eviction::Candidate {
                peer: id,
                group: net_group(&c.info.address),
                connected_at: c.connected_at,
                rtt_ms: self.liveness.rtt_ms(id),
                last_block_at: c.last_block_at,
                last_transfer_at: c.last_transfer_at,
            })
            .collect();
        eviction::select(candidates, self.config.inbound_max)
    }

    /// Dialling `address` failed.
    pub fn connect_failed(&mut self, address: &str, reason: &str, now: Timestamp) {
        self.connections.dial_failed(address);
        self.addresses.dial_failed(address, now);
        self.out.event(Event::ConnectFailed {
            address: address.to_owned(),
            reason: reason.to_owned(),
        });
        // What the user typed and never answered is a typo or a node long gone: without
        // this, `ConnectTo 7` is dialled for as long as the node runs.
        let book = &mut self.addresses.book;
        let failures = book.failures(address);
        if book.is_pinned(address)
            && !book.is_verified(address)
            && failures >= self.config.user_address_failures_max
        {
            book.forget(address);
            self.out.event(Event::AddressForgotten {
                address: address.to_owned(),
                failures,
            });
        }
    }

    /// A connection closed by the other side or the network.
    pub fn peer_disconnected(&mut self, peer: PeerId, now: Timestamp) {
        self.peer_dropped(peer, DisconnectReason::ConnectionClosed, now);
    }

    /// The transport closed a connection for `reason` (the peer does not read what it is
    /// sent, say): no goodbye is sent, and nothing more is read from it.
    pub fn peer_dropped(&mut self, peer: PeerId, reason: DisconnectReason, now: Timestamp) {
        if let Some(connection) = self.connections.remove(peer) {
            self.forget_peer(peer, &connection, now);
            self.out.event(Event::PeerGone {
                peer,
                address: connection.info.address,
                reason,
            });
        }
    }

    /// The transport queued a frame of `bytes` for `peer`.
    pub fn frame_sent(&mut self, peer: PeerId, bytes: usize) {
        self.stats.bytes_out += bytes as u64;
        if let Some(connection) = self.connections.get_mut(peer) {
            connection.bytes_out += bytes as u64;
        }
    }

    /// Closes a connection: says goodbye with the reason, bans misbehaviour.
    pub(super) fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason, now: Timestamp) {
        let Some(connection) = self.connections.remove(peer) else {
            return;
        };
        if reason.is_misbehaviour() {
            self.connections.ban(&connection.info.ban_key, now);
        }
        if !matches!(reason, DisconnectReason::PeerGoodbye(_)) {
            let mut text = reason.to_string();
            text.truncate(REASON_BYTES_MAX);
            self.out.send(peer, Message::Goodbye { reason: text });
        }
        self.forget_peer(peer, &connection, now);
        self.out.push(Output::Disconnect {
            peer,
            reason: reason.clone(),
        });
        self.out.event(Event::PeerGone {
            peer,
            address: connection.info.address,
            reason,
        });
    }

    /// Every manager forgets a gone peer; what it was fetching goes to others. An address we
    /// dialled that closed before the handshake finished (it refused us, banned us, or is
    /// not a node) backs off like a failed dial, rather than being dialled again at the next
    /// tick.
    pub(super) fn forget_peer(&mut self, peer: PeerId, connection: &Connection, now: Timestamp) {
        if connection.info.direction == Direction::Outbound && !connection.is_ready() {
            self.addresses.dial_failed(&connection.info.address, now);
        }
        self.addresses.peer_gone(peer);
        self.liveness.peer_gone(peer);
        self.inventory.peer_gone(peer);
        self.compact.peer_gone(peer);
        self.sync.peer_gone(peer);
        // If it held the header-sync slot, the next candidate's turn.
        self.sync.start_header_sync(&self.chain, now, &mut self.out);
        self.schedule_downloads(now);
    }
}
