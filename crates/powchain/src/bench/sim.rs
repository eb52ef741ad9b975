//! `powchain bench sim`: how fast the simulator runs a large network.
//!
//! The figure the project promises is 1,000 nodes for one simulated day of 10-minute blocks
//! in under a minute of wall time on a 2-core machine. The run's own checks must hold too:
//! a fast simulation that ends split is no result. Reported: simulated seconds per wall
//! second (the speed-up over real time), simulator events per second, and peak memory.

use std::time::Instant;

use powchain_sim::{Scenario, Span};
use serde::Serialize;

/// What the simulator bench measured.
#[derive(Debug, Serialize)]
pub struct SimBenchReport {
    nodes: usize,
    simulated_seconds: f64,
    wall_seconds: f64,
    /// Simulated seconds per wall second.
    speedup: f64,
    events: u64,
    events_per_sec: f64,
    messages: u64,
    blocks_mined: usize,
    stale_blocks: usize,
    propagation_p50_ms: f64,
    /// Peak resident memory of the whole process, in MiB (`None` where /proc is missing).
    peak_memory_mib: Option<f64>,
    checks_passed: bool,
}

/// The bench's network: the baseline's links and miners at scale, with the node's clock,
/// status poll and feelers slowed down (a tick every 30 s, a ping and a feeler every 30
/// minutes) and a trickle of transfers: each message costs the simulator about the same,
/// and at 1,000 nodes pings, feelers and transfer relay would otherwise be most of them.
pub fn scenario(nodes: usize, duration: Span) -> Scenario {
    let mut scenario = Scenario {
        name: "bench".into(),
        description: "powchain bench sim".into(),
        nodes,
        duration,
        ..Scenario::default()
    };
    scenario.network.topology = "random:8".into();
    scenario.node.ping_interval = Span::from_secs(30 * 60);
    scenario.node.feeler_interval = Span::from_secs(30 * 60);
    scenario.transactions.rate = 0.002;
    scenario.transactions.rebroadcast = Span::from_secs(3_600);
    scenario
}

/// Runs the bench.
pub fn measure(
    nodes: usize,
    duration: Span,
    progress: &dyn Fn(&str),
) -> anyhow::Result<SimBenchReport> {
    progress(&format!(
        "the simulator: {nodes} nodes, {duration} of 10-minute blocks"
    ));
    let started = Instant::now();
    let (outcome, _) =
        powchain_sim::run(scenario(nodes, duration), false).map_err(anyhow::Error::msg)?;
    let wall = started.elapsed().as_secs_f64();
    let report = outcome.report;
    let simulated = duration.as_secs_f64();
    Ok(SimBenchReport {
        nodes,
        simulated_seconds: simulated,
        wall_seconds: round(wall),
        speedup: round(simulated / wall),
        events: report.events,
        events_per_sec: round(report.events as f64 / wall),
        messages: report.messages,
        blocks_mined: report.summary.blocks_mined,
        stale_blocks: report.summary.stale_blocks,
        propagation_p50_ms: report.summary.propagation_ms.p50,
        peak_memory_mib: peak_memory_mib(),
        checks_passed: report.checks.iter().all(|c| c.passed),
    })
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The process's peak resident set (Linux `VmHWM`).
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kib / 1024.0))
}

/// Prints the table.
pub fn print(report: &SimBenchReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "simulator ({} nodes, {:.0} simulated s):",
        report.nodes, report.simulated_seconds
    )?;
    writeln!(
        out,
        "  wall time {:.1} s: {:.0} simulated s per wall s, {:.0} events/s ({} events, {} messages)",
        report.wall_seconds, report.speedup, report.events_per_sec, report.events, report.messages
    )?;
    writeln!(
        out,
        "  {} blocks, {} stale, propagation p50 {:.0} ms; checks {}",
        report.blocks_mined,
        report.stale_blocks,
        report.propagation_p50_ms,
        if report.checks_passed {
            "passed"
        } else {
            "FAILED"
        }
    )?;
    match report.peak_memory_mib {
        Some(mib) => writeln!(out, "  peak memory {mib:.0} MiB (the whole process)"),
        None => writeln!(out, "  peak memory: not available on this system"),
    }
}
