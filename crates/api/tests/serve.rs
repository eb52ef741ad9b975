//! The API served over real TCP to clients that misbehave: slow headers, idle connections,
//! more connections than it keeps, requests addressed to another host. Each case runs beside
//! a control request that must be answered.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use powchain_api::{ApiState, Limits, Reads, router, serve};
use powchain_chain::{Chain, ChainConfig, MemStore};
use powchain_node::driver::{self, DriverConfig};
use powchain_protocol::{Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// Only a broken server takes this long; the test then fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(20);

const LIMITS: Limits = Limits {
    connections_max: 8,
    header_read_timeout: Duration::from_millis(500),
};

/// An API server on loopback over a node without a miner; its address.
async fn start() -> (String, tokio::sync::watch::Sender<bool>) {
    let spec = powchain_testkit::spec("serve-test", 8);
    let chain = Chain::open(spec.clone(), MemStore::indexed(), ChainConfig::default()).unwrap();
    let node = Node::new(NodeConfig::new(3), chain, 3);
    let (handle, _events, shutdown, _task) = driver::spawn(node, DriverConfig::new());
    let (events, _) = broadcast::channel(16);
    let state = ApiState {
        handle,
        spec: Arc::new(spec),
        token: "token".into(),
        events,
        // A store in memory has no block reader: its bodies are shared on the loop.
        reads: Arc::new(Reads::new(None)),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, router(state), LIMITS));
    (address, shutdown)
}

/// A whole `GET /api/v1/status` with `host`; the status line answered, or `None` if the
/// server closed the connection without answering.
async fn get_status(address: &str, host: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET /api/v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the server neither answered nor closed")
        .ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Whether the server closes `stream` (reads end) before the deadline.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_give_their_slots_back() {
    let (address, _node) = start().await;
    assert_eq!(
        get_status(&address, &address).await.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "control"
    );
    // Every slot taken: half a request each, never finished (slowloris), and idle ones.
    let mut slow = Vec::new();
    for index in 0..LIMITS.connections_max {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if index % 2 == 0 {
            stream
                .write_all(b"GET /api/v1/status HTTP/1.1\r\nHo")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // One more, even a whole request, is closed unanswered: the slots are the bound.
    assert_eq!(get_status(&address, &address).await, None);
    // Each of them is closed once its headers are late, and the API answers again.
    for stream in &mut slow {
        assert!(
            closed_by_server(stream).await,
            "a slow client kept its slot"
        );
    }
    assert_eq!(
        get_status(&address, &address).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_api_answers_only_requests_addressed_to_loopback() {
    let (address, _node) = start().await;
    let port = address.rsplit_once(':').unwrap().1;
    for host in [
        address.clone(),
        format!("localhost:{port}"),
        "localhost".to_owned(),
    ] {
        assert_eq!(
            get_status(&address, &host).await.as_deref(),
            Some("HTTP/1.1 200 OK"),
            "{host}"
        );
    }
    // A page on attacker.example whose name now resolves to 127.0.0.1 (DNS rebinding).
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
    ] {
        assert_eq!(
            get_status(&address, &host).await.as_deref(),
            Some("HTTP/1.1 421 Misdirected Request"),
            "{host}"
        );
    }
}
