//! The connections manager: who is connected, who is being dialled, who is refused.
//!
//! It owns each connection's record from the moment the driver reports it until it closes:
//! the address, the direction, the hello once it came (the peer is *ready* from then on),
//! the flood window, the frame bytes, and whether it is a feeler. It keeps the dials in
//! progress, the one feeler being dialled, and the bans.
//!
//! - **A peer is ready exactly when its hello has been accepted**; the other managers only
//!   know ready peers.
//! - **Inbound connections never exceed `inbound_max`, and a banned key is refused at once.**
//!   When the slots are full, the dispatcher may evict an inbound peer for the newcomer
//!   (`super::eviction`).
//! - **An address is dialled at most once at a time** (a dial that never reports back is
//!   forgotten after three handshake timeouts).

use std::collections::{BTreeMap, BTreeSet};

use powchain_chain::Timestamp;
use powchain_chain::hashing::{HashMap, HashSet};

use crate::message::Hello;
use crate::netgroup::net_group;
use crate::node::config::NodeConfig;
use crate::node::outbox::{Instants, Outbox, Output, earliest};
use crate::peer::{Direction, DisconnectReason, PeerId, PeerInfo};

/// One open connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub info: PeerInfo,
    pub connected_at: Timestamp,
    /// Its hello, once received: the peer is ready from then on.
    pub hello: Option<Hello>,
    /// An outbound connection opened to test its address and compare tips, closed once it
    /// has nothing more to give; it does not count toward the outbound target.
    pub feeler: bool,
    /// What it may still send before it counts as a flood.
    budget: MessageBudget,
    /// Since when it has sent faster than its budget, without letting it refill to half.
    over_budget_since: Option<Timestamp>,
    /// The headers requests it may still send (each answer is costly).
    headers_budget: MessageBudget,
    /// The block bytes we may still send it, in KiB (while it pays back what it drew
    /// beyond them, its reading is paused).
    served_budget: MessageBudget,
    /// Frame bytes received from the peer and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// When it last gave us a block, and a transfer, we did not have (eviction keeps such
    /// peers).
    pub last_block_at: Option<Timestamp>,
    pub last_transfer_at: Option<Timestamp>,
}

impl Connection {
    fn new(info: PeerInfo, now: Timestamp, feeler: bool) -> Connection {
        Connection {
            info,
            connected_at: now,
            hello: None,
            feeler,
            budget: MessageBudget::full(now),
            over_budget_since: None,
            headers_budget: MessageBudget::full(now),
            served_budget: MessageBudget::full(now),
            bytes_in: 0,
            bytes_out: 0,
            last_block_at: None,
            last_transfer_at: None,
        }
    }

    /// Whether the handshake is done.
    pub fn is_ready(&self) -> bool {
        self.hello.is_some()
    }

    /// Counts a message against the peer's budget (`per_second_max` a second on average,
    /// `burst_seconds` of them at once): see [`Pace`].
    pub fn count_message(
        &mut self,
        now: Timestamp,
        per_second_max: u32,
        burst_seconds: u64,
        sustained_ms: u64,
    ) -> Pace {
        if self.budget.spend(now, per_second_max, burst_seconds) {
            if self.budget.at_least_half(per_second_max, burst_seconds) {
                self.over_budget_since = None;
            }
            return Pace::Within;
        }
        let since = *self.over_budget_since.get_or_insert(now);
        if now.ms_since(since) > sustained_ms {
            return Pace::Flood;
        }
        Pace::Over {
            resume_at: self.budget.refilled_at(now, per_second_max),
        }
    }

    /// Whether we are reading it more slowly at `now`: it went over its message budget,
    /// and the budget has not refilled to half since; or it drew more block bytes than its
    /// budget for them and is paused until that is paid back.
    pub fn is_paced(&self, now: Timestamp, per_second_max: u32, burst_seconds: u64) -> bool {
        let over_messages = self.over_budget_since.is_some()
            && !self
                .budget
                .refilled(now, per_second_max, burst_seconds)
                .at_least_half(per_second_max, burst_seconds);
        over_messages || self.served_budget.owes_at(now)
    }

    /// Charges `bytes` of blocks sent to it against its budget for them (`kib_per_second`,
    /// `burst_seconds` of them at once). Past the budget, returns the instant until which
    /// nothing more is read from it: what it drew beyond is paid back at the rate first.
    pub fn charge_served(
        &mut self,
        now: Timestamp,
        bytes: usize,
        kib_per_second: u32,
        burst_seconds: u64,
    ) -> Option<Timestamp> {
        let kib = (bytes as u64).div_ceil(1_024);
        self.served_budget
            .charge(now, kib, kib_per_second, burst_seconds)
    }

    /// Counts a headers request; false when the peer is over its budget for them.
    pub fn count_headers_request(
        &mut self,
        now: Timestamp,
        per_second_max: u32,
        burst_seconds: u64,
    ) -> bool {
        self.headers_budget
            .spend(now, per_second_max, burst_seconds)
    }

    /// The address it says it listens on, if any.
    pub fn listen(&self) -> Option<&str> {
        self.hello.as_ref().and_then(|h| h.listen.as_deref())
    }
}

/// How a peer's message rate stands after one more message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Within its budget.
    Within,
    /// Over it: the message is handled (it was read), but nothing more is read from the
    /// peer before `resume_at`, so what it sends waits in its own socket, not in our
    /// memory or our event loop's time. A backlog that built up while we were paused is
    /// read at the budget's rate, never punished.
    Over { resume_at: Timestamp },
    /// Over it without a break for longer than any backlog takes to drain: a flood.
    Flood,
}

/// A token bucket of messages, in thousandths of a message so that it refills by the
/// millisecond in whole numbers. A peer may send `per_second_max` messages a second on
/// average and `burst_seconds` of them at once: a backlog that built up while the node (or
/// the machine) was paused arrives as one burst and is not a flood; a peer that keeps
/// sending faster than the rate runs out.
#[derive(Clone, Copy, Debug)]
struct MessageBudget {
    /// Thousandths of a message left (more than the capacity means full: it starts so).
    milli: u64,
    last: Timestamp,
}

impl MessageBudget {
    fn full(now: Timestamp) -> MessageBudget {
        MessageBudget {
            milli: u64::MAX,
            last: now,
        }
    }

    fn spend(&mut self, now: Timestamp, per_second_max: u32, burst_seconds: u64) -> bool {
        *self = self.refilled(now, per_second_max, burst_seconds);
        match self.milli.checked_sub(1_000) {
            Some(after) => {
                self.milli = after;
                true
            }
            None => false,
        }
    }

    /// What a full bucket holds, in thousandths.
    fn capacity(per_second_max: u32, burst_seconds: u64) -> u64 {
        u64::from(per_second_max)
            .saturating_mul(burst_seconds.max(1))
            .saturating_mul(1_000)
    }

    /// The bucket as it stands at `now`, refilled at the rate up to its capacity.
    fn refilled(&self, now: Timestamp, per_second_max: u32, burst_seconds: u64) -> MessageBudget {
        let refill = now
            .ms_since(self.last)
            .saturating_mul(u64::from(per_second_max));
        MessageBudget {
            milli: self
                .milli
                .saturating_add(refill)
                .min(MessageBudget::capacity(per_second_max, burst_seconds)),
            last: self.last.max(now),
        }
    }

    /// Whether a debt is being paid back at `now`: the refill starts later.
    fn owes_at(&self, now: Timestamp) -> bool {
        self.last > now
    }

    /// Spends `units` at once. When fewer are left, the bucket is emptied and its refill
    /// starts only once the rest is paid back at the rate: returns that instant.
    fn charge(
        &mut self,
        now: Timestamp,
        units: u64,
        per_second_max: u32,
        burst_seconds: u64,
    ) -> Option<Timestamp> {
        *self = self.refilled(now, per_second_max, burst_seconds);
        let cost = units.saturating_mul(1_000);
        if let Some(left) = self.milli.checked_sub(cost) {
            self.milli = left;
            return None;
        }
        let rate = u64::from(per_second_max).max(1);
        let debt_ms = (cost - self.milli).div_ceil(rate);
        self.milli = 0;
        // After any debt already owed (`refilled` keeps a future refill start).
        self.last = self.last.max(now).saturating_add_ms(debt_ms);
        Some(self.last)
    }

    /// Whether the bucket holds at least half its capacity.
    fn at_least_half(&self, per_second_max: u32, burst_seconds: u64) -> bool {
        self.milli >= MessageBudget::capacity(per_second_max, burst_seconds) / 2
    }

    /// When the bucket, empty at `now`, holds a tenth of a second of the rate again: reading
    /// resumes in steps of that, not one message at a time.
    fn refilled_at(&self, now: Timestamp, per_second_max: u32) -> Timestamp {
        let rate = u64::from(per_second_max).max(1);
        let wanted = rate.saturating_mul(100).max(1_000);
        let wait_ms = wanted.saturating_sub(self.milli).div_ceil(rate);
        now.saturating_add_ms(wait_ms)
    }
}

/// The connections, the dials and the bans.
#[derive(Debug)]
pub(crate) struct Connections {
    peers: BTreeMap<PeerId, Connection>,
    /// Addresses being dialled, and since when.
    dialing: HashMap<String, Timestamp>,
    /// The address being dialled as a feeler, and when the last feeler was opened.
    feeler_dialing: Option<String>,
    last_feeler: Timestamp,
    bans: HashMap<String, Timestamp>,
    /// The open feelers (at most a few), so looking at them walks nothing else.
    feelers: BTreeSet<PeerId>,
    /// When each connection not yet ready opened, and each dial started: the next
    /// handshake or dial timeout in one read.
    handshakes: Instants,
    dials: Instants,
    /// Counts kept as connections come, become ready and go, so the questions the node
    /// asks after every input (`Node::poll_timeout`) cost nothing.
    counts: Counts,
    inbound_max: usize,
    ban_ms: u64,
    bans_max: usize,
}

impl Connections {
    pub fn new(config: &NodeConfig) -> Connections {
        Connections {
            peers: BTreeMap::new(),
            dialing: HashMap::default(),
            feeler_dialing: None,
            last_feeler: Timestamp(0),
            bans: HashMap::default(),
            feelers: BTreeSet::new(),
            handshakes: Instants::default(),
            dials: Instants::default(),
            counts: Counts::default(),
            inbound_max: config.inbound_max,
            ban_ms: config.ban_ms,
            bans_max: config.bans_max,
        }
    }

    /// A connection opened: recorded, and the reason to refuse it if its key is banned or
    /// the inbound slots are full. A dial that succeeded stops being a dial (and was the
    /// feeler, if it was dialled as one).
    pub fn open(
        &mut self,
        peer: PeerId,
        info: PeerInfo,
        now: Timestamp,
    ) -> Option<DisconnectReason> {
        let mut feeler = false;
        if info.direction == Direction::Outbound {
            if let Some(since) = self.dialing.remove(&info.address) {
                self.dials.remove(since);
            }
            if self.feeler_dialing.as_deref() == Some(info.address.as_str()) {
                self.feeler_dialing = None;
                feeler = true;
            }
        }
        let banned = self.is_banned(&info.ban_key, now);
        let inbound = self
            .peers
            .values()
            .filter(|p| p.info.direction == Direction::Inbound)
            .count();
        let direction = info.direction;
        let connection = Connection::new(info, now, feeler);
        self.counts.add(&connection, 1);
        self.handshakes.add(connection.connected_at);
        if feeler {
            self.feelers.insert(peer);
        }
        if let Some(replaced) = self.peers.insert(peer, connection) {
            self.counts.add(&replaced, -1);
            if !replaced.is_ready() {
                self.handshakes.remove(replaced.connected_at);
            }
            if !feeler {
                self.feelers.remove(&peer);
            }
        }
        if banned {
            return Some(DisconnectReason::Banned);
        }
        if direction == Direction::Inbound && inbound >= self.inbound_max {
            return Some(DisconnectReason::TooManyInbound);
        }
        None
    }

    /// Dialling `address` failed.
    pub fn dial_failed(&mut self, address: &str) {
        if let Some(since) = self.dialing.remove(address) {
            self.dials.remove(since);
        }
        if self.feeler_dialing.as_deref() == Some(address) {
            self.feeler_dialing = None;
        }
    }

    /// Dials `address` unless a dial to it is under way.
    pub fn dial(&mut self, address: &str, now: Timestamp, out: &mut Outbox) {
        if self.dialing.contains_key(address) {
            return;
        }
        self.dialing.insert(address.to_owned(), now);
        self.dials.add(now);
        out.push(Output::Connect(address.to_owned()));
    }

    /// Dials `address` as this node's one feeler.
    pub fn dial_feeler(&mut self, address: &str, now: Timestamp, out: &mut Outbox) {
        self.feeler_dialing = Some(address.to_owned());
        self.dial(address, now, out);
    }

    /// Forgets dials that never reported back within `timeout_ms`.
    pub fn expire_dials(&mut self, now: Timestamp, timeout_ms: u64) {
        let dials = &mut self.dials;
        self.dialing.retain(|_, since| {
            let live = now.ms_since(*since) <= timeout_ms;
            if !live {
                dials.remove(*since);
            }
            live
        });
        if let Some(address) = &self.feeler_dialing
            && !self.dialing.contains_key(address)
        {
            self.feeler_dialing = None;
        }
    }

    /// When the next handshake or dial runs out of time: a connection that has not said
    /// hello is dropped once more than `handshake_timeout_ms` have passed, a dial that never
    /// reported back is forgotten after `dial_timeout_ms`.
    pub fn next_deadline(
        &self,
        handshake_timeout_ms: u64,
        dial_timeout_ms: u64,
    ) -> Option<Timestamp> {
        let handshakes = self
            .handshakes
            .earliest()
            .map(|at| at.saturating_add_ms(handshake_timeout_ms + 1));
        let dials = self
            .dials
            .earliest()
            .map(|since| since.saturating_add_ms(dial_timeout_ms + 1));
        earliest(handshakes, dials)
    }

    /// [`Connections::next_deadline`] the long way, from every connection and dial.
    #[cfg(test)]
    fn next_deadline_by_walking(
        &self,
        handshake_timeout_ms: u64,
        dial_timeout_ms: u64,
    ) -> Option<Timestamp> {
        let handshakes = self
            .peers
            .values()
            .filter(|p| !p.is_ready())
            .map(|p| p.connected_at.saturating_add_ms(handshake_timeout_ms + 1));
        let dials = self
            .dialing
            .values()
            .map(|since| since.saturating_add_ms(dial_timeout_ms + 1));
        handshakes.chain(dials).min()
    }

    /// Takes a connection out.
    pub fn remove(&mut self, peer: PeerId) -> Option<Connection> {
        let connection = self.peers.remove(&peer)?;
        self.counts.add(&connection, -1);
        self.feelers.remove(&peer);
        if !connection.is_ready() {
            self.handshakes.remove(connection.connected_at);
        }
        Some(connection)
    }

    /// `peer`'s hello was accepted: it is ready.
    pub fn set_ready(&mut self, peer: PeerId, hello: Hello) {
        if let Some(connection) = self.peers.get_mut(&peer) {
            self.counts.add(connection, -1);
            if !connection.is_ready() {
                self.handshakes.remove(connection.connected_at);
            }
            connection.hello = Some(hello);
            self.counts.add(connection, 1);
        }
    }

    /// Ready connections.
    pub fn ready_count(&self) -> usize {
        self.counts.ready
    }

    /// Open feeler connections.
    pub fn feeler_count(&self) -> usize {
        self.counts.feelers
    }

    /// Refuses `key` for `ban_ms` (while fewer than `bans_max` are remembered).
    pub fn ban(&mut self, key: &str, now: Timestamp) {
        if self.bans.len() >= self.bans_max {
            self.bans.retain(|_, until| *until > now);
        }
        if self.bans.len() < self.bans_max {
            self.bans
                .insert(key.to_owned(), now.saturating_add_ms(self.ban_ms));
        }
    }

    /// Whether connections with this ban key are refused at `now`.
    pub fn is_banned(&self, ban_key: &str, now: Timestamp) -> bool {
        self.bans.get(ban_key).is_some_and(|until| *until > now)
    }

    pub fn get(&self, peer: PeerId) -> Option<&Connection> {
        self.peers.get(&peer)
    }

    /// A connection to change what the counts do not cover (bytes, the flood window).
    pub fn get_mut(&mut self, peer: PeerId) -> Option<&mut Connection> {
        self.peers.get_mut(&peer)
    }

    /// Every connection, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (PeerId, &Connection)> {
        self.peers.iter().map(|(id, c)| (*id, c))
    }

    /// Every connection's id, in order.
    pub fn ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Whether `peer` is connected and ready.
    pub fn is_ready(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(Connection::is_ready)
    }

    /// Whether another connection already came from node `node_id`.
    pub fn has_node(&self, except: PeerId, node_id: u64) -> bool {
        self.peers.iter().any(|(id, other)| {
            *id != except && other.hello.as_ref().is_some_and(|h| h.node_id == node_id)
        })
    }

    /// The connection to `address` (as dialled, or as the peer says it listens).
    pub fn by_address(&self, address: &str) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(_, peer)| peer.info.address == address || peer.listen() == Some(address))
            .map(|(id, _)| *id)
    }

    /// Addresses connected to (as dialled, and as the peers say they listen) or dialling.
    pub fn addresses_in_use(&self) -> HashSet<&str> {
        self.peers
            .values()
            .flat_map(|p| [Some(p.info.address.as_str()), p.listen()])
            .flatten()
            .chain(self.dialing.keys().map(String::as_str))
            .collect()
    }

    /// The network groups of the outbound connections open or being dialled, feelers not
    /// counted.
    pub fn outbound_groups(&self) -> HashSet<String> {
        let open = self
            .peers
            .values()
            .filter(|peer| peer.info.direction == Direction::Outbound && !peer.feeler)
            .map(|peer| net_group(&peer.info.address));
        let dialing = self
            .dialing
            .keys()
            .filter(|address| self.feeler_dialing.as_ref() != Some(*address))
            .map(|address| net_group(address));
        open.chain(dialing).collect()
    }

    /// Outbound connections open or being dialled, feelers not counted.
    pub fn outbound_count(&self) -> usize {
        let open = self.counts.outbound;
        let feeler_dialing = self
            .feeler_dialing
            .as_ref()
            .is_some_and(|address| self.dialing.contains_key(address));
        open + self.dialing.len() - usize::from(feeler_dialing)
    }

    /// Whether a feeler is open or being dialled.
    pub fn feeler_open(&self) -> bool {
        self.feeler_dialing.is_some() || self.counts.feelers > 0
    }

    /// When the last feeler was opened; [`Connections::feeler_opened`] sets it.
    pub fn last_feeler(&self) -> Timestamp {
        self.last_feeler
    }

    pub fn feeler_opened(&mut self, now: Timestamp) {
        self.last_feeler = now;
    }

    /// Ready feelers open for at least `linger_ms` of which `done` says they have nothing
    /// more to give.
    pub fn finished_feelers(
        &self,
        now: Timestamp,
        linger_ms: u64,
        done: impl Fn(PeerId) -> bool,
    ) -> Vec<PeerId> {
        self.feelers()
            .filter(|(id, p)| {
                p.is_ready() && now.ms_since(p.connected_at) >= linger_ms && done(*id)
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// The open feeler connections.
    pub fn feelers(&self) -> impl Iterator<Item = (PeerId, &Connection)> {
        self.feelers
            .iter()
            .filter_map(|id| self.peers.get(id).map(|c| (*id, c)))
    }
}

/// How many connections are of each kind.
#[derive(Debug, Default)]
struct Counts {
    /// Outbound, feelers not counted.
    outbound: usize,
    feelers: usize,
    ready: usize,
    unready: usize,
}

impl Counts {
    /// Counts `connection` in (`sign` 1) or out (-1).
    fn add(&mut self, connection: &Connection, sign: isize) {
        let step = |count: &mut usize| *count = count.saturating_add_signed(sign);
        if connection.info.direction == Direction::Outbound && !connection.feeler {
            step(&mut self.outbound);
        }
        if connection.feeler {
            step(&mut self.feelers);
        }
        if connection.is_ready() {
            step(&mut self.ready);
        } else {
            step(&mut self.unready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(address: &str, direction: Direction) -> PeerInfo {
        PeerInfo {
            address: address.into(),
            ban_key: address.into(),
            direction,
        }
    }

    fn connections(inbound_max: usize) -> Connections {
        let mut config = NodeConfig::new(1);
        config.inbound_max = inbound_max;
        config.ban_ms = 1_000;
        config.bans_max = 2;
        Connections::new(&config)
    }

    #[test]
    fn inbound_slots_are_capped_and_outbound_is_not() {
        let mut connections = connections(1);
        let now = Timestamp(0);
        assert_eq!(
            connections.open(1, info("a", Direction::Inbound), now),
            None
        );
        assert_eq!(
            connections.open(2, info("b", Direction::Inbound), now),
            Some(DisconnectReason::TooManyInbound)
        );
        assert_eq!(
            connections.open(3, info("c", Direction::Outbound), now),
            None
        );
    }

    #[test]
    fn a_ban_refuses_its_key_until_it_ends() {
        let mut connections = connections(8);
        connections.ban("a", Timestamp(0));
        assert_eq!(
            connections.open(1, info("a", Direction::Inbound), Timestamp(999)),
            Some(DisconnectReason::Banned)
        );
        assert!(!connections.is_banned("a", Timestamp(1_000)));
        // At the bound, expired bans make room; live ones are kept.
        connections.ban("b", Timestamp(0));
        connections.ban("c", Timestamp(2_000));
        assert!(connections.is_banned("c", Timestamp(2_500)));
    }

    #[test]
    fn an_address_is_dialled_once_at_a_time() {
        let mut connections = connections(8);
        let mut out = Outbox::default();
        connections.dial("a", Timestamp(0), &mut out);
        connections.dial("a", Timestamp(1), &mut out);
        assert_eq!(out.drain(), vec![Output::Connect("a".into())]);
        assert_eq!(connections.outbound_count(), 1);
        connections.expire_dials(Timestamp(100), 50);
        assert_eq!(connections.outbound_count(), 0);
    }

    #[test]
    fn a_feeler_is_not_counted_as_an_outbound_slot() {
        let mut connections = connections(8);
        let mut out = Outbox::default();
        connections.dial_feeler("f", Timestamp(0), &mut out);
        assert!(connections.feeler_open());
        assert_eq!(connections.outbound_count(), 0);
        assert_eq!(
            connections.open(1, info("f", Direction::Outbound), Timestamp(1)),
            None
        );
        assert!(connections.get(1).unwrap().feeler);
        assert_eq!(connections.outbound_count(), 0);
        connections.remove(1);
        assert!(!connections.feeler_open());
    }

    #[test]
    fn the_next_handshake_or_dial_timeout_is_kept_as_connections_change() {
        let mut connections = connections(8);
        let mut out = Outbox::default();
        let agrees = |c: &Connections| {
            assert_eq!(c.next_deadline(10, 30), c.next_deadline_by_walking(10, 30));
            c.next_deadline(10, 30)
        };
        assert_eq!(agrees(&connections), None);
        connections.dial("x", Timestamp(5), &mut out);
        connections.dial("y", Timestamp(7), &mut out);
        assert_eq!(agrees(&connections), Some(Timestamp(36)));
        connections.open(1, info("a", Direction::Inbound), Timestamp(8));
        assert_eq!(agrees(&connections), Some(Timestamp(19)));
        connections.open(2, info("x", Direction::Outbound), Timestamp(9));
        agrees(&connections);
        let hello = Hello {
            version: crate::message::PROTOCOL_VERSION,
            genesis: powchain_chain::BlockHash::ZERO,
            node_id: 9,
            listen: None,
            tip: crate::message::TipSummary {
                hash: powchain_chain::BlockHash::ZERO,
                height: powchain_chain::Height(0),
                work: powchain_chain::Work(1),
            },
            agent: String::new(),
            number: None,
        };
        connections.set_ready(1, hello);
        assert_eq!(agrees(&connections), Some(Timestamp(20)));
        connections.remove(2);
        assert_eq!(agrees(&connections), Some(Timestamp(38)), "the dial to y");
        connections.dial_failed("y");
        assert_eq!(agrees(&connections), None);
        connections.dial("z", Timestamp(50), &mut out);
        connections.expire_dials(Timestamp(100), 30);
        assert_eq!(agrees(&connections), None);
    }

    #[test]
    fn blocks_drawn_past_their_budget_pause_reading_until_paid_back() {
        let mut connection = Connection::new(info("d", Direction::Inbound), Timestamp(0), false);
        // 100 KiB a second, one second of them at once.
        let mut charge =
            |at: u64, kib: usize| connection.charge_served(Timestamp(at), kib * 1_024, 100, 1);
        assert_eq!(charge(0, 100), None);
        // 50 KiB more: paid back over half a second, reading paused until then.
        assert_eq!(charge(0, 50), Some(Timestamp(500)));
        assert!(connection.is_paced(Timestamp(499), 10, 1));
        assert!(!connection.is_paced(Timestamp(500), 10, 1));
        // Then it refills at the rate: 10 KiB after another 100 ms, and no more.
        let mut charge =
            |at: u64, kib: usize| connection.charge_served(Timestamp(at), kib * 1_024, 100, 1);
        assert_eq!(charge(600, 10), None);
        assert_eq!(charge(600, 1), Some(Timestamp(610)));
        // Debts add up.
        assert_eq!(charge(600, 2), Some(Timestamp(630)));
    }

    #[test]
    fn a_burst_within_the_budget_passes_a_backlog_is_paced_and_a_sustained_flood_is_not() {
        let mut connection = Connection::new(info("a", Direction::Inbound), Timestamp(0), false);
        // 10 a second, 3 seconds of them at once, 5 s over it before it counts as a flood.
        let mut count = |at: u64| connection.count_message(Timestamp(at), 10, 3, 5_000);
        // A backlog of 30 passes at once.
        for _ in 0..30 {
            assert_eq!(count(0), Pace::Within);
        }
        // The 31st is handled, but reading waits a tenth of a second of the rate: one
        // message at 10 a second.
        assert_eq!(
            count(0),
            Pace::Over {
                resume_at: Timestamp(100)
            }
        );
        // It refills at the rate: one more every 100 ms.
        assert!(matches!(count(99), Pace::Over { .. }));
        assert_eq!(count(200), Pace::Within);
        // After a break, a peer that keeps to the rate is never paused.
        for step in 0..=100u64 {
            assert_eq!(count(2_000 + step * 100), Pace::Within);
        }
        // One that sends twice as fast is paused, again and again, and after 5 s of it
        // with no break it is a flood.
        let mut paces = Vec::new();
        for step in 1..=400u64 {
            paces.push(count(12_000 + step * 50));
        }
        let first_over = paces
            .iter()
            .position(|pace| matches!(pace, Pace::Over { .. }));
        let first_flood = paces.iter().position(|pace| *pace == Pace::Flood);
        let (Some(over), Some(flood)) = (first_over, first_flood) else {
            panic!("{paces:?}");
        };
        // 50 ms a message: a flood 5 s after it first went over, not before.
        assert!((100..=102).contains(&(flood - over)), "{over} {flood}");
        // A break long enough to refill half the bucket ends the count: over budget again
        // from 1.6 s on (twice the rate), it is no flood at 6 s, as it would be counted
        // from 0.
        let mut connection = Connection::new(info("b", Direction::Inbound), Timestamp(0), false);
        let mut count = |at: u64| connection.count_message(Timestamp(at), 10, 3, 5_000);
        for _ in 0..31 {
            count(0);
        }
        assert_eq!(count(1_600), Pace::Within, "refilled past half");
        let paces: Vec<Pace> = (0..=88u64).map(|step| count(1_600 + step * 50)).collect();
        assert!(paces.iter().any(|pace| matches!(pace, Pace::Over { .. })));
        assert!(!paces.contains(&Pace::Flood), "{paces:?}");
        // A peer that stopped sending is read at full speed again (and its requests time
        // out as anyone's) once its budget is half full.
        let mut connection = Connection::new(info("c", Direction::Inbound), Timestamp(0), false);
        for _ in 0..31 {
            connection.count_message(Timestamp(0), 10, 3, 5_000);
        }
        assert!(connection.is_paced(Timestamp(1_499), 10, 3));
        assert!(!connection.is_paced(Timestamp(1_500), 10, 3));
    }
}
