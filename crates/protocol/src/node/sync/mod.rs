//! The sync manager: headers-first sync and block download.
//!
//! A ready peer whose tip has more work than ours is asked for headers after our block
//! locator; headers that link and carry proof of work (the exact expected target when the
//! parent is known) queue their blocks ([`download`]), which are requested in batches from
//! every peer that has them, a bounded number in flight per peer and within a window above
//! the tip, the lowest first. It also answers peers' requests for headers and blocks from
//! the chain ([`serve`]).
//!
//! - **One header sync runs at a time, and at most one headers request per peer is
//!   outstanding**; a peer that lets it time out is disconnected (not banned), and the slot
//!   goes at once to the next candidate.
//! - **A claim of work only makes a peer a candidate.** Candidates are the peers whose
//!   claimed tip we lack and that claim more work than ours (or that told of a block whose
//!   parent we lack); the slot goes to the one whose headers have shown the most work so
//!   far, never to the biggest claim. A peer that says it has no more headers while its
//!   headers show less work than it claimed is banned: in-order delivery means an honest
//!   peer's answer reaches at least the tip it last told us of. A peer is not asked again
//!   for the claim its last whole answer ended under, nor while its share of the queue is
//!   full: either would be a request loop at the speed of the link.
//! - **A block is only accepted from a peer it was asked of** (or asked and given up on:
//!   late is not abuse); a peer that lets a block request time out is dropped, and never
//!   asked for that block again.
//! - **Every header queued has passed its checks** and builds on a valid block: its target
//!   is the one the rules give it after its parent, whether the parent's block is held or
//!   only its header queued, so queued headers are no cheaper to fake than blocks.
//! - **What a peer queued is charged to it** (at most `download_queue_per_peer_max`) and goes
//!   when it does.
//! - **Only a branch that comes near our work is queued** ([`staged`]): below the minimum
//!   chain work, or more than `presync_margin_blocks` of our tip's work behind it, a branch's
//!   headers are held per peer and its blocks are not downloaded, so a fork from where the
//!   chain was cheap to mine costs us no download. A held branch is asked for only from its
//!   tip on.
//!
//! The blocks themselves are imported by the dispatcher (`Node`), which chains the tip
//! change through the mempool, relay and mining.

mod download;
pub(crate) mod serve;
mod staged;

use std::collections::BTreeMap;

use powchain_chain::store::BlockStatus;
use powchain_chain::tree::expected_target_after;
use powchain_chain::{BlockHash, Chain, Header, Height, Store, Target, TieBreak, Timestamp, Work};

use crate::message::{
    BLOCKS_PER_MESSAGE_MAX, HEADERS_PER_MESSAGE_MAX, LOCATOR_HASHES_MAX, Message, TipSummary,
};
use crate::node::config::NodeConfig;
use crate::node::outbox::{Event, Instants, Outbox};
use crate::peer::{BoundedSet, DisconnectReason, HeaderFault, PeerId, Unasked};
use download::{Download, Wanted};
use staged::Staged;

/// What sync keeps per ready peer.
#[derive(Debug)]
struct SyncPeer {
    /// The best tip it has told us about.
    tip: TipSummary,
    /// Blocks requested from it, and when.
    in_flight: BTreeMap<BlockHash, Timestamp>,
    /// Blocks it did not deliver in time or said it lacks: not asked of it again, and
    /// accepted without complaint if they come late.
    avoid: BoundedSet<BlockHash>,
    /// The most chain work its headers (and announcements) have shown, checked.
    shown: Work,
    /// It told of a block whose parent we lack: worth asking for headers.
    lacking_parent: bool,
    /// The claimed tip its last whole answer ended under: not asked again for it (it would
    /// answer the same), only once it claims another or queued headers were dropped.
    answered_claim: Option<TipSummary>,
    /// When the unanswered `GetHeaders` to it was sent.
    headers_requested: Option<Timestamp>,
    /// Headers answers in a row that did not connect to anything we know.
    unconnected_headers: u32,
    /// Headers of its branch below the queue threshold: checked, held, not downloaded.
    staged: Staged,
    /// Its branch filled the stage below the threshold: it forks too far below our work
    /// to follow, however it grows, so it is not asked for headers again.
    too_light: bool,
}

/// How a headers answer ended, when it did not end the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadersTaken {
    /// Their blocks are queued: time to schedule downloads.
    Queued,
    /// They did not connect to our view (which may have moved): asked again.
    AskedAgain,
}

/// Why sync refuses what a peer sent (the dispatcher disconnects it with the matching
/// [`DisconnectReason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Headers that fail their checks.
    Headers(HeaderFault),
    /// An answer nobody asked for.
    Unasked(Unasked),
}

impl From<Refusal> for DisconnectReason {
    fn from(refusal: Refusal) -> DisconnectReason {
        match refusal {
            Refusal::Headers(fault) => DisconnectReason::InvalidHeaders(fault),
            Refusal::Unasked(what) => DisconnectReason::Unrequested(what),
        }
    }
}

/// What became of a checked header (see `Sync::place`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placed {
    Staged,
    Queued,
    /// The download queue, or the peer's share of it, is full.
    NoRoom,
    /// Below the threshold, and the peer's stage is full.
    StageFull,
}

/// What a peer's requests look like at some instant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Overdue {
    /// Nothing is late.
    Nothing,
    /// The headers request timed out.
    Headers,
    /// These block requests timed out (now given up on).
    Blocks(Vec<BlockHash>),
}

/// Header sync and block download.
#[derive(Debug)]
pub(crate) struct Sync {
    peers: BTreeMap<PeerId, SyncPeer>,
    /// Blocks wanted, in download order, and who each was asked of.
    download: Download,
    /// The peer a header sync is running with.
    header_sync: Option<PeerId>,
    /// When progress was last reported, and the height then.
    progress: (Timestamp, Height),
    /// When the queue was last swept for entries past their lifetime.
    swept: Timestamp,
    /// A candidate was passed over because its share of the queue was full: ask again once
    /// blocks have left the queue.
    waiting_for_room: bool,
    /// When each outstanding headers request and block request was sent (every peer's
    /// `headers_requested` and `in_flight` times), so the next timeout is one lookup.
    headers_asked: Instants,
    blocks_asked: Instants,
    limits: Limits,
}

/// The config values sync uses.
#[derive(Clone, Copy, Debug)]
struct Limits {
    blocks_in_flight_per_peer_max: usize,
    download_window_blocks: u64,
    schedule_scan_max: usize,
    headers_timeout_ms: u64,
    block_request_timeout_ms: u64,
    progress_interval_ms: u64,
    known_inventory_max: usize,
    download_entry_lifetime_ms: u64,
    staged_headers_per_peer_max: usize,
    presync_margin_blocks: u64,
    minimum_chain_work: Work,
    compact_blocks: bool,
}

impl Sync {
    pub fn new(config: &NodeConfig) -> Sync {
        Sync {
            peers: BTreeMap::new(),
            download: Download::new(
                config.download_queue_max,
                config.download_queue_per_peer_max,
            ),
            header_sync: None,
            progress: (Timestamp(0), Height(0)),
            swept: Timestamp(0),
            waiting_for_room: false,
            headers_asked: Instants::default(),
            blocks_asked: Instants::default(),
            limits: Limits {
                blocks_in_flight_per_peer_max: config.blocks_in_flight_per_peer_max,
                download_window_blocks: config.download_window_blocks,
                schedule_scan_max: config.schedule_scan_max,
                headers_timeout_ms: config.headers_timeout_ms,
                block_request_timeout_ms: config.block_request_timeout_ms,
                progress_interval_ms: config.progress_interval_ms,
                known_inventory_max: config.known_inventory_max,
                download_entry_lifetime_ms: config.download_entry_lifetime_ms,
                staged_headers_per_peer_max: config.staged_headers_per_peer_max,
                presync_margin_blocks: config.presync_margin_blocks,
                minimum_chain_work: config.minimum_chain_work,
                compact_blocks: config.compact_blocks,
            },
        }
    }

    /// Blocks waiting to be downloaded.
    pub fn queue_len(&self) -> usize {
        self.download.len()
    }

    /// A peer finished its handshake with this tip.
    pub fn peer_ready(&mut self, peer: PeerId, tip: TipSummary) {
        self.peers.insert(
            peer,
            SyncPeer {
                tip,
                in_flight: BTreeMap::new(),
                avoid: BoundedSet::new(self.limits.known_inventory_max),
                shown: Work(0),
                lacking_parent: false,
                answered_claim: None,
                headers_requested: None,
                unconnected_headers: 0,
                staged: Staged::default(),
                too_light: false,
            },
        );
    }

    /// A peer is gone: what it was fetching for us goes back to the queue.
    pub fn peer_gone(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.remove(&peer) {
            for (hash, asked) in &state.in_flight {
                self.blocks_asked.remove(*asked);
                if self.download.requested_from(hash) == Some(peer) {
                    self.download.release(hash);
                }
            }
            if let Some(asked) = state.headers_requested {
                self.headers_asked.remove(asked);
            }
        }
        if self.header_sync == Some(peer) {
            self.header_sync = None;
        }
        let before = self.download.len();
        self.download.forget_queued_by(peer);
        if self.download.len() < before {
            self.forget_answers();
        }
    }

    /// Queued headers were dropped: what peers answered before may have to be asked again.
    fn forget_answers(&mut self) {
        for state in self.peers.values_mut() {
            state.answered_claim = None;
        }
    }

    /// The best tip `peer` has told us about.
    pub fn tip(&self, peer: PeerId) -> Option<TipSummary> {
        self.peers.get(&peer).map(|p| p.tip)
    }

    /// `peer` reports its tip (a pong).
    pub fn set_tip(&mut self, peer: PeerId, tip: TipSummary) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.tip = tip;
        }
    }

    /// Whether `peer` has nothing for us: no request outstanding, and a tip we have or with
    /// no more work than ours (a feeler is then done).
    pub fn has_nothing_from<S: Store>(&self, peer: PeerId, chain: &Chain<S>) -> bool {
        self.peers.get(&peer).is_none_or(|p| {
            p.headers_requested.is_none()
                && p.in_flight.is_empty()
                && (p.tip.work <= chain.tip().chain_work || chain.tree().get(&p.tip.hash).is_some())
        })
    }

    /// Blocks left the queue: a candidate passed over for its full share may be asked now.
    pub fn queue_drained<S: Store>(&mut self, chain: &Chain<S>, now: Timestamp, out: &mut Outbox) {
        if std::mem::take(&mut self.waiting_for_room) {
            self.start_header_sync(chain, now, out);
        }
    }

    /// Starts a header sync, when none runs, with the candidate whose headers have shown
    /// the most work (the earliest connected among equals): see the module docs.
    pub fn start_header_sync<S: Store>(
        &mut self,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) {
        if self.header_sync.is_some() {
            return;
        }
        let ours = chain.tip().chain_work;
        // A claim below the threshold is not worth asking about: its blocks would never be
        // queued, even if its headers backed it. (A peer that told of a block whose parent
        // we lack is asked whatever it claimed before: its claim may be stale.)
        let threshold = self.queue_threshold(chain);
        let mut best: Option<(Work, PeerId)> = None;
        for (peer, state) in &self.peers {
            let claims_more = state.tip.work > ours
                && state.tip.work >= threshold
                && state.answered_claim != Some(state.tip)
                && self.known_work(chain, &state.tip.hash).is_none();
            if state.headers_requested.is_some()
                || state.too_light
                || !(claims_more || state.lacking_parent)
            {
                continue;
            }
            // A peer whose share of the queue is full is asked again once it has drained.
            if self.download.is_full_for(*peer) {
                self.waiting_for_room = true;
                continue;
            }
            if best.is_none_or(|(shown, _)| state.shown > shown) {
                best = Some((state.shown, *peer));
            }
        }
        if let Some((_, peer)) = best {
            self.request_headers(peer, None, chain, now, out);
        }
    }

    /// Asks `peer` for headers after our locator (after `from` first, to continue a long
    /// sync). At most one request per peer is outstanding.
    pub fn request_headers<S: Store>(
        &mut self,
        peer: PeerId,
        from: Option<BlockHash>,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) {
        let locator = serve::locator(chain);
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.headers_requested.is_some() {
            return;
        }
        // A staged branch goes on from its tip, not from our chain again.
        let from = from.or_else(|| state.staged.tip());
        state.headers_requested = Some(now);
        self.headers_asked.add(now);
        self.header_sync = Some(peer);
        let mut hashes = Vec::with_capacity(LOCATOR_HASHES_MAX);
        hashes.extend(from);
        hashes.extend(locator);
        hashes.truncate(LOCATOR_HASHES_MAX);
        out.send(peer, Message::GetHeaders { locator: hashes });
    }

    /// A headers answer from `peer`. Each header it tells of is passed to `known` (up to
    /// where the answer stops being taken); each that passes its checks queues its block.
    pub fn headers_received<S: Store>(
        &mut self,
        peer: PeerId,
        headers: Vec<Header>,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
        mut known: impl FnMut(BlockHash),
    ) -> Result<HeadersTaken, Refusal> {
        let Some(state) = self.peers.get_mut(&peer) else {
            return Ok(HeadersTaken::AskedAgain);
        };
        let Some(asked) = state.headers_requested.take() else {
            return Err(Refusal::Unasked(Unasked::Headers));
        };
        state.lacking_parent = false;
        let mut shown = state.shown;
        let mut staged = std::mem::take(&mut state.staged);
        self.headers_asked.remove(asked);
        if self.header_sync == Some(peer) {
            self.header_sync = None;
        }
        let full = headers.len() == HEADERS_PER_MESSAGE_MAX;
        let threshold = self.queue_threshold(chain);
        let mut previous: Option<BlockHash> = None;
        let mut last = None;
        // Whether the answer was taken whole (a full queue or stage stops it early).
        let mut whole = true;
        let mut stage_full = false;
        for header in headers {
            let hash = header.hash();
            if let Some(previous) = previous
                && header.prev_hash != previous
            {
                return Err(Refusal::Headers(HeaderFault::NotAChain));
            }
            previous = Some(hash);
            last = Some(hash);
            known(hash);
            let pending = Pending::with_stage(&self.download, &staged);
            if let Some(work) = known_work(chain, pending, &hash) {
                shown = shown.max(work);
                continue;
            }
            let Some(parent_height) = parent_height(chain, pending, &header.prev_hash) else {
                // Our view moved since we asked (a reorg, a block dropped from the queue):
                // ask again from our locator, a few times, before calling it abuse.
                let Some(state) = self.peers.get_mut(&peer) else {
                    return Ok(HeadersTaken::AskedAgain);
                };
                state.staged = staged;
                state.unconnected_headers += 1;
                if state.unconnected_headers > 3 {
                    return Err(Refusal::Headers(HeaderFault::NotConnected));
                }
                self.request_headers(peer, None, chain, now, out);
                return Ok(HeadersTaken::AskedAgain);
            };
            check_header(chain, pending, &header, parent_height).map_err(Refusal::Headers)?;
            let Some(chain_work) = work_after(chain, pending, &header.prev_hash, &header) else {
                return Err(Refusal::Headers(HeaderFault::BuildsOnInvalid));
            };
            shown = shown.max(chain_work);
            let wanted = Wanted { header, chain_work };
            match self.place(peer, &mut staged, hash, wanted, threshold, now) {
                Placed::Staged | Placed::Queued => {}
                Placed::NoRoom => {
                    whole = false;
                    self.waiting_for_room = true;
                    break;
                }
                Placed::StageFull => {
                    whole = false;
                    stage_full = true;
                    break;
                }
            }
        }
        // A branch that fills the stage would not come near our work within what we hold
        // for this peer. One that stops short is kept: the peer's next blocks may carry it
        // there, and it is asked only for those.
        if stage_full {
            staged.clear();
        }
        let ours = chain.tip().chain_work;
        let claim = self.peers.get(&peer).map(|state| state.tip);
        let claim_known = claim.is_some_and(|c| self.known_work(chain, &c.hash).is_some());
        if let Some(state) = self.peers.get_mut(&peer)
            && let Some(claim) = claim
        {
            state.staged = staged;
            state.unconnected_headers = 0;
            state.shown = shown;
            if stage_full {
                state.too_light = true;
                return Ok(HeadersTaken::Queued);
            }
            // "No more" from a peer whose headers fall short of its own claim.
            if !full && whole && claim.work > shown.max(ours) && !claim_known {
                return Err(Refusal::Headers(HeaderFault::UnbackedClaim {
                    claimed: claim.work,
                    shown,
                }));
            }
            if !full && whole {
                state.answered_claim = Some(claim);
            }
        }
        if let (true, Some(last)) = (full, last)
            && !self.download.is_full_for(peer)
        {
            self.request_headers(peer, Some(last), chain, now, out);
        }
        Ok(HeadersTaken::Queued)
    }

    /// Places a checked header from `peer`: staged while its chain work is below
    /// `threshold`, else queued, after the staged branch it ends (oldest first).
    fn place(
        &mut self,
        peer: PeerId,
        staged: &mut Staged,
        hash: BlockHash,
        wanted: Wanted,
        threshold: Work,
        now: Timestamp,
    ) -> Placed {
        if wanted.chain_work < threshold {
            if staged.len() >= self.limits.staged_headers_per_peer_max {
                return Placed::StageFull;
            }
            staged.insert(hash, wanted);
            return Placed::Staged;
        }
        // The branch comes near our work: what it staged on the way is queued first.
        staged.insert(hash, wanted);
        let mut branch = staged.take_branch(&hash).into_iter();
        while let Some((hash, wanted)) = branch.next() {
            if !self.download.want(hash, wanted, peer, now) {
                // No room: the rest waits on the stage.
                staged.insert(hash, wanted);
                branch.for_each(|(hash, wanted)| staged.insert(hash, wanted));
                return Placed::NoRoom;
            }
        }
        Placed::Queued
    }

    /// A peer announced `header` as its new tip (the caller has noted that the peer knows
    /// it). Returns whether its block was queued (time to schedule downloads).
    pub fn announced<S: Store>(
        &mut self,
        peer: PeerId,
        header: Header,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) -> Result<bool, Refusal> {
        let Some(state) = self.peers.get_mut(&peer) else {
            return Ok(false);
        };
        let mut staged = std::mem::take(&mut state.staged);
        let queued = self.announced_with(peer, header, &mut staged, chain, now, out);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.staged = staged;
        }
        queued
    }

    /// [`Sync::announced`], with the peer's stage taken out.
    fn announced_with<S: Store>(
        &mut self,
        peer: PeerId,
        header: Header,
        staged: &mut Staged,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) -> Result<bool, Refusal> {
        let hash = header.hash();
        let pending = Pending::with_stage(&self.download, staged);
        if chain.tree().get(&hash).is_some() || pending.get(&hash).is_some() {
            return Ok(false);
        }
        let Some(parent_height) = parent_height(chain, pending, &header.prev_hash) else {
            // We are missing its ancestors: catch up by headers.
            self.lacking_parent(peer, chain, now, out);
            return Ok(false);
        };
        check_header(chain, pending, &header, parent_height).map_err(Refusal::Headers)?;
        let Some(chain_work) = work_after(chain, pending, &header.prev_hash, &header) else {
            return Ok(false);
        };
        if let Some(state) = self.peers.get_mut(&peer) {
            state.tip = TipSummary {
                hash,
                height: header.height,
                work: chain_work,
            };
            state.shown = state.shown.max(chain_work);
        }
        // Only a block that would beat our tip is worth fetching, unless it carries a
        // staged branch on. A fresh tip goes first: it is what propagation waits for. A
        // chain that breaks ties at random may follow one of equal work, so it fetches that.
        let ours = chain.tip().chain_work;
        let may_win = chain_work > ours
            || (chain_work == ours && matches!(chain.tie_break(), TieBreak::Random { .. }));
        if staged.get(&header.prev_hash).is_none() && !may_win {
            return Ok(false);
        }
        let threshold = self.queue_threshold(chain);
        let wanted = Wanted { header, chain_work };
        Ok(
            match self.place(peer, staged, hash, wanted, threshold, now) {
                Placed::Queued => true,
                Placed::StageFull => {
                    staged.clear();
                    if let Some(state) = self.peers.get_mut(&peer) {
                        state.too_light = true;
                    }
                    false
                }
                Placed::Staged | Placed::NoRoom => false,
            },
        )
    }

    /// The peer lacks blocks we asked it for: ask someone else, never it again. Returns
    /// whether any request was released (time to schedule downloads).
    pub fn not_found(&mut self, peer: PeerId, hashes: &[BlockHash]) -> bool {
        let mut released = false;
        if let Some(state) = self.peers.get_mut(&peer) {
            for hash in hashes {
                if let Some(asked) = state.in_flight.remove(hash) {
                    self.blocks_asked.remove(asked);
                    state.avoid.insert(*hash);
                    if self.download.requested_from(hash) == Some(peer) {
                        self.download.release(hash);
                    }
                    released = true;
                }
            }
        }
        released
    }

    /// Whether block `hash` is asked of `peer` and not yet arrived.
    pub fn is_in_flight(&self, peer: PeerId, hash: &BlockHash) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|state| state.in_flight.contains_key(hash))
    }

    /// Block `hash`, queued and asked of nobody, is being pushed to us by `peer`: it becomes
    /// a download from `peer` under way (timed out, released, and answered for as any
    /// other). False when someone is already fetching it or it is not queued.
    pub fn take_pushed(&mut self, peer: PeerId, hash: &BlockHash, now: Timestamp) -> bool {
        let Some(state) = self.peers.get_mut(&peer) else {
            return false;
        };
        if !self.download.contains(hash)
            || self.download.requested_from(hash).is_some()
            || state.avoid.contains(hash)
            || state.in_flight.len() >= self.limits.blocks_in_flight_per_peer_max
        {
            return false;
        }
        self.download.mark_requested(hash, peer, now);
        state.in_flight.insert(*hash, now);
        self.blocks_asked.add(now);
        true
    }

    /// Whether block `hash` was asked of `peer` and given up on (late is not abuse).
    pub fn gave_up_on(&self, peer: PeerId, hash: &BlockHash) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|state| state.avoid.contains(hash))
    }

    /// A block `hash` arrived from `peer`: whether it was asked of it (or asked and given up
    /// on); `None` when the peer is not known here. It leaves the queue either way.
    pub fn block_arrived(&mut self, peer: PeerId, hash: &BlockHash) -> Option<bool> {
        let state = self.peers.get_mut(&peer)?;
        let in_flight = state.in_flight.remove(hash);
        if let Some(at) = in_flight {
            self.blocks_asked.remove(at);
        }
        let asked = in_flight.is_some() || state.avoid.contains(hash);
        if asked {
            self.download.remove(hash);
        }
        Some(asked)
    }

    /// A block failed validation: it and everything queued on it are no longer wanted.
    pub fn block_invalid(&mut self, hash: &BlockHash) {
        self.download.remove_with_descendants(hash);
        self.forget_answers();
    }

    /// A block from `peer` became an orphan waiting for `missing`: catch up by headers
    /// unless that block is queued.
    pub fn orphan_received<S: Store>(
        &mut self,
        peer: PeerId,
        missing: &BlockHash,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) {
        if !self.download.contains(missing) {
            self.lacking_parent(peer, chain, now, out);
        }
    }

    /// `peer` told of a block whose parent we lack: it becomes a candidate for the header
    /// sync (the slot still goes by shown work, so telling of such blocks does not take it).
    fn lacking_parent<S: Store>(
        &mut self,
        peer: PeerId,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.lacking_parent = true;
        }
        self.start_header_sync(chain, now, out);
    }

    /// Hands wanted blocks to peers that have them (their tip has at least the block's
    /// chain work, or `knows` says they have it), up to each peer's in-flight bound and
    /// within the window above the tip.
    pub fn schedule<S: Store>(
        &mut self,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
        knows: impl Fn(PeerId, &BlockHash) -> bool,
    ) {
        if self.download.len() == 0 {
            return;
        }
        let limits = self.limits;
        let tip = chain.tip().hash;
        let height_max = Height(
            chain
                .tip()
                .height
                .0
                .saturating_add(limits.download_window_blocks),
        );
        for (peer, state) in &mut self.peers {
            let room = limits
                .blocks_in_flight_per_peer_max
                .saturating_sub(state.in_flight.len())
                .min(BLOCKS_PER_MESSAGE_MAX);
            if room == 0 {
                continue;
            }
            let peer_work = state.tip.work;
            let (avoid, in_flight) = (&state.avoid, &state.in_flight);
            let batch = self.download.pick(
                *peer,
                room,
                limits.schedule_scan_max,
                height_max,
                now,
                |hash, wanted| {
                    // Never asked of the same peer twice: its second copy would be unasked.
                    !avoid.contains(hash)
                        && !in_flight.contains_key(hash)
                        && (wanted.chain_work <= peer_work || knows(*peer, hash))
                },
            );
            if batch.is_empty() {
                continue;
            }
            for hash in &batch {
                if let Some(before) = state.in_flight.insert(*hash, now) {
                    self.blocks_asked.remove(before);
                }
                self.blocks_asked.add(now);
            }
            // The one block after our tip is the one whose transfers our mempool holds:
            // that one comes compact (`node::compact`), everything deeper whole.
            let next_after_tip = match batch.as_slice() {
                [hash] => self
                    .download
                    .get(hash)
                    .is_some_and(|wanted| wanted.header.prev_hash == tip),
                _ => false,
            };
            if limits.compact_blocks && next_after_tip {
                out.send(*peer, Message::GetCompactBlock(batch[0]));
            } else {
                out.send(*peer, Message::GetBlocks(batch));
            }
        }
    }

    /// Which of `peer`'s requests are overdue at `now`; late block requests are given up
    /// on (not asked of it again) but stay assigned until [`Sync::release`]. A peer we read
    /// more slowly (`paced`: over its message budget, so its answers wait behind what it
    /// sent before) is not timed out for it: the clocks of its late requests restart
    /// instead, for as long as the flood rule lets it stay over its budget.
    pub fn overdue(&mut self, peer: PeerId, now: Timestamp, paced: bool) -> Overdue {
        let limits = self.limits;
        let Some(state) = self.peers.get_mut(&peer) else {
            return Overdue::Nothing;
        };
        if let Some(asked) = state.headers_requested
            && now.ms_since(asked) > limits.headers_timeout_ms
        {
            if !paced {
                return Overdue::Headers;
            }
            self.headers_asked.remove(asked);
            self.headers_asked.add(now);
            state.headers_requested = Some(now);
        }
        let late: Vec<BlockHash> = state
            .in_flight
            .iter()
            .filter(|(_, asked)| now.ms_since(**asked) > limits.block_request_timeout_ms)
            .map(|(hash, _)| *hash)
            .collect();
        if late.is_empty() {
            return Overdue::Nothing;
        }
        for hash in &late {
            if let Some(asked) = state.in_flight.remove(hash) {
                self.blocks_asked.remove(asked);
            }
            if paced {
                state.in_flight.insert(*hash, now);
                self.blocks_asked.add(now);
            } else {
                state.avoid.insert(*hash);
            }
        }
        if paced {
            return Overdue::Nothing;
        }
        Overdue::Blocks(late)
    }

    /// When the next headers or block request times out, or progress is next reported.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let limits = self.limits;
        let headers = self
            .headers_asked
            .earliest()
            .map(|asked| asked.saturating_add_ms(limits.headers_timeout_ms + 1));
        let blocks = self
            .blocks_asked
            .earliest()
            .map(|asked| asked.saturating_add_ms(limits.block_request_timeout_ms + 1));
        let progress = (self.download.len() > 0).then(|| {
            self.progress
                .0
                .saturating_add_ms(limits.progress_interval_ms)
        });
        [headers, blocks, progress].into_iter().flatten().min()
    }

    /// [`Sync::next_deadline`] the long way, from every peer's requests.
    #[cfg(test)]
    fn next_deadline_by_walking(&self) -> Option<Timestamp> {
        let limits = self.limits;
        let requests = self.peers.values().flat_map(|state| {
            let headers = state
                .headers_requested
                .map(|asked| asked.saturating_add_ms(limits.headers_timeout_ms + 1));
            let blocks = state
                .in_flight
                .values()
                .min()
                .map(|asked| asked.saturating_add_ms(limits.block_request_timeout_ms + 1));
            headers.into_iter().chain(blocks)
        });
        let progress = (self.download.len() > 0).then(|| {
            self.progress
                .0
                .saturating_add_ms(limits.progress_interval_ms)
        });
        requests.chain(progress).min()
    }

    /// Puts blocks `peer` was fetching back in the queue for others.
    pub fn release(&mut self, peer: PeerId, hashes: &[BlockHash]) {
        for hash in hashes {
            if self.download.requested_from(hash) == Some(peer) {
                self.download.release(hash);
            }
        }
    }

    /// Drops queue entries past their lifetime (see [`Download::expire`]), looking at most
    /// once per progress interval: the deadline that reports progress wakes the node for it.
    pub fn expire_queue(&mut self, now: Timestamp) {
        if now.ms_since(self.swept) < self.limits.progress_interval_ms {
            return;
        }
        self.swept = now;
        let expired = self
            .download
            .expire(now, self.limits.download_entry_lifetime_ms);
        if expired > 0 {
            self.forget_answers();
        }
    }

    /// Reports download progress every `progress_interval_ms` while blocks are queued.
    pub fn report_progress<S: Store>(
        &mut self,
        chain: &Chain<S>,
        now: Timestamp,
        out: &mut Outbox,
    ) {
        let (since, from) = self.progress;
        if self.download.len() == 0 {
            // With nothing queued the deadline does not depend on progress: still valid.
            self.progress = (now, chain.tip().height);
            return;
        }
        let elapsed = now.ms_since(since);
        if elapsed < self.limits.progress_interval_ms {
            return;
        }
        let height = chain.tip().height;
        let blocks = height.0.saturating_sub(from.0);
        self.progress = (now, height);
        out.event(Event::SyncProgress {
            height,
            remaining: self.download.len(),
            blocks_per_sec: blocks as f64 * 1_000.0 / elapsed.max(1) as f64,
        });
    }

    /// The chain work of a block we hold or have queued.
    fn known_work<S: Store>(&self, chain: &Chain<S>, hash: &BlockHash) -> Option<Work> {
        known_work(chain, Pending::queued(&self.download), hash)
    }

    /// The least chain work a header needs for its block to be queued: the minimum chain
    /// work, or our tip's work less `presync_margin_blocks` blocks at the tip's target,
    /// whichever is more (see [`staged`]).
    fn queue_threshold<S: Store>(&self, chain: &Chain<S>) -> Work {
        let tip = chain.tip();
        let margin = tip
            .header
            .target
            .work()
            .0
            .saturating_mul(u128::from(self.limits.presync_margin_blocks));
        Work(tip.chain_work.0.saturating_sub(margin)).max(self.limits.minimum_chain_work)
    }
}

/// The headers sync knows beyond the block tree: those queued for download and, while a
/// peer's answer is taken, those that peer has staged.
#[derive(Clone, Copy)]
struct Pending<'a> {
    download: &'a Download,
    staged: Option<&'a Staged>,
}

impl<'a> Pending<'a> {
    fn queued(download: &'a Download) -> Pending<'a> {
        Pending {
            download,
            staged: None,
        }
    }

    fn with_stage(download: &'a Download, staged: &'a Staged) -> Pending<'a> {
        Pending {
            download,
            staged: Some(staged),
        }
    }

    fn get(self, hash: &BlockHash) -> Option<&'a Wanted> {
        self.download
            .get(hash)
            .or_else(|| self.staged.and_then(|staged| staged.get(hash)))
    }
}

/// The chain work of a block we hold, have queued or (in `pending`) staged.
fn known_work<S: Store>(chain: &Chain<S>, pending: Pending, hash: &BlockHash) -> Option<Work> {
    match chain.tree().get(hash) {
        Some(entry) => Some(entry.chain_work),
        None => pending.get(hash).map(|wanted| wanted.chain_work),
    }
}

/// The height of `parent`, in the tree or among the pending headers.
fn parent_height<S: Store>(
    chain: &Chain<S>,
    pending: Pending,
    parent: &BlockHash,
) -> Option<Height> {
    match chain.tree().get(parent) {
        Some(entry) => Some(entry.header.height),
        None => pending.get(parent).map(|w| w.header.height),
    }
}

/// The chain work a child of `parent` with `header` would have, if the parent is known
/// and valid.
fn work_after<S: Store>(
    chain: &Chain<S>,
    pending: Pending,
    parent: &BlockHash,
    header: &Header,
) -> Option<Work> {
    let parent_work = match chain.tree().get(parent) {
        Some(entry) if entry.status != BlockStatus::Invalid => entry.chain_work,
        Some(_) => return None,
        None => pending.get(parent)?.chain_work,
    };
    parent_work.checked_add(header.target.work())
}

/// The checks a header gets before its block is wanted: a height one above its parent, the
/// target the rules give it from its parent's chain (exactly, whether the parent's block is
/// in the tree or its header only queued or staged: a pending parent is no cheaper to build
/// on), and proof of work against it.
fn check_header<S: Store>(
    chain: &Chain<S>,
    pending: Pending,
    header: &Header,
    parent_height: Height,
) -> Result<(), HeaderFault> {
    if parent_height.next() != Some(header.height) {
        return Err(HeaderFault::WrongHeight(header.hash()));
    }
    if header.target != expected_target(chain, pending, &header.prev_hash) {
        return Err(HeaderFault::WrongTarget(header.hash()));
    }
    if !header.meets_own_target() {
        return Err(HeaderFault::NoProofOfWork(header.hash()));
    }
    Ok(())
}

/// The target a child of `parent` must have, its ancestors found among the pending headers
/// first and then in the block tree.
fn expected_target<S: Store>(chain: &Chain<S>, pending: Pending, parent: &BlockHash) -> Target {
    let spec = chain.spec();
    let Some(queued) = pending.get(parent) else {
        return chain.tree().expected_target(parent, spec);
    };
    expected_target_after(&queued.header, spec, |height| {
        // Down the queued headers to the tree, at most one retarget window.
        let mut cursor = queued.header;
        loop {
            if cursor.height == height {
                return Some(cursor.time);
            }
            if cursor.height < height {
                return None;
            }
            match pending.get(&cursor.prev_hash) {
                Some(wanted) => cursor = wanted.header,
                None => {
                    let tree = chain.tree();
                    let ancestor = tree.ancestor(&cursor.prev_hash, height)?;
                    return tree.get(&ancestor).map(|entry| entry.header.time);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use powchain_chain::{ChainSpec, MemStore};

    use super::*;
    use crate::node::outbox::Output;

    fn chain() -> Chain<MemStore> {
        Chain::open(ChainSpec::dev(), MemStore::new(), Default::default()).unwrap()
    }

    fn tip_with_work(work: u128) -> TipSummary {
        TipSummary {
            hash: BlockHash::ZERO,
            height: Height(5),
            work: Work(work),
        }
    }

    fn sent(out: &mut Outbox) -> Vec<(PeerId, &'static str)> {
        out.drain()
            .into_iter()
            .filter_map(|output| match output {
                Output::Send { peer, message } => Some((peer, message.name())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_header_sync_at_a_time_with_the_peer_that_has_more_work() {
        let chain = chain();
        let mut sync = Sync::new(&NodeConfig::new(1));
        let mut out = Outbox::default();
        let ours = chain.tip().chain_work.0;
        sync.peer_ready(1, tip_with_work(ours));
        sync.peer_ready(2, tip_with_work(ours + 1));
        sync.peer_ready(3, tip_with_work(ours + 2));
        for _ in [1, 2, 3] {
            sync.start_header_sync(&chain, Timestamp(0), &mut out);
        }
        // Peer 3 claims the most, but claims do not rank: the earliest candidate is asked.
        assert_eq!(sent(&mut out), vec![(2, "get-headers")]);
        // The sync ends with the peer; the next one may start.
        sync.peer_gone(2);
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![(3, "get-headers")]);
    }

    #[test]
    fn unasked_headers_and_late_requests_are_named() {
        let chain = chain();
        let mut config = NodeConfig::new(1);
        config.headers_timeout_ms = 10;
        let mut sync = Sync::new(&config);
        let mut out = Outbox::default();
        sync.peer_ready(1, tip_with_work(chain.tip().chain_work.0));
        assert_eq!(
            sync.headers_received(1, Vec::new(), &chain, Timestamp(0), &mut out, |_| {}),
            Err(Refusal::Unasked(Unasked::Headers))
        );
        sync.request_headers(1, None, &chain, Timestamp(0), &mut out);
        assert_eq!(sync.overdue(1, Timestamp(10), false), Overdue::Nothing);
        // A peer we read more slowly gets a fresh clock instead.
        assert_eq!(sync.overdue(1, Timestamp(11), true), Overdue::Nothing);
        assert_eq!(sync.next_deadline(), Some(Timestamp(22)));
        assert_eq!(sync.overdue(1, Timestamp(21), false), Overdue::Nothing);
        assert_eq!(sync.overdue(1, Timestamp(22), false), Overdue::Headers);
        assert!(!sync.has_nothing_from(1, &chain));
        // An empty answer from a peer that claims no more than we have is taken, and the
        // peer is idle again.
        assert_eq!(
            sync.headers_received(1, Vec::new(), &chain, Timestamp(12), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
    }

    #[test]
    fn the_next_timeout_is_the_earliest_request_of_any_peer() {
        let chain = chain();
        let config = NodeConfig::new(1);
        let mut sync = Sync::new(&config);
        let mut out = Outbox::default();
        let agrees = |sync: &Sync| {
            assert_eq!(sync.next_deadline(), sync.next_deadline_by_walking());
            sync.next_deadline()
        };
        sync.peer_ready(1, tip_with_work(u128::MAX));
        sync.peer_ready(2, tip_with_work(u128::MAX));
        assert_eq!(agrees(&sync), None);
        let mut parent = ChainSpec::dev().genesis_block().header;
        let mut hashes = Vec::new();
        for height in 1..=40 {
            let mut header = parent;
            header.prev_hash = parent.hash();
            header.height = Height(height);
            parent = header;
            let wanted = Wanted {
                header,
                chain_work: Work(u128::from(height)),
            };
            assert!(sync.download.want(header.hash(), wanted, 1, Timestamp(0)));
            hashes.push(header.hash());
        }
        sync.schedule(&chain, Timestamp(100), &mut out, |_, _| true);
        agrees(&sync);
        sync.request_headers(2, None, &chain, Timestamp(200), &mut out);
        agrees(&sync);
        assert_eq!(sync.block_arrived(1, &hashes[0]), Some(true));
        agrees(&sync);
        let from_two: Vec<BlockHash> = sync.peers[&2].in_flight.keys().copied().collect();
        sync.not_found(2, &from_two);
        agrees(&sync);
        let late = Timestamp(100 + config.block_request_timeout_ms + 1);
        assert_eq!(sync.overdue(1, late, true), Overdue::Nothing);
        agrees(&sync);
        let late = Timestamp(late.0 + config.block_request_timeout_ms + 1);
        assert!(matches!(sync.overdue(1, late, false), Overdue::Blocks(_)));
        sync.schedule(&chain, late, &mut out, |_, _| true);
        agrees(&sync);
        sync.peer_gone(1);
        agrees(&sync);
        sync.peer_gone(2);
        // No request is left. Peer 1's blocks went with it, but those being fetched from
        // peer 2 then stayed; they are still wanted, so progress is still reported.
        assert_eq!(agrees(&sync), Some(Timestamp(config.progress_interval_ms)),);
    }

    /// A spec whose headers take a few hundred hashes to mine, and `count` headers in a row
    /// on its genesis.
    fn mined_headers(count: u64) -> (ChainSpec, Vec<Header>) {
        let mut spec = ChainSpec::dev();
        spec.difficulty_bits = powchain_chain::DifficultyBits::new(8).unwrap();
        let mut parent = spec.genesis_block().header;
        let mut headers = Vec::new();
        for height in 1..=count {
            let mut header = parent;
            header.prev_hash = parent.hash();
            header.height = Height(height);
            header.time = parent.time.saturating_add_ms(2_000);
            header.nonce = 0;
            while !header.meets_own_target() {
                header.nonce += 1;
            }
            headers.push(header);
            parent = header;
        }
        (spec, headers)
    }

    /// The liar of issue 16: it claims a huge tip, takes the header-sync slot and answers
    /// "nothing more". That answer is refused (the dispatcher bans for it), the slot goes
    /// to the next candidate, and once a peer's headers have shown work it ranks above any
    /// bare claim.
    #[test]
    fn a_claim_its_headers_do_not_back_loses_the_slot_and_shown_work_ranks_first() {
        let (spec, headers) = mined_headers(3);
        let chain = Chain::open(spec, MemStore::new(), Default::default()).unwrap();
        let mut sync = Sync::new(&NodeConfig::new(1));
        let mut out = Outbox::default();
        let ours = chain.tip().chain_work;
        let per_header = headers[0].target.work().0;
        sync.peer_ready(1, tip_with_work(u128::MAX));
        sync.peer_ready(2, tip_with_work(ours.0 + 3 * per_header));
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![(1, "get-headers")]);
        assert_eq!(
            sync.headers_received(1, Vec::new(), &chain, Timestamp(1), &mut out, |_| {}),
            Err(Refusal::Headers(HeaderFault::UnbackedClaim {
                claimed: Work(u128::MAX),
                shown: Work(0),
            }))
        );
        sync.peer_gone(1);
        sync.start_header_sync(&chain, Timestamp(1), &mut out);
        assert_eq!(sent(&mut out), vec![(2, "get-headers")]);
        // Peer 2 backs its claim.
        assert_eq!(
            sync.headers_received(2, headers, &chain, Timestamp(2), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
        assert_eq!(sync.queue_len(), 3);
        // A new liar connects before peer 2 claims more: peer 2's shown work ranks it first.
        sync.peer_ready(3, tip_with_work(u128::MAX));
        sync.set_tip(2, tip_with_work(u128::MAX - 1));
        sync.start_header_sync(&chain, Timestamp(3), &mut out);
        assert_eq!(sent(&mut out), vec![(2, "get-headers")]);
    }

    /// A peer is not asked again and again: not after a whole answer for the same claimed
    /// tip (it would answer the same; here its chain moved to a heavier tip meanwhile, so
    /// the tip it claimed is not among its headers), and not while its share of the queue
    /// is full. Either would be a request loop at the speed of the link, which its own
    /// headers budget would punish.
    #[test]
    fn a_peer_is_not_asked_again_for_what_it_answered() {
        let (spec, headers) = mined_headers(3);
        let chain = Chain::open(spec, MemStore::new(), Default::default()).unwrap();
        let mut sync = Sync::new(&NodeConfig::new(1));
        let mut out = Outbox::default();
        let per_header = headers[0].target.work().0;
        let ours = chain.tip().chain_work.0;
        sync.peer_ready(1, tip_with_work(ours + 2 * per_header));
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![(1, "get-headers")]);
        assert_eq!(
            sync.headers_received(1, headers.clone(), &chain, Timestamp(1), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
        sync.start_header_sync(&chain, Timestamp(2), &mut out);
        assert_eq!(
            sent(&mut out),
            vec![],
            "the same claim is not asked about again"
        );
        // A new claim makes it a candidate again.
        sync.set_tip(1, tip_with_work(u128::MAX));
        sync.start_header_sync(&chain, Timestamp(3), &mut out);
        assert_eq!(sent(&mut out), vec![(1, "get-headers")]);

        // A peer whose share of the queue is full waits until it drains.
        let mut config = NodeConfig::new(1);
        config.download_queue_per_peer_max = 2;
        let mut sync = Sync::new(&config);
        sync.peer_ready(2, tip_with_work(u128::MAX));
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![(2, "get-headers")]);
        let first = headers[0].hash();
        assert_eq!(
            sync.headers_received(2, headers, &chain, Timestamp(1), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
        sync.start_header_sync(&chain, Timestamp(2), &mut out);
        assert_eq!(sent(&mut out), vec![], "its share is full");
        // A block leaves the queue: there is room, and the peer is asked for more.
        sync.download.remove(&first);
        sync.queue_drained(&chain, Timestamp(3), &mut out);
        assert_eq!(sent(&mut out), vec![(2, "get-headers")]);
    }

    /// An honest peer's answer that is cut short by the queue's bound, or that says there
    /// is more (a full message), is never taken for a broken claim.
    #[test]
    fn an_answer_the_queue_cut_short_is_not_a_broken_claim() {
        let (spec, headers) = mined_headers(3);
        let chain = Chain::open(spec, MemStore::new(), Default::default()).unwrap();
        let mut config = NodeConfig::new(1);
        config.download_queue_per_peer_max = 2;
        let mut sync = Sync::new(&config);
        let mut out = Outbox::default();
        sync.peer_ready(1, tip_with_work(u128::MAX));
        sync.request_headers(1, None, &chain, Timestamp(0), &mut out);
        assert_eq!(
            sync.headers_received(1, headers, &chain, Timestamp(1), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
        assert_eq!(sync.queue_len(), 2);
    }

    /// Headers on a queued parent are held to the target the rules give them, as headers on
    /// a block in the tree are: before, only "no easier than the easiest" was asked of them,
    /// so after one real header a peer could queue thousands at the easiest target.
    #[test]
    fn a_header_on_a_queued_parent_needs_the_target_the_rules_give_it() {
        let mut spec = ChainSpec::dev();
        spec.difficulty_bits = powchain_chain::DifficultyBits::new(10).unwrap();
        if let Some(rule) = &mut spec.retarget {
            rule.easiest = powchain_chain::DifficultyBits::new(2).unwrap();
        }
        let chain = Chain::open(spec.clone(), MemStore::new(), Default::default()).unwrap();
        let mine = |mut header: Header| {
            header.nonce = 0;
            while !header.meets_own_target() {
                header.nonce += 1;
            }
            header
        };
        let genesis = spec.genesis_block().header;
        let mut first = genesis;
        first.prev_hash = genesis.hash();
        first.height = Height(1);
        first.time = genesis.time.saturating_add_ms(2_000);
        let first = mine(first);
        let mut cheap = first;
        cheap.prev_hash = first.hash();
        cheap.height = Height(2);
        cheap.time = first.time.saturating_add_ms(2_000);
        cheap.target = spec.retarget.unwrap().easiest.target();
        let cheap = mine(cheap);
        assert!(cheap.target > first.target, "the test's header is cheaper");

        let mut sync = Sync::new(&NodeConfig::new(1));
        let mut out = Outbox::default();
        sync.peer_ready(1, tip_with_work(chain.tip().chain_work.0));
        sync.request_headers(1, None, &chain, Timestamp(0), &mut out);
        assert_eq!(
            sync.headers_received(
                1,
                vec![first, cheap],
                &chain,
                Timestamp(1),
                &mut out,
                |_| {}
            ),
            Err(Refusal::Headers(HeaderFault::WrongTarget(cheap.hash())))
        );
        // The honest continuation, at the parent's own target, is taken.
        let mut honest = cheap;
        honest.target = first.target;
        let honest = mine(honest);
        sync.request_headers(1, None, &chain, Timestamp(2), &mut out);
        assert_eq!(
            sync.headers_received(
                1,
                vec![first, honest],
                &chain,
                Timestamp(3),
                &mut out,
                |_| {}
            ),
            Ok(HeadersTaken::Queued)
        );
        assert_eq!(sync.queue_len(), 2);
    }

    /// 2,001 headers from [`mined_headers`], and sync on their genesis with a minimum chain
    /// work of `minimum_headers` of them and a stage of 2,000; the work of one header.
    fn with_minimum_work(minimum_headers: u128) -> (Chain<MemStore>, Vec<Header>, Sync, u128) {
        let (spec, headers) = mined_headers(2_001);
        let chain = Chain::open(spec, MemStore::new(), Default::default()).unwrap();
        let per_header = headers[0].target.work().0;
        let genesis = chain.tip().chain_work.0;
        let mut config = NodeConfig::new(1);
        config.minimum_chain_work = Work(genesis + minimum_headers * per_header);
        config.staged_headers_per_peer_max = 2_000;
        (chain, headers, Sync::new(&config), per_header)
    }

    fn tip_of(headers: &[Header], chain: &Chain<MemStore>, per_header: u128) -> TipSummary {
        let last = headers[headers.len() - 1];
        TipSummary {
            hash: last.hash(),
            height: last.height,
            work: Work(chain.tip().chain_work.0 + headers.len() as u128 * per_header),
        }
    }

    /// A peer whose claimed tip is below the threshold (here the minimum chain work) is
    /// not asked for headers: its blocks would never be queued, even if its headers backed
    /// the claim. One that claims enough is.
    #[test]
    fn a_claim_below_the_threshold_is_not_asked_about() {
        let (chain, headers, mut sync, per_header) = with_minimum_work(5);
        let mut out = Outbox::default();
        sync.peer_ready(1, tip_of(&headers[..4], &chain, per_header));
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![]);
        sync.set_tip(1, tip_of(&headers[..5], &chain, per_header));
        sync.start_header_sync(&chain, Timestamp(1), &mut out);
        assert_eq!(sent(&mut out), vec![(1, "get-headers")]);
    }

    /// Issue 16's fork from where the chain was cheap: a branch that does not come near our
    /// work (here: below the minimum chain work) is checked but never downloaded. It is held
    /// across answers (each header's parent may be staged, and its target is checked through
    /// the stage); the next request starts at its tip, and an announcement on that tip that
    /// carries the branch past the threshold queues all of it, oldest first. A
    /// peer whose branch would need more than its stage holds is not followed: the stage is
    /// dropped and the peer is not asked for headers again, whatever it claims next.
    #[test]
    fn a_light_branch_is_staged_not_downloaded_and_a_full_stage_ends_it() {
        let (chain, headers, mut sync, per_header) = with_minimum_work(2_001);
        let mut out = Outbox::default();
        sync.peer_ready(1, tip_of(&headers, &chain, per_header));
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![(1, "get-headers")]);
        let first = headers[..HEADERS_PER_MESSAGE_MAX].to_vec();
        assert_eq!(
            sync.headers_received(1, first.clone(), &chain, Timestamp(1), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
        assert_eq!(sync.queue_len(), 0, "below the threshold nothing is queued");
        assert_eq!(sync.peers[&1].staged.len(), HEADERS_PER_MESSAGE_MAX);
        match out.drain().as_slice() {
            [
                Output::Send {
                    message: Message::GetHeaders { locator },
                    ..
                },
            ] => {
                assert_eq!(
                    locator.first(),
                    Some(&headers[1_999].hash()),
                    "from the stage"
                );
            }
            other => panic!("{other:?}"),
        }
        sync.schedule(&chain, Timestamp(1), &mut out, |_, _| true);
        assert_eq!(sent(&mut out), vec![], "no block of it is asked for");
        // Before it answers, it announces the header that carries the branch.
        assert_eq!(
            sync.announced(1, headers[2_000], &chain, Timestamp(3), &mut out),
            Ok(true)
        );
        assert_eq!((sync.queue_len(), sync.peers[&1].staged.len()), (2_001, 0));
        sync.schedule(&chain, Timestamp(4), &mut out, |_, _| true);
        assert_eq!(sent(&mut out), vec![(1, "get-blocks")]);
        assert!(sync.peers[&1].in_flight.contains_key(&headers[0].hash()));

        // Another peer with the same branch, but a stage one header smaller.
        let (chain, headers, mut sync, per_header) = with_minimum_work(2_001);
        sync.limits.staged_headers_per_peer_max = 1_999;
        sync.peer_ready(2, tip_of(&headers, &chain, per_header));
        sync.start_header_sync(&chain, Timestamp(0), &mut out);
        assert_eq!(sent(&mut out), vec![(2, "get-headers")]);
        assert_eq!(
            sync.headers_received(2, first, &chain, Timestamp(1), &mut out, |_| {}),
            Ok(HeadersTaken::Queued)
        );
        assert_eq!((sync.queue_len(), sync.peers[&2].staged.len()), (0, 0));
        assert_eq!(sent(&mut out), vec![], "not asked to go on");
        sync.set_tip(2, tip_with_work(u128::MAX));
        sync.start_header_sync(&chain, Timestamp(2), &mut out);
        assert_eq!(sent(&mut out), vec![], "nor asked again for a new claim");
    }

    #[test]
    fn an_unasked_block_is_refused_and_a_late_one_is_welcome() {
        let mut sync = Sync::new(&NodeConfig::new(1));
        sync.peer_ready(1, tip_with_work(1));
        let hash = ChainSpec::dev().genesis_hash();
        assert_eq!(sync.block_arrived(1, &hash), Some(false));
        assert_eq!(sync.block_arrived(9, &hash), None);
        // Asked and then given up on (not found): accepted if it comes after all.
        sync.peers
            .get_mut(&1)
            .unwrap()
            .in_flight
            .insert(hash, Timestamp(0));
        assert!(sync.not_found(1, &[hash]));
        assert_eq!(sync.block_arrived(1, &hash), Some(true));
    }
}
