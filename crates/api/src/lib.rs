//! powchain's HTTP/JSON API, version 1: what a script or the explorer page asks of a node.
//!
//! ```text
//!   HTTP ──> axum Router (routes.rs) ──> reads (reads.rs): the loop lane ──> Handle::inspect ──> the node
//!                 │                          └── block bodies beside the loop (the store's BlockReader)
//!                 ├── changes ──> Handle::command ──> the node
//!                 │   reads: open          changes: `Authorization: Bearer <cookie token>`
//!                 └── /api/v1/events <── broadcast of ApiEvent <── the driver's events
//! ```
//!
//! Every answer is JSON; every error is `{"error": {"code", "message"}}` with the matching
//! HTTP status (`error.rs`). Request bodies are capped at [`BODY_BYTES_MAX`] and listings at
//! [`BLOCKS_PER_PAGE_MAX`] blocks. The JSON shapes of blocks and transactions are the chain
//! export format's (docs/chain-json.md); the views add what a reader wants next to them
//! (`views.rs`). The routes are listed in `docs/api.md` and in [`ROUTES`].
//!
//! Reads are open, like Bitcoin Core's cookie scheme assumes: the server binds loopback unless
//! told otherwise, and [`serve`] bounds what clients may hold (connections, slow headers)
//! and, on loopback, answers only requests addressed to loopback. Anything that changes the
//! node (submit, mine, automine, connect, disconnect) needs the token the node wrote to its
//! cookie file at start.

#![forbid(unsafe_code)]

mod error;
mod explorer;
mod metrics;
pub mod reads;
mod routes;
mod serve;
mod views;

use std::sync::Arc;

use powchain_chain::{ChainSpec, Store};
use powchain_node::driver::Handle;
use powchain_protocol::Event;
use serde::Serialize;
use tokio::sync::broadcast;

pub use error::ApiError;
pub use reads::Reads;
pub use routes::{ROUTES, router};
pub use serve::{Limits, serve};
pub use views::{AccountView, BlockView, ForkBlock, ForksView, PeerView, StatusView, TxView};

/// The largest request body accepted, in bytes (a signed transfer is well under 1 KiB).
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// The most transfers one `POST /api/v1/transactions` carries.
pub const TRANSFERS_PER_BATCH_MAX: usize = 1_000;

/// The largest body of `POST /api/v1/transactions`: a thousand transfers with long memos.
pub const BATCH_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// The most blocks one listing returns.
pub const BLOCKS_PER_PAGE_MAX: u64 = 100;

/// Events the stream carries, buffered per subscriber; a subscriber that falls further
/// behind is told how many it missed.
pub const EVENTS_BUFFERED: usize = 1_024;

/// What the routes share.
pub struct ApiState<S: Store> {
    /// The node.
    pub handle: Handle<S>,
    /// The chain's rules (names, dev accounts, fees).
    pub spec: Arc<ChainSpec>,
    /// The token that allows changes (the cookie file's content).
    pub token: Arc<str>,
    /// New blocks, reorgs and transactions as they happen.
    pub events: broadcast::Sender<ApiEvent>,
    /// The lane to the node's loop and the block reader beside it.
    pub reads: Arc<Reads>,
}

impl<S: Store + 'static> ApiState<S> {
    /// The state of an API over `handle`'s node (its store's block reader asked for now).
    pub async fn new(
        handle: Handle<S>,
        spec: Arc<ChainSpec>,
        token: Arc<str>,
        events: broadcast::Sender<ApiEvent>,
    ) -> ApiState<S> {
        let reads = Arc::new(Reads::of(&handle).await);
        ApiState {
            handle,
            spec,
            token,
            events,
            reads,
        }
    }
}

impl<S: Store> Clone for ApiState<S> {
    fn clone(&self) -> ApiState<S> {
        ApiState {
            handle: self.handle.clone(),
            spec: self.spec.clone(),
            token: self.token.clone(),
            events: self.events.clone(),
            reads: self.reads.clone(),
        }
    }
}

/// One event of `/api/v1/events`, sent as a server-sent event named by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiEvent {
    /// The best chain moved; `disconnected > 0` is a reorg.
    Tip {
        /// The new tip's hash.
        hash: String,
        /// Its height.
        height: u64,
        /// Blocks that left the best chain.
        disconnected: usize,
        /// Blocks that joined it.
        connected: usize,
    },
    /// A block mined by this node was accepted.
    Mined {
        /// Its hash.
        hash: String,
        /// Its height.
        height: u64,
    },
    /// A transfer entered the mempool.
    Transaction {
        /// Its id.
        id: String,
    },
    /// A pending transfer left the mempool unconfirmed.
    Dropped {
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
}

impl ApiEvent {
    /// The stream's view of a node event (`None`: not something the stream carries).
    pub fn from_event(event: &Event) -> Option<ApiEvent> {
        Some(match event {
            Event::TipChanged {
                hash,
                height,
                disconnected,
                connected,
                ..
            } => ApiEvent::Tip {
                hash: hash.to_string(),
                height: height.0,
                disconnected: *disconnected,
                connected: *connected,
            },
            Event::Mined { hash, height, .. } => ApiEvent::Mined {
                hash: hash.to_string(),
                height: height.0,
            },
            Event::TransferAccepted { id, .. } => ApiEvent::Transaction { id: id.to_string() },
            Event::TransferDropped { id, reason } => ApiEvent::Dropped {
                id: id.to_string(),
                reason: reason.to_string(),
            },
            _ => return None,
        })
    }

    /// Sends the stream's view of `event` to its subscribers, if it carries such events
    /// (having no subscriber is not an error).
    pub fn publish(events: &broadcast::Sender<ApiEvent>, event: &Event) {
        if let Some(api_event) = ApiEvent::from_event(event) {
            let _ = events.send(api_event);
        }
    }

    /// The event's name in the stream.
    pub fn name(&self) -> &'static str {
        match self {
            ApiEvent::Tip { .. } => "tip",
            ApiEvent::Mined { .. } => "mined",
            ApiEvent::Transaction { .. } => "transaction",
            ApiEvent::Dropped { .. } => "dropped",
        }
    }
}
