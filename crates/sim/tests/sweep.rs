//! Sweeps: the grid, the runs, and shards that merge into what one machine computes.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use powchain_sim::sweep::{Shard, Sweep};

/// Two hash shares x two block intervals x two seeds of a five-node network: eight short runs.
const TINY: &str = r#"
name = "tiny"
seeds = 2
metrics = ["stale_rate", "blocks_mined", "settle_seconds", "adversary.best_chain_share"]

[set]
nodes = 5
duration = "20m"
settle = "5m"
"transactions.rate" = 0.0
"adversary.strategy" = "selfish"
"adversary.node" = 0

[[vary]]
key = "adversary.hash_share"
values = [0.2, 0.4]

[[vary]]
key = "chain.block_interval"
values = ["1m", "2m"]
"#;

fn tiny() -> Sweep {
    Sweep::from_toml_str(TINY, Path::new(".")).expect("the tiny sweep reads")
}

#[test]
fn the_first_axis_varies_fastest_and_every_point_has_every_seed() {
    let sweep = tiny();
    assert_eq!(sweep.points.len(), 4);
    assert_eq!(sweep.tasks(), 8);
    let described: Vec<String> = (0..4).map(|p| sweep.describe(p)).collect();
    assert_eq!(
        described,
        [
            "adversary.hash_share = 0.2, chain.block_interval = \"1m\"",
            "adversary.hash_share = 0.4, chain.block_interval = \"1m\"",
            "adversary.hash_share = 0.2, chain.block_interval = \"2m\"",
            "adversary.hash_share = 0.4, chain.block_interval = \"2m\"",
        ]
    );
    assert_eq!(sweep.task(5), (2, 2));
    let scenario = sweep.scenario(3, 7).expect("a point is a scenario");
    assert_eq!(scenario.seed, 7);
    assert_eq!(scenario.nodes, 5);
    assert_eq!(scenario.chain.block_interval.as_ms(), 120_000);
    assert_eq!(scenario.adversary.map(|a| a.hash_share), Some(0.4));
}

#[test]
fn shards_merged_give_the_same_summary_byte_for_byte() {
    let sweep = tiny();
    let all: Vec<_> = (0..sweep.tasks())
        .map(|task| sweep.run_task(task).expect("a tiny run"))
        .collect();
    let whole = sweep.summarise(&all);
    // Three shards, run in an order of their own and written out as a machine would.
    let shard_files: Vec<_> = [2, 0, 1]
        .into_iter()
        .map(|index| {
            let shard = Shard { index, count: 3 };
            let rows = (0..sweep.tasks())
                .rev()
                .filter(|&t| shard.holds(t))
                .map(|task| sweep.run_task(task).expect("a tiny run"))
                .collect();
            let text = serde_json::to_string(&sweep.shard_file(shard, rows)).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    let merged = sweep.merge(&shard_files).expect("the shards merge");
    let merged = sweep.summarise(&merged);
    assert_eq!(merged.to_csv(), whole.to_csv());
    assert_eq!(merged.to_json(), whole.to_json());
    // The runs measured something: blocks were mined at every point, by both seeds.
    assert!(
        whole
            .points
            .iter()
            .all(|p| p.runs == 2 && p.metrics[1].mean.is_some_and(|blocks| blocks > 0.0))
    );
    // A missing shard, a repeated one and another sweep's are refused, each saying so.
    let missing = sweep.merge(&shard_files[..2]).unwrap_err();
    assert!(missing.contains("no row"), "{missing}");
    let mut twice = shard_files.clone();
    twice.push(shard_files[0].clone());
    assert!(sweep.merge(&twice).unwrap_err().contains("two shards"));
    let other =
        Sweep::from_toml_str(&TINY.replace("seeds = 2", "seeds = [1, 3]"), Path::new(".")).unwrap();
    assert!(
        other
            .merge(&shard_files)
            .unwrap_err()
            .contains("not of this one")
    );
}

#[test]
fn mistakes_in_a_sweep_file_are_named() {
    let bad_key = TINY.replace("chain.block_interval", "chain.block_intervall");
    let error = Sweep::from_toml_str(&bad_key, Path::new(".")).unwrap_err();
    assert!(error.contains("block_intervall"), "{error}");
    let bad_value = TINY.replace("values = [0.2, 0.4]", "values = [0.2, 1.5]");
    assert!(Sweep::from_toml_str(&bad_value, Path::new(".")).is_err());
    let no_metric = TINY.replace(
        r#"metrics = ["stale_rate", "blocks_mined", "settle_seconds", "adversary.best_chain_share"]"#,
        "metrics = []",
    );
    assert!(
        Sweep::from_toml_str(&no_metric, Path::new("."))
            .unwrap_err()
            .contains("metrics")
    );
    let sweep = Sweep::from_toml_str(
        &TINY.replace("blocks_mined", "blocks_minted"),
        Path::new("."),
    )
    .unwrap();
    let error = sweep.run_task(0).unwrap_err();
    assert!(
        error.contains("blocks_minted") && error.contains("blocks_mined"),
        "{error}"
    );
    assert!(Shard::parse("3/3").is_err() && Shard::parse("x").is_err());
    assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
}
