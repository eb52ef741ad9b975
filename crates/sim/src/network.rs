//! The simulated network: who dials whom at start, what each link costs, partitions, and
//! the open connections.
//!
//! A link behaves like a TCP connection: messages arrive in order, each one waits for the
//! bytes before it (bandwidth), then crosses the link (latency, with jitter), and a lost
//! packet costs a retransmission timeout rather than the message. A partition cuts every
//! connection that crosses it (both sides see the connection close, as with a reset) and
//! dials across it time out.

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::scenario::{NetworkSettings, Span};

/// Whom each node dials at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Node `i` dials `i - 1`.
    Line,
    /// Node `i` dials `i + 1`, the last dials the first.
    Ring,
    /// Every node dials every lower one.
    Full,
    /// Every node dials `K` random others.
    Random(usize),
}

impl Topology {
    /// Parses `line`, `ring`, `full` or `random:K` for `nodes` nodes.
    pub fn parse(text: &str, nodes: usize) -> Result<Topology, String> {
        match text {
            "line" => Ok(Topology::Line),
            "ring" => Ok(Topology::Ring),
            "full" => Ok(Topology::Full),
            other => match other.strip_prefix("random:").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 && k < nodes => Ok(Topology::Random(k)),
                Some(_) => Err(format!(
                    "network.topology random:K needs 1 <= K < nodes ({nodes}), not {other:?}"
                )),
                None => Err(format!(
                    "network.topology is line, ring, full or random:K, not {other:?}"
                )),
            },
        }
    }

    /// For each node, the nodes it dials.
    pub fn dials(&self, nodes: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
        let mut dials = vec![Vec::new(); nodes];
        match self {
            Topology::Line => (1..nodes).for_each(|i| dials[i].push(i - 1)),
            Topology::Ring => (0..nodes).for_each(|i| dials[i].push((i + 1) % nodes)),
            Topology::Full => (0..nodes).for_each(|i| dials[i].extend(0..i)),
            Topology::Random(k) => {
                let mut others: Vec<usize> = (0..nodes).collect();
                for (i, targets) in dials.iter_mut().enumerate() {
                    others.shuffle(rng);
                    targets.extend(others.iter().copied().filter(|&o| o != i).take(*k));
                }
            }
        }
        dials
    }
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
    /// Microseconds per byte.
    us_per_byte: f64,
    loss: f64,
}

impl LinkModel {
    /// The model for `settings`; `seed` fixes each pair's base latency.
    pub fn new(settings: &NetworkSettings, seed: u64) -> LinkModel {
        LinkModel {
            seed,
            latency: settings.latency,
            jitter: settings.jitter,
            us_per_byte: 8.0 / settings.bandwidth_mbps,
            loss: settings.loss,
        }
    }

    /// The base one-way latency between `a` and `b` (the same both ways, the same all run).
    pub fn base_latency(&self, a: usize, b: usize) -> u64 {
        let (low, high) = (self.latency[0].0, self.latency[1].0);
        let pair = (a.min(b) as u64) << 32 | a.max(b) as u64;
        let unit = (mix(self.seed ^ mix(pair)) >> 11) as f64 / (1u64 << 53) as f64;
        low + ((high - low) as f64 * unit) as u64
    }

    /// Microseconds `bytes` occupy a link.
    pub fn transmission(&self, bytes: usize) -> u64 {
        (bytes as f64 * self.us_per_byte).ceil() as u64
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
        model: &LinkModel,
        rng: &mut impl Rng,
    ) -> u64 {
        let start = now.max(self.free_at[from]);
        self.free_at[from] = start + model.transmission(bytes);
        let arrival =
            (self.free_at[from] + model.crossing(self.latency, rng)).max(self.last_arrival[from]);
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
        let settings = NetworkSettings {
            latency: [Span::from_ms(10), Span::from_ms(100)],
            jitter: 0.5,
            bandwidth_mbps: 8.0,
            loss: 0.2,
            ..NetworkSettings::default()
        };
        let model = LinkModel::new(&settings, 7);
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
            let arrival = connection.schedule(0, 100, 0, &model, &mut rng);
            assert!(arrival >= last, "messages overtook each other");
            last = arrival;
        }
        // A thousand 100-byte messages need 100 ms of link time at least.
        assert!(last >= 100_000);
        let split = Partition::split(10, 2);
        assert!(split.reachable(0, 4) && !split.reachable(4, 5) && !split.is_whole());
    }
}
