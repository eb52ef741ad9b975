//! Every route of `/api/v1` against a real node driver (in memory, one mining thread at a low
//! difficulty), called through the router without sockets.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use powchain_api::{ApiEvent, ApiState, BODY_BYTES_MAX, Reads, router};
use powchain_chain::store::WriteBatch;
use powchain_chain::{
    Amount, BlockHash, Chain, ChainConfig, ChainSpec, Keypair, MemStore, Memo, Store,
    UnsignedTransfer,
};
use powchain_node::driver::{self, DriverConfig};
use powchain_node::miner::MinerConfig;
use powchain_protocol::{Node, NodeConfig};
use powchain_testkit::eventually;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tower::ServiceExt;

const TOKEN: &str = "test-token";

/// How long a node may take to show what a test waits for; it then fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(20);

/// The chain of the nodes here: 8 bits, the dev chain's own accounts.
fn spec() -> ChainSpec {
    powchain_testkit::spec("api-test", 8)
}

struct Api {
    router: Router,
    handle: driver::Handle<MemStore>,
    events: broadcast::Sender<ApiEvent>,
    /// The driver runs while this lives.
    _shutdown: tokio::sync::watch::Sender<bool>,
}

/// A node with a miner, its events forwarded to the stream as the binary does.
fn start() -> Api {
    start_node(7)
}

/// A node with id `id` (nodes that meet need different ids).
fn start_node(id: u64) -> Api {
    start_on(id, MemStore::indexed())
}

/// A node with id `id` on `store`.
fn start_on(id: u64, store: MemStore) -> Api {
    let spec = spec();
    let chain = Chain::open(spec.clone(), store, ChainConfig::default()).unwrap();
    let node = Node::new(NodeConfig::new(id), chain, id);
    let mut config = DriverConfig::new();
    let mut miner = MinerConfig::detect();
    miner.threads = 1;
    config.miner = Some(miner);
    let (handle, mut node_events, shutdown, _task) = driver::spawn(node, config);
    let (events, _) = broadcast::channel(64);
    let forward = events.clone();
    tokio::spawn(async move {
        while let Some(event) = node_events.recv().await {
            ApiEvent::publish(&forward, &event);
        }
    });
    let state = ApiState {
        handle: handle.clone(),
        spec: Arc::new(spec),
        token: TOKEN.into(),
        events: events.clone(),
        // A store in memory has no block reader: its bodies are shared on the loop.
        reads: Arc::new(Reads::new(None)),
    };
    Api {
        router: router(state),
        handle,
        events,
        _shutdown: shutdown,
    }
}

impl Api {
    async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.call(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// A page that is not JSON (the metrics), with its content type.
    async fn get_text(&self, path: &str) -> (StatusCode, String, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    /// Mines one block holding a transfer of `amount` from dev account 0 with `nonce`.
    async fn mine_one(&self, amount: u64, nonce: u64) {
        let (_, before) = self.get("/api/v1/status").await;
        let height = before["height"].as_u64().unwrap();
        let (code, _) = self
            .post("/api/v1/tx", &transfer(0, 1, amount, nonce), Some(TOKEN))
            .await;
        assert_eq!(code, StatusCode::ACCEPTED);
        let (code, _) = self.post("/api/v1/mine", &json!({}), Some(TOKEN)).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        self.wait_for("the block", |s| s["height"].as_u64() > Some(height))
            .await;
    }

    /// Polls the status until `done` holds, and returns it; fails at the deadline with the
    /// last status seen.
    async fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(what, DEADLINE, || async {
            let (_, status) = self.get("/api/v1/status").await;
            if done(&status) {
                Ok(status)
            } else {
                Err(status)
            }
        })
        .await
    }
}

/// The value of the sample `series` in a Prometheus page.
fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
        .parse()
        .unwrap()
}

fn error_code(value: &Value) -> &str {
    value["error"]["code"].as_str().unwrap_or("")
}

/// A signed transfer of `amount` from dev account `from` to `to`, as JSON.
fn transfer(from: u64, to: u64, amount: u64, nonce: u64) -> Value {
    let spec = spec();
    let transfer = UnsignedTransfer {
        to: Keypair::dev(to).address(),
        amount: Amount(amount),
        fee: spec.fee_min,
        nonce,
        memo: Memo::default(),
    }
    .sign(&Keypair::dev(from), &spec.genesis_hash());
    serde_json::to_value(transfer).unwrap()
}

#[tokio::test]
async fn status_blocks_and_accounts_describe_the_chain() {
    let api = start();
    let (code, status) = api.get("/api/v1/status").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status["network"], "api-test");
    assert_eq!(status["height"], 0);
    assert_eq!(status["genesis"], spec().genesis_hash().to_string());
    assert_eq!(status["tip"], status["genesis"]);
    assert_eq!(status["automine"], false);

    let (code, genesis) = api.get("/api/v1/blocks/0").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(genesis["height"], 0);
    assert_eq!(genesis["on_best_chain"], true);
    assert_eq!(genesis["confirmations"], 1);
    assert!(genesis["txs"].as_array().is_some_and(|txs| !txs.is_empty()));
    let hash = genesis["hash"].as_str().unwrap();
    let (code, by_hash) = api.get(&format!("/api/v1/blocks/{hash}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(by_hash["hash"], genesis["hash"]);

    let (code, account) = api.get("/api/v1/accounts/1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(account["dev_index"], 1);
    assert_eq!(account["exists"], true);
    let balance = account["balance"].as_u64().unwrap();
    assert!(balance > 0);
    let address = account["address"].as_str().unwrap();
    let (_, same) = api.get(&format!("/api/v1/accounts/{address}")).await;
    assert_eq!(same["balance"], balance);
    // The genesis allocation is its history.
    assert_eq!(account["recent"][0]["kind"], "coinbase");

    let (code, listing) = api.get("/api/v1/blocks?count=5").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(listing["blocks"].as_array().unwrap().len(), 1);
    assert!(
        listing["blocks"][0].get("txs").is_none(),
        "listings leave out txs"
    );
}

#[tokio::test]
async fn a_submitted_transfer_is_pending_then_mined_and_found() {
    let api = start();
    let mut stream = api.events.subscribe();
    let body = transfer(1, 2, 25, 0);
    // Changes need the token.
    let (code, refused) = api.post("/api/v1/tx", &body, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&refused), "unauthorized");
    let (code, _) = api.post("/api/v1/tx", &body, Some("wrong-token")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    let (code, accepted) = api.post("/api/v1/tx", &body, Some(TOKEN)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let (_, pending) = api.get(&format!("/api/v1/tx/{id}")).await;
    assert_eq!(pending["pending"], true);
    assert_eq!(pending["amount"], 25);
    let (_, pool) = api.get("/api/v1/mempool").await;
    assert_eq!(pool["count"], 1);
    assert_eq!(pool["txs"][0]["id"], id.as_str());
    let (_, sender) = api.get("/api/v1/accounts/1").await;
    assert_eq!(sender["next_nonce"], 1);
    assert_eq!(sender["recent"][0]["pending"], true);

    // The same transfer again is refused by the node, with its reason.
    let (code, again) = api.post("/api/v1/tx", &body, Some(TOKEN)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&again), "refused");

    let (code, mining) = api.post("/api/v1/mine", &json!({}), Some(TOKEN)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{mining}");
    api.wait_for("the block", |s| s["height"] == 1).await;
    let (_, mined) = api.get(&format!("/api/v1/tx/{id}")).await;
    assert_eq!(mined["pending"], false);
    assert_eq!(mined["block"]["height"], 1);
    assert_eq!(mined["confirmations"], 1);
    let (_, receiver) = api.get("/api/v1/accounts/2").await;
    assert_eq!(receiver["recent"][0]["id"], id.as_str());

    // The stream told of the transaction and the new tip.
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.recv())
            .await
            .expect("an event")
            .unwrap();
        kinds.push(event.name());
    }
    assert!(
        kinds.contains(&"transaction") && kinds.contains(&"tip"),
        "{kinds:?}"
    );

    // Nothing left to mine.
    let (code, empty) = api.post("/api/v1/mine", &json!({}), Some(TOKEN)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(error_code(&empty), "nothing_to_mine");
    assert!(
        empty["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allow_empty"),
        "{empty}"
    );

    // Mining on demand, as developer chains do: three empty blocks, then it stops.
    let ask = json!({ "blocks": 3, "allow_empty": true });
    let (code, mining) = api.post("/api/v1/mine", &ask, Some(TOKEN)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{mining}");
    assert_eq!(mining["blocks"], 3);
    api.wait_for("three more blocks", |s| s["height"] == 4)
        .await;
    let (_, status) = api.get("/api/v1/status").await;
    assert_eq!(status["automine"], false, "{status}");
    for wrong in [
        json!({ "blocks": 0 }),
        json!({ "blocks": 20_000 }),
        json!({ "bloks": 2 }),
    ] {
        let (code, refused) = api.post("/api/v1/mine", &wrong, Some(TOKEN)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{wrong}: {refused}");
    }
}

/// A block and a transfer are found by the first digits of their ids, as the session and
/// the explorer print them; digits several blocks share get 409 and the list.
#[tokio::test]
async fn short_ids_find_blocks_and_transfers_and_a_shared_prefix_lists_them() {
    // Two bodies stored under hashes that share their first 12 digits (no miner makes
    // such a pair on demand); they are in the store's keys, as any held block is.
    let mut store = MemStore::indexed();
    let body = Arc::new(spec().genesis_block());
    let shared = |last: char| -> BlockHash {
        format!("00aa00aa0000{}{last}", "0".repeat(115))
            .parse()
            .unwrap()
    };
    let twins = [shared('1'), shared('2')];
    store
        .commit(WriteBatch {
            put_blocks: twins.iter().map(|h| (*h, Arc::clone(&body))).collect(),
            ..WriteBatch::default()
        })
        .unwrap();
    let api = start_on(7, store);

    let (code, accepted) = api
        .post("/api/v1/tx", &transfer(1, 2, 25, 0), Some(TOKEN))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let (code, pending) = api.get(&format!("/api/v1/tx/{}", &id[..16])).await;
    assert_eq!(code, StatusCode::OK, "{pending}");
    assert_eq!(pending["id"], id.as_str());
    assert_eq!(pending["pending"], true);

    api.post("/api/v1/mine", &json!({}), Some(TOKEN)).await;
    let status = api.wait_for("the block", |s| s["height"] == 1).await;
    let tip = status["tip"].as_str().unwrap().to_owned();
    let (code, block) = api.get(&format!("/api/v1/blocks/{}", &tip[..16])).await;
    assert_eq!(code, StatusCode::OK, "{block}");
    assert_eq!(block["hash"], tip.as_str());
    let (_, mined) = api.get(&format!("/api/v1/tx/{}", &id[..10])).await;
    assert_eq!(mined["block"]["height"], 1, "{mined}");
    let (code, found) = api.get(&format!("/api/v1/search?q={}", &tip[..16])).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(found["blocks"], json!([tip]));
    assert_eq!(found["transactions"], json!([]));

    let (code, several) = api.get("/api/v1/blocks/00aa00aa").await;
    assert_eq!(code, StatusCode::CONFLICT, "{several}");
    assert_eq!(error_code(&several), "ambiguous");
    let message = several["error"]["message"].as_str().unwrap();
    for twin in &twins {
        assert!(message.contains(&twin.short(16)), "{message}");
    }
    let (_, listed) = api.get("/api/v1/search?q=00AA00AA0000").await;
    assert_eq!(listed["blocks"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["more_blocks"], false);
    let (code, _) = api
        .get(&format!("/api/v1/blocks/{}", twins[0].short(128)))
        .await;
    assert_eq!(
        code,
        StatusCode::OK,
        "a whole hash is a lookup, not a search"
    );

    let (code, none) = api.get("/api/v1/blocks/00aa00ab").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{none}");
    for short in [
        "/api/v1/blocks/0aa00aa",
        "/api/v1/tx/00aa",
        "/api/v1/search?q=zz00aa00aa",
    ] {
        let (code, refused) = api.get(short).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{short}: {refused}");
    }
}

#[tokio::test]
async fn a_batch_of_transfers_gets_one_answer_each_in_order() {
    let api = start();
    // 300 transfers from dev accounts 1..=6, 50 nonces each: a body well over the 64 KiB
    // that a single transfer's route takes.
    let mut transfers: Vec<Value> = (0..300).map(|i| transfer(1 + i % 6, 7, 1, i / 6)).collect();
    // A forgery (account 2's fields, account 3's signature), and a nonce too far ahead.
    transfers[100]["signature"] = transfer(3, 7, 1, 16)["signature"].clone();
    transfers[200] = transfer(8, 7, 1, 1_000);
    let body = json!({ "transfers": transfers });
    assert!(body.to_string().len() > 64 * 1024);
    let (code, refused) = api.post("/api/v1/transactions", &body, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&refused), "unauthorized");

    let (code, answer) = api.post("/api/v1/transactions", &body, Some(TOKEN)).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 298);
    assert_eq!(answer["refused"], 2);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 300);
    for (index, result) in results.iter().enumerate() {
        let refused = index == 100 || index == 200;
        assert_eq!(result["error"].is_string(), refused, "{index}: {result}");
        assert_eq!(result["id"].is_string(), !refused, "{index}: {result}");
    }
    assert!(
        results[100]["error"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    let (_, pool) = api.get("/api/v1/mempool").await;
    assert_eq!(pool["count"], 298);
    let id = results[0]["id"].as_str().unwrap();
    let (_, pending) = api.get(&format!("/api/v1/tx/{id}")).await;
    assert_eq!(pending["pending"], true);

    // More than a batch holds is refused whole, with what to do.
    let many: Vec<Value> = (0..1_001).map(|i| transfer(9, 7, 1, i)).collect();
    let (code, error) = api
        .post(
            "/api/v1/transactions",
            &json!({ "transfers": many }),
            Some(TOKEN),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000")
    );
}

#[tokio::test]
async fn automine_and_peers_are_controlled_with_the_token() {
    let api = start();
    let (code, _) = api
        .post("/api/v1/automine", &json!({ "on": true }), None)
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, on) = api
        .post("/api/v1/automine", &json!({ "on": true }), Some(TOKEN))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(on["automine"], true);
    api.wait_for("automined blocks", |s| s["height"].as_u64() >= Some(2))
        .await;
    let (_, off) = api
        .post("/api/v1/automine", &json!({ "on": false }), Some(TOKEN))
        .await;
    assert_eq!(off["automine"], false);
    api.wait_for("automine off", |s| s["automine"] == false)
        .await;
    let (_, listing) = api.get("/api/v1/blocks?count=2").await;
    let heights: Vec<u64> = listing["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights.len(), 2);
    assert!(heights[0] > heights[1], "newest first: {heights:?}");

    let (code, peers) = api.get("/api/v1/peers").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(peers["peers"], json!([]));
    let (code, _) = api
        .post("/api/v1/peers", &json!({ "address": "127.0.0.1:1" }), None)
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, connecting) = api
        .post(
            "/api/v1/peers",
            &json!({ "address": "127.0.0.1:1" }),
            Some(TOKEN),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(connecting["connecting"], "127.0.0.1:1");
    let request = |token: Option<&str>| {
        let mut request = Request::delete("/api/v1/peers/99");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(Body::empty()).unwrap()
    };
    let (code, _) = api.call(request(None)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, missing) = api.call(request(Some(TOKEN))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "not_found");
}

/// Two nodes mine apart, then meet: the shorter one reorganises, and its forks, peers and
/// metrics show the side branch, the traffic and the reorg.
#[tokio::test]
async fn forks_peers_and_metrics_show_a_reorg_between_two_nodes() {
    let long = start_node(1);
    let short = start_node(2);
    short.mine_one(5, 0).await;
    long.mine_one(7, 0).await;
    long.mine_one(7, 1).await;
    let (short_height, long_height) = (1, 2);
    let (_, status) = long.get("/api/v1/status").await;
    assert_eq!(status["height"], long_height);
    assert_eq!(status["mining"], false);
    assert!(status["miner_threads"].as_u64() == Some(1), "{status}");
    assert_eq!(status["miner_hash_rate"], 0.0);

    assert!(driver::memory_link(&short.handle, &long.handle, "long", 1 << 20).await);
    let long_tip = status["tip"].clone();
    short
        .wait_for("the short node to take the longer chain", |s| {
            s["tip"] == long_tip
        })
        .await;

    let (code, forks) = short.get("/api/v1/forks?count=100").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(forks["tip_height"], long_height);
    let blocks = forks["blocks"].as_array().unwrap();
    let side: Vec<&Value> = blocks.iter().filter(|b| b["best"] == false).collect();
    let best: Vec<&Value> = blocks.iter().filter(|b| b["best"] == true).collect();
    assert_eq!(
        best.len() as u64,
        long_height + 1,
        "genesis to tip: {forks}"
    );
    assert_eq!(
        side.len() as u64,
        short_height,
        "the abandoned branch: {forks}"
    );
    assert_eq!(side[0]["height"], 1);
    assert_eq!(side[0]["parent"], best[0]["hash"], "it forks at genesis");
    let heights: Vec<u64> = blocks
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert!(heights.is_sorted(), "lowest first: {heights:?}");
    // The abandoned block's coinbase is neither confirmed nor pending.
    let (_, abandoned) = short
        .get(&format!(
            "/api/v1/blocks/{}",
            side[0]["hash"].as_str().unwrap()
        ))
        .await;
    assert_eq!(abandoned["on_best_chain"], false);
    assert_eq!(abandoned["txs"][0]["kind"], "coinbase");
    assert_eq!(abandoned["txs"][0]["pending"], false, "{abandoned}");
    let (code, recent) = short.get("/api/v1/forks?count=1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(recent["blocks"].as_array().unwrap().len(), 1, "{recent}");
    let (code, _) = short.get("/api/v1/forks?count=101").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let (_, peers) = short.get("/api/v1/peers").await;
    let peer = &peers["peers"][0];
    assert_eq!(peer["address"], "long");
    assert!(peer["bytes_in"].as_u64() > Some(0), "{peer}");
    assert!(peer["bytes_out"].as_u64() > Some(0), "{peer}");

    let (code, content_type, page) = short.get_text("/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert_eq!(metric(&page, "powchain_height"), long_height as f64);
    assert_eq!(metric(&page, "powchain_reorgs_total"), 1.0);
    assert_eq!(metric(&page, "powchain_peers{direction=\"outbound\"}"), 1.0);
    assert_eq!(
        metric(&page, "powchain_blocks_accepted_total"),
        long_height as f64
    );
    assert_eq!(metric(&page, "powchain_blocks_rejected_total"), 0.0);
    assert_eq!(
        metric(&page, "powchain_blocks_mined_total"),
        short_height as f64
    );
    assert!(metric(&page, "powchain_peer_bytes_received_total") > 0.0);
    assert!(metric(&page, "powchain_miner_hashes_total") > 0.0);
    // Every sample has its help and type.
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            page.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE"
        );
    }
}

#[tokio::test]
async fn bad_requests_get_json_errors_with_the_right_status() {
    let api = start();
    let unknown_hash = "ab".repeat(64);
    for (path, status, code) in [
        ("/api/v1/blocks/999", StatusCode::NOT_FOUND, "not_found"),
        (
            &format!("/api/v1/blocks/{unknown_hash}") as &str,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/blocks/nonsense",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/blocks?count=0",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/blocks?count=101",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/blocks?cuont=5",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/blocks?count=many",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            &format!("/api/v1/tx/{unknown_hash}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        ("/api/v1/tx/zz", StatusCode::BAD_REQUEST, "bad_request"),
        (
            "/api/v1/accounts/999999",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/accounts/not-hex",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        ("/api/v2/status", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, body) = api.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(error_code(&body), code, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    // Bad JSON, a wrong shape, a wrong content type, an oversized body.
    let post = |body: Body, content_type: &str| {
        Request::post("/api/v1/tx")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(body)
            .unwrap()
    };
    let (code, body) = api
        .call(post(Body::from("{not json"), "application/json"))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "bad_json");
    let (code, body) = api
        .call(post(Body::from(r#"{"amount": 5}"#), "application/json"))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "bad_json");
    let (code, body) = api.call(post(Body::from("{}"), "text/plain")).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(&body), "unsupported_media_type");
    let huge = format!(r#"{{"memo": "{}"}}"#, "a".repeat(BODY_BYTES_MAX + 1));
    let (code, body) = api.call(post(Body::from(huge), "application/json")).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "too_large");

    // Without the token a caller learns nothing about the body: the refusal comes first.
    let (code, body) = api
        .call(
            Request::post("/api/v1/tx")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");
    // A known route with the wrong method answers in JSON too.
    let (code, body) = api
        .call(Request::put("/api/v1/status").body(Body::empty()).unwrap())
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "method_not_allowed");

    // A transfer signed for another chain is refused by the node.
    let mut forged = transfer(1, 2, 5, 0);
    forged["amount"] = json!(6);
    let (code, body) = api.post("/api/v1/tx", &forged, Some(TOKEN)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );
}

/// Every route of `ROUTES` (which the OpenAPI test compares with docs/openapi.json) is one the
/// router serves: none answers "no such route" or "wrong method".
#[tokio::test]
async fn every_listed_route_is_served() {
    let api = start();
    for (method, path) in powchain_api::ROUTES {
        let uri = path.replace("{id}", "0").replace("{who}", "0");
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let response = api.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {status}"
        );
        if *method != "get" {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
    }
    let (code, content_type, page) = api.get_text("/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    assert!(page.contains("explorer.js"), "the page loads its script");
}
