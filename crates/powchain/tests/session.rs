//! Real `powchain node` processes driven through stdin, as a person would type.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{DEADLINE, NodeProcess};
use powchain_testkit::{TempDir, wait_until};

/// Seed 000's session, typed into two node processes on unix sockets.
#[test]
fn the_seed_000_session_on_two_nodes() {
    let dir = TempDir::new("seed000");
    let common = [
        "--socket-dir",
        dir.arg(),
        "--chain",
        "seed",
        "--ephemeral",
        "--miner-threads",
        "1",
    ];
    let mut zero = NodeProcess::start(&[&["-n", "0"][..], &common].concat());
    zero.expect("others connect with");
    let mut one = NodeProcess::start(&[&["-n", "1"][..], &common].concat());
    one.expect("others connect with");

    // Peers are named by node number, as the seed's session does, both ways: node 1
    // dialled node 0, and node 0 knows it by what its hello said, not by the connection.
    one.send("ConnectTo 0");
    one.expect("node 0 connected");
    zero.expect("node 1 connected");
    one.send("EchoTo 0 HELLO");
    zero.expect("echo from node 1: HELLO");
    one.expect("echo reply from node 0: HELLO");
    zero.send("EchoTo 1 WORLD");
    zero.expect("echo reply from node 1: WORLD");
    zero.send("peers");
    zero.expect("node 1: ");

    zero.send("MakeTransaction 2 3 5");
    let accepted = zero.expect("of 5 coins accepted");
    let id = accepted.split_whitespace().nth(1).unwrap().to_owned();
    zero.send("MakeTransaction 3 4 6");
    zero.expect("of 6 coins accepted");
    zero.send("Mine");
    let mined = zero.expect("mined block 1");
    // The 16 digits the line printed find the block, on the other node too.
    let short = mined.split_whitespace().nth(3).unwrap().to_owned();
    zero.send(&format!("block {short}"));
    zero.expect(&format!("block 1 {short}"));

    one.ask_until("GetBalance 2", "Balance of 2", "Balance of 2: 5");
    one.ask_until("GetBalance 3", "Balance of 3", "Balance of 3: 9");
    one.ask_until("GetBalance 4", "Balance of 4", "Balance of 4: 16");
    one.send(&format!("tx {id}"));
    one.expect("in block 1 (1 confirmation)");
    one.send(&format!("block {short}"));
    one.expect(&format!("block 1 {short}"));
    one.send(&format!("tx {}", &id[..10]));
    one.expect("in block 1 (1 confirmation)");
    one.send("block 0000abc");
    one.expect("at least 8");
    // A node id that nobody runs.
    one.send("ConnectTo 7");
    one.expect("node 7 is not active");
    // A disconnect stays a disconnect: the node does not dial its peer straight back.
    one.send("disconnect 0");
    one.expect("disconnected from node 0; not dialled again");
    // The event's line and the answer come in either order.
    if !one
        .seen
        .iter()
        .any(|line| line.contains("node 0 disconnected"))
    {
        one.expect("node 0 disconnected");
    }
    zero.expect("node 1 disconnected");
    // Node 0's next peer report (every 10 s) comes long after a redial would have.
    let report = zero.expect("peers known,");
    assert!(report.ends_with(", 0 connected"), "{report}");
    one.send("peers");
    one.expect("no peers");
    zero.quit();
    one.quit();
}

/// A mistyped address is said to fail once, retried less and less often, and given up
/// after a few tries, instead of a line every second for as long as the node runs.
#[test]
fn a_dial_that_keeps_failing_is_said_once_and_given_up() {
    let dir = TempDir::new("giveup");
    let mut node =
        NodeProcess::start(&["--socket-dir", dir.arg(), "--ephemeral", "--chain", "seed"]);
    node.expect("not listening");
    // Port 1 on loopback: refused at once, every time.
    node.send("connect 127.0.0.1:1");
    node.expect("forget` stops it");
    node.expect("gave up on 127.0.0.1:1: no answer in 5 tries");
    let failures = node
        .seen
        .iter()
        .filter(|line| line.contains("forget` stops it"))
        .count();
    assert_eq!(failures, 1, "{:?}", node.seen);
    node.quit();
}

/// Whatever is typed, the session answers with an error and goes on.
#[test]
fn junk_on_stdin_gets_errors_never_a_crash() {
    let dir = TempDir::new("junk");
    let mut node =
        NodeProcess::start(&["--socket-dir", dir.arg(), "--ephemeral", "--chain", "seed"]);
    node.expect("not listening");
    node.send(&"A".repeat(10_000));
    node.expect("error:");
    node.send_bytes(&[0xff, 0xfe, 0x00, 0x01, b'\n']);
    node.expect("error:");
    for line in [
        "MakeTransaction 2 3",
        "GetBalance nobody",
        "EchoTo 9 hi",
        "block zz",
        "tx 12",
        "automine maybe",
    ] {
        node.send(line);
        node.expect("error:");
    }
    node.send("MakeTransaction 2 2 5");
    node.expect("cannot be the same");
    node.send("MakeTransaction 2 3 11");
    node.expect("not enough");
    node.send("GetBalance 3");
    node.expect("Balance of 3: 10");
    node.quit();
}

impl NodeProcess {
    /// The tip hash the `chain` command reports.
    fn tip(&mut self) -> String {
        self.send("chain");
        let line = self.expect("tip ");
        line.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    /// The TCP address from the start-up line "others connect with: --peers ADDR".
    fn tcp_address(&mut self) -> String {
        let line = self.expect("others connect with");
        line.rsplit("--peers ")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

fn all_agree(nodes: &mut [&mut NodeProcess]) -> bool {
    let tips: Vec<String> = nodes.iter_mut().map(|node| node.tip()).collect();
    tips.windows(2).all(|pair| pair[0] == pair[1])
}

/// Waits for one tip everywhere. Miners stopped at the same moment can leave branches of
/// equal work, which nothing resolves: then the first node mines one more block.
fn wait_for_agreement(nodes: &mut [&mut NodeProcess], what: &str) {
    let mut nudge = Instant::now();
    wait_until(what, DEADLINE, || {
        if all_agree(nodes) {
            return true;
        }
        if nudge.elapsed() > Duration::from_secs(2) {
            nodes[0].send("automine on");
            nodes[0].expect("mined block");
            nodes[0].send("automine off");
            nodes[0].expect("automine off");
            nudge = Instant::now();
        }
        false
    });
}

/// Seed 003's way: nodes with a database file, a TCP port and a peer list, mining all the
/// time; one is killed and restarted from its file.
#[test]
fn three_seed_003_nodes_converge_and_one_restarts_from_its_file() {
    let dir = TempDir::new("seed003");
    let db = |name: &str| dir.file_arg(name);
    let common = [
        "--difficulty",
        "20",
        "--miner-threads",
        "1",
        "--mine",
        "--listen",
        "127.0.0.1:0",
    ];
    let mut a = NodeProcess::start(&[&["--db", &db("a.redb")][..], &common].concat());
    let address_a = a.tcp_address();
    let mut b = NodeProcess::start(
        &[&["--db", &db("b.redb"), "--peers", &address_a][..], &common].concat(),
    );
    let address_b = b.tcp_address();
    let mut c = NodeProcess::start(
        &[&["--db", &db("c.redb"), "--peers", &address_b][..], &common].concat(),
    );
    c.tcp_address();
    // Each node has its own data directory beside its file, so the clients reach each one,
    // and a second node on a directory in use is refused with what to do.
    let mut apis = Vec::new();
    for name in ["a", "b", "c"] {
        let datadir = dir.file_arg(&format!("{name}.data"));
        wait_until("the node's API address", DEADLINE, || {
            dir.file(&format!("{name}.data/api.address")).exists()
        });
        let (ok, status, err) = common::powchain(&["status", "--datadir", &datadir, "--json"]);
        assert!(ok, "{name}: {err}");
        apis.push(std::fs::read_to_string(dir.file(&format!("{name}.data/api.address"))).unwrap());
        assert!(status.contains("\"height\""), "{status}");
    }
    apis.dedup();
    assert_eq!(apis.len(), 3, "the nodes share an API address: {apis:?}");
    let (ok, _, err) =
        common::powchain(&["node", "--db", &db("a.redb"), "--no-repl", "--rpc", "off"]);
    assert!(!ok, "a second node on a.data started");
    assert!(err.contains("in use by another running node"), "{err}");
    assert!(err.contains("--datadir"), "{err}");
    for node in [&mut a, &mut b, &mut c] {
        node.expect("mined block 2");
    }
    for node in [&mut a, &mut b, &mut c] {
        node.send("automine off");
        node.expect("automine off");
    }
    wait_for_agreement(&mut [&mut a, &mut b, &mut c], "the three nodes to agree");

    // C dies abruptly; A mines on; C comes back from its file and catches up.
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    drop(c);
    a.send("automine on");
    a.expect("mined block");
    a.send("automine off");
    a.expect("automine off");
    let mut c = NodeProcess::start(&[
        "--db",
        &db("c.redb"),
        "--peers",
        &address_b,
        "--difficulty",
        "20",
        "--miner-threads",
        "1",
        "--listen",
        "127.0.0.1:0",
    ]);
    c.expect("tip ");
    wait_until("the restarted node to catch up", DEADLINE, || {
        all_agree(&mut [&mut a, &mut b, &mut c])
    });
    for node in [a, b, c] {
        node.quit();
    }
    // Every node's API files went with it; nobody else's were touched before.
    for name in ["a", "b", "c"] {
        assert!(
            !dir.file(&format!("{name}.data/api.address")).exists(),
            "{name}"
        );
    }
    // Each database file holds the chain.
    let chain = |name: &str| {
        // What `--difficulty 20` makes of the dev chain.
        let spec = powchain_testkit::spec("dev", 20);
        let store = powchain_node::store::RedbStore::open(&dir.file(name)).unwrap();
        powchain_chain::Chain::open(spec, store, Default::default())
            .unwrap()
            .tip()
            .hash
    };
    let tip_a = chain("a.redb");
    assert_eq!(chain("b.redb"), tip_a);
    assert_eq!(chain("c.redb"), tip_a);
}
