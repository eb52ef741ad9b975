//! The liveness manager: pings, their round trips, and peers that stopped answering.
//!
//! Every `ping_interval_ms` each ready peer is pinged; the pong also carries its tip (the
//! status poll, the seeds' periodic chain-length loop), which the dispatcher hands to sync.
//!
//! - **At most one ping per peer is outstanding**, and a peer that leaves it unanswered for
//!   `ping_timeout_ms` is disconnected (not banned), unless we are reading it more slowly
//!   (over its message budget): its pong is then behind what it sent before, and the
//!   timeout starts again.
//! - **A pong counts only if it carries the outstanding ping's nonce.**

use std::collections::BTreeMap;

use powchain_chain::Timestamp;

use crate::node::config::NodeConfig;
use crate::node::outbox::Instants;
use crate::peer::PeerId;

#[derive(Debug)]
struct Pings {
    /// The outstanding ping: nonce and when it was sent.
    outstanding: Option<(u64, Timestamp)>,
    last_ping: Timestamp,
    /// The last ping's round trip, in milliseconds.
    rtt_ms: Option<u64>,
}

/// What a peer's pings say at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Nothing to do.
    Fine,
    /// Time for the next ping.
    PingDue,
    /// The outstanding ping went unanswered too long.
    TimedOut,
}

/// When `pings` next needs the node: its outstanding ping times out, or the next is due.
fn deadline(pings: &Pings, interval_ms: u64, timeout_ms: u64) -> Timestamp {
    match pings.outstanding {
        Some((_, sent)) => sent.saturating_add_ms(timeout_ms + 1),
        None => pings.last_ping.saturating_add_ms(interval_ms),
    }
}

/// Pings per ready peer.
#[derive(Debug)]
pub(crate) struct Pinger {
    peers: BTreeMap<PeerId, Pings>,
    /// Every peer's deadline (see [`deadline`]), so the earliest is one lookup.
    deadlines: Instants,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
}

impl Pinger {
    pub fn new(config: &NodeConfig) -> Pinger {
        Pinger {
            peers: BTreeMap::new(),
            deadlines: Instants::default(),
            ping_interval_ms: config.ping_interval_ms,
            ping_timeout_ms: config.ping_timeout_ms,
        }
    }

    /// A peer became ready; its first ping is due one interval after it connected.
    pub fn peer_ready(&mut self, peer: PeerId, connected_at: Timestamp) {
        let pings = Pings {
            outstanding: None,
            last_ping: connected_at,
            rtt_ms: None,
        };
        self.deadlines.add(deadline(
            &pings,
            self.ping_interval_ms,
            self.ping_timeout_ms,
        ));
        if let Some(before) = self.peers.insert(peer, pings) {
            self.deadlines.remove(deadline(
                &before,
                self.ping_interval_ms,
                self.ping_timeout_ms,
            ));
        }
    }

    pub fn peer_gone(&mut self, peer: PeerId) {
        if let Some(pings) = self.peers.remove(&peer) {
            self.deadlines.remove(deadline(
                &pings,
                self.ping_interval_ms,
                self.ping_timeout_ms,
            ));
        }
    }

    /// Whether `peer` needs a ping or has timed out at `now`.
    pub fn check(&self, peer: PeerId, now: Timestamp) -> Liveness {
        let Some(pings) = self.peers.get(&peer) else {
            return Liveness::Fine;
        };
        match pings.outstanding {
            Some((_, sent)) if now.ms_since(sent) > self.ping_timeout_ms => Liveness::TimedOut,
            Some(_) => Liveness::Fine,
            None if now.ms_since(pings.last_ping) >= self.ping_interval_ms => Liveness::PingDue,
            None => Liveness::Fine,
        }
    }

    /// When the next ping is due or the next outstanding one times out.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.earliest()
    }

    /// A ping with `nonce` goes to `peer`.
    pub fn ping_sent(&mut self, peer: PeerId, nonce: u64, now: Timestamp) {
        let (interval_ms, timeout_ms) = (self.ping_interval_ms, self.ping_timeout_ms);
        if let Some(pings) = self.peers.get_mut(&peer) {
            self.deadlines
                .remove(deadline(pings, interval_ms, timeout_ms));
            pings.outstanding = Some((nonce, now));
            pings.last_ping = now;
            self.deadlines.add(deadline(pings, interval_ms, timeout_ms));
        }
    }

    /// `peer`'s outstanding ping gets a fresh timeout from `now` (we are reading it more
    /// slowly, so its pong waits behind what it sent before).
    pub fn restart_timeout(&mut self, peer: PeerId, now: Timestamp) {
        let (interval_ms, timeout_ms) = (self.ping_interval_ms, self.ping_timeout_ms);
        if let Some(pings) = self.peers.get_mut(&peer)
            && let Some((nonce, _)) = pings.outstanding
        {
            self.deadlines
                .remove(deadline(pings, interval_ms, timeout_ms));
            pings.outstanding = Some((nonce, now));
            self.deadlines.add(deadline(pings, interval_ms, timeout_ms));
        }
    }

    /// A pong from `peer`.
    pub fn pong(&mut self, peer: PeerId, nonce: u64, now: Timestamp) {
        let (interval_ms, timeout_ms) = (self.ping_interval_ms, self.ping_timeout_ms);
        if let Some(pings) = self.peers.get_mut(&peer)
            && let Some((sent_nonce, sent_at)) = pings.outstanding
            && sent_nonce == nonce
        {
            self.deadlines
                .remove(deadline(pings, interval_ms, timeout_ms));
            pings.outstanding = None;
            pings.rtt_ms = Some(now.ms_since(sent_at));
            self.deadlines.add(deadline(pings, interval_ms, timeout_ms));
        }
    }

    /// The last round trip to `peer`.
    pub fn rtt_ms(&self, peer: PeerId) -> Option<u64> {
        self.peers.get(&peer).and_then(|p| p.rtt_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinger() -> Pinger {
        let mut config = NodeConfig::new(1);
        config.ping_interval_ms = 100;
        config.ping_timeout_ms = 300;
        Pinger::new(&config)
    }

    #[test]
    fn a_ping_is_due_each_interval_and_one_at_a_time() {
        let mut pinger = pinger();
        pinger.peer_ready(1, Timestamp(0));
        assert_eq!(pinger.check(1, Timestamp(99)), Liveness::Fine);
        assert_eq!(pinger.check(1, Timestamp(100)), Liveness::PingDue);
        pinger.ping_sent(1, 7, Timestamp(100));
        assert_eq!(pinger.check(1, Timestamp(250)), Liveness::Fine);
        pinger.pong(1, 7, Timestamp(130));
        assert_eq!(pinger.rtt_ms(1), Some(30));
        assert_eq!(pinger.check(1, Timestamp(200)), Liveness::PingDue);
    }

    #[test]
    fn an_unanswered_ping_times_out_and_a_wrong_nonce_does_not_answer_it() {
        let mut pinger = pinger();
        pinger.peer_ready(1, Timestamp(0));
        pinger.ping_sent(1, 7, Timestamp(100));
        pinger.pong(1, 8, Timestamp(110));
        assert_eq!(pinger.rtt_ms(1), None);
        assert_eq!(pinger.check(1, Timestamp(400)), Liveness::Fine);
        assert_eq!(pinger.check(1, Timestamp(401)), Liveness::TimedOut);
    }

    #[test]
    fn the_next_deadline_is_the_next_ping_or_timeout() {
        let mut pinger = pinger();
        assert_eq!(pinger.next_deadline(), None);
        pinger.peer_ready(1, Timestamp(0));
        pinger.peer_ready(2, Timestamp(50));
        assert_eq!(pinger.next_deadline(), Some(Timestamp(100)));
        pinger.ping_sent(1, 7, Timestamp(100));
        // Peer 2's ping is due at 150; peer 1's times out after 400.
        assert_eq!(pinger.next_deadline(), Some(Timestamp(150)));
        assert_eq!(pinger.check(2, Timestamp(150)), Liveness::PingDue);
        pinger.ping_sent(2, 8, Timestamp(150));
        assert_eq!(pinger.next_deadline(), Some(Timestamp(401)));
        assert_eq!(pinger.check(1, Timestamp(401)), Liveness::TimedOut);
    }

    #[test]
    fn a_peer_not_ready_is_never_pinged() {
        let pinger = pinger();
        assert_eq!(pinger.check(9, Timestamp(1_000_000)), Liveness::Fine);
    }
}
