//! The end of a run: mining stops, the network settles (with a tie-breaking block when
//! tips stay split), and every node's events are recorded into the metrics.

use super::*;

impl Simulation {
    pub(super) fn end_of_mining(&mut self) {
        self.phase = Phase::Settling;
        self.note(format_args!(
            "mining stops; the network heals, crashed nodes restart, and it settles"
        ));
        self.heal();
        for index in 0..self.nodes.len() {
            self.restart(index);
        }
        if let Some(adversary) = self.adversary.as_mut() {
            let node = adversary.node();
            let release = adversary.release_all();
            self.publish(node, release);
        }
        self.last_tie_break = self.now;
        self.schedule(self.now + SETTLE_POLL.0, What::SettlePoll);
    }

    pub(super) fn settle_poll(&mut self) {
        let end = self.scenario.duration.0 + self.scenario.settle.0;
        if self.honest_tips().len() == 1 {
            self.settled_at = Some(self.now);
            self.note(format_args!("every honest node is on one tip"));
            self.phase = Phase::Done;
        } else if self.now >= end {
            self.note(format_args!("settling time is over without agreement"));
            self.phase = Phase::Done;
        } else {
            // Branches of equal work never resolve on their own (a node keeps the tip it saw
            // first); on a live network the next block settles them. Mining has stopped, so
            // after a quiet while (no tip has moved: a big block on slow links may still be
            // on its way) one honest node mines one more block.
            let quiet_since = self.last_tie_break.max(self.last_tip_change);
            if self.now - quiet_since >= TIE_BREAK_AFTER.0 {
                self.last_tie_break = self.now;
                if let Some(index) = self.random_up_node() {
                    self.note(format_args!(
                        "tips differ: node {index} mines one block to break the tie"
                    ));
                    self.mine_at(index);
                }
            }
            self.schedule(self.now + SETTLE_POLL.0, What::SettlePoll);
        }
    }

    /// Distinct tips of the honest nodes that are up.
    pub(crate) fn honest_tips(&self) -> Vec<BlockHash> {
        let mut tips: Vec<BlockHash> = self
            .up_nodes()
            .filter(|(i, _)| self.is_honest(*i))
            .map(|(_, n)| n.chain().tip().hash)
            .collect();
        tips.sort();
        tips.dedup();
        tips
    }

    /// Tells the log (and the reorg count) what a node reported.
    pub(super) fn record(&mut self, index: usize, event: Event) {
        match event {
            Event::TipChanged {
                hash,
                height,
                disconnected,
                ..
            } => {
                self.last_tip_change = self.now;
                self.watch_heal();
                if disconnected > 0 {
                    self.metrics.reorgs += 1;
                    self.metrics.deepest_reorg = self.metrics.deepest_reorg.max(disconnected);
                    self.note(format_args!(
                        "node {index} reorganises: {disconnected} blocks off, tip height {height} {}",
                        hash.short(12)
                    ));
                } else {
                    self.note(format_args!(
                        "node {index} tip height {height} {}",
                        hash.short(12)
                    ));
                }
            }
            Event::PeerReady {
                address, direction, ..
            } => {
                self.note(format_args!(
                    "node {index} connected to {address} ({direction:?})"
                ));
            }
            Event::PeerGone {
                address, reason, ..
            } => {
                self.note(format_args!(
                    "node {index} disconnected from {address}: {reason}"
                ));
                let peer_node = address
                    .split(':')
                    .next()
                    .and_then(|a| node_of(a, self.nodes.len()));
                if reason.is_misbehaviour()
                    && self.is_honest(index)
                    && peer_node.is_some_and(|p| self.is_honest(p))
                {
                    self.metrics.honest_bans.push(format!(
                        "node {index} banned node {} at {:.3} s: {reason}",
                        peer_node.unwrap_or_default(),
                        self.now as f64 / 1e6
                    ));
                }
            }
            Event::StoreFailed(error) => {
                self.note(format_args!("node {index} store failed: {error}"));
            }
            Event::TransferDropped { id, reason } => {
                let reason = format!("node {index} dropped it: {reason}");
                self.note(format_args!("transfer {}: {reason}", id.short(12)));
                if self.metrics.submitted.contains_key(&id) {
                    self.metrics.last_drop.insert(id, reason);
                }
            }
            _ => {}
        }
    }
}
