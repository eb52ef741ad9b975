//! The mempool: transfers waiting for a block, bounded by count and bytes.
//!
//! Admission checks a transfer fully (rules, signature, then against the confirmed state plus
//! what is already pending, as the seed's pending balances do: coins on their way to an
//! account can be spent by it). A sender's transfers wait in nonce order; one whose nonce is
//! ahead of the next waits for the earlier ones. When the pool is full, a newcomer evicts the
//! lowest-fee transfer that ends a sender's queue, if it pays more.
//!
//! Block templates take the highest fee first (earliest arrival among equals), respecting each
//! sender's nonce order and the block limits, and checking every pick against the state as
//! the template grows. After every tip change [`Mempool::on_tip_change`] re-admits everything
//! against the new state: what was confirmed or became invalid leaves, and the transfers of
//! disconnected blocks come back. Nothing a user submitted is silently dropped: every removal
//! is returned with its reason.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use crate::block::check_transfer_rules;
use crate::chain::TipChange;
use crate::hash::{BlockHash, TxId};
use crate::keys::Address;
use crate::spec::ChainSpec;
use crate::state::{AccountReader, ConnectError, StateOverlay};
use crate::store::StoreError;
use crate::tx::{Transaction, Transfer, TxError};
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
}

impl Mempool {
    /// An empty pool.
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool {
            config,
            entries: HashMap::new(),
            by_sender: HashMap::new(),
            by_fee: BTreeSet::new(),
            incoming: HashMap::new(),
            outgoing: HashMap::new(),
            bytes: 0,
            next_seq: 0,
        }
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
        let id = Transaction::Transfer(tx.clone()).id();
        if self.entries.contains_key(&id) {
            return Err(TxError::Duplicate(id).into());
        }
        check_transfer_rules(&tx, spec)?;
        if !tx.signature_is_valid(chain_id) {
            return Err(TxError::BadSignature.into());
        }
        let evicted = self.admit(id, tx, state, spec, now)?;
        Ok((id, evicted))
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
    ) -> Result<Vec<(TxId, Removal)>, MempoolError> {
        let incoming = |address: &Address| self.incoming.get(address).copied();
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
        if tx.nonce - sender.nonce >= max_ahead {
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
            .and_then(|b| b.checked_sub(self.outgoing.get(&tx.from).copied().unwrap_or_default()))
            .unwrap_or_default();
        if available < needed {
            return Err(TxError::InsufficientBalance {
                from: tx.from,
                balance: available,
                needed,
            }
            .into());
        }
        let bytes = tx.encoded_len();
        let evicted = self.make_room(bytes, tx.fee)?;
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
        Ok(evicted)
    }

    /// Evicts lower-fee queue ends until `bytes` more fit, or fails without evicting.
    fn make_room(
        &mut self,
        bytes: usize,
        fee: Amount,
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
            if *victim_fee >= fee {
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
            if is_queue_end {
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

    /// Drops transfers older than the expiry.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(TxId, Removal)> {
        let expiry_ms = self.config.expiry_ms;
        let old: Vec<TxId> = self
            .entries
            .iter()
            .filter(|(_, e)| now.ms_since(e.arrived) > expiry_ms)
            .map(|(id, _)| *id)
            .collect();
        old.into_iter()
            .filter_map(|id| self.remove(&id).map(|_| (id, Removal::Expired)))
            .collect()
    }

    /// Follows a tip change: takes back the transfers of disconnected blocks and re-admits
    /// everything against the new state (`state` must already be the new tip's). Returns
    /// what left and why.
    pub fn on_tip_change(
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
            .map(|tx| (Transaction::Transfer(tx.clone()).id(), tx.clone(), now))
            .collect();
        let mut pending: Vec<(TxId, Entry)> = self.entries.drain().collect();
        pending.sort_by_key(|(_, e)| e.seq);
        queue.extend(pending.into_iter().map(|(id, e)| (id, e.tx, e.arrived)));
        *self = Mempool {
            next_seq: self.next_seq,
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
            match self.admit(id, tx, state, spec, arrived) {
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
        let mut overlay = StateOverlay::new(state);
        let mut ready: BinaryHeap<(Amount, Reverse<u64>, TxId)> = BinaryHeap::new();
        let mut waiting_for_coins: HashMap<Address, TxId> = HashMap::new();
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
                    picked.push(tx.clone());
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
