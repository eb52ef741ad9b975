//! After a run: the named checks, the report (devnet's keys and the simulator's own) and
//! the drawings.
//!
//! The checks are the properties a proof-of-work network promises (docs/ARCHITECTURE.md,
//! "Reliability"):
//! - `agreement`: every honest node is on one tip once the network is healed and quiet;
//! - `no-transfer-lost`: every transfer the network acknowledged is on the best chain or
//!   still waiting in some node's mempool;
//! - `supply`: on every node, balances add up to the genesis allocations plus the rewards;
//! - `replay`: every node's state equals a replay of its best chain from genesis;
//! - `no-honest-ban`: no honest node disconnected an honest peer for misbehaviour (that
//!   would be a protocol bug; the check caught one in the simulator itself while it was
//!   being written).

use std::collections::BTreeMap;

use powchain_chain::hashing::HashSet;
use powchain_chain::{Block, BlockHash, Chain, ChainConfig, MemStore, Timestamp, TxId};
use powchain_protocol::Node;
use serde::Serialize;

use crate::engine::Simulation;
use crate::report::{
    Percentiles, Report, Slice, TipReport, TreeBlock, percentiles, round3, stale_rate,
};

/// Points on the plot over time.
const SLICES: u64 = 24;

/// A named check and how it went.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// How the adversary did.
#[derive(Clone, Debug, Serialize)]
pub struct AdversaryReport {
    /// Which node.
    pub node: usize,
    /// Its strategy.
    pub strategy: String,
    /// Its share of the hash power.
    pub hash_share: f64,
    /// Its share of the final best chain's blocks.
    pub best_chain_share: f64,
    /// Private blocks it gave up.
    pub abandoned_blocks: usize,
    /// Tie races (its block against an honest one of the same height) that an honest
    /// miner's next block settled.
    pub races_settled_by_honest: usize,
    /// The share of those settled on its block: Eyal and Sirer's gamma as achieved (`null`
    /// with no race).
    pub gamma: Option<f64>,
}

/// The simulator's report: devnet's keys, then its own.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// The scenario's name.
    pub scenario: String,
    /// The seed that replays this run.
    pub seed: u64,
    /// The keys devnet reports too.
    #[serde(flatten)]
    pub summary: Report,
    /// From the end of mining to every honest node on one tip (`null`: never).
    pub settle_seconds: Option<f64>,
    /// Per partition healed while mining went on, from the heal to the first moment every
    /// honest node was on one tip (`null`: not before mining stopped).
    pub heal_to_agreement_seconds: Vec<Option<f64>>,
    /// Per block, the time until 90% of the other nodes had it.
    pub reach_90_percent_ms: Percentiles,
    /// The 95th percentile of `propagation_ms`: how long the tail is.
    pub propagation_p95_ms: f64,
    /// Per node, the mean delay from an honest block's mining to its arrival there;
    /// percentiles over the nodes (Gervais et al.'s "median block propagation time" is
    /// this `p50`).
    pub propagation_node_mean_ms: Percentiles,
    /// Transfers a node refused from the wallet.
    pub tx_refused: usize,
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent, frames included.
    pub bytes: u64,
    /// Simulator events handled.
    pub events: u64,
    /// The adversary, if any.
    pub adversary: Option<AdversaryReport>,
    /// The named checks.
    pub checks: Vec<Check>,
    /// Stale rate and propagation over time.
    pub timeline: Vec<Slice>,
}

impl SimReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The checks that failed, each as `name: what was found`.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }
}

/// The report and the drawings.
pub struct Outcome {
    /// The report.
    pub report: SimReport,
    /// The block tree, SVG.
    pub tree_svg: String,
    /// Stale rate and propagation over time, SVG.
    pub timeline_svg: String,
}

/// Judges a finished run.
pub fn finish(sim: &Simulation) -> Outcome {
    let best = reference_chain(sim);
    let on_best: HashSet<BlockHash> = best.iter().map(|b| b.hash()).collect();
    let metrics = &sim.metrics;
    let mined = metrics.blocks.len();
    let stale = metrics
        .blocks
        .iter()
        .filter(|b| !on_best.contains(&b.hash))
        .count();
    let others = sim.scenario.nodes.saturating_sub(1).max(1);
    let mut delays: Vec<f64> = Vec::new();
    let mut reach_90: Vec<f64> = Vec::new();
    for (index, block_delays) in metrics.delays.iter().enumerate() {
        if !sim.is_honest(metrics.blocks[index].miner) {
            continue;
        }
        delays.extend(block_delays.iter().map(|&us| us as f64 / 1e3));
        let mut sorted = block_delays.clone();
        sorted.sort_unstable();
        let needed = (others * 9).div_ceil(10);
        if needed > 0 && sorted.len() >= needed {
            reach_90.push(sorted[needed - 1] as f64 / 1e3);
        }
    }
    // Confirmations: from submission to the mining of the best-chain block holding it.
    let mut confirmed: BTreeMap<TxId, f64> = BTreeMap::new();
    for block in &best {
        let Some(&index) = metrics.index.get(&block.hash()) else {
            continue;
        };
        for tx in &block.txs {
            let id = tx.id();
            if let Some(&submitted) = metrics.submitted.get(&id) {
                let delay = metrics.blocks[index].at.saturating_sub(submitted) as f64 / 1e3;
                confirmed.insert(id, delay);
            }
        }
    }
    let mut confirmation: Vec<f64> = confirmed.values().copied().collect();
    let seconds = sim.scenario.duration.as_secs_f64();
    let tips: Vec<TipReport> = (0..sim.scenario.nodes)
        .filter_map(|i| {
            let node = sim.node(i)?;
            let tip = node.chain().tip();
            Some(TipReport {
                node: i,
                height: tip.height.0,
                hash: tip.hash.to_string(),
            })
        })
        .collect();
    let mut node_means: Vec<f64> = metrics
        .node_delays
        .iter()
        .filter(|&&(_, count)| count > 0)
        .map(|&(sum, count)| sum as f64 / count as f64 / 1e3)
        .collect();
    let summary = Report {
        nodes: sim.scenario.nodes,
        seconds: round3(seconds),
        blocks_mined: mined,
        stale_blocks: stale,
        stale_rate: round3(stale_rate(stale, mined)),
        reorgs: metrics.reorgs,
        deepest_reorg: metrics.deepest_reorg,
        propagation_ms: percentiles(&mut delays),
        tx_submitted: metrics.submitted.len(),
        tx_confirmed: confirmed.len(),
        tx_confirmation_ms: percentiles(&mut confirmation),
        tx_per_sec: round3(confirmed.len() as f64 / seconds.max(1e-9)),
        converged: sim.honest_tips().len() == 1,
        tips,
    };
    // `percentiles` sorted the delays.
    let propagation_p95_ms = match delays.len() {
        0 => 0.0,
        n => round3(delays[((n as f64 - 1.0) * 0.95).round() as usize]),
    };
    let adversary = sim.adversary.as_ref().map(|adversary| {
        let own = best
            .iter()
            .filter(|b| metrics.miner_of(&b.hash()) == Some(adversary.node()))
            .count();
        let mined_on_best = best
            .iter()
            .filter(|b| metrics.index.contains_key(&b.hash()))
            .count();
        AdversaryReport {
            node: adversary.node(),
            strategy: adversary.strategy().into(),
            hash_share: sim.shares[adversary.node()],
            best_chain_share: round3(own as f64 / mined_on_best.max(1) as f64),
            abandoned_blocks: adversary.abandoned(),
            races_settled_by_honest: adversary.races().settled_by_honest,
            gamma: adversary.races().gamma().map(round3),
        }
    });
    let checks = vec![
        agreement(sim),
        no_transfer_lost(sim, &best),
        supply(sim),
        replay(sim),
        no_honest_ban(sim),
    ];
    let timeline = timeline(sim, &on_best);
    let report = SimReport {
        scenario: sim.scenario.name.clone(),
        seed: sim.scenario.seed,
        summary,
        settle_seconds: sim
            .settled_at
            .map(|at| round3(at.saturating_sub(sim.scenario.duration.0) as f64 / 1e6)),
        heal_to_agreement_seconds: metrics
            .heals
            .iter()
            .map(|h| h.agreed.map(|at| round3((at - h.at) as f64 / 1e6)))
            .collect(),
        reach_90_percent_ms: percentiles(&mut reach_90),
        propagation_p95_ms,
        propagation_node_mean_ms: percentiles(&mut node_means),
        tx_refused: metrics.refused,
        messages: metrics.messages,
        bytes: metrics.bytes,
        events: sim.events,
        adversary,
        checks,
        timeline,
    };
    let tree: Vec<TreeBlock> = metrics
        .blocks
        .iter()
        .map(|b| TreeBlock {
            hash: b.hash,
            parent: b.parent,
            height: b.height,
            miner: b.miner,
            best: on_best.contains(&b.hash),
        })
        .collect();
    let title = format!(
        "powchain sim, scenario {}, seed {}",
        sim.scenario.name, sim.scenario.seed
    );
    let slice_s = seconds / SLICES as f64;
    Outcome {
        tree_svg: crate::report::tree_svg(&title, &tree),
        timeline_svg: crate::report::timeline_svg(&title, &report.timeline, slice_s, &sim.marks),
        report,
    }
}

/// The best chain most honest nodes ended on (ties: more work, then the lower hash).
fn reference_chain(sim: &Simulation) -> Vec<std::sync::Arc<Block>> {
    let mut votes: BTreeMap<BlockHash, (usize, usize)> = BTreeMap::new();
    for (index, node) in sim.up_nodes().filter(|(i, _)| sim.is_honest(*i)) {
        votes.entry(node.chain().tip().hash).or_insert((0, index)).0 += 1;
    }
    let chosen = votes
        .iter()
        .filter_map(|(hash, (count, index))| {
            let node = sim.node(*index)?;
            Some((
                *count,
                node.chain().tip().chain_work,
                std::cmp::Reverse(*hash),
                *index,
            ))
        })
        .max();
    let Some((_, _, _, index)) = chosen else {
        return Vec::new();
    };
    sim.node(index).map(best_chain).unwrap_or_default()
}

/// A node's best chain, genesis first.
fn best_chain(node: &Node<MemStore>) -> Vec<std::sync::Arc<Block>> {
    let chain = node.chain();
    (0..=chain.tip().height.0)
        .filter_map(|h| chain.block_at(powchain_chain::Height(h)).ok().flatten())
        .collect()
}

fn agreement(sim: &Simulation) -> Check {
    let tips = sim.honest_tips();
    let down = sim.scenario.nodes - sim.up_nodes().count();
    Check {
        name: "agreement",
        passed: tips.len() == 1 && down == 0,
        detail: match (&sim.settled_at, tips.len()) {
            (Some(at), 1) => format!(
                "every honest node on one tip {:.1} s after mining stopped",
                at.saturating_sub(sim.scenario.duration.0) as f64 / 1e6
            ),
            _ => format!(
                "{} distinct honest tips after {} of settling ({down} nodes down)",
                tips.len(),
                sim.scenario.settle
            ),
        },
    }
}

fn no_transfer_lost(sim: &Simulation, best: &[std::sync::Arc<Block>]) -> Check {
    let on_chain: HashSet<TxId> = best
        .iter()
        .flat_map(|b| b.txs.iter().map(|tx| tx.id()))
        .collect();
    let mut waiting = 0;
    let mut lost = Vec::new();
    for id in sim.metrics.submitted.keys() {
        if on_chain.contains(id) {
            continue;
        }
        if sim.up_nodes().any(|(_, n)| n.mempool().contains(id)) {
            waiting += 1;
        } else {
            lost.push(match sim.metrics.last_drop.get(id) {
                Some(reason) => format!("{} ({reason})", id.short(12)),
                None => format!("{} (no node reported dropping it)", id.short(12)),
            });
        }
    }
    let submitted = sim.metrics.submitted.len();
    Check {
        name: "no-transfer-lost",
        passed: lost.is_empty(),
        detail: if lost.is_empty() {
            format!(
                "{} of {submitted} acknowledged transfers confirmed, {waiting} waiting in mempools",
                submitted - waiting
            )
        } else {
            format!(
                "{} of {submitted} acknowledged transfers are neither confirmed nor pending: {}",
                lost.len(),
                lost.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            )
        },
    }
}

fn no_honest_ban(sim: &Simulation) -> Check {
    let bans = &sim.metrics.honest_bans;
    Check {
        name: "no-honest-ban",
        passed: bans.is_empty(),
        detail: if bans.is_empty() {
            "no honest node refused another for misbehaviour".into()
        } else {
            format!(
                "{} misbehaviour disconnects between honest nodes, first: {}",
                bans.len(),
                bans[0]
            )
        },
    }
}

fn supply(sim: &Simulation) -> Check {
    let allocations: u128 = sim
        .spec
        .genesis_allocations()
        .iter()
        .map(|a| u128::from(a.balance.0))
        .sum();
    let reward = u128::from(sim.spec.block_reward.0);
    let mut wrong = Vec::new();
    for (index, node) in sim.up_nodes() {
        let chain = node.chain();
        let total: u128 = chain
            .store()
            .accounts()
            .values()
            .map(|a| u128::from(a.balance.0))
            .sum();
        let expected = allocations + reward * u128::from(chain.tip().height.0);
        if total != expected {
            wrong.push(format!("node {index}: {total} != {expected}"));
        }
    }
    Check {
        name: "supply",
        passed: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!("on every node, balances = allocations {allocations} + {reward} per block")
        } else {
            wrong.join("; ")
        },
    }
}

fn replay(sim: &Simulation) -> Check {
    // Nodes on the same tip must hold the same state: replay each distinct tip once.
    let mut by_tip: BTreeMap<BlockHash, Vec<usize>> = BTreeMap::new();
    for (index, node) in sim.up_nodes() {
        by_tip
            .entry(node.chain().tip().hash)
            .or_default()
            .push(index);
    }
    let mut wrong = Vec::new();
    for (tip, nodes) in &by_tip {
        let Some(first) = sim.node(nodes[0]) else {
            continue;
        };
        let replayed = match replay_chain(sim, &best_chain(first)) {
            Ok(chain) => chain,
            Err(error) => {
                wrong.push(format!("tip {}: replay failed: {error}", tip.short(12)));
                continue;
            }
        };
        for &index in nodes {
            if let Some(node) = sim.node(index)
                && node.chain().store().accounts() != replayed.store().accounts()
            {
                wrong.push(format!("node {index} differs from the replay of its chain"));
            }
        }
    }
    Check {
        name: "replay",
        passed: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!(
                "every node's accounts equal a replay of its best chain ({} distinct tips replayed)",
                by_tip.len()
            )
        } else {
            wrong.join("; ")
        },
    }
}

/// A fresh chain given `blocks` (genesis first) in order.
fn replay_chain(
    sim: &Simulation,
    blocks: &[std::sync::Arc<Block>],
) -> Result<Chain<MemStore>, String> {
    let mut chain = Chain::open(sim.spec.clone(), MemStore::new(), ChainConfig::default())
        .map_err(|e| e.to_string())?;
    let later = Timestamp(u64::MAX / 2);
    for block in blocks.iter().skip(1) {
        let outcome = chain
            .import_block(Block::clone(block), later)
            .map_err(|e| e.to_string())?;
        if outcome.placement != powchain_chain::Placement::BestChain {
            return Err(format!(
                "block at height {} did not extend the chain",
                block.header.height
            ));
        }
    }
    Ok(chain)
}

fn timeline(sim: &Simulation, on_best: &HashSet<BlockHash>) -> Vec<Slice> {
    let slice_us = (sim.scenario.duration.0 / SLICES).max(1);
    let mut slices: Vec<(usize, usize, Vec<f64>)> = vec![(0, 0, Vec::new()); SLICES as usize];
    for (index, block) in sim.metrics.blocks.iter().enumerate() {
        let slot = ((block.at / slice_us) as usize).min(SLICES as usize - 1);
        let entry = &mut slices[slot];
        entry.0 += 1;
        if !on_best.contains(&block.hash) {
            entry.1 += 1;
        }
        if sim.is_honest(block.miner) {
            entry
                .2
                .extend(sim.metrics.delays[index].iter().map(|&us| us as f64 / 1e3));
        }
    }
    slices
        .into_iter()
        .enumerate()
        .map(|(i, (blocks, stale, mut delays))| {
            let p = percentiles(&mut delays);
            Slice {
                start_s: round3(i as f64 * slice_us as f64 / 1e6),
                blocks,
                stale,
                propagation_p50_ms: p.p50,
                propagation_p90_ms: p.p90,
            }
        })
        .collect()
}
