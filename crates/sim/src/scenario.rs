//! Scenarios: what a simulation runs, read from TOML (`scenarios/*.toml`).
//!
//! Every field has a default, so a file names only what it changes; an unknown field is an
//! error (a typo must not silently run the default). Durations are written `250ms`, `5s`,
//! `10m`, `6h` or `1d`. The command line's `--seed`, `--nodes` and `--duration` override the
//! file; [`Scenario::check`] refuses values the simulator cannot run.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A span of simulated time, in microseconds (the simulator's clock unit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub u64);

impl Span {
    /// `ms` milliseconds.
    pub const fn from_ms(ms: u64) -> Span {
        Span(ms * 1_000)
    }

    /// `seconds` seconds.
    pub const fn from_secs(seconds: u64) -> Span {
        Span(seconds * 1_000_000)
    }

    /// In seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// In whole milliseconds.
    pub fn as_ms(self) -> u64 {
        self.0 / 1_000
    }
}

impl TryFrom<String> for Span {
    type Error = String;

    fn try_from(text: String) -> Result<Span, String> {
        parse_span(&text)
    }
}

impl From<Span> for String {
    fn from(span: Span) -> String {
        span.to_string()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        let units = [
            (86_400_000_000, "d"),
            (3_600_000_000, "h"),
            (60_000_000, "m"),
            (1_000_000, "s"),
            (1_000, "ms"),
        ];
        for (size, unit) in units {
            if us >= size && us.is_multiple_of(size) {
                return write!(f, "{}{unit}", us / size);
            }
        }
        if us >= 1_000 {
            write!(f, "{}ms", us as f64 / 1_000.0)
        } else {
            write!(f, "{us}us")
        }
    }
}

/// Parses `90` (seconds), `250ms`, `1.5s`, `10m`, `6h`, `1d`, `40us`.
pub fn parse_span(text: &str) -> Result<Span, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 90s, 10m, 6h or 1d"))?;
    let unit_us = match unit.trim() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3_600e6,
        "d" => 86_400e6,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (us, ms, s, m, h, d)"
            ));
        }
    };
    let us = value * unit_us;
    // A year of simulated time is far more than anyone runs; beyond it is a typo.
    if !us.is_finite() || !(0.0..=365.0 * 86_400e6).contains(&us) {
        return Err(format!("{text:?} is out of range (0 to 365d)"));
    }
    Ok(Span(us.round() as u64))
}

/// A size in bytes, written `535KB`, `1MB`, `0.25MB`, `2MiB`, `800B` or `0` (kB and MB are
/// decimal, as the papers that measure block sizes use them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize(pub u64);

impl TryFrom<String> for ByteSize {
    type Error = String;

    fn try_from(text: String) -> Result<ByteSize, String> {
        parse_size(&text)
    }
}

impl From<ByteSize> for String {
    fn from(size: ByteSize) -> String {
        size.to_string()
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (size, unit) in [(1_000_000, "MB"), (1_000, "KB")] {
            if bytes >= size && bytes.is_multiple_of(size) {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        write!(f, "{bytes}B")
    }
}

/// The largest block payload a scenario may ask for: far above any block size studied.
pub const MAX_BLOCK_SIZE: u64 = 64_000_000;

/// Parses `535KB`, `1MB`, `0.25MB`, `2MiB`, `800B` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<ByteSize, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "B"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 535KB, 1MB or 800B"))?;
    let unit_bytes = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "kib" => 1024.0,
        "mib" => 1_048_576.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (B, KB, MB, KiB, MiB)"
            ));
        }
    };
    let bytes = value * unit_bytes;
    if !bytes.is_finite() || !(0.0..=MAX_BLOCK_SIZE as f64).contains(&bytes) {
        return Err(format!("{text:?} is out of range (0 to 64MB)"));
    }
    Ok(ByteSize(bytes.round() as u64))
}

/// A whole scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Short name, for the report.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Drives every random choice: the same seed replays the same run.
    pub seed: u64,
    /// Nodes in the network.
    pub nodes: usize,
    /// Simulated time with mining and transfers.
    pub duration: Span,
    /// After `duration`: partitions heal, crashed nodes restart, mining stops, and the
    /// network has this long to agree on one tip.
    pub settle: Span,
    /// The chain.
    pub chain: ChainSettings,
    /// Links.
    pub network: NetworkSettings,
    /// Node behaviour and costs.
    pub node: NodeSettings,
    /// The transfer load.
    pub transactions: TransactionSettings,
    /// Random crashes and restarts.
    pub churn: ChurnSettings,
    /// A misbehaving miner, if any.
    pub adversary: Option<AdversarySettings>,
    /// Partitions, heals, crashes and restarts at set times.
    pub events: Vec<ScheduledAction>,
}

/// The chain every node runs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainSettings {
    /// Mean time between blocks across the network (block discovery is a Poisson process).
    pub block_interval: Span,
    /// The real difficulty the blocks are mined at: low, so a block costs microseconds, yet
    /// every block is a real, valid block.
    pub difficulty_bits: u8,
    /// Simulated payload every block carries besides its few real transfers, as if full of
    /// transactions of [`PAYLOAD_TX_BYTES`] each that every node already holds: counted
    /// on the wire (a whole block carries it, a compact block a 6-byte short id per
    /// transaction) and in validation (`node.validation_per_mb`). 0: none.
    pub block_size: ByteSize,
}

/// The size of one simulated payload transaction (Bitcoin's have been 250-600 bytes).
pub const PAYLOAD_TX_BYTES: u64 = 250;

/// How nodes are linked.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSettings {
    /// Whom each node dials at start: `line`, `ring`, `full`, `random:K`,
    /// `random:bitcoin-2015` (how many each node dials drawn from the out-degrees measured
    /// in Bitcoin in 2015, mean 8.6, and it keeps that many) or `random:gervais-2016` (half
    /// of a connection count drawn from Gervais et al.'s law, mean 4.7 dialled). Gossip
    /// does the rest.
    pub topology: String,
    /// Where latency and bandwidth come from: `uniform` (the fields below) or a measured
    /// model of regions (`bitcoin-2015`, `bitcoin-2019`, `gervais-2016`: see
    /// `network::regions`), which places each node in a region and replaces `latency`,
    /// `bandwidth_mbps`, `uplink_mbps` and `downlink_mbps`; `jitter` and `loss` still apply.
    pub model: String,
    /// One-way latency of a link, drawn once per pair of nodes, uniformly in this range.
    pub latency: [Span; 2],
    /// Per-message variation: the latency is multiplied by `exp(jitter * N(0, 1))`.
    pub jitter: f64,
    /// Each direction of a link carries this many megabits per second (unless a node's
    /// shared `uplink_mbps` and `downlink_mbps` are set).
    pub bandwidth_mbps: f64,
    /// A node's upload bandwidth, shared by all its connections: messages leave it one
    /// after another. Unset: each link has its own `bandwidth_mbps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink_mbps: Option<f64>,
    /// A node's download bandwidth, shared by all its connections (with `uplink_mbps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downlink_mbps: Option<f64>,
    /// Probability that a message's packet is lost. Links are TCP: a loss costs a
    /// retransmission timeout, never the message.
    pub loss: f64,
    /// How long a dial into a partition waits before it fails.
    pub connect_timeout: Span,
}

/// How much hash power each node has.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HashPower {
    /// All equal.
    Equal,
    /// Node `i` has a share proportional to `1 / (i + 1)`, like a few big pools and a tail.
    Skewed,
}

/// Node behaviour and what its work costs in simulated time.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSettings {
    /// Outbound connections each node keeps.
    pub outbound: usize,
    /// Most inbound connections.
    pub inbound_max: usize,
    /// The status poll (ping) interval; the ping timeout is three of them.
    pub ping_interval: Span,
    /// Time to validate and store a block, before its transactions.
    pub block_validation: Span,
    /// Time to check one transaction (its signature, mostly).
    pub tx_validation: Span,
    /// Time to handle any other message.
    pub message_processing: Span,
    /// How long a block request may go unanswered before it goes to another peer.
    pub block_request_timeout: Span,
    /// Time to validate a megabyte of a block's simulated payload (`chain.block_size`).
    pub validation_per_mb: Span,
    /// How the hash power is shared.
    pub hash_power: HashPower,
    /// Mining pools: their shares of the hash power (any scale; normalised), on nodes 0,
    /// 1, ... in order; the other nodes do not mine. Empty: `hash_power` decides.
    pub pools: Vec<f64>,
    /// Outbound connections a pool's node dials and keeps (pools are well connected);
    /// 0: as any node.
    pub pool_outbound: usize,
    /// The region of each pool's node, by name (with a `network.model` of regions); empty:
    /// placed as any node.
    pub pool_regions: Vec<String>,
    /// A pool node's upload and download bandwidth, replacing its region's or the link's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_bandwidth_mbps: Option<f64>,
    /// Shortest time between block templates rebuilt for new transfers (a new tip gets
    /// one at once). Mining pools hand out new work every few tens of seconds.
    pub template_refresh: Span,
    /// How often a node with its outbound slots full opens a feeler connection to a random
    /// address (what reconnects a healed partition); 0: never.
    pub feeler_interval: Span,
    /// Ask for new blocks as compact blocks (BIP 152: short transfer ids, rebuilt from the
    /// mempool) rather than whole; `false` to compare.
    pub compact_blocks: bool,
    /// Peers each node asks to push new blocks compact, unasked (BIP 152's high-bandwidth
    /// mode: the ones that last gave it a new tip first); 0: every compact block is
    /// announced and asked for. Only with `compact_blocks`.
    pub compact_high_bandwidth_peers: usize,
    /// Which of two tips of equal work a node follows: `first-seen` (Bitcoin's rule) or
    /// `random` (each node flips its own coin per tie, whichever came first: the selfish
    /// miner's gamma of 0.5 among the nodes that see both).
    pub tie_breaking: TieBreaking,
}

/// A node's rule between tips of equal work.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TieBreaking {
    /// The first seen stays.
    FirstSeen,
    /// A coin flip per node and tie.
    Random,
}

/// Random signed transfers between the dev accounts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionSettings {
    /// Transfers per second across the network (a Poisson process).
    pub rate: f64,
    /// How often the wallet sends its unconfirmed transfers again, as real wallets do.
    pub rebroadcast: Span,
}

/// Nodes crashing and coming back at random.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnSettings {
    /// Crashes per node per hour (0: none).
    pub crashes_per_node_hour: f64,
    /// How long a crashed node stays down, drawn uniformly in this range.
    pub downtime: [Span; 2],
}

/// A miner that does not follow the rules of fair play.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarySettings {
    /// The strategy: `selfish` (Eyal and Sirer's selfish mining) or `liar` (claims far more
    /// work than it has and answers headers requests with nothing; see `adversary`).
    pub strategy: String,
    /// Which node.
    #[serde(default)]
    pub node: usize,
    /// Its share of the network's hash power.
    pub hash_share: f64,
}

/// What happens at a set time. In TOML: `at = "1h"`, `action = "partition"|"heal"|"crash"|
/// "restart"`, and `groups = N` for a partition or `node = I` for a crash or restart.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(try_from = "ActionFields", into = "ActionFields")]
pub struct ScheduledAction {
    /// When.
    pub at: Span,
    /// What.
    pub action: Action,
}

/// A scheduled action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Split the nodes into `groups` groups of consecutive indices; nothing crosses a group.
    Partition {
        /// How many groups.
        groups: usize,
    },
    /// Remove every partition.
    Heal,
    /// Kill a node (its store survives; its mempool and connections do not).
    Crash {
        /// Which.
        node: usize,
    },
    /// Start a crashed node again from its store.
    Restart {
        /// Which.
        node: usize,
    },
}

/// A scheduled action as written in TOML.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ActionFields {
    at: Span,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groups: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<usize>,
}

impl TryFrom<ActionFields> for ScheduledAction {
    type Error = String;

    fn try_from(fields: ActionFields) -> Result<ScheduledAction, String> {
        let action = match (fields.action.as_str(), fields.groups, fields.node) {
            ("partition", Some(groups), None) => Action::Partition { groups },
            ("heal", None, None) => Action::Heal,
            ("crash", None, Some(node)) => Action::Crash { node },
            ("restart", None, Some(node)) => Action::Restart { node },
            (other, _, _) => {
                return Err(format!(
                    "event {other:?}: write partition with groups = N, heal alone, or crash/restart with node = I"
                ));
            }
        };
        Ok(ScheduledAction {
            at: fields.at,
            action,
        })
    }
}

impl From<ScheduledAction> for ActionFields {
    fn from(scheduled: ScheduledAction) -> ActionFields {
        let (action, groups, node) = match scheduled.action {
            Action::Partition { groups } => ("partition", Some(groups), None),
            Action::Heal => ("heal", None, None),
            Action::Crash { node } => ("crash", None, Some(node)),
            Action::Restart { node } => ("restart", None, Some(node)),
        };
        ActionFields {
            at: scheduled.at,
            action: action.into(),
            groups,
            node,
        }
    }
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            name: "baseline".into(),
            description: "Honest network: 50 equal miners, 10-150 ms links, 10-minute blocks, 0.2 transfers/s.".into(),
            seed: 1,
            nodes: 50,
            duration: Span::from_secs(6 * 3_600),
            settle: Span::from_secs(30 * 60),
            chain: ChainSettings::default(),
            network: NetworkSettings::default(),
            node: NodeSettings::default(),
            transactions: TransactionSettings::default(),
            churn: ChurnSettings::default(),
            adversary: None,
            events: Vec::new(),
        }
    }
}

impl Default for ChainSettings {
    fn default() -> ChainSettings {
        ChainSettings {
            block_interval: Span::from_secs(600),
            difficulty_bits: 8,
            block_size: ByteSize(0),
        }
    }
}

impl Default for NetworkSettings {
    fn default() -> NetworkSettings {
        NetworkSettings {
            topology: "random:4".into(),
            model: "uniform".into(),
            latency: [Span::from_ms(10), Span::from_ms(150)],
            jitter: 0.1,
            bandwidth_mbps: 50.0,
            uplink_mbps: None,
            downlink_mbps: None,
            loss: 0.0,
            connect_timeout: Span::from_secs(5),
        }
    }
}

impl Default for NodeSettings {
    fn default() -> NodeSettings {
        NodeSettings {
            outbound: 8,
            inbound_max: 32,
            ping_interval: Span::from_secs(120),
            block_validation: Span::from_ms(2),
            tx_validation: Span(60),
            message_processing: Span(20),
            block_request_timeout: Span::from_secs(10),
            // 60 µs per 250-byte transaction, as `tx_validation`.
            validation_per_mb: Span::from_ms(240),
            hash_power: HashPower::Equal,
            pools: Vec::new(),
            pool_outbound: 0,
            pool_regions: Vec::new(),
            pool_bandwidth_mbps: None,
            template_refresh: Span::from_secs(30),
            feeler_interval: Span::from_secs(120),
            compact_blocks: true,
            compact_high_bandwidth_peers: 3,
            tie_breaking: TieBreaking::FirstSeen,
        }
    }
}

impl Default for TransactionSettings {
    fn default() -> TransactionSettings {
        TransactionSettings {
            rate: 0.2,
            rebroadcast: Span::from_secs(600),
        }
    }
}

impl Default for ChurnSettings {
    fn default() -> ChurnSettings {
        ChurnSettings {
            crashes_per_node_hour: 0.0,
            downtime: [Span::from_secs(60), Span::from_secs(20 * 60)],
        }
    }
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML, or not our fields.
    #[error("{0}")]
    Parse(String),
    /// A value out of its range.
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// Reads a scenario from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// The scenario as TOML: every option, derived or not, so a run can be replayed.
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Refuses what the simulator cannot run.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let fail = |why: String| Err(ScenarioError::Invalid(why));
        if !(2..=10_000).contains(&self.nodes) {
            return fail(format!("nodes must be 2..=10000, not {}", self.nodes));
        }
        if self.duration.0 == 0 {
            return fail("duration must be more than zero".into());
        }
        if self.chain.block_interval < Span::from_ms(1) {
            return fail("chain.block_interval must be at least 1ms".into());
        }
        if !(1..=24).contains(&self.chain.difficulty_bits) {
            return fail(format!(
                "chain.difficulty_bits must be 1..=24 (blocks are mined for real), not {}",
                self.chain.difficulty_bits
            ));
        }
        let [low, high] = self.network.latency;
        if low > high {
            return fail("network.latency is [min, max] with min <= max".into());
        }
        if !(self.network.jitter.is_finite() && (0.0..=2.0).contains(&self.network.jitter)) {
            return fail("network.jitter must be between 0 and 2".into());
        }
        if !(self.network.bandwidth_mbps.is_finite() && self.network.bandwidth_mbps >= 0.001) {
            return fail("network.bandwidth_mbps must be at least 0.001".into());
        }
        for (name, value) in [
            ("network.uplink_mbps", self.network.uplink_mbps),
            ("network.downlink_mbps", self.network.downlink_mbps),
            ("node.pool_bandwidth_mbps", self.node.pool_bandwidth_mbps),
        ] {
            if value.is_some_and(|mbps| !(mbps.is_finite() && mbps >= 0.001)) {
                return fail(format!("{name} must be at least 0.001"));
            }
        }
        if self.network.uplink_mbps.is_some() != self.network.downlink_mbps.is_some() {
            return fail(
                "network.uplink_mbps and network.downlink_mbps go together (a node's shared links)"
                    .into(),
            );
        }
        if self.node.pool_bandwidth_mbps.is_some()
            && self.network.model == "uniform"
            && self.network.uplink_mbps.is_none()
        {
            return fail(
                "node.pool_bandwidth_mbps is a node's shared bandwidth: set network.uplink_mbps and downlink_mbps, or a network.model of regions"
                    .into(),
            );
        }
        if crate::network::regions::named(&self.network.model).is_none()
            && self.network.model != "uniform"
        {
            return fail(format!(
                "network.model {:?} is unknown ({})",
                self.network.model,
                crate::network::regions::NAMES.join(", ")
            ));
        }
        if self.node.pools.len() > self.nodes
            || self
                .node
                .pools
                .iter()
                .any(|share| !(share.is_finite() && *share >= 0.0))
            || (!self.node.pools.is_empty() && self.node.pools.iter().sum::<f64>() <= 0.0)
        {
            return fail(format!(
                "node.pools lists at most {} shares, none negative, not all zero",
                self.nodes
            ));
        }
        if !self.node.pool_regions.is_empty() {
            let Some(model) = crate::network::regions::named(&self.network.model) else {
                return fail("node.pool_regions needs a network.model of regions".into());
            };
            if self.node.pool_regions.len() != self.node.pools.len() {
                return fail(format!(
                    "node.pool_regions names {} regions for {} pools",
                    self.node.pool_regions.len(),
                    self.node.pools.len()
                ));
            }
            if let Some(unknown) = self
                .node
                .pool_regions
                .iter()
                .find(|name| model.region(name).is_none())
            {
                return fail(format!(
                    "node.pool_regions: {unknown:?} is not a region of {} ({})",
                    model.name,
                    model.regions.join(", ")
                ));
            }
        }
        if self.node.pool_outbound >= self.nodes {
            return fail(format!(
                "node.pool_outbound must be below the {} nodes",
                self.nodes
            ));
        }
        if !(self.network.loss.is_finite() && (0.0..0.5).contains(&self.network.loss)) {
            return fail("network.loss must be in [0, 0.5)".into());
        }
        if self.node.block_request_timeout < Span::from_ms(1) {
            return fail("node.block_request_timeout must be at least 1ms".into());
        }
        if self.node.ping_interval < Span::from_ms(1) {
            return fail("node.ping_interval must be at least 1ms".into());
        }
        if self.node.outbound == 0 || self.node.inbound_max == 0 {
            return fail("node.outbound and node.inbound_max must be at least 1".into());
        }
        if !(self.transactions.rate.is_finite()
            && (0.0..=10_000.0).contains(&self.transactions.rate))
        {
            return fail("transactions.rate must be 0..=10000 per second".into());
        }
        if self.transactions.rebroadcast.0 == 0 {
            return fail("transactions.rebroadcast must be more than zero".into());
        }
        let churn = &self.churn;
        if !(churn.crashes_per_node_hour.is_finite()
            && (0.0..=60.0).contains(&churn.crashes_per_node_hour))
        {
            return fail("churn.crashes_per_node_hour must be 0..=60".into());
        }
        if churn.downtime[0] > churn.downtime[1] {
            return fail("churn.downtime is [min, max] with min <= max".into());
        }
        if let Some(adversary) = &self.adversary {
            if !["selfish", "liar"].contains(&adversary.strategy.as_str()) {
                return fail(format!(
                    "adversary.strategy {:?} is unknown (selfish, liar)",
                    adversary.strategy
                ));
            }
            if adversary.node >= self.nodes {
                return fail(format!("adversary.node {} is not a node", adversary.node));
            }
            if !(adversary.hash_share.is_finite() && (0.0..1.0).contains(&adversary.hash_share)) {
                return fail("adversary.hash_share must be in [0, 1)".into());
            }
        }
        crate::network::Topology::parse(&self.network.topology, self.nodes)
            .map_err(ScenarioError::Invalid)?;
        for scheduled in &self.events {
            match scheduled.action {
                Action::Partition { groups } if !(2..=self.nodes).contains(&groups) => {
                    return fail(format!(
                        "partition into {groups} groups of {} nodes",
                        self.nodes
                    ));
                }
                Action::Crash { node } | Action::Restart { node } if node >= self.nodes => {
                    return fail(format!(
                        "event names node {node}, but there are {}",
                        self.nodes
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        assert_eq!(parse_span("90").unwrap(), Span::from_secs(90));
        assert_eq!(parse_span("250ms").unwrap(), Span::from_ms(250));
        assert_eq!(parse_span("1.5s").unwrap(), Span::from_ms(1_500));
        assert_eq!(parse_span("1d").unwrap(), Span::from_secs(86_400));
        assert!(parse_span("5 parsecs").is_err());
        assert!(parse_span("400d").is_err());
        for text in ["10m", "6h", "1d", "250ms", "40us", "1500us"] {
            let span = parse_span(text).unwrap();
            assert_eq!(parse_span(&span.to_string()).unwrap(), span);
        }
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("535KB").unwrap(), ByteSize(535_000));
        assert_eq!(parse_size("0.25MB").unwrap(), ByteSize(250_000));
        assert_eq!(parse_size("2MiB").unwrap(), ByteSize(2_097_152));
        assert_eq!(parse_size("800").unwrap(), ByteSize(800));
        assert_eq!(parse_size("0").unwrap(), ByteSize(0));
        assert!(parse_size("1 GB").is_err());
        assert!(parse_size("65MB").is_err());
        assert!(parse_size("lots").is_err());
        for text in ["535KB", "1MB", "800B", "2097152B"] {
            let size = parse_size(text).unwrap();
            assert_eq!(parse_size(&size.to_string()).unwrap(), size);
        }
        let scenario = Scenario::from_toml_str(
            "nodes = 20\n[chain]\nblock_size = \"1MB\"\n[network]\nmodel = \"gervais-2016\"\n[node]\npools = [2.0, 1.0]\npool_regions = [\"europe\", \"japan\"]\npool_bandwidth_mbps = 100.0",
        )
        .unwrap();
        assert_eq!(scenario.chain.block_size, ByteSize(1_000_000));
        let again = Scenario::from_toml_str(&scenario.to_toml_string()).unwrap();
        assert_eq!(again.to_toml_string(), scenario.to_toml_string());
        for wrong in [
            "[network]\nmodel = \"bitcoin-1999\"",
            "[network]\nuplink_mbps = 5.0",
            "[node]\npools = [1.0]\npool_regions = [\"europe\"]",
            "[network]\nmodel = \"bitcoin-2019\"\n[node]\npools = [1.0]\npool_regions = [\"mars\"]",
            "[node]\npools = [1.0]\npool_bandwidth_mbps = 100.0",
            "[node]\npools = [-1.0]",
            "[network]\ntopology = \"random:bitcoin-1999\"",
        ] {
            assert!(Scenario::from_toml_str(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_file_names_only_what_it_changes_and_typos_are_errors() {
        let scenario = Scenario::from_toml_str(
            "name = \"x\"\nnodes = 7\n[chain]\nblock_interval = \"30s\"\n[[events]]\nat = \"1h\"\naction = \"partition\"\ngroups = 2\n",
        )
        .unwrap();
        assert_eq!(scenario.nodes, 7);
        assert_eq!(scenario.chain.block_interval, Span::from_secs(30));
        assert_eq!(scenario.chain.difficulty_bits, 8);
        assert_eq!(scenario.events[0].action, Action::Partition { groups: 2 });
        let again = Scenario::from_toml_str(&scenario.to_toml_string()).unwrap();
        assert_eq!(again.to_toml_string(), scenario.to_toml_string());
        assert!(Scenario::from_toml_str("nodez = 3").is_err());
        assert!(
            Scenario::from_toml_str("[[events]]\nat = \"1h\"\naction = \"heal\"\ngroupz = 2")
                .is_err()
        );
        assert!(Scenario::from_toml_str("nodes = 1").is_err());
        assert!(
            Scenario::from_toml_str("[[events]]\nat = \"1h\"\naction = \"crash\"\nnode = 99")
                .is_err()
        );
    }
}
