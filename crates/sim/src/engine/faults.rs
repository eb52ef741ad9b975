//! Scheduled actions and faults: partitions and heals, crashes, restarts and churn.

use super::*;

impl Simulation {
    pub(super) fn act(&mut self, action: &Action) {
        let label = match action {
            Action::Partition { groups } => {
                self.partition_into(*groups);
                format!("partition into {groups}")
            }
            Action::Heal => {
                self.heal();
                "heal".to_owned()
            }
            Action::Crash { node } => {
                self.crash(*node);
                format!("crash {node}")
            }
            Action::Restart { node } => {
                self.restart(*node);
                format!("restart {node}")
            }
        };
        self.marks.push((self.now as f64 / 1e6, label));
    }

    pub(super) fn partition_into(&mut self, groups: usize) {
        self.partition = Partition::split(self.nodes.len(), groups);
        self.note(format_args!("network splits into {groups} groups"));
        // Every connection across the split is cut; both sides see it close.
        for id in 0..self.connections.len() {
            let Some(c) = &self.connections[id] else {
                continue;
            };
            if !self.partition.reachable(c.ends[0].node, c.ends[1].node) {
                self.close_end(id, 0, true);
                self.close_end(id, 1, true);
            }
        }
    }

    pub(super) fn heal(&mut self) {
        if !self.partition.is_whole() {
            self.partition = Partition::whole(self.nodes.len());
            self.note(format_args!("network heals"));
            if self.phase == Phase::Running {
                self.metrics.heals.push(Heal {
                    at: self.now,
                    agreed: None,
                });
                self.watch_heal();
            }
        }
    }

    /// Notes when every honest node is first on one tip after the last heal.
    pub(super) fn watch_heal(&mut self) {
        if self
            .metrics
            .heals
            .last()
            .is_some_and(|h| h.agreed.is_none())
            && self.honest_tips().len() == 1
        {
            let now = self.now;
            let mut after = 0.0;
            if let Some(heal) = self.metrics.heals.last_mut() {
                heal.agreed = Some(now);
                after = (now - heal.at) as f64 / 1e6;
            }
            self.note(format_args!(
                "every honest node is on one tip, {after:.3} s after the heal"
            ));
        }
    }

    pub(super) fn crash(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let life = std::mem::replace(&mut node.life, Life::Moving);
        let Life::Up(state) = life else {
            node.life = life;
            return;
        };
        node.life = Life::Down(Box::new(state.into_chain().into_store()));
        node.lives += 1;
        node.wake = None;
        node.inbox.clear();
        node.handling = None;
        node.busy = false;
        node.template = None;
        // The operating system resets its connections: peers learn after one crossing.
        let peers: Vec<(u64, usize)> = node.peers.iter().map(|(p, c)| (*p, *c)).collect();
        self.note(format_args!("node {index} crashes"));
        for (peer, connection) in peers {
            if let Some(side) = self.side(connection, index, peer) {
                self.close_end(connection, side, false);
                if let Some(c) = &self.connections[connection] {
                    let at = self.now + c.latency;
                    self.schedule(
                        at,
                        What::Closed {
                            connection,
                            side: 1 - side,
                        },
                    );
                }
            }
        }
    }

    pub(super) fn restart(&mut self, index: usize) {
        let life = std::mem::replace(&mut self.nodes[index].life, Life::Moving);
        let Life::Down(store) = life else {
            self.nodes[index].life = life;
            return;
        };
        let addresses = self.nodes[index].addresses.clone();
        match self.start_node(index, *store, &addresses) {
            Ok(node) => {
                self.nodes[index].life = Life::Up(Box::new(node));
                self.note(format_args!("node {index} restarts from its store"));
                self.with_node(index, |n, now| {
                    n.command(powchain_protocol::Command::Automine(true), now)
                });
            }
            Err(error) => {
                // A memory store cannot fail to reopen; if it ever did, the node stays down
                // and the report's checks say so.
                self.note(format_args!("node {index} cannot restart: {error}"));
            }
        }
    }

    pub(super) fn schedule_churn(&mut self, node: usize) {
        if self.phase != Phase::Running {
            return;
        }
        let mean_s = 3_600.0 / self.scenario.churn.crashes_per_node_hour;
        let at = self.now + self.exponential(mean_s);
        self.schedule(at, What::Crash(node));
    }

    // ---- the end ------------------------------------------------------------------------
}
