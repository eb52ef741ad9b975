//! Time passing: [`Node::poll_timeout`] says when the node next needs waking, from every
//! manager's deadlines; [`Node::tick`] then handles timeouts, the status poll, outbound
//! slots and feelers, gossip, template refresh and saving the address book, each asked of
//! its manager in a fixed order.

use powchain_chain::{Store, Timestamp};
use rand::RngExt;

use super::Node;
use super::liveness::Liveness;
use super::outbox::earliest;
use super::sync::Overdue;
use crate::message::Message;
use crate::netgroup::{is_public, net_group};
use crate::peer::{DisconnectReason, PeerId};

impl<S: Store> Node<S> {
    /// The next instant the node needs [`Node::tick`]: the earliest deadline any manager
    /// has (a handshake, ping, request or dial running out, a ping or gossip due, a stale
    /// template, a feeler to open or close, a dial candidate's backoff ending, the address
    /// book to save, sync progress to report). `None`: nothing will happen until an input
    /// arrives. An instant in the past means now. A node with nothing to do is not woken.
    ///
    /// Every deadline is gated on the state `tick` acts on, so a tick at the deadline
    /// changes what the next one is (waking does not spin).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let config = &self.config;
        let mut next = self
            .connections
            .next_deadline(config.handshake_timeout_ms, config.handshake_timeout_ms * 3);
        next = earliest(next, self.liveness.next_deadline());
        next = earliest(next, self.sync.next_deadline());
        next = earliest(next, self.mining.next_deadline());
        // Requests only go to ready peers and end with them: some ready peer is unasked.
        let can_ask = self.connections.ready_count() > self.addresses.requested_count();
        next = earliest(next, self.addresses.next_gossip(can_ask));
        if self.address_store.is_some() {
            next = earliest(next, self.addresses.next_save());
        }
        if self.connections.outbound_count() < config.outbound_target {
            let in_use = self.connections.addresses_in_use();
            let listen = config.listen.as_deref();
            next = earliest(
                next,
                self.addresses
                    .book
                    .next_dialable(|address| in_use.contains(address) || Some(address) == listen),
            );
        }
        earliest(next, self.next_feeler_deadline())
    }

    /// When a feeler is next closed (open for `handshake_timeout_ms` with nothing more to
    /// give) or opened (every `feeler_interval_ms` while the outbound slots are full).
    fn next_feeler_deadline(&self) -> Option<Timestamp> {
        let config = &self.config;
        let linger_ms = config.handshake_timeout_ms;
        let closing = (self.connections.feeler_count() > 0)
            .then(|| {
                self.connections
                    .feelers()
                    .filter(|(id, c)| c.is_ready() && self.sync.has_nothing_from(*id, &self.chain))
                    .map(|(_, c)| c.connected_at.saturating_add_ms(linger_ms))
                    .min()
            })
            .flatten();
        let opening = (config.feeler_interval_ms != 0
            && config.outbound_target != 0
            && !self.connections.feeler_open()
            && self.connections.outbound_count() >= config.outbound_target)
            .then(|| {
                self.connections
                    .last_feeler()
                    .saturating_add_ms(config.feeler_interval_ms)
            });
        earliest(closing, opening)
    }

    // ---- time ---------------------------------------------------------------------------

    /// Time passed: handshake and ping timeouts, the status poll, request timeouts,
    /// reconnections, gossip, feelers, template refresh, saving the address book.
    pub fn tick(&mut self, now: Timestamp) {
        let handshake_timeout_ms = self.config.handshake_timeout_ms;
        let (per_second, burst_seconds) = (
            self.config.messages_per_second_max,
            self.config.flood_burst_seconds,
        );
        let mut expired = Vec::new();
        let mut pings = Vec::new();
        let mut stale_requests = Vec::new();
        let mut restarted_pings = Vec::new();
        for (id, connection) in self.connections.iter() {
            if !connection.is_ready() {
                if now.ms_since(connection.connected_at) > handshake_timeout_ms {
                    expired.push((id, DisconnectReason::HandshakeTimeout));
                }
                continue;
            }
            // A peer we read more slowly has its answers behind what it sent before: its
            // clocks start again instead (the flood rule bounds for how long).
            let paced = connection.is_paced(now, per_second, burst_seconds);
            match self.liveness.check(id, now) {
                Liveness::TimedOut if paced => restarted_pings.push(id),
                Liveness::TimedOut => {
                    expired.push((id, DisconnectReason::PingTimeout));
                    continue;
                }
                Liveness::PingDue => pings.push(id),
                Liveness::Fine => {}
            }
            match self.sync.overdue(id, now, paced) {
                Overdue::Headers => expired.push((id, DisconnectReason::HeadersStalled)),
                Overdue::Blocks(late) => stale_requests.push((id, late)),
                Overdue::Nothing => {}
            }
        }
        for (peer, reason) in expired {
            self.disconnect(peer, reason, now);
        }
        for peer in restarted_pings {
            self.liveness.restart_timeout(peer, now);
        }
        for peer in pings {
            let nonce = self.rng.random();
            self.liveness.ping_sent(peer, nonce, now);
            self.out.send(peer, Message::Ping { nonce });
        }
        // A peer that let a block request time out is dropped (not banned: it may only be
        // slow); its blocks go to others, and it may come back later.
        for (peer, late) in stale_requests {
            self.sync.release(peer, &late);
            self.disconnect(peer, DisconnectReason::Stalled, now);
        }
        self.connections.expire_dials(now, handshake_timeout_ms * 3);
        if self.mining.refresh_due(now) {
            self.remine(now);
        }
        self.keep_outbound(now);
        self.keep_feeler(now);
        self.sync.expire_queue(now);
        self.schedule_downloads(now);
        self.sync.report_progress(&self.chain, now, &mut self.out);
        if self.addresses.save_due(now) {
            self.save_addresses(now);
        }
    }

    /// Closes a feeler that has nothing more to give, and opens the next one when it is time
    /// and the outbound slots are full (see the module docs).
    pub(super) fn keep_feeler(&mut self, now: Timestamp) {
        let linger_ms = self.config.handshake_timeout_ms;
        let done = self.connections.finished_feelers(now, linger_ms, |peer| {
            self.sync.has_nothing_from(peer, &self.chain)
        });
        for peer in done {
            self.disconnect(peer, DisconnectReason::FeelerDone, now);
        }
        let interval = self.config.feeler_interval_ms;
        if interval == 0
            || self.config.outbound_target == 0
            || self.connections.feeler_open()
            || now.ms_since(self.connections.last_feeler()) < interval
            || self.connections.outbound_count() < self.config.outbound_target
        {
            return;
        }
        self.connections.feeler_opened(now);
        let skip = self.connections.addresses_in_use();
        let listen = self.config.listen.as_deref();
        // Uniformly among the candidates, not best first: after a partition the addresses
        // across it are the ones that failed.
        let pick = self
            .addresses
            .book
            .random_candidate(now, &mut self.rng, |address| {
                skip.contains(address) || Some(address) == listen
            });
        if let Some(address) = pick {
            self.connections.dial_feeler(&address, now, &mut self.out);
        }
    }

    /// Dials known addresses until the outbound target is reached; now and then asks a
    /// random peer for addresses (gossip).
    pub(super) fn keep_outbound(&mut self, now: Timestamp) {
        let outbound = self.connections.outbound_count();
        if outbound < self.config.outbound_target {
            let in_use = self.connections.addresses_in_use();
            let listen = self.config.listen.as_deref();
            let candidates = self
                .addresses
                .book
                .candidates(now, &mut self.rng, |address| {
                    in_use.contains(address) || Some(address) == listen
                });
            // One per public network group (`crate::netgroup`); what the user gave is
            // dialled whatever its group.
            let mut groups = self.connections.outbound_groups();
            let book = &self.addresses.book;
            let mut room = self.config.outbound_target - outbound;
            for address in candidates {
                if room == 0 {
                    break;
                }
                if is_public(&address)
                    && !book.is_pinned(&address)
                    && !groups.insert(net_group(&address))
                {
                    continue;
                }
                self.connections.dial(&address, now, &mut self.out);
                room -= 1;
            }
        }
        let ready: Vec<PeerId> = self
            .connections
            .iter()
            .filter(|(id, c)| c.is_ready() && !self.addresses.is_requested(*id))
            .map(|(id, _)| id)
            .collect();
        self.addresses
            .gossip(&ready, now, &mut self.rng, &mut self.out);
    }
}
