//! powchain's network simulator: the protocol crate's node state machines, unchanged, on a
//! simulated network in simulated time, reproducibly from a seed.
//!
//! ```text
//!  Scenario (TOML) ──> Simulation::new ──> run (event queue, simulated µs) ──> finish
//!                        │                                                    │
//!     N × protocol::Node<MemStore>, links (latency, bandwidth, loss),   SimReport (checks),
//!     partitions, crashes, churn, Poisson block discovery, a wallet,    block tree SVG,
//!     an optional selfish miner                                         timeline SVG
//! ```
//!
//! - [`scenario`]: what a run is (nodes, links, load, faults, adversary), from TOML;
//!   [`shipped`]: the scenarios of `scenarios/`, compiled in.
//! - [`network`]: topology, the link model, models of regions, partitions, connections.
//! - [`engine`]: the event loop and everything it does to nodes.
//! - [`adversary`]: selfish mining.
//! - [`metrics`]: what is recorded during a run.
//! - [`outcome`]: the named checks and the report.
//! - [`report`]: the report's keys and drawings, shared with `powchain devnet`.
//! - [`sweep`]: a scenario over a grid of parameters and seeds, summarised with confidence
//!   intervals, in shards that merge.
//!
//! Nothing here reads a clock or an unseeded random source; with the chain crate's
//! reproducible hash maps, the same scenario and seed give the same run, event for event.

#![forbid(unsafe_code)]

pub mod adversary;
pub mod engine;
pub mod metrics;
pub mod network;
pub mod outcome;
pub mod report;
pub mod scenario;
pub mod shipped;
pub mod sweep;

pub use engine::Simulation;
pub use outcome::{Outcome, SimReport, finish};
pub use scenario::{Scenario, Span};

/// Runs `scenario` to the end and judges it; with `log`, also returns the event log.
pub fn run(scenario: Scenario, log: bool) -> Result<(Outcome, String), String> {
    run_with_progress(scenario, log, |_| {})
}

/// [`run`], calling `progress` now and then with the simulated time reached (µs).
pub fn run_with_progress(
    scenario: Scenario,
    log: bool,
    progress: impl FnMut(u64),
) -> Result<(Outcome, String), String> {
    let mut sim = Simulation::new(scenario, log)?;
    sim.run_with_progress(progress);
    let outcome = finish(&sim);
    Ok((outcome, sim.log().to_owned()))
}
