//! The discrete-event loop: simulated time, a queue of what happens next, and the protocol's
//! own node state machines fed from it.
//!
//! ```text
//!  queue (time, seq) ──pop──> Tick | Arrive | Process | Closed | Dialed | DialFailed
//!                             BlockFound | Transfer | Rebroadcast | Action | Crash/Restart
//!                                   │
//!          Node::{tick, frame_received, peer_*, block_mined, submit_transfer}
//!                                   │
//!  Output::Send ──link model──> Arrive later   Output::Connect ──> Dialed / DialFailed later
//!  Output::Disconnect ──> Closed on the far side   Output::Mine ──> the node's template
//! ```
//!
//! Nothing here reads a clock or an unseeded random source, and every collection the run
//! walks has a reproducible order, so a seed replays a run exactly. Each node handles one
//! message at a time and is busy for the message's cost (the seed's "one sequential main
//! process"); messages queue in its inbox meanwhile. Block discovery is one Poisson process
//! for the whole network: each discovery goes to a node chosen by hash-power share, which
//! then mines its current template for real at the scenario's low difficulty.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt::Write;

use powchain_chain::{
    Amount, Block, BlockHash, Chain, ChainConfig, ChainSpec, DifficultyBits, Keypair, MemStore,
    Memo, Timestamp, Transfer, TxId, UnsignedTransfer, miner,
};
use powchain_protocol::frame::{self, Received};
use powchain_protocol::{
    Direction, Event, MemAddresses, Message, Node, NodeConfig, Output, PeerInfo,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adversary::Selfish;
use crate::metrics::{Heal, Metrics, MinedBlock};
use crate::network::{Connection, End, LinkModel, Partition, Topology, address_of, mix, node_of};
use crate::scenario::{Action, HashPower, Scenario, Span};

/// Dev accounts the wallet sends between (the dev chain funds ten).
const WALLET_ACCOUNTS: u64 = 10;
/// How often agreement is checked while settling.
const SETTLE_POLL: Span = Span::from_secs(1);
/// How long tips may differ, once mining has stopped, before one more block is mined.
const TIE_BREAK_AFTER: Span = Span::from_secs(30);

/// Something that happens at a point of simulated time.
#[derive(Debug)]
enum What {
    /// A node's timers are due (`Node::poll_timeout`); stale unless it is still the
    /// node's `wake`.
    Tick {
        node: usize,
        life: u32,
    },
    Arrive {
        connection: usize,
        to_side: usize,
        message: Box<Message>,
        /// Its payload's size on the wire.
        bytes: usize,
    },
    Process {
        node: usize,
        life: u32,
    },
    Closed {
        connection: usize,
        side: usize,
    },
    Dialed {
        from: usize,
        life: u32,
        to: usize,
    },
    DialFailed {
        node: usize,
        life: u32,
        address: String,
        reason: &'static str,
    },
    BlockFound,
    Transfer,
    Rebroadcast,
    Scheduled(usize),
    Crash(usize),
    Restart(usize),
    EndOfMining,
    SettlePoll,
}

struct Scheduled {
    at: u64,
    seq: u64,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A node as the simulator holds it.
enum Life {
    Up(Box<Node<MemStore>>),
    /// Crashed: only the store survives.
    Down(Box<MemStore>),
    /// Between the two, never seen outside a method.
    Moving,
}

struct SimNode {
    life: Life,
    /// When its timers next wake it: the one `Tick` that is not stale.
    wake: Option<u64>,
    /// Its address book as saved, which survives a crash as its store does.
    addresses: MemAddresses,
    /// Bumped at every crash, so a dead node's pending ticks and dials are ignored.
    lives: u32,
    /// Peer id -> connection.
    peers: BTreeMap<u64, usize>,
    next_peer: u64,
    inbox: VecDeque<(usize, usize, Message, usize)>,
    busy: bool,
    template: Option<Block>,
}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Mining and transfers.
    Running,
    /// Healed and quiet, waiting for agreement.
    Settling,
    /// Finished.
    Done,
}

/// A simulation of one scenario.
pub struct Simulation {
    pub(crate) scenario: Scenario,
    pub(crate) spec: ChainSpec,
    chain_id: BlockHash,
    model: LinkModel,
    rng: ChaCha8Rng,
    pub(crate) now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    /// Every connection ever opened, by id; `None` once both ends closed.
    connections: Vec<Option<Connection>>,
    partition: Partition,
    /// Cumulative hash-power shares, for choosing who finds a block.
    cumulative_share: Vec<f64>,
    pub(crate) shares: Vec<f64>,
    pub(crate) phase: Phase,
    /// When the network was found in agreement after the mining stopped.
    pub(crate) settled_at: Option<u64>,
    last_tie_break: u64,
    pub(crate) metrics: Metrics,
    wallet_nonces: [u64; WALLET_ACCOUNTS as usize],
    pending: BTreeMap<TxId, Transfer>,
    pub(crate) adversary: Option<Selfish>,
    log: Option<String>,
    /// Events handled.
    pub(crate) events: u64,
    /// Scheduled actions, with when they happened (for the plot).
    pub(crate) marks: Vec<(f64, String)>,
}

impl Simulation {
    /// Builds the network of `scenario` (checked first); with `log`, an event log is kept.
    pub fn new(scenario: Scenario, log: bool) -> Result<Simulation, String> {
        scenario.check().map_err(|e| e.to_string())?;
        let difficulty = DifficultyBits::new(u64::from(scenario.chain.difficulty_bits))
            .map_err(|e| format!("chain.difficulty_bits: {e}"))?;
        let mut spec = ChainSpec::dev().with_fixed_difficulty(difficulty);
        spec.name = "sim".into();
        let chain_id = spec.genesis_hash();
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let model = LinkModel::new(&scenario.network, mix(scenario.seed));
        let shares = hash_shares(&scenario);
        let mut cumulative_share = Vec::with_capacity(shares.len());
        let mut total = 0.0;
        for share in &shares {
            total += share;
            cumulative_share.push(total);
        }
        let count = scenario.nodes;
        let mut sim = Simulation {
            spec,
            chain_id,
            model,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::with_capacity(count),
            connections: Vec::new(),
            partition: Partition::whole(count),
            cumulative_share,
            shares,
            phase: Phase::Running,
            settled_at: None,
            last_tie_break: 0,
            metrics: Metrics::default(),
            wallet_nonces: [0; WALLET_ACCOUNTS as usize],
            pending: BTreeMap::new(),
            adversary: scenario.adversary.as_ref().map(|a| Selfish::new(a.node)),
            log: log.then(String::new),
            events: 0,
            marks: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
            scenario,
        };
        for index in 0..count {
            let addresses = MemAddresses::default();
            let node = sim.start_node(index, MemStore::new(), &addresses)?;
            sim.nodes.push(SimNode {
                life: Life::Up(Box::new(node)),
                wake: None,
                addresses,
                lives: 0,
                peers: BTreeMap::new(),
                next_peer: 1,
                inbox: VecDeque::new(),
                busy: false,
                template: None,
            });
        }
        let topology = Topology::parse(&sim.scenario.network.topology, count)?;
        let dials = topology.dials(count, &mut rng);
        sim.rng = rng;
        for (index, targets) in dials.iter().enumerate() {
            sim.with_node(index, |node, now| {
                for target in targets {
                    node.command(
                        powchain_protocol::Command::Connect(address_of(*target)),
                        now,
                    );
                }
                node.command(powchain_protocol::Command::Automine(true), now);
            });
        }
        let first_block = sim.exponential(sim.scenario.chain.block_interval.as_secs_f64());
        sim.schedule(first_block, What::BlockFound);
        if sim.scenario.transactions.rate > 0.0 {
            let first = sim.exponential(1.0 / sim.scenario.transactions.rate);
            sim.schedule(first, What::Transfer);
            sim.schedule(sim.scenario.transactions.rebroadcast.0, What::Rebroadcast);
        }
        for (index, scheduled) in sim.scenario.events.clone().iter().enumerate() {
            sim.schedule(scheduled.at.0, What::Scheduled(index));
        }
        if sim.scenario.churn.crashes_per_node_hour > 0.0 {
            for node in 0..count {
                sim.schedule_churn(node);
            }
        }
        sim.schedule(sim.scenario.duration.0, What::EndOfMining);
        Ok(sim)
    }

    fn start_node(
        &self,
        index: usize,
        store: MemStore,
        addresses: &MemAddresses,
    ) -> Result<Node<MemStore>, String> {
        let seed = self.scenario.seed;
        let chain = Chain::open(self.spec.clone(), store, ChainConfig::default())
            .map_err(|e| format!("node {index}: {e}"))?;
        let mut config = NodeConfig::new(mix(seed ^ (index as u64).wrapping_mul(0x51_7cc1)));
        config.listen = Some(address_of(index));
        config.outbound_target = self.scenario.node.outbound;
        config.inbound_max = self.scenario.node.inbound_max;
        config.ping_interval_ms = self.scenario.node.ping_interval.as_ms();
        config.ping_timeout_ms = 3 * config.ping_interval_ms;
        config.template_refresh_ms = self.scenario.node.template_refresh.as_ms();
        config.feeler_interval_ms = self.scenario.node.feeler_interval.as_ms();
        // A coinbase address per node, so two nodes never mine the same block.
        config.miner_address = Some(Keypair::dev(1_000 + index as u64).address());
        let lives = self.nodes.get(index).map_or(0, |n| n.lives);
        Node::new(
            config,
            chain,
            mix(seed ^ mix(index as u64) ^ u64::from(lives)),
        )
        .with_address_store(Box::new(addresses.clone()))
        .map_err(|e| e.to_string())
    }

    /// Runs to the end: the scenario's duration, then settling.
    pub fn run(&mut self) {
        while self.phase != Phase::Done {
            let Some(Reverse(next)) = self.queue.pop() else {
                self.phase = Phase::Done;
                break;
            };
            self.now = next.at;
            self.events += 1;
            self.handle(next.what);
        }
    }

    /// The event log so far (empty unless asked for).
    pub fn log(&self) -> &str {
        self.log.as_deref().unwrap_or("")
    }

    /// The nodes that are up, with their index.
    pub(crate) fn up_nodes(&self) -> impl Iterator<Item = (usize, &Node<MemStore>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.life {
                Life::Up(node) => Some((i, node.as_ref())),
                _ => None,
            })
    }

    /// Node `index`, if it is up.
    pub(crate) fn node(&self, index: usize) -> Option<&Node<MemStore>> {
        match &self.nodes.get(index)?.life {
            Life::Up(node) => Some(node),
            _ => None,
        }
    }

    /// Whether `index` plays by the rules.
    pub(crate) fn is_honest(&self, index: usize) -> bool {
        self.adversary.as_ref().is_none_or(|a| a.node() != index)
    }

    fn schedule(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    /// An exponential delay with mean `mean_s` seconds, in microseconds (at least one).
    fn exponential(&mut self, mean_s: f64) -> u64 {
        let u: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        ((-u.ln() * mean_s * 1e6).round() as u64).max(1)
    }

    /// The node's clock: simulated time after the genesis.
    fn timestamp(&self, at: u64) -> Timestamp {
        Timestamp(self.spec.genesis_time_ms + 1_000 + at / 1_000)
    }

    fn note(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{:>14.6} {line}", self.now as f64 / 1e6);
        }
    }

    /// Runs `f` on node `index` if it is up, then carries out what it asked for.
    fn with_node<R>(
        &mut self,
        index: usize,
        f: impl FnOnce(&mut Node<MemStore>, Timestamp) -> R,
    ) -> Option<R> {
        let now = self.timestamp(self.now);
        let Life::Up(node) = &mut self.nodes[index].life else {
            return None;
        };
        let result = f(node, now);
        let outputs = node.outputs();
        let deadline = node.poll_timeout();
        for output in outputs {
            self.apply(index, output);
        }
        if let Some(deadline) = deadline {
            self.wake(index, deadline);
        }
        Some(result)
    }

    /// Makes sure node `index` is woken by `deadline` (its clock's milliseconds). A wake
    /// already due sooner stands (the node then reschedules); a later one is superseded.
    fn wake(&mut self, index: usize, deadline: Timestamp) {
        let base = self.spec.genesis_time_ms + 1_000;
        let at = deadline
            .0
            .saturating_sub(base)
            .saturating_mul(1_000)
            .max(self.now);
        let node = &mut self.nodes[index];
        if node.wake.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        node.wake = Some(at);
        let life = node.lives;
        self.schedule(at, What::Tick { node: index, life });
    }

    fn handle(&mut self, what: What) {
        match what {
            What::Tick { node, life } => {
                let due = self.nodes[node].lives == life && self.nodes[node].wake == Some(self.now);
                if due {
                    self.nodes[node].wake = None;
                    self.with_node(node, |n, now| n.tick(now));
                }
            }
            What::Arrive {
                connection,
                to_side,
                message,
                bytes,
            } => self.arrive(connection, to_side, *message, bytes),
            What::Process { node, life } => {
                if self.nodes[node].lives == life {
                    self.process(node);
                }
            }
            What::Closed { connection, side } => self.close_end(connection, side, true),
            What::Dialed { from, life, to } => self.dialed(from, life, to),
            What::DialFailed {
                node,
                life,
                address,
                reason,
            } => {
                if self.nodes[node].lives == life {
                    self.with_node(node, |n, now| n.connect_failed(&address, reason, now));
                }
            }
            What::BlockFound => self.block_found(),
            What::Transfer => self.transfer(),
            What::Rebroadcast => self.rebroadcast(),
            What::Scheduled(index) => {
                let action = self.scenario.events[index].action.clone();
                self.act(&action);
            }
            What::Crash(node) => {
                if self.phase == Phase::Running {
                    self.crash(node);
                    let [low, high] = self.scenario.churn.downtime;
                    let down = self.rng.random_range(low.0..=high.0);
                    self.schedule(self.now + down, What::Restart(node));
                }
            }
            What::Restart(node) => {
                self.restart(node);
                self.schedule_churn(node);
            }
            What::EndOfMining => self.end_of_mining(),
            What::SettlePoll => self.settle_poll(),
        }
    }

    // ---- links --------------------------------------------------------------------------

    fn apply(&mut self, index: usize, output: Output) {
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
        }
    }

    fn side(&self, connection: usize, node: usize, peer: u64) -> Option<usize> {
        self.connections[connection].as_ref()?.side_of(node, peer)
    }

    fn send(&mut self, index: usize, peer: u64, message: Message) {
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
        self.metrics.messages += 1;
        self.metrics.bytes += bytes as u64;
        let (model, rng, now) = (&self.model, &mut self.rng, self.now);
        let Some(c) = self.connections[connection].as_mut() else {
            return;
        };
        let at = c.schedule(side, bytes, now, model, rng);
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

    fn arrive(&mut self, connection: usize, to_side: usize, message: Message, bytes: usize) {
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
            let life = node.lives;
            self.schedule(
                self.now,
                What::Process {
                    node: end.node,
                    life,
                },
            );
        }
    }

    /// Handles the next message in `index`'s inbox; the node is busy for its cost.
    fn process(&mut self, index: usize) {
        let Some((connection, side, message, bytes)) = self.nodes[index].inbox.pop_front() else {
            self.nodes[index].busy = false;
            return;
        };
        let cost = self.cost(&message);
        let start = self.now;
        self.now += cost;
        let peer = self.connections[connection]
            .as_ref()
            .map(|c| c.ends[side])
            .filter(|end| end.open)
            .map(|end| end.peer);
        if let Some(peer) = peer {
            self.observe(index, &message);
            let frame = Received::message(message, bytes);
            self.with_node(index, |n, now| n.frame_received(peer, frame, now));
        }
        let finished = self.now;
        self.now = start;
        let node = &mut self.nodes[index];
        if node.inbox.is_empty() {
            node.busy = false;
        } else {
            let life = node.lives;
            self.schedule(finished, What::Process { node: index, life });
        }
    }

    fn cost(&self, message: &Message) -> u64 {
        let settings = &self.scenario.node;
        match message {
            Message::Blocks(blocks) => blocks
                .iter()
                .map(|b| {
                    settings.block_validation.0 + settings.tx_validation.0 * b.txs.len() as u64
                })
                .sum(),
            Message::Transactions(transfers) => settings.tx_validation.0 * transfers.len() as u64,
            _ => settings.message_processing.0,
        }
    }

    /// Records block arrivals, and tells the adversary about honest blocks.
    fn observe(&mut self, index: usize, message: &Message) {
        if let Message::Blocks(blocks) = message {
            for block in blocks {
                self.metrics.arrived(index, &block.hash(), self.now);
            }
        }
        if self.is_honest(index) {
            return;
        }
        let heights: Vec<u64> = match message {
            Message::Announce { header } => honest_heights(&self.metrics, index, [header]),
            Message::Headers(headers) => honest_heights(&self.metrics, index, headers.iter()),
            Message::Blocks(blocks) => {
                honest_heights(&self.metrics, index, blocks.iter().map(|b| &b.header))
            }
            _ => Vec::new(),
        };
        for height in heights {
            let release = self
                .adversary
                .as_mut()
                .and_then(|a| a.on_honest_block(height));
            self.publish(index, release);
        }
    }

    /// The adversary announces `header` to every peer (its branch up to it is public now).
    fn publish(&mut self, index: usize, header: Option<powchain_chain::Header>) {
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
    fn close_end(&mut self, connection: usize, side: usize, notify: bool) {
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

    fn dial(&mut self, from: usize, address: &str) {
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

    fn dialed(&mut self, from: usize, life: u32, to: usize) {
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

    fn next_peer(&mut self, node: usize) -> u64 {
        let node = &mut self.nodes[node];
        node.next_peer += 1;
        node.next_peer
    }

    // ---- mining and the wallet ----------------------------------------------------------

    fn block_found(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let next = self.exponential(self.scenario.chain.block_interval.as_secs_f64());
        self.schedule(self.now + next, What::BlockFound);
        let total = self.cumulative_share.last().copied().unwrap_or(0.0);
        let pick = self.rng.random::<f64>() * total;
        let index = self
            .cumulative_share
            .partition_point(|&c| c <= pick)
            .min(self.nodes.len() - 1);
        self.mine_at(index);
    }

    /// `index` finds a block on its current template (a crashed or idle node finds nothing).
    fn mine_at(&mut self, index: usize) {
        let Some(mut block) = self.nodes[index].template.clone() else {
            return;
        };
        if !matches!(self.nodes[index].life, Life::Up(_)) {
            return;
        }
        block.header.time = block.header.time.max(self.timestamp(self.now));
        block.header.nonce = self.rng.random();
        miner::mine(&mut block);
        let hash = block.hash();
        self.metrics.mined(MinedBlock {
            hash,
            parent: block.header.prev_hash,
            height: block.header.height.0,
            miner: index,
            at: self.now,
        });
        self.note(format_args!(
            "node {index} mines height {} {} ({} txs)",
            block.header.height,
            hash.short(12),
            block.txs.len()
        ));
        let header = block.header;
        self.with_node(index, |n, now| n.block_mined(block, now));
        if !self.is_honest(index) {
            let release = self.adversary.as_mut().and_then(|a| a.on_own_block(header));
            self.publish(index, release);
        }
    }

    /// Picks a random node that is up (honest ones only), if any.
    fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = self
            .up_nodes()
            .map(|(i, _)| i)
            .filter(|&i| self.is_honest(i))
            .collect();
        (!up.is_empty()).then(|| up[self.rng.random_range(0..up.len())])
    }

    fn transfer(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let next = self.exponential(1.0 / self.scenario.transactions.rate);
        self.schedule(self.now + next, What::Transfer);
        let Some(index) = self.random_up_node() else {
            return;
        };
        let from = self.rng.random_range(0..WALLET_ACCOUNTS);
        let to = (from + self.rng.random_range(1..WALLET_ACCOUNTS)) % WALLET_ACCOUNTS;
        let amount = self.rng.random_range(1..100u64);
        let key = Keypair::dev(from);
        let transfer = UnsignedTransfer {
            to: Keypair::dev(to).address(),
            amount: Amount(amount),
            fee: self.spec.fee_min,
            nonce: self.wallet_nonces[from as usize],
            memo: Memo::default(),
        }
        .sign(&key, &self.chain_id);
        let sent = transfer.clone();
        match self.with_node(index, |n, now| n.submit_transfer(sent, now)) {
            Some(Ok(id)) => {
                self.wallet_nonces[from as usize] += 1;
                self.metrics.submitted.insert(id, self.now);
                self.pending.insert(id, transfer);
                self.note(format_args!(
                    "wallet: transfer {} from dev {from} (nonce {}) accepted by node {index}",
                    id.short(12),
                    self.wallet_nonces[from as usize] - 1
                ));
            }
            Some(Err(error)) => {
                self.metrics.refused += 1;
                self.note(format_args!(
                    "wallet: node {index} refused a transfer: {error}"
                ));
            }
            None => {}
        }
    }

    /// The wallet forgets what a node has confirmed and sends the rest again.
    fn rebroadcast(&mut self) {
        self.schedule(
            self.now + self.scenario.transactions.rebroadcast.0,
            What::Rebroadcast,
        );
        let Some(index) = self.random_up_node() else {
            return;
        };
        let Life::Up(node) = &self.nodes[index].life else {
            return;
        };
        let chain = node.chain();
        self.pending.retain(|_, transfer| {
            let confirmed = chain
                .account(&transfer.from)
                .ok()
                .flatten()
                .unwrap_or_default()
                .nonce;
            transfer.nonce >= confirmed
        });
        let again: Vec<Transfer> = self.pending.values().cloned().collect();
        if !again.is_empty() {
            self.note(format_args!(
                "wallet: {} unconfirmed transfers sent again to node {index}",
                again.len()
            ));
        }
        self.with_node(index, |n, now| {
            for transfer in again {
                let _ = n.submit_transfer(transfer, now);
            }
        });
    }

    // ---- faults -------------------------------------------------------------------------

    fn act(&mut self, action: &Action) {
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

    fn partition_into(&mut self, groups: usize) {
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

    fn heal(&mut self) {
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
    fn watch_heal(&mut self) {
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

    fn crash(&mut self, index: usize) {
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

    fn restart(&mut self, index: usize) {
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

    fn schedule_churn(&mut self, node: usize) {
        if self.phase != Phase::Running {
            return;
        }
        let mean_s = 3_600.0 / self.scenario.churn.crashes_per_node_hour;
        let at = self.now + self.exponential(mean_s);
        self.schedule(at, What::Crash(node));
    }

    // ---- the end ------------------------------------------------------------------------

    fn end_of_mining(&mut self) {
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

    fn settle_poll(&mut self) {
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
            // after a quiet while one honest node mines one more block.
            if self.now - self.last_tie_break >= TIE_BREAK_AFTER.0 {
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
    fn record(&mut self, index: usize, event: Event) {
        match event {
            Event::TipChanged {
                hash,
                height,
                disconnected,
                ..
            } => {
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

/// Heights of the headers in a message that honest nodes mined.
fn honest_heights<'a>(
    metrics: &Metrics,
    adversary: usize,
    headers: impl IntoIterator<Item = &'a powchain_chain::Header>,
) -> Vec<u64> {
    headers
        .into_iter()
        .filter(|h| metrics.miner_of(&h.hash()).is_some_and(|m| m != adversary))
        .map(|h| h.height.0)
        .collect()
}

/// Each node's share of the hash power (summing to one).
fn hash_shares(scenario: &Scenario) -> Vec<f64> {
    let n = scenario.nodes;
    let mut shares: Vec<f64> = match scenario.node.hash_power {
        HashPower::Equal => vec![1.0; n],
        HashPower::Skewed => (0..n).map(|i| 1.0 / (i as f64 + 1.0)).collect(),
    };
    if let Some(adversary) = &scenario.adversary {
        shares[adversary.node] = 0.0;
        let rest: f64 = shares.iter().sum();
        for share in &mut shares {
            *share *= (1.0 - adversary.hash_share) / rest;
        }
        shares[adversary.node] = adversary.hash_share;
    }
    let total: f64 = shares.iter().sum();
    shares.iter().map(|s| s / total).collect()
}
