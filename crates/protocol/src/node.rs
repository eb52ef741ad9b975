//! The node state machine: the seed's "inbound queue, one sequential main process, outbound
//! queue", with no I/O.
//!
//! ```text
//!  driver ──peer_connected / connect_failed / peer_disconnected──┐
//!         ──frame_received (one per frame, decoded or not)─────────┤
//!         ──command (user) / tick(now) / block_mined──────────────┤
//!                                                                 v
//!                     Node { chain, mempool, peers, address book, download queue }
//!                                                                 │
//!  driver <── Output::{Send, Connect, Disconnect, Mine, Event} ────┘  (drain with `outputs`)
//! ```
//!
//! Sync is headers-first: a peer with more work is asked for headers after our block locator;
//! headers that connect and carry proof of work queue their blocks, which are requested in
//! batches from every peer that has them, a bounded number in flight per peer, re-requested
//! elsewhere after a timeout. A new tip is announced to every peer at once (its header; peers
//! fetch the block). Transfers are relayed once per peer. Every peer error ends in a
//! disconnect with a reason, and misbehaviour in a ban.
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

use std::collections::{BTreeMap, VecDeque};

use powchain_chain::hashing::{HashMap, HashSet};

use powchain_chain::chain::TipChange;
use powchain_chain::{
    Block, BlockHash, Chain, ChainConfig, Header, Height, ImportError, Mempool, MempoolConfig,
    MempoolError, Placement, Removal, Store, Timestamp, Transfer, TxError, TxId, Work,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::address_book::AddressBook;
use crate::download::{Download, Wanted};
use crate::frame::Received;
use crate::message::{
    ADDRESSES_PER_MESSAGE_MAX, BLOCKS_MESSAGE_BYTES_MAX, BLOCKS_PER_MESSAGE_MAX,
    HEADERS_PER_MESSAGE_MAX, Hello, LOCATOR_HASHES_MAX, Message, PROTOCOL_VERSION,
    REASON_BYTES_MAX, TRANSFERS_PER_MESSAGE_MAX, TipSummary,
};
use crate::peer::{Direction, DisconnectReason, Peer, PeerId, PeerInfo};

/// How often the verified addresses are written to the store, if they changed (and at
/// shutdown). Bitcoin Core writes its peers file every 15 minutes too: a crash loses at most
/// that much of what was learned, which the next run learns again from its peers.
pub const ADDRESSES_SAVE_INTERVAL_MS: u64 = 15 * 60_000;

/// How the node behaves toward peers. Every bound has its unit in the name.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's random id, to detect connections to itself.
    pub node_id: u64,
    /// Where this node accepts connections, told to peers.
    pub listen: Option<String>,
    /// Software name and version.
    pub agent: String,
    /// Outbound connections to keep.
    pub outbound_target: usize,
    /// Most inbound connections.
    pub inbound_max: usize,
    /// How long a new peer has to say hello.
    pub handshake_timeout_ms: u64,
    /// The status poll: how often each peer is pinged (and reports its tip).
    pub ping_interval_ms: u64,
    /// How long a ping may go unanswered.
    pub ping_timeout_ms: u64,
    /// How long a block request may go unanswered before it goes to another peer.
    pub block_request_timeout_ms: u64,
    /// Blocks in flight per peer.
    pub blocks_in_flight_per_peer_max: usize,
    /// Headers waiting for their blocks.
    pub download_queue_max: usize,
    /// How far above the tip blocks are downloaded (what arrives out of order must fit the
    /// chain's orphan pool).
    pub download_window_blocks: u64,
    /// Queue entries looked at per peer when handing out block requests.
    pub schedule_scan_max: usize,
    /// How long a headers request may go unanswered.
    pub headers_timeout_ms: u64,
    /// How long a misbehaving peer is refused.
    pub ban_ms: u64,
    /// Most bans remembered.
    pub bans_max: usize,
    /// First reconnection delay; doubles with each failure.
    pub backoff_base_ms: u64,
    /// Longest reconnection delay.
    pub backoff_max_ms: u64,
    /// Block hashes and transaction ids remembered per peer, so nothing is sent twice.
    pub known_inventory_max: usize,
    /// Messages per second a peer may send.
    pub messages_per_second_max: u32,
    /// Addresses remembered.
    pub address_book_max: usize,
    /// How often sync progress is reported while downloading.
    pub progress_interval_ms: u64,
    /// Shortest time between two templates rebuilt for new transfers (a new tip always
    /// gets one at once).
    pub template_refresh_ms: u64,
    /// How often a node with its outbound slots full opens a feeler connection (module
    /// docs); 0: never. A node with `outbound_target` 0 never dials, feelers included.
    pub feeler_interval_ms: u64,
    /// The chain's bounds.
    pub chain: ChainConfig,
    /// The mempool's bounds.
    pub mempool: MempoolConfig,
    /// Who this node's blocks pay (dev account 0 when `None`).
    pub miner_address: Option<powchain_chain::Address>,
}

impl NodeConfig {
    /// Defaults for a node with id `node_id`.
    pub fn new(node_id: u64) -> NodeConfig {
        NodeConfig {
            node_id,
            listen: None,
            agent: concat!("powchain/", env!("CARGO_PKG_VERSION")).to_owned(),
            outbound_target: 8,
            inbound_max: 32,
            handshake_timeout_ms: 10_000,
            ping_interval_ms: 10_000,
            ping_timeout_ms: 30_000,
            block_request_timeout_ms: 10_000,
            blocks_in_flight_per_peer_max: 32,
            download_queue_max: 100_000,
            download_window_blocks: 128,
            schedule_scan_max: 1_024,
            headers_timeout_ms: 20_000,
            ban_ms: 600_000,
            bans_max: 10_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            known_inventory_max: 8_192,
            messages_per_second_max: 2_000,
            address_book_max: 1_024,
            progress_interval_ms: 5_000,
            template_refresh_ms: 1_000,
            feeler_interval_ms: 120_000,
            chain: ChainConfig::default(),
            mempool: MempoolConfig::default(),
            miner_address: None,
        }
    }
}

/// A user command (the seed's session commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `ConnectTo`: dial an address.
    Connect(String),
    /// Close a connection.
    Disconnect(PeerId),
    /// `EchoTo`: the peer prints the text and sends it back.
    Echo {
        /// To whom.
        peer: PeerId,
        /// What.
        message: String,
    },
    /// `SyncWith`: ask the peer for its peers (and connect to them) and for its chain.
    SyncWith(PeerId),
    /// `MakeTransaction`: a signed transfer to add to the mempool and relay.
    SubmitTransfer(Transfer),
    /// `Mine`: mine the pending transfers into one block.
    MineOnce,
    /// Mine continuously (empty blocks included), or stop.
    Automine(bool),
    /// Say goodbye to every peer and disconnect.
    Shutdown,
}

/// Something worth telling the user or the logs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A handshake finished.
    PeerReady {
        /// The connection.
        peer: PeerId,
        /// Its address.
        address: String,
        /// Who opened it.
        direction: Direction,
        /// The peer's node id.
        node_id: u64,
        /// The peer's software.
        agent: String,
        /// The peer's tip height.
        height: Height,
    },
    /// A connection ended.
    PeerGone {
        /// The connection.
        peer: PeerId,
        /// Its address.
        address: String,
        /// Why.
        reason: DisconnectReason,
    },
    /// Dialling an address failed.
    ConnectFailed {
        /// The address.
        address: String,
        /// What the driver said.
        reason: String,
    },
    /// A peer asked us to echo this.
    EchoRequested {
        /// Who.
        peer: PeerId,
        /// What.
        message: String,
    },
    /// A peer echoed this back.
    EchoReplied {
        /// Who.
        peer: PeerId,
        /// What.
        message: String,
    },
    /// A peer told us about these addresses.
    AddressesLearned {
        /// Who.
        peer: PeerId,
        /// How many were new.
        new: usize,
    },
    /// The best chain moved.
    TipChanged {
        /// The new tip.
        hash: BlockHash,
        /// Its height.
        height: Height,
        /// Blocks that left the best chain (a reorg when non-zero).
        disconnected: usize,
        /// Blocks that joined it.
        connected: usize,
        /// The peer whose block did it (`None`: mined here, or an unlocked orphan).
        from: Option<PeerId>,
    },
    /// A block mined here was accepted.
    Mined {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: Height,
        /// Its transactions, coinbase included.
        txs: usize,
    },
    /// `Mine` with an empty mempool (the seed's warning).
    NothingToMine,
    /// A transfer entered the mempool.
    TransferAccepted {
        /// Its id.
        id: TxId,
        /// The peer that sent it (`None`: submitted here).
        from: Option<PeerId>,
    },
    /// A pending transfer left the mempool unconfirmed (dropped after a tip change,
    /// evicted for a higher fee, expired). Its sender must send it again for it to be mined.
    TransferDropped {
        /// Its id.
        id: TxId,
        /// Why.
        reason: Removal,
    },
    /// A transfer submitted here was refused.
    TransferRefused {
        /// Why.
        error: MempoolError,
    },
    /// Blocks are being downloaded.
    SyncProgress {
        /// Our height.
        height: Height,
        /// Blocks waiting to be downloaded.
        remaining: usize,
        /// Blocks connected per second since the last report.
        blocks_per_sec: f64,
    },
    /// The store failed: the node must stop.
    StoreFailed(String),
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message to a peer.
    Send {
        /// To whom.
        peer: PeerId,
        /// What.
        message: Message,
    },
    /// Dial an address; report back with `peer_connected` or `connect_failed`.
    Connect(String),
    /// Close a connection (after sending what was queued for it).
    Disconnect {
        /// Which.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Mine this template (replacing any current work), or stop mining with `None`.
    Mine(Option<Block>),
    /// Tell the user.
    Event(Event),
}

/// A ready peer, as [`Node::peer_summaries`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSummary {
    /// The connection.
    pub id: PeerId,
    /// Its address (as dialled, or as the connection came in).
    pub address: String,
    /// Who opened it.
    pub direction: Direction,
    /// The peer's node id.
    pub node_id: u64,
    /// The peer's software.
    pub agent: String,
    /// The best tip it has told us about.
    pub tip_height: Height,
    /// Its hash.
    pub tip_hash: BlockHash,
    /// The last ping's round trip (`None` before the first pong).
    pub rtt_ms: Option<u64>,
    /// A feeler connection (see the module docs).
    pub feeler: bool,
    /// When it connected.
    pub connected_at: Timestamp,
    /// Frame bytes received from it.
    pub bytes_in: u64,
    /// Frame bytes sent to it.
    pub bytes_out: u64,
}

/// What the node has done since it started, for `/metrics` and the status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Blocks from peers that were valid and stored (best chain, side branch or orphan).
    pub blocks_accepted: u64,
    /// Blocks from peers that failed validation.
    pub blocks_rejected: u64,
    /// Blocks this node's miner found that joined the best chain.
    pub blocks_mined: u64,
    /// Tip changes that took blocks off the best chain.
    pub reorgs: u64,
    /// Frame bytes received from peers (messages that decoded or not).
    pub bytes_in: u64,
    /// Frame bytes handed to peers' connections.
    pub bytes_out: u64,
    /// Transfers accepted into the mempool (from users and from peers).
    pub transfers_accepted: u64,
}

/// The node.
pub struct Node<S: Store> {
    config: NodeConfig,
    chain: Chain<S>,
    mempool: Mempool,
    peers: BTreeMap<PeerId, Peer>,
    addresses: AddressBook,
    /// Addresses being dialled, and since when.
    dialing: HashMap<String, Timestamp>,
    /// The address being dialled as a feeler, and when the last feeler was opened.
    feeler_dialing: Option<String>,
    last_feeler: Timestamp,
    bans: HashMap<String, Timestamp>,
    /// Blocks wanted, in download order, and who each was asked of.
    download: Download,
    /// The peer a header sync is running with.
    header_sync: Option<PeerId>,
    automine: bool,
    mine_once: bool,
    /// When the miner was last given a template, and whether transfers arrived since.
    last_template: Timestamp,
    template_stale: bool,
    progress: (Timestamp, Height),
    last_gossip: Timestamp,
    last_saved: Timestamp,
    /// The address book's revision when it was last saved.
    saved_revision: Option<u64>,
    rng: ChaCha8Rng,
    outputs: VecDeque<Output>,
    stats: NodeStats,
}

impl<S: Store> Node<S> {
    /// A node on `chain`; `seed` drives its random choices (ping nonces, gossip targets).
    /// Addresses the store kept from an earlier run become dial candidates again.
    pub fn new(config: NodeConfig, chain: Chain<S>, seed: u64) -> Node<S> {
        let kept = chain.store().peer_addresses().unwrap_or_default();
        let mut node = Node {
            mempool: Mempool::new(config.mempool),
            addresses: AddressBook::new(config.address_book_max),
            download: Download::new(config.download_queue_max),
            config,
            chain,
            peers: BTreeMap::new(),
            dialing: HashMap::default(),
            feeler_dialing: None,
            last_feeler: Timestamp(0),
            bans: HashMap::default(),
            header_sync: None,
            automine: false,
            mine_once: false,
            last_template: Timestamp(0),
            template_stale: false,
            progress: (Timestamp(0), Height(0)),
            last_gossip: Timestamp(0),
            last_saved: Timestamp(0),
            saved_revision: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            outputs: VecDeque::new(),
            stats: NodeStats::default(),
        };
        for address in kept {
            node.addresses.add_kept(&address);
        }
        node
    }

    /// Keeps the verified addresses in the store for the next run.
    fn save_addresses(&mut self, now: Timestamp) {
        self.last_saved = now;
        if self.saved_revision == Some(self.addresses.revision()) {
            return;
        }
        self.saved_revision = Some(self.addresses.revision());
        let keep = self.addresses.to_keep(self.config.address_book_max);
        if let Err(error) = self.chain.store().save_peer_addresses(&keep) {
            self.event(Event::StoreFailed(error.to_string()));
        }
    }

    /// The chain.
    pub fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// Gives the chain back, dropping everything else (a simulated crash).
    pub fn into_chain(self) -> Chain<S> {
        self.chain
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
        &self.addresses
    }

    /// Adds an address to dial when the node wants more peers (seed 003's peer list).
    pub fn add_address(&mut self, address: &str) {
        self.addresses.add(address);
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
        self.peers
            .iter()
            .filter_map(|(id, peer)| {
                let hello = peer.hello.as_ref()?;
                let tip = peer.tip.unwrap_or(hello.tip);
                Some(PeerSummary {
                    id: *id,
                    address: peer.info.address.clone(),
                    direction: peer.info.direction,
                    node_id: hello.node_id,
                    agent: hello.agent.clone(),
                    tip_height: tip.height,
                    tip_hash: tip.hash,
                    rtt_ms: peer.rtt_ms,
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

    /// The transport queued a frame of `bytes` for `peer`.
    pub fn frame_sent(&mut self, peer: PeerId, bytes: usize) {
        self.stats.bytes_out += bytes as u64;
        if let Some(state) = self.peers.get_mut(&peer) {
            state.bytes_out += bytes as u64;
        }
    }

    /// The ready peer with node id `node_id` (the seed's `ConnectTo N` names nodes by id).
    pub fn peer_by_address(&self, address: &str) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(_, peer)| {
                peer.info.address == address
                    || peer.hello.as_ref().and_then(|h| h.listen.as_deref()) == Some(address)
            })
            .map(|(id, _)| *id)
    }

    /// Whether connections with this ban key are refused at `now`.
    pub fn is_banned(&self, ban_key: &str, now: Timestamp) -> bool {
        self.bans.get(ban_key).is_some_and(|until| *until > now)
    }

    /// Whether automine is on.
    pub fn is_automining(&self) -> bool {
        self.automine
    }

    /// Blocks waiting to be downloaded.
    pub fn download_queue_len(&self) -> usize {
        self.download.len()
    }

    /// Takes everything the driver must do, oldest first.
    pub fn outputs(&mut self) -> Vec<Output> {
        self.outputs.drain(..).collect()
    }

    fn send(&mut self, peer: PeerId, message: Message) {
        self.outputs.push_back(Output::Send { peer, message });
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn tip_summary(&self) -> TipSummary {
        let tip = self.chain.tip();
        TipSummary {
            hash: tip.hash,
            height: tip.height,
            work: tip.chain_work,
        }
    }

    // ---- connections -------------------------------------------------------------------

    /// A connection opened (either way). The node says hello, or refuses it.
    pub fn peer_connected(&mut self, peer: PeerId, info: PeerInfo, now: Timestamp) {
        let mut feeler = false;
        if info.direction == Direction::Outbound {
            self.dialing.remove(&info.address);
            if self.feeler_dialing.as_deref() == Some(info.address.as_str()) {
                self.feeler_dialing = None;
                feeler = true;
            }
        }
        let banned = self.is_banned(&info.ban_key, now);
        let inbound = self
            .peers
            .values()
            .filter(|p| p.info.direction == Direction::Inbound)
            .count();
        let mut state = Peer::new(info.clone(), now, self.config.known_inventory_max);
        state.feeler = feeler;
        self.peers.insert(peer, state);
        if banned {
            return self.disconnect(peer, DisconnectReason::Banned, now);
        }
        if info.direction == Direction::Inbound && inbound >= self.config.inbound_max {
            return self.disconnect(peer, DisconnectReason::TooManyInbound, now);
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            genesis: self.chain.chain_id(),
            node_id: self.config.node_id,
            listen: self.config.listen.clone(),
            tip: self.tip_summary(),
            agent: self.config.agent.clone(),
        };
        self.send(peer, Message::Hello(hello));
    }

    /// Dialling `address` failed.
    pub fn connect_failed(&mut self, address: &str, reason: &str, now: Timestamp) {
        self.dialing.remove(address);
        if self.feeler_dialing.as_deref() == Some(address) {
            self.feeler_dialing = None;
        }
        self.addresses.mark_failed(
            address,
            now,
            self.config.backoff_base_ms,
            self.config.backoff_max_ms,
        );
        self.event(Event::ConnectFailed {
            address: address.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// A connection closed by the other side or the network.
    pub fn peer_disconnected(&mut self, peer: PeerId, now: Timestamp) {
        if let Some(state) = self.peers.remove(&peer) {
            self.forget_peer(peer, &state, now);
            self.event(Event::PeerGone {
                peer,
                address: state.info.address,
                reason: DisconnectReason::PeerGoodbye("connection closed".into()),
            });
        }
    }

    /// Closes a connection: says goodbye with the reason, bans misbehaviour.
    fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason, now: Timestamp) {
        let Some(state) = self.peers.remove(&peer) else {
            return;
        };
        if reason.is_misbehaviour() {
            self.ban(&state.info.ban_key, now);
        }
        if !matches!(reason, DisconnectReason::PeerGoodbye(_)) {
            let mut text = reason.to_string();
            text.truncate(REASON_BYTES_MAX);
            self.send(peer, Message::Goodbye { reason: text });
        }
        self.forget_peer(peer, &state, now);
        self.outputs.push_back(Output::Disconnect {
            peer,
            reason: reason.clone(),
        });
        self.event(Event::PeerGone {
            peer,
            address: state.info.address,
            reason,
        });
    }

    fn ban(&mut self, key: &str, now: Timestamp) {
        if self.bans.len() >= self.config.bans_max {
            self.bans.retain(|_, until| *until > now);
        }
        if self.bans.len() < self.config.bans_max {
            self.bans
                .insert(key.to_owned(), now.saturating_add_ms(self.config.ban_ms));
        }
    }

    /// Puts back what a gone peer was fetching for us. An address we dialled that closed
    /// before the handshake finished (it refused us, banned us, or is not a node) backs off
    /// like a failed dial, rather than being dialled again at the next tick.
    fn forget_peer(&mut self, peer: PeerId, state: &Peer, now: Timestamp) {
        if state.info.direction == Direction::Outbound && !state.is_ready() {
            self.addresses.mark_failed(
                &state.info.address,
                now,
                self.config.backoff_base_ms,
                self.config.backoff_max_ms,
            );
        }
        for hash in state.in_flight.keys() {
            if self.download.requested_from(hash) == Some(peer) {
                self.download.release(hash);
            }
        }
        if self.header_sync == Some(peer) {
            self.header_sync = None;
        }
        self.schedule_downloads(now);
    }

    // ---- messages ----------------------------------------------------------------------

    /// A frame from `peer`: one input per frame, whether it decoded or not. Its bytes are
    /// counted first (garbage counts too); bytes that are not a message within its bounds
    /// (`crate::frame` checked them) get a disconnect and a ban.
    pub fn frame_received(&mut self, peer: PeerId, frame: Received, now: Timestamp) {
        let bytes = frame.bytes as u64;
        self.stats.bytes_in += bytes;
        if let Some(state) = self.peers.get_mut(&peer) {
            state.bytes_in += bytes;
        }
        match frame.message {
            Ok(message) => self.message_received(peer, message, now),
            Err(error) => {
                self.disconnect(peer, DisconnectReason::BadMessage(error.to_string()), now)
            }
        }
    }

    fn message_received(&mut self, peer: PeerId, message: Message, now: Timestamp) {
        let per_second = self.config.messages_per_second_max;
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        // Answers to our own requests do not count toward the flood limit (they are only
        // accepted when asked for); everything else does.
        let answer = matches!(
            message,
            Message::Blocks(_) | Message::Headers(_) | Message::NotFound(_)
        );
        if !answer && !state.count_message(now, per_second) {
            return self.disconnect(peer, DisconnectReason::Flood, now);
        }
        let ready = state.is_ready();
        match message {
            Message::Hello(hello) if !ready => self.on_hello(peer, hello, now),
            Message::Hello(_) => self.disconnect(
                peer,
                DisconnectReason::ProtocolViolation("second hello"),
                now,
            ),
            Message::Goodbye { reason } => {
                // Seed 003: `exit` is answered by `bye`.
                self.send(
                    peer,
                    Message::Goodbye {
                        reason: "bye".into(),
                    },
                );
                self.disconnect(peer, DisconnectReason::PeerGoodbye(reason), now);
            }
            _ if !ready => self.disconnect(
                peer,
                DisconnectReason::ProtocolViolation("a message before the hello"),
                now,
            ),
            Message::Ping { nonce } => {
                let tip = self.tip_summary();
                self.send(peer, Message::Pong { nonce, tip });
            }
            Message::Pong { nonce, tip } => self.on_pong(peer, nonce, tip, now),
            Message::EchoRequest { message } => {
                self.event(Event::EchoRequested {
                    peer,
                    message: message.clone(),
                });
                self.send(peer, Message::EchoResponse { message });
            }
            Message::EchoResponse { message } => {
                self.event(Event::EchoReplied { peer, message });
            }
            Message::GetAddresses => self.on_get_addresses(peer),
            Message::Addresses(addresses) => self.on_addresses(peer, addresses, now),
            Message::Announce { header } => self.on_announce(peer, header, now),
            Message::GetHeaders { locator } => self.on_get_headers(peer, &locator),
            Message::Headers(headers) => self.on_headers(peer, headers, now),
            Message::GetBlocks(hashes) => self.on_get_blocks(peer, &hashes),
            Message::Blocks(blocks) => self.on_blocks(peer, blocks, now),
            Message::NotFound(hashes) => self.on_not_found(peer, &hashes, now),
            Message::Transactions(transfers) => self.on_transactions(peer, transfers, now),
        }
    }

    fn on_hello(&mut self, peer: PeerId, hello: Hello, now: Timestamp) {
        if hello.version != PROTOCOL_VERSION {
            let reason = DisconnectReason::ProtocolVersion {
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            };
            return self.disconnect(peer, reason, now);
        }
        if hello.genesis != self.chain.chain_id() {
            let reason = DisconnectReason::WrongGenesis {
                ours: self.chain.chain_id(),
                theirs: hello.genesis,
            };
            return self.disconnect(peer, reason, now);
        }
        let Some(state) = self.peers.get(&peer) else {
            return;
        };
        let info = state.info.clone();
        if hello.node_id == self.config.node_id {
            if info.direction == Direction::Outbound {
                self.addresses.mark_self(&info.address);
            }
            return self.disconnect(peer, DisconnectReason::SelfConnection, now);
        }
        let duplicate = self.peers.iter().any(|(id, other)| {
            *id != peer
                && other
                    .hello
                    .as_ref()
                    .is_some_and(|h| h.node_id == hello.node_id)
        });
        if duplicate {
            return self.disconnect(peer, DisconnectReason::DuplicateConnection, now);
        }
        if info.direction == Direction::Outbound {
            self.addresses.mark_verified(&info.address);
        } else if let Some(listen) = &hello.listen {
            // Only a candidate until we have connected to it ourselves.
            self.addresses.add(listen);
        }
        let tip = hello.tip;
        self.event(Event::PeerReady {
            peer,
            address: info.address.clone(),
            direction: info.direction,
            node_id: hello.node_id,
            agent: hello.agent.clone(),
            height: tip.height,
        });
        if let Some(state) = self.peers.get_mut(&peer) {
            state.tip = Some(tip);
            state.hello = Some(hello);
            state.known_blocks.insert(tip.hash);
        }
        self.maybe_sync_headers(peer, tip, now);
    }

    fn on_pong(&mut self, peer: PeerId, nonce: u64, tip: TipSummary, now: Timestamp) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Some((sent_nonce, sent_at)) = state.ping
            && sent_nonce == nonce
        {
            state.ping = None;
            state.rtt_ms = Some(now.ms_since(sent_at));
        }
        state.tip = Some(tip);
        self.maybe_sync_headers(peer, tip, now);
    }

    /// Starts a header sync with `peer` if it claims more work than we have and no sync runs.
    fn maybe_sync_headers(&mut self, peer: PeerId, tip: TipSummary, now: Timestamp) {
        let ours = self.chain.tip().chain_work;
        if tip.work <= ours
            || self.header_sync.is_some()
            || self.chain.tree().get(&tip.hash).is_some()
            || self.download.contains(&tip.hash)
        {
            return;
        }
        self.request_headers(peer, None, now);
    }

    /// Asks `peer` for headers after our locator (after `from` first, to continue a long
    /// sync). At most one request per peer is outstanding.
    fn request_headers(&mut self, peer: PeerId, from: Option<BlockHash>, now: Timestamp) {
        let locator = self.locator();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.headers_requested.is_some() {
            return;
        }
        state.headers_requested = Some(now);
        self.header_sync = Some(peer);
        let mut hashes = Vec::with_capacity(LOCATOR_HASHES_MAX);
        hashes.extend(from);
        hashes.extend(locator);
        hashes.truncate(LOCATOR_HASHES_MAX);
        self.send(peer, Message::GetHeaders { locator: hashes });
    }

    /// Best-chain hashes from the tip back to genesis: the last ten one by one, then with
    /// doubling gaps, genesis always last.
    fn locator(&self) -> Vec<BlockHash> {
        let tree = self.chain.tree();
        let mut hashes = Vec::new();
        let mut height = tree.height().0;
        let mut step = 1u64;
        while hashes.len() < LOCATOR_HASHES_MAX - 1 {
            if let Some(hash) = tree.best_at(Height(height)) {
                hashes.push(hash);
            }
            if height == 0 {
                return hashes;
            }
            if hashes.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        hashes.extend(tree.best_at(Height(0)));
        hashes
    }

    fn on_get_addresses(&mut self, peer: PeerId) {
        let except: Vec<String> = self
            .peers
            .get(&peer)
            .into_iter()
            .flat_map(|p| {
                [
                    Some(p.info.address.clone()),
                    p.hello.as_ref().and_then(|h| h.listen.clone()),
                ]
            })
            .flatten()
            .collect();
        let except: Vec<&str> = except.iter().map(String::as_str).collect();
        let mut addresses =
            self.addresses
                .verified(ADDRESSES_PER_MESSAGE_MAX - 1, &except, &mut self.rng);
        if let Some(listen) = &self.config.listen {
            addresses.push(listen.clone());
        }
        self.send(peer, Message::Addresses(addresses));
    }

    fn on_addresses(&mut self, peer: PeerId, addresses: Vec<String>, now: Timestamp) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        // Only answers are taken: unasked-for gossip is ignored, so it cannot flood the book.
        let Some(connect_now) = state.addresses_requested.take() else {
            return;
        };
        let mut new = 0;
        for address in addresses {
            if Some(&address) == self.config.listen.as_ref() {
                continue;
            }
            if self.addresses.add(&address) {
                new += 1;
            }
            if connect_now && self.peer_by_address(&address).is_none() {
                self.dial(&address, now);
            }
        }
        self.event(Event::AddressesLearned { peer, new });
    }

    fn dial(&mut self, address: &str, now: Timestamp) {
        if self.dialing.contains_key(address) {
            return;
        }
        self.dialing.insert(address.to_owned(), now);
        self.outputs.push_back(Output::Connect(address.to_owned()));
    }

    fn on_get_headers(&mut self, peer: PeerId, locator: &[BlockHash]) {
        let tree = self.chain.tree();
        let start = locator
            .iter()
            .find(|hash| tree.is_on_best(hash))
            .and_then(|hash| tree.get(hash))
            .map_or(Height(0), |entry| entry.header.height);
        let headers: Vec<Header> = tree
            .best_range(Height(start.0 + 1), HEADERS_PER_MESSAGE_MAX)
            .iter()
            .filter_map(|hash| tree.get(hash).map(|entry| entry.header))
            .collect();
        if let Some(state) = self.peers.get_mut(&peer) {
            for header in &headers {
                state.known_blocks.insert(header.hash());
            }
        }
        self.send(peer, Message::Headers(headers));
    }

    /// The chain work a child of `parent` with `header` would have, if the parent is known
    /// and valid.
    fn work_after(&self, parent: &BlockHash, header: &Header) -> Option<Work> {
        let parent_work = match self.chain.tree().get(parent) {
            Some(entry) if entry.status != powchain_chain::store::BlockStatus::Invalid => {
                entry.chain_work
            }
            Some(_) => return None,
            None => self.download.get(parent)?.chain_work,
        };
        parent_work.checked_add(header.target.work())
    }

    /// The checks a header gets before its block is wanted: a height one above its parent,
    /// the target the chain demands (exactly, when the parent is in the tree; otherwise no
    /// easier than the chain allows), and proof of work against it.
    fn check_header(&self, header: &Header, parent_height: Height) -> Result<(), String> {
        let spec = self.chain.spec();
        let short = header.hash().short(16);
        if parent_height.next() != Some(header.height) {
            return Err(format!("header {short} has the wrong height"));
        }
        if self.chain.tree().get(&header.prev_hash).is_some() {
            let expected = self.chain.tree().expected_target(&header.prev_hash, spec);
            if header.target != expected {
                return Err(format!("header {short} has the wrong target"));
            }
        } else {
            let easiest = spec
                .retarget
                .map_or(spec.genesis_target(), |rule| rule.easiest.target());
            if header.target > easiest {
                return Err(format!(
                    "header {short} has a target easier than the chain allows"
                ));
            }
        }
        if !header.meets_own_target() {
            return Err(format!("header {short} lacks proof of work"));
        }
        Ok(())
    }

    fn parent_height(&self, parent: &BlockHash) -> Option<Height> {
        match self.chain.tree().get(parent) {
            Some(entry) => Some(entry.header.height),
            None => self.download.get(parent).map(|w| w.header.height),
        }
    }

    fn on_headers(&mut self, peer: PeerId, headers: Vec<Header>, now: Timestamp) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.headers_requested.take().is_none() {
            return self.disconnect(peer, DisconnectReason::Unrequested("headers"), now);
        }
        if self.header_sync == Some(peer) {
            self.header_sync = None;
        }
        let full = headers.len() == HEADERS_PER_MESSAGE_MAX;
        let mut previous: Option<BlockHash> = None;
        let mut last = None;
        for header in headers {
            let hash = header.hash();
            if let Some(previous) = previous
                && header.prev_hash != previous
            {
                return self.disconnect(
                    peer,
                    DisconnectReason::InvalidHeaders("headers do not form a chain".into()),
                    now,
                );
            }
            previous = Some(hash);
            last = Some(hash);
            if let Some(state) = self.peers.get_mut(&peer) {
                state.known_blocks.insert(hash);
            }
            if self.chain.tree().get(&hash).is_some() || self.download.contains(&hash) {
                continue;
            }
            let Some(parent_height) = self.parent_height(&header.prev_hash) else {
                // Our view moved since we asked (a reorg, a block dropped from the queue):
                // ask again from our locator, a few times, before calling it abuse.
                let Some(state) = self.peers.get_mut(&peer) else {
                    return;
                };
                state.unconnected_headers += 1;
                if state.unconnected_headers > 3 {
                    return self.disconnect(
                        peer,
                        DisconnectReason::InvalidHeaders(
                            "headers do not connect to our chain".into(),
                        ),
                        now,
                    );
                }
                return self.request_headers(peer, None, now);
            };
            if let Err(why) = self.check_header(&header, parent_height) {
                return self.disconnect(peer, DisconnectReason::InvalidHeaders(why), now);
            }
            let Some(chain_work) = self.work_after(&header.prev_hash, &header) else {
                return self.disconnect(
                    peer,
                    DisconnectReason::InvalidHeaders("headers build on an invalid block".into()),
                    now,
                );
            };
            if !self
                .download
                .want(hash, Wanted { header, chain_work }, false)
            {
                break;
            }
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            state.unconnected_headers = 0;
        }
        if let (true, Some(last)) = (full, last)
            && !self.download.is_full()
        {
            self.request_headers(peer, Some(last), now);
        }
        self.schedule_downloads(now);
    }

    fn on_announce(&mut self, peer: PeerId, header: Header, now: Timestamp) {
        let hash = header.hash();
        if let Some(state) = self.peers.get_mut(&peer) {
            state.known_blocks.insert(hash);
        }
        if self.chain.tree().get(&hash).is_some() || self.download.contains(&hash) {
            return;
        }
        let Some(parent_height) = self.parent_height(&header.prev_hash) else {
            // We are missing its ancestors: catch up by headers.
            if self.header_sync.is_none() {
                self.request_headers(peer, None, now);
            }
            return;
        };
        if let Err(why) = self.check_header(&header, parent_height) {
            return self.disconnect(peer, DisconnectReason::InvalidHeaders(why), now);
        }
        let Some(chain_work) = self.work_after(&header.prev_hash, &header) else {
            return;
        };
        if let Some(state) = self.peers.get_mut(&peer) {
            state.tip = Some(TipSummary {
                hash,
                height: header.height,
                work: chain_work,
            });
        }
        // Only a block that would beat our tip is worth fetching.
        if chain_work <= self.chain.tip().chain_work {
            return;
        }
        // A fresh tip goes first: it is what propagation waits for.
        if self
            .download
            .want(hash, Wanted { header, chain_work }, true)
        {
            self.schedule_downloads(now);
        }
    }

    /// Sends the requested blocks, split into messages that fit a frame.
    fn on_get_blocks(&mut self, peer: PeerId, hashes: &[BlockHash]) {
        let mut unique: Vec<BlockHash> = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if !unique.contains(hash) {
                unique.push(*hash);
            }
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        let mut missing = Vec::new();
        for hash in unique {
            let block = match self.chain.block(&hash) {
                Ok(Some(block)) => block,
                Ok(None) => {
                    missing.push(hash);
                    continue;
                }
                Err(error) => return self.event(Event::StoreFailed(error.to_string())),
            };
            // Consensus size plus room for postcard's length prefixes.
            let bytes = block.encoded_len() + 1_024;
            if !batch.is_empty() && batch_bytes + bytes > BLOCKS_MESSAGE_BYTES_MAX {
                self.send(peer, Message::Blocks(std::mem::take(&mut batch)));
                batch_bytes = 0;
            }
            if let Some(state) = self.peers.get_mut(&peer) {
                state.known_blocks.insert(hash);
            }
            batch_bytes += bytes;
            batch.push(block.as_ref().clone());
        }
        if !batch.is_empty() {
            self.send(peer, Message::Blocks(batch));
        }
        if !missing.is_empty() {
            self.send(peer, Message::NotFound(missing));
        }
    }

    /// The peer lacks blocks we asked it for: ask someone else, never it again.
    fn on_not_found(&mut self, peer: PeerId, hashes: &[BlockHash], now: Timestamp) {
        let mut released = false;
        if let Some(state) = self.peers.get_mut(&peer) {
            for hash in hashes {
                if state.in_flight.remove(hash).is_some() {
                    state.avoid.insert(*hash);
                    if self.download.requested_from(hash) == Some(peer) {
                        self.download.release(hash);
                    }
                    released = true;
                }
            }
        }
        if released {
            self.schedule_downloads(now);
        }
    }

    fn on_blocks(&mut self, peer: PeerId, blocks: Vec<Block>, now: Timestamp) {
        if blocks.is_empty() {
            return;
        }
        for block in blocks {
            let hash = block.hash();
            let Some(state) = self.peers.get_mut(&peer) else {
                return;
            };
            // Asked of this peer, or asked and then given up on (late is not abuse).
            let asked = state.in_flight.remove(&hash).is_some() || state.avoid.contains(&hash);
            if !asked {
                return self.disconnect(peer, DisconnectReason::Unrequested("block"), now);
            }
            state.known_blocks.insert(hash);
            self.download.remove(&hash);
            match self.chain.import_block(block, now) {
                Ok(outcome) => {
                    self.stats.blocks_accepted += 1;
                    if let Placement::Orphan { missing } = outcome.placement
                        && !self.download.contains(&missing)
                        && self.header_sync.is_none()
                    {
                        self.request_headers(peer, None, now);
                    }
                    if let Some(change) = outcome.tip_change {
                        self.on_tip_change(&change, Some(peer), now);
                    }
                }
                Err(ImportError::Store(error)) => {
                    return self.event(Event::StoreFailed(error.to_string()));
                }
                Err(ImportError::Invalid { error, .. }) if !error.blames_sender() => {
                    // Not the sender's fault for sure (our clock, our bookkeeping): drop the
                    // block without blaming the peer. A body too big or not matching its
                    // header is the sender's doing: that falls to the arm below (the hostile
                    // peer suite found such a peer kept, and asked again and again).
                    self.stats.blocks_rejected += 1;
                    self.download.remove_with_descendants(&hash);
                }
                Err(error) => {
                    self.stats.blocks_rejected += 1;
                    self.download.remove_with_descendants(&hash);
                    return self.disconnect(
                        peer,
                        DisconnectReason::InvalidBlock(error.to_string()),
                        now,
                    );
                }
            }
        }
        self.report_progress(now);
        self.schedule_downloads(now);
    }

    fn report_progress(&mut self, now: Timestamp) {
        let (since, from) = self.progress;
        if self.download.len() == 0 {
            self.progress = (now, self.chain.tip().height);
            return;
        }
        let elapsed = now.ms_since(since);
        if elapsed < self.config.progress_interval_ms {
            return;
        }
        let height = self.chain.tip().height;
        let blocks = height.0.saturating_sub(from.0);
        self.progress = (now, height);
        self.event(Event::SyncProgress {
            height,
            remaining: self.download.len(),
            blocks_per_sec: blocks as f64 * 1_000.0 / elapsed.max(1) as f64,
        });
    }

    /// Hands wanted blocks to peers that have them, up to each peer's in-flight bound and
    /// within the window above the tip.
    fn schedule_downloads(&mut self, now: Timestamp) {
        if self.download.len() == 0 {
            return;
        }
        let per_peer = self.config.blocks_in_flight_per_peer_max;
        let height_max = Height(
            self.chain
                .tip()
                .height
                .0
                .saturating_add(self.config.download_window_blocks),
        );
        let peer_ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peer_ids {
            let Some(state) = self.peers.get(&peer) else {
                continue;
            };
            let room = per_peer
                .saturating_sub(state.in_flight.len())
                .min(BLOCKS_PER_MESSAGE_MAX);
            if !state.is_ready() || room == 0 {
                continue;
            }
            let peer_work = state.tip.map_or(Work(0), |tip| tip.work);
            let batch = self.download.pick(
                peer,
                room,
                self.config.schedule_scan_max,
                height_max,
                now,
                |hash, wanted| {
                    !state.avoid.contains(hash)
                        && (wanted.chain_work <= peer_work || state.known_blocks.contains(hash))
                },
            );
            if batch.is_empty() {
                continue;
            }
            if let Some(state) = self.peers.get_mut(&peer) {
                for hash in &batch {
                    state.in_flight.insert(*hash, now);
                }
            }
            self.send(peer, Message::GetBlocks(batch));
        }
    }

    fn on_transactions(&mut self, peer: PeerId, transfers: Vec<Transfer>, now: Timestamp) {
        let mut accepted = Vec::new();
        for transfer in transfers {
            let id = transfer.id();
            if let Some(state) = self.peers.get_mut(&peer) {
                state.known_txs.insert(id);
            }
            if self.mempool.contains(&id) {
                continue;
            }
            let spec = self.chain.spec().clone();
            let chain_id = self.chain.chain_id();
            match self
                .mempool
                .add(transfer.clone(), self.chain.store(), &spec, &chain_id, now)
            {
                Ok((_, evicted)) => {
                    self.report_dropped(evicted);
                    self.stats.transfers_accepted += 1;
                    self.event(Event::TransferAccepted {
                        id,
                        from: Some(peer),
                    });
                    accepted.push(transfer);
                }
                Err(MempoolError::Tx(TxError::BadSignature)) => {
                    return self.disconnect(
                        peer,
                        DisconnectReason::InvalidTransaction("bad signature".into()),
                        now,
                    );
                }
                Err(MempoolError::Store(error)) => {
                    return self.event(Event::StoreFailed(error.to_string()));
                }
                // Stale nonces, spent balances, a full pool: normal in a network, not abuse.
                Err(_) => {}
            }
        }
        self.relay(accepted);
        self.remine_soon(now);
    }

    /// Sends transfers to every ready peer that does not know them yet.
    fn relay(&mut self, transfers: Vec<Transfer>) {
        if transfers.is_empty() {
            return;
        }
        let ids: Vec<TxId> = transfers.iter().map(Transfer::id).collect();
        let peer_ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peer_ids {
            let Some(state) = self.peers.get_mut(&peer) else {
                continue;
            };
            if !state.is_ready() {
                continue;
            }
            let fresh: Vec<Transfer> = transfers
                .iter()
                .zip(&ids)
                .filter(|(_, id)| state.known_txs.insert(**id))
                .map(|(transfer, _)| transfer.clone())
                .collect();
            for chunk in fresh.chunks(TRANSFERS_PER_MESSAGE_MAX) {
                self.send(peer, Message::Transactions(chunk.to_vec()));
            }
        }
    }

    // ---- the chain moved ----------------------------------------------------------------

    fn on_tip_change(&mut self, change: &TipChange, from: Option<PeerId>, now: Timestamp) {
        if !change.disconnected.is_empty() {
            self.stats.reorgs += 1;
        }
        let spec = self.chain.spec().clone();
        match self
            .mempool
            .on_tip_change(change, self.chain.store(), &spec, now)
        {
            Ok(removed) => self.report_dropped(removed),
            Err(error) => self.event(Event::StoreFailed(error.to_string())),
        }
        // Transfers of blocks that left the best chain are pending again: pass them on, so
        // the miners of the winning branch can include them.
        let returned: Vec<Transfer> = change
            .disconnected
            .iter()
            .flat_map(|block| block.txs.iter().filter_map(|tx| tx.as_transfer()))
            .filter(|transfer| self.mempool.contains(&transfer.id()))
            .cloned()
            .collect();
        self.relay(returned);
        let tip = self.chain.tip();
        self.event(Event::TipChanged {
            hash: tip.hash,
            height: tip.height,
            disconnected: change.disconnected.len(),
            connected: change.connected.len(),
            from,
        });
        // Announce the new tip to every peer that does not have it, at once.
        let header = tip.header;
        let peer_ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peer_ids {
            if let Some(state) = self.peers.get_mut(&peer)
                && state.is_ready()
                && state.known_blocks.insert(tip.hash)
            {
                self.send(peer, Message::Announce { header });
            }
        }
        self.remine(now);
    }

    /// Tells of every transfer that left the mempool without being confirmed.
    fn report_dropped(&mut self, removed: Vec<(TxId, Removal)>) {
        for (id, reason) in removed {
            if reason != Removal::Confirmed {
                self.event(Event::TransferDropped { id, reason });
            }
        }
    }

    /// Keeps the miner on the current tip when automine (or a pending `Mine`) is on.
    /// New transfers: refresh the template now if the last one is old enough, else at a
    /// later tick. Building a template hashes every transfer it holds; doing it for every
    /// arriving transfer made a busy mempool cost quadratic time.
    fn remine_soon(&mut self, now: Timestamp) {
        if !(self.automine || self.mine_once) {
            return;
        }
        if now.ms_since(self.last_template) >= self.config.template_refresh_ms {
            self.remine(now);
        } else {
            self.template_stale = true;
        }
    }

    fn remine(&mut self, now: Timestamp) {
        self.template_stale = false;
        if !(self.automine || self.mine_once) {
            return;
        }
        self.last_template = now;
        if self.mine_once && !self.automine && self.mempool.is_empty() {
            self.mine_once = false;
            self.outputs.push_back(Output::Mine(None));
            return;
        }
        let template = self.template(now);
        self.outputs.push_back(Output::Mine(template));
    }

    fn template(&mut self, now: Timestamp) -> Option<Block> {
        let miner = self.config.mining_address();
        let extra_nonce = self.rng.random();
        match self
            .chain
            .block_template(&self.mempool, miner, now, extra_nonce)
        {
            Ok(template) => Some(template.block),
            Err(error) => {
                self.event(Event::StoreFailed(error.to_string()));
                None
            }
        }
    }

    /// A block from this node's miner.
    pub fn block_mined(&mut self, block: Block, now: Timestamp) {
        let hash = block.hash();
        let txs = block.txs.len();
        match self.chain.import_block(block, now) {
            Ok(outcome) => {
                if outcome.placement == Placement::BestChain {
                    self.stats.blocks_mined += 1;
                    self.event(Event::Mined {
                        hash,
                        height: self.chain.tip().height,
                        txs,
                    });
                }
                if self.mine_once && !self.automine {
                    self.mine_once = false;
                    self.outputs.push_back(Output::Mine(None));
                }
                if let Some(change) = outcome.tip_change {
                    self.on_tip_change(&change, None, now);
                }
            }
            Err(ImportError::Store(error)) => self.event(Event::StoreFailed(error.to_string())),
            // A stale template (the tip moved meanwhile) or a bad clock: mine again.
            Err(_) => self.remine(now),
        }
    }

    // ---- the user -----------------------------------------------------------------------

    /// A user command.
    pub fn command(&mut self, command: Command, now: Timestamp) {
        match command {
            Command::Connect(address) => {
                self.addresses.add(&address);
                self.dial(&address, now);
            }
            Command::Disconnect(peer) => self.disconnect(peer, DisconnectReason::UserRequest, now),
            Command::Echo { peer, message } => {
                if self.peers.get(&peer).is_some_and(Peer::is_ready) {
                    self.send(peer, Message::EchoRequest { message });
                }
            }
            Command::SyncWith(peer) => {
                if let Some(state) = self.peers.get_mut(&peer)
                    && state.is_ready()
                {
                    state.addresses_requested = Some(true);
                    self.send(peer, Message::GetAddresses);
                    self.request_headers(peer, None, now);
                }
            }
            Command::SubmitTransfer(transfer) => {
                if let Err(error) = self.submit_transfer(transfer, now) {
                    self.event(Event::TransferRefused { error });
                }
            }
            Command::MineOnce => {
                if self.mempool.is_empty() {
                    self.event(Event::NothingToMine);
                } else {
                    self.mine_once = true;
                    self.remine(now);
                }
            }
            Command::Automine(on) => {
                self.automine = on;
                if on {
                    self.remine(now);
                } else if !self.mine_once {
                    self.outputs.push_back(Output::Mine(None));
                }
            }
            Command::Shutdown => {
                self.save_addresses(now);
                let peer_ids: Vec<PeerId> = self.peers.keys().copied().collect();
                for peer in peer_ids {
                    self.disconnect(peer, DisconnectReason::Shutdown, now);
                }
                self.outputs.push_back(Output::Mine(None));
            }
        }
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

    /// `MakeTransaction`, answered at once: the transfer enters the mempool and is relayed,
    /// or the reason it cannot.
    pub fn submit_transfer(
        &mut self,
        transfer: Transfer,
        now: Timestamp,
    ) -> Result<TxId, MempoolError> {
        let spec = self.chain.spec().clone();
        let chain_id = self.chain.chain_id();
        let (id, evicted) =
            self.mempool
                .add(transfer.clone(), self.chain.store(), &spec, &chain_id, now)?;
        self.report_dropped(evicted);
        self.stats.transfers_accepted += 1;
        self.event(Event::TransferAccepted { id, from: None });
        self.relay(vec![transfer]);
        self.remine_soon(now);
        Ok(id)
    }

    // ---- time ---------------------------------------------------------------------------

    /// Time passed: handshake and ping timeouts, the status poll, request timeouts,
    /// reconnections, gossip.
    pub fn tick(&mut self, now: Timestamp) {
        let config = TickLimits::from(&self.config);
        let mut expired = Vec::new();
        let mut pings = Vec::new();
        let mut stale_requests = Vec::new();
        for (id, peer) in &mut self.peers {
            if !peer.is_ready() {
                if now.ms_since(peer.connected_at) > config.handshake_timeout_ms {
                    expired.push((*id, DisconnectReason::HandshakeTimeout));
                }
                continue;
            }
            if let Some((_, sent)) = peer.ping {
                if now.ms_since(sent) > config.ping_timeout_ms {
                    expired.push((*id, DisconnectReason::PingTimeout));
                    continue;
                }
            } else if now.ms_since(peer.last_ping) >= config.ping_interval_ms {
                pings.push(*id);
            }
            if peer
                .headers_requested
                .is_some_and(|asked| now.ms_since(asked) > config.headers_timeout_ms)
            {
                expired.push((*id, DisconnectReason::Stalled));
                continue;
            }
            let late: Vec<BlockHash> = peer
                .in_flight
                .iter()
                .filter(|(_, asked)| now.ms_since(**asked) > config.block_request_timeout_ms)
                .map(|(hash, _)| *hash)
                .collect();
            if !late.is_empty() {
                for hash in &late {
                    peer.in_flight.remove(hash);
                    peer.avoid.insert(*hash);
                }
                stale_requests.push((*id, late));
            }
        }
        for (peer, reason) in expired {
            self.disconnect(peer, reason, now);
        }
        for peer in pings {
            let nonce = self.rng.random();
            if let Some(state) = self.peers.get_mut(&peer) {
                state.ping = Some((nonce, now));
                state.last_ping = now;
            }
            self.send(peer, Message::Ping { nonce });
        }
        // A peer that let a block request time out is dropped (not banned: it may only be
        // slow); its blocks go to others, and it may come back later.
        for (peer, late) in stale_requests {
            for hash in late {
                if self.download.requested_from(&hash) == Some(peer) {
                    self.download.release(&hash);
                }
            }
            self.disconnect(peer, DisconnectReason::Stalled, now);
        }
        self.dialing
            .retain(|_, since| now.ms_since(*since) <= config.handshake_timeout_ms * 3);
        if let Some(address) = &self.feeler_dialing
            && !self.dialing.contains_key(address)
        {
            self.feeler_dialing = None;
        }
        if self.template_stale
            && now.ms_since(self.last_template) >= self.config.template_refresh_ms
        {
            self.remine(now);
        }
        self.keep_outbound(now);
        self.keep_feeler(now);
        self.schedule_downloads(now);
        self.report_progress(now);
        if now.ms_since(self.last_saved) >= ADDRESSES_SAVE_INTERVAL_MS {
            self.save_addresses(now);
        }
    }

    /// Closes a feeler that has nothing more to give, and opens the next one when it is time
    /// and the outbound slots are full (see the module docs).
    fn keep_feeler(&mut self, now: Timestamp) {
        let ours = self.chain.tip().chain_work;
        let linger_ms = self.config.handshake_timeout_ms;
        let done: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.feeler
                    && p.is_ready()
                    && now.ms_since(p.connected_at) >= linger_ms
                    && p.headers_requested.is_none()
                    && p.in_flight.is_empty()
                    && p.tip.is_none_or(|tip| {
                        tip.work <= ours || self.chain.tree().get(&tip.hash).is_some()
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in done {
            self.disconnect(peer, DisconnectReason::FeelerDone, now);
        }
        let interval = self.config.feeler_interval_ms;
        let feeler_open = self.feeler_dialing.is_some() || self.peers.values().any(|p| p.feeler);
        if interval == 0
            || self.config.outbound_target == 0
            || feeler_open
            || now.ms_since(self.last_feeler) < interval
            || self.outbound_count() < self.config.outbound_target
        {
            return;
        }
        self.last_feeler = now;
        let skip = connected_addresses(&self.peers, &self.dialing);
        let listen = self.config.listen.as_deref();
        // Uniformly among the candidates, not best first: after a partition the addresses
        // across it are the ones that failed.
        let pick = self
            .addresses
            .random_candidate(now, &mut self.rng, |address| {
                skip.contains(address) || Some(address) == listen
            });
        if let Some(address) = pick {
            self.feeler_dialing = Some(address.clone());
            self.dial(&address, now);
        }
    }

    /// Outbound connections open or being dialled, feelers not counted.
    fn outbound_count(&self) -> usize {
        let open = self
            .peers
            .values()
            .filter(|p| p.info.direction == Direction::Outbound && !p.feeler)
            .count();
        let feeler_dialing = self
            .feeler_dialing
            .as_ref()
            .is_some_and(|address| self.dialing.contains_key(address));
        open + self.dialing.len() - usize::from(feeler_dialing)
    }

    /// Dials known addresses until the outbound target is reached; now and then asks a
    /// random peer for addresses (gossip).
    fn keep_outbound(&mut self, now: Timestamp) {
        let outbound = self.outbound_count();
        if outbound < self.config.outbound_target {
            let connected = connected_addresses(&self.peers, &self.dialing);
            let listen = self.config.listen.as_deref();
            let candidates = self.addresses.candidates(now, &mut self.rng, |address| {
                connected.contains(address) || Some(address) == listen
            });
            for address in candidates
                .into_iter()
                .take(self.config.outbound_target - outbound)
            {
                self.dial(&address, now);
            }
        }
        let ready: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_ready() && p.addresses_requested.is_none())
            .map(|(id, _)| *id)
            .collect();
        let gossip_due = now.ms_since(self.last_gossip) >= self.config.ping_interval_ms;
        if gossip_due
            && !ready.is_empty()
            && self.addresses.len() < self.config.address_book_max / 2
        {
            self.last_gossip = now;
            let peer = ready[self.rng.random_range(0..ready.len())];
            if let Some(state) = self.peers.get_mut(&peer) {
                state.addresses_requested = Some(false);
            }
            self.send(peer, Message::GetAddresses);
        }
    }
}

impl NodeConfig {
    /// Where this node's blocks pay: dev account 0 unless configured otherwise.
    fn mining_address(&self) -> powchain_chain::Address {
        self.miner_address
            .unwrap_or_else(|| powchain_chain::Keypair::dev(0).address())
    }
}

/// Addresses we are connected to (as dialled, and as the peers say they listen) or
/// dialling.
fn connected_addresses<'a>(
    peers: &'a BTreeMap<PeerId, Peer>,
    dialing: &'a HashMap<String, Timestamp>,
) -> HashSet<&'a str> {
    peers
        .values()
        .flat_map(|p| {
            [
                Some(p.info.address.as_str()),
                p.hello.as_ref().and_then(|h| h.listen.as_deref()),
            ]
        })
        .flatten()
        .chain(dialing.keys().map(String::as_str))
        .collect()
}

/// The timeouts `tick` checks, copied out of the config so the peers can be walked mutably
/// (cheaper than cloning the config, strings and all, every tick).
#[derive(Clone, Copy)]
struct TickLimits {
    handshake_timeout_ms: u64,
    ping_timeout_ms: u64,
    ping_interval_ms: u64,
    headers_timeout_ms: u64,
    block_request_timeout_ms: u64,
}

impl From<&NodeConfig> for TickLimits {
    fn from(config: &NodeConfig) -> TickLimits {
        TickLimits {
            handshake_timeout_ms: config.handshake_timeout_ms,
            ping_timeout_ms: config.ping_timeout_ms,
            ping_interval_ms: config.ping_interval_ms,
            headers_timeout_ms: config.headers_timeout_ms,
            block_request_timeout_ms: config.block_request_timeout_ms,
        }
    }
}
