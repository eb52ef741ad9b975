//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/`): valid inputs of every kind,
//! so the fuzzer starts past the decoders and mutates its way into validation.
//!
//! ```sh
//! cargo run -p powchain-protocol --example fuzz_corpus -- fuzz/corpus
//! ```
//!
//! The blocks and transfers are made under the fuzz targets' chain (`fuzz/src/lib.rs`: the dev
//! chain named `fuzz`, one bit of proof of work), so they are valid there.

// A development tool: it stops with a message when it cannot write the corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use powchain_chain::{
    Amount, Block, Chain, ChainConfig, ChainSpec, Height, Keypair, MemStore, Memo, Mempool,
    MempoolConfig, Timestamp, Transfer, UnsignedTransfer,
};
use powchain_protocol::compact::CompactBlock;
use powchain_protocol::{Hello, Message, PROTOCOL_VERSION, TipSummary, frame};

/// The same rules as `powchain_fuzz::spec`: the dev chain named `fuzz`, at one bit.
fn spec() -> ChainSpec {
    powchain_testkit::spec("fuzz", 1)
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
    std::fs::write(dir.join(name), bytes).expect("the corpus file can be written");
}

/// A framed stream as the driver reads it: each message's frame, one after the other.
fn frames(messages: &[&Message]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|message| frame::encode(message))
        .collect()
}

/// The peer target's framing: a 2-byte big-endian length, then the payload.
fn conversation(messages: &[&Message]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for message in messages {
        let payload = message.encode();
        let length = u16::try_from(payload.len()).expect("corpus messages are small");
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&payload);
    }
    bytes
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let spec = spec();
    let chain_id = spec.genesis_hash();
    let now = Timestamp(spec.genesis_time_ms + 3_600_000);
    let mut chain =
        Chain::open(spec.clone(), MemStore::new(), ChainConfig::default()).expect("a new chain");
    let genesis = chain.tip();

    // Three blocks, each with a few transfers between dev accounts.
    let mut transfers: Vec<Transfer> = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for height in 1..=3u64 {
        let mut mempool = Mempool::new(MempoolConfig::default());
        for from in 0..3u64 {
            let transfer = UnsignedTransfer {
                to: Keypair::dev(from + 3).address(),
                amount: Amount(10 * height + from),
                fee: spec.fee_min,
                nonce: height - 1,
                memo: Memo::new(format!("block {height}").into_bytes()).expect("a short memo"),
            }
            .sign(&Keypair::dev(from), &chain_id);
            mempool
                .add(transfer.clone(), chain.store(), &spec, &chain_id, now)
                .expect("a valid transfer");
            transfers.push(transfer);
        }
        let miner = Keypair::dev(9).address();
        let mut block = chain
            .block_template(&mempool, miner, now, height)
            .expect("a template")
            .block;
        while !block.header.meets_own_target() {
            block.header.nonce += 1;
        }
        chain
            .import_block(block.clone(), now)
            .expect("the template is valid");
        blocks.push(block);
    }
    assert_eq!(chain.tip().height, Height(3));
    // Transfers the chain has not seen, valid on its tip.
    let fresh: Vec<Transfer> = (0..3u64)
        .map(|from| {
            UnsignedTransfer {
                to: Keypair::dev(from + 5).address(),
                amount: Amount(7),
                fee: spec.fee_min,
                nonce: 3,
                memo: Memo::default(),
            }
            .sign(&Keypair::dev(from), &chain_id)
        })
        .collect();

    for (index, block) in blocks.iter().enumerate() {
        let bytes = postcard::to_stdvec(block).expect("a block encodes");
        write(&dir, "block", &format!("height-{}", index + 1), &bytes);
    }
    let mut coinbase_only = blocks[0].clone();
    coinbase_only.txs.truncate(1);
    write(
        &dir,
        "block",
        "coinbase-only",
        &postcard::to_stdvec(&coinbase_only).expect("a block encodes"),
    );
    for (index, transfer) in transfers.iter().take(3).enumerate() {
        let bytes = postcard::to_stdvec(transfer).expect("a transfer encodes");
        write(&dir, "transaction", &format!("transfer-{index}"), &bytes);
    }

    let tip = chain.tip();
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        genesis: genesis.hash,
        node_id: 99,
        listen: Some("198.51.100.7:9000".into()),
        tip: TipSummary {
            hash: tip.hash,
            height: tip.height,
            work: tip.chain_work,
        },
        agent: "fuzz/1".into(),
        number: None,
    });
    let headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
    let messages = vec![
        ("hello", hello.clone()),
        ("ping", Message::Ping { nonce: 7 }),
        (
            "pong",
            Message::Pong {
                nonce: 7,
                tip: TipSummary {
                    hash: tip.hash,
                    height: tip.height,
                    work: tip.chain_work,
                },
            },
        ),
        (
            "echo",
            Message::EchoRequest {
                message: "HELLO".into(),
            },
        ),
        ("get-addresses", Message::GetAddresses),
        (
            "addresses",
            Message::Addresses(vec!["198.51.100.8:9000".into(), "/tmp/node.3".into()]),
        ),
        ("announce", Message::Announce { header: headers[0] }),
        (
            "get-headers",
            Message::GetHeaders {
                locator: vec![genesis.hash],
            },
        ),
        ("headers", Message::Headers(headers.clone())),
        (
            "get-blocks",
            Message::GetBlocks(blocks.iter().map(Block::hash).collect()),
        ),
        ("blocks", Message::Blocks(blocks.clone())),
        ("not-found", Message::NotFound(vec![tip.hash])),
        (
            "transactions",
            Message::Transactions(transfers[..2].to_vec()),
        ),
        (
            "goodbye",
            Message::Goodbye {
                reason: "bye".into(),
            },
        ),
        ("get-compact-block", Message::GetCompactBlock(tip.hash)),
        (
            "compact-block",
            Message::CompactBlock(CompactBlock::of(&blocks[0], &blocks[0].hash(), 1)),
        ),
        (
            "get-block-txn",
            Message::GetBlockTxn {
                block: blocks[0].hash(),
                indexes: vec![1, 3],
            },
        ),
        (
            "block-txn",
            Message::BlockTxn {
                block: blocks[0].hash(),
                transfers: transfers[..3].to_vec(),
            },
        ),
        (
            "send-compact",
            Message::SendCompact {
                high_bandwidth: true,
            },
        ),
    ];
    for (name, message) in &messages {
        write(&dir, "message", name, &message.encode());
        write(&dir, "frame", name, &frames(&[message]));
    }
    let all: Vec<&Message> = messages.iter().map(|(_, m)| m).collect();
    write(&dir, "frame", "all-in-a-row", &frames(&all));

    // Conversations: a handshake, then a peer that is ahead sends what the node asks for.
    let ahead = [
        &hello,
        &Message::Headers(headers.clone()),
        &Message::Blocks(blocks.clone()),
        &Message::Transactions(fresh.clone()),
        &Message::Ping { nonce: 1 },
    ];
    write(&dir, "peer", "sync-from-ahead", &conversation(&ahead));
    let chatty = [
        &hello,
        &Message::GetAddresses,
        &Message::Addresses(vec!["198.51.100.9:9000".into()]),
        &Message::GetHeaders {
            locator: vec![genesis.hash],
        },
        &Message::EchoRequest {
            message: "HELLO".into(),
        },
        &Message::Announce { header: headers[0] },
        &Message::Goodbye {
            reason: "done".into(),
        },
    ];
    write(&dir, "peer", "chatty", &conversation(&chatty));
    // A new block told of by its header, asked for compact, rebuilt from what the peer
    // sends for the places the (empty) pool lacks.
    let Message::Hello(mut at_genesis) = hello.clone() else {
        unreachable!("built above as a hello")
    };
    at_genesis.tip = TipSummary {
        hash: genesis.hash,
        height: genesis.height,
        work: genesis.chain_work,
    };
    let compact = [
        &Message::Hello(at_genesis),
        &Message::Announce { header: headers[0] },
        &Message::CompactBlock(CompactBlock::of(&blocks[0], &blocks[0].hash(), 1)),
        &Message::BlockTxn {
            block: blocks[0].hash(),
            transfers: transfers[..3].to_vec(),
        },
        &Message::Ping { nonce: 2 },
    ];
    write(&dir, "peer", "compact-relay", &conversation(&compact));
    write(
        &dir,
        "peer",
        "no-hello",
        &conversation(&[&Message::Ping { nonce: 1 }]),
    );

    // The session: the seeds' commands and ours.
    for (index, line) in [
        "ConnectTo 0",
        "EchoTo 1 HELLO",
        "MakeTransaction 2 3 5",
        "Mine",
        "GetBalance 4",
        "SyncWith 1",
        "send 0 3 25",
        "balance 70660bb271d1d5f83b2f362d8779bb2c2cfbc7f2152c8a1d4684fb0d0812668f",
        "block 1",
        "tx 00",
        "automine on",
        "wallet new",
        "peers",
        "help",
        "quit",
    ]
    .iter()
    .enumerate()
    {
        write(
            &dir,
            "session",
            &format!("line-{index:02}"),
            line.as_bytes(),
        );
    }
    println!("corpus written to {}", dir.display());
}
