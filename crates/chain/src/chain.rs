//! [`Chain`]: a store, its block tree and orphans, behind one import function.
//!
//! ```text
//! import_block(block, now)
//!   known? orphan? ── parent unknown ──> orphan pool (cheap checks first)
//!   check_block against the parent's context ──> tree + batch
//!   children waiting in the orphan pool ──> the same, in turn
//!   activate the best chain: disconnect with undo data, connect with state checks
//!     (a block failing here is marked invalid with its descendants; try the next best)
//!   prune side branches ──> commit the batch (one atomic write) ──> ImportOutcome
//! ```
//!
//! The outcome says what happened, including the blocks disconnected and connected, so the
//! mempool, the miner and the network can react to that one value.

use std::collections::VecDeque;

use crate::hashing::{HashMap, HashSet};
use std::sync::Arc;

use crate::block::{Block, BlockError, CheckedBlock, check_block};
use crate::hash::BlockHash;
use crate::header::{HEADER_BYTES, HEADER_VERSION, Header};
use crate::keys::Address;
use crate::mempool::Mempool;
use crate::orphans::OrphanPool;
use crate::pow::Work;
use crate::sigcache::SigCache;
use crate::spec::ChainSpec;
use crate::state::{Account, AccountReader, ConnectError, StateOverlay};
use crate::store::{BlockStatus, ChainIdentity, IndexEntry, Store, StoreError, WriteBatch};
use crate::tree::{BlockTree, TreeError};
use crate::tx::{COINBASE_BYTES, Coinbase, Transaction};
use crate::units::{Amount, Height, Timestamp};

/// Bounds on what the chain keeps beyond the best chain (node policy, not consensus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// Side-branch blocks more than this many blocks below the tip are pruned.
    pub side_depth_max: u64,
    /// Most side-branch blocks kept.
    pub side_blocks_max: usize,
    /// Most side-branch bytes kept (consensus encoding).
    pub side_bytes_max: u64,
    /// How many hashes of invalid blocks are remembered, so they are refused without
    /// validating them again.
    pub invalid_hashes_max: usize,
    /// Most orphan blocks kept.
    pub orphans_count_max: usize,
    /// Most orphan bytes kept.
    pub orphans_bytes_max: usize,
    /// Which of two tips of equal work the chain follows.
    pub tie_break: TieBreak,
}

/// Which of several tips of the same work a chain follows.
///
/// Bitcoin keeps the first it saw ([`TieBreak::FirstSeen`], the default). A simulation of
/// selfish mining needs the fraction of honest miners that take the attacker's side of a tie
/// (Eyal and Sirer's gamma) as a parameter: with [`TieBreak::Random`] each node follows the
/// tip its own key ranks highest, a coin flip per node and per tie, the same whichever
/// arrived first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TieBreak {
    /// The first seen stays.
    #[default]
    FirstSeen,
    /// The one whose hash, keyed SipHash with `key`, is highest.
    Random {
        /// This chain's key.
        key: u64,
    },
}

impl TieBreak {
    /// Where `hash` ranks among tips of equal work under [`TieBreak::Random`].
    fn rank(key: u64, hash: &BlockHash) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u64(key);
        hash.hash(&mut hasher);
        hasher.finish()
    }
}

impl Default for ChainConfig {
    fn default() -> ChainConfig {
        ChainConfig {
            side_depth_max: 1_000,
            side_blocks_max: 10_000,
            side_bytes_max: 256 << 20,
            invalid_hashes_max: 4_096,
            orphans_count_max: 256,
            orphans_bytes_max: 32 << 20,
            tie_break: TieBreak::FirstSeen,
        }
    }
}

/// A move of the best chain's tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipChange {
    /// The tip before.
    pub old_tip: BlockHash,
    /// The tip after.
    pub new_tip: BlockHash,
    /// Blocks that left the best chain, old tip first.
    pub disconnected: Vec<Arc<Block>>,
    /// Blocks that joined it, lowest first.
    pub connected: Vec<Arc<Block>>,
}

/// Where an imported block ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the best chain.
    BestChain,
    /// On a side branch with no more work than the best chain.
    SideBranch,
    /// Waiting for its parent.
    Orphan {
        /// The block to fetch: the parent missing at the root of this orphan's chain.
        missing: BlockHash,
    },
    /// Seen before.
    AlreadyKnown,
    /// Valid, but on a side branch pruned at once: too deep below the tip, or beyond the
    /// side-branch bounds.
    Pruned,
}

/// What importing a block did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The block's hash.
    pub hash: BlockHash,
    /// Where it is now.
    pub placement: Placement,
    /// The tip change it caused, if any.
    pub tip_change: Option<TipChange>,
    /// Other blocks (orphans it unlocked, or side blocks tried in a reorg) found invalid.
    pub rejected: Vec<(BlockHash, BlockError)>,
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The block breaks a rule.
    #[error("block {hash:?} is invalid: {error}")]
    Invalid {
        /// The block.
        hash: BlockHash,
        /// The rule.
        error: BlockError,
    },
    /// The block descends from an invalid block.
    #[error("block {hash:?} descends from invalid block {ancestor:?}")]
    InvalidAncestor {
        /// The block.
        hash: BlockHash,
        /// Its invalid ancestor.
        ancestor: BlockHash,
    },
    /// The block was found invalid before.
    #[error("block {0:?} was found invalid before")]
    KnownInvalid(BlockHash),
    /// The store failed; the node cannot go on safely.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a chain could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The store holds another network's chain.
    #[error(
        "the database holds chain {stored_name:?} (genesis {}), not {spec_name:?} (genesis {}): {}",
        stored_genesis.short(16),
        spec_genesis.short(16),
        differences.join("; ")
    )]
    WrongChain {
        /// The stored chain's name.
        stored_name: String,
        /// The stored chain's genesis.
        stored_genesis: BlockHash,
        /// The spec's name.
        spec_name: String,
        /// The spec's genesis.
        spec_genesis: BlockHash,
        /// What differs between the two genesis blocks, in words.
        differences: Vec<String>,
        /// The stored chain's starting difficulty in bits, when that is what differs.
        stored_difficulty_bits: Option<u64>,
    },
    /// The store's contents are inconsistent.
    #[error("the database is inconsistent: {0}")]
    Corrupt(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TreeError> for OpenError {
    fn from(error: TreeError) -> OpenError {
        OpenError::Corrupt(error.to_string())
    }
}

/// The tip's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TipInfo {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: Height,
    /// The best chain's total work.
    pub chain_work: Work,
    /// Its header.
    pub header: Header,
}

/// A block ready for proof of work: everything but the nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// The block, nonce zero.
    pub block: Block,
    /// Its fees.
    pub fees: Amount,
}

/// A chain: spec, store, block tree and orphan pool.
pub struct Chain<S: Store> {
    spec: ChainSpec,
    chain_id: BlockHash,
    config: ChainConfig,
    store: S,
    tree: BlockTree,
    orphans: OrphanPool,
    invalid: InvalidHashes,
    /// The commit that failed, if one did: the tree and state in memory are then ahead of
    /// the store, so nothing more is imported (the node must stop and restart from disk).
    failed: Option<StoreError>,
    /// Signatures found valid, by this chain or whoever shares the cache with it.
    signatures: SigCache,
}

/// Hashes of blocks found invalid in ways that hold for the hash (see
/// [`BlockError::binds_hash`]), oldest forgotten first.
struct InvalidHashes {
    set: HashSet<BlockHash>,
    order: VecDeque<BlockHash>,
    max: usize,
}

impl InvalidHashes {
    fn contains(&self, hash: &BlockHash) -> bool {
        self.set.contains(hash)
    }

    fn insert(&mut self, hash: BlockHash) {
        if self.max == 0 || !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > self.max {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

/// What differs between a stored genesis block and `spec`'s, in words (most telling first),
/// and the stored starting difficulty when it is one of them.
fn genesis_differences(
    stored: Option<&Block>,
    stored_name: &str,
    ours: &Block,
    spec: &ChainSpec,
) -> (Vec<String>, Option<u64>) {
    let mut differences = Vec::new();
    if stored_name != spec.name {
        differences.push(format!(
            "the chain's name is {stored_name:?} there and {:?} here",
            spec.name
        ));
    }
    let Some(stored) = stored else {
        differences.push("the database has lost its genesis block".into());
        return (differences, None);
    };
    let (theirs, mine) = (&stored.header, &ours.header);
    let mut stored_bits = None;
    if theirs.target != mine.target {
        let bits = theirs.target.difficulty_bits().round() as u64;
        differences.push(format!(
            "the starting difficulty is {bits} bits there and {} here",
            mine.target.difficulty_bits().round() as u64
        ));
        stored_bits = Some(bits);
    }
    if theirs.time != mine.time {
        differences.push(format!(
            "the genesis time is {} ms there and {} here",
            theirs.time.0, mine.time.0
        ));
    }
    if theirs.tx_root != mine.tx_root {
        differences.push(format!(
            "the genesis allocations differ ({} there, {} here)",
            stored.txs.len(),
            ours.txs.len()
        ));
    }
    // The rules digest covers the name and the difficulty too; say so only when nothing
    // else explains the difference.
    if theirs.prev_hash != mine.prev_hash && differences.is_empty() {
        differences.push(
            "the consensus rules differ (block interval, reward, retargeting or limits)".into(),
        );
    }
    (differences, stored_bits)
}

impl<S: Store> Chain<S> {
    /// Opens `store` for `spec`: a new store is given genesis, a store of another chain is
    /// refused, and an existing one is loaded from its index without replaying blocks.
    pub fn open(spec: ChainSpec, mut store: S, config: ChainConfig) -> Result<Chain<S>, OpenError> {
        let genesis = CheckedBlock::genesis(&spec);
        let chain_id = genesis.hash();
        match store.identity()? {
            None => store.commit(genesis_batch(&spec, &genesis, &store)?)?,
            Some(identity) if identity.genesis != chain_id => {
                let stored = store.block(&identity.genesis)?;
                let (differences, stored_difficulty_bits) =
                    genesis_differences(stored.as_deref(), &identity.name, genesis.block(), &spec);
                return Err(OpenError::WrongChain {
                    stored_name: identity.name,
                    stored_genesis: identity.genesis,
                    spec_name: spec.name.clone(),
                    spec_genesis: chain_id,
                    differences,
                    stored_difficulty_bits,
                });
            }
            Some(_) => {}
        }
        let tip = store
            .tip()?
            .ok_or_else(|| OpenError::Corrupt("no tip recorded".into()))?;
        let tree = BlockTree::new(store.index()?, tip)?;
        if tree.best_at(Height::GENESIS) != Some(chain_id) {
            return Err(OpenError::Corrupt(
                "the best chain does not start at this spec's genesis".into(),
            ));
        }
        Ok(Chain {
            orphans: OrphanPool::new(config.orphans_count_max, config.orphans_bytes_max),
            invalid: InvalidHashes {
                set: HashSet::default(),
                order: VecDeque::new(),
                max: config.invalid_hashes_max,
            },
            spec,
            chain_id,
            config,
            store,
            tree,
            failed: None,
            signatures: SigCache::default(),
        })
    }

    /// The commit that failed, if one did: after it the chain imports nothing.
    pub fn failed(&self) -> Option<&StoreError> {
        self.failed.as_ref()
    }

    /// Gives the store back (a simulated crash keeps it for the restart).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Which of two tips of equal work this chain follows.
    pub fn tie_break(&self) -> TieBreak {
        self.config.tie_break
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The network's id: the genesis hash.
    pub fn chain_id(&self) -> BlockHash {
        self.chain_id
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The block tree.
    pub fn tree(&self) -> &BlockTree {
        &self.tree
    }

    /// Orphans waiting for a parent.
    pub fn orphans(&self) -> &OrphanPool {
        &self.orphans
    }

    /// The signatures this chain found valid (its mempool should share them: see
    /// `Mempool::sharing_signatures`).
    pub fn sig_cache(&self) -> &SigCache {
        &self.signatures
    }

    /// This chain, remembering the signatures it finds valid in `cache` (shared with
    /// whoever else holds it) instead of a cache of its own.
    pub fn sharing_signatures(mut self, cache: SigCache) -> Chain<S> {
        self.signatures = cache;
        self
    }

    /// The tip.
    pub fn tip(&self) -> TipInfo {
        let hash = self.tree.tip();
        let entry = self.tree.tip_entry();
        TipInfo {
            hash,
            height: entry.header.height,
            chain_work: entry.chain_work,
            header: entry.header,
        }
    }

    /// An account's confirmed state.
    pub fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        self.store.account(address)
    }

    /// A block by hash (best chain or side branch).
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Arc<Block>>, StoreError> {
        self.store.block(hash)
    }

    /// The best-chain block at `height`.
    pub fn block_at(&self, height: Height) -> Result<Option<Arc<Block>>, StoreError> {
        match self.tree.best_at(height) {
            Some(hash) => self.store.block(&hash),
            None => Ok(None),
        }
    }

    /// Imports a block from anywhere: a peer, a file, or this node's miner.
    pub fn import_block(
        &mut self,
        block: Block,
        now: Timestamp,
    ) -> Result<ImportOutcome, ImportError> {
        if let Some(failed) = &self.failed {
            return Err(ImportError::Store(StoreError(format!(
                "nothing is imported after a failed write ({})",
                failed.0
            ))));
        }
        let hash = block.hash();
        if self.invalid.contains(&hash) {
            return Err(ImportError::KnownInvalid(hash));
        }
        if let Some(entry) = self.tree.get(&hash) {
            if entry.status == BlockStatus::Invalid {
                return Err(ImportError::KnownInvalid(hash));
            }
            return Ok(self.outcome(hash, Placement::AlreadyKnown));
        }
        if let Some(missing) = self.orphans.root_parent(&hash) {
            return Ok(self.outcome(hash, Placement::Orphan { missing }));
        }
        let parent = block.header.prev_hash;
        match self.tree.get(&parent) {
            None => return self.hold_orphan(hash, block),
            Some(entry) if entry.status == BlockStatus::Invalid => {
                self.invalid.insert(hash);
                return Err(ImportError::InvalidAncestor {
                    hash,
                    ancestor: parent,
                });
            }
            Some(_) => {}
        }
        let mut batch = WriteBatch::default();
        let mut fresh = HashMap::default();
        if let Err(error) = self.accept(block, now, &mut batch, &mut fresh) {
            if error.binds_hash() {
                self.invalid.insert(hash);
            }
            return Err(ImportError::Invalid { hash, error });
        }
        let mut rejected = Vec::new();
        let mut unlocked = vec![hash];
        while let Some(parent) = unlocked.pop() {
            for (child_hash, child) in self.orphans.take_children(&parent) {
                match self.accept(child, now, &mut batch, &mut fresh) {
                    Ok(()) => unlocked.push(child_hash),
                    Err(error) => {
                        if error.binds_hash() {
                            self.invalid.insert(child_hash);
                        }
                        rejected.push((child_hash, error));
                    }
                }
            }
        }
        let tip_change = self.activate_best_chain(&mut batch, &fresh, &mut rejected)?;
        self.prune(&mut batch);
        if let Err(error) = self.store.commit(batch) {
            self.failed = Some(error.clone());
            return Err(error.into());
        }
        let placement = match self.tree.get(&hash).map(|e| e.status) {
            Some(BlockStatus::Invalid) => return Err(self.invalid_error(hash, &rejected)),
            None => Placement::Pruned,
            _ if self.tree.is_on_best(&hash) => Placement::BestChain,
            _ => Placement::SideBranch,
        };
        Ok(ImportOutcome {
            hash,
            placement,
            tip_change,
            rejected,
        })
    }

    /// Why `hash`, marked invalid during fork choice, is invalid: its own error, or the
    /// nearest ancestor that failed.
    fn invalid_error(&self, hash: BlockHash, rejected: &[(BlockHash, BlockError)]) -> ImportError {
        if let Some((_, error)) = rejected.iter().find(|(h, _)| *h == hash) {
            return ImportError::Invalid {
                hash,
                error: error.clone(),
            };
        }
        let ancestor = rejected
            .iter()
            .filter_map(|(failed, _)| Some((*failed, self.tree.get(failed)?.header.height)))
            .find(|(failed, height)| self.tree.ancestor(&hash, *height) == Some(*failed))
            .map_or(hash, |(failed, _)| failed);
        ImportError::InvalidAncestor { hash, ancestor }
    }

    fn outcome(&self, hash: BlockHash, placement: Placement) -> ImportOutcome {
        ImportOutcome {
            hash,
            placement,
            tip_change: None,
            rejected: Vec::new(),
        }
    }

    /// Keeps a block whose parent is unknown, after the checks that need no parent.
    fn hold_orphan(&mut self, hash: BlockHash, block: Block) -> Result<ImportOutcome, ImportError> {
        let invalid = |error| ImportError::Invalid { hash, error };
        let easiest = self
            .spec
            .retarget
            .map_or(self.spec.genesis_target(), |rule| rule.easiest.target());
        if block.header.target > easiest {
            return Err(invalid(BlockError::WrongTarget {
                expected: easiest.0,
                got: block.header.target.0,
            }));
        }
        if !block.header.meets_own_target() {
            return Err(invalid(BlockError::BadProofOfWork(hash)));
        }
        let bytes = block.encoded_len();
        let max = self.spec.limits.block_bytes_max;
        if bytes > max as usize {
            return Err(invalid(BlockError::TooLarge { bytes, max }));
        }
        let parent = block.header.prev_hash;
        self.orphans.insert(hash, block);
        let missing = self.orphans.root_parent(&hash).unwrap_or(parent);
        Ok(self.outcome(hash, Placement::Orphan { missing }))
    }

    /// Checks a block whose parent is in the tree and adds it to the tree and the batch.
    fn accept(
        &mut self,
        block: Block,
        now: Timestamp,
        batch: &mut WriteBatch,
        fresh: &mut HashMap<BlockHash, Arc<Block>>,
    ) -> Result<(), BlockError> {
        let parent = block.header.prev_hash;
        // Callers only pass blocks whose parent is in the tree, so both lookups succeed; a
        // parent at height u64::MAX has no child height, which the height rule reports.
        let (Some(parent_entry), Some(context)) = (
            self.tree.get(&parent).copied(),
            self.tree.child_context(&parent, &self.spec, now),
        ) else {
            return Err(BlockError::WrongHeight {
                expected: Height(u64::MAX),
                got: block.header.height,
            });
        };
        let checked = check_block(
            block,
            &self.spec,
            &self.chain_id,
            &context,
            &self.signatures,
        )?;
        let chain_work = parent_entry
            .chain_work
            .checked_add(checked.header().target.work())
            .unwrap_or(Work(u128::MAX));
        let entry = IndexEntry {
            header: *checked.header(),
            chain_work,
            status: BlockStatus::Checked,
            seq: self.tree.next_seq(),
            bytes: u32::try_from(checked.block().encoded_len()).unwrap_or(u32::MAX),
        };
        let hash = checked.hash();
        self.tree.insert(hash, entry);
        batch.put_index.push((hash, entry));
        batch.put_blocks.push((hash, checked.block().clone()));
        fresh.insert(hash, checked.block().clone());
        Ok(())
    }

    /// Moves the tip to the best valid candidate, if that has more work than the tip.
    fn activate_best_chain(
        &mut self,
        batch: &mut WriteBatch,
        fresh: &HashMap<BlockHash, Arc<Block>>,
        rejected: &mut Vec<(BlockHash, BlockError)>,
    ) -> Result<Option<TipChange>, StoreError> {
        let old_tip = self.tree.tip();
        loop {
            let tip = self.tree.tip_entry();
            let (candidate, better) = match self.config.tie_break {
                TieBreak::FirstSeen => {
                    let candidate = self.tree.best_candidate();
                    let work = self.tree.get(&candidate).map(|e| e.chain_work);
                    (candidate, work > Some(tip.chain_work))
                }
                TieBreak::Random { key } => {
                    let candidate = self
                        .tree
                        .most_work_candidates()
                        .max_by_key(|hash| TieBreak::rank(key, hash))
                        .unwrap_or_else(|| self.tree.best_candidate());
                    let work = self.tree.get(&candidate).map(|e| e.chain_work);
                    let tie = work == Some(tip.chain_work) && candidate != self.tree.tip();
                    (candidate, work > Some(tip.chain_work) || tie)
                }
            };
            if !better {
                return Ok(None);
            }
            let (down, up) = self.tree.path(&old_tip, &candidate);
            let load = |hash: &BlockHash| -> Result<Arc<Block>, StoreError> {
                match fresh.get(hash) {
                    Some(block) => Ok(block.clone()),
                    None => self.store.block(hash)?.ok_or_else(|| {
                        StoreError(format!("block {hash} is in the index but not stored"))
                    }),
                }
            };
            let mut overlay = StateOverlay::new(&self.store);
            let mut disconnected = Vec::with_capacity(down.len());
            for hash in &down {
                let undo = self.store.undo(hash)?.ok_or_else(|| {
                    StoreError(format!("best-chain block {hash} has no undo data"))
                })?;
                overlay.disconnect_block(&undo);
                disconnected.push(load(hash)?);
            }
            let mut connected = Vec::with_capacity(up.len());
            let mut undos = Vec::with_capacity(up.len());
            let mut failure = None;
            for hash in &up {
                let block = load(hash)?;
                match overlay.connect_block(&block.txs, &self.spec) {
                    Ok(undo) => {
                        undos.push(undo);
                        connected.push(block);
                    }
                    Err(ConnectError::Store(e)) => return Err(e),
                    Err(ConnectError::Invalid(error)) => {
                        failure = Some((*hash, error));
                        break;
                    }
                }
            }
            if let Some((bad, error)) = failure {
                self.invalid.insert(bad);
                for (hash, entry) in self.tree.mark_invalid(&bad) {
                    batch.put_index.push((hash, entry));
                    batch.delete_blocks.push(hash);
                }
                rejected.push((bad, error));
                continue;
            }
            let changes = overlay.into_changes();
            batch.accounts.extend(changes);
            let new_height = self
                .tree
                .get(&candidate)
                .map_or(Height(0), |e| e.header.height);
            for hash in &down {
                batch.delete_undo.push(*hash);
                if let Some(entry) = self.tree.get(hash)
                    && entry.header.height > new_height
                {
                    batch.delete_best.push(entry.header.height);
                }
            }
            for (hash, undo) in up.iter().zip(undos) {
                if let Some(entry) = self.tree.get(hash) {
                    let mut entry = *entry;
                    entry.status = BlockStatus::Connected;
                    batch.put_index.push((*hash, entry));
                    batch.put_best.push((entry.header.height, *hash));
                }
                batch.put_undo.push((*hash, undo));
            }
            batch.tip = Some(candidate);
            self.tree.switch_best(&down, &up);
            return Ok(Some(TipChange {
                old_tip,
                new_tip: candidate,
                disconnected,
                connected,
            }));
        }
    }

    fn prune(&mut self, batch: &mut WriteBatch) {
        let removed = self.tree.prune(
            self.config.side_depth_max,
            self.config.side_blocks_max,
            self.config.side_bytes_max,
        );
        for hash in removed {
            batch.delete_blocks.push(hash);
            batch.delete_index.push(hash);
        }
    }

    /// A block on the tip paying `miner`, with the best pending transfers that fit. Its time
    /// is `now`, or just after the median time past if the clock is behind.
    pub fn block_template(
        &self,
        mempool: &Mempool,
        miner: Address,
        now: Timestamp,
        extra_nonce: u64,
    ) -> Result<BlockTemplate, StoreError> {
        let tip = self.tree.tip();
        let context = self
            .tree
            .child_context(&tip, &self.spec, now)
            .ok_or_else(|| StoreError("the tip has no successor height".into()))?;
        let limits = &self.spec.limits;
        let transfers = mempool.select_with_ids(
            &self.store,
            &self.spec,
            (limits.block_txs_max as usize).saturating_sub(1),
            (limits.block_bytes_max as usize).saturating_sub(HEADER_BYTES + COINBASE_BYTES),
        )?;
        let fees = Amount::checked_sum(transfers.iter().map(|(_, t)| t.fee))
            .ok_or_else(|| StoreError("pending fees overflow".into()))?;
        let reward = self
            .spec
            .block_reward
            .checked_add(fees)
            .ok_or_else(|| StoreError("reward plus fees overflows".into()))?;
        let mut txs = Vec::with_capacity(transfers.len() + 1);
        txs.push(Transaction::Coinbase(Coinbase {
            height: context.height,
            to: miner,
            amount: reward,
            extra_nonce,
        }));
        let mut ids = Vec::with_capacity(txs.capacity());
        ids.extend(txs.iter().map(Transaction::id));
        for (id, transfer) in transfers {
            ids.push(id);
            txs.push(Transaction::Transfer(transfer));
        }
        let header = Header {
            version: HEADER_VERSION,
            height: context.height,
            prev_hash: tip,
            tx_root: crate::block::tx_root_of_ids(&ids),
            time: now.max(Timestamp(context.median_time_past.0 + 1)),
            target: context.expected_target,
            nonce: 0,
        };
        Ok(BlockTemplate {
            block: Block { header, txs },
            fees,
        })
    }
}

/// The batch that initialises a store with genesis.
fn genesis_batch(
    spec: &ChainSpec,
    genesis: &CheckedBlock,
    store: &dyn AccountReader,
) -> Result<WriteBatch, StoreError> {
    let mut overlay = StateOverlay::new(store);
    overlay
        .connect_block(&genesis.block().txs, spec)
        .map_err(|e| StoreError(format!("genesis does not apply: {e}")))?;
    let hash = genesis.hash();
    let entry = IndexEntry {
        header: *genesis.header(),
        chain_work: genesis.header().target.work(),
        status: BlockStatus::Connected,
        seq: 0,
        bytes: u32::try_from(genesis.block().encoded_len()).unwrap_or(u32::MAX),
    };
    Ok(WriteBatch {
        put_blocks: vec![(hash, genesis.block().clone())],
        put_index: vec![(hash, entry)],
        accounts: overlay.into_changes(),
        put_best: vec![(Height::GENESIS, hash)],
        tip: Some(hash),
        identity: Some(ChainIdentity {
            name: spec.name.clone(),
            genesis: hash,
        }),
        ..WriteBatch::default()
    })
}
