//! `powchain sim`: the protocol's nodes on a simulated network in simulated time.
//!
//! Reads a scenario (a file, or a shipped one by name; the baseline without one), applies the flags over
//! it, prints the seed and every option so the run can be replayed, runs it, prints the
//! report and the named checks, and writes what was asked for (JSON report, event log, block
//! tree and timeline SVGs). A failed check fails the command.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use powchain_sim::scenario::parse_span;
use powchain_sim::{Scenario, SimReport};

/// Flags of `powchain sim`; each overrides the scenario file.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// A scenario: a file (TOML), or the name of a shipped one (`partition-heal`; see
    /// `--list`); without it, the baseline.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// List the shipped scenarios and what each shows, and run nothing.
    #[arg(long)]
    list: bool,
    /// Seed of every random choice: the same seed replays the same run.
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes.
    #[arg(long)]
    nodes: Option<usize>,
    /// Simulated time with mining (`90s`, `30m`, `6h`, `1d`).
    #[arg(long)]
    duration: Option<String>,
    /// Write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the event log here (one line per event, in simulated time).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Draw the block tree (forks included) as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Plot stale rate and propagation delay over time as SVG here.
    #[arg(long)]
    timeline_svg: Option<PathBuf>,
}

/// Reads the scenario and applies the flags over it.
pub fn scenario(args: &SimArgs) -> anyhow::Result<Scenario> {
    let mut scenario = match &args.scenario {
        // A file wins over a shipped scenario of the same name.
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Scenario::from_toml_str(&text).with_context(|| format!("in {}", path.display()))?
        }
        Some(path) => {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let Some(text) = powchain_sim::shipped::find(stem) else {
                bail!(
                    "no file {} and no shipped scenario {stem:?} (shipped: {}; `powchain sim --list` describes them)",
                    path.display(),
                    powchain_sim::shipped::names()
                );
            };
            Scenario::from_toml_str(text).with_context(|| format!("in shipped {stem}"))?
        }
        None => Scenario::default(),
    };
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(nodes) = args.nodes {
        scenario.nodes = nodes;
    }
    if let Some(duration) = &args.duration {
        scenario.duration = parse_span(duration).map_err(anyhow::Error::msg)?;
    }
    scenario.check()?;
    Ok(scenario)
}

/// Runs `powchain sim`.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    if args.list {
        return list();
    }
    let scenario = scenario(args)?;
    // Refuse unwritable paths before spending the run.
    for path in [&args.report, &args.events, &args.svg, &args.timeline_svg]
        .into_iter()
        .flatten()
    {
        std::fs::write(path, "").with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "powchain sim: scenario {:?}, seed {} (replay with --seed {}); every option:",
        scenario.name, scenario.seed, scenario.seed
    );
    for line in scenario.to_toml_string().lines() {
        println!("  {line}");
    }
    let started = Instant::now();
    let (outcome, log) = run_with_bar(scenario, args.events.is_some())?;
    let wall = started.elapsed().as_secs_f64();
    let report = &outcome.report;
    print!("{}", report.summary.to_text("sim report"));
    print_extras(report, wall);
    let write = |path: &Option<PathBuf>, text: &str, what: &str| -> anyhow::Result<()> {
        if let Some(path) = path {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{what} written to {}", path.display());
        }
        Ok(())
    };
    write(
        &args.report,
        &serde_json::to_string_pretty(report)?,
        "report",
    )?;
    write(&args.events, &log, "event log")?;
    write(&args.svg, &outcome.tree_svg, "block tree")?;
    write(&args.timeline_svg, &outcome.timeline_svg, "timeline")?;
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect();
    if !failed.is_empty() {
        bail!(
            "check{} failed: {} (replay with --seed {})",
            if failed.len() == 1 { "" } else { "s" },
            failed.join(", "),
            report.seed
        );
    }
    Ok(())
}

/// Runs the scenario, with a progress bar over its simulated time on a terminal.
fn run_with_bar(scenario: Scenario, log: bool) -> anyhow::Result<(powchain_sim::Outcome, String)> {
    let total = scenario.duration.0 + scenario.settle.0;
    let bar = crate::sweep::progress_bar(total / 1_000_000, "simulated s");
    let ran = powchain_sim::run_with_progress(scenario, log, |now| {
        if let Some(bar) = &bar {
            bar.set_position(now / 1_000_000);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    ran.map_err(anyhow::Error::msg)
}

/// `powchain sim --list`: the shipped scenarios, by name, with what each shows.
fn list() -> anyhow::Result<()> {
    println!("shipped scenarios (powchain sim --scenario NAME; a file path works too):");
    for (name, scenario) in powchain_sim::shipped::all()? {
        println!(
            "  {name:<15} {} nodes, {}: {}",
            scenario.nodes, scenario.duration, scenario.description
        );
    }
    Ok(())
}

fn print_extras(report: &SimReport, wall: f64) {
    let means = &report.propagation_node_mean_ms;
    println!(
        "  propagation p95 {:.2} ms; per node (its mean delay): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        report.propagation_p95_ms, means.p50, means.p90, means.p99
    );
    let reach = &report.reach_90_percent_ms;
    println!(
        "  block reaches 90% of nodes: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms",
        reach.p50, reach.p90, reach.p99
    );
    match report.settle_seconds {
        Some(seconds) => println!("  agreement {seconds:.1} s after mining stopped"),
        None => println!("  no agreement within the settling time"),
    }
    for (n, seconds) in report.heal_to_agreement_seconds.iter().enumerate() {
        match seconds {
            Some(seconds) => println!("  heal {}: one tip again {seconds:.1} s later", n + 1),
            None => println!("  heal {}: still split when mining stopped", n + 1),
        }
    }
    if let Some(adversary) = &report.adversary {
        println!(
            "  adversary node {} ({}): {:.1}% of the hash power, {:.1}% of the best chain, {} private blocks given up",
            adversary.node,
            adversary.strategy,
            adversary.hash_share * 100.0,
            adversary.best_chain_share * 100.0,
            adversary.abandoned_blocks
        );
        if let Some(gamma) = adversary.gamma {
            println!(
                "  tie races settled by honest blocks: {}, on the adversary's block: {:.1}% (gamma)",
                adversary.races_settled_by_honest,
                gamma * 100.0
            );
        }
    }
    println!(
        "  {} messages, {:.1} MB, {} events in {wall:.2} s of wall time; {} transfers refused",
        report.messages,
        report.bytes as f64 / 1e6,
        report.events,
        report.tx_refused
    );
    println!("checks:");
    for check in &report.checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        println!("  {mark} {}: {}", check.name, check.detail);
    }
}
