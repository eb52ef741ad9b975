//! Real network faults on a real kernel: three `powchain node` processes, each in its own Linux
//! network namespace, in a line A — B — C over veth pairs. The B — C link is taken down (a
//! partition); both sides mine; the link comes back; the nodes must agree on one tip and every
//! transfer must be confirmed, the one mined only on the losing side included. Where the kernel
//! has `netem`, the links also get delay and loss.
//!
//! Needs root and `ip netns` (iproute2). Without them the test says it was skipped, and why.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DEADLINE, Scratch};
use serde_json::Value;

/// Runs a command; whether it succeeded, and its stderr.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    match Command::new(program).args(args).output() {
        Ok(output) => (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        Err(error) => (false, error.to_string()),
    }
}

fn must(program: &str, args: &[&str]) {
    let (ok, err) = run(program, args);
    assert!(ok, "{program} {args:?}: {err}");
}

/// The namespaces and their links, removed when dropped.
struct Net {
    namespaces: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// A node process inside a namespace, killed when dropped.
struct NsNode {
    child: Child,
    ns: String,
    datadir: String,
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NsNode {
    fn start(ns: &str, datadir: &Path, args: &[&str]) -> NsNode {
        let datadir = datadir.to_str().unwrap().to_owned();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_powchain"), "node"])
            .args([
                "--datadir",
                &datadir,
                "--difficulty",
                "12",
                "--miner-threads",
                "1",
            ])
            .args(["--no-repl", "--rpc", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("powchain node starts in its namespace");
        let node = NsNode {
            child,
            ns: ns.to_owned(),
            datadir,
        };
        let start = Instant::now();
        while !Path::new(&node.datadir).join("api.address").exists() {
            assert!(
                start.elapsed() < DEADLINE,
                "the node in {ns} never served its API"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// A client command run inside the node's namespace (its API is on that loopback).
    fn client(&self, args: &[&str]) -> Value {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_powchain")])
            .args(args)
            .args(["--datadir", &self.datadir, "--json"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?} in {}: {}",
            self.ns,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn status(&self) -> Value {
        self.client(&["status"])
    }

    /// A transfer of one coin from dev account `from` to dev account 5, then a block.
    fn pay_and_mine(&self, from: u64) {
        let before = self.status()["height"].as_u64().unwrap();
        self.client(&[
            "send",
            "--from",
            &from.to_string(),
            "--to",
            "5",
            "--amount",
            "1",
        ]);
        self.client(&["mine"]);
        assert!(self.status()["height"].as_u64().unwrap() > before);
    }
}

/// Polls `done` until it holds, failing at the deadline with `what`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_partition_between_namespaces_heals_and_loses_no_transfer() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let probe = format!("pcprobe{}", std::process::id());
    if !root || !run("ip", &["netns", "add", &probe]).0 {
        println!(
            "skipped: the network-namespace test needs root and `ip netns` (iproute2); \
             this machine allows neither or not both"
        );
        return;
    }
    let _ = run("ip", &["netns", "del", &probe]);

    let tag = std::process::id() % 100_000;
    let [a, b, c] = ["a", "b", "c"].map(|n| format!("pc{n}{tag}"));
    let _net = Net {
        namespaces: vec![a.clone(), b.clone(), c.clone()],
    };
    for ns in &_net.namespaces {
        must("ip", &["netns", "add", ns]);
        must(
            "ip",
            &["netns", "exec", ns, "ip", "link", "set", "lo", "up"],
        );
    }
    // A — B on 10.77.1.0/24, B — C on 10.77.2.0/24.
    let links = [
        (
            &a,
            format!("va{tag}"),
            "10.77.1.1/24",
            &b,
            format!("vb{tag}"),
            "10.77.1.2/24",
        ),
        (
            &b,
            format!("wb{tag}"),
            "10.77.2.1/24",
            &c,
            format!("wc{tag}"),
            "10.77.2.2/24",
        ),
    ];
    for (left, left_if, left_ip, right, right_if, right_ip) in &links {
        must(
            "ip",
            &[
                "link", "add", left_if, "type", "veth", "peer", "name", right_if,
            ],
        );
        for (ns, interface, ip) in [(left, left_if, left_ip), (right, right_if, right_ip)] {
            must("ip", &["link", "set", interface, "netns", ns]);
            must(
                "ip",
                &[
                    "netns", "exec", ns, "ip", "addr", "add", ip, "dev", interface,
                ],
            );
            must(
                "ip",
                &["netns", "exec", ns, "ip", "link", "set", interface, "up"],
            );
        }
    }
    // Delay and loss where the kernel has netem.
    let mut netem = true;
    for (ns, interface) in [(&a, format!("va{tag}")), (&c, format!("wc{tag}"))] {
        let (ok, err) = run(
            "ip",
            &[
                "netns", "exec", ns, "tc", "qdisc", "add", "dev", &interface, "root", "netem",
                "delay", "20ms", "5ms", "loss", "1%",
            ],
        );
        if !ok {
            netem = false;
            println!(
                "netem unavailable ({}): links without delay and loss",
                err.trim()
            );
            break;
        }
    }
    if netem {
        println!("netem: 20 ms ± 5 ms delay and 1% loss on the A and C ends");
    }

    let dir = Scratch::new("netns");
    let node_a = NsNode::start(&a, &dir.0.join("a"), &["--listen", "10.77.1.1:9000"]);
    let node_b = NsNode::start(
        &b,
        &dir.0.join("b"),
        &["--listen", "0.0.0.0:9000", "--peers", "10.77.1.1:9000"],
    );
    let node_c = NsNode::start(
        &c,
        &dir.0.join("c"),
        &["--listen", "10.77.2.2:9000", "--peers", "10.77.2.1:9000"],
    );
    let nodes = [&node_a, &node_b, &node_c];
    eventually("the line to connect", || {
        node_b.status()["peers"].as_u64() == Some(2)
    });
    let base = node_a.client(&["balance", "5"])["balance"]
        .as_u64()
        .unwrap();
    let agreed = |height: u64| {
        let tips: Vec<Value> = nodes.iter().map(|n| n.status()).collect();
        tips.iter().all(|t| t["tip"] == tips[0]["tip"])
            && tips[0]["height"].as_u64() >= Some(height)
    };

    node_a.pay_and_mine(0);
    eventually("all three at height 1", || agreed(1));

    // The partition: B — C down. A's side mines two blocks, C alone one.
    let b_to_c = format!("wb{tag}");
    must(
        "ip",
        &["netns", "exec", &b, "ip", "link", "set", &b_to_c, "down"],
    );
    node_a.pay_and_mine(0);
    node_a.pay_and_mine(1);
    node_c.pay_and_mine(2);
    assert_ne!(
        node_a.status()["tip"],
        node_c.status()["tip"],
        "the sides diverged"
    );

    // The heal: C takes A's heavier chain; its own transfer goes back to the mempools.
    let healed = Instant::now();
    must(
        "ip",
        &["netns", "exec", &b, "ip", "link", "set", &b_to_c, "up"],
    );
    eventually("one tip again after the heal", || agreed(3));
    println!(
        "one tip again {:.1} s after the heal",
        healed.elapsed().as_secs_f64()
    );
    eventually("C's orphaned transfer to reach A", || {
        node_a.status()["mempool_count"].as_u64() >= Some(1)
    });
    node_a.pay_and_mine(3);
    eventually("every transfer confirmed everywhere", || {
        agreed(4)
            && nodes
                .iter()
                .all(|n| n.client(&["balance", "5"])["balance"].as_u64() == Some(base + 5))
    });
}
