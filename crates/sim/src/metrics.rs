//! What the simulator records while it runs: every block mined (by whom, when, on what),
//! when each node first had each block, reorgs, and the transfers the wallet submitted.

use std::collections::BTreeMap;

use powchain_chain::hashing::{HashMap, HashSet};
use powchain_chain::{BlockHash, TxId};

/// A mined block.
#[derive(Clone, Debug)]
pub struct MinedBlock {
    /// Its hash.
    pub hash: BlockHash,
    /// Its parent.
    pub parent: BlockHash,
    /// Its height.
    pub height: u64,
    /// Who mined it.
    pub miner: usize,
    /// When (simulated microseconds).
    pub at: u64,
}

/// Everything recorded.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Blocks in the order they were mined.
    pub blocks: Vec<MinedBlock>,
    /// Hash -> index in `blocks`.
    pub index: HashMap<BlockHash, usize>,
    /// (node, block index) pairs that have arrived, with the delay after mining in µs.
    arrived: HashSet<(usize, usize)>,
    /// Per block, the delays to each node that received it, in µs.
    pub delays: Vec<Vec<u64>>,
    /// Per node, the sum of its delays for honest blocks (µs) and how many.
    pub node_delays: Vec<(u64, u64)>,
    /// The adversary's node, whose blocks `node_delays` leaves out.
    adversary: Option<usize>,
    /// Reorgs over all nodes, and the deepest.
    pub reorgs: usize,
    /// The most blocks one reorg disconnected.
    pub deepest_reorg: usize,
    /// Transfers the network acknowledged: id -> when.
    pub submitted: BTreeMap<TxId, u64>,
    /// Transfers a node refused from the wallet.
    pub refused: usize,
    /// The last reason a node gave for dropping an acknowledged transfer from its mempool
    /// (what the no-transfer-lost check says of a lost one).
    pub last_drop: HashMap<TxId, String>,
    /// Messages sent and their bytes.
    pub messages: u64,
    /// Bytes sent, frames included.
    pub bytes: u64,
    /// Honest nodes that disconnected honest peers for misbehaviour: a protocol bug.
    pub honest_bans: Vec<String>,
    /// Each heal of a partition during the run, and the first moment after it when every
    /// honest node was on one tip (µs).
    pub heals: Vec<Heal>,
}

/// A partition healed.
#[derive(Clone, Copy, Debug)]
pub struct Heal {
    /// When.
    pub at: u64,
    /// When every honest node was first on one tip again.
    pub agreed: Option<u64>,
}

impl Metrics {
    /// Nothing recorded yet, for `nodes` nodes of which `adversary` (if any) misbehaves.
    pub fn for_nodes(nodes: usize, adversary: Option<usize>) -> Metrics {
        Metrics {
            node_delays: vec![(0, 0); nodes],
            adversary,
            ..Metrics::default()
        }
    }

    /// A block was mined.
    pub fn mined(&mut self, block: MinedBlock) {
        let index = self.blocks.len();
        self.index.insert(block.hash, index);
        self.arrived.insert((block.miner, index));
        self.blocks.push(block);
        self.delays.push(Vec::new());
    }

    /// Who mined `hash`, if it was mined in this run.
    pub fn miner_of(&self, hash: &BlockHash) -> Option<usize> {
        self.index.get(hash).map(|&i| self.blocks[i].miner)
    }

    /// `node` received `hash` at `at`; only the first arrival counts.
    pub fn arrived(&mut self, node: usize, hash: &BlockHash, at: u64) {
        let Some(&index) = self.index.get(hash) else {
            return;
        };
        if self.arrived.insert((node, index)) {
            let delay = at.saturating_sub(self.blocks[index].at);
            self.delays[index].push(delay);
            if Some(self.blocks[index].miner) != self.adversary
                && let Some((sum, count)) = self.node_delays.get_mut(node)
            {
                *sum += delay;
                *count += 1;
            }
        }
    }
}
