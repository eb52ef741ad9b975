//! Who a peer is to the driver (its id, address and direction), why the node may disconnect
//! it.

use std::fmt;

use powchain_chain::{BlockHash, ImportError, TxError, Work};

use crate::compact::CompactError;
use crate::message::MessageError;

pub use crate::bounded_set::BoundedSet;

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
    /// The peer did not answer a headers request in time.
    HeadersStalled,
    /// Too many inbound connections.
    TooManyInbound,
    /// Evicted to make room for a new inbound peer (see `node::eviction`).
    Evicted,
    /// The peer is refused for misbehaving earlier.
    Banned,
    /// Bytes that are not a message, or a message over its bounds.
    BadMessage(MessageError),
    /// A message that is not allowed at this point.
    ProtocolViolation(Violation),
    /// Headers that do not connect or lack proof of work.
    InvalidHeaders(HeaderFault),
    /// A block that breaks the rules.
    InvalidBlock(ImportError),
    /// A compact block, or an answer for its missing transfers, that no honest node sends.
    InvalidCompactBlock(CompactError),
    /// A transfer that no honest node would relay (one that breaks a rule whatever the
    /// state: [`TxError::breaks_the_rules`]).
    InvalidTransaction(TxError),
    /// Data nobody asked for.
    Unrequested(Unasked),
    /// More messages than the per-second limit.
    Flood,
    /// More refused transfers than the per-minute limit: each one cost us lookups.
    TooManyRefusedTransfers,
    /// More headers requests than the limit: each answer costs far more than the request.
    TooManyHeadersRequests,
    /// The peer said goodbye, with its own words.
    PeerGoodbye(String),
    /// The connection closed without a goodbye (the peer went away, or the network did).
    ConnectionClosed,
    /// The peer did not read what it asked for, and more was waiting for it than the
    /// transport keeps for one peer.
    SendQueueFull,
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
                | DisconnectReason::InvalidCompactBlock(_)
                | DisconnectReason::InvalidTransaction(_)
                | DisconnectReason::Unrequested(_)
                | DisconnectReason::Flood
                | DisconnectReason::TooManyHeadersRequests
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
            DisconnectReason::HeadersStalled => f.write_str("no headers in time"),
            DisconnectReason::TooManyInbound => f.write_str("too many inbound connections"),
            DisconnectReason::Evicted => f.write_str("evicted to make room for a new inbound peer"),
            DisconnectReason::Banned => f.write_str("refused for earlier misbehaviour"),
            DisconnectReason::BadMessage(why) => write!(f, "bad message: {why}"),
            DisconnectReason::ProtocolViolation(why) => write!(f, "protocol violation: {why}"),
            DisconnectReason::InvalidHeaders(why) => write!(f, "invalid headers: {why}"),
            DisconnectReason::InvalidBlock(why) => write!(f, "invalid block: {why}"),
            DisconnectReason::InvalidCompactBlock(why) => write!(f, "invalid compact block: {why}"),
            DisconnectReason::InvalidTransaction(TxError::BadSignature) => {
                f.write_str("invalid transaction: bad signature")
            }
            DisconnectReason::InvalidTransaction(why) => write!(f, "invalid transaction: {why}"),
            DisconnectReason::Unrequested(what) => write!(f, "unrequested {what}"),
            DisconnectReason::Flood => f.write_str("too many messages"),
            DisconnectReason::TooManyRefusedTransfers => {
                f.write_str("too many transfers this node had to refuse")
            }
            DisconnectReason::TooManyHeadersRequests => {
                f.write_str("asks for headers faster than any syncing node does")
            }
            DisconnectReason::PeerGoodbye(why) => write!(f, "peer said goodbye: {why}"),
            DisconnectReason::ConnectionClosed => f.write_str("the connection closed"),
            DisconnectReason::SendQueueFull => {
                f.write_str("it does not read what it is sent (its send queue is full)")
            }
            DisconnectReason::FeelerDone => {
                f.write_str("feeler connection: address checked, nothing to sync")
            }
            DisconnectReason::UserRequest => f.write_str("asked by the user"),
            DisconnectReason::Shutdown => f.write_str("shutting down"),
        }
    }
}

/// A message that is not allowed where it came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A second hello.
    SecondHello,
    /// Anything but a hello or a goodbye before the hello.
    BeforeHello,
    /// Block places asked for out of order, twice, past the block's end, or its coinbase.
    BlockPlaces,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::SecondHello => "second hello",
            Violation::BeforeHello => "a message before the hello",
            Violation::BlockPlaces => "block places out of order or out of range",
        })
    }
}

/// What a peer sent that was never asked of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unasked {
    /// A headers answer.
    Headers,
    /// A block.
    Block,
    /// Transfers for a compact block we were not rebuilding from it.
    BlockTransfers,
}

impl fmt::Display for Unasked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unasked::Headers => "headers",
            Unasked::Block => "block",
            Unasked::BlockTransfers => "block transfers",
        })
    }
}

/// Why headers from a peer are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFault {
    /// One header does not link to the one before it.
    NotAChain,
    /// They keep not connecting to anything we know.
    NotConnected,
    /// They build on a block we found invalid.
    BuildsOnInvalid,
    /// This header's height is not its parent's plus one.
    WrongHeight(BlockHash),
    /// This header's target is not the one the rules give it after its parent (whether the
    /// parent's block is held or only its header queued).
    WrongTarget(BlockHash),
    /// This header's hash does not meet its target.
    NoProofOfWork(BlockHash),
    /// The peer claimed a tip with this much chain work, then said it had no more headers
    /// than the ones that show `shown`: a claim only an attacker makes, to hold the
    /// header-sync slot.
    UnbackedClaim {
        /// The chain work it claimed.
        claimed: Work,
        /// The most chain work its headers showed.
        shown: Work,
    },
}

impl fmt::Display for HeaderFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderFault::NotAChain => f.write_str("headers do not form a chain"),
            HeaderFault::NotConnected => f.write_str("headers do not connect to our chain"),
            HeaderFault::BuildsOnInvalid => f.write_str("headers build on an invalid block"),
            HeaderFault::WrongHeight(hash) => {
                write!(f, "header {} has the wrong height", hash.short(16))
            }
            HeaderFault::WrongTarget(hash) => {
                write!(f, "header {} has the wrong target", hash.short(16))
            }
            HeaderFault::NoProofOfWork(hash) => {
                write!(f, "header {} lacks proof of work", hash.short(16))
            }
            HeaderFault::UnbackedClaim { claimed, shown } => write!(
                f,
                "claimed chain work {} but its headers end at {}",
                claimed.0, shown.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misbehaviour_is_what_gets_a_ban() {
        assert!(DisconnectReason::Flood.is_misbehaviour());
        assert!(DisconnectReason::InvalidHeaders(HeaderFault::NotAChain).is_misbehaviour());
        assert!(!DisconnectReason::ConnectionClosed.is_misbehaviour());
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
