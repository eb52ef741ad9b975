//! The simulated network: who dials whom at start, what each link costs, partitions, and
//! the open connections.
//!
//! A link behaves like a TCP connection: messages arrive in order, each one waits for the
//! bytes before it (bandwidth), then crosses the link (latency, with jitter), and a lost
//! packet costs a retransmission timeout rather than the message. Bandwidth is either each
//! link's own, or each node's uplink and downlink shared by all its connections: a message
//! then waits for the sender's uplink (what it sends leaves one message after another) and
//! the receiver's downlink. With a model of regions ([`regions`]) each node is placed in a
//! region, which gives its bandwidth and, per pair of regions, the latency. A partition cuts
//! every connection that crosses it (both sides see the connection close, as with a reset)
//! and dials across it time out.

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::scenario::{Scenario, Span};

pub mod regions;

use regions::RegionModel;

/// Whom each node dials at start.
#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    /// Node `i` dials `i - 1`.
    Line,
    /// Node `i` dials `i + 1`, the last dials the first.
    Ring,
    /// Every node dials every lower one.
    Full,
    /// Every node dials random others, as many as its degree.
    Random(Degree),
}

/// How many others a node dials.
#[derive(Clone, Debug, PartialEq)]
pub enum Degree {
    /// The same for every node.
    Fixed(usize),
    /// Drawn per node from a measured distribution (`cdf[k]`: the share of nodes with at
    /// most `k` outbound connections).
    Measured(&'static [f64]),
    /// Half (rounded up) of a node's connection count, drawn from a law that is uniform
    /// within each of the bins `[edges[i], edges[i + 1])` with probability `weights[i]`:
    /// for a model whose counts are of connections either way, which a node makes half
    /// of and receives the other half of.
    HalfOfConnections {
        /// The bins' edges.
        edges: &'static [usize],
        /// Each bin's weight.
        weights: &'static [f64],
    },
}

impl Degree {
    /// How many a node dials.
    fn draw(&self, rng: &mut impl Rng) -> usize {
        match *self {
            Degree::Fixed(k) => k,
            Degree::Measured(cdf) => {
                let u: f64 = rng.random();
                cdf.partition_point(|&c| c < u)
            }
            Degree::HalfOfConnections { edges, weights } => {
                let bin = regions::pick_weighted(weights, rng.random::<f64>());
                let connections = rng.random_range(edges[bin]..edges[bin + 1]);
                connections.div_ceil(2)
            }
        }
    }
}

impl Topology {
    /// Parses `line`, `ring`, `full`, `random:K`, `random:bitcoin-2015` or
    /// `random:gervais-2016` for `nodes` nodes.
    pub fn parse(text: &str, nodes: usize) -> Result<Topology, String> {
        match text {
            "line" => Ok(Topology::Line),
            "ring" => Ok(Topology::Ring),
            "full" => Ok(Topology::Full),
            "random:bitcoin-2015" => Ok(Topology::Random(Degree::Measured(
                regions::BITCOIN_2015_OUT_DEGREE_CDF,
            ))),
            "random:gervais-2016" => Ok(Topology::Random(Degree::HalfOfConnections {
                edges: regions::GERVAIS_2016_CONNECTION_EDGES,
                weights: regions::GERVAIS_2016_CONNECTION_WEIGHTS,
            })),
            other => match other.strip_prefix("random:").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 && k < nodes => Ok(Topology::Random(Degree::Fixed(k))),
                Some(_) => Err(format!(
                    "network.topology random:K needs 1 <= K < nodes ({nodes}), or random:bitcoin-2015 or random:gervais-2016, not {other:?}"
                )),
                None => Err(format!(
                    "network.topology is line, ring, full, random:K, random:bitcoin-2015 or random:gervais-2016, not {other:?}"
                )),
            },
        }
    }

    /// Whether each node keeps as many outbound connections as it dials at start (its
    /// degree is part of the topology), rather than `node.outbound`.
    pub fn sets_outbound(&self) -> bool {
        matches!(self, Topology::Random(degree) if !matches!(degree, Degree::Fixed(_)))
    }

    /// For each node, the nodes it dials.
    pub fn dials(&self, nodes: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
        let mut dials = vec![Vec::new(); nodes];
        match self {
            Topology::Line => (1..nodes).for_each(|i| dials[i].push(i - 1)),
            Topology::Ring => (0..nodes).for_each(|i| dials[i].push((i + 1) % nodes)),
            Topology::Full => (0..nodes).for_each(|i| dials[i].extend(0..i)),
            Topology::Random(degree) => {
                let mut others: Vec<usize> = (0..nodes).collect();
                for (i, targets) in dials.iter_mut().enumerate() {
                    // A fixed K is checked to be in range when parsed; a drawn one is kept in it.
                    let k = degree.draw(rng).clamp(1, nodes - 1);
                    others.shuffle(rng);
                    targets.extend(others.iter().copied().filter(|&o| o != i).take(k));
                }
            }
        }
        dials
    }
}

/// `k` random nodes other than `node`, of `nodes`.
pub fn random_others(node: usize, k: usize, nodes: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut others: Vec<usize> = (0..nodes).filter(|&o| o != node).collect();
    others.shuffle(rng);
    others.truncate(k);
    others
}

/// The address a node listens on.
pub fn address_of(node: usize) -> String {
    format!("node{node}")
}

/// The node listening on `address`, if any.
pub fn node_of(address: &str, nodes: usize) -> Option<usize> {
    let index: usize = address.strip_prefix("node")?.parse().ok()?;
    (index < nodes && address_of(index) == address).then_some(index)
}

/// What every link costs.
#[derive(Clone, Debug)]
pub struct LinkModel {
    seed: u64,
    latency: [Span; 2],
    jitter: f64,
    /// Microseconds per byte of a link's own bandwidth (when nodes do not share theirs).
    us_per_byte: f64,
    loss: f64,
    /// The model of regions, and each node's region.
    regions: Option<(&'static RegionModel, Vec<u8>)>,
    /// Each node's shared uplink and downlink, if bandwidth is per node.
    shared: Option<SharedLinks>,
}

/// The most bytes a message can have and still go ahead of long ones on a shared link: one
/// Ethernet packet's payload.
const SHORT_MESSAGE_BYTES: usize = 1_500;

/// Every node's uplink and downlink, and when each is next free.
#[derive(Clone, Debug)]
struct SharedLinks {
    up_us_per_byte: Vec<f64>,
    down_us_per_byte: Vec<f64>,
    up_free: Vec<u64>,
    down_free: Vec<u64>,
}

impl LinkModel {
    /// The model for `scenario`; `seed` fixes each pair's base latency and each node's
    /// region and bandwidth.
    pub fn new(scenario: &Scenario, seed: u64) -> LinkModel {
        let settings = &scenario.network;
        let nodes = scenario.nodes;
        let regions = regions::named(&settings.model).map(|model| {
            let pool_regions = &scenario.node.pool_regions;
            let placed = (0..nodes)
                .map(
                    |node| match pool_regions.get(node).and_then(|r| model.region(r)) {
                        Some(region) => region as u8,
                        None => model.place(unit(seed, 0x7265_6769_6f6e, node as u64)) as u8,
                    },
                )
                .collect::<Vec<u8>>();
            (model, placed)
        });
        let us_per_byte = |mbps: f64| 8.0 / mbps;
        let mut shared = match (&regions, settings.uplink_mbps, settings.downlink_mbps) {
            (Some((model, placed)), _, _) => Some(SharedLinks::new(
                (0..nodes)
                    .map(|node| {
                        let region = usize::from(placed[node]);
                        let up = model.upload[region].draw(unit(seed, 0x7570, node as u64));
                        let down = model.download[region].draw(unit(seed, 0x646f, node as u64));
                        (us_per_byte(up), us_per_byte(down))
                    })
                    .collect(),
            )),
            (None, Some(up), Some(down)) => {
                Some(SharedLinks::new(vec![
                    (us_per_byte(up), us_per_byte(down));
                    nodes
                ]))
            }
            _ => None,
        };
        let pools = scenario.node.pools.len();
        // Checked: pool bandwidth comes with shared links.
        if let (Some(mbps), Some(links)) = (scenario.node.pool_bandwidth_mbps, shared.as_mut()) {
            for pool in 0..pools {
                links.up_us_per_byte[pool] = us_per_byte(mbps);
                links.down_us_per_byte[pool] = us_per_byte(mbps);
            }
        }
        LinkModel {
            seed,
            latency: settings.latency,
            jitter: settings.jitter,
            us_per_byte: us_per_byte(settings.bandwidth_mbps),
            loss: settings.loss,
            regions,
            shared,
        }
    }

    /// The region node `node` is in, by name (`None` without a model of regions).
    pub fn region_of(&self, node: usize) -> Option<&'static str> {
        let (model, placed) = self.regions.as_ref()?;
        Some(model.regions[usize::from(*placed.get(node)?)])
    }

    /// The base one-way latency between `a` and `b` (the same both ways, the same all run).
    pub fn base_latency(&self, a: usize, b: usize) -> u64 {
        let pair = (a.min(b) as u64) << 32 | a.max(b) as u64;
        let unit = (mix(self.seed ^ mix(pair)) >> 11) as f64 / (1u64 << 53) as f64;
        if let Some((model, placed)) = &self.regions {
            let (ra, rb) = (usize::from(placed[a]), usize::from(placed[b]));
            let mean_ms = model.latency_ms[ra.min(rb)][ra.max(rb)];
            return (model.latency.draw(mean_ms, unit) * 1e3).round() as u64;
        }
        let (low, high) = (self.latency[0].0, self.latency[1].0);
        low + ((high - low) as f64 * unit) as u64
    }

    /// Microseconds `bytes` occupy a link of its own bandwidth.
    pub fn transmission(&self, bytes: usize) -> u64 {
        (bytes as f64 * self.us_per_byte).ceil() as u64
    }

    /// When `bytes` sent at `start` from `from` to `to` have all left the sender and all
    /// reached the receiver's side of its downlink, with each node's links shared; `None`
    /// when every link has its own bandwidth.
    ///
    /// Long messages (blocks) take their turn, first come first served, as Gervais et al.'s
    /// simulator queues block transfers. A message of one packet or less goes ahead of them,
    /// as TCP's fair sharing lets a short message on another connection through while a long
    /// transfer is under way, but its bytes still push back what waits: the link carries
    /// them all. Without this a handshake queued behind a node's block uploads times out,
    /// and the retries pile up more of them.
    fn through_shared(&mut self, from: usize, to: usize, bytes: usize, start: u64) -> Option<u64> {
        let links = self.shared.as_mut()?;
        let up = (bytes as f64 * links.up_us_per_byte[from]).ceil() as u64;
        let down = (bytes as f64 * links.down_us_per_byte[to]).ceil() as u64;
        if bytes <= SHORT_MESSAGE_BYTES {
            links.up_free[from] = links.up_free[from].max(start) + up;
            links.down_free[to] = links.down_free[to].max(start) + down;
            return Some(start + up.max(down));
        }
        let sent_from = start.max(links.up_free[from]);
        let sent = sent_from + up;
        links.up_free[from] = sent;
        // The receiver's downlink takes the bytes as they come, no faster than it can.
        let received_from = sent_from.max(links.down_free[to]);
        let received = sent.max(received_from + down);
        links.down_free[to] = received;
        Some(received)
    }

    /// One crossing of a link whose base latency is `base`: jitter, then any retransmissions.
    pub fn crossing(&self, base: u64, rng: &mut impl Rng) -> u64 {
        let mut delay = base as f64;
        if self.jitter > 0.0 {
            delay *= (self.jitter * standard_normal(rng)).exp();
        }
        // TCP's retransmission timeout is at least 200 ms, and about an RTT plus margin.
        let rto = (4.0 * base as f64).max(200_000.0);
        while self.loss > 0.0 && rng.random::<f64>() < self.loss {
            delay += rto;
        }
        delay.round() as u64
    }
}

impl SharedLinks {
    /// Links of these (uplink, downlink) microseconds per byte, one pair per node; a
    /// downlink of 0 is as fast as the uplink.
    fn new(per_node: Vec<(f64, f64)>) -> SharedLinks {
        let nodes = per_node.len();
        SharedLinks {
            up_us_per_byte: per_node.iter().map(|&(up, _)| up).collect(),
            down_us_per_byte: per_node
                .iter()
                .map(|&(up, down)| if down > 0.0 { down } else { up })
                .collect(),
            up_free: vec![0; nodes],
            down_free: vec![0; nodes],
        }
    }
}

/// A uniform draw in [0, 1) fixed by `seed`, a `tag` for what it is for, and `index`.
fn unit(seed: u64, tag: u64, index: u64) -> f64 {
    (mix(seed ^ mix(tag ^ mix(index))) >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal sample (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One end of a connection: the node and the peer id that node knows it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// The node.
    pub node: usize,
    /// Its id for this connection.
    pub peer: u64,
    /// Whether this end still has the connection open.
    pub open: bool,
}

/// An open (or half-closed) connection between two nodes.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `ends[0]` dialled `ends[1]`.
    pub ends: [End; 2],
    /// The pair's base latency.
    pub latency: u64,
    /// Per direction (0: from `ends[0]`), when the link is free to send again.
    pub free_at: [u64; 2],
    /// Per direction, the last arrival time, so messages never overtake each other.
    pub last_arrival: [u64; 2],
}

impl Connection {
    /// When a message of `bytes` sent at `now` from side `from` arrives.
    pub fn schedule(
        &mut self,
        from: usize,
        bytes: usize,
        now: u64,
        model: &mut LinkModel,
        rng: &mut impl Rng,
    ) -> u64 {
        let start = now.max(self.free_at[from]);
        let (sender, receiver) = (self.ends[from].node, self.ends[1 - from].node);
        let through = match model.through_shared(sender, receiver, bytes, start) {
            Some(received) => received,
            None => start + model.transmission(bytes),
        };
        self.free_at[from] = through;
        let arrival = (through + model.crossing(self.latency, rng)).max(self.last_arrival[from]);
        self.last_arrival[from] = arrival;
        arrival
    }

    /// Which side `node` is on, by peer id as well (a node may dial itself).
    pub fn side_of(&self, node: usize, peer: u64) -> Option<usize> {
        self.ends
            .iter()
            .position(|end| end.node == node && end.peer == peer)
    }
}

/// Which group each node is in while partitioned (all zero when whole).
#[derive(Clone, Debug)]
pub struct Partition {
    group: Vec<usize>,
}

impl Partition {
    /// A whole network of `nodes`.
    pub fn whole(nodes: usize) -> Partition {
        Partition {
            group: vec![0; nodes],
        }
    }

    /// Splits into `groups` runs of consecutive nodes.
    pub fn split(nodes: usize, groups: usize) -> Partition {
        Partition {
            group: (0..nodes).map(|i| i * groups / nodes).collect(),
        }
    }

    /// Whether `a` and `b` can reach each other.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.group[a] == self.group[b]
    }

    /// Whether the network is whole.
    pub fn is_whole(&self) -> bool {
        self.group.iter().all(|&g| g == 0)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::scenario::NetworkSettings;

    #[test]
    fn topologies_and_addresses() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            Topology::parse("line", 3).unwrap().dials(3, &mut rng),
            vec![vec![], vec![0], vec![1]]
        );
        assert_eq!(
            Topology::parse("ring", 3).unwrap().dials(3, &mut rng),
            vec![vec![1], vec![2], vec![0]]
        );
        let random = Topology::parse("random:2", 5).unwrap().dials(5, &mut rng);
        assert!(
            random
                .iter()
                .enumerate()
                .all(|(i, d)| d.len() == 2 && !d.contains(&i))
        );
        assert!(Topology::parse("random:5", 5).is_err());
        assert!(Topology::parse("star", 3).is_err());
        assert_eq!(node_of(&address_of(42), 50), Some(42));
        assert_eq!(node_of("node042", 50), None);
        assert_eq!(node_of("node50", 50), None);
    }

    #[test]
    fn links_keep_order_and_pay_for_bytes() {
        let scenario = Scenario {
            network: NetworkSettings {
                latency: [Span::from_ms(10), Span::from_ms(100)],
                jitter: 0.5,
                bandwidth_mbps: 8.0,
                loss: 0.2,
                ..NetworkSettings::default()
            },
            ..Scenario::default()
        };
        let mut model = LinkModel::new(&scenario, 7);
        let base = model.base_latency(3, 9);
        assert_eq!(base, model.base_latency(9, 3));
        assert!((10_000..=100_000).contains(&base));
        // 8 Mbit/s: one byte per microsecond.
        assert_eq!(model.transmission(1_000), 1_000);
        let mut connection = Connection {
            ends: [
                End {
                    node: 3,
                    peer: 1,
                    open: true,
                },
                End {
                    node: 9,
                    peer: 1,
                    open: true,
                },
            ],
            latency: base,
            free_at: [0; 2],
            last_arrival: [0; 2],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut last = 0;
        for _ in 0..1_000 {
            let arrival = connection.schedule(0, 100, 0, &mut model, &mut rng);
            assert!(arrival >= last, "messages overtook each other");
            last = arrival;
        }
        // A thousand 100-byte messages need 100 ms of link time at least.
        assert!(last >= 100_000);
        let split = Partition::split(10, 2);
        assert!(split.reachable(0, 4) && !split.reachable(4, 5) && !split.is_whole());
    }

    fn connection(a: usize, b: usize, latency: u64) -> Connection {
        Connection {
            ends: [
                End {
                    node: a,
                    peer: 1,
                    open: true,
                },
                End {
                    node: b,
                    peer: 1,
                    open: true,
                },
            ],
            latency,
            free_at: [0; 2],
            last_arrival: [0; 2],
        }
    }

    #[test]
    fn a_shared_uplink_sends_one_message_after_another() {
        // 8 Mbit/s: a megabyte takes a second.
        let mut scenario = Scenario {
            nodes: 3,
            network: NetworkSettings {
                jitter: 0.0,
                latency: [Span::from_ms(10), Span::from_ms(10)],
                bandwidth_mbps: 8.0,
                ..NetworkSettings::default()
            },
            ..Scenario::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let arrivals = |model: &mut LinkModel, rng: &mut ChaCha8Rng| {
            let (mut to_1, mut to_2) = (connection(0, 1, 10_000), connection(0, 2, 10_000));
            [
                to_1.schedule(0, 1_000_000, 0, model, rng),
                to_2.schedule(0, 1_000_000, 0, model, rng),
            ]
        };
        // Each link its own 8 Mbit/s: both megabytes arrive after a second and 10 ms.
        let mut per_link = LinkModel::new(&scenario, 7);
        assert_eq!(arrivals(&mut per_link, &mut rng), [1_010_000, 1_010_000]);
        // One 8 Mbit/s uplink for both: the second waits for the first.
        scenario.network.uplink_mbps = Some(8.0);
        scenario.network.downlink_mbps = Some(80.0);
        let mut shared = LinkModel::new(&scenario, 7);
        assert_eq!(arrivals(&mut shared, &mut rng), [1_010_000, 2_010_000]);
        // A slow downlink holds the bytes back as well: 1 Mbit/s takes 8 s a megabyte.
        scenario.network.downlink_mbps = Some(1.0);
        let mut slow = LinkModel::new(&scenario, 7);
        let mut to_1 = connection(0, 1, 10_000);
        let first = to_1.schedule(0, 1_000_000, 0, &mut slow, &mut rng);
        let second = to_1.schedule(0, 1_000_000, 0, &mut slow, &mut rng);
        assert_eq!([first, second], [8_010_000, 16_010_000]);
        // A short message on another connection goes ahead of a long one under way, and
        // its bytes push the long ones back: 1,000 bytes at 8 Mbit/s are 1 ms.
        let mut shared = LinkModel::new(&scenario, 7);
        shared.shared.as_mut().unwrap().down_us_per_byte = vec![0.1; 3];
        let (mut to_1, mut to_2) = (connection(0, 1, 10_000), connection(0, 2, 10_000));
        let long = to_1.schedule(0, 1_000_000, 0, &mut shared, &mut rng);
        let short = to_2.schedule(0, 1_000, 0, &mut shared, &mut rng);
        let long_after = to_1.schedule(0, 1_000_000, 0, &mut shared, &mut rng);
        assert_eq!([long, short, long_after], [1_010_000, 11_000, 2_011_000]);
    }

    #[test]
    fn regions_place_nodes_by_share_and_give_each_pair_its_latency() {
        let mut scenario = Scenario {
            nodes: 10_000,
            ..Scenario::default()
        };
        scenario.network.model = "gervais-2016".into();
        scenario.node.pools = vec![2.0, 1.0];
        scenario.node.pool_regions = vec!["japan".into(), "australia".into()];
        let model = LinkModel::new(&scenario, 11);
        assert_eq!(model.region_of(0), Some("japan"));
        assert_eq!(model.region_of(1), Some("australia"));
        let regions = regions::named("gervais-2016").unwrap();
        let in_region = |name: &str| -> Vec<usize> {
            (2..10_000)
                .filter(|&n| model.region_of(n) == Some(name))
                .collect()
        };
        for (name, share) in regions.regions.iter().zip(regions.shares) {
            let placed = in_region(name).len() as f64 / 9_998.0;
            assert!(
                (placed - share).abs() < 0.015,
                "{name}: {placed} of {share}"
            );
        }
        // Latency between regions averages the table's mean for the pair.
        let america: Vec<usize> = in_region("north-america").into_iter().take(200).collect();
        let asia: Vec<usize> = in_region("asia-pacific").into_iter().take(200).collect();
        let mean = |a: &[usize], b: &[usize]| {
            let pairs: Vec<u64> = a
                .iter()
                .zip(b.iter().rev())
                .filter(|(x, y)| x != y)
                .map(|(&x, &y)| model.base_latency(x, y))
                .collect();
            pairs.iter().sum::<u64>() as f64 / pairs.len() as f64 / 1e3
        };
        let within = mean(&america, &america);
        let across = mean(&america, &asia);
        assert!((within - 35.5).abs() < 2.0, "north america: {within} ms");
        assert!(
            (across - 310.11).abs() < 8.0,
            "north america to asia: {across} ms"
        );
        assert_eq!(
            model.base_latency(america[0], asia[0]),
            model.base_latency(asia[0], america[0])
        );
    }

    #[test]
    fn measured_degrees_give_each_node_its_own_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (name, mean, most) in [
            ("random:bitcoin-2015", 8.645, 20),
            ("random:gervais-2016", 4.717, 59),
        ] {
            let topology = Topology::parse(name, 3_000).unwrap();
            assert!(topology.sets_outbound());
            let dials = topology.dials(3_000, &mut rng);
            let counts: Vec<usize> = dials.iter().map(Vec::len).collect();
            let measured = counts.iter().sum::<usize>() as f64 / 3_000.0;
            assert!((measured - mean).abs() < 0.35, "{name}: mean {measured}");
            assert!(counts.iter().all(|&k| (1..=most).contains(&k)), "{name}");
            assert!(
                counts.iter().min() != counts.iter().max(),
                "{name}: one figure for all"
            );
        }
        assert!(!Topology::parse("random:4", 10).unwrap().sets_outbound());
    }
}
