//! What the node asks its driver to do ([`Output`]), what it tells the user ([`Event`]), and
//! the [`Outbox`] every manager writes them into, in the order they happen.

use std::collections::{BTreeMap, VecDeque};

use powchain_chain::{Block, BlockHash, Height, MempoolError, Removal, Timestamp, TxId};

use crate::message::Message;
use crate::peer::{Direction, DisconnectReason, PeerId};

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
        /// The peer's node number, if it said one.
        number: Option<u32>,
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
    /// An address the user gave was forgotten: it never answered.
    AddressForgotten {
        /// The address.
        address: String,
        /// Failed dials to it.
        failures: u32,
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
    /// Read nothing more from this peer before `until`: it is over its message budget
    /// (frames already read are still handed in). Reading resumes by itself.
    PauseReading {
        /// Which.
        peer: PeerId,
        /// Until when.
        until: Timestamp,
    },
    /// Mine this template (replacing any current work), or stop mining with `None`.
    Mine(Option<Block>),
    /// Tell the user.
    Event(Event),
}

/// The earlier of two optional instants: how the managers' next deadlines combine.
pub(crate) fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Instants something was asked at, as a multiset kept in order, so the earliest of many
/// outstanding requests is one lookup instead of a walk over every peer. The earliest is
/// also kept beside the map: `Node::poll_timeout` reads it after every input, and at a
/// thousand simulated nodes the map itself is rarely in the cache.
#[derive(Debug, Default)]
pub(crate) struct Instants {
    counts: BTreeMap<Timestamp, u32>,
    earliest: Option<Timestamp>,
}

impl Instants {
    pub fn add(&mut self, at: Timestamp) {
        *self.counts.entry(at).or_default() += 1;
        self.earliest = Some(self.earliest.map_or(at, |first| first.min(at)));
    }

    /// Forgets one request made `at` (one that [`Instants::add`] counted).
    pub fn remove(&mut self, at: Timestamp) {
        if let Some(count) = self.counts.get_mut(&at) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&at);
                self.earliest = self.counts.first_key_value().map(|(first, _)| *first);
            }
        }
    }

    pub fn earliest(&self) -> Option<Timestamp> {
        self.earliest
    }
}

/// Everything the node has to say, oldest first: one queue for every manager, so the driver
/// carries the outputs out in exactly the order the node decided them.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    outputs: VecDeque<Output>,
}

impl Outbox {
    /// Sends `message` to `peer`.
    pub fn send(&mut self, peer: PeerId, message: Message) {
        self.outputs.push_back(Output::Send { peer, message });
    }

    /// Tells the user.
    pub fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Any other output.
    pub fn push(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    /// Takes everything, oldest first.
    pub fn drain(&mut self) -> Vec<Output> {
        self.outputs.drain(..).collect()
    }
}
