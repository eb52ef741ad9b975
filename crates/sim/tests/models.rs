//! The network models end to end: simulated block payloads, mining pools, and a network of
//! regions whose big blocks take longer than the settling's tie-breaking wait.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use powchain_sim::scenario::ByteSize;
use powchain_sim::{Scenario, Span, run};

/// 16 nodes, one-minute blocks, two hours, no transfers.
fn quiet(name: &str) -> Scenario {
    let mut scenario = Scenario {
        name: name.into(),
        nodes: 16,
        duration: Span::from_secs(2 * 3_600),
        ..Scenario::default()
    };
    scenario.chain.block_interval = Span::from_secs(60);
    scenario.transactions.rate = 0.0;
    scenario
}

#[test]
fn a_block_carries_its_payload_on_the_wire_whole_and_as_short_ids_compact() {
    let mut whole = quiet("payload");
    whole.node.compact_blocks = false;
    whole.node.compact_high_bandwidth_peers = 0;
    let mut compact = quiet("payload-compact");
    compact.node.compact_blocks = true;
    for base in [&whole, &compact] {
        let (empty, _) = run(base.clone(), false).unwrap();
        let mut heavy = base.clone();
        heavy.chain.block_size = ByteSize(500_000);
        let (full, _) = run(heavy, false).unwrap();
        for report in [&empty.report, &full.report] {
            assert!(report.failures().is_empty(), "{:?}", report.failures());
        }
        let bytes = full.report.bytes;
        let extra = bytes.saturating_sub(empty.report.bytes);
        let summary = &full.report.summary;
        // Every node but the miner received each best-chain block once at least.
        let received = (summary.blocks_mined - summary.stale_blocks) as u64 * 15;
        if base.node.compact_blocks {
            // 2,000 payload transactions: a 6-byte short id each per compact block sent.
            assert!(extra >= received * 12_000, "compact: {extra} bytes more");
            assert!(bytes < received * 500_000 / 4, "compact: {bytes} bytes");
        } else {
            assert!(bytes >= received * 500_000, "whole: {bytes} bytes");
            let (p_empty, p_full) = (
                empty.report.summary.propagation_ms.p50,
                full.report.summary.propagation_ms.p50,
            );
            // Half a megabyte at 50 Mbit/s is 80 ms a hop, and 120 ms of validation.
            assert!(p_full > p_empty + 200.0, "p50 {p_empty} ms -> {p_full} ms");
        }
    }
}

#[test]
fn pools_hold_the_hash_power_on_nodes_that_keep_many_peers() {
    let mut scenario = quiet("pools");
    scenario.nodes = 30;
    scenario.node.pools = vec![3.0, 1.0];
    scenario.node.pool_outbound = 20;
    let (outcome, log) = run(scenario, true).unwrap();
    let report = &outcome.report;
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    let mined_by = |node: usize| {
        log.lines()
            .filter(|line| line.contains(&format!(" node {node} mines height")))
            .count()
    };
    let (first, second) = (mined_by(0), mined_by(1));
    let others: usize = (2..30).map(mined_by).sum();
    assert_eq!(others, 0, "only pools mine");
    assert_eq!(first + second, report.summary.blocks_mined);
    // 3 to 1 over about 120 blocks.
    assert!(
        first > 2 * second,
        "pool shares 3:1, mined {first}:{second}"
    );
    // The big pool dials 20 and keeps them.
    let dialled = log
        .lines()
        .filter(|line| line.contains(" node 0 connected to ") && line.ends_with("(Outbound)"))
        .count();
    assert!(dialled >= 20, "node 0 dialled {dialled}");
}

#[test]
fn big_blocks_on_slow_shared_links_still_settle_on_one_tip() {
    // 2 MB blocks through 4 Mbit/s uplinks: each hop is 4 s a peer, one peer after
    // another, so a block takes far longer than the settling's 30 s of quiet to spread.
    let mut scenario = quiet("slow");
    scenario.duration = Span::from_secs(3_600);
    scenario.settle = Span::from_secs(15 * 60);
    scenario.chain.block_interval = Span::from_secs(120);
    scenario.chain.block_size = ByteSize(2_000_000);
    scenario.network.uplink_mbps = Some(4.0);
    scenario.network.downlink_mbps = Some(20.0);
    scenario.node.compact_blocks = false;
    scenario.node.compact_high_bandwidth_peers = 0;
    scenario.node.block_request_timeout = Span::from_secs(120);
    let (outcome, _) = run(scenario, false).unwrap();
    let report = &outcome.report;
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert!(
        report.reach_90_percent_ms.p50 > 30_000.0,
        "blocks took {} ms to reach 90%",
        report.reach_90_percent_ms.p50
    );
}

#[test]
fn a_model_of_regions_runs_with_measured_degrees_and_reports_per_node_means() {
    let mut scenario = quiet("regions");
    scenario.nodes = 60;
    scenario.network.model = "bitcoin-2019".into();
    scenario.network.topology = "random:bitcoin-2015".into();
    scenario.node.inbound_max = 100;
    let (outcome, _) = run(scenario.clone(), false).unwrap();
    let report = &outcome.report;
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    let means = report.propagation_node_mean_ms;
    assert!(means.p50 > 0.0 && means.p50 <= means.p90 && means.p90 <= means.p99);
    assert!(report.propagation_p95_ms >= report.summary.propagation_ms.p90);
    // Latencies of 11-325 ms between regions: a block takes more than a few ms.
    assert!(report.summary.propagation_ms.p50 > 20.0);
    // The same seed, the same report.
    let (again, _) = run(scenario, false).unwrap();
    assert_eq!(
        serde_json::to_string(report).unwrap(),
        serde_json::to_string(&again.report).unwrap()
    );
}
