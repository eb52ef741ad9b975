//! The end-of-run report, shared by `powchain devnet` (real sockets) and `powchain sim`
//! (simulated time), so both speak the same keys; and its drawings: the block tree, and
//! stale rate and propagation over time.

use std::collections::BTreeMap;
use std::fmt::Write;

use powchain_chain::BlockHash;
use serde::Serialize;

/// Percentiles of a delay, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Nearest-rank percentiles of `values` (sorted in place), rounded to a microsecond.
pub fn percentiles(values: &mut [f64]) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let index = ((values.len() as f64 - 1.0) * p).round() as usize;
        round3(values[index])
    };
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
    }
}

/// Stale blocks per block mined (0 when none was mined).
pub fn stale_rate(stale: usize, mined: usize) -> f64 {
    if mined == 0 {
        0.0
    } else {
        stale as f64 / mined as f64
    }
}

/// Rounds to three decimals (a microsecond, for milliseconds).
pub fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

/// A node's final tip.
#[derive(Clone, Debug, Serialize)]
pub struct TipReport {
    /// Which node.
    pub node: usize,
    /// Its height.
    pub height: u64,
    /// Its hash, hex.
    pub hash: String,
}

/// What happened in a run. The key names are part of the interface (documented in the
/// README); the simulator adds its own keys around these.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nodes in the network.
    pub nodes: usize,
    /// How long the run lasted (simulated seconds for `sim`), mining time only.
    pub seconds: f64,
    /// Blocks mined by anyone.
    pub blocks_mined: usize,
    /// Mined blocks not on the final best chain.
    pub stale_blocks: usize,
    /// `stale_blocks / blocks_mined`.
    pub stale_rate: f64,
    /// Tip changes that disconnected blocks, over all nodes.
    pub reorgs: usize,
    /// The most blocks one reorg disconnected.
    pub deepest_reorg: usize,
    /// From a block being mined to each other node having it.
    pub propagation_ms: Percentiles,
    /// Transfers the network acknowledged.
    pub tx_submitted: usize,
    /// Of those, how many the final best chain holds.
    pub tx_confirmed: usize,
    /// From submission to the block that confirmed it being mined.
    pub tx_confirmation_ms: Percentiles,
    /// `tx_confirmed / seconds`.
    pub tx_per_sec: f64,
    /// Whether every node ended on one tip.
    pub converged: bool,
    /// Every node's final tip.
    pub tips: Vec<TipReport>,
}

impl Report {
    /// The report as text for a terminal, titled `title`.
    pub fn to_text(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{title} after {:.1} s:", self.seconds);
        let _ = writeln!(
            out,
            "  blocks mined {}, stale {} (rate {:.3}), reorgs {} (deepest {})",
            self.blocks_mined, self.stale_blocks, self.stale_rate, self.reorgs, self.deepest_reorg
        );
        let p = &self.propagation_ms;
        let _ = writeln!(
            out,
            "  propagation miner -> node: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            p.p50, p.p90, p.p99
        );
        let _ = writeln!(
            out,
            "  transfers: {} submitted, {} confirmed ({:.3}/s), confirmation p50 {:.0} ms, p90 {:.0} ms",
            self.tx_submitted,
            self.tx_confirmed,
            self.tx_per_sec,
            self.tx_confirmation_ms.p50,
            self.tx_confirmation_ms.p90
        );
        let agree = if self.converged { "yes" } else { "NO" };
        let _ = writeln!(out, "  all nodes on one tip: {agree}");
        // One line per distinct tip: a thousand nodes on one tip is one line.
        let mut by_tip: BTreeMap<(u64, &str), Vec<usize>> = BTreeMap::new();
        for tip in &self.tips {
            by_tip
                .entry((tip.height, tip.hash.as_str()))
                .or_default()
                .push(tip.node);
        }
        for ((height, hash), nodes) in by_tip.iter().rev() {
            let _ = writeln!(
                out,
                "    height {height} {}: {}",
                &hash[..hash.len().min(16)],
                node_list(nodes)
            );
        }
        out
    }
}

/// `node 3` or `nodes 0-4, 7` (consecutive runs folded).
fn node_list(nodes: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &n in nodes {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => runs.push((n, n)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let noun = if nodes.len() == 1 { "node" } else { "nodes" };
    format!("{noun} {}", text.join(", "))
}

/// A mined block, for the tree drawing.
#[derive(Clone, Debug)]
pub struct TreeBlock {
    /// Its hash.
    pub hash: BlockHash,
    /// Its parent.
    pub parent: BlockHash,
    /// Its height.
    pub height: u64,
    /// Who mined it.
    pub miner: usize,
    /// Whether it is on the final best chain.
    pub best: bool,
}

/// Draws the block tree: the best chain on the top row coloured by miner, stale blocks
/// greyed on the rows below, each linked to its parent.
pub fn tree_svg(title: &str, blocks: &[TreeBlock]) -> String {
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    let mut sorted: Vec<&TreeBlock> = blocks.iter().collect();
    sorted.sort_by_key(|b| (b.height, !b.best, b.miner));
    let max_height = sorted.last().map_or(1, |b| b.height.max(1));
    let mut lanes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut position: BTreeMap<BlockHash, (f64, f64)> = BTreeMap::new();
    let mut shapes = String::new();
    for block in &sorted {
        let lane = if block.best {
            0
        } else {
            let next = lanes.entry(block.height).or_insert(0);
            *next += 1;
            *next
        };
        let (x, y) = (20.0 + block.height as f64 * 14.0, 40.0 + lane as f64 * 20.0);
        position.insert(block.hash, (x, y));
        let fill = if block.best {
            COLOURS[block.miner % COLOURS.len()]
        } else {
            "#bbbbbb"
        };
        let _ = writeln!(
            shapes,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{fill}\"><title>height {} by node {}: {}</title></rect>",
            x - 5.0,
            y - 5.0,
            block.height,
            block.miner,
            block.hash.short(16)
        );
    }
    let mut edges = String::new();
    for block in &sorted {
        if let (Some((x1, y1)), Some((x2, y2))) =
            (position.get(&block.parent), position.get(&block.hash))
        {
            let _ = writeln!(
                edges,
                "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#888\"/>"
            );
        }
    }
    let width = 40.0 + max_height as f64 * 14.0;
    let height = 70.0 + lanes.values().max().copied().unwrap_or(0) as f64 * 20.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\">\n<text x=\"10\" y=\"16\" font-family=\"sans-serif\" font-size=\"12\">{}: best chain on top, coloured by miner; stale blocks grey</text>\n{edges}{shapes}</svg>\n",
        escape(title)
    )
}

/// One slice of a run, for the plot over time.
#[derive(Clone, Debug, Serialize)]
pub struct Slice {
    /// Start, in seconds.
    pub start_s: f64,
    /// Blocks mined in the slice.
    pub blocks: usize,
    /// Of those, stale.
    pub stale: usize,
    /// Median propagation of the slice's blocks, milliseconds.
    pub propagation_p50_ms: f64,
    /// 90th percentile.
    pub propagation_p90_ms: f64,
}

/// Plots stale rate and propagation delay over time, with scheduled events marked.
pub fn timeline_svg(
    title: &str,
    slices: &[Slice],
    slice_s: f64,
    marks: &[(f64, String)],
) -> String {
    let (width, panel, left, top) = (760.0, 150.0, 60.0, 30.0);
    let span_s = (slices.len() as f64 * slice_s).max(1e-9);
    let x_of = |t: f64| left + (t / span_s) * (width - left - 20.0);
    let stale: Vec<f64> = slices
        .iter()
        .map(|s| {
            if s.blocks == 0 {
                0.0
            } else {
                s.stale as f64 / s.blocks as f64
            }
        })
        .collect();
    let p90_max = slices
        .iter()
        .map(|s| s.propagation_p90_ms)
        .fold(1e-9, f64::max);
    let mut body = String::new();
    let panels = [
        ("stale rate", 1.0, top),
        (
            "propagation ms (p50 solid, p90 dashed)",
            p90_max,
            top + panel + 40.0,
        ),
    ];
    for (label, max, y0) in panels {
        let _ = writeln!(
            body,
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{:.0}\" height=\"{panel}\" fill=\"none\" stroke=\"#ccc\"/>\n<text x=\"{left}\" y=\"{:.0}\" font-size=\"11\">{label}</text>\n<text x=\"5\" y=\"{:.0}\" font-size=\"10\">{max:.1}</text>\n<text x=\"5\" y=\"{:.0}\" font-size=\"10\">0</text>",
            width - left - 20.0,
            y0 - 4.0,
            y0 + 10.0,
            y0 + panel
        );
    }
    let polyline = |values: &[f64], max: f64, y0: f64, style: &str| {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = x_of((i as f64 + 0.5) * slice_s);
                let y = y0 + panel - (v / max).min(1.0) * panel;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        format!(
            "<polyline fill=\"none\" {style} points=\"{}\"/>\n",
            points.join(" ")
        )
    };
    body.push_str(&polyline(&stale, 1.0, top, "stroke=\"#d62728\""));
    let p50: Vec<f64> = slices.iter().map(|s| s.propagation_p50_ms).collect();
    let p90: Vec<f64> = slices.iter().map(|s| s.propagation_p90_ms).collect();
    let y1 = top + panel + 40.0;
    body.push_str(&polyline(&p50, p90_max, y1, "stroke=\"#1f77b4\""));
    body.push_str(&polyline(
        &p90,
        p90_max,
        y1,
        "stroke=\"#1f77b4\" stroke-dasharray=\"4 3\"",
    ));
    for (at, label) in marks {
        let x = x_of(*at);
        let _ = writeln!(
            body,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.0}\" stroke=\"#999\" stroke-dasharray=\"2 2\"/><text x=\"{:.1}\" y=\"{:.0}\" font-size=\"10\">{}</text>",
            y1 + panel,
            x + 2.0,
            y1 + panel + 14.0,
            escape(label)
        );
    }
    let height = y1 + panel + 30.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\">\n<text x=\"10\" y=\"16\" font-size=\"12\">{} ({:.0} s per point)</text>\n{body}</svg>\n",
        escape(title),
        slice_s
    )
}

/// `text` with the characters SVG and HTML give a meaning escaped.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_node_lists() {
        let mut values = (1..=100).map(f64::from).collect::<Vec<_>>();
        values.reverse();
        let p = percentiles(&mut values);
        assert_eq!((p.p50, p.p90, p.p99), (51.0, 90.0, 99.0));
        assert_eq!(percentiles(&mut []), Percentiles::default());
        assert_eq!(node_list(&[0, 1, 2, 5, 7, 8]), "nodes 0-2, 5, 7-8");
        assert_eq!(node_list(&[3]), "node 3");
    }
}
