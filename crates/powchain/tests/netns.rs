//! Real network faults on a real kernel: three `powchain node` processes, each in its own Linux
//! network namespace, in a line A — B — C over veth pairs. The B — C link is taken down (a
//! partition); both sides mine; the link comes back; the nodes must agree on one tip and every
//! transfer must be confirmed, the one mined only on the losing side included.
//!
//! Delay and loss: where the kernel has `netem`, on the A and C ends of the links. Where it
//! does not, C reaches B through a delaying proxy in B's namespace (this test binary, run again
//! as `netns_proxy`): every chunk waits 20 ms ± 5 ms, and 1% of them 200 ms more, the stall a
//! lost segment costs TCP before its retransmission (a proxy inside a TCP stream cannot drop
//! bytes, only delay them).
//!
//! Needs root and `ip netns` (iproute2). Without them the test says it was skipped, and why.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::DEADLINE;
use powchain_testkit::{TempDir, wait_until};
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

/// The delaying proxy: when `POWCHAIN_NETNS_PROXY` is `LISTEN>TARGET`, forwards every
/// connection to LISTEN on to TARGET, delaying each chunk as the module docs say, until killed.
/// Run as a test of its own so the test binary can start it inside a namespace; without the
/// variable it does nothing.
#[test]
fn netns_proxy() {
    let Ok(route) = std::env::var("POWCHAIN_NETNS_PROXY") else {
        return;
    };
    let (listen, target) = route.split_once('>').expect("LISTEN>TARGET");
    let listener = std::net::TcpListener::bind(listen).expect("the proxy listens");
    println!("proxy listening");
    let mut seed = 1u64;
    for inbound in listener.incoming() {
        let Ok(inbound) = inbound else { continue };
        let Ok(outbound) = std::net::TcpStream::connect(target) else {
            continue;
        };
        for (from, to) in [
            (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
            (outbound, inbound),
        ] {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut state = seed;
            std::thread::spawn(move || pump(from, to, &mut state));
        }
    }
}

/// Copies `from` to `to` chunk by chunk, each after its delay.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, state: &mut u64) {
    use std::io::{Read, Write};
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer) {
        if read == 0 {
            break;
        }
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let draw = (*state >> 33) % 1_000;
        let mut delay = 15 + draw % 11; // 20 ms ± 5 ms
        if draw < 10 {
            delay += 200; // 1%: a lost segment's retransmission stall
        }
        std::thread::sleep(Duration::from_millis(delay));
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
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

/// The proxy process, killed when dropped.
struct KilledProxy(Child);

impl Drop for KilledProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
        wait_until(
            &format!("the node in {ns} to serve its API"),
            DEADLINE,
            || Path::new(&node.datadir).join("api.address").exists(),
        );
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
    // Without netem, C reaches B through the delaying proxy in B's namespace.
    let mut c_dials = "10.77.2.1:9000".to_owned();
    let _proxy = if netem {
        println!("netem: 20 ms ± 5 ms delay and 1% loss on the A and C ends");
        None
    } else {
        let mut proxy = Command::new("ip")
            .args(["netns", "exec", &b])
            .arg(std::env::current_exe().unwrap())
            .args([
                "netns_proxy",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("POWCHAIN_NETNS_PROXY", "10.77.2.1:9100>127.0.0.1:9000")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the proxy starts");
        let stdout = proxy.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.contains("proxy listening"))),
            "the proxy never listened"
        );
        std::thread::spawn(move || for _ in lines {});
        println!("proxy: C reaches B with 20 ms ± 5 ms per chunk, 1% of chunks 200 ms more");
        c_dials = "10.77.2.1:9100".to_owned();
        Some(KilledProxy(proxy))
    };

    let dir = TempDir::new("netns");
    let node_a = NsNode::start(&a, &dir.file("a"), &["--listen", "10.77.1.1:9000"]);
    let node_b = NsNode::start(
        &b,
        &dir.file("b"),
        &["--listen", "0.0.0.0:9000", "--peers", "10.77.1.1:9000"],
    );
    let node_c = NsNode::start(
        &c,
        &dir.file("c"),
        &["--listen", "10.77.2.2:9000", "--peers", &c_dials],
    );
    let nodes = [&node_a, &node_b, &node_c];
    wait_until("the line to connect", DEADLINE, || {
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
    wait_until("all three at height 1", DEADLINE, || agreed(1));

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
    wait_until("one tip again after the heal", DEADLINE, || agreed(3));
    println!(
        "one tip again {:.1} s after the heal",
        healed.elapsed().as_secs_f64()
    );
    wait_until("C's orphaned transfer to reach A", DEADLINE, || {
        node_a.status()["mempool_count"].as_u64() >= Some(1)
    });
    node_a.pay_and_mine(3);
    wait_until("every transfer confirmed everywhere", DEADLINE, || {
        agreed(4)
            && nodes
                .iter()
                .all(|n| n.client(&["balance", "5"])["balance"].as_u64() == Some(base + 5))
    });
}
