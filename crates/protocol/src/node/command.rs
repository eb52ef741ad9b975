//! What a user can ask of a node: the seed's session commands.

use powchain_chain::Transfer;

use crate::peer::PeerId;

/// A user command (the seed's session commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `ConnectTo`: dial an address.
    Connect(String),
    /// Close a connection.
    Disconnect(PeerId),
    /// Stop dialling an address: forget it, give up a dial under way, and close any
    /// connection to it.
    Forget(String),
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
    /// Mine `blocks` blocks now and stop; `allow_empty`: even with nothing pending (a
    /// developer chain's "generate N"; the seed's `Mine` keeps its rule).
    MineBlocks {
        /// How many.
        blocks: u64,
        /// Whether they may be empty.
        allow_empty: bool,
    },
    /// Mine continuously (empty blocks included), or stop.
    Automine(bool),
    /// Say goodbye to every peer and disconnect.
    Shutdown,
}
