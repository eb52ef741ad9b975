//! The redb store under the chain: restart, reorgs, foreign and damaged files, peers.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use powchain_chain::block::tx_root;
use powchain_chain::header::HEADER_VERSION;
use powchain_chain::state::{AccountReader, StateOverlay};
use powchain_chain::tx::Coinbase;
use powchain_chain::{
    Address, Amount, Block, BlockHash, Chain, ChainConfig, ChainSpec, HashPrefix, Header, Height,
    Keypair, MemStore, Memo, OpenError, Store, Timestamp, Transaction, UnsignedTransfer, miner,
};
use powchain_node::store::{PeerRecord, RedbStore};
use powchain_testkit::{TempDir, spec_with_dev_accounts};

/// The chain of every database here: 4 bits, four dev accounts of 1,000 coins.
fn spec() -> ChainSpec {
    spec_with_dev_accounts("store-test", 4, 4, Amount(1_000))
}

fn now(spec: &ChainSpec) -> Timestamp {
    Timestamp(spec.genesis_time_ms + 1_000_000)
}

fn open(spec: &ChainSpec, path: &Path) -> Result<Chain<RedbStore>, String> {
    let store = RedbStore::open(path).map_err(|e| e.to_string())?;
    Chain::open(spec.clone(), store, ChainConfig::default()).map_err(|e| e.to_string())
}

/// A mined block on `parent` with one transfer from dev account `from` (nonce `nonce`).
fn block_on<S: Store>(
    chain: &Chain<S>,
    parent: BlockHash,
    time: u64,
    transfer: Option<(u64, u64)>,
) -> Block {
    let spec = chain.spec();
    let context = chain
        .tree()
        .child_context(&parent, spec, now(spec))
        .unwrap();
    let mut txs = vec![];
    let mut fees = Amount(0);
    if let Some((from, nonce)) = transfer {
        let tx = UnsignedTransfer {
            to: Keypair::dev((from + 1) % 4).address(),
            amount: Amount(10),
            fee: Amount(1),
            nonce,
            memo: Memo::default(),
        }
        .sign(&Keypair::dev(from), &chain.chain_id());
        fees = tx.fee;
        txs.push(Transaction::Transfer(tx));
    }
    txs.insert(
        0,
        Transaction::Coinbase(Coinbase {
            height: context.height,
            to: Keypair::dev(3).address(),
            amount: Amount(spec.block_reward.0 + fees.0),
            extra_nonce: time,
        }),
    );
    let mut block = Block {
        header: Header {
            version: HEADER_VERSION,
            height: context.height,
            prev_hash: parent,
            tx_root: tx_root(&txs),
            time: Timestamp(spec.genesis_time_ms + time),
            target: context.expected_target,
            nonce: 0,
        },
        txs,
    };
    miner::mine(&mut block);
    block
}

fn accounts(chain: &Chain<RedbStore>) -> BTreeMap<Address, powchain_chain::Account> {
    chain.store().all_accounts().unwrap().into_iter().collect()
}

/// Each account as the store's lookup answers it (its cache included) is the account in the
/// file.
fn assert_reads_match_the_file(chain: &Chain<RedbStore>) {
    for (address, account) in accounts(chain) {
        assert_eq!(chain.store().account(&address).unwrap(), Some(account));
    }
}

/// The state a replay of the best chain from genesis gives.
fn replay(chain: &Chain<RedbStore>) -> BTreeMap<Address, powchain_chain::Account> {
    let empty = BTreeMap::new();
    let mut overlay = StateOverlay::new(&empty);
    for height in 0..=chain.tip().height.0 {
        let block = chain.block_at(Height(height)).unwrap().unwrap();
        overlay.connect_block(&block.txs, chain.spec()).unwrap();
    }
    overlay
        .into_changes()
        .into_iter()
        .filter_map(|(address, account)| account.map(|a| (address, a)))
        .collect()
}

#[test]
fn a_missing_file_is_created_with_genesis_and_reopens_unchanged() {
    let dir = TempDir::new("store-restart");
    let path = dir.file("chain.redb");
    let spec = spec();
    let mut chain = open(&spec, &path).unwrap();
    assert_eq!(chain.tip().hash, spec.genesis_hash());
    for i in 1..=6u64 {
        let block = block_on(&chain, chain.tip().hash, i, Some((i % 3, (i - 1) / 3)));
        chain.import_block(block, now(&spec)).unwrap();
    }
    let (tip, state) = (chain.tip(), accounts(&chain));
    assert_eq!(state, replay(&chain));
    drop(chain);

    let chain = open(&spec, &path).unwrap();
    assert_eq!(chain.tip(), tip);
    assert_eq!(accounts(&chain), state);
    assert_eq!(accounts(&chain), replay(&chain));
}

#[test]
fn reorgs_commit_through_undo_data_and_survive_a_restart() {
    let dir = TempDir::new("store-reorg");
    let path = dir.file("chain.redb");
    let spec = spec();
    let mut chain = open(&spec, &path).unwrap();
    let genesis = chain.tip().hash;
    // Branch A: two blocks with transfers. Branch B: three empty blocks, more work.
    let a1 = block_on(&chain, genesis, 1, Some((0, 0)));
    chain.import_block(a1.clone(), now(&spec)).unwrap();
    let a2 = block_on(&chain, a1.hash(), 2, Some((1, 0)));
    chain.import_block(a2, now(&spec)).unwrap();
    // Read every account once on branch A: the store keeps what it read in memory.
    assert_reads_match_the_file(&chain);
    let mut parent = genesis;
    for i in 0..3 {
        let block = block_on(&chain, parent, 10 + i, None);
        parent = block.hash();
        chain.import_block(block, now(&spec)).unwrap();
    }
    assert_eq!(chain.tip().hash, parent);
    assert_eq!(accounts(&chain), replay(&chain));
    // What the reorganisation wrote replaced what was read before it.
    assert_reads_match_the_file(&chain);
    let (tip, state) = (chain.tip(), accounts(&chain));
    drop(chain);
    let chain = open(&spec, &path).unwrap();
    assert_eq!(chain.tip(), tip);
    assert_eq!(accounts(&chain), state);
    // Branch A is still known, as a side branch.
    assert!(chain.tree().get(&a1.hash()).is_some());
    assert!(!chain.tree().is_on_best(&a1.hash()));
}

#[test]
fn a_file_of_another_chain_is_refused_naming_both() {
    let dir = TempDir::new("store-foreign");
    let path = dir.file("chain.redb");
    drop(open(&ChainSpec::seed(), &path).unwrap());
    let store = RedbStore::open(&path).unwrap();
    let error = match Chain::open(spec(), store, ChainConfig::default()) {
        Err(error @ OpenError::WrongChain { .. }) => error.to_string(),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a foreign database opened"),
    };
    assert!(
        error.contains(&ChainSpec::seed().genesis_hash().short(16)),
        "{error}"
    );
    assert!(error.contains(&spec().genesis_hash().short(16)), "{error}");
    assert!(
        error.contains("\"seed\"") && error.contains("\"store-test\""),
        "{error}"
    );
}

#[test]
fn damaged_files_give_clear_errors() {
    let dir = TempDir::new("store-damaged");
    let spec = spec();
    // A real database, then cut to pieces.
    let good = dir.file("good.redb");
    let mut chain = open(&spec, &good).unwrap();
    for i in 1..=4u64 {
        let block = block_on(&chain, chain.tip().hash, i, None);
        chain.import_block(block, now(&spec)).unwrap();
    }
    drop(chain);
    let bytes = std::fs::read(&good).unwrap();
    for (name, content) in [
        ("random.redb", {
            let mut noise = vec![0u8; 64 * 1024];
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            for byte in &mut noise {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            noise
        }),
        ("half.redb", bytes[..bytes.len() / 2].to_vec()),
        ("header-only.redb", bytes[..512.min(bytes.len())].to_vec()),
        ("text.redb", b"this is not a database\n".to_vec()),
    ] {
        let path = dir.file(name);
        std::fs::write(&path, content).unwrap();
        match open(&spec, &path) {
            Err(message) => {
                eprintln!("{name}: {message}");
                assert!(
                    message.contains("database") || message.contains("store"),
                    "{name}: {message}"
                );
            }
            Ok(chain) => {
                eprintln!("{name}: opened, tip {}", chain.tip().height);
                // redb may repair a file it can recover; then it must be a consistent chain.
                assert_eq!(accounts(&chain), replay(&chain), "{name}");
            }
        }
    }
}

#[test]
fn an_empty_or_foreign_file_is_refused_not_made_a_new_chain() {
    let dir = TempDir::new("store-empty");
    let spec = spec();
    let empty = dir.file("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let message = open(&spec, &empty)
        .err()
        .expect("an empty file opened as a chain");
    assert!(message.contains("empty"), "{message}");
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "left as it was"
    );

    // Another program's redb file: a valid database without our tables.
    let foreign = dir.file("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("theirs");
            txn.open_table(table).unwrap().insert("key", 7).unwrap();
        }
        txn.commit().unwrap();
    }
    let message = open(&spec, &foreign)
        .err()
        .expect("a foreign database opened");
    assert!(message.contains("not a powchain"), "{message}");
}

#[test]
fn a_database_in_use_is_refused() {
    let dir = TempDir::new("store-in-use");
    let path = dir.file("chain.redb");
    let _first = RedbStore::open(&path).unwrap();
    let error = match RedbStore::open(&path) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("opened twice"),
    };
    assert!(error.contains("in use"), "{error}");
}

#[test]
fn the_peer_address_book_persists() {
    let dir = TempDir::new("store-peers");
    let path = dir.file("chain.redb");
    let store = RedbStore::open(&path).unwrap();
    let record = PeerRecord {
        last_connected_ms: 5,
        failures: 1,
        banned_until_ms: 0,
    };
    store.put_peer("127.0.0.1:9000", &record).unwrap();
    store
        .put_peer("/tmp/node.2", &PeerRecord::default())
        .unwrap();
    assert!(store.put_peer("", &record).is_err());
    assert!(store.put_peer(&"x".repeat(300), &record).is_err());
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    let peers = store.peers().unwrap();
    assert_eq!(peers.len(), 2);
    assert!(peers.contains(&("127.0.0.1:9000".to_string(), record)));
    store.remove_peer("/tmp/node.2").unwrap();
    assert_eq!(store.peers().unwrap().len(), 1);
}

/// What the transaction index must say: every best-chain transaction's height and position,
/// and each account's transactions newest first, computed from the chain itself.
fn assert_index_matches_the_best_chain<S: Store>(chain: &Chain<S>, when: &str) {
    let index = chain.store().tx_index().expect("the store keeps an index");
    let mut by_account: BTreeMap<Address, Vec<(Height, u32)>> = BTreeMap::new();
    for height in 0..=chain.tip().height.0 {
        let block = chain.block_at(Height(height)).unwrap().unwrap();
        for (position, tx) in block.txs.iter().enumerate() {
            let at = (Height(height), position as u32);
            assert_eq!(index.tx_location(&tx.id()).unwrap(), Some(at), "{when}");
            let touched = match tx {
                Transaction::Coinbase(c) => vec![c.to],
                Transaction::Transfer(t) => vec![t.from, t.to],
            };
            for address in touched {
                by_account.entry(address).or_default().push(at);
            }
        }
    }
    for (address, mut expected) in by_account {
        expected.reverse();
        assert_eq!(
            index.account_txs(&address, 1_000).unwrap(),
            expected,
            "{when}"
        );
        expected.truncate(2);
        assert_eq!(index.account_txs(&address, 2).unwrap(), expected, "{when}");
    }
}

/// The transaction index follows the best chain through a reorganisation (what left it is
/// no longer found) and a restart, and a file written without one gets it built on opening.
#[test]
fn the_transaction_index_follows_the_best_chain() {
    let dir = TempDir::new("store-tx-index");
    let path = dir.file("chain.redb");
    let spec = spec();
    let mut chain = open(&spec, &path).unwrap();
    reorganise_and_check_the_index(&mut chain);
    drop(chain);
    assert_index_matches_the_best_chain(&open(&spec, &path).unwrap(), "after a restart");

    // A file from before the index: its tables and mark removed by hand.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(redb::TableDefinition::<&[u8], &[u8]>::new("txs"))
            .unwrap();
        txn.delete_table(redb::TableDefinition::<&[u8], &[u8]>::new("account_txs"))
            .unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .remove("tx_index")
            .unwrap();
        txn.commit().unwrap();
    }
    assert_index_matches_the_best_chain(&open(&spec, &path).unwrap(), "rebuilt on opening");
}

/// The index a node without a database keeps in memory does the same.
#[test]
fn the_in_memory_transaction_index_follows_the_best_chain() {
    let mut chain = Chain::open(spec(), MemStore::indexed(), ChainConfig::default()).unwrap();
    reorganise_and_check_the_index(&mut chain);
}

/// Branch A, two blocks with transfers, then branch B with more work takes over; the index
/// matches the best chain each time, and what left it is no longer found.
fn reorganise_and_check_the_index<S: Store>(chain: &mut Chain<S>) {
    let spec = chain.spec().clone();
    let genesis = chain.tip().hash;
    let a1 = block_on(chain, genesis, 1, Some((0, 0)));
    chain.import_block(a1.clone(), now(&spec)).unwrap();
    let a2 = block_on(chain, a1.hash(), 2, Some((1, 0)));
    chain.import_block(a2.clone(), now(&spec)).unwrap();
    assert_index_matches_the_best_chain(chain, "on branch A");
    let index = chain.store().tx_index().unwrap();
    let a2_transfer = a2.txs[1].id();
    assert_eq!(
        index.tx_location(&a2_transfer).unwrap(),
        Some((Height(2), 1))
    );
    let mut parent = genesis;
    for i in 0..3 {
        let block = block_on(chain, parent, 10 + i, Some((2, i)));
        parent = block.hash();
        chain.import_block(block, now(&spec)).unwrap();
    }
    assert_eq!(chain.tip().hash, parent, "branch B won");
    assert_index_matches_the_best_chain(chain, "after the reorg");
    let index = chain.store().tx_index().unwrap();
    assert_eq!(
        index.tx_location(&a2_transfer).unwrap(),
        None,
        "it left the best chain"
    );
}

/// A reorganisation that moves a transfer to a lower height: branch A holds it at height 2,
/// branch B at height 1. The commit unindexes A's blocks and indexes B's in one batch; the
/// transfer must end up found at its new place, not removed with the block it left.
#[test]
fn a_transfer_a_reorg_moves_down_a_height_stays_indexed() {
    let dir = TempDir::new("store-tx-index-move");
    let spec = spec();
    let mut chain = open(&spec, &dir.file("chain.redb")).unwrap();
    let genesis = chain.tip().hash;
    let a1 = block_on(&chain, genesis, 1, None);
    chain.import_block(a1.clone(), now(&spec)).unwrap();
    let a2 = block_on(&chain, a1.hash(), 2, Some((0, 0)));
    chain.import_block(a2.clone(), now(&spec)).unwrap();
    let moved = a2.txs[1].id();
    let location = |chain: &Chain<RedbStore>| {
        let index = chain.store().tx_index().unwrap();
        index.tx_location(&moved).unwrap()
    };
    assert_eq!(location(&chain), Some((Height(2), 1)));
    // Branch B: the same transfer (same key, nonce and amounts) one height lower.
    let b1 = block_on(&chain, genesis, 11, Some((0, 0)));
    assert_eq!(b1.txs[1].id(), moved, "the same signed transfer");
    chain.import_block(b1.clone(), now(&spec)).unwrap();
    let mut parent = b1.hash();
    for i in 0..2 {
        let block = block_on(&chain, parent, 12 + i, None);
        parent = block.hash();
        chain.import_block(block, now(&spec)).unwrap();
    }
    assert_eq!(chain.tip().hash, parent, "branch B won");
    assert_index_matches_the_best_chain(&chain, "after the transfer moved down");
    assert_eq!(location(&chain), Some((Height(1), 1)));
}

/// The store keeps the blocks it wrote or read last in memory: a read finds the block just
/// written, a block deleted is gone from memory as from the file, and a handle on the same
/// file (the chain's block reader) sees the same.
#[test]
fn recent_blocks_are_kept_and_a_deleted_one_is_forgotten() {
    use powchain_chain::store::WriteBatch;
    use std::sync::Arc;
    let dir = TempDir::new("store-recent-blocks");
    let mut store = RedbStore::open(&dir.path().join("chain.redb")).unwrap();
    let spec = spec();
    let blocks: Vec<Block> = (0..6)
        .map(|i| {
            let mut block = spec.genesis_block();
            block.header.time = Timestamp(block.header.time.0 + i);
            block
        })
        .collect();
    let put = WriteBatch {
        put_blocks: blocks
            .iter()
            .map(|b| (b.hash(), Arc::new(b.clone())))
            .collect(),
        ..WriteBatch::default()
    };
    store.commit(put).unwrap();
    let reader = store
        .block_reader()
        .expect("a redb store has a block reader");
    for block in &blocks {
        let read = store.block(&block.hash()).unwrap().expect("stored");
        assert_eq!(*read, *block);
        assert_eq!(
            *reader.block(&block.hash()).unwrap().expect("stored"),
            *block
        );
    }
    let gone = blocks[5].hash();
    store
        .commit(WriteBatch {
            delete_blocks: vec![gone],
            ..WriteBatch::default()
        })
        .unwrap();
    assert!(store.block(&gone).unwrap().is_none(), "deleted, not kept");
    assert!(
        reader.block(&gone).unwrap().is_none(),
        "deleted for every handle"
    );
    assert_eq!(*store.block(&blocks[0].hash()).unwrap().unwrap(), blocks[0]);
}

/// Short ids: the first digits of a held block's hash, or of a best-chain transaction's id,
/// find it, and exactly what begins with them (checked against every id the store holds,
/// side branches included); a transaction that left the best chain is not found.
fn short_ids_find_what_the_store_holds<S: Store>(chain: &mut Chain<S>) {
    reorganise_and_check_the_index(chain);
    let held: Vec<BlockHash> = chain
        .store()
        .index()
        .unwrap()
        .into_iter()
        .map(|(hash, _)| hash)
        .filter(|hash| chain.store().block(hash).unwrap().is_some())
        .collect();
    assert!(
        held.len() > chain.tip().height.0 as usize + 1,
        "a side branch is held"
    );
    for hash in &held {
        for digits in [8, 9, 16, 127, 128] {
            let prefix: HashPrefix = hash.short(digits).parse().unwrap();
            let mut expected: Vec<BlockHash> = held
                .iter()
                .filter(|other| other.short(digits) == hash.short(digits))
                .copied()
                .collect();
            expected.sort();
            let found = chain.store().blocks_with_prefix(&prefix, 10).unwrap();
            assert_eq!(found.found, expected, "{digits} digits of {hash}");
            assert!(!found.more);
            let none = chain.store().blocks_with_prefix(&prefix, 0).unwrap();
            assert!(none.found.is_empty() && none.more, "the limit is kept");
        }
    }
    let index = chain.store().tx_index().unwrap();
    for height in 0..=chain.tip().height.0 {
        let block = chain.block_at(Height(height)).unwrap().unwrap();
        for tx in &block.txs {
            let prefix: HashPrefix = tx.id().short(16).parse().unwrap();
            let found = index.txs_with_prefix(&prefix, 10).unwrap();
            assert_eq!(found.found, vec![tx.id()], "at height {height}");
        }
    }
    // Branch A's second block is held, but its transfer is on no best chain.
    let side_transfer = held
        .iter()
        .filter(|hash| !chain.tree().is_on_best(hash))
        .flat_map(|hash| chain.store().block(hash).unwrap().unwrap().txs.clone())
        .find(|tx| matches!(tx, Transaction::Transfer(_)))
        .expect("a transfer on the side branch");
    let prefix: HashPrefix = side_transfer.id().short(16).parse().unwrap();
    assert!(index.txs_with_prefix(&prefix, 10).unwrap().found.is_empty());
}

#[test]
fn short_ids_find_blocks_and_transactions_in_the_file() {
    let dir = TempDir::new("store-prefix");
    let mut chain = open(&spec(), &dir.file("chain.redb")).unwrap();
    short_ids_find_what_the_store_holds(&mut chain);
}

#[test]
fn short_ids_find_blocks_and_transactions_in_memory() {
    let mut chain = Chain::open(spec(), MemStore::indexed(), ChainConfig::default()).unwrap();
    short_ids_find_what_the_store_holds(&mut chain);
    // Without the ordered set (the simulator's stores), a scan gives the same answers.
    let mut plain = Chain::open(spec(), MemStore::new(), ChainConfig::default()).unwrap();
    let genesis = plain.tip().hash;
    let block = block_on(&plain, genesis, 1, None);
    plain.import_block(block.clone(), now(&spec())).unwrap();
    let prefix: HashPrefix = block.hash().short(12).parse().unwrap();
    let found = plain.store().blocks_with_prefix(&prefix, 10).unwrap();
    assert_eq!(found.found, vec![block.hash()]);
}
