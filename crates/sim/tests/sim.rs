//! The simulator end to end, at sizes that keep the suite fast (the large runs are in
//! `powchain bench sim`).

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use powchain_sim::scenario::{Action, AdversarySettings, ScheduledAction};
use powchain_sim::{Scenario, Span, run};

/// A small, busy network: 12 nodes, one-minute blocks, an hour of mining.
fn small(name: &str) -> Scenario {
    let mut scenario = Scenario {
        name: name.into(),
        nodes: 12,
        duration: Span::from_secs(3_600),
        ..Scenario::default()
    };
    scenario.chain.block_interval = Span::from_secs(60);
    scenario.transactions.rate = 0.1;
    scenario
}

fn at(minutes: u64, action: Action) -> ScheduledAction {
    ScheduledAction {
        at: Span::from_secs(minutes * 60),
        action,
    }
}

#[test]
fn the_same_seed_replays_the_same_run_byte_for_byte() {
    let mut scenario = small("replay");
    scenario.churn.crashes_per_node_hour = 1.0;
    scenario.network.loss = 0.01;
    scenario.events = vec![
        at(20, Action::Partition { groups: 2 }),
        at(35, Action::Heal),
    ];
    let (first, first_log) = run(scenario.clone(), true).unwrap();
    let (second, second_log) = run(scenario.clone(), true).unwrap();
    let first_json = serde_json::to_string(&first.report).unwrap();
    assert_eq!(first_json, serde_json::to_string(&second.report).unwrap());
    assert_eq!(first_log, second_log);
    assert_eq!(first.tree_svg, second.tree_svg);
    assert_eq!(first.timeline_svg, second.timeline_svg);
    assert!(first_log.lines().count() > 1_000, "the log records the run");
    // And the seed matters.
    scenario.seed += 1;
    let (_, other_log) = run(scenario, true).unwrap();
    assert_ne!(first_log, other_log);
}

#[test]
fn an_honest_network_passes_every_check() {
    let (outcome, _) = run(small("baseline"), false).unwrap();
    let report = &outcome.report;
    assert!(report.passed(), "{:?}", report.failures());
    assert!(report.summary.converged);
    assert!(report.summary.blocks_mined > 20);
    assert!(report.summary.tx_confirmed > 0);
    assert_eq!(report.summary.tips.len(), 12);
    // A block crosses a 10-150 ms network in well under a second, and not instantly.
    let propagation = report.summary.propagation_ms;
    assert!(
        propagation.p50 > 10.0 && propagation.p99 < 2_000.0,
        "{propagation:?}"
    );
}

#[test]
fn a_partition_heals_and_the_network_agrees_without_losing_a_transfer() {
    let mut scenario = small("partition-heal");
    scenario.nodes = 16;
    scenario.duration = Span::from_secs(2 * 3_600);
    scenario.transactions.rate = 0.2;
    scenario.events = vec![
        at(30, Action::Partition { groups: 2 }),
        at(75, Action::Heal),
    ];
    let (outcome, log) = run(scenario, true).unwrap();
    let report = &outcome.report;
    assert!(report.passed(), "{:?}", report.failures());
    assert!(log.contains("network splits into 2 groups") && log.contains("network heals"));
    // Both halves mined for 45 minutes; one half's branch was reorganised away.
    assert!(report.summary.stale_blocks > 0, "{:?}", report.summary);
    assert!(report.summary.deepest_reorg > 1, "{:?}", report.summary);
    assert!(report.summary.tx_confirmed > 0);
    // The healed halves were on one tip again before mining stopped, and not instantly:
    // the lighter half had to fetch the other's branch.
    match report.heal_to_agreement_seconds[..] {
        [Some(seconds)] => assert!(seconds > 0.0 && seconds < 45.0 * 60.0, "{seconds}"),
        ref other => panic!("one heal, agreed before the end: {other:?}"),
    }
}

/// Halves big enough for every node to fill its outbound slots inside its own half: once
/// the split is over, nobody needs a new connection. Feelers are what join them again.
#[test]
fn halves_that_filled_their_slots_join_again_through_feelers() {
    let mut scenario = small("split-slots");
    scenario.nodes = 30;
    scenario.duration = Span::from_secs(90 * 60);
    scenario.chain.block_interval = Span::from_secs(120);
    scenario.transactions.rate = 0.05;
    scenario.node.outbound = 4;
    scenario.events = vec![
        at(20, Action::Partition { groups: 2 }),
        at(50, Action::Heal),
    ];
    let mut without = scenario.clone();
    without.node.feeler_interval = Span(0);
    let (outcome, _) = run(without, false).unwrap();
    let agreement = outcome.report.checks.iter().find(|c| c.name == "agreement");
    assert!(
        agreement.is_some_and(|c| !c.passed),
        "without feelers the halves stay apart: {agreement:?}"
    );
    let (outcome, log) = run(scenario, true).unwrap();
    assert!(outcome.report.passed(), "{:?}", outcome.report.failures());
    assert!(
        log.contains("feeler connection"),
        "feelers were opened and closed"
    );
    assert!(
        matches!(outcome.report.heal_to_agreement_seconds[..], [Some(_)]),
        "{:?}",
        outcome.report.heal_to_agreement_seconds
    );
}

#[test]
fn crashed_nodes_restart_from_their_store_and_catch_up() {
    let mut scenario = small("churn");
    scenario.churn.crashes_per_node_hour = 2.0;
    scenario.churn.downtime = [Span::from_secs(60), Span::from_secs(600)];
    scenario.events = vec![
        at(10, Action::Crash { node: 3 }),
        at(30, Action::Restart { node: 3 }),
    ];
    let (outcome, log) = run(scenario, true).unwrap();
    let report = &outcome.report;
    assert!(report.passed(), "{:?}", report.failures());
    assert!(log.contains("node 3 crashes") && log.contains("node 3 restarts from its store"));
    assert!(
        log.matches("crashes").count() > 3,
        "churn crashed nodes at random"
    );
}

#[test]
fn a_selfish_miner_is_measured_and_the_honest_nodes_still_agree() {
    let mut scenario = small("selfish-miner");
    scenario.duration = Span::from_secs(4 * 3_600);
    scenario.transactions.rate = 0.02;
    scenario.adversary = Some(AdversarySettings {
        strategy: "selfish".into(),
        node: 0,
        hash_share: 0.4,
    });
    let (outcome, log) = run(scenario, true).unwrap();
    let report = &outcome.report;
    assert!(report.passed(), "{:?}", report.failures());
    let adversary = report.adversary.as_ref().unwrap();
    assert_eq!(adversary.node, 0);
    assert!((adversary.hash_share - 0.4).abs() < 1e-9);
    assert!(adversary.best_chain_share > 0.0 && adversary.best_chain_share < 1.0);
    assert!(log.contains("node 0 publishes its private branch"));
}

/// A selfish miner's network as in `experiments/selfish-mining.toml`: 20 honest nodes and the
/// pool, a full mesh of 5 ms links, one-minute blocks, no transfers.
fn selfish_mesh(tie_breaking: &str, hours: u64) -> Scenario {
    let text = format!(
        r#"
name = "selfish-mesh"
nodes = 21
duration = "{hours}h"
settle = "10m"
[chain]
block_interval = "1m"
[network]
topology = "full"
latency = ["5ms", "5ms"]
jitter = 0.0
[node]
outbound = 20
inbound_max = 30
feeler_interval = "0s"
tie_breaking = "{tie_breaking}"
[transactions]
rate = 0.0
[adversary]
strategy = "selfish"
node = 0
hash_share = 0.35
"#
    );
    Scenario::from_toml_str(&text).unwrap()
}

/// The pool's node never lets a withheld block out: nobody asks it for one it then refuses,
/// so no honest node drops it for stalled block requests (each did, once per private
/// branch, when its node announced a block before the strategy had marked it withheld).
#[test]
fn a_selfish_miner_never_announces_a_block_it_withholds() {
    let (outcome, log) = run(selfish_mesh("first-seen", 4), true).unwrap();
    assert!(outcome.report.passed(), "{:?}", outcome.report.failures());
    let stalls = log
        .lines()
        .filter(|l| l.contains("disconnected from node0: block requests keep timing out"))
        .count();
    assert_eq!(stalls, 0, "honest nodes asked the pool for withheld blocks");
    assert!(log.contains("node 0 publishes its private branch"));
}

/// Under the first-seen rule an honest node never takes the pool's side of a tie in this
/// mesh (the pool answers an honest block only once it has it): gamma 0. With random
/// tie-breaking each honest node fetches the pool's block of equal work and flips a coin:
/// gamma near one half.
#[test]
fn tie_breaking_sets_the_gamma_a_selfish_miner_gets() {
    let gamma = |rule: &str| {
        let (outcome, _) = run(selfish_mesh(rule, 24), false).unwrap();
        let adversary = outcome.report.adversary.unwrap();
        assert!(adversary.races_settled_by_honest >= 50, "{adversary:?}");
        adversary.gamma.unwrap()
    };
    assert_eq!(gamma("first-seen"), 0.0);
    let random = gamma("random");
    assert!(
        (0.35..=0.65).contains(&random),
        "gamma {random} with random ties"
    );
}

/// Issue 16's liar, in simulated time: node 0 claims far more work than it has and answers
/// every headers request with nothing. Every honest node that asks it is refused by it and
/// bans it, none bans an honest peer, and the honest nodes agree on one chain.
#[test]
fn a_liar_is_banned_and_the_honest_nodes_still_agree() {
    let mut scenario = small("liar");
    scenario.adversary = Some(AdversarySettings {
        strategy: "liar".into(),
        node: 0,
        hash_share: 0.1,
    });
    let (outcome, log) = run(scenario, true).unwrap();
    let report = &outcome.report;
    assert!(report.passed(), "{:?}", report.failures());
    assert_eq!(report.adversary.as_ref().unwrap().strategy, "liar");
    let bans = log
        .lines()
        .filter(|line| line.contains("disconnected from node0") && line.contains("claimed"))
        .count();
    assert!(bans > 0, "nobody caught the liar:\n{log}");
}

#[test]
fn a_network_left_split_fails_the_agreement_check_with_a_readable_reason() {
    let mut scenario = small("split");
    // Cut at ten minutes; mining stops at the hour, the split heals then, and one second is
    // all the network gets to agree: not enough.
    scenario.events = vec![at(10, Action::Partition { groups: 2 })];
    scenario.settle = Span::from_secs(1);
    let (outcome, _) = run(scenario, false).unwrap();
    let report = &outcome.report;
    assert!(!report.passed());
    let agreement = report
        .checks
        .iter()
        .find(|c| c.name == "agreement")
        .unwrap();
    assert!(!agreement.passed);
    assert!(
        agreement.detail.contains("distinct honest tips"),
        "{}",
        agreement.detail
    );
}

#[test]
fn every_scenario_file_parses_is_compiled_in_and_the_baseline_file_is_the_default() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let scenario = Scenario::from_toml_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path.file_stem().unwrap().to_str().unwrap();
            assert_eq!(
                scenario.name,
                stem,
                "{}: name and file differ",
                path.display()
            );
            assert_eq!(
                powchain_sim::shipped::find(stem),
                Some(text.as_str()),
                "{} is not compiled in as it is (crates/sim/src/shipped.rs)",
                path.display()
            );
            names.push(scenario.name.clone());
            if scenario.name == "baseline" {
                assert_eq!(
                    scenario.to_toml_string(),
                    Scenario::default().to_toml_string(),
                    "scenarios/baseline.toml and Scenario::default() differ"
                );
            }
        }
    }
    names.sort();
    let shipped: Vec<&str> = powchain_sim::shipped::SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(names, shipped, "a compiled-in scenario has no file");
    assert_eq!(powchain_sim::shipped::all().unwrap().len(), shipped.len());
}
