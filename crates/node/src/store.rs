//! The chain in one redb file: [`RedbStore`], the durable implementation of the chain
//! crate's `Store` trait, and in the same file the peer address book ([`RedbAddresses`],
//! the protocol's `AddressStore`).
//!
//! ```text
//! table      key                      value (postcard)
//! meta       "identity" | "tip"       ChainIdentity | 64-byte block hash
//! blocks     block hash (64 bytes)    Block
//! index      block hash               IndexEntry (header, chain work, status, seq, size)
//! best       height (u64)             block hash on the best chain
//! accounts   address (32 bytes)       Account (balance, nonce)
//! undo       block hash               BlockUndo (accounts before the block)
//! peers      "ip:port" or socket path PeerRecord
//! txs, account_txs                    the transaction index (see `crate::tx_index`)
//! ```
//!
//! Every `commit` is one redb write transaction with immediate durability: when it returns,
//! the block, its index entry, its state effects, its undo data and the new tip are on disk
//! together, and a crash at any moment leaves the file before or after it, never between.
//! Private keys are never stored here (wallets have their own file, see `wallet`).

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex};

use powchain_chain::block::{Block, tx_root};
use powchain_chain::hash::{BlockHash, Hash512, TxId};
use powchain_chain::keys::Address;
use powchain_chain::prefix::{HashPrefix, Matches};
use powchain_chain::state::{Account, AccountReader, BlockUndo};
use powchain_chain::store::{
    BlockReader, ChainIdentity, IndexEntry, Store, StoreError, TxIndex, WriteBatch,
};
use powchain_chain::units::Height;
use powchain_protocol::AddressStore;

use crate::tx_index;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("index");
const BEST: TableDefinition<u64, &[u8]> = TableDefinition::new("best");
const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undo");
const PEERS: TableDefinition<&str, &[u8]> = TableDefinition::new("peers");

const IDENTITY_KEY: &str = "identity";
const TIP_KEY: &str = "tip";

/// Longest peer address kept in the address book, in bytes.
pub const PEER_ADDRESS_BYTES_MAX: usize = 256;

/// What the node remembers of a peer address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// When a connection to it last succeeded, ms since the Unix epoch (0: never).
    pub last_connected_ms: u64,
    /// Connection attempts that failed since the last success.
    pub failures: u32,
    /// Refused until this time (ms since the Unix epoch) after misbehaving.
    pub banned_until_ms: u64,
}

/// A chain database in one redb file.
pub struct RedbStore {
    /// Shared with the address book's handle ([`RedbAddresses`]).
    db: Arc<Database>,
    /// Accounts read or written lately (shared by every handle on the file, so none can
    /// hold a value a commit has replaced).
    accounts: Arc<Mutex<HashMap<Address, Option<Account>>>>,
    /// The blocks written or read last, newest at the back (shared as the accounts are).
    recent_blocks: Arc<Mutex<RecentBlocks>>,
}

/// Blocks kept in memory, by hash, the newest at the back.
type RecentBlocks = VecDeque<(BlockHash, Arc<Block>)>;

/// Blocks [`RedbStore`] keeps in memory after writing or reading them. A new block is read
/// back as soon as it is written (to connect it, to index it, to serve it to each peer that
/// asks), and each read from the file decodes it and hashes every transaction again to
/// check its root: under load that was a few percent of a node's time. These were checked
/// when they were accepted or first read.
const RECENT_BLOCKS_KEPT: usize = 4;

/// Accounts [`RedbStore`] keeps in memory, at most; past it the cache starts again empty.
/// Every transfer's admission and every template reads its accounts, and a read from the
/// file is a read transaction, a table opened and a value decoded: under load that was a
/// tenth of a node's time.
const ACCOUNTS_CACHED_MAX: usize = 200_000;

/// A store error naming what failed.
pub(crate) fn error(what: &str, cause: impl Display) -> StoreError {
    StoreError(format!("{what}: {cause}"))
}

fn decode<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| error(&format!("corrupt value in table {table}"), e))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|e| error("cannot encode a value", e))
}

fn hash_from(table: &str, bytes: &[u8]) -> Result<BlockHash, StoreError> {
    let array: [u8; 64] = bytes
        .try_into()
        .map_err(|_| StoreError(format!("corrupt block hash in table {table}")))?;
    Ok(BlockHash(Hash512(array)))
}

/// The keys of `table` (digests, in byte order) that begin with `prefix`: at most `limit`,
/// and whether there are more. One range read of `limit + 1` rows, however large the table.
pub(crate) fn keys_with_prefix(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    prefix: &HashPrefix,
    limit: usize,
) -> Result<Matches<Hash512>, StoreError> {
    let range = prefix.range();
    let rows = table
        .range::<&[u8]>(range.start().as_slice()..=range.end().as_slice())
        .map_err(|e| error(&format!("cannot read table {name}"), e))?;
    let mut keys = Vec::new();
    for row in rows.take(limit.saturating_add(1)) {
        let (key, _) = row.map_err(|e| error(&format!("cannot read table {name}"), e))?;
        let array: [u8; 64] = key
            .value()
            .try_into()
            .map_err(|_| StoreError(format!("corrupt key in table {name}")))?;
        keys.push(Hash512(array));
    }
    Ok(Matches::of(keys, limit))
}

/// Whether `block`, stored under `hash`, is still the block that was stored: its header
/// hashes to `hash` and its transactions to the header's root.
pub fn check_stored_block(hash: &BlockHash, block: &Block) -> Result<(), StoreError> {
    let damaged = |what: &str| {
        StoreError(format!(
            "block {hash} is damaged on disk ({what}); run `powchain check --db FILE`"
        ))
    };
    if block.hash() != *hash {
        return Err(damaged("its header does not hash to its key"));
    }
    if tx_root(&block.txs) != block.header.tx_root {
        return Err(damaged("its transactions do not match the header's root"));
    }
    Ok(())
}

/// The page cache redb keeps for one database. Its default, 1 GiB per database, let a
/// node's memory grow with its chain (four devnet nodes under load reached 1.5 GiB); the
/// pages a node reads again (the accounts, the recent blocks, the tables' upper levels)
/// fit in far less.
const CACHE_BYTES: usize = 64 << 20;

impl RedbStore {
    /// Opens the database at `path`, creating an empty one if there is no file. A file that
    /// is not a redb database, or a damaged one, is an error, never a panic.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let what = format!("cannot open database {}", path.display());
        // redb makes a new database of an empty file: a truncated or zeroed file would
        // silently become a new chain.
        let existed = match std::fs::metadata(path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(error(
                    &what,
                    "the file is empty (0 bytes), not a powchain database; \
                     move it away to start a new chain there",
                ));
            }
            Ok(_) => true,
            Err(_) => false,
        };
        let db = match std::panic::catch_unwind(|| {
            redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(path)
        }) {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(error(&what, "it is in use by another powchain process"));
            }
            Ok(Err(cause)) => return Err(error(&what, cause)),
            // redb should report damage as an error; if it panics instead, so do we not.
            Err(_) => return Err(error(&what, "the file is damaged")),
        };
        let store = RedbStore {
            db: Arc::new(db),
            accounts: Arc::default(),
            recent_blocks: Arc::default(),
        };
        if existed && !store.has_meta_table()? {
            return Err(error(
                &what,
                "the file is a redb database but not a powchain one (it has no meta table); \
                 pick another --db",
            ));
        }
        store.create_tables()?;
        store.build_tx_index()?;
        Ok(store)
    }

    /// Whether the file has powchain's meta table (written with the tables, before
    /// anything else).
    fn has_meta_table(&self) -> Result<bool, StoreError> {
        self.read(|txn| match txn.open_table(META) {
            Ok(_) => Ok(true),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(cause) => Err(error("cannot open table meta", cause)),
        })
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| error("cannot start a write", e))?;
        {
            let open = |e| error("cannot create tables", e);
            txn.open_table(META).map_err(open)?;
            txn.open_table(BLOCKS).map_err(open)?;
            txn.open_table(INDEX).map_err(open)?;
            txn.open_table(BEST).map_err(open)?;
            txn.open_table(ACCOUNTS).map_err(open)?;
            txn.open_table(UNDO).map_err(open)?;
            txn.open_table(PEERS).map_err(open)?;
            txn.open_table(tx_index::TXS).map_err(open)?;
            txn.open_table(tx_index::ACCOUNT_TXS).map_err(open)?;
        }
        txn.commit().map_err(|e| error("cannot create tables", e))
    }

    /// Builds the transaction index of a file written before it existed, once.
    fn build_tx_index(&self) -> Result<(), StoreError> {
        let built: Option<Vec<u8>> = self.read(|txn| {
            let meta = txn
                .open_table(META)
                .map_err(|e| error("cannot open table meta", e))?;
            Ok(meta
                .get(tx_index::BUILT_KEY)
                .map_err(|e| error("cannot read table meta", e))?
                .map(|value| value.value().to_vec()))
        })?;
        if built.is_some() {
            return Ok(());
        }
        let best = self.best_chain()?;
        self.write(|txn| {
            tx_index::build(txn, &best, |hash| self.block(hash))?;
            txn.open_table(META)
                .map_err(|e| error("cannot open table meta", e))?
                .insert(tx_index::BUILT_KEY, [1u8].as_slice())
                .map_err(|e| error("cannot write table meta", e))?;
            Ok(())
        })
    }

    /// Every best-chain height and its block.
    fn best_chain(&self) -> Result<Vec<(Height, BlockHash)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(BEST)
                .map_err(|e| error("cannot open table best", e))?;
            let mut best = Vec::new();
            for row in table
                .iter()
                .map_err(|e| error("cannot read table best", e))?
            {
                let (height, hash) = row.map_err(|e| error("cannot read table best", e))?;
                best.push((Height(height.value()), hash_from("best", hash.value())?));
            }
            Ok(best)
        })
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| error("cannot start a read", e))?;
        read(&txn)
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.read(|txn| {
            let name = table.to_string();
            let table = txn
                .open_table(table)
                .map_err(|e| error(&format!("cannot open table {name}"), e))?;
            match table
                .get(key)
                .map_err(|e| error(&format!("cannot read table {name}"), e))?
            {
                Some(value) => decode(&name, value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Every account, for checks and tools (a full scan).
    pub fn all_accounts(&self) -> Result<Vec<(Address, Account)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(ACCOUNTS)
                .map_err(|e| error("cannot open table accounts", e))?;
            let mut accounts = Vec::new();
            for row in table
                .iter()
                .map_err(|e| error("cannot read table accounts", e))?
            {
                let (key, value) = row.map_err(|e| error("cannot read table accounts", e))?;
                let address: [u8; 32] = key
                    .value()
                    .try_into()
                    .map_err(|_| StoreError("corrupt address in table accounts".into()))?;
                accounts.push((Address(address), decode("accounts", value.value())?));
            }
            Ok(accounts)
        })
    }

    /// The peer address book.
    pub fn peers(&self) -> Result<Vec<(String, PeerRecord)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(PEERS)
                .map_err(|e| error("cannot open table peers", e))?;
            let mut peers = Vec::new();
            for row in table
                .iter()
                .map_err(|e| error("cannot read table peers", e))?
            {
                let (key, value) = row.map_err(|e| error("cannot read table peers", e))?;
                peers.push((key.value().to_owned(), decode("peers", value.value())?));
            }
            Ok(peers)
        })
    }

    /// Records a peer address (at most [`PEER_ADDRESS_BYTES_MAX`] bytes).
    pub fn put_peer(&self, address: &str, record: &PeerRecord) -> Result<(), StoreError> {
        if address.is_empty() || address.len() > PEER_ADDRESS_BYTES_MAX {
            return Err(StoreError(format!(
                "a peer address is 1 to {PEER_ADDRESS_BYTES_MAX} bytes"
            )));
        }
        let value = encode(record)?;
        self.write(|txn| {
            let mut table = txn
                .open_table(PEERS)
                .map_err(|e| error("cannot open table peers", e))?;
            table
                .insert(address, value.as_slice())
                .map_err(|e| error("cannot write table peers", e))?;
            Ok(())
        })
    }

    /// Forgets a peer address.
    pub fn remove_peer(&self, address: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn
                .open_table(PEERS)
                .map_err(|e| error("cannot open table peers", e))?;
            table
                .remove(address)
                .map_err(|e| error("cannot write table peers", e))?;
            Ok(())
        })
    }

    /// The peer address book kept in the same file, for the node's address manager.
    pub fn addresses(&self) -> RedbAddresses {
        RedbAddresses {
            store: self.handle(),
        }
    }

    /// One durable write transaction.
    fn write(
        &self,
        write: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| error("cannot start a write", e))?;
        write(&txn)?;
        txn.commit().map_err(|e| error("cannot commit", e))
    }
}

impl AccountReader for RedbStore {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        if let Some(account) = self.cached_accounts().get(address) {
            return Ok(*account);
        }
        let account: Option<Account> = self.get(ACCOUNTS, &address.0)?;
        let mut cached = self.cached_accounts();
        if cached.len() >= ACCOUNTS_CACHED_MAX {
            cached.clear();
        }
        cached.insert(*address, account);
        Ok(account)
    }
}

impl RedbStore {
    /// Another handle on the same file, sharing its caches.
    fn handle(&self) -> RedbStore {
        RedbStore {
            db: Arc::clone(&self.db),
            accounts: Arc::clone(&self.accounts),
            recent_blocks: Arc::clone(&self.recent_blocks),
        }
    }

    /// The recent blocks (a poisoned lock is taken as it is, as the accounts').
    fn recent(&self) -> std::sync::MutexGuard<'_, RecentBlocks> {
        self.recent_blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `block` among the recent ones.
    fn remember_block(&self, hash: BlockHash, block: Arc<Block>) {
        let mut recent = self.recent();
        recent.retain(|(kept, _)| *kept != hash);
        if recent.len() >= RECENT_BLOCKS_KEPT {
            recent.pop_front();
        }
        recent.push_back((hash, block));
    }

    /// The account cache. A panic elsewhere while it was held leaves values that were all
    /// true when written, so a poisoned lock is taken as it is.
    fn cached_accounts(&self) -> std::sync::MutexGuard<'_, HashMap<Address, Option<Account>>> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TxIndex for RedbStore {
    fn tx_location(&self, id: &TxId) -> Result<Option<(Height, u32)>, StoreError> {
        self.read(|txn| {
            let txs = txn
                .open_table(tx_index::TXS)
                .map_err(|e| error("cannot open the transaction index", e))?;
            tx_index::tx_location(&txs, id)
        })
    }

    fn account_txs(
        &self,
        address: &Address,
        limit: usize,
    ) -> Result<Vec<(Height, u32)>, StoreError> {
        self.read(|txn| {
            let accounts = txn
                .open_table(tx_index::ACCOUNT_TXS)
                .map_err(|e| error("cannot open the transaction index", e))?;
            tx_index::account_txs(&accounts, address, limit)
        })
    }

    fn txs_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<TxId>, StoreError> {
        self.read(|txn| {
            let txs = txn
                .open_table(tx_index::TXS)
                .map_err(|e| error("cannot open the transaction index", e))?;
            Ok(keys_with_prefix(&txs, "txs", prefix, limit)?.map(TxId))
        })
    }
}

/// The store's blocks for other threads (see [`Store::block_reader`]): another handle on the
/// same file, whose reads are read transactions of their own.
struct RedbBlocks(RedbStore);

impl BlockReader for RedbBlocks {
    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError> {
        self.0.block(hash)
    }
}

impl Store for RedbStore {
    fn block_reader(&self) -> Option<Arc<dyn BlockReader>> {
        Some(Arc::new(RedbBlocks(self.handle())))
    }

    fn identity(&self) -> Result<Option<ChainIdentity>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(META)
                .map_err(|e| error("cannot open table meta", e))?;
            match table
                .get(IDENTITY_KEY)
                .map_err(|e| error("cannot read table meta", e))?
            {
                Some(value) => decode("meta", value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// A stored block, checked against its hash and transaction root before anyone uses or
    /// serves it: a flipped bit on disk is reported, naming the block, never passed on.
    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError> {
        if let Some((_, block)) = self.recent().iter().find(|(kept, _)| kept == hash) {
            return Ok(Some(Arc::clone(block)));
        }
        let Some(block) = self.get::<Block>(BLOCKS, &hash.0.0)? else {
            return Ok(None);
        };
        check_stored_block(hash, &block)?;
        let block = Arc::new(block);
        self.remember_block(*hash, Arc::clone(&block));
        Ok(Some(block))
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        self.get(UNDO, &hash.0.0)
    }

    fn best_at(&self, height: Height) -> Result<Option<BlockHash>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(BEST)
                .map_err(|e| error("cannot open table best", e))?;
            match table
                .get(height.0)
                .map_err(|e| error("cannot read table best", e))?
            {
                Some(value) => hash_from("best", value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(META)
                .map_err(|e| error("cannot open table meta", e))?;
            match table
                .get(TIP_KEY)
                .map_err(|e| error("cannot read table meta", e))?
            {
                Some(value) => hash_from("meta", value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    fn index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(INDEX)
                .map_err(|e| error("cannot open table index", e))?;
            let mut entries = Vec::new();
            for row in table
                .iter()
                .map_err(|e| error("cannot read table index", e))?
            {
                let (key, value) = row.map_err(|e| error("cannot read table index", e))?;
                entries.push((
                    hash_from("index", key.value())?,
                    decode("index", value.value())?,
                ));
            }
            Ok(entries)
        })
    }

    fn blocks_with_prefix(
        &self,
        prefix: &HashPrefix,
        limit: usize,
    ) -> Result<Matches<BlockHash>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(BLOCKS)
                .map_err(|e| error("cannot open table blocks", e))?;
            Ok(keys_with_prefix(&table, "blocks", prefix, limit)?.map(BlockHash))
        })
    }

    fn tx_index(&self) -> Option<&dyn TxIndex> {
        Some(self)
    }

    fn commit(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write(|txn| {
            let open =
                |name: &str, e: redb::TableError| error(&format!("cannot open table {name}"), e);
            let write =
                |name: &str, e: redb::StorageError| error(&format!("cannot write table {name}"), e);
            // The index follows the best-chain heights. Nothing is written yet, so reads
            // of the file see it as it was before the batch.
            tx_index::follow(
                txn,
                &batch,
                |height| self.best_at(height),
                |hash| self.block(hash),
            )?;
            {
                let mut blocks = txn.open_table(BLOCKS).map_err(|e| open("blocks", e))?;
                for (hash, block) in &batch.put_blocks {
                    let value = encode(block.as_ref())?;
                    blocks
                        .insert(hash.0.0.as_slice(), value.as_slice())
                        .map_err(|e| write("blocks", e))?;
                }
                for hash in &batch.delete_blocks {
                    blocks
                        .remove(hash.0.0.as_slice())
                        .map_err(|e| write("blocks", e))?;
                }
            }
            {
                let mut index = txn.open_table(INDEX).map_err(|e| open("index", e))?;
                for (hash, entry) in &batch.put_index {
                    let value = encode(entry)?;
                    index
                        .insert(hash.0.0.as_slice(), value.as_slice())
                        .map_err(|e| write("index", e))?;
                }
                for hash in &batch.delete_index {
                    index
                        .remove(hash.0.0.as_slice())
                        .map_err(|e| write("index", e))?;
                }
            }
            {
                let mut accounts = txn.open_table(ACCOUNTS).map_err(|e| open("accounts", e))?;
                for (address, account) in &batch.accounts {
                    match account {
                        Some(account) => {
                            let value = encode(account)?;
                            accounts
                                .insert(address.0.as_slice(), value.as_slice())
                                .map_err(|e| write("accounts", e))?;
                        }
                        None => {
                            accounts
                                .remove(address.0.as_slice())
                                .map_err(|e| write("accounts", e))?;
                        }
                    }
                }
            }
            {
                let mut undo = txn.open_table(UNDO).map_err(|e| open("undo", e))?;
                for (hash, data) in &batch.put_undo {
                    let value = encode(data)?;
                    undo.insert(hash.0.0.as_slice(), value.as_slice())
                        .map_err(|e| write("undo", e))?;
                }
                for hash in &batch.delete_undo {
                    undo.remove(hash.0.0.as_slice())
                        .map_err(|e| write("undo", e))?;
                }
            }
            {
                let mut best = txn.open_table(BEST).map_err(|e| open("best", e))?;
                for (height, hash) in &batch.put_best {
                    best.insert(height.0, hash.0.0.as_slice())
                        .map_err(|e| write("best", e))?;
                }
                for height in &batch.delete_best {
                    best.remove(height.0).map_err(|e| write("best", e))?;
                }
            }
            {
                let mut meta = txn.open_table(META).map_err(|e| open("meta", e))?;
                if let Some(tip) = &batch.tip {
                    meta.insert(TIP_KEY, tip.0.0.as_slice())
                        .map_err(|e| write("meta", e))?;
                }
                if let Some(identity) = &batch.identity {
                    let value = encode(identity)?;
                    meta.insert(IDENTITY_KEY, value.as_slice())
                        .map_err(|e| write("meta", e))?;
                }
            }
            Ok(())
        })?;
        // Only once the file holds them: a failed commit leaves the caches as the file is.
        self.recent()
            .retain(|(hash, _)| !batch.delete_blocks.contains(hash));
        for (hash, block) in &batch.put_blocks {
            self.remember_block(*hash, Arc::clone(block));
        }
        let mut cached = self.cached_accounts();
        for (address, account) in &batch.accounts {
            if cached.contains_key(address) {
                cached.insert(*address, *account);
            }
        }
        Ok(())
    }
}

/// The peer address book's half of the file: where the node's address manager keeps what it
/// learned across restarts (the `peers` table). Not consensus data, so not the chain's
/// `Store`; it shares the file, through [`RedbStore::addresses`].
pub struct RedbAddresses {
    store: RedbStore,
}

impl AddressStore for RedbAddresses {
    fn load(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .peers()?
            .into_iter()
            .map(|(address, _)| address)
            .collect())
    }

    fn save(&mut self, addresses: &[String]) -> Result<(), StoreError> {
        let known = self.store.peers()?;
        self.store.write(|txn| {
            let mut table = txn
                .open_table(PEERS)
                .map_err(|e| error("cannot open table peers", e))?;
            for (address, _) in &known {
                if !addresses.contains(address) {
                    table
                        .remove(address.as_str())
                        .map_err(|e| error("cannot write table peers", e))?;
                }
            }
            let fresh = encode(&PeerRecord::default())?;
            for address in addresses {
                if address.is_empty() || address.len() > PEER_ADDRESS_BYTES_MAX {
                    continue;
                }
                if !known.iter().any(|(known, _)| known == address) {
                    table
                        .insert(address.as_str(), fresh.as_slice())
                        .map_err(|e| error("cannot write table peers", e))?;
                }
            }
            Ok(())
        })
    }
}
