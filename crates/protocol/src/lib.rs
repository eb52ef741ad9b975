//! powchain's peer-to-peer protocol, with no I/O: the messages peers exchange and the node
//! state machine that answers them.
//!
//! - [`message`]: every message, its bounds, and its postcard encoding.
//! - [`compact`]: compact blocks (BIP 152): short transfer ids, and rebuilding a block
//!   from the mempool.
//! - [`frame`]: the wire boundary: frames in and out, every bound checked once, one
//!   [`frame::Received`] per frame for the node.
//! - [`peer`]: what the node keeps per connection, and the reasons it disconnects.
//! - [`bounded_set`]: the per-peer inventory sets, 8-byte keyed fingerprints of ids.
//! - [`address_book`]: known peer addresses, verified before they are passed on.
//! - [`netgroup`]: network groups, and which addresses a peer may teach us.
//! - [`node`]: the state machine. The tokio driver (node crate) and the simulator feed it
//!   connections, messages, commands, ticks and mined blocks, and carry out its outputs.

#![forbid(unsafe_code)]

pub mod address_book;
pub mod bounded_set;
pub mod compact;
pub mod frame;
pub mod message;
pub mod netgroup;
pub mod node;
pub mod peer;

pub use address_book::{AddressStore, MemAddresses};
pub use frame::Received;
pub use message::{Hello, Message, MessageError, PROTOCOL_VERSION, TipSummary};
pub use node::{Command, Event, LookupError, Node, NodeConfig, NodeStats, Output, PeerSummary};
pub use peer::{Direction, DisconnectReason, HeaderFault, PeerId, PeerInfo, Unasked, Violation};
