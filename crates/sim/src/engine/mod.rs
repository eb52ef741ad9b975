//! The discrete-event loop: simulated time, a queue of what happens next, and the protocol's
//! own node state machines fed from it.
//!
//! ```text
//!  queue (time, seq) ──pop──> Tick | Arrive | Handled | Closed | Dialed | DialFailed
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
//! process"); messages queue in its inbox meanwhile. It handles a message when it has
//! finished with it (`Handled`, at the start plus the cost), so what it does and sends is
//! stamped then, and every node's clock only moves forward. Block discovery is one Poisson process
//! for the whole network: each discovery goes to a node chosen by hash-power share, which
//! then mines its current template for real at the scenario's low difficulty.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt::Write;

use powchain_chain::sigcache::SigCache;
use powchain_chain::{
    Amount, Block, BlockHash, Chain, ChainConfig, ChainSpec, DifficultyBits, Keypair, MemStore,
    Memo, TieBreak, Timestamp, Transfer, TxId, UnsignedTransfer, miner,
};
use powchain_protocol::frame::{self, Received};
use powchain_protocol::{
    Direction, Event, MemAddresses, Message, Node, NodeConfig, Output, PeerInfo,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adversary::Adversary;
use crate::metrics::{Heal, Metrics, MinedBlock};
use crate::network::{
    Connection, End, LinkModel, Partition, Topology, address_of, mix, node_of, random_others,
};
use crate::scenario::{Action, HashPower, PAYLOAD_TX_BYTES, Scenario, Span, TieBreaking};

mod ending;
mod faults;
mod links;
mod workload;

/// Dev accounts the wallet sends between (the dev chain funds ten).
const WALLET_ACCOUNTS: u64 = 10;
/// How often agreement is checked while settling.
const SETTLE_POLL: Span = Span::from_secs(1);
/// How long tips may differ, with none of them moving, once mining has stopped, before one
/// more block is mined.
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
    /// A node has finished with the message it started on: it handles it now.
    Handled {
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

/// What is to happen, in order of time and then of scheduling. The heap moves only the
/// small `(at, seq, slot)` keys as it sifts; what happens waits in its slot (a message, an
/// address), which is taken when its key comes out: the queue's pop was a sixteenth of a
/// large run's time when it moved whole events.
#[derive(Default)]
struct Queue {
    keys: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<Option<What>>,
    free: Vec<usize>,
}

impl Queue {
    fn push(&mut self, at: u64, seq: u64, what: What) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(what);
                slot
            }
            None => {
                self.slots.push(Some(what));
                self.slots.len() - 1
            }
        };
        self.keys.push(Reverse((at, seq, slot)));
    }

    /// The next event and its time.
    fn pop(&mut self) -> Option<(u64, What)> {
        loop {
            let Reverse((at, _, slot)) = self.keys.pop()?;
            self.free.push(slot);
            // Every key's slot holds its event: a key is pushed with it and popped once.
            if let Some(what) = self.slots.get_mut(slot).and_then(Option::take) {
                return Some((at, what));
            }
        }
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
    /// Messages waiting (connection, side, message, payload bytes), and the one it is busy
    /// with.
    inbox: VecDeque<(usize, usize, Message, usize)>,
    handling: Option<(usize, usize, Message, usize)>,
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
    queue: Queue,
    nodes: Vec<SimNode>,
    /// Every connection ever opened, by id; `None` once both ends closed.
    connections: Vec<Option<Connection>>,
    partition: Partition,
    /// Outbound connections each node keeps.
    outbound: Vec<usize>,
    /// Cumulative hash-power shares, for choosing who finds a block.
    cumulative_share: Vec<f64>,
    pub(crate) shares: Vec<f64>,
    pub(crate) phase: Phase,
    /// When the network was found in agreement after the mining stopped.
    pub(crate) settled_at: Option<u64>,
    last_tie_break: u64,
    /// When a node's tip last changed.
    last_tip_change: u64,
    pub(crate) metrics: Metrics,
    wallet_nonces: [u64; WALLET_ACCOUNTS as usize],
    pending: BTreeMap<TxId, Transfer>,
    pub(crate) adversary: Option<Adversary>,
    log: Option<String>,
    /// Events handled.
    pub(crate) events: u64,
    /// Scheduled actions, with when they happened (for the plot).
    pub(crate) marks: Vec<(f64, String)>,
    /// One signature cache for every node: a signature is checked once in the run (the
    /// cost model charges each node its check in simulated time).
    signatures: SigCache,
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
        let model = LinkModel::new(&scenario, mix(scenario.seed));
        let shares = hash_shares(&scenario);
        let mut cumulative_share = Vec::with_capacity(shares.len());
        let mut total = 0.0;
        for share in &shares {
            total += share;
            cumulative_share.push(total);
        }
        let count = scenario.nodes;
        // Who dials whom is drawn first; nothing before it draws from `rng`.
        let topology = Topology::parse(&scenario.network.topology, count)?;
        let mut dials = topology.dials(count, &mut rng);
        let pool_outbound = scenario.node.pool_outbound;
        // Pools are meshed with each other (as in Gervais et al.'s model) and dial others
        // at random up to their outbound count.
        let pools = scenario.node.pools.len();
        if pool_outbound > 0 {
            for (pool, targets) in dials.iter_mut().enumerate().take(pools) {
                let others = pool_outbound.saturating_sub(pool);
                *targets = (0..pool).collect();
                targets.extend(
                    random_others(pool, count, count, &mut rng)
                        .into_iter()
                        .filter(|&o| o >= pools)
                        .take(others),
                );
            }
        }
        let outbound = (0..count)
            .map(|i| {
                if pool_outbound > 0 && i < pools {
                    pool_outbound
                } else if topology.sets_outbound() {
                    dials[i].len()
                } else {
                    scenario.node.outbound
                }
            })
            .collect();
        let mut sim = Simulation {
            outbound,
            spec,
            chain_id,
            model,
            now: 0,
            seq: 0,
            queue: Queue::default(),
            nodes: Vec::with_capacity(count),
            connections: Vec::new(),
            partition: Partition::whole(count),
            cumulative_share,
            shares,
            phase: Phase::Running,
            settled_at: None,
            last_tie_break: 0,
            last_tip_change: 0,
            metrics: Metrics::for_nodes(count, scenario.adversary.as_ref().map(|a| a.node)),
            wallet_nonces: [0; WALLET_ACCOUNTS as usize],
            pending: BTreeMap::new(),
            adversary: scenario.adversary.as_ref().map(Adversary::new),
            log: log.then(String::new),
            events: 0,
            marks: Vec::new(),
            signatures: SigCache::default(),
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
                handling: None,
                busy: false,
                template: None,
            });
        }
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
        // The adversary keeps its own side of a tie (it saw its block first): a coin there
        // would have it mine on the honest block of a race it is in.
        let honest = self
            .scenario
            .adversary
            .as_ref()
            .is_none_or(|a| a.node != index);
        let tie_break = match self.scenario.node.tie_breaking {
            TieBreaking::Random if honest => TieBreak::Random {
                key: mix(seed ^ 0x7469_6573 ^ (index as u64).wrapping_mul(0x9e37_79b9)),
            },
            _ => TieBreak::FirstSeen,
        };
        let chain_config = ChainConfig {
            tie_break,
            ..ChainConfig::default()
        };
        let chain = Chain::open(self.spec.clone(), store, chain_config)
            .map_err(|e| format!("node {index}: {e}"))?
            .sharing_signatures(self.signatures.clone());
        let mut config = NodeConfig::new(mix(seed ^ (index as u64).wrapping_mul(0x51_7cc1)));
        config.listen = Some(address_of(index));
        config.outbound_target = self.outbound[index];
        config.inbound_max = self.scenario.node.inbound_max;
        config.ping_interval_ms = self.scenario.node.ping_interval.as_ms();
        config.ping_timeout_ms = 3 * config.ping_interval_ms;
        config.template_refresh_ms = self.scenario.node.template_refresh.as_ms();
        config.block_request_timeout_ms = self.scenario.node.block_request_timeout.as_ms();
        config.feeler_interval_ms = self.scenario.node.feeler_interval.as_ms();
        config.compact_blocks = self.scenario.node.compact_blocks;
        config.compact_high_bandwidth_peers = self.scenario.node.compact_high_bandwidth_peers;
        // Simulated nodes have names, not IP addresses.
        config.learn_any_address = true;
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
        self.run_with_progress(|_| {});
    }

    /// Runs to the end, calling `progress` with the simulated time reached (µs) every
    /// 65,536 events: what a progress bar needs, at no cost to the run's outcome.
    pub fn run_with_progress(&mut self, mut progress: impl FnMut(u64)) {
        while self.phase != Phase::Done {
            if self.events.trailing_zeros() >= 16 {
                progress(self.now);
            }
            let Some((at, what)) = self.queue.pop() else {
                self.phase = Phase::Done;
                break;
            };
            self.now = at;
            self.events += 1;
            self.handle(what);
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
        self.queue.push(at, self.seq, what);
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
            What::Handled { node, life } => {
                if self.nodes[node].lives == life {
                    self.handled(node);
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
}

/// Heights of the headers in a message that honest nodes mined.
fn honest_headers<'a>(
    metrics: &Metrics,
    adversary: usize,
    headers: impl IntoIterator<Item = &'a powchain_chain::Header>,
) -> Vec<powchain_chain::Header> {
    headers
        .into_iter()
        .filter(|h| metrics.miner_of(&h.hash()).is_some_and(|m| m != adversary))
        .copied()
        .collect()
}

/// Each node's share of the hash power (summing to one).
fn hash_shares(scenario: &Scenario) -> Vec<f64> {
    let n = scenario.nodes;
    let pools = &scenario.node.pools;
    let mut shares: Vec<f64> = match scenario.node.hash_power {
        _ if !pools.is_empty() => (0..n)
            .map(|i| pools.get(i).copied().unwrap_or(0.0))
            .collect(),
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
