//! Storage faults, with the real binary: a disk that fills under a mining node, a bit flipped
//! in a stored block, and the mempool across a clean restart.
//!
//! The full-disk case mounts a small tmpfs, so it needs root; without it the test says it
//! was skipped, and why.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{NodeProcess, powchain};
use powchain_chain::{Chain, ChainConfig, Height, Transaction};
use powchain_node::store::RedbStore;
use powchain_testkit::{TempDir, wait_until};

/// The height in a "… tip HASH at height H" line.
/// The height a tip line announces: "new tip HASH at height H (…)" or, for a block mined
/// here, "mined block H HASH with …".
fn height_in(line: &str) -> u64 {
    line.split("at height ")
        .nth(1)
        .or_else(|| line.strip_prefix("mined block "))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no height in {line:?}"))
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Option<Tmpfs<'a>> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

/// A mining node whose database fills its disk. Before, the node said the commit failed and
/// went on: it announced tips the file did not hold and took transfers. Now the first failed
/// commit stops it: it says why, exits non-zero, and every block it announced is in the file
/// (checked with `powchain check` on a copy).
#[test]
fn a_full_disk_stops_the_node_and_every_announced_block_is_kept() {
    let dir = TempDir::new("storage-full");
    let disk = dir.file("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&disk, "1m") else {
        println!("skipped: filling a disk needs root to mount a 1 MiB tmpfs");
        return;
    };
    let datadir = disk.to_str().unwrap();
    let mut node = NodeProcess::start(&[
        "--datadir",
        datadir,
        "--difficulty",
        "8",
        "--mine",
        "--miner-threads",
        "1",
        "--rpc",
        "127.0.0.1:0",
    ]);
    node.expect("ERROR: the database failed");
    let status = wait_until("the node to exit", common::DEADLINE, || {
        node.child
            .try_wait()
            .unwrap()
            .ok_or("still running".to_owned())
    });
    assert!(
        !status.success(),
        "a node whose store failed exits non-zero"
    );
    let announced = node
        .seen
        .iter()
        .filter(|line| line.starts_with("new tip ") || line.starts_with("mined block "))
        .map(|line| height_in(line))
        .max()
        .expect("the node announced blocks before the disk filled");
    assert!(
        node.seen.iter().any(|l| l.contains("No space left")),
        "the reason is named: {:?}",
        node.seen.last()
    );
    // Checked on a copy: reopening on the full disk is not what is tested.
    let copy = dir.file("copy.redb");
    std::fs::copy(disk.join("chain.redb"), &copy).unwrap();
    drop(tmpfs);
    let spec = dir.file("spec.toml");
    std::fs::write(
        &spec,
        powchain_chain::ChainSpec::dev()
            .with_fixed_difficulty(powchain_chain::DifficultyBits::new(8).unwrap())
            .to_toml_string(),
    )
    .unwrap();
    let (ok, out, err) = powchain(&[
        "check",
        "--db",
        copy.to_str().unwrap(),
        "--chain",
        spec.to_str().unwrap(),
    ]);
    assert!(ok, "the file is whole: {err}{out}");
    let kept = height_in(out.lines().next().unwrap());
    println!("announced up to height {announced}; the file holds {kept}");
    assert!(
        kept >= announced,
        "announced height {announced}, but the file holds only {kept}"
    );
}

/// One bit flipped in a stored block's transfer. Before, the node read the block without a
/// check and served it (its peers then banned it). Now `powchain check` names the block, and
/// a node asked for it stops, naming it, rather than serve it.
#[test]
fn a_flipped_bit_in_a_stored_block_is_found_and_never_served() {
    let dir = TempDir::new("storage-bit");
    let db = dir.file("chain.redb");
    let spec_file = dir.file("spec.toml");
    let spec = powchain_testkit::spec("storage-test", 8);
    std::fs::write(&spec_file, spec.to_toml_string()).unwrap();
    let (db_arg, spec_arg) = (db.to_str().unwrap(), spec_file.to_str().unwrap());
    let (ok, _, err) = powchain(&[
        "mine",
        "--db",
        db_arg,
        "--chain",
        spec_arg,
        "--blocks",
        "5",
        "--txs-per-block",
        "2",
        "--miner-threads",
        "1",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = powchain(&["check", "--db", db_arg, "--chain", spec_arg]);
    assert!(ok && out.contains("ok"), "a whole file passes: {err}{out}");

    // Flip one bit of a transfer's signature in block 3, where the file holds it.
    let (hash, signature) = {
        let store = RedbStore::open(&db).unwrap();
        let chain = Chain::open(spec.clone(), store, ChainConfig::default()).unwrap();
        let block = chain.block_at(Height(3)).unwrap().unwrap();
        let signature = block
            .txs
            .iter()
            .find_map(|tx| match tx {
                Transaction::Transfer(transfer) => Some(transfer.signature.0),
                _ => None,
            })
            .expect("block 3 holds a transfer");
        (block.hash(), signature)
    };
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes
        .windows(signature.len())
        .position(|window| window == signature)
        .expect("the signature is in the file");
    assert!(
        bytes[at + 1..]
            .windows(signature.len())
            .all(|window| window != signature),
        "the signature is in the file once"
    );
    bytes[at + 10] ^= 0x04;
    std::fs::write(&db, &bytes).unwrap();

    let (ok, out, err) = powchain(&["check", "--db", db_arg, "--chain", spec_arg]);
    assert!(!ok, "a damaged file fails the check: {out}");
    assert!(
        err.contains(&hash.to_string()) && err.contains("damaged"),
        "the check names the block: {err}"
    );

    // A node on the damaged file starts (the block is only read when needed), and stops
    // when a fresh peer's sync asks it for the block.
    let mut source = NodeProcess::start(&[
        "--db",
        db_arg,
        "--chain",
        spec_arg,
        "--listen",
        "127.0.0.1:0",
        "--rpc",
        "off",
    ]);
    let line = source.expect("others connect with: --peers ");
    let address = line
        .split("--peers ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let fresh = TempDir::new("storage-bit-fresh");
    let _peer = NodeProcess::start(&[
        "--datadir",
        fresh.arg(),
        "--chain",
        spec_arg,
        "--peers",
        &address,
        "--rpc",
        "off",
    ]);
    source.expect("ERROR: the database failed");
    assert!(
        source
            .seen
            .iter()
            .any(|line| line.contains(&hash.to_string())),
        "the node names the damaged block: {:?}",
        source.seen
    );
    let status = wait_until("the damaged node to exit", common::DEADLINE, || {
        source
            .child
            .try_wait()
            .unwrap()
            .ok_or("still running".to_owned())
    });
    assert!(!status.success());
}

/// A transfer the node acknowledged as pending is pending again after `quit` and a start
/// on the same data directory (the mempool is saved at shutdown and read at start).
#[test]
fn a_pending_transfer_survives_a_clean_restart() {
    let dir = TempDir::new("storage-mempool");
    let datadir = dir.arg();
    let start = || {
        NodeProcess::start(&[
            "--datadir",
            datadir,
            "--difficulty",
            "8",
            "--miner-threads",
            "1",
            "--rpc",
            "127.0.0.1:0",
        ])
    };
    let mut node = start();
    node.expect("API and explorer on http://");
    let (ok, out, err) = powchain(&[
        "send",
        "--from",
        "0",
        "--to",
        "3",
        "--amount",
        "25",
        "--datadir",
        datadir,
    ]);
    assert!(ok && out.contains("is pending"), "{err}{out}");
    node.send("quit");
    node.expect("mempool: 1 pending transfers saved to");
    let _ = node.child.wait();

    let mut node = start();
    node.expect("mempool: 1 pending transfers read from");
    node.expect("API and explorer on http://");
    let (ok, out, err) = powchain(&["mine", "--datadir", datadir]);
    assert!(
        ok && out.contains("mined: block 1"),
        "the transfer was pending: {err}{out}"
    );
    node.quit();
}
