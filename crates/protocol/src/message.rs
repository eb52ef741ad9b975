//! Peer messages: what nodes say to each other, and the bounds every message must keep.
//!
//! On the wire a message is postcard inside a frame (a u32 big-endian length, then the
//! bytes). `crate::frame` is the only way in: it checks the frame size first and then
//! [`Message::check_bounds`], so an oversized or overfull message is an error before it is
//! acted on.
//!
//! | message | seed name | purpose |
//! |---|---|---|
//! | `Hello` | | handshake: version, genesis, node id, listen address, tip, agent, node number |
//! | `Ping` / `Pong` | `ChainLengthReq`/`Res` | liveness, and the periodic status poll (the pong carries the tip) |
//! | `EchoRequest` / `EchoResponse` | `EchoToReq`/`Res` | seed 000's `EchoTo` |
//! | `GetAddresses` / `Addresses` | `get-valid-peers`, `SyncWith` | address gossip (only verified addresses are passed on) |
//! | `Announce` | `latest-blockchain` | a new tip's header, pushed to every peer |
//! | `GetHeaders` / `Headers` | `SyncWithReq`/`Res` | headers-first sync by block locator |
//! | `GetBlocks` / `Blocks` / `NotFound` | | block download by hash |
//! | `Transactions` | | transaction relay |
//! | `GetCompactBlock` / `CompactBlock` | | a new block by short transfer ids (BIP 152, `crate::compact`) |
//! | `GetBlockTxn` / `BlockTxn` | | the transfers a compact block's receiver lacks, by place |
//! | `SendCompact` | | push me new blocks compact, unasked (BIP 152's high-bandwidth mode), or stop |
//! | `Goodbye` | `exit` / `bye` | a polite disconnect with a reason |

use powchain_chain::{Block, BlockHash, Header, Height, Transfer, Work};

use crate::compact::CompactBlock;
use serde::{Deserialize, Serialize};

/// The protocol version this code speaks. A peer with another version is refused.
/// Version 2 added compact blocks: every version-2 node answers their requests. Version 3
/// added `SendCompact`: a node may ask a peer to push new blocks to it compact, unasked.
/// Version 4 added the hello's `number`: a node started with a number (seed 000's `-n N`)
/// says it, so its peers name it `node N` rather than by connection.
pub const PROTOCOL_VERSION: u32 = 4;
/// Largest frame accepted, in bytes: a full block (1 MiB by default) and then some.
pub const FRAME_BYTES_MAX: usize = 4 << 20;
/// Most hashes in a block locator.
pub const LOCATOR_HASHES_MAX: usize = 64;
/// Most headers in one `Headers` message.
pub const HEADERS_PER_MESSAGE_MAX: usize = 2_000;
/// Bytes of blocks put in one `Blocks` message: a reply is split to stay well inside a frame.
pub const BLOCKS_MESSAGE_BYTES_MAX: usize = FRAME_BYTES_MAX / 2;
/// Most hashes in one `GetBlocks` or `NotFound`, and blocks in one `Blocks`.
pub const BLOCKS_PER_MESSAGE_MAX: usize = 16;
/// Most addresses in one `Addresses` message.
pub const ADDRESSES_PER_MESSAGE_MAX: usize = 64;
/// Most transfers in one `Transactions` message.
pub const TRANSFERS_PER_MESSAGE_MAX: usize = 256;
/// Most short ids in a compact block, and places in one `GetBlockTxn` or `BlockTxn`: more
/// than a block of the largest frame can hold, so a block's limit is what binds (checked
/// against the chain's when rebuilt).
pub const COMPACT_TXS_MAX: usize = 100_000;
/// Most transactions a compact block sends whole.
pub const PREFILLED_MAX: usize = 64;
/// Longest echo text, in bytes.
pub const ECHO_BYTES_MAX: usize = 1_024;
/// Longest agent string, in bytes.
pub const AGENT_BYTES_MAX: usize = 64;
/// Longest peer address (`ip:port` or a socket path), in bytes.
pub const ADDRESS_BYTES_MAX: usize = 256;
/// Longest goodbye reason, in bytes.
pub const REASON_BYTES_MAX: usize = 256;

/// The handshake, sent by both sides first thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    /// The sender's genesis hash: its network.
    pub genesis: BlockHash,
    /// A random id chosen at start, to detect connections to oneself.
    pub node_id: u64,
    /// Where the sender accepts connections, if anywhere (`ip:port` or a socket path).
    pub listen: Option<String>,
    /// The sender's tip.
    pub tip: TipSummary,
    /// Software name and version, for logs.
    pub agent: String,
    /// The sender's node number, if it was started with one (seed 000's `-n N`): how its
    /// peers name it to their users. Only a name: nothing trusts it.
    pub number: Option<u32>,
}

/// A tip, as peers report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipSummary {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: Height,
    /// The chain's total work.
    pub work: Work,
}

/// Everything peers say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The handshake.
    Hello(Hello),
    /// Are you there? Also the periodic status poll.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Yes, and this is my tip.
    Pong {
        /// The ping's nonce.
        nonce: u64,
        /// The responder's tip.
        tip: TipSummary,
    },
    /// Seed 000's `EchoTo`: print this and send it back.
    EchoRequest {
        /// The text.
        message: String,
    },
    /// The echo.
    EchoResponse {
        /// The text, as received.
        message: String,
    },
    /// Which peers do you know?
    GetAddresses,
    /// Addresses the sender has connected to itself.
    Addresses(Vec<String>),
    /// The sender has a new tip: here is its header.
    Announce {
        /// The new tip's header.
        header: Header,
    },
    /// Headers after the first locator hash we share, up to `stop` or the message limit.
    GetHeaders {
        /// Hashes of the requester's best chain, newest first, spaced exponentially.
        locator: Vec<BlockHash>,
    },
    /// Consecutive headers, lowest first.
    Headers(Vec<Header>),
    /// Send these blocks.
    GetBlocks(Vec<BlockHash>),
    /// Requested blocks.
    Blocks(Vec<Block>),
    /// Requested blocks the sender does not have.
    NotFound(Vec<BlockHash>),
    /// Transfers to relay.
    Transactions(Vec<Transfer>),
    /// The sender is closing the connection (seed 003's `exit`, answered by `bye`).
    Goodbye {
        /// Why, for the logs.
        reason: String,
    },
    // Version 2. New kinds go last: a kind's place is its number on the wire.
    /// Send this block in compact form (BIP 152's `getdata` for a compact block).
    GetCompactBlock(BlockHash),
    /// A requested block in compact form.
    CompactBlock(CompactBlock),
    /// Send the transfers at these places (ascending) of this block.
    GetBlockTxn {
        /// The block.
        block: BlockHash,
        /// Places in the block, ascending.
        indexes: Vec<u32>,
    },
    /// The transfers asked for, in the order asked.
    BlockTxn {
        /// The block.
        block: BlockHash,
        /// The transfers.
        transfers: Vec<Transfer>,
    },
    // Version 3.
    /// BIP 152's `sendcmpct`: with `high_bandwidth`, push each new tip block that extends
    /// the previous one to the sender as a `CompactBlock` at once, instead of announcing
    /// its header and waiting to be asked; without it, go back to announcing.
    SendCompact {
        /// Push (true) or announce (false).
        high_bandwidth: bool,
    },
}

/// Why bytes from a peer are not a message we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The frame is larger than [`FRAME_BYTES_MAX`].
    #[error("frame of {0} bytes is over the limit of {FRAME_BYTES_MAX}")]
    FrameTooLarge(usize),
    /// postcard could not decode the bytes (unknown message kind, truncated, garbage).
    #[error("undecodable message: {0}")]
    Undecodable(String),
    /// A count or length is over its limit.
    #[error("{what} has {count}, over the limit of {max}")]
    OverLimit {
        /// What was counted.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl Message {
    /// The message's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::EchoRequest { .. } => "echo-request",
            Message::EchoResponse { .. } => "echo-response",
            Message::GetAddresses => "get-addresses",
            Message::Addresses(_) => "addresses",
            Message::Announce { .. } => "announce",
            Message::GetHeaders { .. } => "get-headers",
            Message::Headers(_) => "headers",
            Message::GetBlocks(_) => "get-blocks",
            Message::Blocks(_) => "blocks",
            Message::NotFound(_) => "not-found",
            Message::Transactions(_) => "transactions",
            Message::GetCompactBlock(_) => "get-compact-block",
            Message::CompactBlock(_) => "compact-block",
            Message::GetBlockTxn { .. } => "get-block-txn",
            Message::BlockTxn { .. } => "block-txn",
            Message::SendCompact { .. } => "send-compact",
            Message::Goodbye { .. } => "goodbye",
        }
    }

    /// The postcard encoding (a frame's payload).
    pub fn encode(&self) -> Vec<u8> {
        // Encoding our own types into a Vec cannot fail: postcard only fails on writers that
        // run out of space or on types serde cannot express.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// The length of [`Message::encode`]'s output, without building it.
    pub fn encoded_len(&self) -> usize {
        postcard::serialize_with_flavor(self, postcard::ser_flavors::Size::default())
            .unwrap_or_default()
    }

    /// Checks every count and length against its limit.
    pub fn check_bounds(&self) -> Result<(), MessageError> {
        let limit = |what, count, max| {
            if count > max {
                Err(MessageError::OverLimit { what, count, max })
            } else {
                Ok(())
            }
        };
        match self {
            Message::Hello(hello) => {
                limit("agent", hello.agent.len(), AGENT_BYTES_MAX)?;
                if let Some(listen) = &hello.listen {
                    limit("listen address", listen.len(), ADDRESS_BYTES_MAX)?;
                }
                Ok(())
            }
            Message::EchoRequest { message } | Message::EchoResponse { message } => {
                limit("echo", message.len(), ECHO_BYTES_MAX)
            }
            Message::Addresses(addresses) => {
                limit("addresses", addresses.len(), ADDRESSES_PER_MESSAGE_MAX)?;
                for address in addresses {
                    limit("address", address.len(), ADDRESS_BYTES_MAX)?;
                }
                Ok(())
            }
            Message::GetHeaders { locator } => limit("locator", locator.len(), LOCATOR_HASHES_MAX),
            Message::Headers(headers) => limit("headers", headers.len(), HEADERS_PER_MESSAGE_MAX),
            Message::GetBlocks(hashes) | Message::NotFound(hashes) => {
                limit("block hashes", hashes.len(), BLOCKS_PER_MESSAGE_MAX)
            }
            Message::Blocks(blocks) => limit("blocks", blocks.len(), BLOCKS_PER_MESSAGE_MAX),
            Message::Transactions(transfers) => {
                limit("transfers", transfers.len(), TRANSFERS_PER_MESSAGE_MAX)
            }
            Message::Goodbye { reason } => limit("reason", reason.len(), REASON_BYTES_MAX),
            Message::CompactBlock(compact) => {
                limit("short ids", compact.short_ids.len(), COMPACT_TXS_MAX)?;
                limit("prefilled", compact.prefilled.len(), PREFILLED_MAX)
            }
            Message::GetBlockTxn { indexes, .. } => {
                limit("block places", indexes.len(), COMPACT_TXS_MAX)
            }
            Message::BlockTxn { transfers, .. } => {
                limit("block transfers", transfers.len(), COMPACT_TXS_MAX)
            }
            Message::Ping { .. }
            | Message::GetCompactBlock(_)
            | Message::Pong { .. }
            | Message::GetAddresses
            | Message::SendCompact { .. }
            | Message::Announce { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use powchain_chain::ChainSpec;
    use proptest::prelude::*;

    use super::*;
    use crate::frame::Received;

    /// What the frame module makes of `payload`.
    fn decode(payload: &[u8]) -> Result<Message, MessageError> {
        Received::decode(payload).message
    }

    fn hello() -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            genesis: ChainSpec::dev().genesis_hash(),
            node_id: 7,
            listen: Some("127.0.0.1:9000".into()),
            tip: TipSummary {
                hash: ChainSpec::dev().genesis_hash(),
                height: Height(0),
                work: Work(1),
            },
            agent: "powchain/0.1".into(),
            number: Some(3),
        }
    }

    #[test]
    fn round_trip() {
        for message in [
            Message::Hello(hello()),
            Message::Ping { nonce: 3 },
            Message::EchoRequest {
                message: "HELLO".into(),
            },
            Message::Addresses(vec!["127.0.0.1:1".into(), "/tmp/node.2".into()]),
            Message::Blocks(vec![ChainSpec::seed().genesis_block()]),
            Message::GetBlockTxn {
                block: ChainSpec::dev().genesis_hash(),
                indexes: vec![1, 2, 300],
            },
            Message::Goodbye {
                reason: "bye".into(),
            },
        ] {
            assert_eq!(decode(&message.encode()), Ok(message));
        }
    }

    /// A peer of another version must still read our hello and our goodbye (which says why
    /// it is refused): their numbers on the wire never move.
    #[test]
    fn the_hello_and_goodbye_keep_their_place_on_the_wire() {
        assert_eq!(Message::Hello(hello()).encode()[0], 0);
        let goodbye = Message::Goodbye {
            reason: "bye".into(),
        };
        assert_eq!(goodbye.encode()[0], 14);
    }

    #[test]
    fn bounds_are_checked_on_decode() {
        let too_many = Message::Addresses(vec!["a".into(); ADDRESSES_PER_MESSAGE_MAX + 1]);
        assert!(matches!(
            decode(&too_many.encode()),
            Err(MessageError::OverLimit {
                what: "addresses",
                ..
            })
        ));
        let long_echo = Message::EchoRequest {
            message: "x".repeat(ECHO_BYTES_MAX + 1),
        };
        assert!(matches!(
            decode(&long_echo.encode()),
            Err(MessageError::OverLimit { what: "echo", .. })
        ));
        let locator = Message::GetHeaders {
            locator: vec![BlockHash::ZERO; LOCATOR_HASHES_MAX + 1],
        };
        assert!(decode(&locator.encode()).is_err());
        let places = Message::GetBlockTxn {
            block: BlockHash::ZERO,
            indexes: vec![1; COMPACT_TXS_MAX + 1],
        };
        assert!(matches!(
            decode(&places.encode()),
            Err(MessageError::OverLimit {
                what: "block places",
                ..
            })
        ));
        assert_eq!(
            decode(&vec![0; FRAME_BYTES_MAX + 1]),
            Err(MessageError::FrameTooLarge(FRAME_BYTES_MAX + 1))
        );
        // An unknown message kind.
        assert!(matches!(
            decode(&[200, 1]),
            Err(MessageError::Undecodable(_))
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode(&bytes);
        }
    }
}
