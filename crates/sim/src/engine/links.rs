//! Connections between simulated nodes: carrying out a node's outputs, messages over the
//! link model, each node's inbox and the cost of handling a message, dials and closes.

use super::*;

impl Simulation {
    pub(super) fn apply(&mut self, index: usize, output: Output) {
        match output {
            Output::Send { peer, message } => self.send(index, peer, message),
            Output::Connect(address) => self.dial(index, &address),
            Output::Disconnect { peer, .. } => {
                if let Some(&connection) = self.nodes[index].peers.get(&peer)
                    && let Some(side) = self.side(connection, index, peer)
                {
                    self.close_end(connection, side, false);
                    // The far side learns after what was already sent (the goodbye).
                    if let Some(c) = &self.connections[connection] {
                        let at = c.last_arrival[side].max(self.now + c.latency) + 1;
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
            Output::Mine(template) => self.nodes[index].template = template,
            Output::Event(event) => self.record(index, event),
            // Simulated nodes are honest and stay far inside each other's message budgets
            // (a node that did not would show as a flood ban in the checks); a simulated
            // attacker would need its messages held back here.
            Output::PauseReading { .. } => {}
        }
    }

    pub(super) fn side(&self, connection: usize, node: usize, peer: u64) -> Option<usize> {
        self.connections[connection].as_ref()?.side_of(node, peer)
    }

    pub(super) fn send(&mut self, index: usize, peer: u64, message: Message) {
        let Some(&connection) = self.nodes[index].peers.get(&peer) else {
            return;
        };
        let message = match &self.adversary {
            Some(adversary) if adversary.node() == index => {
                let Life::Up(node) = &self.nodes[index].life else {
                    return;
                };
                match adversary.filter(message, node.chain()) {
                    Some(message) => message,
                    None => return,
                }
            }
            _ => message,
        };
        let Some(side) = self.side(connection, index, peer) else {
            return;
        };
        let bytes = frame::wire_len(&message);
        let on_wire = bytes + self.payload_on_wire(&message);
        self.metrics.messages += 1;
        self.metrics.bytes += on_wire as u64;
        let (model, rng, now) = (&mut self.model, &mut self.rng, self.now);
        let Some(c) = self.connections[connection].as_mut() else {
            return;
        };
        let at = c.schedule(side, on_wire, now, model, rng);
        self.schedule(
            at,
            What::Arrive {
                connection,
                to_side: 1 - side,
                message: Box::new(message),
                bytes: bytes - frame::LENGTH_PREFIX_BYTES,
            },
        );
    }

    pub(super) fn arrive(
        &mut self,
        connection: usize,
        to_side: usize,
        message: Message,
        bytes: usize,
    ) {
        let Some(end) = self.connections[connection]
            .as_ref()
            .map(|c| c.ends[to_side])
        else {
            return;
        };
        if !end.open {
            return;
        }
        let node = &mut self.nodes[end.node];
        node.inbox.push_back((connection, to_side, message, bytes));
        if !node.busy {
            node.busy = true;
            self.process(end.node);
        }
    }

    /// Starts on the next message in `index`'s inbox: the node is busy for its cost, and
    /// handles it when that is over (`What::Handled`), so what it does is stamped then.
    pub(super) fn process(&mut self, index: usize) {
        let Some(next) = self.nodes[index].inbox.pop_front() else {
            self.nodes[index].busy = false;
            return;
        };
        let finished = self.now + self.cost(index, &next.2);
        let node = &mut self.nodes[index];
        let life = node.lives;
        node.handling = Some(next);
        self.schedule(finished, What::Handled { node: index, life });
    }

    /// The node has finished with the message it started on: it handles it now (if the
    /// connection it came over is still open), then starts on the next.
    pub(super) fn handled(&mut self, index: usize) {
        let Some((connection, side, message, bytes)) = self.nodes[index].handling.take() else {
            return;
        };
        let peer = self.connections[connection]
            .as_ref()
            .map(|c| c.ends[side])
            .filter(|end| end.open)
            .map(|end| end.peer);
        if let Some(peer) = peer {
            self.observe(index, &message);
            // A compact block's block arrives once it is rebuilt: with this message, or
            // with the transfers its receiver asked for.
            let rebuilt = match &message {
                Message::CompactBlock(compact) => Some(compact.header.hash()),
                Message::BlockTxn { block, .. } => Some(*block),
                _ => None,
            };
            let frame = Received::message(message, bytes);
            let has_it = self.with_node(index, |n, now| {
                n.frame_received(peer, frame, now);
                rebuilt.filter(|hash| n.chain().tree().get(hash).is_some())
            });
            if let Some(hash) = has_it.flatten() {
                self.metrics.arrived(index, &hash, self.now);
            }
        }
        self.process(index);
    }

    /// The simulated payload's bytes a message carries besides its own
    /// (`chain.block_size`): all of it in a whole block, a short id per payload
    /// transaction in a compact one (its receiver holds them all).
    fn payload_on_wire(&self, message: &Message) -> usize {
        let size = self.scenario.chain.block_size.0;
        let bytes = match message {
            Message::Blocks(blocks) => size * blocks.len() as u64,
            Message::CompactBlock(_) => size / PAYLOAD_TX_BYTES * 6,
            _ => 0,
        };
        bytes as usize
    }

    pub(super) fn cost(&self, index: usize, message: &Message) -> u64 {
        let settings = &self.scenario.node;
        // Validating a block's simulated payload, worked out only for messages with a block.
        let payload = || {
            (settings.validation_per_mb.0 as f64 * self.scenario.chain.block_size.0 as f64 / 1e6)
                .round() as u64
        };
        let has_block = |hash: &powchain_chain::BlockHash| match &self.nodes[index].life {
            Life::Up(node) => node.chain().tree().get(hash).is_some(),
            _ => false,
        };
        match message {
            Message::Blocks(blocks) => blocks
                .iter()
                .map(|b| {
                    settings.block_validation.0
                        + settings.tx_validation.0 * b.txs.len() as u64
                        + payload()
                })
                .sum(),
            // A block pushed to a node that has it already is dropped by its hash.
            Message::CompactBlock(compact) if has_block(&compact.header.hash()) => {
                settings.message_processing.0
            }
            // The same block costs the same checks however it came (what a compact block
            // saves is bytes and time on the wire); the transfers it lacked are in that.
            Message::CompactBlock(compact) => {
                settings.block_validation.0
                    + settings.tx_validation.0 * compact.tx_count() as u64
                    + payload()
            }
            Message::Transactions(transfers) => settings.tx_validation.0 * transfers.len() as u64,
            _ => settings.message_processing.0,
        }
    }

    /// Records block arrivals, and tells the adversary about honest blocks.
    pub(super) fn observe(&mut self, index: usize, message: &Message) {
        if let Message::Blocks(blocks) = message {
            for block in blocks {
                self.metrics.arrived(index, &block.hash(), self.now);
            }
        }
        if self.is_honest(index) {
            return;
        }
        let headers: Vec<powchain_chain::Header> = match message {
            Message::Announce { header } => honest_headers(&self.metrics, index, [header]),
            Message::Headers(headers) => honest_headers(&self.metrics, index, headers.iter()),
            Message::Blocks(blocks) => {
                honest_headers(&self.metrics, index, blocks.iter().map(|b| &b.header))
            }
            Message::CompactBlock(compact) => {
                honest_headers(&self.metrics, index, [&compact.header])
            }
            _ => Vec::new(),
        };
        for header in headers {
            let release = self
                .adversary
                .as_mut()
                .and_then(|a| a.on_honest_block(&header));
            self.publish(index, release);
        }
    }

    /// The adversary announces `header` to every peer (its branch up to it is public now).
    pub(super) fn publish(&mut self, index: usize, header: Option<powchain_chain::Header>) {
        let Some(header) = header else {
            return;
        };
        self.note(format_args!(
            "node {index} publishes its private branch up to height {} {}",
            header.height,
            header.hash().short(12)
        ));
        let peers: Vec<u64> = self.nodes[index].peers.keys().copied().collect();
        for peer in peers {
            self.send(index, peer, Message::Announce { header });
        }
    }

    /// Closes one end; `notify`: tell that node (the far side learning of a close).
    pub(super) fn close_end(&mut self, connection: usize, side: usize, notify: bool) {
        let Some(c) = self.connections[connection].as_mut() else {
            return;
        };
        let end = c.ends[side];
        if !end.open {
            return;
        }
        c.ends[side].open = false;
        let both_closed = !c.ends[1 - side].open;
        self.nodes[end.node].peers.remove(&end.peer);
        if both_closed {
            self.connections[connection] = None;
        }
        if notify {
            self.with_node(end.node, |n, now| n.peer_disconnected(end.peer, now));
        }
    }

    pub(super) fn dial(&mut self, from: usize, address: &str) {
        let life = self.nodes[from].lives;
        let Some(to) = node_of(address, self.nodes.len()) else {
            let address = address.to_owned();
            self.schedule(
                self.now + 1,
                What::DialFailed {
                    node: from,
                    life,
                    address,
                    reason: "no such address",
                },
            );
            return;
        };
        let rtt = 2 * self.model.base_latency(from, to);
        if !self.partition.reachable(from, to) {
            let at = self.now + self.scenario.network.connect_timeout.0;
            let address = address.to_owned();
            self.schedule(
                at,
                What::DialFailed {
                    node: from,
                    life,
                    address,
                    reason: "timed out",
                },
            );
        } else {
            self.schedule(self.now + rtt, What::Dialed { from, life, to });
        }
    }

    pub(super) fn dialed(&mut self, from: usize, life: u32, to: usize) {
        if self.nodes[from].lives != life || !matches!(self.nodes[from].life, Life::Up(_)) {
            return;
        }
        let address = address_of(to);
        if !matches!(self.nodes[to].life, Life::Up(_)) || !self.partition.reachable(from, to) {
            let reason = if self.partition.reachable(from, to) {
                "connection refused"
            } else {
                "timed out"
            };
            self.with_node(from, |n, now| n.connect_failed(&address, reason, now));
            return;
        }
        let out_peer = self.next_peer(from);
        let in_peer = self.next_peer(to);
        let connection = Connection {
            ends: [
                End {
                    node: from,
                    peer: out_peer,
                    open: true,
                },
                End {
                    node: to,
                    peer: in_peer,
                    open: true,
                },
            ],
            latency: self.model.base_latency(from, to),
            free_at: [self.now; 2],
            last_arrival: [self.now; 2],
        };
        // Ids are never reused: a message or close still in flight on a dead connection
        // must not land on a new one.
        self.connections.push(Some(connection));
        let id = self.connections.len() - 1;
        self.nodes[from].peers.insert(out_peer, id);
        self.nodes[to].peers.insert(in_peer, id);
        let outbound = PeerInfo {
            address: address.clone(),
            ban_key: address,
            direction: Direction::Outbound,
        };
        let inbound = PeerInfo {
            address: format!("{}:{}", address_of(from), in_peer),
            ban_key: address_of(from),
            direction: Direction::Inbound,
        };
        self.with_node(from, |n, now| n.peer_connected(out_peer, outbound, now));
        self.with_node(to, |n, now| n.peer_connected(in_peer, inbound, now));
    }

    pub(super) fn next_peer(&mut self, node: usize) -> u64 {
        let node = &mut self.nodes[node];
        node.next_peer += 1;
        node.next_peer
    }

    // ---- mining and the wallet ----------------------------------------------------------
}
