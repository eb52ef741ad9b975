//! Consensus test vectors: the committed bytes and hashes of `tests/vectors.txt` must match
//! what the code computes. A mismatch means the consensus encoding changed, which splits the
//! network from every node built before: change the vectors only on purpose, by running
//! `POWCHAIN_WRITE_VECTORS=1 cargo test -p powchain-chain --test vectors`, and record why in
//! `docs/adr/`.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use powchain_chain::block::tx_root;
use powchain_chain::header::HEADER_VERSION;
use powchain_chain::tx::Coinbase;
use powchain_chain::{
    Amount, BlockHash, ChainSpec, DifficultyBits, Hash512, Header, Height, Keypair, Memo, Target,
    Timestamp, Transaction, UnsignedTransfer,
};

const VECTORS: &str = include_str!("vectors.txt");

fn computed() -> Vec<(&'static str, String)> {
    let dev0 = Keypair::dev(0);
    let header = Header {
        version: HEADER_VERSION,
        height: Height(7),
        prev_hash: BlockHash(Hash512::digest(b"parent")),
        tx_root: Hash512::digest(b"transactions"),
        time: Timestamp(1_700_000_000_000),
        target: DifficultyBits::new(14).unwrap().target(),
        nonce: 42,
    };
    let coinbase = Transaction::Coinbase(Coinbase {
        height: Height(7),
        to: dev0.address(),
        amount: Amount(51),
        extra_nonce: 3,
    });
    let chain_id = ChainSpec::dev().genesis_hash();
    let transfer = UnsignedTransfer {
        to: Keypair::dev(1).address(),
        amount: Amount(5),
        fee: Amount(1),
        nonce: 0,
        memo: Memo::new(b"seed".to_vec()).unwrap(),
    }
    .sign(&dev0, &chain_id);
    let signing_bytes = transfer.signing_bytes(&chain_id);
    let transfer = Transaction::Transfer(transfer);
    let dev_genesis = ChainSpec::dev().genesis_block().header;
    vec![
        ("dev_account_0_secret", hex::encode(dev0.secret())),
        ("dev_account_0_address", dev0.address().to_string()),
        (
            "difficulty_14_target",
            format!("{:032x}", Target(u128::MAX >> 14).0),
        ),
        ("sample_header_bytes", hex::encode(header.encode())),
        ("sample_header_hash", header.hash().to_string()),
        ("coinbase_bytes", hex::encode(coinbase.encode())),
        ("coinbase_id", coinbase.id().to_string()),
        ("transfer_signing_bytes", hex::encode(signing_bytes)),
        ("transfer_bytes", hex::encode(transfer.encode())),
        ("transfer_id", transfer.id().to_string()),
        (
            "tx_root_coinbase_transfer",
            tx_root(&[coinbase, transfer]).to_string(),
        ),
        (
            "dev_genesis_header_bytes",
            hex::encode(dev_genesis.encode()),
        ),
        ("dev_genesis_hash", dev_genesis.hash().to_string()),
        (
            "seed_genesis_hash",
            ChainSpec::seed().genesis_hash().to_string(),
        ),
    ]
}

#[test]
fn consensus_vectors_match() {
    let computed = computed();
    if std::env::var_os("POWCHAIN_WRITE_VECTORS").is_some() {
        let mut text = String::from(
            "# powchain consensus test vectors: name = lowercase hex. See tests/vectors.rs.\n",
        );
        for (name, value) in &computed {
            text.push_str(&format!("{name} = {value}\n"));
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.txt");
        std::fs::write(path, text).expect("vectors written");
        return;
    }
    let committed: Vec<(&str, &str)> = VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split_once(" = "))
        .collect();
    assert_eq!(
        committed.len(),
        computed.len(),
        "tests/vectors.txt has {} vectors, the code computes {}",
        committed.len(),
        computed.len()
    );
    for ((name, value), (expected_name, expected)) in computed.iter().zip(committed) {
        assert_eq!(*name, expected_name);
        assert_eq!(value, expected, "consensus vector {name} changed");
    }
}

#[test]
fn vectors_decode_back() {
    let committed: std::collections::HashMap<&str, &str> = VECTORS
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .collect();
    let bytes = hex::decode(committed["sample_header_bytes"]).unwrap();
    let header = Header::decode(&bytes.try_into().unwrap());
    assert_eq!(header.nonce, 42);
    assert_eq!(header.hash().to_string(), committed["sample_header_hash"]);
    let genesis = hex::decode(committed["dev_genesis_header_bytes"]).unwrap();
    let genesis = Header::decode(&genesis.try_into().unwrap());
    assert_eq!(genesis.height, Height::GENESIS);
    assert_eq!(genesis.hash().to_string(), committed["dev_genesis_hash"]);
}
