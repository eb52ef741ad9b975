//! The hostile-peer suite: a test harness plays a peer over a real TCP socket and misbehaves in
//! one way per test. Each time the node must name the reason (the `PeerGone` event the driver
//! logs), close the connection, refuse the peer afterwards when the fault is the peer's (its
//! ban list), keep serving an honest peer (an echo round trip), and keep its chain, state and
//! mempool exactly as they were. `docs/RELIABILITY.md` lists the cases and outcomes.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use powchain_chain::{
    Amount, Block, BlockError, BlockHash, Chain, ChainConfig, ChainSpec, Height, ImportError,
    Keypair, MemStore, Memo, Mempool, MempoolConfig, Timestamp, Transaction, Transfer,
    UnsignedTransfer, Work,
};
use powchain_node::driver::{self, DriverConfig, Handle, now};
use powchain_protocol::compact::CompactBlock;
use powchain_protocol::frame::{self, Received};
use powchain_protocol::message::{Hello, Message, PROTOCOL_VERSION, TipSummary};
use powchain_protocol::{
    Command, DisconnectReason, Event, HeaderFault, Node, NodeConfig, Unasked, Violation,
};
use powchain_testkit::{eventually, seal, spec_with_dev_accounts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Only a broken node takes this long; the test then fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

/// The node under attack has this id (a hostile hello can claim it).
const NODE_ID: u64 = 4_242;

/// The chain of the node under attack and its peers: 8 bits, six dev accounts of 1,000 coins.
fn spec() -> ChainSpec {
    spec_with_dev_accounts("hostile-test", 8, 6, Amount(1_000))
}

struct TestNode {
    handle: Handle<MemStore>,
    events: mpsc::Receiver<Event>,
    _shutdown: watch::Sender<bool>,
    address: String,
}

/// A node on loopback TCP with short timeouts, so the slow attacks end quickly.
async fn start(id: u64, peers: &[&str]) -> TestNode {
    start_on(id, peers, &[], |_| {}).await
}

/// As [`start`], on a chain that already holds `blocks`, the config changed by `configure`.
async fn start_on(
    id: u64,
    peers: &[&str],
    blocks: &[Block],
    configure: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    start_with(spec(), id, peers, blocks, configure).await
}

/// As [`start_on`], on the chain of `spec`.
async fn start_with(
    spec: ChainSpec,
    id: u64,
    peers: &[&str],
    blocks: &[Block],
    configure: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    let mut driver_config = DriverConfig::new();
    driver_config.tick = Duration::from_millis(20);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    driver_config.tcp = Some(listener);
    let mut config = NodeConfig::new(id);
    config.listen = Some(address.clone());
    config.outbound_target = peers.len();
    config.handshake_timeout_ms = 600;
    config.ping_interval_ms = 300;
    config.ping_timeout_ms = 900;
    config.headers_timeout_ms = 900;
    config.messages_per_second_max = 200;
    // One second of burst, and two over it before a flood, so the flood cases end at a
    // few hundred messages.
    config.flood_burst_seconds = 1;
    config.flood_sustained_ms = 2_000;
    configure(&mut config);
    config.feeler_interval_ms = 0;
    let mut chain = Chain::open(spec, MemStore::new(), ChainConfig::default()).unwrap();
    for block in blocks {
        chain.import_block(block.clone(), now()).unwrap();
    }
    let mut node = Node::new(config, chain, id);
    for peer in peers {
        node.add_address(peer);
    }
    let (handle, events, shutdown, _task) = driver::spawn(node, driver_config);
    TestNode {
        handle,
        events,
        _shutdown: shutdown,
        address,
    }
}

/// Waits until `node`'s tip is `tip` (`what` names the wait if it fails).
async fn reaches(node: &TestNode, tip: BlockHash, what: &str) {
    eventually(what, DEADLINE, || async {
        node.handle.inspect(|n| n.chain().tip().hash).await.unwrap() == tip
    })
    .await;
}

/// What must not change: the tip, every dev account, the mempool.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tip: BlockHash,
    balances: Vec<(u64, u64)>,
    mempool: Vec<String>,
}

async fn snapshot(node: &TestNode) -> Snapshot {
    node.handle
        .inspect(|node| Snapshot {
            tip: node.chain().tip().hash,
            balances: (0..6)
                .map(|i| {
                    let account = node.chain().account(&Keypair::dev(i).address()).unwrap();
                    account.map_or((0, 0), |a| (a.balance.0, a.nonce))
                })
                .collect(),
            mempool: node
                .mempool()
                .transfers()
                .iter()
                .map(|(id, _)| id.to_string())
                .collect(),
        })
        .await
        .unwrap()
}

/// The node under attack, an honest peer connected to it, and the state before the attack.
struct Scene {
    node: TestNode,
    honest: TestNode,
    before: Snapshot,
}

async fn scene() -> Scene {
    scene_on(&[], |_| {}).await
}

/// As [`scene`], the node under attack holding `blocks`, its config changed by `configure`.
async fn scene_on(blocks: &[Block], configure: impl FnOnce(&mut NodeConfig)) -> Scene {
    let node = start_on(NODE_ID, &[], blocks, configure).await;
    let honest = start(7, &[&node.address]).await;
    eventually("the honest peer to connect", DEADLINE, || async {
        honest.handle.inspect(|n| n.peers().len()).await.unwrap() > 0
    })
    .await;
    let before = snapshot(&node).await;
    Scene {
        node,
        honest,
        before,
    }
}

/// The attacker's end of a TCP connection to the node.
struct Hostile {
    stream: TcpStream,
    /// How the node names this connection (its address and ban key on loopback).
    key: String,
    /// Every payload the node sent, in order.
    seen: Vec<u8>,
}

impl Hostile {
    async fn connect(scene: &Scene) -> Hostile {
        Hostile::connect_to(&scene.node).await
    }

    async fn connect_to(node: &TestNode) -> Hostile {
        let stream = TcpStream::connect(&node.address).await.unwrap();
        let key = stream.local_addr().unwrap().to_string();
        Hostile {
            stream,
            key,
            seen: Vec::new(),
        }
    }

    async fn raw(&mut self, bytes: &[u8]) {
        // The node may already have hung up: what it did is what the test checks.
        let _ = self.stream.write_all(bytes).await;
    }

    async fn send(&mut self, message: &Message) {
        self.raw(&frame::encode(message)).await;
    }

    /// A correct hello (this network, this version, a fresh id, genesis as tip), changed by
    /// `tweak`.
    async fn hello(&mut self, tweak: impl FnOnce(&mut Hello)) {
        let mut hello = Hello {
            version: PROTOCOL_VERSION,
            genesis: spec().genesis_hash(),
            node_id: 666,
            listen: None,
            tip: genesis_tip(),
            agent: "hostile/1".into(),
            number: None,
        };
        tweak(&mut hello);
        self.send(&Message::Hello(hello)).await;
    }

    /// The next message from the node; `None` once it has closed the connection.
    async fn receive(&mut self) -> Option<Message> {
        let mut length = [0u8; 4];
        tokio::time::timeout(DEADLINE, self.stream.read_exact(&mut length))
            .await
            .ok()?
            .ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut payload).await.ok()?;
        self.seen.extend_from_slice(&payload);
        Received::decode(&payload).message.ok()
    }

    /// Answers the node as a peer with `blocks` would (headers, blocks, pongs) until it hangs
    /// up. The hello must claim their tip.
    async fn serve(&mut self, blocks: &[Block]) {
        self.serve_until(blocks, false).await;
    }

    /// As [`Hostile::serve`]; with `blocks_sent`, returns once the blocks have been sent.
    async fn serve_until(&mut self, blocks: &[Block], blocks_sent: bool) {
        let start = tokio::time::Instant::now();
        while let Some(message) = self.receive().await {
            assert!(start.elapsed() < DEADLINE, "the node never hung up");
            match message {
                Message::GetHeaders { .. } => {
                    let headers = blocks.iter().map(|b| b.header).collect();
                    self.send(&Message::Headers(headers)).await;
                }
                Message::GetBlocks(wanted) => {
                    let found = blocks
                        .iter()
                        .filter(|b| wanted.contains(&b.hash()))
                        .cloned()
                        .collect();
                    self.send(&Message::Blocks(found)).await;
                    if blocks_sent {
                        return;
                    }
                }
                // The block after the node's tip is asked for compact; a peer may answer
                // with the whole block, which this one does.
                Message::GetCompactBlock(wanted) => {
                    let found = blocks.iter().filter(|b| b.hash() == wanted).cloned();
                    self.send(&Message::Blocks(found.collect())).await;
                    if blocks_sent {
                        return;
                    }
                }
                Message::Ping { nonce } => {
                    let tip = genesis_tip();
                    self.send(&Message::Pong { nonce, tip }).await;
                }
                _ => {}
            }
        }
    }

    /// For `period`, reads what the node says and answers its pings, as a live peer does.
    async fn stay_alive(&mut self, period: Duration) {
        let end = tokio::time::Instant::now() + period;
        while let Ok(Some(message)) = tokio::time::timeout_at(end, self.receive()).await {
            if let Message::Ping { nonce } = message {
                let tip = genesis_tip();
                self.send(&Message::Pong { nonce, tip }).await;
            }
        }
    }

    /// Reads and drops everything until the node hangs up.
    async fn drain(&mut self) {
        let start = tokio::time::Instant::now();
        while self.receive().await.is_some() {
            assert!(start.elapsed() < DEADLINE, "the node never hung up");
        }
    }
}

/// The tip of a peer that has nothing but genesis.
fn genesis_tip() -> TipSummary {
    TipSummary {
        hash: spec().genesis_hash(),
        height: Height(0),
        work: Work(1),
    }
}

/// A tip summary claiming `blocks`' last block with plenty of work.
fn claim(blocks: &[Block]) -> TipSummary {
    let last = blocks.last().unwrap();
    TipSummary {
        hash: last.hash(),
        height: last.header.height,
        work: Work(u128::from(u32::MAX)),
    }
}

/// The checks every case ends with. The node must have dropped the hostile connection for a
/// reason `expected` accepts, banned it or not as `banned` says, kept its chain, state and
/// mempool, and still answer its honest peer. Returns the reason, for the record.
async fn outcome(
    mut scene: Scene,
    hostile: &Hostile,
    expected: impl Fn(&DisconnectReason) -> bool,
    banned: bool,
) -> DisconnectReason {
    let key = hostile.key.clone();
    let said = gone_reason(&mut scene.node, &key).await;
    assert!(expected(&said), "the node said {said:?}");
    let is_banned = scene
        .node
        .handle
        .inspect(move |node| node.is_banned(&key, now()))
        .await
        .unwrap();
    assert_eq!(is_banned, banned, "banned after {said:?}");
    assert_eq!(snapshot(&scene.node).await, scene.before, "after {said:?}");
    // The honest peer is still connected and answered.
    let peer = scene.honest.handle.inspect(|n| n.peers()).await.unwrap();
    assert_eq!(peer.len(), 1, "the honest peer lost its connection");
    let message = "still there?".to_owned();
    scene
        .honest
        .handle
        .command(Command::Echo {
            peer: peer[0].0,
            message: message.clone(),
        })
        .await;
    loop {
        match tokio::time::timeout(DEADLINE, scene.honest.events.recv()).await {
            Ok(Some(Event::EchoReplied { message: m, .. })) if m == message => break,
            Ok(Some(_)) => continue,
            _ => panic!("the node stopped answering its honest peer"),
        }
    }
    println!("the node said: {said}; banned: {banned}");
    said
}

// ---- the reasons expected ------------------------------------------------------------------

fn is(expected: DisconnectReason) -> impl Fn(&DisconnectReason) -> bool {
    move |reason| *reason == expected
}

fn bad_message(reason: &DisconnectReason) -> bool {
    matches!(reason, DisconnectReason::BadMessage(_))
}

fn wrong_genesis(reason: &DisconnectReason) -> bool {
    matches!(reason, DisconnectReason::WrongGenesis { .. })
}

fn other_version(reason: &DisconnectReason) -> bool {
    matches!(reason, DisconnectReason::ProtocolVersion { .. })
}

fn invalid_headers(reason: &DisconnectReason) -> bool {
    matches!(reason, DisconnectReason::InvalidHeaders(_))
}

fn invalid_block(reason: &DisconnectReason) -> bool {
    matches!(reason, DisconnectReason::InvalidBlock(_))
}

// ---- blocks the attacker builds ----------------------------------------------------------

/// Valid transfers from dev account `from`, nonces from `first`.
fn transfers(from: u64, first: u64, count: u64) -> Vec<Transfer> {
    (first..first + count)
        .map(|nonce| signed(&Keypair::dev(from), nonce, Amount(1)))
        .collect()
}

/// 3 coins from `key` to dev account 5, signed for this chain.
fn signed(key: &Keypair, nonce: u64, fee: Amount) -> Transfer {
    UnsignedTransfer {
        to: Keypair::dev(5).address(),
        amount: Amount(3),
        fee,
        nonce,
        memo: Memo::default(),
    }
    .sign(key, &spec().genesis_hash())
}

/// `count` valid blocks on genesis, each with the given transfers (index by height - 1), then
/// `spoil` applied to the last one before it is sealed.
fn chain_with(txs: Vec<Vec<Transfer>>, spoil: impl FnOnce(&mut Block)) -> Vec<Block> {
    chain_of(spec(), txs, spoil)
}

/// As [`chain_with`], on the chain of `spec`.
fn chain_of(
    spec: ChainSpec,
    txs: Vec<Vec<Transfer>>,
    spoil: impl FnOnce(&mut Block),
) -> Vec<Block> {
    let chain_id = spec.genesis_hash();
    let mut chain = Chain::open(spec.clone(), MemStore::new(), ChainConfig::default()).unwrap();
    let mut blocks = Vec::new();
    let count = txs.len();
    let mut spoil = Some(spoil);
    for (index, block_txs) in txs.into_iter().enumerate() {
        let mut mempool = Mempool::new(MempoolConfig::default());
        for transfer in &block_txs {
            mempool
                .add(transfer.clone(), chain.store(), &spec, &chain_id, now())
                .unwrap();
        }
        let mut block = chain
            .block_template(&mempool, Keypair::dev(4).address(), now(), index as u64)
            .unwrap()
            .block;
        if index + 1 == count
            && let Some(spoil) = spoil.take()
        {
            spoil(&mut block);
        }
        let block = seal(block);
        if index + 1 < count {
            chain.import_block(block.clone(), now()).unwrap();
        }
        blocks.push(block);
    }
    blocks
}

/// Replaces transfer `index` (counting the coinbase as 0) with `transfer`.
fn put(block: &mut Block, index: usize, transfer: Transfer) {
    block.txs[index] = Transaction::Transfer(transfer);
}

// ---- the cases: bytes and frames -----------------------------------------------------------

// These write their bytes by hand on purpose: `frame::encode` only frames real messages.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_frame() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.raw(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    outcome(scene, &hostile, bad_message, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_prefix_beyond_the_maximum() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.raw(&u32::MAX.to_be_bytes()).await;
    outcome(scene, &hostile, bad_message, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_then_silence() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    // Half of a ping: the node waits for the rest, then its pings go unanswered.
    hostile.raw(&[0, 0, 0, 9, 1, 2]).await;
    outcome(scene, &hostile, is(DisconnectReason::PingTimeout), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_frame_of_an_unknown_message() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    // Variant 99 of the message enum, which does not exist.
    hostile.raw(&[0, 0, 0, 2, 99, 0]).await;
    outcome(scene, &hostile, bad_message, true).await;
}

// ---- the cases: the handshake --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_from_another_network() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile
        .hello(|h| h.genesis = ChainSpec::seed().genesis_hash())
        .await;
    // Not malice: an honest node of another network. Dropped, not banned.
    outcome(scene, &hostile, wrong_genesis, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_with_another_protocol_version() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.version = PROTOCOL_VERSION + 1).await;
    // Not malice: an honest node of another version. Dropped, not banned.
    outcome(scene, &hostile, other_version, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_with_the_nodes_own_id() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.node_id = NODE_ID).await;
    outcome(scene, &hostile, is(DisconnectReason::SelfConnection), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handshake_within_the_timeout() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.drain().await;
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::HandshakeTimeout),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_handshake_one_byte_at_a_time() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    let bytes = frame::encode(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        genesis: spec().genesis_hash(),
        node_id: 666,
        listen: None,
        tip: genesis_tip(),
        agent: "slow".into(),
        number: None,
    }));
    // A byte every 50 ms: the whole hello would take seconds; the timeout is 600 ms.
    for byte in bytes {
        hostile.raw(&[byte]).await;
        let mut probe = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(50), hostile.stream.peek(&mut probe)).await
        {
            Ok(Ok(_)) => break, // the node has spoken (a goodbye) or hung up
            _ => continue,
        }
    }
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::HandshakeTimeout),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hello() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    hostile.hello(|_| {}).await;
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::ProtocolViolation(Violation::SecondHello)),
        true,
    )
    .await;
}

// ---- the cases: headers and blocks ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_bad_proof_of_work() {
    let scene = scene().await;
    let mut blocks = chain_with(vec![vec![]], |_| {});
    // A nonce that misses the target.
    while blocks[0].header.meets_own_target() {
        blocks[0].header.nonce += 1;
    }
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    outcome(scene, &hostile, invalid_headers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_do_not_connect() {
    let scene = scene().await;
    let mut blocks = chain_with(vec![vec![], vec![]], |_| {});
    // The second header's parent is not the first.
    blocks[1].header.prev_hash = BlockHash::ZERO;
    let blocks = vec![blocks[0].clone(), seal(blocks[1].clone())];
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    outcome(scene, &hostile, invalid_headers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_blocks_but_less_work() {
    let scene = scene().await;
    // Three blocks, each with an easier target than the chain demands: more blocks, less work.
    let mut blocks = Vec::new();
    let mut parent = spec().genesis_block();
    for height in 1..=3 {
        let mut block = parent.clone();
        block.header.prev_hash = parent.hash();
        block.header.height = Height(height);
        block.header.time = Timestamp(now().0 - 1_000 + height);
        block.header.target = powchain_chain::Target(u128::MAX >> 2);
        block.txs = vec![Transaction::Coinbase(powchain_chain::tx::Coinbase {
            height: Height(height),
            to: Keypair::dev(4).address(),
            amount: spec().block_reward,
            extra_nonce: 0,
        })];
        let block = seal(block);
        blocks.push(block.clone());
        parent = block;
    }
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    outcome(scene, &hostile, invalid_headers, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_a_bad_signature() {
    let scene = scene().await;
    let blocks = chain_with(vec![transfers(0, 0, 2)], |block| {
        let Transaction::Transfer(mut transfer) = block.txs[1].clone() else {
            unreachable!()
        };
        transfer.amount = Amount(4); // signed for 3
        put(block, 1, transfer);
    });
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    outcome(scene, &hostile, invalid_block, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_inside_a_block() {
    let scene = scene().await;
    let blocks = chain_with(vec![transfers(0, 0, 2)], |block| {
        // Two transfers with nonce 0 from one account.
        let again = UnsignedTransfer {
            to: Keypair::dev(3).address(),
            amount: Amount(900),
            fee: Amount(1),
            nonce: 0,
            memo: Memo::default(),
        }
        .sign(&Keypair::dev(0), &spec().genesis_hash());
        put(block, 2, again);
    });
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    outcome(scene, &hostile, invalid_block, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_across_blocks() {
    let scene = scene().await;
    let first = transfers(1, 0, 1);
    let blocks = chain_with(vec![first.clone(), transfers(2, 0, 1)], |block| {
        // Block 1's transfer again in block 2.
        put(block, 1, first[0].clone());
    });
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    // Block 1 is valid and may be kept: the chain check below allows only that.
    let said = outcome_allowing_block_one(scene, &hostile, &blocks[0]).await;
    assert!(
        matches!(said, DisconnectReason::InvalidBlock(_)),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_coinbase_amount() {
    let scene = scene().await;
    let blocks = chain_with(vec![transfers(0, 0, 1)], |block| {
        if let Transaction::Coinbase(coinbase) = &mut block.txs[0] {
            coinbase.amount = Amount(coinbase.amount.0 + 1);
        }
    });
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    outcome(scene, &hostile, invalid_block, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_too_far_in_the_future() {
    let scene = scene().await;
    let blocks = chain_with(vec![vec![]], |block| {
        block.header.time = Timestamp(now().0 + 3_600_000);
    });
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve_until(&blocks, true).await;
    // The node's clock could be the one that is wrong: it drops the block but keeps the peer,
    // unbanned, and everything else as it was.
    let key = hostile.key.clone();
    eventually("the block to be judged", DEADLINE, || async {
        let judged = scene.node.handle.inspect(|n| n.stats().blocks_rejected);
        judged.await.unwrap() > 0
    })
    .await;
    let (connected, banned) = scene
        .node
        .handle
        .inspect(move |node| {
            let connected = node.peer_summaries().iter().any(|p| p.address == key);
            (connected, node.is_banned(&key, now()))
        })
        .await
        .unwrap();
    assert!(
        connected && !banned,
        "connected {connected}, banned {banned}"
    );
    assert_eq!(snapshot(&scene.node).await, scene.before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_over_the_size_limit() {
    let scene = scene().await;
    let limit = spec().limits.block_txs_max as usize;
    let blocks = chain_with(vec![vec![]], |block| {
        let coinbase = block.txs[0].clone();
        block.txs = vec![coinbase; limit + 2];
    });
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    hostile.serve(&blocks).await;
    let said = outcome(scene, &hostile, invalid_block, true).await;
    assert!(
        matches!(
            said,
            DisconnectReason::InvalidBlock(ImportError::Invalid {
                error: BlockError::TooManyTxs { .. },
                ..
            })
        ),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrequested_blocks() {
    let scene = scene().await;
    let blocks = chain_with(vec![vec![]], |_| {});
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    hostile.send(&Message::Blocks(blocks)).await;
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::Unrequested(Unasked::Block)),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_with_unknown_parents_over_and_over() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let template = chain_with(vec![vec![]], |_| {}).remove(0);
    // More than a second of burst and two seconds over the rate (200 a second) can drain.
    let mut announcements = Vec::new();
    for parent in 1..=2_000u64 {
        let mut orphan = template.clone();
        let mut bytes = [0u8; 64];
        bytes[..8].copy_from_slice(&parent.to_le_bytes());
        orphan.header.prev_hash = BlockHash(powchain_chain::Hash512(bytes));
        orphan.header.height = Height(5);
        let orphan = seal(orphan);
        announcements.extend(frame::encode(&Message::Announce {
            header: orphan.header,
        }));
    }
    hostile.raw(&announcements).await;
    outcome(scene, &hostile, DisconnectReason::is_misbehaviour, true).await;
}

// ---- the cases: compact blocks -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_nobody_asked_for() {
    let scene = scene().await;
    let blocks = chain_with(vec![transfers(0, 0, 2)], |_| {});
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let compact = CompactBlock::of(&blocks[0], &blocks[0].hash(), 1);
    hostile.send(&Message::CompactBlock(compact)).await;
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::Unrequested(Unasked::Block)),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_without_its_coinbase() {
    let scene = scene().await;
    let blocks = chain_with(vec![transfers(0, 0, 2)], |_| {});
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks)).await;
    // Headers when asked, then, asked for the block compact, one whose coinbase is moved
    // off place 0.
    while let Some(message) = hostile.receive().await {
        match message {
            Message::GetHeaders { .. } => {
                let headers = blocks.iter().map(|b| b.header).collect();
                hostile.send(&Message::Headers(headers)).await;
            }
            Message::GetCompactBlock(hash) => {
                let mut bogus = CompactBlock::of(&blocks[0], &hash, 1);
                bogus.prefilled[0].index = 2;
                hostile.send(&Message::CompactBlock(bogus)).await;
                break;
            }
            _ => {}
        }
    }
    outcome(
        scene,
        &hostile,
        |r| matches!(r, DisconnectReason::InvalidCompactBlock(_)),
        true,
    )
    .await;
}

/// A peer that gave the node a new tip first is asked to push the next blocks compact
/// (BIP 152's high-bandwidth mode); it pushes one whose header lacks its work. A push is no
/// way around the header checks: it is refused as that header announced would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_compact_block_without_its_work() {
    let scene = scene().await;
    let blocks = chain_with(vec![transfers(0, 0, 1), Vec::new()], |_| {});
    let mut forged = blocks[1].clone();
    while forged.header.meets_own_target() {
        forged.header.nonce += 1;
    }
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|h| h.tip = claim(&blocks[..1])).await;
    hostile.serve_until(&blocks[..1], true).await;
    let start = tokio::time::Instant::now();
    loop {
        assert!(start.elapsed() < DEADLINE, "never asked to push");
        match hostile.receive().await {
            Some(Message::SendCompact {
                high_bandwidth: true,
            }) => break,
            Some(Message::Ping { nonce }) => {
                let tip = genesis_tip();
                hostile.send(&Message::Pong { nonce, tip }).await;
            }
            Some(_) => {}
            None => panic!("the node hung up before asking for pushes"),
        }
    }
    let compact = CompactBlock::of(&forged, &forged.hash(), 1);
    hostile.send(&Message::CompactBlock(compact)).await;
    let said = outcome_allowing_block_one(scene, &hostile, &blocks[0]).await;
    assert!(invalid_headers(&said), "{said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_for_a_compact_block_nobody_is_rebuilding() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let answer = Message::BlockTxn {
        block: spec().genesis_hash(),
        transfers: transfers(0, 0, 3),
    };
    hostile.send(&answer).await;
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::Unrequested(Unasked::BlockTransfers)),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_places_past_the_end_or_the_coinbase() {
    let blocks = chain_with(vec![transfers(0, 0, 2)], |_| {});
    for indexes in [vec![0], vec![3], vec![2, 1]] {
        let scene = scene_on(&blocks, |_| {}).await;
        let mut hostile = Hostile::connect(&scene).await;
        hostile.hello(|_| {}).await;
        let ask = Message::GetBlockTxn {
            block: blocks[0].hash(),
            indexes,
        };
        hostile.send(&ask).await;
        outcome(
            scene,
            &hostile,
            is(DisconnectReason::ProtocolViolation(Violation::BlockPlaces)),
            true,
        )
        .await;
    }
}

// ---- the cases: floods ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    // More than a second of burst and two seconds over the rate (200 a second) can drain.
    let flood: Vec<u8> = (0..2_000u64)
        .flat_map(|nonce| frame::encode(&Message::Ping { nonce }))
        .collect();
    hostile.raw(&flood).await;
    let mut pongs = 0;
    while let Some(message) = hostile.receive().await {
        pongs += u32::from(matches!(message, Message::Pong { .. }));
    }
    // Read at the budget's rate, not as fast as it came: at most the burst and the rate
    // over the two seconds it may stay over it (with a second of slack).
    assert!(pongs <= 200 + 200 * 3, "{pongs} pings answered");
    outcome(scene, &hostile, is(DisconnectReason::Flood), true).await;
}

/// What a peer sent while the node was paused (a busy machine, a stopped process, a slow
/// disk) arrives as one burst. Past the burst the budget allows (here one second of 500 a
/// second), the peer is read more slowly, at the budget's rate, and every ping is
/// answered: a backlog, not a flood. Before, the 501st ping at once was a ban. The ping
/// flood above, over the rate for longer than its node allows, still is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_after_a_pause_is_not_a_flood() {
    let scene = scene_on(&[], |config| {
        config.messages_per_second_max = 500;
        config.flood_sustained_ms = 30_000;
    })
    .await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let backlog: Vec<u8> = (0..1_500u64)
        .flat_map(|nonce| frame::encode(&Message::Ping { nonce }))
        .collect();
    hostile.raw(&backlog).await;
    let mut pongs = 0;
    while pongs < 1_500 {
        match hostile.receive().await {
            Some(Message::Pong { .. }) => pongs += 1,
            // It is a live peer: it answers the node's own pings meanwhile.
            Some(Message::Ping { nonce }) => {
                let tip = genesis_tip();
                hostile.send(&Message::Pong { nonce, tip }).await;
            }
            Some(_) => {}
            None => panic!("the node hung up after {pongs} pongs"),
        }
    }
    let key = hostile.key.clone();
    let (connected, banned) = scene
        .node
        .handle
        .inspect(move |node| {
            (
                node.peer_summaries().iter().any(|p| p.address == key),
                node.is_banned(&key, now()),
            )
        })
        .await
        .unwrap();
    assert!(
        connected && !banned,
        "an honest backlog cost the peer its place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_gossip_flood() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let addresses: Vec<String> = (0..2_000)
        .map(|i| format!("10.0.{}.{}:9000", i / 250, i % 250))
        .collect();
    hostile.send(&Message::Addresses(addresses)).await;
    outcome(scene, &hostile, bad_message, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_transfers_in_bulk() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    // Transfers with bad signatures, in bulk.
    let mut forged = transfers(0, 0, 1).remove(0);
    forged.amount = Amount(999);
    for _ in 0..50 {
        hostile
            .send(&Message::Transactions(vec![forged.clone(); 100]))
            .await;
    }
    outcome(scene, &hostile, DisconnectReason::is_misbehaviour, true).await;
}

/// A peer that asks for the most it can get (headers from genesis: 2,000 of them, about
/// 350 KB of answer for a 70-byte request) and never reads. The node stops reading from a
/// peer that has not read what it is owed (pause-send), so the answers waiting for it stay
/// near the pause threshold instead of growing to the 16 MiB at which the peer would be
/// dropped; the attacker's own writes stall, and its silence ends it by ping timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_a_peer_that_never_reads() {
    let blocks = chain_with(vec![Vec::new(); 2_100], |_| {});
    let scene = scene_on(&blocks, |_| {}).await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let request = frame::encode(&Message::GetHeaders {
        locator: vec![spec().genesis_hash()],
    });
    // 100,000 requests (7 MB, more than the sockets' buffers hold) would buy 35 GB of
    // answers. The node stops reading long before they are all written, so the writes
    // stall: give up on them after a while.
    let requests: Vec<u8> = request.repeat(100_000);
    let wrote =
        tokio::time::timeout(Duration::from_secs(3), hostile.stream.write_all(&requests)).await;
    assert!(
        wrote.is_err(),
        "the node read every request of a peer that reads nothing"
    );
    let config = powchain_node::driver::DriverConfig::new();
    let answer_bytes = 2_000 * 180;
    let bound = config.peer_send_pause_bytes + config.peer_frames_unhandled_max * answer_bytes;
    let peak = scene.node.handle.peak_send_queue_bytes();
    println!("the most queued for one peer: {peak} bytes (bound {bound})");
    assert!(
        peak <= bound,
        "{peak} bytes queued for one peer, over {bound}"
    );
    outcome(scene, &hostile, is(DisconnectReason::PingTimeout), false).await;
}

/// 70 bytes ask for 16 blocks: a peer that asks for the same blocks again and again draws
/// block bytes from our store, their checks and our upload. Past its budget for them (here
/// 16 KiB a second, a second of them at once) nothing more is read from it until it has paid
/// back what it drew beyond: it is slowed, not banned (it only asked). Without the budget
/// all the answers came at once. The control: an honest peer syncs the same blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_blocks_asked_for_again_and_again() {
    let blocks = chain_with(vec![Vec::new(); 16], |_| {});
    let scene = scene_on(&blocks, |config| {
        config.served_kib_per_second_max = 16;
        config.served_burst_seconds = 1;
    })
    .await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let hashes: Vec<BlockHash> = blocks.iter().map(Block::hash).collect();
    let answer_kib = blocks.iter().map(Block::encoded_len).sum::<usize>() as f64 / 1_024.0;
    let requests = 24;
    let burst: Vec<u8> = (0..requests)
        .flat_map(|_| frame::encode(&Message::GetBlocks(hashes.clone())))
        .collect();
    let start = tokio::time::Instant::now();
    hostile.raw(&burst).await;
    let mut answered = 0;
    while answered < requests {
        match hostile.receive().await {
            Some(Message::Blocks(_)) => answered += 1,
            Some(Message::Ping { nonce }) => {
                let tip = genesis_tip();
                hostile.send(&Message::Pong { nonce, tip }).await;
            }
            Some(_) => {}
            None => panic!("the node hung up after {answered} answers"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Each answer goes out when its request is handled; what the first second's worth does
    // not cover is paid back at 16 KiB a second before the next request is read. The reader
    // may have read up to `peer_frames_unhandled_max` requests before the node handled the
    // one that paused it, so those are not counted as owed before the last answer.
    let read_ahead = powchain_node::driver::DriverConfig::new().peer_frames_unhandled_max;
    let owed = ((requests - 1 - read_ahead) as f64 * answer_kib - 16.0) / 16.0;
    println!("{requests} answers of {answer_kib:.1} KiB in {elapsed:.2} s ({owed:.2} s owed)");
    assert!(elapsed >= owed * 0.9, "{elapsed:.2} s, owed {owed:.2} s");
    let key = hostile.key.clone();
    let (connected, banned) = scene
        .node
        .handle
        .inspect(move |node| {
            (
                node.peer_by_address(&key).is_some(),
                node.is_banned(&key, now()),
            )
        })
        .await
        .unwrap();
    assert!(connected && !banned, "asking is not misbehaviour");
    let tip = blocks.last().unwrap().hash();
    reaches(
        &scene.honest,
        tip,
        "the honest peer to sync the same blocks",
    )
    .await;
}

/// Headers requests beyond what any syncing node sends (it asks for the next 2,000 only as
/// its queue drains): each 70-byte request buys an answer of up to 360 KB. Past the budget
/// (2 a second, 60 seconds of them at once) the peer is banned. The honest peer of the scene
/// synced the same chain by headers meanwhile, and stays: the control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_requests_beyond_any_syncing_node() {
    let blocks = chain_with(vec![Vec::new(); 50], |_| {});
    let scene = scene_on(&blocks, |_| {}).await;
    let tip = blocks.last().unwrap().hash();
    reaches(&scene.honest, tip, "the honest peer to sync by headers").await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let config = NodeConfig::new(1);
    let budget =
        u64::from(config.headers_requests_per_second_max) * config.headers_requests_burst_seconds;
    let request = frame::encode(&Message::GetHeaders {
        locator: vec![spec().genesis_hash()],
    });
    hostile.raw(&request.repeat(budget as usize + 10)).await;
    hostile.drain().await;
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::TooManyHeadersRequests),
        true,
    )
    .await;
}

/// Validly signed transfers from an account that holds nothing: refused on a lookup, before
/// any signature is checked, each one charged to the sender; past the per-minute budget of
/// refusals the peer is disconnected (not banned: a peer a block behind sends refusable
/// transfers honestly). Before, every one cost a signature check and the peer nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validly_signed_transfers_from_an_unfunded_account() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let unfunded = Keypair::dev(100);
    let budget = NodeConfig::new(1).refused_transfers_per_minute_max as u64;
    let forged: Vec<Transfer> = (0..budget + 100)
        .map(|nonce| signed(&unfunded, nonce, Amount(1)))
        .collect();
    for batch in forged.chunks(100) {
        hostile.send(&Message::Transactions(batch.to_vec())).await;
    }
    outcome(
        scene,
        &hostile,
        is(DisconnectReason::TooManyRefusedTransfers),
        false,
    )
    .await;
}

/// Transfers that break a rule whatever the state (a fee below the minimum, validly signed)
/// are what no honest node relays: misbehaviour at the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_breaks_the_rules_is_misbehaviour() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    let cheap = signed(&Keypair::dev(0), 0, Amount(0));
    hostile.send(&Message::Transactions(vec![cheap])).await;
    let said = outcome(scene, &hostile, DisconnectReason::is_misbehaviour, true).await;
    assert!(
        matches!(said, DisconnectReason::InvalidTransaction(_)),
        "{said:?}"
    );
}

/// Valid transfers beyond what the mempool takes from each sender (64 nonces ahead): not
/// misbehaviour, so the peer stays; the pool takes what its bounds allow and refuses the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_valid_transfers_beyond_the_mempools_bounds() {
    let scene = scene().await;
    let mut hostile = Hostile::connect(&scene).await;
    hostile.hello(|_| {}).await;
    // Accounts 0 to 4 (account 5 is the recipient of `transfers`).
    let all: Vec<Transfer> = (0..5).flat_map(|from| transfers(from, 0, 100)).collect();
    for batch in all.chunks(200) {
        hostile.send(&Message::Transactions(batch.to_vec())).await;
    }
    let bound = 5 * 65; // nonces 0 to 64 from each of the 5 accounts
    let key = hostile.key.clone();
    let start = tokio::time::Instant::now();
    loop {
        let probe = key.clone();
        let (pooled, connected, banned) = scene
            .node
            .handle
            .inspect(move |node| {
                (
                    node.mempool().len(),
                    node.peer_summaries().iter().any(|p| p.address == probe),
                    node.is_banned(&probe, now()),
                )
            })
            .await
            .unwrap();
        assert!(pooled <= bound, "the pool took {pooled}, over {bound}");
        if !connected {
            let mut scene = scene;
            let said = gone_reason(&mut scene.node, &key).await;
            panic!("a peer with valid transfers was dropped (banned {banned}): {said}");
        }
        if pooled == bound {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "only {pooled} of {bound} were pooled"
        );
        hostile.stay_alive(Duration::from_millis(20)).await;
    }
    assert_eq!(snapshot(&scene.node).await.tip, scene.before.tip);
    println!("the node pooled {bound} of {} and kept the peer", all.len());
}

/// What a peer receives carries no private key: a transfer the honest peer signs crosses the
/// node to the listener, and the bytes are searched for every dev account's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_private_key_crosses_the_wire() {
    let scene = scene().await;
    let mut listener = Hostile::connect(&scene).await;
    listener.hello(|_| {}).await;
    // Relay goes to ready peers: wait until the node counts the listener as one.
    let key = listener.key.clone();
    let start = tokio::time::Instant::now();
    while !scene
        .node
        .handle
        .inspect({
            let key = key.clone();
            move |node| node.peer_summaries().iter().any(|p| p.address == key)
        })
        .await
        .unwrap()
    {
        assert!(
            start.elapsed() < DEADLINE,
            "the listener never became a peer"
        );
        listener.stay_alive(Duration::from_millis(10)).await;
    }
    let transfer = transfers(2, 0, 1).remove(0);
    // The transfer as it travels: a one-transfer message is its variant, a count, then it.
    let on_the_wire = Message::Transactions(vec![transfer.clone()]).encode()[2..].to_vec();
    scene
        .honest
        .handle
        .command(Command::SubmitTransfer(transfer))
        .await;
    let start = tokio::time::Instant::now();
    loop {
        listener.stay_alive(Duration::from_millis(50)).await;
        let seen = &listener.seen;
        if seen
            .windows(on_the_wire.len())
            .any(|w| w == on_the_wire.as_slice())
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the transfer never reached the listener"
        );
    }
    for index in 0..6 {
        let secret = Keypair::dev(index).secret();
        assert!(
            !listener.seen.windows(32).any(|w| w == secret.as_slice()),
            "dev account {index}'s key crossed the wire"
        );
    }
}

// ---- variants of the end checks --------------------------------------------------------------

/// As [`outcome`], for an attack whose first block is valid: the node may keep it.
async fn outcome_allowing_block_one(
    scene: Scene,
    hostile: &Hostile,
    first: &Block,
) -> DisconnectReason {
    let mut scene = scene;
    let key = hostile.key.clone();
    let said = gone_reason(&mut scene.node, &key).await;
    let tip = snapshot(&scene.node).await.tip;
    assert!(
        tip == scene.before.tip || tip == first.hash(),
        "the tip moved past the valid block"
    );
    let banned = scene
        .node
        .handle
        .inspect(move |node| node.is_banned(&key, now()))
        .await
        .unwrap();
    assert!(banned, "banned after {said}");
    println!("the node said: {said}; banned: {banned}");
    said
}

// ---- the cases: header sync ----------------------------------------------------------------

/// A chain whose difficulty retargets, from 10 bits at genesis down to 2 at the easiest, so
/// that headers at the easiest target are about 256 times cheaper than honest ones.
fn retargeting_spec() -> ChainSpec {
    let mut spec = ChainSpec::dev();
    spec.name = "hostile-retarget".into();
    spec.difficulty_bits = powchain_chain::DifficultyBits::new(10).unwrap();
    if let Some(rule) = &mut spec.retarget {
        rule.easiest = powchain_chain::DifficultyBits::new(2).unwrap();
    }
    spec
}

/// Cheap headers: one honest header, then a thousand on it at the chain's easiest target,
/// which only the rules' own target after the parent may refuse (the parent is only a queued
/// header). Before, they were all queued (100,000 in 15 s of one core filled the queue and
/// froze the node). Now the second is refused as the wrong target and the sender banned, its
/// one queued header leaving with it; an honest peer then syncs the same node: the control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_headers_on_a_queued_parent() {
    let spec = retargeting_spec();
    let honest_blocks = chain_of(spec.clone(), vec![Vec::new(); 30], |_| {});
    let mut victim = start_with(spec.clone(), NODE_ID, &[], &[], |_| {}).await;
    let mut attacker = Hostile::connect_to(&victim).await;
    let first = honest_blocks[0].header;
    let mut cheap = Vec::new();
    let mut parent = first;
    for _ in 0..1_000 {
        let mut header = parent;
        header.prev_hash = parent.hash();
        header.height = Height(parent.height.0 + 1);
        header.time = Timestamp(parent.time.0 + 2_000);
        header.target = spec.retarget.unwrap().easiest.target();
        header.nonce = 0;
        while !header.meets_own_target() {
            header.nonce += 1;
        }
        cheap.push(header);
        parent = header;
    }
    let claim = TipSummary {
        hash: parent.hash(),
        height: parent.height,
        work: Work(u128::from(u32::MAX)),
    };
    attacker
        .hello(|h| {
            h.genesis = spec.genesis_hash();
            h.tip = claim;
        })
        .await;
    while !matches!(
        attacker.receive().await,
        Some(Message::GetHeaders { .. }) | None
    ) {}
    let mut headers = vec![first];
    headers.extend(cheap);
    attacker.send(&Message::Headers(headers)).await;
    let said = gone_reason(&mut victim, &attacker.key).await;
    assert!(
        matches!(
            said,
            DisconnectReason::InvalidHeaders(HeaderFault::WrongTarget(_))
        ),
        "{said:?}"
    );
    let key = attacker.key.clone();
    let (banned, queued) = victim
        .handle
        .inspect(move |node| (node.is_banned(&key, now()), node.download_queue_len()))
        .await
        .unwrap();
    assert!(banned);
    assert_eq!(queued, 0, "nothing the attacker queued is left");
    // The control: an honest peer with the real chain syncs the same node.
    let _honest = start_with(spec, 7, &[&victim.address], &honest_blocks, |_| {}).await;
    let tip = honest_blocks.last().unwrap().hash();
    reaches(&victim, tip, "the node to sync the honest chain").await;
}

/// `count` valid blocks on genesis paying dev account 5 (so not those of [`chain_with`]), and
/// the chain work they add up to.
fn fork_from_genesis(count: u64) -> (Vec<Block>, Work) {
    let mut chain = Chain::open(spec(), MemStore::new(), ChainConfig::default()).unwrap();
    let mempool = Mempool::new(MempoolConfig::default());
    let mut blocks = Vec::new();
    for index in 0..count {
        let template = chain
            .block_template(&mempool, Keypair::dev(5).address(), now(), index)
            .unwrap();
        let block = seal(template.block);
        chain.import_block(block.clone(), now()).unwrap();
        blocks.push(block);
    }
    (blocks, chain.tip().chain_work)
}

/// Issue 16's fork from deep in the chain, where blocks were cheap: a peer with a real,
/// valid branch from genesis, half as heavy as ours, tells of its tip. To be asked at all it
/// claims more than the branch has (within `presync_margin_blocks` of our work, no more than
/// ours: a claim below the threshold is never asked about, one above ours that its headers
/// fall short of is a ban). Its headers are checked, but none of its blocks is asked for:
/// the branch never comes within the margin. It did nothing that costs us, so it stays;
/// the control, an honest peer, syncs our chain from the node meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_fork_from_deep_in_the_chain() {
    let main = chain_with(vec![Vec::new(); 60], |_| {});
    let scene = scene_on(&main, |config| config.presync_margin_blocks = 10).await;
    let (fork, fork_work) = fork_from_genesis(30);
    let fork_tip = fork.last().unwrap().header;
    let per_block = fork_tip.target.work().0;
    let mut attacker = Hostile::connect(&scene).await;
    attacker
        .hello(|h| {
            h.tip = TipSummary {
                hash: fork_tip.hash(),
                height: fork_tip.height,
                // 55 blocks' work: above 60 less the margin of 10, below our 60.
                work: Work(fork_work.0 + 25 * per_block),
            }
        })
        .await;
    while !matches!(attacker.receive().await, Some(Message::Hello(_)) | None) {}
    attacker.send(&Message::Announce { header: fork_tip }).await;
    while !matches!(
        attacker.receive().await,
        Some(Message::GetHeaders { .. }) | None
    ) {}
    let headers = fork.iter().map(|block| block.header).collect();
    attacker.send(&Message::Headers(headers)).await;
    // What the node does with the headers it does before it answers the next message.
    attacker.send(&Message::Ping { nonce: 77 }).await;
    loop {
        match attacker.receive().await {
            Some(Message::Pong { nonce: 77, .. }) => break,
            Some(Message::GetBlocks(wanted)) => {
                panic!(
                    "the node asked for {} blocks of the light fork",
                    wanted.len()
                )
            }
            Some(Message::GetCompactBlock(_)) => {
                panic!("the node asked for a block of the light fork")
            }
            Some(_) => {}
            None => panic!("the node hung up on a peer that did nothing wrong"),
        }
    }
    let queued = scene
        .node
        .handle
        .inspect(|node| node.download_queue_len())
        .await
        .unwrap();
    assert_eq!(queued, 0, "nothing of the fork is queued");
    let main_tip = main.last().unwrap().hash();
    reaches(&scene.honest, main_tip, "the honest peer to sync our chain").await;
    let key = attacker.key.clone();
    let still_there = scene
        .node
        .handle
        .inspect(move |node| node.peer_by_address(&key).is_some())
        .await
        .unwrap();
    assert!(still_there, "a light fork is not misbehaviour");
}

/// How long a fresh node takes to sync `blocks` from an honest peer that dials it, with
/// `attack` started on the fresh node first (it returns the attacker's key).
async fn fresh_node_syncs(
    blocks: &[Block],
    attack: impl AsyncFnOnce(&TestNode) -> Option<String>,
) -> (Duration, TestNode, Option<String>) {
    let victim = start(NODE_ID, &[]).await;
    let attacker = attack(&victim).await;
    let started = tokio::time::Instant::now();
    let _honest = start_on(7, &[&victim.address], blocks, |_| {}).await;
    let target = blocks.last().unwrap().hash();
    reaches(
        &victim,
        target,
        "the fresh node to sync from the honest peer",
    )
    .await;
    (started.elapsed(), victim, attacker)
}

/// The liar of issue 16: it claims a huge tip in its hello, takes the header-sync slot,
/// answers each request just before the timeout with "no headers", and claims again at
/// once in an unsolicited pong. Before, the slot went back to it every time and a fresh node
/// never synced from its honest peer. Now a claim its headers do not back is misbehaviour,
/// and the slot goes to the next candidate at once. A control run without the liar beside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liar_holding_the_header_sync_slot() {
    let blocks = chain_with(vec![Vec::new(); 60], |_| {});
    let claim = TipSummary {
        hash: BlockHash::ZERO,
        height: Height(1_000_000),
        work: Work(u128::MAX / 2),
    };
    let (control, _, _) = fresh_node_syncs(&blocks, async |_| None).await;
    let (attacked, mut victim, key) = fresh_node_syncs(&blocks, async |victim| {
        let mut liar = Hostile::connect_to(victim).await;
        liar.hello(|h| h.tip = claim).await;
        // The slot is the liar's before the honest peer connects.
        while !matches!(
            liar.receive().await,
            Some(Message::GetHeaders { .. }) | None
        ) {}
        let key = liar.key.clone();
        tokio::spawn(async move {
            let mut asked = true;
            loop {
                if asked {
                    // The attack's own delay: just inside the 900 ms headers timeout.
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    liar.send(&Message::Headers(Vec::new())).await;
                    let pong = Message::Pong {
                        nonce: 0,
                        tip: claim,
                    };
                    liar.send(&pong).await;
                }
                asked = match liar.receive().await {
                    Some(Message::GetHeaders { .. }) => true,
                    Some(Message::Ping { nonce }) => {
                        liar.send(&Message::Pong { nonce, tip: claim }).await;
                        false
                    }
                    Some(_) => false,
                    None => return,
                };
            }
        });
        Some(key)
    })
    .await;
    println!("synced 60 blocks in {control:?} without the liar, {attacked:?} with it");
    let key = key.unwrap();
    let said = gone_reason(&mut victim, &key).await;
    assert!(
        matches!(
            said,
            DisconnectReason::InvalidHeaders(HeaderFault::UnbackedClaim { .. })
        ),
        "{said:?}"
    );
    let banned = victim
        .handle
        .inspect(move |node| node.is_banned(&key, now()))
        .await
        .unwrap();
    assert!(banned, "the liar is refused afterwards");
}

// ---- the cases: connection slots -----------------------------------------------------------

/// One host fills every inbound slot with live, well-behaved connections. Before, whoever
/// came first kept the slots and an honest newcomer from elsewhere was refused ("too many
/// inbound connections"). Now the newcomer gets in: the host's group, the largest, loses its
/// youngest connection (evicted, not banned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_filling_every_inbound_slot() {
    const SLOTS: usize = 8;
    let mut victim = start_on(NODE_ID, &[], &[], |c| c.inbound_max = SLOTS).await;
    let mut keys = Vec::new();
    for index in 0..SLOTS as u64 {
        let mut hostile = Hostile::connect_to(&victim).await;
        hostile.hello(|h| h.node_id = 1_000 + index).await;
        keys.push(hostile.key.clone());
        tokio::spawn(async move { hostile.stay_alive(DEADLINE).await });
    }
    eventually("the host to hold every inbound slot", DEADLINE, || async {
        victim.handle.inspect(|n| n.peers().len()).await.unwrap() == SLOTS
    })
    .await;
    // The honest newcomer, from another network group (an in-memory pipe is its own).
    let honest = start(7, &[]).await;
    assert!(driver::memory_link(&honest.handle, &victim.handle, "victim", 1 << 16).await);
    eventually("the honest newcomer to be a peer", DEADLINE, || async {
        honest.handle.inspect(|n| n.peers().len()).await.unwrap() == 1
    })
    .await;
    let evicted = loop {
        match tokio::time::timeout(DEADLINE, victim.events.recv()).await {
            Ok(Some(Event::PeerGone {
                address, reason, ..
            })) => break (address, reason),
            Ok(Some(_)) => continue,
            _ => panic!("nobody made room"),
        }
    };
    assert_eq!(evicted.1, DisconnectReason::Evicted, "{evicted:?}");
    assert!(
        keys.contains(&evicted.0),
        "one of the host's connections went"
    );
    let key = evicted.0.clone();
    let banned = victim
        .handle
        .inspect(move |node| node.is_banned(&key, now()))
        .await
        .unwrap();
    assert!(!banned, "eviction is not a ban");
}

/// Why the node dropped the connection from `key`.
async fn gone_reason(node: &mut TestNode, key: &str) -> DisconnectReason {
    loop {
        match tokio::time::timeout(DEADLINE, node.events.recv()).await {
            Ok(Some(Event::PeerGone {
                address, reason, ..
            })) if address == key => return reason,
            Ok(Some(_)) => continue,
            _ => panic!("the node never dropped the hostile peer"),
        }
    }
}
