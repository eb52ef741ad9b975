//! `powchain node` serving its API, and the command-line clients that use it, as the README's
//! walkthrough does: real processes, loopback, a scratch data directory.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{NodeProcess, powchain};
use powchain_testkit::{TempDir, wait_until};
use serde_json::Value;

/// A client command against the node of `datadir` that must succeed; its stdout.
fn client(datadir: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--datadir", datadir]);
    let (ok, out, err) = powchain(&all);
    assert!(ok, "powchain {all:?} failed: {err}{out}");
    out
}

fn client_json(datadir: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = client(datadir, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json: {e}: {out}"))
}

/// The address the node printed for its API.
fn api_address(node: &mut NodeProcess) -> String {
    let line = node.expect("API and explorer on http://");
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address after http://")
        .to_owned()
}

#[test]
fn the_clients_send_mine_and_read_through_the_nodes_api() {
    let dir = TempDir::new("clients");
    let datadir = dir.arg();
    let mut node = NodeProcess::start(&[
        "--datadir",
        datadir,
        "--difficulty",
        "8",
        "--miner-threads",
        "1",
        "--rpc",
        "127.0.0.1:0",
    ]);
    let address = api_address(&mut node);
    let cookie = dir.file("api.cookie");
    let written = std::fs::read_to_string(dir.file("api.address")).unwrap();
    assert_eq!(written.trim(), address, "the address file names the API");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cookie).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the node's user may read the token");
    }

    let status = client(datadir, &["status"]);
    assert!(status.contains("chain dev"), "{status}");
    assert!(status.contains("height 0,"), "{status}");
    let status = client_json(datadir, &["status"]);
    assert_eq!(status["height"], 0);
    assert_eq!(status["fee_min"], 1);

    let before = client_json(datadir, &["balance", "3"])["balance"]
        .as_u64()
        .unwrap();
    let sent = client(
        datadir,
        &["send", "--from", "0", "--to", "3", "--amount", "25"],
    );
    assert!(sent.contains("is pending"), "{sent}");
    let sent = client_json(
        datadir,
        &[
            "send", "--from", "dev:0", "--to", "3", "--amount", "5", "--fee", "2", "--memo", "hi",
        ],
    );
    let second = sent["id"].as_str().unwrap().to_owned();
    let mined = client(datadir, &["mine"]);
    assert!(mined.contains("mined: block 1"), "{mined}");
    let balance = client_json(datadir, &["balance", "3"]);
    assert_eq!(balance["balance"].as_u64().unwrap(), before + 30);
    let block = client_json(datadir, &["block", "1"]);
    assert_eq!(block["txs"].as_array().unwrap().len(), 3, "{block}");
    assert!(
        block["txs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|tx| tx["id"] == second)
    );
    let tip = client(datadir, &["block"]);
    assert!(tip.starts_with("block 1 "), "the tip by default: {tip}");
    // Short ids: the first digits of a hash, as the lines print 16 of them.
    let hash = block["hash"].as_str().unwrap();
    let by_prefix = client(datadir, &["block", &hash[..16]]);
    assert!(
        by_prefix.starts_with(&format!("block 1 {hash}")),
        "{by_prefix}"
    );
    let found = client(datadir, &["tx", &second[..12]]);
    assert!(found.contains("in block 1 "), "{found}");
    let (ok, _, err) = powchain(&["tx", "00000000", "--datadir", datadir]);
    assert!(
        !ok && err.contains("no transaction beginning with 00000000"),
        "{err}"
    );
    assert_eq!(client(datadir, &["peers"]).trim(), "no peers");

    // Refusals come with the node's reason, on stderr, with a failing exit.
    let (ok, _, err) = powchain(&["mine", "--datadir", datadir]);
    assert!(!ok && err.contains("nothing to mine"), "{err}");
    assert!(
        err.contains("allow_empty"),
        "the refusal says what to do: {err}"
    );
    let (ok, _, err) = powchain(&[
        "send",
        "--from",
        "0",
        "--to",
        "3",
        "--amount",
        "2000000000",
        "--datadir",
        datadir,
    ]);
    assert!(!ok && err.contains("not enough"), "{err}");
    let (ok, _, err) = powchain(&["balance", "../status", "--datadir", datadir]);
    assert!(!ok && err.contains("neither a dev account"), "{err}");
    // Reads need only the address; changes need the cookie of the node's data directory.
    let elsewhere = TempDir::new("clients-elsewhere");
    let (ok, out, err) = powchain(&["status", "--rpc", &address, "--datadir", elsewhere.arg()]);
    assert!(ok, "{err}");
    assert!(out.contains("height 1,"), "{out}");
    let (ok, _, err) = powchain(&[
        "send",
        "--from",
        "0",
        "--to",
        "1",
        "--amount",
        "1",
        "--rpc",
        &address,
        "--datadir",
        elsewhere.arg(),
    ]);
    assert!(!ok && err.contains("api.cookie"), "{err}");
    let (ok, _, err) = powchain(&["status", "--datadir", elsewhere.arg()]);
    assert!(!ok && err.contains("no running node found"), "{err}");

    // Many transfers in one request to the batch route, each answered: a sender may be 64
    // nonces ahead of its account, so of 70 the last 5 are refused, with the reason.
    let before = client_json(datadir, &["balance", "2"])["balance"]
        .as_u64()
        .unwrap();
    let sent = client(
        datadir,
        &[
            "send", "--from", "1", "--to", "2", "--amount", "3", "--count", "70",
        ],
    );
    assert!(
        sent.contains("nonces 0..=69: 65 accepted, 5 refused"),
        "{sent}"
    );
    assert!(
        sent.contains("refused: nonce 65 is more than 64 ahead"),
        "{sent}"
    );
    let mined = client(datadir, &["mine"]);
    assert!(mined.contains("mined: block 2"), "{mined}");
    let balance = client_json(datadir, &["balance", "2"]);
    assert_eq!(balance["balance"].as_u64().unwrap(), before + 65 * 3);
    let (ok, _, err) = powchain(&[
        "send",
        "--from",
        "1",
        "--to",
        "2",
        "--amount",
        "1",
        "--count",
        "1001",
        "--datadir",
        datadir,
    ]);
    assert!(!ok && err.contains("1001"), "{err}");
    // An empty mempool is mined when asked for empty blocks, as developer chains'
    // "generate N" does.
    let height = client_json(datadir, &["status"])["height"]
        .as_u64()
        .unwrap();
    let mined = client(datadir, &["mine", "--blocks", "3", "--allow-empty"]);
    let last = format!("mined 3 blocks, the last: block {}", height + 3);
    assert!(mined.contains(&last), "{mined}");

    node.quit();
    assert!(!cookie.exists(), "the cookie goes when the node stops");
    assert!(!dir.file("api.address").exists());
    let (ok, _, err) = powchain(&["status", "--rpc", &address]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
}

#[test]
fn nodes_on_one_machine_get_their_own_api_and_remote_binding_needs_a_flag() {
    let first = TempDir::new("clients-first");
    let second = TempDir::new("clients-second");
    // Both ask for the usual port; at most one gets it, the other a free one.
    let mut a = NodeProcess::start(&["--datadir", first.arg()]);
    let mut b = NodeProcess::start(&["--datadir", second.arg()]);
    let (address_a, address_b) = (api_address(&mut a), api_address(&mut b));
    assert_ne!(address_a, address_b);
    for (dir, address) in [(&first, &address_a), (&second, &address_b)] {
        let status = client_json(dir.arg(), &["status"]);
        assert_eq!(status["height"], 0, "{address}");
    }
    a.quit();
    b.quit();

    let (ok, _, err) = powchain(&["node", "--ephemeral", "--no-repl", "--rpc", "0.0.0.0:0"]);
    assert!(!ok, "a public API needs --rpc-allow-remote");
    assert!(err.contains("--rpc-allow-remote"), "{err}");
    let (ok, _, err) = powchain(&["node", "--ephemeral", "--no-repl", "--rpc", "nowhere"]);
    assert!(!ok && err.contains("neither `off` nor an address"), "{err}");
}

/// Restarting a node without the `--difficulty` it was made with names the difference and
/// the flag that opens the database, instead of two genesis hashes alone.
#[test]
fn a_database_of_another_difficulty_is_refused_with_the_flag_that_opens_it() {
    let dir = TempDir::new("clients-genesis");
    let node = NodeProcess::start(&["--datadir", dir.arg(), "--difficulty", "12", "--rpc", "off"]);
    node.quit();
    let (ok, _, err) = powchain(&[
        "node",
        "--datadir",
        dir.arg(),
        "--difficulty",
        "14",
        "--rpc",
        "off",
        "--no-repl",
    ]);
    assert!(!ok, "a database of another chain opened");
    assert!(
        err.contains("the starting difficulty is 12 bits there and 14 here"),
        "{err}"
    );
    assert!(err.contains("start with --difficulty 12"), "{err}");
    assert!(err.contains("chain.redb"), "{err}");
    // As the error says: the same flag opens it again.
    let again = NodeProcess::start(&["--datadir", dir.arg(), "--difficulty", "12", "--rpc", "off"]);
    again.quit();
}

/// The wallet `wallet new` makes is the one the node mines to and `send` signs with, from the
/// same data directory (it was `./powchain-wallet.keys` against `powchain-data/wallet.keys`,
/// and blocks paid dev account 0).
#[test]
fn the_wallet_new_makes_is_the_one_the_node_pays_and_send_signs_with() {
    let dir = TempDir::new("clients-wallet");
    let datadir = dir.arg();
    let (ok, address, err) = powchain(&["wallet", "new", "--datadir", datadir]);
    assert!(ok, "{err}");
    let address = address.trim().to_owned();
    assert!(dir.file("wallet.keys").exists(), "{err}");
    let mut node = NodeProcess::start(&[
        "--datadir",
        datadir,
        "--difficulty",
        "8",
        "--miner-threads",
        "1",
    ]);
    node.expect(&format!("mined blocks pay {address}"));
    api_address(&mut node);
    client(datadir, &["mine", "--blocks", "2", "--allow-empty"]);
    let balance = client_json(datadir, &["balance", &address]);
    assert!(balance["balance"].as_u64().unwrap() > 0, "{balance}");
    // And send finds its key there.
    let sent = client(
        datadir,
        &["send", "--from", &address, "--to", "1", "--amount", "1"],
    );
    assert!(!sent.is_empty(), "{sent}");
    node.quit();
}

/// No private key reaches the database, the logs, the API's files or its answers: a node run
/// at the most verbose log level, with a wallet key and dev keys spending, is searched for
/// every secret, as hex and as raw bytes. The key files themselves are 0600.
#[test]
fn no_private_key_is_written_anywhere_but_the_wallet() {
    use powchain_chain::Keypair;

    let dir = TempDir::new("clients-secrets");
    let datadir = dir.arg();
    let wallet = dir.file("wallet.keys");
    let (ok, address, err) = powchain(&["wallet", "new", "--wallet", wallet.to_str().unwrap()]);
    assert!(ok, "{err}");
    let address = address.trim().to_owned();
    let text = std::fs::read_to_string(&wallet).unwrap();
    let wallet_secret = text
        .lines()
        .find(|line| line.ends_with(&address))
        .and_then(|line| line.split_whitespace().next())
        .expect("the wallet holds the key")
        .to_owned();

    let log = dir.file("node.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args([
            "node",
            "--datadir",
            datadir,
            "--difficulty",
            "8",
            "--miner-threads",
            "1",
            "--rpc",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--no-repl",
            "--log",
            "trace",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.file("node.err")).unwrap())
        .spawn()
        .unwrap();
    wait_until("the node to serve its API", common::DEADLINE, || {
        dir.file("api.address").exists()
    });
    client(
        datadir,
        &["send", "--from", "0", "--to", &address, "--amount", "500"],
    );
    client(datadir, &["mine"]);
    client(
        datadir,
        &["send", "--from", &address, "--to", "1", "--amount", "7"],
    );
    client(datadir, &["mine"]);
    let mut answers = String::new();
    for question in [["status"], ["peers"]] {
        answers.push_str(&client(datadir, &[question[0], "--json"]));
    }
    answers.push_str(&client(datadir, &["balance", &address, "--json"]));
    answers.push_str(&client(datadir, &["block", "2", "--json"]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["wallet.keys", "api.cookie"] {
            let mode = std::fs::metadata(dir.file(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let mut secrets: Vec<Vec<u8>> = (0..10).map(|i| Keypair::dev(i).secret().to_vec()).collect();
    let wallet_bytes: Vec<u8> = (0..wallet_secret.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&wallet_secret[i..i + 2], 16).unwrap())
        .collect();
    secrets.push(wallet_bytes);
    let mut searched = vec![("the API's answers".to_owned(), answers.into_bytes())];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "wallet.keys") || path.is_dir() {
            continue;
        }
        searched.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    assert!(
        searched
            .iter()
            .any(|(name, _)| name.ends_with("chain.redb"))
    );
    assert!(
        searched
            .iter()
            .any(|(name, bytes)| name.ends_with("node.err") && !bytes.is_empty())
    );
    for (name, bytes) in &searched {
        for secret in &secrets {
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_slice())
                || bytes.windows(hex.len()).any(|w| w == hex.as_bytes());
            assert!(!found, "a private key is in {name}");
        }
    }
}
