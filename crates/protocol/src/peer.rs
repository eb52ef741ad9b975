//! What the node knows about each connected peer, and why it may be disconnected.

use std::collections::{BTreeMap, VecDeque};

use powchain_chain::hashing::HashSet;
use std::fmt;
use std::hash::Hash;

use powchain_chain::{BlockHash, Timestamp, TxId};

use crate::message::{Hello, TipSummary};

/// The driver's number for a connection. Never reused while the node runs.
pub type PeerId = u64;

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer connected to us.
    Inbound,
    /// We connected to the peer.
    Outbound,
}

/// What the driver tells the node about a new connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The address, for logs; for an outbound connection, the address dialed.
    pub address: String,
    /// What a ban applies to (the driver's choice: an IP, or the address itself).
    pub ban_key: String,
    /// Who opened the connection.
    pub direction: Direction,
}

/// Why the node closes a connection. Misbehaviour also refuses the peer for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer speaks another protocol version.
    ProtocolVersion {
        /// Ours.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// The peer is on another network.
    WrongGenesis {
        /// Our genesis.
        ours: BlockHash,
        /// Theirs.
        theirs: BlockHash,
    },
    /// The peer is this node.
    SelfConnection,
    /// Already connected to this node id.
    DuplicateConnection,
    /// No hello within the handshake timeout.
    HandshakeTimeout,
    /// No pong within the ping timeout.
    PingTimeout,
    /// Block requests to the peer kept timing out.
    Stalled,
    /// Too many inbound connections.
    TooManyInbound,
    /// The peer is refused for misbehaving earlier.
    Banned,
    /// Bytes that are not a message, or a message over its bounds.
    BadMessage(String),
    /// A message that is not allowed at this point (before the hello, a second hello…).
    ProtocolViolation(&'static str),
    /// Headers that do not connect or lack proof of work.
    InvalidHeaders(String),
    /// A block that breaks the rules.
    InvalidBlock(String),
    /// A transfer with a bad signature.
    InvalidTransaction(String),
    /// Data nobody asked for.
    Unrequested(&'static str),
    /// More messages than the per-second limit.
    Flood,
    /// The peer said goodbye.
    PeerGoodbye(String),
    /// A feeler connection did its job (see `Node`'s module docs).
    FeelerDone,
    /// The user asked.
    UserRequest,
    /// The node is shutting down.
    Shutdown,
}

impl DisconnectReason {
    /// Whether the peer is refused for a while after this. A handshake that does not finish
    /// in time is not: a slow or lossy link does that to honest peers (the simulator's
    /// high-latency scenario caught honest nodes banning each other for it); the slot is
    /// freed and an outbound address backs off, which is all a silent peer costs.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            DisconnectReason::BadMessage(_)
                | DisconnectReason::ProtocolViolation(_)
                | DisconnectReason::InvalidHeaders(_)
                | DisconnectReason::InvalidBlock(_)
                | DisconnectReason::InvalidTransaction(_)
                | DisconnectReason::Unrequested(_)
                | DisconnectReason::Flood
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::ProtocolVersion { ours, theirs } => {
                write!(f, "protocol version {theirs}, this node speaks {ours}")
            }
            DisconnectReason::WrongGenesis { ours, theirs } => write!(
                f,
                "another network: genesis {}, this node's is {}",
                theirs.short(16),
                ours.short(16)
            ),
            DisconnectReason::SelfConnection => f.write_str("connected to itself"),
            DisconnectReason::DuplicateConnection => f.write_str("already connected to that node"),
            DisconnectReason::HandshakeTimeout => f.write_str("no handshake in time"),
            DisconnectReason::PingTimeout => f.write_str("no answer to ping in time"),
            DisconnectReason::Stalled => f.write_str("block requests keep timing out"),
            DisconnectReason::TooManyInbound => f.write_str("too many inbound connections"),
            DisconnectReason::Banned => f.write_str("refused for earlier misbehaviour"),
            DisconnectReason::BadMessage(why) => write!(f, "bad message: {why}"),
            DisconnectReason::ProtocolViolation(why) => write!(f, "protocol violation: {why}"),
            DisconnectReason::InvalidHeaders(why) => write!(f, "invalid headers: {why}"),
            DisconnectReason::InvalidBlock(why) => write!(f, "invalid block: {why}"),
            DisconnectReason::InvalidTransaction(why) => write!(f, "invalid transaction: {why}"),
            DisconnectReason::Unrequested(what) => write!(f, "unrequested {what}"),
            DisconnectReason::Flood => f.write_str("too many messages"),
            DisconnectReason::PeerGoodbye(why) => write!(f, "peer said goodbye: {why}"),
            DisconnectReason::FeelerDone => {
                f.write_str("feeler connection: address checked, nothing to sync")
            }
            DisconnectReason::UserRequest => f.write_str("asked by the user"),
            DisconnectReason::Shutdown => f.write_str("shutting down"),
        }
    }
}

/// A set that forgets its oldest members beyond a bound.
#[derive(Clone, Debug)]
pub struct BoundedSet<T: Eq + Hash + Copy> {
    members: HashSet<T>,
    order: VecDeque<T>,
    max: usize,
}

impl<T: Eq + Hash + Copy> BoundedSet<T> {
    /// An empty set of at most `max` members.
    pub fn new(max: usize) -> BoundedSet<T> {
        BoundedSet {
            members: HashSet::default(),
            order: VecDeque::new(),
            max,
        }
    }

    /// Adds `value`; returns whether it was new.
    pub fn insert(&mut self, value: T) -> bool {
        if self.max == 0 || !self.members.insert(value) {
            return false;
        }
        self.order.push_back(value);
        while self.order.len() > self.max {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
        true
    }

    /// Whether `value` is a member.
    pub fn contains(&self, value: &T) -> bool {
        self.members.contains(value)
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

/// A connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub info: PeerInfo,
    pub connected_at: Timestamp,
    /// Its hello, once received: the peer is ready from then on.
    pub hello: Option<Hello>,
    /// The best tip it has told us about.
    pub tip: Option<TipSummary>,
    /// The outstanding ping: nonce and when it was sent.
    pub ping: Option<(u64, Timestamp)>,
    pub last_ping: Timestamp,
    /// Blocks and transactions it has, or has been sent: never sent twice.
    pub known_blocks: BoundedSet<BlockHash>,
    pub known_txs: BoundedSet<TxId>,
    /// Blocks requested from it, and when.
    pub in_flight: BTreeMap<BlockHash, Timestamp>,
    /// Blocks it did not deliver in time or said it lacks: not asked of it again, and
    /// accepted without complaint if they come late.
    pub avoid: BoundedSet<BlockHash>,
    /// When the unanswered `GetHeaders` to it was sent.
    pub headers_requested: Option<Timestamp>,
    /// Headers answers in a row that did not connect to anything we know.
    pub unconnected_headers: u32,
    /// Whether a `GetAddresses` to it is unanswered, and whether to connect to the answer.
    pub addresses_requested: Option<bool>,
    /// Messages in the current one-second window.
    pub window: (Timestamp, u32),
    /// An outbound connection opened to test its address and compare tips, closed once it
    /// has nothing more to give; it does not count toward the outbound target.
    pub feeler: bool,
    /// The last ping's round trip, in milliseconds.
    pub rtt_ms: Option<u64>,
    /// Frame bytes received from the peer and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Peer {
    pub fn new(info: PeerInfo, now: Timestamp, known_max: usize) -> Peer {
        Peer {
            info,
            connected_at: now,
            hello: None,
            tip: None,
            ping: None,
            last_ping: now,
            known_blocks: BoundedSet::new(known_max),
            known_txs: BoundedSet::new(known_max),
            in_flight: BTreeMap::new(),
            avoid: BoundedSet::new(known_max),
            headers_requested: None,
            unconnected_headers: 0,
            addresses_requested: None,
            window: (now, 0),
            feeler: false,
            rtt_ms: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Whether the handshake is done.
    pub fn is_ready(&self) -> bool {
        self.hello.is_some()
    }

    /// Counts a message; false when the peer is over `per_second_max`.
    pub fn count_message(&mut self, now: Timestamp, per_second_max: u32) -> bool {
        if now.ms_since(self.window.0) >= 1_000 {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        self.window.1 <= per_second_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_set_forgets_the_oldest() {
        let mut set = BoundedSet::new(2);
        assert!(set.insert(1));
        assert!(!set.insert(1));
        assert!(set.insert(2));
        assert!(set.insert(3));
        assert!(!set.contains(&1));
        assert!(set.contains(&2) && set.contains(&3));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn misbehaviour_is_what_gets_a_ban() {
        assert!(DisconnectReason::Flood.is_misbehaviour());
        assert!(DisconnectReason::InvalidBlock("x".into()).is_misbehaviour());
        assert!(!DisconnectReason::SelfConnection.is_misbehaviour());
        assert!(!DisconnectReason::Shutdown.is_misbehaviour());
        assert!(
            !DisconnectReason::WrongGenesis {
                ours: BlockHash::ZERO,
                theirs: BlockHash::ZERO
            }
            .is_misbehaviour()
        );
    }
}
