//! The routes of `/api/v1` and their handlers. Each handler asks the node's loop one question
//! through the read lane (`reads`), reads the block bodies it needs beside the loop, or sends
//! one command; and turns the answer into a view or an error.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::Stream;
use json_body::ApiJson;
use powchain_chain::{Address, BlockName, HashPrefix, Height, Store, Transfer, TxId};
use powchain_node::driver::now;
use powchain_protocol::Command;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::explorer;
use crate::reads::Body;
use crate::views::{
    AccountView, BlockView, ForksView, MempoolView, PeerView, StatusView, TxFound, TxView,
};
use crate::{
    ApiState, BATCH_BODY_BYTES_MAX, BLOCKS_PER_PAGE_MAX, BODY_BYTES_MAX, TRANSFERS_PER_BATCH_MAX,
};

/// Every route, for the OpenAPI check: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/status"),
    ("get", "/api/v1/blocks"),
    ("get", "/api/v1/blocks/{id}"),
    ("get", "/api/v1/tx/{id}"),
    ("post", "/api/v1/tx"),
    ("post", "/api/v1/transactions"),
    ("get", "/api/v1/accounts/{who}"),
    ("get", "/api/v1/mempool"),
    ("get", "/api/v1/peers"),
    ("post", "/api/v1/peers"),
    ("delete", "/api/v1/peers/{id}"),
    ("post", "/api/v1/mine"),
    ("post", "/api/v1/automine"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/forks"),
    ("get", "/api/v1/search"),
    ("get", "/metrics"),
    ("get", "/"),
    ("get", "/explorer.js"),
    ("get", "/explorer.css"),
];

/// The API's router over `state`'s node.
pub fn router<S: Store + Send + 'static>(state: ApiState<S>) -> Router {
    Router::new()
        .route("/api/v1/status", get(status::<S>))
        .route("/api/v1/blocks", get(blocks::<S>))
        .route("/api/v1/blocks/{id}", get(block::<S>))
        .route("/api/v1/tx/{id}", get(transaction::<S>))
        .route("/api/v1/tx", post(submit::<S>))
        .route(
            "/api/v1/transactions",
            post(submit_many::<S>).layer(DefaultBodyLimit::max(BATCH_BODY_BYTES_MAX)),
        )
        .route("/api/v1/accounts/{who}", get(account::<S>))
        .route("/api/v1/mempool", get(mempool::<S>))
        .route("/api/v1/peers", get(peers::<S>).post(connect::<S>))
        .route("/api/v1/peers/{id}", delete(disconnect::<S>))
        .route("/api/v1/mine", post(mine::<S>))
        .route("/api/v1/automine", post(automine::<S>))
        .route("/api/v1/events", get(events::<S>))
        .route("/api/v1/forks", get(forks::<S>))
        .route("/api/v1/search", get(search::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/", get(explorer::index))
        .route("/explorer.js", get(explorer::script))
        .route("/explorer.css", get(explorer::style))
        .fallback(|| async { ApiError::not_found("no such route; the API lives under /api/v1") })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this route does not take that method (see docs/api.md)".into(),
            }
        })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

type Answer = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

/// Refuses a change without the cookie's token.
fn authorize<S: Store>(state: &ApiState<S>, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared in constant time: the token is a secret.
    let expected = state.token.as_bytes();
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

async fn status<S: Store + Send + 'static>(State(state): State<ApiState<S>>) -> Answer {
    let mining = state
        .reads
        .in_lane(state.handle.mining())
        .await?
        .ok_or_else(ApiError::stopped)?;
    let view = state
        .reads
        .on_loop(&state.handle, move |node| StatusView::of(node, mining))
        .await?;
    ok(view)
}

async fn metrics<S: Store + Send + 'static>(State(state): State<ApiState<S>>) -> Answer {
    let mining = state
        .reads
        .in_lane(state.handle.mining())
        .await?
        .ok_or_else(ApiError::stopped)?;
    let page = state
        .reads
        .on_loop(&state.handle, move |node| {
            crate::metrics::render(node, mining)
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], page).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Heights {
    /// How many recent heights (default 20, at most 100).
    count: Option<u64>,
}

async fn forks<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    query: Result<Query<Heights>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(heights) = query?;
    let count = listing_count(heights.count)?;
    let view = state
        .reads
        .on_loop(&state.handle, move |node| ForksView::of(node, count))
        .await?;
    ok(view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    /// At least 8 hex digits of a block hash or a transaction id.
    q: String,
}

/// The blocks and transfers whose id begins with `q`: one range read of each ordered index
/// and a scan of the bounded mempool, at most `PREFIX_MATCHES_MAX` of each.
async fn search<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    query: Result<Query<Search>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(search) = query?;
    let prefix: HashPrefix = search
        .q
        .parse()
        .map_err(|e| ApiError::bad_request(format!("q: {e}")))?;
    let (blocks, txs) = state
        .reads
        .on_loop(&state.handle, move |node| node.search(&prefix))
        .await??;
    let ids = |found: Vec<String>| json!(found);
    ok(json!({
        "blocks": ids(blocks.found.iter().map(ToString::to_string).collect()),
        "more_blocks": blocks.more,
        "transactions": ids(txs.found.iter().map(ToString::to_string).collect()),
        "more_transactions": txs.more,
    }))
}

/// A listing's `count`: 20 unless given, 1 to [`BLOCKS_PER_PAGE_MAX`].
fn listing_count(count: Option<u64>) -> Result<u64, ApiError> {
    let count = count.unwrap_or(20);
    if count == 0 || count > BLOCKS_PER_PAGE_MAX {
        return Err(ApiError::bad_request(format!(
            "count is 1 to {BLOCKS_PER_PAGE_MAX}"
        )));
    }
    Ok(count)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    /// The highest height listed (default: the tip).
    top: Option<u64>,
    /// How many, newest first (default 20, at most 100).
    count: Option<u64>,
}

async fn blocks<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(page) = query?;
    let count = listing_count(page.count)?;
    let off_loop = state.reads.off_loop();
    let (tip, bodies) = state
        .reads
        .on_loop(&state.handle, move |node| {
            let chain = node.chain();
            let tip = chain.tip().height;
            let top = page.top.unwrap_or(tip.0).min(tip.0);
            let bodies = (top.saturating_sub(count - 1)..=top)
                .rev()
                .filter_map(|height| chain.tree().best_at(Height(height)))
                .map(|hash| Body::of(node, hash, off_loop))
                .collect::<Result<Vec<Body>, String>>()?;
            Ok::<_, String>((tip, bodies))
        })
        .await?
        .map_err(ApiError::internal)?;
    let views: Vec<BlockView> = state
        .reads
        .fetch(bodies)
        .await?
        .iter()
        .flatten()
        .map(|block| BlockView::build(block, tip, true, false, |_| false))
        .collect();
    ok(json!({ "blocks": views }))
}

async fn block<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    Path(id): Path<String>,
) -> Answer {
    let name: BlockName = id.parse().map_err(ApiError::bad_request)?;
    let off_loop = state.reads.off_loop();
    let (tip, on_best, body) = state
        .reads
        .on_loop(&state.handle, move |node| {
            let chain = node.chain();
            let hash = node.find_block(&name)?;
            let on_best = chain.tree().is_on_best(&hash);
            let body = Body::of(node, hash, off_loop).map_err(ApiError::internal)?;
            Ok::<_, ApiError>((chain.tip().height, on_best, body))
        })
        .await??;
    let not_found = || ApiError::not_found(format!("no block {id} on this node"));
    let block = state
        .reads
        .fetch(vec![body])
        .await?
        .pop()
        .flatten()
        .ok_or_else(not_found)?;
    // A side branch's transfers are pending if the mempool has them: one more question.
    let pending: HashSet<TxId> = if on_best {
        HashSet::new()
    } else {
        let ids: Vec<TxId> = block.txs.iter().map(|tx| tx.id()).collect();
        state
            .reads
            .on_loop(&state.handle, move |node| {
                ids.into_iter()
                    .filter(|id| node.mempool().get(id).is_some())
                    .collect()
            })
            .await?
    };
    ok(BlockView::build(&block, tip, on_best, true, |id| {
        pending.contains(id)
    }))
}

async fn transaction<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    Path(id): Path<String>,
) -> Answer {
    let prefix: HashPrefix = id.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "{id:?} is not a transaction id or its first hex digits: {e}"
        ))
    })?;
    let off_loop = state.reads.off_loop();
    let (tx_id, found) = state
        .reads
        .on_loop(&state.handle, move |node| {
            let tx_id = node.find_transfer(&prefix)?;
            let found = TxView::locate(node, &tx_id, off_loop).map_err(ApiError::internal)?;
            Ok::<_, ApiError>((tx_id, found))
        })
        .await??;
    let view = match found {
        TxFound::Pending(view) => Some(view),
        TxFound::Confirmed { tip, at } => {
            let block = state
                .reads
                .fetch(vec![at.body.clone()])
                .await?
                .pop()
                .flatten();
            block.and_then(|block| TxView::confirmed(&block, &at, &tx_id, tip))
        }
        TxFound::Unknown => None,
    };
    let view = view.ok_or_else(|| {
        ApiError::not_found(format!(
            "transaction {id} is neither pending here nor on the best chain"
        ))
    })?;
    ok(view)
}

async fn submit<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    body: Result<ApiJson<Transfer>, ApiError>,
) -> Answer {
    // The token first: a caller without it learns nothing of what the body should be.
    authorize(&state, &headers)?;
    let ApiJson(transfer) = body?;
    let id = state
        .handle
        .submit_transfer(transfer)
        .await
        .ok_or_else(ApiError::stopped)?
        .map_err(|e| ApiError::refused(e.to_string()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id.to_string() }))).into_response())
}

/// The body of `POST /api/v1/transactions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    transfers: Vec<Transfer>,
}

/// Many signed transfers at once: their signatures are checked in one batch, and each gets
/// its own answer, in order. The token is checked before the body is read, so a caller
/// without it costs no parsing of a large body.
async fn submit_many<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    request: axum::extract::Request,
) -> Answer {
    authorize(&state, request.headers())?;
    let ApiJson(Batch { transfers }) = ApiJson::from_request(request, &()).await?;
    if transfers.len() > TRANSFERS_PER_BATCH_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {TRANSFERS_PER_BATCH_MAX} transfers in one batch, got {}; \
             send the rest in another request",
            transfers.len()
        )));
    }
    let answers = state
        .handle
        .submit_transfers(transfers)
        .await
        .ok_or_else(ApiError::stopped)?;
    let accepted = answers.iter().filter(|answer| answer.is_ok()).count();
    let results: Vec<serde_json::Value> = answers
        .into_iter()
        .map(|answer| match answer {
            Ok(id) => json!({ "id": id.to_string() }),
            Err(error) => json!({ "error": error.to_string() }),
        })
        .collect();
    ok(json!({
        "accepted": accepted,
        "refused": results.len() - accepted,
        "results": results,
    }))
}

async fn account<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    Path(who): Path<String>,
) -> Answer {
    let (address, dev_index) = match who.parse::<u64>() {
        Ok(index) => {
            let address = state.spec.dev_address(index).ok_or_else(|| {
                ApiError::not_found(format!("there is no dev account {index} on this chain"))
            })?;
            (address, Some(index))
        }
        Err(_) => {
            let address: Address = who.parse().map_err(|e| {
                ApiError::bad_request(format!(
                    "{who:?} is neither a dev account number nor an address (64 hex digits): {e}"
                ))
            })?;
            (address, None)
        }
    };
    let off_loop = state.reads.off_loop();
    let (mut view, tip, located) = state
        .reads
        .on_loop(&state.handle, move |node| {
            AccountView::of(node, address, dev_index, off_loop)
        })
        .await?
        .map_err(ApiError::internal)?;
    let bodies = located.iter().map(|at| at.body.clone()).collect();
    let blocks = state.reads.fetch(bodies).await?;
    view.add_confirmed(&located, &blocks, tip);
    ok(view)
}

async fn mempool<S: Store + Send + 'static>(State(state): State<ApiState<S>>) -> Answer {
    let view = state
        .reads
        .on_loop(&state.handle, |node| MempoolView::of(node))
        .await?;
    ok(view)
}

async fn peers<S: Store + Send + 'static>(State(state): State<ApiState<S>>) -> Answer {
    let views = state
        .reads
        .on_loop(&state.handle, |node| PeerView::all(node, now()))
        .await?;
    ok(json!({ "peers": views }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    address: String,
}

/// The longest peer address accepted.
const ADDRESS_BYTES_MAX: usize = 256;

async fn connect<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    body: Result<ApiJson<ConnectBody>, ApiError>,
) -> Answer {
    // The token first: a caller without it learns nothing of what the body should be.
    authorize(&state, &headers)?;
    let ApiJson(ConnectBody { address }) = body?;
    if address.is_empty() || address.len() > ADDRESS_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "address is 1 to {ADDRESS_BYTES_MAX} bytes"
        )));
    }
    command(&state, Command::Connect(address.clone())).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "connecting": address }))).into_response())
}

async fn disconnect<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    authorize(&state, &headers)?;
    let peer: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a peer id")))?;
    let known = state
        .reads
        .on_loop(&state.handle, move |node| {
            node.peer_summaries().iter().any(|p| p.id == peer)
        })
        .await?;
    if !known {
        return Err(ApiError::not_found(format!("no peer {peer}")));
    }
    command(&state, Command::Disconnect(peer)).await?;
    ok(json!({ "disconnected": peer }))
}

/// What `POST /api/v1/mine` may ask; an empty body (or `{}`) is one block of the pending
/// transfers, the seed's `Mine`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MineBody {
    #[serde(default = "one_block")]
    blocks: u64,
    #[serde(default)]
    allow_empty: bool,
}

fn one_block() -> u64 {
    1
}

/// Most blocks one request may ask for (a developer chain's 101 fit many times over).
const MINE_BLOCKS_MAX: u64 = 10_000;

async fn mine<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    authorize(&state, &headers)?;
    let MineBody {
        blocks,
        allow_empty,
    } = if body.iter().all(u8::is_ascii_whitespace) {
        MineBody {
            blocks: 1,
            allow_empty: false,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is {{\"blocks\": N, \"allow_empty\": true|false}}, both optional: {e}"
            ))
        })?
    };
    if !(1..=MINE_BLOCKS_MAX).contains(&blocks) {
        return Err(ApiError::bad_request(format!(
            "blocks must be 1..={MINE_BLOCKS_MAX}, not {blocks}"
        )));
    }
    let pending = state
        .reads
        .on_loop(&state.handle, |node| node.mempool().len())
        .await?;
    if pending == 0 && !allow_empty {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "nothing_to_mine",
            message: "the mempool is empty: nothing to mine (send {\"allow_empty\": true} to mine empty blocks, or turn automine on)".into(),
        });
    }
    let order = Command::MineBlocks {
        blocks,
        allow_empty,
    };
    command(&state, order).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "mining": true, "blocks": blocks, "pending": pending })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutomineBody {
    on: bool,
}

async fn automine<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    body: Result<ApiJson<AutomineBody>, ApiError>,
) -> Answer {
    // The token first: a caller without it learns nothing of what the body should be.
    authorize(&state, &headers)?;
    let ApiJson(AutomineBody { on }) = body?;
    command(&state, Command::Automine(on)).await?;
    ok(json!({ "automine": on }))
}

async fn command<S: Store + Send + 'static>(
    state: &ApiState<S>,
    command: Command,
) -> Result<(), ApiError> {
    if state.handle.command(command).await {
        Ok(())
    } else {
        Err(ApiError::stopped())
    }
}

async fn events<S: Store + Send + 'static>(
    State(state): State<ApiState<S>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.events.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => SseEvent::default()
                .event(event.name())
                .json_data(&event)
                .unwrap_or_default(),
            Err(broadcast::error::RecvError::Lagged(missed)) => SseEvent::default()
                .event("lagged")
                .data(json!({ "missed": missed }).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// JSON bodies whose rejections answer in the API's error format.
mod json_body {
    use axum::extract::{FromRequest, Request};
    use serde::de::DeserializeOwned;

    use crate::error::ApiError;

    /// `Json<T>`, but a bad or oversized body is an [`ApiError`].
    pub struct ApiJson<T>(pub T);

    impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
        type Rejection = ApiError;

        async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
            let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
            Ok(ApiJson(value))
        }
    }
}
