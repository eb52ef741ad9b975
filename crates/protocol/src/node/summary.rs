//! What the node reports of itself and its peers, for status pages and metrics.

use powchain_chain::{BlockHash, Height, Timestamp};

use crate::peer::{Direction, PeerId};

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
    /// Its node number, if it said one in its hello.
    pub number: Option<u32>,
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
