//! Reads beside the node's loop: a node on a redb file answers every read with its block
//! bodies read off the loop, exactly as the loop itself would answer; and however many
//! clients read at once, no more than the lane's width wait for the loop.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use powchain_api::reads::LOOP_READS_IN_FLIGHT;
use powchain_api::{ApiState, Limits, Reads, router, serve};
use powchain_chain::{
    Amount, Chain, ChainConfig, ChainSpec, Keypair, Memo, Mempool, MempoolConfig, Timestamp,
    UnsignedTransfer,
};
use powchain_node::driver::{self, DriverConfig, Handle};
use powchain_node::store::RedbStore;
use powchain_protocol::{Node, NodeConfig};
use powchain_testkit::seal;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tower::ServiceExt;

fn spec() -> ChainSpec {
    powchain_testkit::spec("reads-test", 4)
}

/// A node on a redb file in `dir` holding `blocks` blocks, each with 3 transfers from dev
/// account 0 to dev account 1.
fn node_on_file(dir: &std::path::Path, blocks: u64) -> Handle<RedbStore> {
    let spec = spec();
    let store = RedbStore::open(&dir.join("chain.redb")).unwrap();
    let mut chain = Chain::open(spec.clone(), store, ChainConfig::default()).unwrap();
    let chain_id = spec.genesis_hash();
    let key = Keypair::dev(0);
    let mut nonce = 0;
    let start = driver::now();
    for height in 1..=blocks {
        let now = Timestamp(start.0 + height);
        let mut mempool = Mempool::new(MempoolConfig::default());
        for _ in 0..3 {
            let transfer = UnsignedTransfer {
                to: Keypair::dev(1).address(),
                amount: Amount(1),
                fee: Amount(1),
                nonce,
                memo: Memo::default(),
            }
            .sign(&key, &chain_id);
            nonce += 1;
            mempool
                .add(transfer, chain.store(), &spec, &chain_id, now)
                .unwrap();
        }
        let block = chain
            .block_template(&mempool, Keypair::dev(4).address(), now, height)
            .unwrap()
            .block;
        chain.import_block(seal(block), now).unwrap();
    }
    let node = Node::new(NodeConfig::new(9), chain, 9);
    let (handle, _events, shutdown, _task) = driver::spawn(node, DriverConfig::new());
    // The driver runs as long as its shutdown sender lives: for the whole test.
    std::mem::forget(shutdown);
    handle
}

async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// `GET path` over a TCP connection of its own to the API at `address`: the status line.
async fn status_over_tcp(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .expect("the API neither answered nor closed")
        .unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Both routers over one node: one reads bodies off the loop, one on it.
async fn routers(handle: Handle<RedbStore>) -> (Router, Router, Arc<Reads>) {
    let (events, _) = broadcast::channel(16);
    let state = ApiState::new(handle, Arc::new(spec()), "token".into(), events).await;
    assert!(state.reads.off_loop(), "a redb store lends a block reader");
    let reads = state.reads.clone();
    let mut on_loop = state.clone();
    on_loop.reads = Arc::new(Reads::new(None));
    (router(state), router(on_loop), reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_read_beside_the_loop_give_the_loops_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (beside, on_loop, _) = routers(node_on_file(dir.path(), 12)).await;
    let (_, block) = get(&on_loop, "/api/v1/blocks/5").await;
    let tx = block["txs"][1]["id"].as_str().unwrap().to_owned();
    let hash = block["hash"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/blocks".to_owned(),
        "/api/v1/blocks?top=7&count=5".to_owned(),
        "/api/v1/blocks/5".to_owned(),
        format!("/api/v1/blocks/{hash}"),
        format!("/api/v1/tx/{tx}"),
        "/api/v1/accounts/0".to_owned(),
        "/api/v1/accounts/1".to_owned(),
        "/api/v1/blocks/99".to_owned(),
    ] {
        let (status, answer) = get(&beside, &path).await;
        let (loop_status, loop_answer) = get(&on_loop, &path).await;
        assert_eq!((status, &answer), (loop_status, &loop_answer), "{path}");
    }
    let (_, account) = get(&beside, "/api/v1/accounts/0").await;
    assert_eq!(account["recent"].as_array().unwrap().len(), 20);
    let (_, listing) = get(&beside, "/api/v1/blocks").await;
    assert_eq!(listing["blocks"].as_array().unwrap().len(), 13);
}

/// 64 clients, each on its own TCP connection to the served API, list 100 blocks or read
/// an account at once: all are answered, and no more than the lane's width of their
/// questions ever waited for the loop together. (Without the lane, their
/// questions queued on the loop side by side: 19 at once in the run that checked it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_readers_waits_in_the_lane_not_on_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (beside, _, reads) = routers(node_on_file(dir.path(), 100)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let limits = Limits {
        connections_max: 128,
        ..Limits::default()
    };
    tokio::spawn(serve(listener, beside, limits));
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let address = address.clone();
            let path = if i % 2 == 0 {
                "/api/v1/blocks?count=100"
            } else {
                "/api/v1/accounts/0"
            };
            tokio::spawn(async move { status_over_tcp(&address, path).await })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap(), "HTTP/1.1 200 OK");
    }
    let peak = reads.peak_waiting_for_the_loop();
    println!("at most {peak} reads waited for the loop at once");
    assert!(
        (1..=LOOP_READS_IN_FLIGHT).contains(&peak),
        "{peak} reads waited for the loop at once"
    );
}
