//! The JSON the API answers with, built from what the node's loop knows at one step (so each
//! answer is consistent as of that step) and the block bodies read beside it (`reads`). Hashes, ids and addresses are lowercase hex, as in
//! the chain export format; amounts, heights, nonces and times (ms since the epoch) are
//! integers; chain work is a decimal string (it does not fit a JSON number).

use std::sync::Arc;

use powchain_chain::store::{BlockStatus, TxIndex};
use powchain_chain::{Address, Block, BlockHash, Height, Store, Transaction, TxId};
use powchain_node::driver::MiningStatus;
use powchain_protocol::{Direction, Node};
use serde::Serialize;

use crate::reads::{Body, Located};

/// Blocks the network hash rate is estimated over.
const HASH_RATE_WINDOW_BLOCKS: u64 = 20;

/// Transfers an account view lists.
const ACCOUNT_HISTORY_MAX: usize = 20;

/// Transfers the mempool view lists.
pub const MEMPOOL_LISTED_MAX: usize = 1_000;

/// `GET /api/v1/status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    /// The chain spec's name.
    pub network: String,
    /// The genesis hash, which names the rules.
    pub genesis: String,
    pub height: u64,
    pub tip: String,
    pub tip_time: u64,
    /// The best chain's work, a decimal string.
    pub total_work: String,
    /// The tip's difficulty in leading zero bits.
    pub difficulty_bits: f64,
    /// Ready peers.
    pub peers: usize,
    pub mempool_count: usize,
    pub mempool_bytes: usize,
    /// Whether the node mines continuously.
    pub automine: bool,
    /// Whether the miner is working on a block now (automine, or one `mine` request).
    pub mining: bool,
    /// Mining threads (0: this node has no miner).
    pub miner_threads: usize,
    /// Hashes per second this node's miner tried over the last few seconds.
    pub miner_hash_rate: f64,
    /// Hashes per second the whole network spends, estimated from the last blocks' work
    /// and times (0 before there are two blocks).
    pub network_hash_rate: f64,
    /// Blocks waiting to be downloaded.
    pub downloading: usize,
    /// The smallest fee a transfer may pay on this chain.
    pub fee_min: u64,
}

impl StatusView {
    pub fn of<S: Store>(node: &Node<S>, mining: MiningStatus) -> StatusView {
        let chain = node.chain();
        let spec = chain.spec();
        let tip = chain.tip();
        StatusView {
            network: spec.name.clone(),
            // The chain caches its genesis hash; the spec would hash the genesis block
            // (every funded account's coinbase) on each status call.
            genesis: chain.chain_id().to_string(),
            height: tip.height.0,
            tip: tip.hash.to_string(),
            tip_time: tip.header.time.0,
            total_work: tip.chain_work.0.to_string(),
            difficulty_bits: tip.header.target.difficulty_bits(),
            peers: node.peers().len(),
            mempool_count: node.mempool().len(),
            mempool_bytes: node.mempool().bytes(),
            automine: node.is_automining(),
            mining: mining.working,
            miner_threads: mining.threads,
            miner_hash_rate: mining.hash_rate,
            network_hash_rate: network_hash_rate(node),
            downloading: node.download_queue_len(),
            fee_min: spec.fee_min.0,
        }
    }
}

/// Work over time across the last [`HASH_RATE_WINDOW_BLOCKS`] blocks of the best chain.
pub(crate) fn network_hash_rate<S: Store>(node: &Node<S>) -> f64 {
    let chain = node.chain();
    let tip = chain.tip();
    let start = tip.height.0.saturating_sub(HASH_RATE_WINDOW_BLOCKS);
    let Some(first) = chain.tree().best_at(Height(start)) else {
        return 0.0;
    };
    let Some(first) = chain.tree().get(&first) else {
        return 0.0;
    };
    let work = tip.chain_work.0.saturating_sub(first.chain_work.0) as f64;
    let seconds = tip.header.time.ms_since(first.header.time) as f64 / 1e3;
    if seconds > 0.0 { work / seconds } else { 0.0 }
}

/// A transaction, with where it is.
#[derive(Clone, Debug, Serialize)]
pub struct TxView {
    pub id: String,
    /// `coinbase` or `transfer`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub amount: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// The memo as hex (transfers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// The block holding it, on the best chain (`None`: pending, or only in a side branch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockRef>,
    /// Blocks on top of and including its block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Waiting in this node's mempool.
    pub pending: bool,
}

/// Where a transaction was confirmed.
#[derive(Clone, Debug, Serialize)]
pub struct BlockRef {
    pub height: u64,
    pub hash: String,
}

impl TxView {
    /// `tx`, confirmed in `block` at `height` under a tip at `tip_height`, or pending.
    pub fn new(tx: &Transaction, confirmed: Option<(Height, BlockHash)>, tip: Height) -> TxView {
        let (from, to, amount, fee, nonce, memo) = match tx {
            Transaction::Coinbase(c) => (None, c.to, c.amount, None, None, None),
            Transaction::Transfer(t) => (
                Some(t.from.to_string()),
                t.to,
                t.amount,
                Some(t.fee.0),
                Some(t.nonce),
                Some(hex(t.memo.as_bytes())),
            ),
        };
        TxView {
            id: tx.id().to_string(),
            kind: match tx {
                Transaction::Coinbase(_) => "coinbase",
                Transaction::Transfer(_) => "transfer",
            },
            from,
            to: to.to_string(),
            amount: amount.0,
            fee,
            nonce,
            memo,
            block: confirmed.map(|(height, hash)| BlockRef {
                height: height.0,
                hash: hash.to_string(),
            }),
            confirmations: confirmed.map(|(height, _)| tip.0.saturating_sub(height.0) + 1),
            pending: confirmed.is_none(),
        }
    }

    /// Looks `id` up in the mempool, then in the transaction index; a confirmed one's
    /// block is left to read (see `reads`).
    pub fn locate<S: Store>(node: &Node<S>, id: &TxId, off_loop: bool) -> Result<TxFound, String> {
        let tip = node.chain().tip().height;
        if let Some(transfer) = node.mempool().get(id) {
            let tx = Transaction::Transfer(transfer.clone());
            return Ok(TxFound::Pending(TxView::new(&tx, None, tip)));
        }
        let location = tx_index(node)?.tx_location(id).map_err(|e| e.to_string())?;
        match location {
            Some((height, position)) => Ok(TxFound::Confirmed {
                tip,
                at: locate_in_best(node, height, position, off_loop)?,
            }),
            None => Ok(TxFound::Unknown),
        }
    }

    /// The transaction `at` names in `block`, if it is `id` (checked: the index and the
    /// block were read apart).
    pub fn confirmed(block: &Block, at: &Located, id: &TxId, tip: Height) -> Option<TxView> {
        block
            .txs
            .get(at.position as usize)
            .filter(|tx| tx.id() == *id)
            .map(|tx| TxView::new(tx, Some((at.height, at.hash)), tip))
    }
}

/// What the loop knows of a transaction.
pub enum TxFound {
    /// Waiting in the mempool.
    Pending(TxView),
    /// On the best chain, its block to be read.
    Confirmed { tip: Height, at: Located },
    /// Neither.
    Unknown,
}

/// The best-chain block at `height`, where the transaction index says a transaction is.
fn locate_in_best<S: Store>(
    node: &Node<S>,
    height: Height,
    position: u32,
    off_loop: bool,
) -> Result<Located, String> {
    let hash = node
        .chain()
        .tree()
        .best_at(height)
        .ok_or_else(|| format!("the transaction index names height {height}, past the tip"))?;
    Ok(Located {
        height,
        hash,
        position,
        body: Body::of(node, hash, off_loop)?,
    })
}

/// The node's transaction index. Every store that serves the API keeps one (the redb
/// store in its file, `MemStore::indexed` in memory), so reads are lookups, never scans of
/// recent blocks on the node's event loop.
fn tx_index<S: Store>(node: &Node<S>) -> Result<&dyn TxIndex, String> {
    node.chain()
        .store()
        .tx_index()
        .ok_or_else(|| "this node keeps no transaction index".to_owned())
}

/// A block with its place in the chain.
#[derive(Clone, Debug, Serialize)]
pub struct BlockView {
    pub hash: String,
    pub height: u64,
    pub prev_hash: String,
    pub time: u64,
    /// The target's first 128 bits, 32 hex digits.
    pub target: String,
    pub difficulty_bits: f64,
    pub nonce: u64,
    pub tx_root: String,
    pub tx_count: usize,
    /// Whether it is on this node's best chain.
    pub on_best_chain: bool,
    /// Blocks on top of and including it (best chain only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Its transactions (left out of listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txs: Option<Vec<TxView>>,
}

impl BlockView {
    /// `block` as seen from `node`, with its transactions when `with_txs`.
    pub fn new<S: Store>(node: &Node<S>, block: &Block, with_txs: bool) -> BlockView {
        let chain = node.chain();
        let on_best = chain.tree().is_on_best(&block.hash());
        BlockView::build(block, chain.tip().height, on_best, with_txs, |id| {
            node.mempool().get(id).is_some()
        })
    }

    /// `block` under a tip at `tip`, on the best chain or not, with its transactions when
    /// `with_txs`; `pending` says which of a side branch's are in the mempool.
    pub fn build(
        block: &Block,
        tip: Height,
        on_best: bool,
        with_txs: bool,
        pending: impl Fn(&TxId) -> bool,
    ) -> BlockView {
        let hash = block.hash();
        let header = &block.header;
        let confirmed = on_best.then_some((header.height, hash));
        BlockView {
            hash: hash.to_string(),
            height: header.height.0,
            prev_hash: header.prev_hash.to_string(),
            time: header.time.0,
            target: format!("{:032x}", header.target.0),
            difficulty_bits: header.target.difficulty_bits(),
            nonce: header.nonce,
            tx_root: header.tx_root.to_string(),
            tx_count: block.txs.len(),
            on_best_chain: on_best,
            confirmations: on_best.then(|| tip.0.saturating_sub(header.height.0) + 1),
            txs: with_txs.then(|| {
                block
                    .txs
                    .iter()
                    .map(|tx| {
                        let mut view = TxView::new(tx, confirmed, tip);
                        // Off the best chain: pending only if this node's mempool has it.
                        if confirmed.is_none() {
                            view.pending = pending(&tx.id());
                        }
                        view
                    })
                    .collect()
            }),
        }
    }
}

/// An account.
#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    pub address: String,
    /// Its dev account number, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_index: Option<u64>,
    /// Whether the best chain knows it.
    pub exists: bool,
    pub balance: u64,
    pub nonce: u64,
    /// The balance once this node's pending transfers are mined.
    pub pending_balance: u64,
    /// The nonce its next transfer should carry.
    pub next_nonce: u64,
    /// Its latest transfers and coinbases, pending first, then newest first (at most 20,
    /// from the whole best chain, through the transaction index).
    pub recent: Vec<TxView>,
}

impl AccountView {
    /// The account as the loop knows it, with its pending transfers; its confirmed ones
    /// are located, their blocks left to read (see `reads`): add them with
    /// [`AccountView::add_confirmed`].
    pub fn of<S: Store>(
        node: &Node<S>,
        address: Address,
        dev_index: Option<u64>,
        off_loop: bool,
    ) -> Result<(AccountView, Height, Vec<Located>), String> {
        let chain = node.chain();
        let account = chain.account(&address).map_err(|e| e.to_string())?;
        let confirmed = account.unwrap_or_default();
        let tip = chain.tip().height;
        let recent: Vec<TxView> = node
            .mempool()
            .transfers()
            .into_iter()
            .filter(|(_, t)| t.from == address || t.to == address)
            .take(ACCOUNT_HISTORY_MAX)
            .map(|(_, t)| TxView::new(&Transaction::Transfer(t.clone()), None, tip))
            .collect();
        let wanted = ACCOUNT_HISTORY_MAX - recent.len();
        let mut located = Vec::new();
        for (height, position) in tx_index(node)?
            .account_txs(&address, wanted)
            .map_err(|e| e.to_string())?
        {
            // Transfers of one block share its body.
            let at = match located.last() {
                Some(Located {
                    height: last,
                    hash,
                    body,
                    ..
                }) if *last == height => Located {
                    height,
                    hash: *hash,
                    position,
                    body: body.clone(),
                },
                _ => locate_in_best(node, height, position, off_loop)?,
            };
            located.push(at);
        }
        let view = AccountView {
            address: address.to_string(),
            dev_index,
            exists: account.is_some(),
            balance: confirmed.balance.0,
            nonce: confirmed.nonce,
            pending_balance: node
                .mempool()
                .pending_balance(&address, confirmed.balance)
                .0,
            next_nonce: node.next_nonce(&address),
            recent,
        };
        Ok((view, tip, located))
    }

    /// Adds the confirmed transfers `located` names, from `blocks` (one for each).
    pub fn add_confirmed(
        &mut self,
        located: &[Located],
        blocks: &[Option<Arc<Block>>],
        tip: Height,
    ) {
        for (at, block) in located.iter().zip(blocks) {
            if let Some(tx) = block.as_ref().and_then(|b| b.txs.get(at.position as usize)) {
                self.recent
                    .push(TxView::new(tx, Some((at.height, at.hash)), tip));
            }
        }
    }
}

/// A peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerView {
    /// The connection's id on this node (what `DELETE /api/v1/peers/{id}` takes).
    pub id: u64,
    pub address: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Its node id, 16 hex digits.
    pub node_id: String,
    /// The node number its hello said (`node -n N`), absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    pub agent: String,
    pub tip_height: u64,
    pub tip: String,
    /// The last ping's round trip (absent before the first pong).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
    /// A short connection that tests an address (see the protocol's feelers).
    pub feeler: bool,
    /// Seconds since it connected.
    pub connected_seconds: u64,
    /// Frame bytes received from it and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl PeerView {
    pub fn all<S: Store>(node: &Node<S>, now: powchain_chain::Timestamp) -> Vec<PeerView> {
        node.peer_summaries()
            .into_iter()
            .map(|p| PeerView {
                id: p.id,
                address: p.address,
                direction: match p.direction {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                },
                node_id: format!("{:016x}", p.node_id),
                number: p.number,
                agent: p.agent,
                tip_height: p.tip_height.0,
                tip: p.tip_hash.to_string(),
                rtt_ms: p.rtt_ms,
                feeler: p.feeler,
                connected_seconds: now.ms_since(p.connected_at) / 1_000,
                bytes_in: p.bytes_in,
                bytes_out: p.bytes_out,
            })
            .collect()
    }
}

/// The mempool.
#[derive(Clone, Debug, Serialize)]
pub struct MempoolView {
    pub count: usize,
    pub bytes: usize,
    /// Highest fee first, at most 1,000.
    pub txs: Vec<TxView>,
}

impl MempoolView {
    pub fn of<S: Store>(node: &Node<S>) -> MempoolView {
        let tip = node.chain().tip().height;
        MempoolView {
            count: node.mempool().len(),
            bytes: node.mempool().bytes(),
            txs: node
                .mempool()
                .transfers()
                .into_iter()
                .take(MEMPOOL_LISTED_MAX)
                .map(|(_, t)| TxView::new(&Transaction::Transfer(t.clone()), None, tip))
                .collect(),
        }
    }
}

/// `GET /api/v1/forks`: every block the node knows at recent heights, to draw the tree.
#[derive(Clone, Debug, Serialize)]
pub struct ForksView {
    pub tip_height: u64,
    /// Lowest height first; at each height the best-chain block first.
    pub blocks: Vec<ForkBlock>,
}

/// One block of [`ForksView`].
#[derive(Clone, Debug, Serialize)]
pub struct ForkBlock {
    pub hash: String,
    pub parent: String,
    pub height: u64,
    pub time: u64,
    /// On the best chain.
    pub best: bool,
    /// `connected` (was on the best chain once), `checked` (valid as far as checked without
    /// its parent's state) or `invalid`.
    pub status: &'static str,
}

impl ForksView {
    /// The blocks at the last `heights` heights.
    pub fn of<S: Store>(node: &Node<S>, heights: u64) -> ForksView {
        let tree = node.chain().tree();
        let tip = tree.height();
        let from = Height(tip.0.saturating_sub(heights.saturating_sub(1)));
        let view = |hash: BlockHash, best: bool| {
            let entry = tree.get(&hash)?;
            Some(ForkBlock {
                hash: hash.to_string(),
                parent: entry.header.prev_hash.to_string(),
                height: entry.header.height.0,
                time: entry.header.time.0,
                best,
                status: match entry.status {
                    BlockStatus::Connected => "connected",
                    BlockStatus::Checked => "checked",
                    BlockStatus::Invalid => "invalid",
                },
            })
        };
        let mut blocks: Vec<ForkBlock> = (from.0..=tip.0)
            .filter_map(|height| view(tree.best_at(Height(height))?, true))
            .chain(
                tree.side_blocks_from(from)
                    .filter_map(|hash| view(hash, false)),
            )
            .collect();
        // Stable: the best-chain block stays first at its height.
        blocks.sort_by_key(|block| block.height);
        ForksView {
            tip_height: tip.0,
            blocks,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
