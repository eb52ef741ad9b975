//! The mempool: transfers waiting for a block, bounded by count and bytes.
//!
//! Admission checks a transfer fully (rules, signature, then against the confirmed state plus
//! what is already pending, as the seed's pending balances do: coins on their way to an
//! account can be spent by it). A sender's transfers wait in nonce order; one whose nonce is
//! ahead of the next waits for the earlier ones. When the pool is full, a newcomer evicts the
//! lowest-fee transfer that ends a sender's queue, if it pays more and does not wait for it.
//!
//! Block templates take the highest fee first (earliest arrival among equals), respecting each
//! sender's nonce order and the block limits, and checking every pick against the state as
//! the template grows. After every tip change [`Mempool::on_tip_change`] re-admits against
//! the new state what the change can affect (everything, after a reorganisation): what was
//! confirmed or became invalid leaves, and the transfers of disconnected blocks come back.
//! Nothing a user submitted is silently dropped: every removal is returned with its reason.
//!
//! The bound on how far ahead of its account a transfer's nonce may be is checked at the door
//! only. A reorganisation can move an account's nonce back (its transfers in the lost branch
//! are pending again), so a transfer admitted within the bound may be far ahead of the new
//! state without its sender doing anything; dropping it then would lose an acknowledged,
//! valid transfer. Re-admission keeps it: the pool's count and byte bounds and the expiry
//! still hold it in check.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use crate::hashing::{HashMap, HashSet};

use crate::block::{Block, check_transfer_rules};
use crate::chain::TipChange;
use crate::hash::{BlockHash, TxId};
use crate::keys::Address;
use crate::prefix::{HashPrefix, Matches};
use crate::sigcache::SigCache;
use crate::spec::ChainSpec;
use crate::state::{AccountReader, ConnectError, StateOverlay};
use crate::store::StoreError;
use crate::tx::{Transaction, Transfer, TxError, first_bad_signature};
use crate::units::{Amount, Timestamp};

/// The mempool's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most transfers held.
    pub count_max: usize,
    /// Most bytes held (consensus encoding).
    pub bytes_max: usize,
    /// How long a transfer may wait before it is dropped, in milliseconds.
    pub expiry_ms: u64,
    /// How far ahead of an account's nonce a pending transfer's nonce may be.
    pub sender_nonces_ahead_max: u64,
}

/// Full blocks' worth of transfers a node's mempool holds at least
/// ([`MempoolConfig::for_chain`]).
pub const MEMPOOL_BLOCKS_MIN: usize = 4;

impl MempoolConfig {
    /// The default bounds, raised where `spec`'s blocks are big enough that they would hold
    /// fewer than [`MEMPOOL_BLOCKS_MIN`] full blocks: a pool smaller than a few blocks
    /// cannot keep a miner's blocks full while the next ones are being filled.
    pub fn for_chain(spec: &ChainSpec) -> MempoolConfig {
        let default = MempoolConfig::default();
        let txs = spec.limits.block_txs_max as usize;
        let bytes = spec.limits.block_bytes_max as usize;
        MempoolConfig {
            count_max: default.count_max.max(MEMPOOL_BLOCKS_MIN * txs),
            bytes_max: default.bytes_max.max(MEMPOOL_BLOCKS_MIN * bytes),
            ..default
        }
    }
}

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig {
            count_max: 10_000,
            bytes_max: 8 << 20,
            expiry_ms: 3_600_000,
            sender_nonces_ahead_max: 64,
        }
    }
}

/// Why the mempool refused a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The transfer is invalid.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// Another transfer with the same sender and nonce is pending.
    #[error("account {from} already has a pending transfer with nonce {nonce}")]
    NonceAlreadyPending {
        /// The sender.
        from: Address,
        /// The nonce.
        nonce: u64,
    },
    /// The nonce is too far ahead of the account's.
    #[error("nonce {got} is more than {max_ahead} ahead of account {from}'s nonce {current}")]
    NonceTooFarAhead {
        /// The sender.
        from: Address,
        /// The account's nonce.
        current: u64,
        /// The transfer's.
        got: u64,
        /// The bound.
        max_ahead: u64,
    },
    /// Full, and the transfer pays no more than what it would have to evict.
    #[error("mempool is full ({count} transfers, {bytes} bytes) and this fee does not beat any")]
    Full {
        /// Transfers held.
        count: usize,
        /// Bytes held.
        bytes: usize,
    },
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a transfer left the mempool without being refused at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// It is in a block of the best chain.
    Confirmed,
    /// It became invalid against the new state.
    Invalid(MempoolError),
    /// It waited longer than `expiry_ms`.
    Expired,
    /// A higher-fee transfer took its place.
    Evicted,
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Confirmed => f.write_str("confirmed"),
            Removal::Invalid(error) => write!(f, "no longer valid: {error}"),
            Removal::Expired => f.write_str("expired"),
            Removal::Evicted => f.write_str("evicted by a higher fee"),
        }
    }
}

/// How a transfer comes in: new, or back after a tip change (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    New,
    Readmission,
}

#[derive(Clone, Debug)]
struct Entry {
    tx: Transfer,
    bytes: usize,
    arrived: Timestamp,
    seq: u64,
}

/// Pending transfers.
#[derive(Clone, Debug)]
pub struct Mempool {
    config: MempoolConfig,
    entries: HashMap<TxId, Entry>,
    by_sender: HashMap<Address, BTreeMap<u64, TxId>>,
    by_fee: BTreeSet<(Amount, Reverse<u64>, TxId)>,
    incoming: HashMap<Address, Amount>,
    outgoing: HashMap<Address, Amount>,
    bytes: usize,
    next_seq: u64,
    /// Signatures found valid (shared with the chain, so a block does not check again
    /// what its transfers' admission checked).
    signatures: SigCache,
}

impl Mempool {
    /// An empty pool, with a signature cache of its own.
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool {
            config,
            entries: HashMap::default(),
            by_sender: HashMap::default(),
            by_fee: BTreeSet::new(),
            incoming: HashMap::default(),
            outgoing: HashMap::default(),
            bytes: 0,
            next_seq: 0,
            signatures: SigCache::default(),
        }
    }

    /// This pool, remembering the signatures it finds valid in `cache` (a node passes its
    /// chain's: `Chain::sig_cache`).
    pub fn sharing_signatures(mut self, cache: SigCache) -> Mempool {
        self.signatures = cache;
        self
    }

    /// How many transfers wait.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &TxId) -> bool {
        self.entries.contains_key(id)
    }

    /// A pending transfer.
    pub fn get(&self, id: &TxId) -> Option<&Transfer> {
        self.entries.get(id).map(|e| &e.tx)
    }

    /// Pending transfers with their ids, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TxId, &Transfer)> {
        self.entries.iter().map(|(id, entry)| (id, &entry.tx))
    }

    /// The pending transfers whose id begins with `prefix`, lowest first: at most `limit`.
    /// A scan: the pool is bounded (`MempoolConfig`), and this is asked for by a person.
    pub fn with_prefix(&self, prefix: &HashPrefix, limit: usize) -> Matches<TxId> {
        let mut found: Vec<TxId> = self
            .entries
            .keys()
            .filter(|id| prefix.matches(&id.0))
            .copied()
            .collect();
        found.sort_unstable();
        Matches::of(found, limit)
    }

    /// Pending transfers, highest fee first, then by arrival.
    pub fn transfers(&self) -> Vec<(TxId, &Transfer)> {
        self.by_fee
            .iter()
            .rev()
            .filter_map(|(_, _, id)| self.entries.get(id).map(|e| (*id, &e.tx)))
            .collect()
    }

    /// Checks `tx` fully and admits it.
    pub fn add(
        &mut self,
        tx: Transfer,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        chain_id: &BlockHash,
        now: Timestamp,
    ) -> Result<(TxId, Vec<(TxId, Removal)>), MempoolError> {
        let id = tx.id();
        if self.entries.contains_key(&id) {
            return Err(TxError::Duplicate(id).into());
        }
        check_transfer_rules(&tx, spec)?;
        // Everything a lookup can refuse is refused before the signature costs anything: an
        // unknown sender, a replayed or far-ahead nonce, a nonce already pending, a balance
        // that does not cover it. Only a transfer that would be admitted is verified.
        self.admissible(&tx, state, spec, Door::New)?;
        if !tx.signature_is_valid_in(chain_id, &self.signatures) {
            return Err(TxError::BadSignature.into());
        }
        let evicted = self.insert_admissible(id, tx, now)?;
        Ok((id, evicted))
    }

    /// Checks at once, in batches across the cores, the signatures of those of `transfers`
    /// that [`Mempool::add`] would get as far as verifying (new, within the rules, admissible
    /// now), and remembers the good ones in the signature cache, so that adding them one by
    /// one checks none again. A transaction message arrives with many transfers; this is
    /// what makes its signatures cost a batch, not one check each. A bad signature is found
    /// again, and refused, by `add`.
    pub fn verify_signatures_ahead<'a>(
        &self,
        transfers: impl IntoIterator<Item = &'a Transfer>,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        chain_id: &BlockHash,
    ) {
        let candidates: Vec<&Transfer> = transfers
            .into_iter()
            .filter(|tx| {
                check_transfer_rules(tx, spec).is_ok()
                    && self.admissible(tx, state, spec, Door::New).is_ok()
                    && !self.entries.contains_key(&tx.id())
            })
            .collect();
        first_bad_signature(&candidates, chain_id, &self.signatures);
    }

    /// Checks `tx` against state and pending transfers, makes room, and inserts it. The
    /// caller has checked the rules and the signature.
    fn admit(
        &mut self,
        id: TxId,
        tx: Transfer,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        arrived: Timestamp,
        door: Door,
    ) -> Result<Vec<(TxId, Removal)>, MempoolError> {
        self.admissible(&tx, state, spec, door)?;
        match door {
            Door::New => self.insert_admissible(id, tx, arrived),
            // What a reorganisation takes back was acknowledged (accepted, even mined): it
            // is never refused for room. The pool may then hold more than its bounds, by at
            // most the transfers of the blocks taken back (which the node held in memory
            // anyway), and refuses newcomers until it is back under them.
            Door::Readmission => {
                self.insert_entry(id, tx, arrived);
                Ok(Vec::new())
            }
        }
    }

    /// Whether `tx` fits the state and the pending transfers (sender, recipient, nonce,
    /// balance), without changing anything: lookups only, no signature.
    fn admissible(
        &self,
        tx: &Transfer,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        door: Door,
    ) -> Result<(), MempoolError> {
        let outgoing = self.outgoing.get(&tx.from).copied().unwrap_or_default();
        self.admissible_given(
            tx,
            state,
            spec,
            door,
            |address| self.incoming.get(address).copied(),
            outgoing,
        )
    }

    /// [`Mempool::admissible`] with the coins pending to each account (`incoming`, `None`
    /// when none are) and from the sender (`outgoing`) given by the caller.
    fn admissible_given(
        &self,
        tx: &Transfer,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        door: Door,
        incoming: impl Fn(&Address) -> Option<Amount>,
        outgoing: Amount,
    ) -> Result<(), MempoolError> {
        let sender = match state.account(&tx.from)? {
            Some(account) => account,
            // Coins on their way make an account, as in the seed's pending balances.
            None if incoming(&tx.from).is_some() => Default::default(),
            None => return Err(TxError::UnknownSender(tx.from).into()),
        };
        if spec.require_known_recipient
            && state.account(&tx.to)?.is_none()
            && incoming(&tx.to).is_none()
        {
            return Err(TxError::UnknownRecipient(tx.to).into());
        }
        if tx.nonce < sender.nonce {
            return Err(TxError::WrongNonce {
                from: tx.from,
                expected: sender.nonce,
                got: tx.nonce,
            }
            .into());
        }
        let max_ahead = self.config.sender_nonces_ahead_max;
        if door == Door::New && tx.nonce - sender.nonce > max_ahead {
            return Err(MempoolError::NonceTooFarAhead {
                from: tx.from,
                current: sender.nonce,
                got: tx.nonce,
                max_ahead,
            });
        }
        if self
            .by_sender
            .get(&tx.from)
            .is_some_and(|queue| queue.contains_key(&tx.nonce))
        {
            return Err(MempoolError::NonceAlreadyPending {
                from: tx.from,
                nonce: tx.nonce,
            });
        }
        let needed = tx.cost().ok_or(TxError::CostOverflow)?;
        let available = sender
            .balance
            .checked_add(incoming(&tx.from).unwrap_or_default())
            .and_then(|b| b.checked_sub(outgoing))
            .unwrap_or_default();
        if available < needed {
            return Err(TxError::InsufficientBalance {
                from: tx.from,
                balance: available,
                needed,
            }
            .into());
        }
        Ok(())
    }

    /// Makes room for `tx`, which [`Mempool::admissible`] passed, and inserts it.
    fn insert_admissible(
        &mut self,
        id: TxId,
        tx: Transfer,
        arrived: Timestamp,
    ) -> Result<Vec<(TxId, Removal)>, MempoolError> {
        let evicted = self.make_room(&tx, tx.encoded_len())?;
        self.insert_entry(id, tx, arrived);
        Ok(evicted)
    }

    /// Inserts `tx` with the next arrival number, whatever the bounds say.
    fn insert_entry(&mut self, id: TxId, tx: Transfer, arrived: Timestamp) {
        let bytes = tx.encoded_len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(
            id,
            Entry {
                tx,
                bytes,
                arrived,
                seq,
            },
        );
    }

    /// Evicts queue ends paying less than `tx` until its `bytes` fit, or fails without
    /// evicting. Never evicts what `tx` waits for: its sender's earlier transfers, or coins
    /// on their way to its sender.
    fn make_room(
        &mut self,
        tx: &Transfer,
        bytes: usize,
    ) -> Result<Vec<(TxId, Removal)>, MempoolError> {
        let fits = |count: usize, held: usize| {
            count < self.config.count_max && held + bytes <= self.config.bytes_max
        };
        let (mut count, mut held) = (self.entries.len(), self.bytes);
        let mut victims = Vec::new();
        for (victim_fee, _, id) in &self.by_fee {
            if fits(count, held) {
                break;
            }
            if *victim_fee >= tx.fee {
                break;
            }
            let Some(entry) = self.entries.get(id) else {
                continue;
            };
            let is_queue_end = self
                .by_sender
                .get(&entry.tx.from)
                .and_then(|queue| queue.last_key_value())
                .is_some_and(|(_, last)| last == id);
            let waited_for =
                (entry.tx.from == tx.from && entry.tx.nonce < tx.nonce) || entry.tx.to == tx.from;
            if is_queue_end && !waited_for {
                victims.push(*id);
                count -= 1;
                held -= entry.bytes;
            }
        }
        if !fits(count, held) {
            return Err(MempoolError::Full {
                count: self.entries.len(),
                bytes: self.bytes,
            });
        }
        Ok(victims
            .into_iter()
            .filter_map(|id| self.remove(&id).map(|_| (id, Removal::Evicted)))
            .collect())
    }

    fn insert(&mut self, id: TxId, entry: Entry) {
        let tx = &entry.tx;
        self.by_sender
            .entry(tx.from)
            .or_default()
            .insert(tx.nonce, id);
        self.by_fee.insert((tx.fee, Reverse(entry.seq), id));
        add_to(&mut self.incoming, tx.to, tx.amount);
        add_to(&mut self.outgoing, tx.from, tx.cost().unwrap_or_default());
        self.bytes += entry.bytes;
        self.entries.insert(id, entry);
    }

    fn remove(&mut self, id: &TxId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        let tx = &entry.tx;
        if let Some(queue) = self.by_sender.get_mut(&tx.from) {
            queue.remove(&tx.nonce);
            if queue.is_empty() {
                self.by_sender.remove(&tx.from);
            }
        }
        self.by_fee.remove(&(tx.fee, Reverse(entry.seq), *id));
        sub_from(&mut self.incoming, tx.to, tx.amount);
        sub_from(&mut self.outgoing, tx.from, tx.cost().unwrap_or_default());
        self.bytes -= entry.bytes;
        Some(entry)
    }

    /// The transfers that have waited longer than the expiry at `now`.
    fn expired_ids(&self, now: Timestamp) -> Vec<TxId> {
        let expiry_ms = self.config.expiry_ms;
        self.entries
            .iter()
            .filter(|(_, e)| now.ms_since(e.arrived) > expiry_ms)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Drops transfers older than the expiry.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(TxId, Removal)> {
        self.expired_ids(now)
            .into_iter()
            .filter_map(|id| self.remove(&id).map(|_| (id, Removal::Expired)))
            .collect()
    }

    /// Follows a tip change (`state` must already be the new tip's). Returns what left and
    /// why, in arrival order.
    ///
    /// A tip that only moved forward, the common case, changes the accounts its blocks
    /// touch and nothing else, so [`Mempool::follow_connected`] re-checks only the senders
    /// whose admission can have changed. A reorganisation, or a chain whose recipients must
    /// be known (an entry can then depend on another sender's pending transfer to its
    /// recipient, which no per-sender re-check sees), takes the full path: every transfer
    /// re-admitted in arrival order, [`Mempool::readmit_all`].
    pub fn on_tip_change(
        &mut self,
        change: &TipChange,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        now: Timestamp,
    ) -> Result<Vec<(TxId, Removal)>, StoreError> {
        if change.disconnected.is_empty() && !spec.require_known_recipient {
            self.follow_connected(&change.connected, state, spec, now)
        } else {
            self.readmit_all(change, state, spec, now)
        }
    }

    /// Follows blocks added on top of the old tip, keeping exactly what
    /// [`Mempool::readmit_all`] would keep, without rebuilding the pool.
    ///
    /// Re-admission in arrival order checks each transfer against the state and the
    /// transfers that arrived before it. A transfer's verdict can only change if its
    /// inputs got worse: its sender's account (the blocks' senders: nonce moved, balance
    /// perhaps spent; a recipient only gains) or the coins that earlier arrivals bring its
    /// sender (an earlier transfer to it left for another reason than being confirmed).
    /// So only those are re-checked, in arrival order, each against what arrived before it;
    /// a transfer that leaves puts its recipient's later transfers up for a check. Each is
    /// decided once, after everything before it, as in the full pass.
    fn follow_connected(
        &mut self,
        connected: &[Arc<Block>],
        state: &dyn AccountReader,
        spec: &ChainSpec,
        now: Timestamp,
    ) -> Result<Vec<(TxId, Removal)>, StoreError> {
        let mut removed: Vec<(u64, TxId, Removal)> = Vec::new();
        // Transfers to re-check, by arrival.
        let mut recheck: BTreeSet<(u64, TxId)> = BTreeSet::new();
        let mut senders: HashSet<Address> = HashSet::default();
        for tx in connected
            .iter()
            .flat_map(|block| block.txs.iter().filter_map(Transaction::as_transfer))
        {
            senders.insert(tx.from);
            let id = tx.id();
            if let Some(entry) = self.remove(&id) {
                removed.push((entry.seq, id, Removal::Confirmed));
            }
        }
        for id in self.expired_ids(now) {
            if let Some(entry) = self.remove(&id) {
                self.recheck_later(&mut recheck, &entry.tx.to, entry.seq);
                removed.push((entry.seq, id, Removal::Expired));
            }
        }
        // Coins on their way to each account, by the arrival of the transfer bringing them.
        let mut arriving: HashMap<Address, BTreeMap<u64, Amount>> = HashMap::default();
        for entry in self.entries.values() {
            arriving
                .entry(entry.tx.to)
                .or_default()
                .insert(entry.seq, entry.tx.amount);
        }
        for sender in &senders {
            self.recheck_later(&mut recheck, sender, 0);
        }
        while let Some((seq, id)) = recheck.pop_first() {
            let Some(entry) = self.remove(&id) else {
                continue;
            };
            // Sums saturate, as the pool's own books do (`add_to`).
            let saturating_sum = |amounts: &mut dyn Iterator<Item = Amount>| {
                Amount::checked_sum(amounts).unwrap_or(Amount(u64::MAX))
            };
            let incoming_before = |address: &Address| {
                let earlier = arriving.get(address)?.range(..seq);
                (earlier.clone().next().is_some())
                    .then(|| saturating_sum(&mut earlier.map(|(_, amount)| *amount)))
            };
            let outgoing_before =
                self.by_sender
                    .get(&entry.tx.from)
                    .map_or(Amount::ZERO, |queue| {
                        saturating_sum(
                            &mut queue
                                .values()
                                .filter_map(|other| self.entries.get(other))
                                .filter(|other| other.seq < seq)
                                .filter_map(|other| other.tx.cost()),
                        )
                    });
            let verdict = self.admissible_given(
                &entry.tx,
                state,
                spec,
                Door::Readmission,
                incoming_before,
                outgoing_before,
            );
            match verdict {
                Ok(()) => self.insert(id, entry),
                Err(MempoolError::Store(e)) => return Err(e),
                Err(error) => {
                    if let Some(coins) = arriving.get_mut(&entry.tx.to) {
                        coins.remove(&seq);
                    }
                    self.recheck_later(&mut recheck, &entry.tx.to, seq);
                    removed.push((seq, id, Removal::Invalid(error)));
                }
            }
        }
        removed.sort_by_key(|(seq, _, _)| *seq);
        Ok(removed
            .into_iter()
            .map(|(_, id, removal)| (id, removal))
            .collect())
    }

    /// Puts `sender`'s transfers that arrived after `seq` up for a re-check.
    fn recheck_later(&self, recheck: &mut BTreeSet<(u64, TxId)>, sender: &Address, seq: u64) {
        let Some(queue) = self.by_sender.get(sender) else {
            return;
        };
        for id in queue.values() {
            if let Some(entry) = self.entries.get(id)
                && entry.seq >= seq
            {
                recheck.insert((entry.seq, *id));
            }
        }
    }

    /// Takes back the transfers of disconnected blocks and re-admits everything against the
    /// new state, in arrival order.
    fn readmit_all(
        &mut self,
        change: &TipChange,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        now: Timestamp,
    ) -> Result<Vec<(TxId, Removal)>, StoreError> {
        let confirmed: HashSet<TxId> = change
            .connected
            .iter()
            .flat_map(|block| block.txs.iter().map(Transaction::id))
            .collect();
        let mut queue: Vec<(TxId, Transfer, Timestamp)> = change
            .disconnected
            .iter()
            .rev()
            .flat_map(|block| block.txs.iter().filter_map(Transaction::as_transfer))
            .map(|tx| (tx.id(), tx.clone(), now))
            .collect();
        let mut pending: Vec<(TxId, Entry)> = self.entries.drain().collect();
        pending.sort_by_key(|(_, e)| e.seq);
        queue.extend(pending.into_iter().map(|(id, e)| (id, e.tx, e.arrived)));
        // A fresh pool, still remembering signatures in the cache it shares (with the
        // chain, in a node): a fresh cache here would leave every later block's
        // signatures to be checked again when it is imported.
        *self = Mempool {
            next_seq: self.next_seq,
            signatures: self.signatures.clone(),
            ..Mempool::new(self.config)
        };
        let mut removed = Vec::new();
        for (id, tx, arrived) in queue {
            if confirmed.contains(&id) {
                removed.push((id, Removal::Confirmed));
                continue;
            }
            if now.ms_since(arrived) > self.config.expiry_ms {
                removed.push((id, Removal::Expired));
                continue;
            }
            if self.entries.contains_key(&id) {
                continue;
            }
            match self.admit(id, tx, state, spec, arrived, Door::Readmission) {
                Ok(evicted) => removed.extend(evicted),
                Err(MempoolError::Store(e)) => return Err(e),
                Err(error) => removed.push((id, Removal::Invalid(error))),
            }
        }
        Ok(removed)
    }

    /// Picks transfers for a block: highest fee first, each sender in nonce order, each
    /// checked against `state` as the block grows, within `txs_max` and `bytes_max`.
    pub fn select(
        &self,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        txs_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let picked = self.select_with_ids(state, spec, txs_max, bytes_max)?;
        Ok(picked.into_iter().map(|(_, tx)| tx).collect())
    }

    /// [`Mempool::select`], each transfer with its id (a template needs the ids for its
    /// transaction root; hashing them again cost more than the selection).
    pub fn select_with_ids(
        &self,
        state: &dyn AccountReader,
        spec: &ChainSpec,
        txs_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<(TxId, Transfer)>, StoreError> {
        let mut overlay = StateOverlay::new(state);
        let mut ready: BinaryHeap<(Amount, Reverse<u64>, TxId)> = BinaryHeap::new();
        let mut waiting_for_coins: HashMap<Address, TxId> = HashMap::default();
        for (sender, queue) in &self.by_sender {
            let nonce = overlay.account(sender)?.map_or(0, |a| a.nonce);
            if let Some(id) = queue.get(&nonce) {
                ready.push(self.rank(id));
            }
        }
        let (mut picked, mut bytes) = (Vec::new(), 0usize);
        while let Some((_, _, id)) = ready.pop() {
            if picked.len() >= txs_max {
                break;
            }
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if bytes + entry.bytes > bytes_max {
                continue;
            }
            match overlay.apply_transfer(&entry.tx, spec) {
                Ok(()) => {
                    bytes += entry.bytes;
                    let tx = &entry.tx;
                    if let Some(next) = self
                        .by_sender
                        .get(&tx.from)
                        .and_then(|queue| queue.get(&(tx.nonce + 1)))
                    {
                        ready.push(self.rank(next));
                    }
                    if let Some(unblocked) = waiting_for_coins.remove(&tx.to) {
                        ready.push(self.rank(&unblocked));
                    }
                    picked.push((id, tx.clone()));
                }
                Err(ConnectError::Store(e)) => return Err(e),
                Err(ConnectError::Invalid(_)) => {
                    // Perhaps coins still on their way: retry when the sender is paid.
                    waiting_for_coins.insert(entry.tx.from, id);
                }
            }
        }
        Ok(picked)
    }

    fn rank(&self, id: &TxId) -> (Amount, Reverse<u64>, TxId) {
        let entry = &self.entries[id];
        (entry.tx.fee, Reverse(entry.seq), *id)
    }

    /// An account's balance counting pending transfers in and out (the seed's pending
    /// balance), given its confirmed balance.
    pub fn pending_balance(&self, address: &Address, confirmed: Amount) -> Amount {
        let incoming = self.incoming.get(address).copied().unwrap_or_default();
        let outgoing = self.outgoing.get(address).copied().unwrap_or_default();
        confirmed
            .checked_add(incoming)
            .and_then(|b| b.checked_sub(outgoing))
            .unwrap_or_default()
    }

    /// The nonce an account's next transfer should carry: after its confirmed nonce and any
    /// unbroken run of pending ones.
    pub fn next_nonce(&self, address: &Address, confirmed_nonce: u64) -> u64 {
        let mut nonce = confirmed_nonce;
        if let Some(queue) = self.by_sender.get(address) {
            while queue.contains_key(&nonce) {
                nonce += 1;
            }
        }
        nonce
    }
}

fn add_to(map: &mut HashMap<Address, Amount>, address: Address, amount: Amount) {
    let total = map.entry(address).or_default();
    *total = total.checked_add(amount).unwrap_or(Amount(u64::MAX));
}

fn sub_from(map: &mut HashMap<Address, Amount>, address: Address, amount: Amount) {
    if let Some(total) = map.get_mut(&address) {
        *total = total.checked_sub(amount).unwrap_or_default();
        if *total == Amount::ZERO {
            map.remove(&address);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::block::Block;
    use crate::hash::Hash512;
    use crate::header::{HEADER_VERSION, Header};
    use crate::keys::Keypair;
    use crate::pow::Target;
    use crate::state::Account;
    use crate::tx::{Memo, TRANSFER_BASE_BYTES, UnsignedTransfer};
    use crate::units::Height;

    const CHAIN_ID: BlockHash = BlockHash::ZERO;
    const NOW: Timestamp = Timestamp(1_000_000);

    fn address(index: u64) -> Address {
        Keypair::dev(index).address()
    }

    /// A transfer between dev accounts with a memo of `memo_bytes` bytes.
    fn pay_with_memo(
        from: u64,
        to: u64,
        amount: u64,
        fee: u64,
        nonce: u64,
        memo_bytes: usize,
    ) -> Transfer {
        UnsignedTransfer {
            to: address(to),
            amount: Amount(amount),
            fee: Amount(fee),
            nonce,
            memo: Memo::new(vec![7; memo_bytes]).unwrap(),
        }
        .sign(&Keypair::dev(from), &CHAIN_ID)
    }

    /// A transfer between dev accounts with an empty memo.
    fn pay(from: u64, to: u64, amount: u64, fee: u64, nonce: u64) -> Transfer {
        pay_with_memo(from, to, amount, fee, nonce, 0)
    }

    /// A mempool on the dev spec (minimum fee 1), with dev accounts 0..10 holding 1,000
    /// coins each as the confirmed state.
    struct Fixture {
        spec: ChainSpec,
        state: BTreeMap<Address, Account>,
        pool: Mempool,
    }

    impl Fixture {
        fn new(config: MempoolConfig) -> Fixture {
            let state = (0..10)
                .map(|i| {
                    let account = Account {
                        balance: Amount(1_000),
                        nonce: 0,
                    };
                    (address(i), account)
                })
                .collect();
            Fixture {
                spec: ChainSpec::dev(),
                state,
                pool: Mempool::new(config),
            }
        }

        fn add_at(
            &mut self,
            tx: &Transfer,
            now: Timestamp,
        ) -> Result<(TxId, Vec<(TxId, Removal)>), MempoolError> {
            self.pool
                .add(tx.clone(), &self.state, &self.spec, &CHAIN_ID, now)
        }

        fn add(&mut self, tx: &Transfer) -> Result<(TxId, Vec<(TxId, Removal)>), MempoolError> {
            self.add_at(tx, NOW)
        }

        /// Adds a transfer that must be admitted without evicting anything.
        fn admit(&mut self, tx: &Transfer) -> TxId {
            let (id, evicted) = self.add(tx).unwrap();
            assert!(evicted.is_empty(), "unexpected evictions: {evicted:?}");
            id
        }

        fn select_within(&self, txs_max: usize, bytes_max: usize) -> Vec<Transfer> {
            self.pool
                .select(&self.state, &self.spec, txs_max, bytes_max)
                .unwrap()
        }

        fn select(&self) -> Vec<Transfer> {
            self.select_within(usize::MAX, usize::MAX)
        }

        /// The tip goes back from `block` to its parent (`state` must already be the
        /// parent's); returns what left the pool.
        fn disconnect(&mut self, block: Arc<Block>) -> Vec<(TxId, Removal)> {
            let change = TipChange {
                old_tip: block.hash(),
                new_tip: BlockHash::ZERO,
                disconnected: vec![block],
                connected: vec![],
            };
            self.pool
                .on_tip_change(&change, &self.state, &self.spec, NOW)
                .unwrap()
        }

        /// The tip moves forward to `block` (`state` must already be its); returns what left
        /// the pool.
        fn connect(&mut self, block: Arc<Block>) -> Vec<(TxId, Removal)> {
            let change = TipChange {
                old_tip: BlockHash::ZERO,
                new_tip: block.hash(),
                disconnected: vec![],
                connected: vec![block],
            };
            self.pool
                .on_tip_change(&change, &self.state, &self.spec, NOW)
                .unwrap()
        }

        /// Checks that `txs` apply in order to the confirmed state, as a block's would.
        fn assert_valid_in_order(&self, txs: &[Transfer]) {
            let mut overlay = StateOverlay::new(&self.state);
            for tx in txs {
                overlay.apply_transfer(tx, &self.spec).unwrap();
            }
        }
    }

    #[test]
    fn what_a_lookup_refuses_is_refused_before_the_signature_is_checked() {
        let mut f = Fixture::new(MempoolConfig::default());
        // Forged (signed by another key) and refusable on state: the state's refusal is the
        // answer, so no signature was checked to give it.
        let mut unfunded = pay(42, 1, 10, 1, 0);
        unfunded.signature = pay(0, 1, 10, 1, 0).signature;
        assert_eq!(
            f.add(&unfunded).unwrap_err(),
            MempoolError::Tx(TxError::UnknownSender(address(42)))
        );
        let mut too_dear = pay(0, 1, 5_000, 1, 0);
        too_dear.signature = pay(1, 0, 5_000, 1, 0).signature;
        assert!(matches!(
            f.add(&too_dear).unwrap_err(),
            MempoolError::Tx(TxError::InsufficientBalance { .. })
        ));
        let mut far_ahead = pay(0, 1, 10, 1, 1_000);
        far_ahead.signature = pay(1, 0, 10, 1, 0).signature;
        assert!(matches!(
            f.add(&far_ahead).unwrap_err(),
            MempoolError::NonceTooFarAhead { .. }
        ));
        // One that would be admitted is checked: a forged one is refused for it.
        let mut admissible = pay(0, 1, 10, 1, 0);
        admissible.signature = pay(1, 0, 10, 1, 0).signature;
        assert_eq!(
            f.add(&admissible).unwrap_err(),
            MempoolError::Tx(TxError::BadSignature)
        );
        assert!(f.pool.is_empty());
    }

    #[test]
    fn a_message_s_signatures_are_checked_ahead_in_one_batch() {
        let mut f = Fixture::new(MempoolConfig::default());
        let mut message: Vec<Transfer> = (0..10).map(|i| pay(i, (i + 1) % 10, 10, 1, 0)).collect();
        // A forgery in the middle, one the pool refuses on state, one it already holds.
        message[4].signature = pay(5, 4, 10, 1, 0).signature;
        message.push(pay(42, 1, 10, 1, 0));
        f.admit(&message[9]);
        let cached = f.pool.signatures.len();
        f.pool
            .verify_signatures_ahead(&message, &f.state, &f.spec, &CHAIN_ID);
        // The four before the forgery were found good; nothing after it was taken as good.
        assert_eq!(f.pool.signatures.len(), cached + 4);
        for (index, tx) in message.iter().enumerate().take(4) {
            let key = tx.cache_key(&tx.signing_bytes(&CHAIN_ID));
            assert!(f.pool.signatures.contains(&key), "transfer {index}");
        }
        // Adding them one by one: the forgery is refused, the rest admitted.
        for (index, tx) in message.iter().enumerate().take(9) {
            let added = f.add(tx);
            assert_eq!(added.is_err(), index == 4, "transfer {index}: {added:?}");
        }
        assert_eq!(f.pool.len(), 9);
    }

    #[test]
    fn select_takes_the_highest_fee_first_then_the_earliest_arrival() {
        let mut f = Fixture::new(MempoolConfig::default());
        let late_cheap = pay(2, 9, 10, 2, 0);
        let cheap = pay(0, 9, 10, 2, 0);
        let middle = pay(1, 9, 10, 5, 0);
        let dear = pay(3, 9, 10, 7, 0);
        // Among the two fee-2 transfers, the one from account 2 arrives first.
        for tx in [&late_cheap, &cheap, &middle, &dear] {
            f.admit(tx);
        }
        let expected = vec![dear, middle, late_cheap, cheap];
        assert_eq!(f.select(), expected);
        let listed: Vec<Transfer> = f
            .pool
            .transfers()
            .into_iter()
            .map(|(_, tx)| tx.clone())
            .collect();
        assert_eq!(listed, expected);
        f.assert_valid_in_order(&expected);
    }

    #[test]
    fn a_sender_s_transfers_leave_in_nonce_order() {
        let mut f = Fixture::new(MempoolConfig::default());
        let first = pay(0, 9, 10, 1, 0);
        let second = pay(0, 9, 10, 9, 1);
        let other = pay(1, 9, 10, 5, 0);
        // The second arrives first and pays the most, and still waits for the first.
        f.admit(&second);
        f.admit(&other);
        f.admit(&first);
        let selected = f.select();
        assert_eq!(selected, vec![other, first, second]);
        f.assert_valid_in_order(&selected);
    }

    #[test]
    fn a_nonce_gap_waits_until_it_is_filled() {
        let mut f = Fixture::new(MempoolConfig::default());
        let (n0, n1, n2) = (
            pay(0, 9, 10, 1, 0),
            pay(0, 9, 10, 1, 1),
            pay(0, 9, 10, 1, 2),
        );
        f.admit(&n1);
        f.admit(&n2);
        assert!(f.select().is_empty());
        assert_eq!(f.pool.next_nonce(&address(0), 0), 0);
        f.admit(&n0);
        assert_eq!(f.select(), vec![n0, n1, n2]);
        assert_eq!(f.pool.next_nonce(&address(0), 0), 3);
    }

    #[test]
    fn nonces_too_far_ahead_are_refused() {
        let mut f = Fixture::new(MempoolConfig {
            sender_nonces_ahead_max: 3,
            ..MempoolConfig::default()
        });
        f.state.get_mut(&address(0)).unwrap().nonce = 2;
        assert_eq!(
            f.add(&pay(0, 9, 10, 1, 1)).unwrap_err(),
            MempoolError::Tx(TxError::WrongNonce {
                from: address(0),
                expected: 2,
                got: 1,
            })
        );
        // The bound counts from the confirmed nonce: 5 is 3 ahead of 2, so it may wait.
        f.admit(&pay(0, 9, 10, 1, 5));
        assert_eq!(
            f.add(&pay(0, 9, 10, 1, 6)).unwrap_err(),
            MempoolError::NonceTooFarAhead {
                from: address(0),
                current: 2,
                got: 6,
                max_ahead: 3,
            }
        );
        for nonce in 2..5 {
            f.admit(&pay(0, 9, 10, 1, nonce));
        }
        let nonces: Vec<u64> = f.select().iter().map(|tx| tx.nonce).collect();
        assert_eq!(nonces, vec![2, 3, 4, 5]);
    }

    #[test]
    fn refusals_leave_the_pool_unchanged() {
        let mut f = Fixture::new(MempoolConfig::default());
        let tx = pay(0, 9, 10, 1, 0);
        let id = f.admit(&tx);
        assert_eq!(id, Transaction::Transfer(tx.clone()).id());
        assert_eq!(
            f.add(&tx).unwrap_err(),
            MempoolError::Tx(TxError::Duplicate(id))
        );
        assert_eq!(
            f.add(&pay(0, 9, 11, 1, 0)).unwrap_err(),
            MempoolError::NonceAlreadyPending {
                from: address(0),
                nonce: 0,
            }
        );
        let other_chain = UnsignedTransfer {
            to: address(9),
            amount: Amount(10),
            fee: Amount(1),
            nonce: 0,
            memo: Memo::default(),
        }
        .sign(
            &Keypair::dev(1),
            &BlockHash(Hash512::digest(b"another chain")),
        );
        assert_eq!(
            f.add(&other_chain).unwrap_err(),
            MempoolError::Tx(TxError::BadSignature)
        );
        assert_eq!(
            f.add(&pay(1, 9, 10, 0, 0)).unwrap_err(),
            MempoolError::Tx(TxError::FeeTooLow {
                fee: Amount(0),
                min: Amount(1),
            })
        );
        assert_eq!(
            f.add(&pay(20, 9, 10, 1, 0)).unwrap_err(),
            MempoolError::Tx(TxError::UnknownSender(address(20)))
        );
        // Account 0 has 1,000 coins and 11 of them are pending already.
        assert_eq!(
            f.add(&pay(0, 9, 989, 1, 1)).unwrap_err(),
            MempoolError::Tx(TxError::InsufficientBalance {
                from: address(0),
                balance: Amount(989),
                needed: Amount(990),
            })
        );
        assert_eq!(f.pool.len(), 1);
        assert_eq!(f.pool.bytes(), TRANSFER_BASE_BYTES);
        assert_eq!(f.pool.get(&id), Some(&tx));
    }

    #[test]
    fn a_full_pool_evicts_the_lowest_fee_transfer_that_ends_a_queue() {
        let mut f = Fixture::new(MempoolConfig {
            count_max: 3,
            ..MempoolConfig::default()
        });
        let a0 = f.admit(&pay(0, 9, 10, 1, 0));
        let a1 = f.admit(&pay(0, 9, 10, 4, 1));
        let b0 = f.admit(&pay(1, 9, 10, 2, 0));
        // a0 pays least, but a1 waits for it: b0 is the cheapest end of a queue.
        let (c0, evicted) = f.add(&pay(2, 9, 10, 3, 0)).unwrap();
        assert_eq!(evicted, vec![(b0, Removal::Evicted)]);
        assert_eq!(f.pool.len(), 3);
        assert!(!f.pool.contains(&b0));
        assert!(f.pool.contains(&a0) && f.pool.contains(&a1) && f.pool.contains(&c0));
        // Paying less than, or as much as, the cheapest queue end (c0, fee 3) is not enough.
        for fee in [1, 3] {
            assert_eq!(
                f.add(&pay(3, 9, 10, fee, 0)).unwrap_err(),
                MempoolError::Full {
                    count: 3,
                    bytes: 3 * TRANSFER_BASE_BYTES,
                }
            );
        }
        let (_, evicted) = f.add(&pay(3, 9, 10, 4, 0)).unwrap();
        assert_eq!(evicted, vec![(c0, Removal::Evicted)]);
        assert_eq!(f.pool.len(), 3);
    }

    #[test]
    fn a_newcomer_does_not_evict_the_transfer_it_follows() {
        let mut f = Fixture::new(MempoolConfig {
            count_max: 2,
            ..MempoolConfig::default()
        });
        let a0 = pay(0, 9, 10, 1, 0);
        f.admit(&a0);
        let b0 = f.admit(&pay(1, 9, 10, 2, 0));
        // Evicting a0, the cheapest, would leave a1 waiting for a nonce that is gone.
        let a1 = pay(0, 9, 10, 5, 1);
        let (_, evicted) = f.add(&a1).unwrap();
        assert_eq!(evicted, vec![(b0, Removal::Evicted)]);
        assert_eq!(f.select(), vec![a0.clone(), a1]);
        // What the code did before: a1 was admitted, a0 evicted, and a1 could never leave.
        let mut alone = Fixture::new(MempoolConfig {
            count_max: 1,
            ..MempoolConfig::default()
        });
        alone.admit(&a0);
        assert!(matches!(
            alone.add(&pay(0, 9, 10, 5, 1)),
            Err(MempoolError::Full { .. })
        ));
    }

    #[test]
    fn a_newcomer_does_not_evict_the_coins_it_spends() {
        let mut f = Fixture::new(MempoolConfig {
            count_max: 2,
            ..MempoolConfig::default()
        });
        // Account 50 has no coins but those on their way from account 0.
        let fund = pay(0, 50, 100, 1, 0);
        f.admit(&fund);
        let other = f.admit(&pay(1, 9, 10, 2, 0));
        let spend = pay(50, 9, 60, 5, 0);
        let (_, evicted) = f.add(&spend).unwrap();
        assert_eq!(evicted, vec![(other, Removal::Evicted)]);
        assert_eq!(f.select(), vec![fund, spend]);
    }

    #[test]
    fn the_byte_bound_evicts_as_many_as_needed_or_none() {
        let mut f = Fixture::new(MempoolConfig {
            count_max: 100,
            bytes_max: 2 * TRANSFER_BASE_BYTES + 10,
            ..MempoolConfig::default()
        });
        let a = f.admit(&pay(0, 9, 10, 1, 0));
        let b = f.admit(&pay(1, 9, 10, 2, 0));
        // 20 bytes of memo do not fit in the 10 left, nor in the 165 left once a is gone.
        let large = |fee| pay_with_memo(2, 9, 10, fee, 0, 20);
        assert_eq!(
            f.add(&large(2)).unwrap_err(),
            MempoolError::Full {
                count: 2,
                bytes: 2 * TRANSFER_BASE_BYTES,
            }
        );
        assert!(f.pool.contains(&a) && f.pool.contains(&b));
        let (c, evicted) = f.add(&large(3)).unwrap();
        assert_eq!(evicted, vec![(a, Removal::Evicted), (b, Removal::Evicted)]);
        assert_eq!(f.pool.len(), 1);
        assert!(f.pool.contains(&c));
        assert_eq!(f.pool.bytes(), TRANSFER_BASE_BYTES + 20);
    }

    #[test]
    fn expire_drops_transfers_older_than_the_expiry() {
        let mut f = Fixture::new(MempoolConfig {
            expiry_ms: 1_000,
            ..MempoolConfig::default()
        });
        let (old, _) = f.add_at(&pay(0, 9, 10, 1, 0), Timestamp(10_000)).unwrap();
        let (young, _) = f.add_at(&pay(1, 9, 20, 1, 0), Timestamp(10_500)).unwrap();
        // Waiting exactly the expiry is allowed.
        assert!(f.pool.expire(Timestamp(11_000)).is_empty());
        assert_eq!(
            f.pool.expire(Timestamp(11_001)),
            vec![(old, Removal::Expired)]
        );
        assert!(f.pool.contains(&young));
        assert_eq!(
            f.pool.pending_balance(&address(9), Amount(1_000)),
            Amount(1_020)
        );
        assert_eq!(
            f.pool.expire(Timestamp(11_501)),
            vec![(young, Removal::Expired)]
        );
        assert!(f.pool.is_empty());
        assert_eq!(f.pool.bytes(), 0);
        assert_eq!(
            f.pool.pending_balance(&address(9), Amount(1_000)),
            Amount(1_000)
        );
    }

    #[test]
    fn pending_coins_can_be_spent_and_select_orders_them() {
        let mut f = Fixture::new(MempoolConfig::default());
        // Accounts 50 and 51 do not exist yet. 50 is paid by 0, and pays 1 and 51; 51 pays 2.
        let spend = pay(50, 1, 60, 10, 0);
        assert_eq!(
            f.add(&spend).unwrap_err(),
            MempoolError::Tx(TxError::UnknownSender(address(50)))
        );
        let fund = pay(0, 50, 100, 1, 0);
        f.admit(&fund);
        f.admit(&spend);
        assert_eq!(
            f.add(&pay(50, 51, 30, 1, 1)).unwrap_err(),
            MempoolError::Tx(TxError::InsufficientBalance {
                from: address(50),
                balance: Amount(30),
                needed: Amount(31),
            })
        );
        let onward = pay(50, 51, 20, 3, 1);
        f.admit(&onward);
        let last = pay(51, 2, 5, 15, 0);
        f.admit(&last);
        // The later transfers pay more, but each waits for the coins it spends.
        let selected = f.select();
        assert_eq!(selected, vec![fund, spend, onward, last]);
        f.assert_valid_in_order(&selected);
    }

    #[test]
    fn pending_balance_and_next_nonce_count_pending_transfers() {
        let mut f = Fixture::new(MempoolConfig::default());
        f.admit(&pay(0, 1, 100, 2, 0));
        f.admit(&pay(0, 1, 50, 3, 1));
        f.admit(&pay(0, 1, 10, 1, 3));
        // Out: 102 + 53 + 11; in: 100 + 50 + 10.
        assert_eq!(
            f.pool.pending_balance(&address(0), Amount(1_000)),
            Amount(834)
        );
        assert_eq!(
            f.pool.pending_balance(&address(1), Amount(1_000)),
            Amount(1_160)
        );
        assert_eq!(f.pool.pending_balance(&address(2), Amount(7)), Amount(7));
        // Nonces 0 and 1 are pending, 2 is missing: the next transfer should fill the gap.
        assert_eq!(f.pool.next_nonce(&address(0), 0), 2);
        assert_eq!(f.pool.next_nonce(&address(0), 3), 4);
        assert_eq!(f.pool.next_nonce(&address(1), 0), 0);
        assert_eq!(f.pool.next_nonce(&address(1), 5), 5);
    }

    #[test]
    fn select_respects_txs_max_and_bytes_max() {
        let mut f = Fixture::new(MempoolConfig::default());
        let s0 = pay(0, 9, 10, 4, 0);
        let s1 = pay_with_memo(1, 9, 10, 3, 0, 60);
        let s1_next = pay(1, 9, 10, 9, 1);
        let s2 = pay(2, 9, 10, 2, 0);
        let s3 = pay(3, 9, 10, 1, 0);
        for tx in [&s0, &s1, &s1_next, &s2, &s3] {
            f.admit(tx);
        }
        assert_eq!(f.select_within(2, usize::MAX), vec![s0.clone(), s1.clone()]);
        assert_eq!(
            f.select_within(3, usize::MAX),
            vec![s0.clone(), s1.clone(), s1_next.clone()]
        );
        assert!(f.select_within(0, usize::MAX).is_empty());
        assert!(f.select_within(10, TRANSFER_BASE_BYTES - 1).is_empty());
        // s1 does not fit after s0, and s1_next waits for it; s2 still fits.
        let bytes_max = 2 * TRANSFER_BASE_BYTES + 10;
        let selected = f.select_within(10, bytes_max);
        assert_eq!(selected, vec![s0, s2]);
        let bytes: usize = selected.iter().map(Transfer::encoded_len).sum();
        assert!(bytes <= bytes_max);
    }

    /// A block holding `txs` (the mempool only reads its transfers).
    fn block(height: u64, txs: &[&Transfer]) -> Arc<Block> {
        Arc::new(Block {
            header: Header {
                version: HEADER_VERSION,
                height: Height(height),
                prev_hash: BlockHash::ZERO,
                tx_root: Hash512::ZERO,
                time: NOW,
                target: Target(u128::MAX),
                nonce: height,
            },
            txs: txs
                .iter()
                .map(|tx| Transaction::Transfer((*tx).clone()))
                .collect(),
        })
    }

    #[test]
    fn a_full_pool_takes_back_a_reorganised_block_whole() {
        let mut f = Fixture::new(MempoolConfig {
            count_max: 3,
            ..MempoolConfig::default()
        });
        let pending: Vec<Transfer> = (0..3).map(|i| pay(i, 9, 10, 1, 0)).collect();
        for tx in &pending {
            f.admit(tx);
        }
        // A block of two other transfers is taken back (the state is its parent's): the
        // pool was full, and keeps all five, in arrival order after the block's.
        let mined: Vec<Transfer> = (3..5).map(|i| pay(i, 9, 10, 1, 0)).collect();
        let removed = f.disconnect(block(1, &[&mined[0], &mined[1]]));
        assert!(removed.is_empty(), "{removed:?}");
        assert_eq!(f.pool.len(), 5);
        // Over its bound, it refuses newcomers until it is back under it.
        assert!(matches!(
            f.add(&pay(5, 9, 10, 1, 0)).unwrap_err(),
            MempoolError::Full { .. }
        ));
    }

    #[test]
    fn a_tip_change_confirms_invalidates_and_takes_back() {
        let mut f = Fixture::new(MempoolConfig::default());
        let mined = pay(0, 9, 10, 1, 0);
        let waiting = pay(1, 9, 10, 1, 0);
        let replaced = pay(2, 9, 10, 1, 0);
        let (mined_id, waiting_id, replaced_id) =
            (f.admit(&mined), f.admit(&waiting), f.admit(&replaced));
        // The block confirms `mined` and another transfer of account 2 with the same nonce.
        let rival = pay(2, 9, 20, 1, 0);
        let connected = block(1, &[&mined, &rival]);
        let before = f.state.clone();
        let mut overlay = StateOverlay::new(&before);
        for tx in [&mined, &rival] {
            overlay.apply_transfer(tx, &f.spec).unwrap();
        }
        for (address, account) in overlay.into_changes() {
            f.state.insert(address, account.unwrap());
        }
        // Removals come in arrival order.
        let removed = f.connect(connected.clone());
        assert_eq!(
            removed,
            vec![
                (mined_id, Removal::Confirmed),
                (
                    replaced_id,
                    Removal::Invalid(MempoolError::Tx(TxError::WrongNonce {
                        from: address(2),
                        expected: 1,
                        got: 0,
                    }))
                ),
            ]
        );
        assert_eq!(f.pool.len(), 1);
        assert!(f.pool.contains(&waiting_id));
        // Back to the old tip: the block's transfers come back, ahead of what waited.
        f.state = before;
        let removed = f.disconnect(connected);
        assert!(removed.is_empty(), "{removed:?}");
        assert_eq!(f.pool.len(), 3);
        assert!(f.pool.contains(&mined_id) && f.pool.contains(&rival.id()));
        assert_eq!(f.select(), vec![mined, rival, waiting]);
    }

    /// A block that invalidates a transfer also removes what spent the coins it was
    /// bringing: account 2 spends more than it holds, counting on account 1's pending
    /// transfer, and a rival of that transfer is mined.
    #[test]
    fn a_removal_cascades_to_what_spent_its_coins() {
        let mut f = Fixture::new(MempoolConfig::default());
        let bringing = f.admit(&pay(1, 2, 500, 1, 0));
        let spending = f.admit(&pay(2, 9, 1_200, 1, 0));
        let waiting = f.admit(&pay(3, 9, 10, 1, 0));
        let rival = pay(1, 9, 10, 1, 0);
        let connected = block(1, &[&rival]);
        let mut overlay = StateOverlay::new(&f.state);
        overlay.apply_transfer(&rival, &f.spec).unwrap();
        let changes = overlay.into_changes();
        for (address, account) in changes {
            f.state.insert(address, account.unwrap());
        }
        let removed = f.connect(connected);
        assert_eq!(
            removed,
            vec![
                (
                    bringing,
                    Removal::Invalid(MempoolError::Tx(TxError::WrongNonce {
                        from: address(1),
                        expected: 1,
                        got: 0,
                    }))
                ),
                (
                    spending,
                    Removal::Invalid(MempoolError::Tx(TxError::InsufficientBalance {
                        from: address(2),
                        balance: Amount(1_000),
                        needed: Amount(1_201),
                    }))
                ),
            ]
        );
        assert_eq!(f.pool.len(), 1);
        assert!(f.pool.contains(&waiting));
    }

    /// A reorganisation that moves an account's nonce back keeps the pending transfers it
    /// admitted within the bound, however far ahead they now are; new ones still meet it.
    #[test]
    fn the_nonce_bound_is_checked_at_the_door_not_after_a_reorg() {
        let mut f = Fixture::new(MempoolConfig {
            sender_nonces_ahead_max: 2,
            ..MempoolConfig::default()
        });
        // A branch confirms nonces 0..3 of account 0; 3..5 wait on top of it.
        let confirmed: Vec<Transfer> = (0..3).map(|n| pay(0, 9, 10, 1, n)).collect();
        let branch = block(1, &confirmed.iter().collect::<Vec<_>>());
        let before = f.state.clone();
        f.state.get_mut(&address(0)).unwrap().nonce = 3;
        let waiting: Vec<TxId> = (3..5).map(|n| f.admit(&pay(0, 9, 10, 1, n))).collect();
        // The branch is reorganised away: 0..3 come back, 3 and 4 are now 3 and 4 ahead.
        f.state = before;
        let removed = f.disconnect(branch);
        assert!(removed.is_empty(), "{removed:?}");
        assert!(waiting.iter().all(|id| f.pool.contains(id)));
        let nonces: Vec<u64> = f.select().iter().map(|tx| tx.nonce).collect();
        assert_eq!(nonces, vec![0, 1, 2, 3, 4]);
        // A newcomer is still measured from the confirmed nonce.
        assert!(matches!(
            f.add(&pay(0, 9, 10, 1, 5)),
            Err(MempoolError::NonceTooFarAhead {
                current: 0,
                got: 5,
                ..
            })
        ));
    }

    /// What a pool must always be: its books match its entries, and each sender's pending
    /// transfers fit its confirmed balance plus the coins pending to it.
    fn assert_consistent(pool: &Mempool, state: &BTreeMap<Address, Account>, now: Timestamp) {
        let (mut incoming, mut outgoing) = (HashMap::default(), HashMap::default());
        let mut bytes = 0;
        for (id, entry) in &pool.entries {
            let tx = &entry.tx;
            assert_eq!(pool.by_sender[&tx.from][&tx.nonce], *id);
            assert!(pool.by_fee.contains(&(tx.fee, Reverse(entry.seq), *id)));
            assert!(
                now.ms_since(entry.arrived) <= pool.config.expiry_ms,
                "expired"
            );
            let confirmed = state.get(&tx.from).map_or(0, |a| a.nonce);
            assert!(
                tx.nonce >= confirmed,
                "nonce {} below {confirmed}",
                tx.nonce
            );
            add_to(&mut incoming, tx.to, tx.amount);
            add_to(&mut outgoing, tx.from, tx.cost().unwrap());
            bytes += entry.bytes;
        }
        assert_eq!(pool.incoming, incoming);
        assert_eq!(pool.outgoing, outgoing);
        assert_eq!(pool.bytes, bytes);
        assert_eq!(pool.by_fee.len(), pool.entries.len());
        assert_eq!(
            pool.by_sender.values().map(BTreeMap::len).sum::<usize>(),
            pool.entries.len()
        );
        for (sender, out) in &outgoing {
            let balance = state.get(sender).map_or(Amount::ZERO, |a| a.balance);
            let has = balance.0 + incoming.get(sender).map_or(0, |a: &Amount| a.0);
            assert!(has >= out.0, "{sender:?} spends {out:?} of {has}");
        }
    }

    mod following {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// A random pool, a block on top (some of its transfers, perhaps rivals that spend
            /// the same nonces or coins), and expiries: following the block keeps the pool
            /// consistent, keeps exactly what re-admitting everything keeps, and reports the
            /// same removals in the same order. Balances are small, so transfers often spend
            /// coins still pending to their sender, and a removal cascades to its recipient;
            /// `only_funded` (0..3 pay only 3..6) is the case where none does.
            #[test]
            fn following_a_block_keeps_what_readmitting_everything_keeps(
                only_funded in any::<bool>(),
                txs in vec((0u64..6, 0u64..6, 1u64..150, 1u64..4, 0u64..4, 0u64..3), 1..24),
                mined in 0usize..8,
                rivals in vec((0u64..6, 1u64..190), 0..3),
            ) {
                let mut f = Fixture::new(MempoolConfig {
                    expiry_ms: 10_000,
                    ..MempoolConfig::default()
                });
                // Balances small enough that spending pending coins is common.
                for account in f.state.values_mut() {
                    account.balance = Amount(200);
                }
                for (from, to, amount, fee, nonce, age) in txs {
                    let (from, to) = if only_funded {
                        (from % 3, 3 + to % 3)
                    } else {
                        (from, to)
                    };
                    let arrived = Timestamp(NOW.0 + age * 6_000);
                    let _ = f.add_at(&pay(from, to, amount, fee, nonce), arrived);
                }
                // The block: the pool's best `mined`, then rivals, each if it applies.
                let before = f.state.clone();
                let mut overlay = StateOverlay::new(&before);
                let mut in_block = Vec::new();
                let picked = f.select();
                for tx in picked.into_iter().take(mined) {
                    overlay.apply_transfer(&tx, &f.spec).unwrap();
                    in_block.push(tx);
                }
                for (from, amount) in rivals {
                    let from = if only_funded { from % 3 } else { from };
                    let nonce = overlay.account(&address(from)).unwrap().map_or(0, |a| a.nonce);
                    let rival = pay(from, 9, amount, 1, nonce);
                    if overlay.apply_transfer(&rival, &f.spec).is_ok() {
                        in_block.push(rival);
                    }
                }
                for (address, account) in overlay.into_changes() {
                    f.state.insert(address, account.unwrap());
                }
                let connected = block(1, &in_block.iter().collect::<Vec<_>>());
                let change = TipChange {
                    old_tip: BlockHash::ZERO,
                    new_tip: connected.hash(),
                    disconnected: vec![],
                    connected: vec![connected.clone()],
                };
                let now = Timestamp(NOW.0 + 14_000);
                let mut fast = f.pool.clone();
                let mut full = f.pool.clone();
                let fast_removed = fast.follow_connected(&change.connected, &f.state, &f.spec, now).unwrap();
                let full_removed = full.readmit_all(&change, &f.state, &f.spec, now).unwrap();
                assert_consistent(&fast, &f.state, now);
                for tx in &in_block {
                    prop_assert!(!fast.contains(&tx.id()), "a confirmed transfer stayed");
                }
                prop_assert_eq!(&fast_removed, &full_removed);
                prop_assert_eq!(fast.len(), full.len());
                prop_assert_eq!(
                    fast.select_with_ids(&f.state, &f.spec, usize::MAX, usize::MAX).unwrap(),
                    full.select_with_ids(&f.state, &f.spec, usize::MAX, usize::MAX).unwrap()
                );
            }
        }
    }
}
