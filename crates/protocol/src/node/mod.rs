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
//!     ├─ connections  handshake, slots, bans, dials, feelers      connections.rs
//!     ├─ addresses    the book, gossip, saving it                  addresses.rs
//!     ├─ liveness     pings and their timeouts                     liveness.rs
//!     ├─ sync         header sync, block download, serving         sync/
//!     ├─ inventory    known blocks and transfers, relay, announce  inventory.rs
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
mod config;
mod connections;
mod inventory;
mod liveness;
mod mining;
mod outbox;
mod summary;
mod sync;

use powchain_chain::chain::TipChange;
use powchain_chain::{
    Block, BlockHash, Chain, Height, ImportError, Mempool, MempoolError, Placement, Removal, Store,
    Timestamp, Transfer, TxError, TxId,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::address_book::AddressBook;
use crate::frame::Received;
use crate::message::{Hello, Message, PROTOCOL_VERSION, REASON_BYTES_MAX, TipSummary};
use crate::peer::{Direction, DisconnectReason, PeerId, PeerInfo, Unasked, Violation};
use addresses::Addresses;
use connections::{Connection, Connections};
use inventory::Inventory;
use liveness::{Liveness, Pinger};
use mining::{MiningControl, NextWork};
use outbox::Outbox;
use sync::{HeadersTaken, Overdue, Sync, serve};

pub use addresses::ADDRESSES_SAVE_INTERVAL_MS;
pub use command::Command;
pub use config::NodeConfig;
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
    mining: MiningControl,
    /// Every random choice (ping nonces, gossip targets, dial candidates, extra nonces):
    /// one seeded stream, so a run replays exactly.
    rng: ChaCha8Rng,
    out: Outbox,
    stats: NodeStats,
}

impl<S: Store> Node<S> {
    /// A node on `chain`; `seed` drives its random choices (ping nonces, gossip targets).
    /// Addresses the store kept from an earlier run become dial candidates again.
    pub fn new(config: NodeConfig, chain: Chain<S>, seed: u64) -> Node<S> {
        let kept = chain.store().peer_addresses().unwrap_or_default();
        Node {
            mempool: Mempool::new(config.mempool),
            connections: Connections::new(&config),
            addresses: Addresses::new(&config, kept),
            liveness: Pinger::new(&config),
            sync: Sync::new(&config),
            inventory: Inventory::new(&config),
            mining: MiningControl::new(&config),
            config,
            chain,
            rng: ChaCha8Rng::seed_from_u64(seed),
            out: Outbox::default(),
            stats: NodeStats::default(),
        }
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

    fn tip_summary(&self) -> TipSummary {
        let tip = self.chain.tip();
        TipSummary {
            hash: tip.hash,
            height: tip.height,
            work: tip.chain_work,
        }
    }

    // ---- connections -------------------------------------------------------------------

    /// Adds an address to dial when the node wants more peers (seed 003's peer list).
    pub fn add_address(&mut self, address: &str) {
        self.addresses.book.add(address);
    }

    /// A connection opened (either way). The node says hello, or refuses it.
    pub fn peer_connected(&mut self, peer: PeerId, info: PeerInfo, now: Timestamp) {
        if let Some(reason) = self.connections.open(peer, info, now) {
            return self.disconnect(peer, reason, now);
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            genesis: self.chain.chain_id(),
            node_id: self.config.node_id,
            listen: self.config.listen.clone(),
            tip: self.tip_summary(),
            agent: self.config.agent.clone(),
        };
        self.out.send(peer, Message::Hello(hello));
    }

    /// Dialling `address` failed.
    pub fn connect_failed(&mut self, address: &str, reason: &str, now: Timestamp) {
        self.connections.dial_failed(address);
        self.addresses.dial_failed(address, now);
        self.out.event(Event::ConnectFailed {
            address: address.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// A connection closed by the other side or the network.
    pub fn peer_disconnected(&mut self, peer: PeerId, now: Timestamp) {
        if let Some(connection) = self.connections.remove(peer) {
            self.forget_peer(peer, &connection, now);
            self.out.event(Event::PeerGone {
                peer,
                address: connection.info.address,
                reason: DisconnectReason::ConnectionClosed,
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
    fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason, now: Timestamp) {
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
    fn forget_peer(&mut self, peer: PeerId, connection: &Connection, now: Timestamp) {
        if connection.info.direction == Direction::Outbound && !connection.is_ready() {
            self.addresses.dial_failed(&connection.info.address, now);
        }
        self.addresses.peer_gone(peer);
        self.liveness.peer_gone(peer);
        self.inventory.peer_gone(peer);
        self.sync.peer_gone(peer);
        self.schedule_downloads(now);
    }

    // ---- messages ----------------------------------------------------------------------

    /// A frame from `peer`: one input per frame, whether it decoded or not. Its bytes are
    /// counted first (garbage counts too); bytes that are not a message within its bounds
    /// (`crate::frame` checked them) get a disconnect and a ban.
    pub fn frame_received(&mut self, peer: PeerId, frame: Received, now: Timestamp) {
        let bytes = frame.bytes as u64;
        self.stats.bytes_in += bytes;
        if let Some(connection) = self.connections.get_mut(peer) {
            connection.bytes_in += bytes;
        }
        match frame.message {
            Ok(message) => self.message_received(peer, message, now),
            Err(error) => self.disconnect(peer, DisconnectReason::BadMessage(error), now),
        }
    }

    fn message_received(&mut self, peer: PeerId, message: Message, now: Timestamp) {
        let per_second = self.config.messages_per_second_max;
        let Some(connection) = self.connections.get_mut(peer) else {
            return;
        };
        // Answers to our own requests do not count toward the flood limit (they are only
        // accepted when asked for); everything else does.
        let answer = matches!(
            message,
            Message::Blocks(_) | Message::Headers(_) | Message::NotFound(_)
        );
        if !answer && !connection.count_message(now, per_second) {
            return self.disconnect(peer, DisconnectReason::Flood, now);
        }
        let ready = connection.is_ready();
        match message {
            Message::Hello(hello) if !ready => self.on_hello(peer, hello, now),
            Message::Hello(_) => self.disconnect(
                peer,
                DisconnectReason::ProtocolViolation(Violation::SecondHello),
                now,
            ),
            Message::Goodbye { reason } => {
                // Seed 003: `exit` is answered by `bye`.
                let bye = Message::Goodbye {
                    reason: "bye".into(),
                };
                self.out.send(peer, bye);
                self.disconnect(peer, DisconnectReason::PeerGoodbye(reason), now);
            }
            _ if !ready => self.disconnect(
                peer,
                DisconnectReason::ProtocolViolation(Violation::BeforeHello),
                now,
            ),
            Message::Ping { nonce } => {
                let tip = self.tip_summary();
                self.out.send(peer, Message::Pong { nonce, tip });
            }
            Message::Pong { nonce, tip } => {
                self.liveness.pong(peer, nonce, now);
                self.sync.set_tip(peer, tip);
                self.sync
                    .maybe_sync_headers(peer, tip, &self.chain, now, &mut self.out);
            }
            Message::EchoRequest { message } => {
                self.out.event(Event::EchoRequested {
                    peer,
                    message: message.clone(),
                });
                self.out.send(peer, Message::EchoResponse { message });
            }
            Message::EchoResponse { message } => {
                self.out.event(Event::EchoReplied { peer, message });
            }
            Message::GetAddresses => self.on_get_addresses(peer),
            Message::Addresses(addresses) => self.on_addresses(peer, addresses, now),
            Message::Announce { header } => {
                self.inventory.know_block(peer, header.hash());
                match self
                    .sync
                    .announced(peer, header, &self.chain, now, &mut self.out)
                {
                    Ok(true) => self.schedule_downloads(now),
                    Ok(false) => {}
                    Err(refusal) => self.disconnect(peer, refusal.into(), now),
                }
            }
            Message::GetHeaders { locator } => {
                let headers = serve::headers_after(&self.chain, &locator);
                for header in &headers {
                    self.inventory.know_block(peer, header.hash());
                }
                self.out.send(peer, Message::Headers(headers));
            }
            Message::Headers(headers) => {
                let inventory = &mut self.inventory;
                let taken = self.sync.headers_received(
                    peer,
                    headers,
                    &self.chain,
                    now,
                    &mut self.out,
                    |hash| inventory.know_block(peer, hash),
                );
                match taken {
                    Ok(HeadersTaken::Queued) => self.schedule_downloads(now),
                    Ok(HeadersTaken::AskedAgain) => {}
                    Err(refusal) => self.disconnect(peer, refusal.into(), now),
                }
            }
            Message::GetBlocks(hashes) => self.on_get_blocks(peer, &hashes),
            Message::Blocks(blocks) => self.on_blocks(peer, blocks, now),
            Message::NotFound(hashes) => {
                if self.sync.not_found(peer, &hashes) {
                    self.schedule_downloads(now);
                }
            }
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
        let Some(connection) = self.connections.get(peer) else {
            return;
        };
        let info = connection.info.clone();
        let connected_at = connection.connected_at;
        if hello.node_id == self.config.node_id {
            if info.direction == Direction::Outbound {
                self.addresses.book.mark_self(&info.address);
            }
            return self.disconnect(peer, DisconnectReason::SelfConnection, now);
        }
        if self.connections.has_node(peer, hello.node_id) {
            return self.disconnect(peer, DisconnectReason::DuplicateConnection, now);
        }
        if info.direction == Direction::Outbound {
            self.addresses.book.mark_verified(&info.address);
        } else if let Some(listen) = &hello.listen {
            // Only a candidate until we have connected to it ourselves.
            self.addresses.book.add(listen);
        }
        let tip = hello.tip;
        self.out.event(Event::PeerReady {
            peer,
            address: info.address,
            direction: info.direction,
            node_id: hello.node_id,
            agent: hello.agent.clone(),
            height: tip.height,
        });
        if let Some(connection) = self.connections.get_mut(peer) {
            connection.hello = Some(hello);
        }
        // The peer is ready: every manager that keeps ready peers learns of it.
        self.liveness.peer_ready(peer, connected_at);
        self.sync.peer_ready(peer, tip);
        self.inventory.peer_ready(peer);
        self.inventory.know_block(peer, tip.hash);
        self.sync
            .maybe_sync_headers(peer, tip, &self.chain, now, &mut self.out);
    }

    fn on_get_addresses(&mut self, peer: PeerId) {
        let except: Vec<&str> = self
            .connections
            .get(peer)
            .map(|c| [Some(c.info.address.as_str()), c.listen()])
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        self.addresses.answer(
            peer,
            &except,
            self.config.listen.as_deref(),
            &mut self.rng,
            &mut self.out,
        );
    }

    fn on_addresses(&mut self, peer: PeerId, addresses: Vec<String>, now: Timestamp) {
        // Only answers are taken: unasked-for gossip is ignored, so it cannot flood the book.
        let Some(connect_now) = self.addresses.take_request(peer) else {
            return;
        };
        let mut new = 0;
        for address in addresses {
            if Some(&address) == self.config.listen.as_ref() {
                continue;
            }
            if self.addresses.book.add(&address) {
                new += 1;
            }
            if connect_now && self.connections.by_address(&address).is_none() {
                self.connections.dial(&address, now, &mut self.out);
            }
        }
        self.out.event(Event::AddressesLearned { peer, new });
    }

    /// Sends the requested blocks, split into messages that fit a frame.
    fn on_get_blocks(&mut self, peer: PeerId, hashes: &[BlockHash]) {
        let answer = serve::blocks(&self.chain, hashes);
        for batch in answer.batches {
            for block in &batch {
                self.inventory.know_block(peer, block.hash());
            }
            self.out.send(peer, Message::Blocks(batch));
        }
        if let Some(error) = answer.failed {
            return self.out.event(Event::StoreFailed(error.to_string()));
        }
        if !answer.missing.is_empty() {
            self.out.send(peer, Message::NotFound(answer.missing));
        }
    }

    fn on_blocks(&mut self, peer: PeerId, blocks: Vec<Block>, now: Timestamp) {
        if blocks.is_empty() {
            return;
        }
        for block in blocks {
            let hash = block.hash();
            // Asked of this peer, or asked and then given up on (late is not abuse).
            match self.sync.block_arrived(peer, &hash) {
                None => return,
                Some(false) => {
                    return self.disconnect(
                        peer,
                        DisconnectReason::Unrequested(Unasked::Block),
                        now,
                    );
                }
                Some(true) => {}
            }
            self.inventory.know_block(peer, hash);
            match self.chain.import_block(block, now) {
                Ok(outcome) => {
                    self.stats.blocks_accepted += 1;
                    if let Placement::Orphan { missing } = outcome.placement {
                        self.sync
                            .orphan_received(peer, &missing, &self.chain, now, &mut self.out);
                    }
                    if let Some(change) = outcome.tip_change {
                        self.on_tip_change(&change, Some(peer), now);
                    }
                }
                Err(ImportError::Store(error)) => {
                    return self.out.event(Event::StoreFailed(error.to_string()));
                }
                Err(ImportError::Invalid { error, .. }) if !error.blames_sender() => {
                    // Not the sender's fault for sure (our clock, our bookkeeping): drop the
                    // block without blaming the peer. A body too big or not matching its
                    // header is the sender's doing: that falls to the arm below (the hostile
                    // peer suite found such a peer kept, and asked again and again).
                    self.stats.blocks_rejected += 1;
                    self.sync.block_invalid(&hash);
                }
                Err(error) => {
                    self.stats.blocks_rejected += 1;
                    self.sync.block_invalid(&hash);
                    return self.disconnect(peer, DisconnectReason::InvalidBlock(error), now);
                }
            }
        }
        self.sync.report_progress(&self.chain, now, &mut self.out);
        self.schedule_downloads(now);
    }

    /// Hands wanted blocks to the peers that have them.
    fn schedule_downloads(&mut self, now: Timestamp) {
        let inventory = &self.inventory;
        self.sync
            .schedule(&self.chain, now, &mut self.out, |peer, hash| {
                inventory.knows_block(peer, hash)
            });
    }

    fn on_transactions(&mut self, peer: PeerId, transfers: Vec<Transfer>, now: Timestamp) {
        let mut accepted = Vec::new();
        for transfer in transfers {
            let id = transfer.id();
            self.inventory.know_tx(peer, id);
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
                    self.out.event(Event::TransferAccepted {
                        id,
                        from: Some(peer),
                    });
                    accepted.push(transfer);
                }
                Err(MempoolError::Tx(error @ TxError::BadSignature)) => {
                    return self.disconnect(peer, DisconnectReason::InvalidTransaction(error), now);
                }
                Err(MempoolError::Store(error)) => {
                    return self.out.event(Event::StoreFailed(error.to_string()));
                }
                // Stale nonces, spent balances, a full pool: normal in a network, not abuse.
                Err(_) => {}
            }
        }
        self.inventory.relay(&accepted, &mut self.out);
        self.transfers_arrived(now);
    }

    // ---- the chain moved ----------------------------------------------------------------

    /// The one chain of reactions to a new tip: mempool, then relay of the transfers that
    /// are pending again, then the announcement, then mining.
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
            Err(error) => self.out.event(Event::StoreFailed(error.to_string())),
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
        self.inventory.relay(&returned, &mut self.out);
        let tip = self.chain.tip();
        self.out.event(Event::TipChanged {
            hash: tip.hash,
            height: tip.height,
            disconnected: change.disconnected.len(),
            connected: change.connected.len(),
            from,
        });
        // Announce the new tip to every peer that does not have it, at once.
        let header = tip.header;
        self.inventory.announce(header, &mut self.out);
        self.remine(now);
    }

    /// Tells of every transfer that left the mempool without being confirmed.
    fn report_dropped(&mut self, removed: Vec<(TxId, Removal)>) {
        for (id, reason) in removed {
            if reason != Removal::Confirmed {
                self.out.event(Event::TransferDropped { id, reason });
            }
        }
    }

    // ---- mining ---------------------------------------------------------------------------

    /// New transfers: a new template now, or at a later tick (see `mining`).
    fn transfers_arrived(&mut self, now: Timestamp) {
        if self.mining.transfers_arrived(now) {
            self.remine(now);
        }
    }

    /// Gives the miner what mining control says it should work on now.
    fn remine(&mut self, now: Timestamp) {
        match self.mining.next_work(now, self.mempool.is_empty()) {
            NextWork::Keep => {}
            NextWork::Stop => self.out.push(Output::Mine(None)),
            NextWork::Template => {
                let template = self.template(now);
                self.out.push(Output::Mine(template));
            }
        }
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
                self.out.event(Event::StoreFailed(error.to_string()));
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
                    self.out.event(Event::Mined {
                        hash,
                        height: self.chain.tip().height,
                        txs,
                    });
                }
                if self.mining.block_found() == NextWork::Stop {
                    self.out.push(Output::Mine(None));
                }
                if let Some(change) = outcome.tip_change {
                    self.on_tip_change(&change, None, now);
                }
            }
            Err(ImportError::Store(error)) => self.out.event(Event::StoreFailed(error.to_string())),
            // A stale template (the tip moved meanwhile) or a bad clock: mine again.
            Err(_) => self.remine(now),
        }
    }

    // ---- the user -----------------------------------------------------------------------

    /// A user command.
    pub fn command(&mut self, command: Command, now: Timestamp) {
        match command {
            Command::Connect(address) => {
                self.addresses.book.add(&address);
                self.connections.dial(&address, now, &mut self.out);
            }
            Command::Disconnect(peer) => self.disconnect(peer, DisconnectReason::UserRequest, now),
            Command::Echo { peer, message } => {
                if self.connections.is_ready(peer) {
                    self.out.send(peer, Message::EchoRequest { message });
                }
            }
            Command::SyncWith(peer) => {
                if self.connections.is_ready(peer) {
                    self.addresses.request(peer, true, &mut self.out);
                    self.sync
                        .request_headers(peer, None, &self.chain, now, &mut self.out);
                }
            }
            Command::SubmitTransfer(transfer) => {
                if let Err(error) = self.submit_transfer(transfer, now) {
                    self.out.event(Event::TransferRefused { error });
                }
            }
            Command::MineOnce => {
                if self.mempool.is_empty() {
                    self.out.event(Event::NothingToMine);
                } else {
                    self.mining.mine_once();
                    self.remine(now);
                }
            }
            Command::Automine(on) => match self.mining.set_automine(on) {
                NextWork::Template => self.remine(now),
                NextWork::Stop => self.out.push(Output::Mine(None)),
                NextWork::Keep => {}
            },
            Command::Shutdown => {
                self.save_addresses(now);
                for peer in self.connections.ids() {
                    self.disconnect(peer, DisconnectReason::Shutdown, now);
                }
                self.out.push(Output::Mine(None));
            }
        }
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
        self.out.event(Event::TransferAccepted { id, from: None });
        self.inventory.relay(&[transfer], &mut self.out);
        self.transfers_arrived(now);
        Ok(id)
    }

    /// Keeps the verified addresses in the store for the next run.
    fn save_addresses(&mut self, now: Timestamp) {
        if let Some(keep) = self.addresses.save_now(now)
            && let Err(error) = self.chain.store().save_peer_addresses(&keep)
        {
            self.out.event(Event::StoreFailed(error.to_string()));
        }
    }

    // ---- time ---------------------------------------------------------------------------

    /// Time passed: handshake and ping timeouts, the status poll, request timeouts,
    /// reconnections, gossip, feelers, template refresh, saving the address book.
    pub fn tick(&mut self, now: Timestamp) {
        let handshake_timeout_ms = self.config.handshake_timeout_ms;
        let mut expired = Vec::new();
        let mut pings = Vec::new();
        let mut stale_requests = Vec::new();
        for (id, connection) in self.connections.iter() {
            if !connection.is_ready() {
                if now.ms_since(connection.connected_at) > handshake_timeout_ms {
                    expired.push((id, DisconnectReason::HandshakeTimeout));
                }
                continue;
            }
            match self.liveness.check(id, now) {
                Liveness::TimedOut => {
                    expired.push((id, DisconnectReason::PingTimeout));
                    continue;
                }
                Liveness::PingDue => pings.push(id),
                Liveness::Fine => {}
            }
            match self.sync.overdue(id, now) {
                Overdue::Headers => expired.push((id, DisconnectReason::Stalled)),
                Overdue::Blocks(late) => stale_requests.push((id, late)),
                Overdue::Nothing => {}
            }
        }
        for (peer, reason) in expired {
            self.disconnect(peer, reason, now);
        }
        for peer in pings {
            let nonce = self.rng.random();
            self.liveness.ping_sent(peer, nonce, now);
            self.out.send(peer, Message::Ping { nonce });
        }
        // A peer that let a block request time out is dropped (not banned: it may only be
        // slow); its blocks go to others, and it may come back later.
        for (peer, late) in stale_requests {
            self.sync.release(peer, &late);
            self.disconnect(peer, DisconnectReason::Stalled, now);
        }
        self.connections.expire_dials(now, handshake_timeout_ms * 3);
        if self.mining.refresh_due(now) {
            self.remine(now);
        }
        self.keep_outbound(now);
        self.keep_feeler(now);
        self.schedule_downloads(now);
        self.sync.report_progress(&self.chain, now, &mut self.out);
        if self.addresses.save_due(now) {
            self.save_addresses(now);
        }
    }

    /// Closes a feeler that has nothing more to give, and opens the next one when it is time
    /// and the outbound slots are full (see the module docs).
    fn keep_feeler(&mut self, now: Timestamp) {
        let linger_ms = self.config.handshake_timeout_ms;
        let done = self.connections.finished_feelers(now, linger_ms, |peer| {
            self.sync.has_nothing_from(peer, &self.chain)
        });
        for peer in done {
            self.disconnect(peer, DisconnectReason::FeelerDone, now);
        }
        let interval = self.config.feeler_interval_ms;
        if interval == 0
            || self.config.outbound_target == 0
            || self.connections.feeler_open()
            || now.ms_since(self.connections.last_feeler()) < interval
            || self.connections.outbound_count() < self.config.outbound_target
        {
            return;
        }
        self.connections.feeler_opened(now);
        let skip = self.connections.addresses_in_use();
        let listen = self.config.listen.as_deref();
        // Uniformly among the candidates, not best first: after a partition the addresses
        // across it are the ones that failed.
        let pick = self
            .addresses
            .book
            .random_candidate(now, &mut self.rng, |address| {
                skip.contains(address) || Some(address) == listen
            });
        if let Some(address) = pick {
            self.connections.dial_feeler(&address, now, &mut self.out);
        }
    }

    /// Dials known addresses until the outbound target is reached; now and then asks a
    /// random peer for addresses (gossip).
    fn keep_outbound(&mut self, now: Timestamp) {
        let outbound = self.connections.outbound_count();
        if outbound < self.config.outbound_target {
            let in_use = self.connections.addresses_in_use();
            let listen = self.config.listen.as_deref();
            let candidates = self
                .addresses
                .book
                .candidates(now, &mut self.rng, |address| {
                    in_use.contains(address) || Some(address) == listen
                });
            for address in candidates
                .into_iter()
                .take(self.config.outbound_target - outbound)
            {
                self.connections.dial(&address, now, &mut self.out);
            }
        }
        let ready: Vec<PeerId> = self
            .connections
            .iter()
            .filter(|(id, c)| c.is_ready() && !self.addresses.is_requested(*id))
            .map(|(id, _)| id)
            .collect();
        self.addresses
            .gossip(&ready, now, &mut self.rng, &mut self.out);
    }
}
