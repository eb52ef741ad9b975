//! The transaction index in the chain's redb file: where the best chain holds each
//! transaction, and each account's transactions, so the API's `/tx/ID` and `/accounts/X`
//! are a few key reads instead of a scan of recent blocks.
//!
//! ```text
//! table        key                                   value
//! txs          transaction id (64 bytes)             height (u64 BE) ‖ position (u32 BE)
//! account_txs  address (32) ‖ height (u64 BE) ‖ position (u32 BE)   (empty)
//! ```
//!
//! It is kept inside [`RedbStore`](crate::store::RedbStore)'s commit, in the same write
//! transaction as the best-chain heights it follows: a block leaving a height is unindexed,
//! the block arriving there is indexed, so the index can never disagree with the best chain
//! on disk. A file written before the index existed gets it built once, on opening (the meta
//! key `tx_index` records that it is there).

use std::sync::Arc;

use powchain_chain::block::Block;
use powchain_chain::hash::{BlockHash, TxId};
use powchain_chain::keys::Address;
use powchain_chain::store::{StoreError, WriteBatch};
use powchain_chain::units::Height;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::store::error;

pub(crate) const TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("txs");
pub(crate) const ACCOUNT_TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("account_txs");

/// The meta key that says the index covers the whole best chain.
pub(crate) const BUILT_KEY: &str = "tx_index";

/// Where a transaction is: its block's height and its position in the block.
fn location(height: Height, position: u32) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&height.0.to_be_bytes());
    bytes[8..].copy_from_slice(&position.to_be_bytes());
    bytes
}

fn parse_location(bytes: &[u8]) -> Result<(Height, u32), StoreError> {
    let corrupt = || StoreError("corrupt location in table txs".into());
    let height: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let position: [u8; 4] = bytes
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    Ok((
        Height(u64::from_be_bytes(height)),
        u32::from_be_bytes(position),
    ))
}

fn account_key(address: &Address, height: Height, position: u32) -> [u8; 44] {
    let mut key = [0u8; 44];
    key[..32].copy_from_slice(&address.0);
    key[32..].copy_from_slice(&location(height, position));
    key
}

/// The index rows of a set of blocks at their heights: `txs` as (id, location) and
/// `account_txs` keys. Collected first and written sorted, so a batch touches each redb
/// page once in key order instead of hopping across the tree per transaction.
#[derive(Default)]
struct Rows {
    txs: Vec<([u8; 64], [u8; 12])>,
    accounts: Vec<[u8; 44]>,
}

impl Rows {
    fn add_block(&mut self, block: &Block, height: Height) -> Result<(), StoreError> {
        for (position, tx) in block.txs.iter().enumerate() {
            let position =
                u32::try_from(position).map_err(|_| error("block too long", position))?;
            self.txs.push((tx.id().0.0, location(height, position)));
            for address in tx.accounts() {
                self.accounts.push(account_key(&address, height, position));
            }
        }
        Ok(())
    }

    fn sort(&mut self) {
        self.txs.sort_unstable_by_key(|(id, _)| *id);
        self.accounts.sort_unstable();
    }
}

/// Removes the rows of `leaving`, then adds those of `arriving`. All removals come first:
/// a transfer a reorganisation moves from one height to another is in both, and its new
/// location must be the one that stays.
fn write_rows(
    txn: &WriteTransaction,
    mut leaving: Rows,
    mut arriving: Rows,
) -> Result<(), StoreError> {
    let write = |e| error("cannot write the transaction index", e);
    let mut txs = txn.open_table(TXS).map_err(write_table)?;
    let mut accounts = txn.open_table(ACCOUNT_TXS).map_err(write_table)?;
    leaving.sort();
    arriving.sort();
    for (id, _) in &leaving.txs {
        txs.remove(id.as_slice()).map_err(write)?;
    }
    for key in &leaving.accounts {
        accounts.remove(key.as_slice()).map_err(write)?;
    }
    for (id, at) in &arriving.txs {
        txs.insert(id.as_slice(), at.as_slice()).map_err(write)?;
    }
    for key in &arriving.accounts {
        accounts
            .insert(key.as_slice(), [].as_slice())
            .map_err(write)?;
    }
    Ok(())
}

fn write_table(e: redb::TableError) -> StoreError {
    error("cannot open the transaction index", e)
}

/// Follows the best-chain heights `batch` changes: what leaves a height is unindexed, what
/// arrives there is indexed. Runs in the commit's transaction before the heights are
/// written; `read_best` and `read_block` read the file as it was before the batch (blocks
/// the batch stores are found in it first).
pub(crate) fn follow(
    txn: &WriteTransaction,
    batch: &WriteBatch,
    read_best: impl Fn(Height) -> Result<Option<BlockHash>, StoreError>,
    read_block: impl Fn(&BlockHash) -> Result<Option<Arc<Block>>, StoreError>,
) -> Result<(), StoreError> {
    let block = |hash: &BlockHash| -> Result<Arc<Block>, StoreError> {
        if let Some((_, block)) = batch.put_blocks.iter().find(|(h, _)| h == hash) {
            return Ok(Arc::clone(block));
        }
        read_block(hash)?
            .ok_or_else(|| StoreError(format!("best-chain block {hash} is not stored")))
    };
    // Deletes apply after puts: a height in both ends up empty.
    let mut changes: Vec<(Height, Option<BlockHash>)> = batch
        .put_best
        .iter()
        .filter(|(height, _)| !batch.delete_best.contains(height))
        .map(|(height, hash)| (*height, Some(*hash)))
        .collect();
    changes.extend(batch.delete_best.iter().map(|height| (*height, None)));
    let (mut leaving, mut arriving) = (Rows::default(), Rows::default());
    for (height, new) in changes {
        let old = read_best(height)?;
        if old == new {
            continue;
        }
        if let Some(old) = old {
            leaving.add_block(&*block(&old)?, height)?;
        }
        if let Some(new) = new {
            arriving.add_block(&*block(&new)?, height)?;
        }
    }
    write_rows(txn, leaving, arriving)
}

/// Blocks whose rows [`build`] collects before writing them.
const BUILD_CHUNK_BLOCKS: usize = 1_000;

/// Indexes the whole best chain `best` (height and hash, in any order), for a file written
/// before the index existed.
pub(crate) fn build(
    txn: &WriteTransaction,
    best: &[(Height, BlockHash)],
    read_block: impl Fn(&BlockHash) -> Result<Option<Arc<Block>>, StoreError>,
) -> Result<(), StoreError> {
    // A chunk at a time: a long chain's rows would not fit in memory at once.
    for chunk in best.chunks(BUILD_CHUNK_BLOCKS) {
        let mut rows = Rows::default();
        for (height, hash) in chunk {
            let block = read_block(hash)?
                .ok_or_else(|| StoreError(format!("best-chain block {hash} is not stored")))?;
            rows.add_block(&block, *height)?;
        }
        write_rows(txn, Rows::default(), rows)?;
    }
    Ok(())
}

/// The location of transaction `id`, read from `txs`.
pub(crate) fn tx_location(
    txs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &TxId,
) -> Result<Option<(Height, u32)>, StoreError> {
    match txs
        .get(id.0.0.as_slice())
        .map_err(|e| error("cannot read the transaction index", e))?
    {
        Some(value) => parse_location(value.value()).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` locations of `address`'s transactions, newest first, read from
/// `account_txs`.
pub(crate) fn account_txs(
    accounts: &impl ReadableTable<&'static [u8], &'static [u8]>,
    address: &Address,
    limit: usize,
) -> Result<Vec<(Height, u32)>, StoreError> {
    let read = |e| error("cannot read the transaction index", e);
    let first = account_key(address, Height(0), 0);
    let last = account_key(address, Height(u64::MAX), u32::MAX);
    let mut found = Vec::new();
    for row in accounts
        .range(first.as_slice()..=last.as_slice())
        .map_err(read)?
        .rev()
        .take(limit)
    {
        let (key, _) = row.map_err(read)?;
        found.push(parse_location(key.value().get(32..).unwrap_or_default())?);
    }
    Ok(found)
}
