//! Nodes on real sockets (loopback TCP and unix sockets in a temp dir), driven by the tokio
//! driver: the seeds' flows, gossip, convergence, and hostile clients.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use powchain_chain::{
    Amount, Chain, ChainConfig, ChainSpec, Height, Keypair, MemStore, Memo, UnsignedTransfer,
};
use powchain_node::driver::{self, DriverConfig, Handle, bind_unix};
use powchain_node::miner::MinerConfig;
use powchain_node::sha512::Backend;
use powchain_protocol::frame::{self, Received};
use powchain_protocol::message::{Hello, Message, PROTOCOL_VERSION, TipSummary};
use powchain_protocol::{Command, Event, Node, NodeConfig};
use powchain_testkit::{TempDir, eventually, spec_with_dev_accounts, transfers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Only a broken network takes this long; the test then fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(60);

/// The chain every node here runs: 8 bits, six dev accounts of 1,000 coins.
fn spec() -> ChainSpec {
    spec_with_dev_accounts("network-test", 8, 6, Amount(1_000))
}

struct TestNode {
    handle: Handle<MemStore>,
    events: mpsc::Receiver<Event>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Node<MemStore>>,
    address: String,
}

enum Listen {
    Tcp,
    Unix(PathBuf),
}

async fn start(id: u64, listen: Listen, peers: &[&str], outbound_target: usize) -> TestNode {
    let mut driver_config = DriverConfig::new();
    driver_config.tick = Duration::from_millis(20);
    driver_config.miner = Some(MinerConfig {
        threads: 1,
        backend: Backend::detect(),
        batch_nonces: 1 << 12,
        range_nonces: None,
    });
    let address = match listen {
        Listen::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            driver_config.tcp = Some(listener);
            address
        }
        Listen::Unix(path) => {
            driver_config.unix = Some(bind_unix(&path).unwrap());
            path.to_str().unwrap().to_owned()
        }
    };
    let mut config = NodeConfig::new(id);
    config.listen = Some(address.clone());
    config.outbound_target = outbound_target;
    config.ping_interval_ms = 200;
    config.miner_address = Some(Keypair::dev(id % 6).address());
    let chain = Chain::open(spec(), MemStore::new(), ChainConfig::default()).unwrap();
    let mut node = Node::new(config, chain, id);
    for peer in peers {
        node.add_address(peer);
    }
    let (handle, events, shutdown, task) = driver::spawn(node, driver_config);
    TestNode {
        handle,
        events,
        shutdown,
        task,
        address,
    }
}

impl TestNode {
    async fn stop(self) -> Node<MemStore> {
        let _ = self.shutdown.send(true);
        self.task.await.unwrap()
    }

    async fn height(&self) -> u64 {
        self.handle
            .inspect(|node| node.chain().tip().height.0)
            .await
            .unwrap()
    }

    async fn tip(&self) -> powchain_chain::BlockHash {
        self.handle
            .inspect(|node| node.chain().tip().hash)
            .await
            .unwrap()
    }

    async fn peer_addresses(&self) -> Vec<String> {
        self.handle
            .inspect(|node| node.peers().into_iter().map(|p| p.1).collect())
            .await
            .unwrap()
    }

    /// Waits for an event that `matches`.
    async fn wait_event(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        loop {
            match tokio::time::timeout(DEADLINE, self.events.recv()).await {
                Ok(Some(event)) if matches(&event) => return event,
                Ok(Some(_)) => continue,
                _ => panic!("timed out waiting for {what}"),
            }
        }
    }

    async fn peer_ids(&self) -> Vec<powchain_protocol::PeerId> {
        self.handle
            .inspect(|node| node.peers().into_iter().map(|p| p.0).collect())
            .await
            .unwrap()
    }

    async fn balance(&self, index: u64) -> u64 {
        self.handle
            .inspect(move |node| {
                node.chain()
                    .account(&Keypair::dev(index).address())
                    .unwrap()
                    .map_or(0, |a| a.balance.0)
            })
            .await
            .unwrap()
    }
}

/// `EchoTo` the node's first peer, and wait for the echo to come back.
async fn echo(node: &mut TestNode, text: &'static str) {
    let peer = node.peer_ids().await[0];
    let message = text.to_owned();
    node.handle.command(Command::Echo { peer, message }).await;
    node.wait_event(
        "the echo",
        |event| matches!(event, Event::EchoReplied { message, .. } if message == text),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_unix_sockets_replay_the_seed_session() {
    let dir = TempDir::new("net-unix");
    let mut zero = start(1, Listen::Unix(dir.file("node.0")), &[], 0).await;
    let mut one = start(2, Listen::Unix(dir.file("node.1")), &[], 0).await;
    // ConnectTo 0.
    one.handle
        .command(Command::Connect(zero.address.clone()))
        .await;
    eventually("both to see each other", DEADLINE, || async {
        !zero.peer_ids().await.is_empty() && !one.peer_ids().await.is_empty()
    })
    .await;
    // EchoTo, both ways.
    echo(&mut one, "HELLO").await;
    echo(&mut zero, "WORLD").await;
    // MakeTransaction 4 3 5, then Mine on node 1: the block reaches node 0.
    let transfer = UnsignedTransfer {
        to: Keypair::dev(3).address(),
        amount: Amount(5),
        fee: Amount(1),
        nonce: 0,
        memo: Memo::default(),
    }
    .sign(&Keypair::dev(4), &spec().genesis_hash());
    one.handle.command(Command::SubmitTransfer(transfer)).await;
    one.handle.command(Command::MineOnce).await;
    eventually("the block to reach node 0", DEADLINE, || async {
        zero.height().await == 1
    })
    .await;
    assert_eq!(zero.tip().await, one.tip().await);
    assert_eq!(zero.balance(3).await, 1_005);
    assert_eq!(zero.balance(4).await, 994);
    zero.stop().await;
    one.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_knows_only_b_finds_a_by_gossip() {
    let a = start(11, Listen::Tcp, &[], 0).await;
    let b = start(12, Listen::Tcp, &[&a.address], 2).await;
    eventually("B to connect to A", DEADLINE, || async {
        b.peer_addresses().await.contains(&a.address)
    })
    .await;
    let c = start(13, Listen::Tcp, &[&b.address], 2).await;
    eventually(
        "C to learn A from B and connect to it",
        DEADLINE,
        || async { c.peer_addresses().await.contains(&a.address) },
    )
    .await;
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_in_a_line_converge_after_each_mines() {
    let mut nodes: Vec<TestNode> = Vec::new();
    for id in 0..5u64 {
        let peers: Vec<String> = nodes
            .last()
            .map(|n| n.address.clone())
            .into_iter()
            .collect();
        let peers: Vec<&str> = peers.iter().map(String::as_str).collect();
        nodes.push(start(21 + id, Listen::Tcp, &peers, 1).await);
    }
    eventually("the line to form", DEADLINE, || async {
        for node in &nodes {
            if node.peer_addresses().await.is_empty() {
                return false;
            }
        }
        true
    })
    .await;
    for (index, node) in nodes.iter().enumerate() {
        let before = node.height().await;
        node.handle.command(Command::Automine(true)).await;
        eventually("a block of its own", DEADLINE, || async {
            node.height().await > before
        })
        .await;
        node.handle.command(Command::Automine(false)).await;
        eventually("every node to agree", DEADLINE, || async {
            let tip = node.tip().await;
            for other in &nodes {
                if other.tip().await != tip {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(nodes[0].height().await > index as u64);
    }
    for node in nodes {
        node.stop().await;
    }
}

/// Over real sockets: a block of transfers both nodes hold crosses as a compact block,
/// rebuilt from the receiver's pool without asking for any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_known_transfers_crosses_tcp_as_a_compact_block() {
    let mut zero = start(41, Listen::Tcp, &[], 0).await;
    let one = start(42, Listen::Tcp, &[zero.address.as_str()], 1).await;
    eventually("the two to connect", DEADLINE, || async {
        !one.peer_addresses().await.is_empty()
    })
    .await;
    let transfers = transfers(&spec().genesis_hash(), 1, 2, 0..30);
    let accepted = zero.handle.submit_transfers(transfers).await.unwrap();
    assert!(accepted.iter().all(Result::is_ok), "{accepted:?}");
    eventually("node one to hold them all", DEADLINE, || async {
        one.handle.inspect(|n| n.mempool().len()).await.unwrap() == 30
    })
    .await;
    zero.handle.command(Command::MineOnce).await;
    zero.wait_event("its block", |e| matches!(e, Event::Mined { .. }))
        .await;
    let tip = zero.tip().await;
    eventually("node one to take the block", DEADLINE, || async {
        one.tip().await == tip
    })
    .await;
    let stats = one.handle.inspect(|n| n.compact_stats()).await.unwrap();
    assert_eq!(stats.rebuilt_at_once, 1, "{stats:?}");
    assert_eq!(
        (stats.transfers_asked, stats.fell_back),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(one.handle.inspect(|n| n.mempool().len()).await.unwrap(), 0);
    zero.stop().await;
    one.stop().await;
}

/// Reads frames until the node closes the connection; returns what it said last.
async fn goodbye_of(stream: &mut TcpStream) -> Option<String> {
    let mut last = None;
    loop {
        let mut length = [0u8; 4];
        if tokio::time::timeout(DEADLINE, stream.read_exact(&mut length))
            .await
            .ok()?
            .is_err()
        {
            return last;
        }
        let mut payload = vec![0u8; u32::from_be_bytes(length) as usize];
        if stream.read_exact(&mut payload).await.is_err() {
            return last;
        }
        if let Ok(Message::Goodbye { reason }) = Received::decode(&payload).message {
            last = Some(reason);
        }
    }
}

async fn send_frame(stream: &mut TcpStream, message: &Message) {
    stream.write_all(&frame::encode(message)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_are_disconnected_and_honest_peers_served() {
    let node = start(31, Listen::Tcp, &[], 0).await;
    let honest = start(32, Listen::Tcp, &[&node.address], 1).await;
    eventually("the honest peer to connect", DEADLINE, || async {
        !honest.peer_addresses().await.is_empty()
    })
    .await;
    let hello = |genesis| Hello {
        version: PROTOCOL_VERSION,
        genesis,
        node_id: 999,
        listen: None,
        tip: TipSummary {
            hash: genesis,
            height: Height(0),
            work: powchain_chain::Work(1),
        },
        agent: "hostile".into(),
        number: None,
    };

    // Garbage that is not a frame of any message (by hand on purpose: `frame::encode` only
    // frames real messages).
    let mut client = TcpStream::connect(&node.address).await.unwrap();
    client
        .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let reason = goodbye_of(&mut client).await.unwrap_or_default();
    assert!(reason.contains("bad message"), "{reason}");

    // A length prefix beyond the maximum (by hand, too): refused before anything is allocated.
    let mut client = TcpStream::connect(&node.address).await.unwrap();
    client.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let reason = goodbye_of(&mut client).await.unwrap_or_default();
    assert!(reason.contains("bad message"), "{reason}");

    // Another network's handshake.
    let mut client = TcpStream::connect(&node.address).await.unwrap();
    send_frame(
        &mut client,
        &Message::Hello(hello(ChainSpec::seed().genesis_hash())),
    )
    .await;
    let reason = goodbye_of(&mut client).await.unwrap_or_default();
    assert!(reason.contains("another network"), "{reason}");

    // A heavier-looking chain whose header has no proof of work.
    let mut client = TcpStream::connect(&node.address).await.unwrap();
    send_frame(&mut client, &Message::Hello(hello(spec().genesis_hash()))).await;
    let mut forged = spec().genesis_block().header;
    forged.prev_hash = spec().genesis_hash();
    forged.height = Height(1);
    forged.target = powchain_chain::Target(u128::MAX >> 8);
    while forged.meets_own_target() {
        forged.nonce += 1;
    }
    send_frame(&mut client, &Message::Announce { header: forged }).await;
    let reason = goodbye_of(&mut client).await.unwrap_or_default();
    assert!(reason.contains("invalid headers"), "{reason}");

    // The node still serves its honest peer, and its chain is unchanged.
    assert_eq!(node.height().await, 0);
    assert!(!node.peer_addresses().await.is_empty());
    honest.handle.command(Command::Automine(true)).await;
    eventually("the honest block to arrive", DEADLINE, || async {
        node.height().await >= 1
    })
    .await;
    honest.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_file_is_replaced_and_a_dead_node_is_not_active() {
    let dir = TempDir::new("net-stale");
    let path = dir.file("node.7");
    // A socket file whose node is gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let node = start(41, Listen::Unix(path.clone()), &[], 0).await;
    // A second node cannot take a live node's socket.
    assert!(bind_unix(&path).is_err());
    // Dialling a node id whose socket is gone is an event, not a crash.
    node.handle
        .command(Command::Connect(
            dir.file("node.9").to_str().unwrap().to_owned(),
        ))
        .await;
    assert_eq!(node.height().await, 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_its_database_catches_up() {
    use powchain_node::store::RedbStore;
    let dir = TempDir::new("net-restart");
    let db = dir.file("chain.redb");
    let miner = start(51, Listen::Tcp, &[], 0).await;
    let start_follower = |db: PathBuf, peer: Option<String>| async move {
        let store = RedbStore::open(&db).unwrap();
        let addresses = Box::new(store.addresses());
        let chain = Chain::open(spec(), store, ChainConfig::default()).unwrap();
        let mut config = NodeConfig::new(52);
        config.outbound_target = 1;
        let mut node = Node::new(config, chain, 52)
            .with_address_store(addresses)
            .unwrap();
        if let Some(peer) = peer {
            node.add_address(&peer);
        }
        let mut driver_config = DriverConfig::new();
        driver_config.tick = Duration::from_millis(20);
        driver::spawn(node, driver_config)
    };
    let height = |handle: Handle<RedbStore>| async move {
        handle
            .inspect(|node| node.chain().tip().height.0)
            .await
            .unwrap_or(0)
    };

    miner.handle.command(Command::Automine(true)).await;
    eventually("a few blocks", DEADLINE, || async {
        miner.height().await >= 5
    })
    .await;
    let (handle, _events, shutdown, task) =
        start_follower(db.clone(), Some(miner.address.clone())).await;
    eventually("the follower to catch up once", DEADLINE, || {
        let (handle, miner) = (handle.clone(), &miner);
        async move { height(handle).await >= 5 && miner.height().await >= 5 }
    })
    .await;
    let _ = shutdown.send(true);
    let stopped = task.await.unwrap();
    let stored_height = stopped.chain().tip().height.0;
    drop(stopped);

    // The miner goes on while the follower is down; the follower restarts from its file.
    eventually("more blocks meanwhile", DEADLINE, || async {
        miner.height().await >= stored_height + 5
    })
    .await;
    miner.handle.command(Command::Automine(false)).await;
    // No address given this time: the one it verified last run was kept in its database.
    let (handle, _events, shutdown, task) = start_follower(db.clone(), None).await;
    assert!(
        height(handle.clone()).await >= stored_height,
        "it starts from its stored tip"
    );
    let target = miner.tip().await;
    eventually("the restarted follower to catch up", DEADLINE, || {
        let handle = handle.clone();
        async move { handle.inspect(|node| node.chain().tip().hash).await == Some(target) }
    })
    .await;
    let _ = shutdown.send(true);
    task.await.unwrap();
    miner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_also_run_over_in_memory_pipes() {
    let a = start(61, Listen::Tcp, &[], 0).await;
    let b = start(62, Listen::Tcp, &[], 0).await;
    assert!(driver::memory_link(&b.handle, &a.handle, "memory:a", 64 * 1024).await);
    eventually("the pipe's handshake", DEADLINE, || async {
        !a.peer_ids().await.is_empty() && !b.peer_ids().await.is_empty()
    })
    .await;
    a.handle.command(Command::Automine(true)).await;
    eventually("a block across the pipe", DEADLINE, || async {
        b.height().await >= 2
    })
    .await;
    a.handle.command(Command::Automine(false)).await;
    a.stop().await;
    b.stop().await;
}
