//! Drives the real `powchain` binary as a user would.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use powchain_chain::ChainSpec;
use powchain_testkit::TempDir;

fn powchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the powchain binary runs")
}

/// The report keys devnet and sim both promise (README, "A network on your machine").
const REPORT_KEYS: [&str; 11] = [
    "nodes",
    "blocks_mined",
    "stale_blocks",
    "stale_rate",
    "reorgs",
    "propagation_ms",
    "tx_submitted",
    "tx_confirmed",
    "tx_per_sec",
    "converged",
    "tips",
];

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn demo_on_the_seed_chain_mines_and_conserves_supply() {
    let output = powchain(&["demo", "--chain", "seed", "--blocks", "3", "--seed", "7"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.matches("\nblock ").count(), 3, "{text}");
    assert!(
        text.contains("supply 1000 = allocations 1000 + rewards 0: conserved"),
        "{text}"
    );
}

#[test]
fn demo_is_reproducible_from_its_seed() {
    let transfers = |output: &Output| -> Vec<String> {
        stdout(output)
            .lines()
            .filter(|line| line.contains(" from dev "))
            .map(str::to_owned)
            .collect()
    };
    let args = ["demo", "--chain", "seed", "--blocks", "2", "--seed", "11"];
    let (first, second) = (powchain(&args), powchain(&args));
    assert!(!transfers(&first).is_empty());
    assert_eq!(transfers(&first), transfers(&second));
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    for (args, expected) in [
        (vec!["demo", "--difficulty", "81"], "between 1 and 80"),
        (vec!["demo", "--difficulty", "0"], "between 1 and 80"),
        (vec!["demo", "--chain", "no-such-chain"], "neither a preset"),
        (vec!["demo", "--blocks", "0"], "not in 1..=1000"),
    ] {
        let output = powchain(&args);
        assert_eq!(
            output.status.code(),
            Some(if args.contains(&"--blocks") { 2 } else { 1 })
        );
        let message = stderr(&output);
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
}

#[test]
fn spec_prints_a_spec_that_loads_back() {
    let output = powchain(&["spec", "--chain", "seed"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let seed = ChainSpec::seed();
    assert!(text.contains(&seed.genesis_hash().to_string()));
    let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(ChainSpec::from_toml_str(&body).unwrap(), seed);

    let dir = TempDir::new("cli-spec");
    let file = dir.file_arg("custom.toml");
    std::fs::write(&file, body.replace("name = \"seed\"", "name = \"custom\"")).unwrap();
    let output = powchain(&["demo", "--chain", &file, "--blocks", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("chain \"custom\""));
}

#[test]
fn bench_json_has_every_entry_the_report_promises() {
    let output = powchain(&["bench", "hash", "--json", "--seconds", "0.1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    let results = report["results"].as_array().expect("a results array");
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    for name in [
        "seed-json",
        "sha2-header",
        "sha2-compress",
        "multibuffer-portable",
        "miner",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for entry in results {
        assert!(entry["threads"].as_u64().unwrap() >= 1);
        assert!(entry["hashes_per_sec"].as_f64().unwrap() > 0.0, "{entry}");
        assert!(
            entry["ratio_to_sha2_compress"].as_f64().unwrap() > 0.0,
            "{entry}"
        );
    }
    let reference = results
        .iter()
        .find(|r| r["name"] == "sha2-compress")
        .unwrap();
    assert_eq!(reference["ratio_to_sha2_compress"].as_f64(), Some(1.0));
    assert!(report["cancel_latency_ms"].as_f64().is_some());
    let miners = results.iter().filter(|r| r["name"] == "miner").count();
    assert!(miners >= 1);
}

#[test]
fn bench_refuses_out_of_range_flags() {
    let output = powchain(&["bench", "--seconds", "0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--seconds must be between"));
}

#[test]
fn mine_export_import_round_trip() {
    let dir = TempDir::new("cli-round-trip");
    let (db, json, copy) = (
        dir.file_arg("chain.redb"),
        dir.file_arg("chain.json"),
        dir.file_arg("copy.redb"),
    );
    let mine = powchain(&[
        "mine",
        "--db",
        &db,
        "--chain",
        "seed",
        "--blocks",
        "3",
        "--miner-threads",
        "1",
    ]);
    assert!(mine.status.success(), "{}", stderr(&mine));
    let announced: Vec<String> = stdout(&mine)
        .lines()
        .filter(|line| line.ends_with(" committed"))
        .map(|line| line.split(' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(announced.len(), 3);
    // Mining again goes on from the stored tip; the preset is recognised without --chain.
    let again = powchain(&["mine", "--db", &db, "--blocks", "1", "--miner-threads", "1"]);
    assert!(
        stdout(&again).contains("chain \"seed\""),
        "{}",
        stdout(&again)
    );
    assert!(stdout(&again).contains("block 4 "), "{}", stdout(&again));

    let export = powchain(&["export", "--db", &db, "--out", &json]);
    assert!(export.status.success(), "{}", stderr(&export));
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(file["format"], "powchain-chain/1");
    assert_eq!(file["chain"]["name"], "seed");
    let blocks = file["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 5, "genesis and four blocks");
    for (block, hash) in blocks[1..4].iter().zip(&announced) {
        assert_eq!(block["hash"].as_str(), Some(hash.as_str()));
    }

    let import = powchain(&["import", "--db", &copy, "--in", &json]);
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(
        stderr(&import).contains("imported 4 blocks"),
        "{}",
        stderr(&import)
    );
    let reexport = powchain(&["export", "--db", &copy, "--out", "-"]);
    assert_eq!(stdout(&reexport), std::fs::read_to_string(&json).unwrap());

    // A mistyped database is an error, and no file is made of it.
    let typo = dir.file_arg("typo.redb");
    let export = powchain(&["export", "--db", &typo, "--out", "-"]);
    assert!(!export.status.success());
    assert!(
        stderr(&export).contains("does not exist"),
        "{}",
        stderr(&export)
    );
    assert!(!std::path::Path::new(&typo).exists(), "export made {typo}");
}

#[test]
fn import_refuses_tampered_and_foreign_files() {
    let dir = TempDir::new("cli-tampered");
    let (db, json) = (dir.file_arg("chain.redb"), dir.file_arg("chain.json"));
    assert!(
        powchain(&[
            "mine",
            "--db",
            &db,
            "--chain",
            "seed",
            "--blocks",
            "2",
            "--miner-threads",
            "1"
        ])
        .status
        .success()
    );
    assert!(
        powchain(&["export", "--db", &db, "--out", &json])
            .status
            .success()
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();

    // A changed transfer amount: the header, and so the stated hash, are unchanged, but the
    // transactions no longer match the header's transaction root.
    let mut tampered = file.clone();
    let txs = tampered["blocks"][1]["txs"].as_array_mut().unwrap();
    let transfer = txs
        .iter_mut()
        .find(|tx| tx.get("Transfer").is_some())
        .unwrap();
    transfer["Transfer"]["amount"] = serde_json::json!(9);
    let path = dir.file_arg("tampered.json");
    std::fs::write(&path, tampered.to_string()).unwrap();
    let import = powchain(&["import", "--db", &dir.file_arg("a.redb"), "--in", &path]);
    assert_eq!(import.status.code(), Some(1));
    assert!(stderr(&import).contains("block 1"), "{}", stderr(&import));
    assert!(
        stderr(&import).contains("transaction root"),
        "{}",
        stderr(&import)
    );

    // Into a database of another chain.
    let import = powchain(&[
        "import",
        "--db",
        &dir.file_arg("b.redb"),
        "--chain",
        "dev",
        "--in",
        &json,
    ]);
    assert_eq!(import.status.code(), Some(1));
    assert!(
        stderr(&import).contains("the file holds chain \"seed\""),
        "{}",
        stderr(&import)
    );

    // Not an export at all.
    file["format"] = serde_json::json!("something-else");
    std::fs::write(&path, file.to_string()).unwrap();
    let import = powchain(&["import", "--db", &dir.file_arg("c.redb"), "--in", &path]);
    assert!(
        stderr(&import).contains("unknown export format"),
        "{}",
        stderr(&import)
    );
    std::fs::write(&path, "not json").unwrap();
    let import = powchain(&["import", "--db", &dir.file_arg("c.redb"), "--in", &path]);
    assert!(
        stderr(&import).contains("is not a powchain chain export"),
        "{}",
        stderr(&import)
    );
}

#[test]
fn wallet_keys_live_in_a_private_file() {
    let dir = TempDir::new("cli-wallet");
    let wallet = dir.file_arg("keys");
    let first = powchain(&["wallet", "new", "--wallet", &wallet]);
    assert!(first.status.success(), "{}", stderr(&first));
    let address = stdout(&first).trim().to_owned();
    assert_eq!(address.len(), 64);
    powchain(&["wallet", "new", "--wallet", &wallet]);
    let list = stdout(&powchain(&["wallet", "list", "--wallet", &wallet]));
    assert_eq!(list.lines().count(), 2);
    assert_eq!(list.lines().next(), Some(address.as_str()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&wallet).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn bench_store_json_reports_commits_and_start_up() {
    let output = powchain(&["bench", "store", "--json", "--seconds", "0.1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let store = &report["store"];
    for key in [
        "small_block_commits_per_sec",
        "full_block_commits_per_sec",
        "raw_redb_commits_per_sec",
    ] {
        assert!(store[key].as_f64().unwrap() > 0.0, "{key}: {store}");
    }
    assert_eq!(store["full_block_txs"].as_u64(), Some(4000));
    let open = store["open"].as_array().unwrap();
    assert_eq!(open.len(), 2);
    assert!(open[1]["blocks"].as_u64() > open[0]["blocks"].as_u64());
    assert!(
        report.get("results").is_none(),
        "the hash suite did not run"
    );
}

#[test]
fn bench_sync_and_propagation_print_their_json() {
    let output = powchain(&[
        "bench",
        "sync",
        "--sync-blocks",
        "200",
        "--sync-block-transfers",
        "10",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sync: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sync["blocks"].as_u64(), Some(200));
    assert_eq!(sync["transfers"].as_u64(), Some(2_000));
    for key in [
        "sync_seconds",
        "blocks_per_sec",
        "transfers_per_sec",
        "batch_verifications_per_sec_per_core",
        "cores",
        "bound_ratio",
        "batch_verifications_per_sec_all_cores",
        "validation_seconds",
        "network_ratio",
    ] {
        assert!(sync[key].as_f64().unwrap() > 0.0, "{key}: {sync}");
    }

    let output = powchain(&[
        "bench",
        "propagation",
        "--nodes",
        "4",
        "--propagation-blocks",
        "3",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let propagation: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(propagation["nodes"].as_u64(), Some(4));
    assert_eq!(propagation["blocks"].as_u64(), Some(3));
    assert!(propagation["p99_ms"].as_f64() >= propagation["p50_ms"].as_f64());
}

#[test]
fn devnet_runs_a_network_and_reports() {
    let dir = TempDir::new("cli-devnet");
    let report = dir.file_arg("report.json");
    let svg = dir.file_arg("tree.svg");
    let output = powchain(&[
        "devnet",
        "--nodes",
        "3",
        "--topology",
        "line",
        "--duration",
        "3s",
        "--tx-rate",
        "5",
        "--report",
        &report,
        "--svg",
        &svg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("all nodes on one tip: yes"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for key in REPORT_KEYS {
        assert!(report.get(key).is_some(), "{key} missing from {report}");
    }
    assert_eq!(report["nodes"].as_u64(), Some(3));
    assert_eq!(report["converged"].as_bool(), Some(true));
    assert!(report["blocks_mined"].as_u64().unwrap() > 0);
    for key in ["p50", "p90", "p99"] {
        assert!(report["propagation_ms"][key].as_f64().is_some());
    }
    assert_eq!(report["tips"].as_array().unwrap().len(), 3);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn sim_prints_its_seed_replays_exactly_and_reports_devnets_keys() {
    let dir = TempDir::new("cli-sim");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/loopback.toml");
    let run = |name: &str| {
        let report = dir.file_arg(&format!("{name}.json"));
        let events = dir.file_arg(&format!("{name}.log"));
        let output = powchain(&[
            "sim",
            "--scenario",
            scenario,
            "--nodes",
            "6",
            "--duration",
            "30s",
            "--seed",
            "5",
            "--report",
            &report,
            "--events",
            &events,
            "--svg",
            &dir.file_arg(&format!("{name}-tree.svg")),
            "--timeline-svg",
            &dir.file_arg(&format!("{name}-timeline.svg")),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report = std::fs::read_to_string(&report).unwrap();
        let events = std::fs::read_to_string(&events).unwrap();
        (stdout(&output), report, events)
    };
    let (text, report, events) = run("first");
    assert!(text.contains("seed 5 (replay with --seed 5)"), "{text}");
    assert!(
        text.contains("nodes = 6") && text.contains("topology = \"ring\""),
        "{text}"
    );
    assert!(text.contains("ok   agreement"), "{text}");
    let (_, again, events_again) = run("second");
    assert_eq!(report, again, "the same seed must give the same report");
    assert_eq!(events, events_again, "and the same event log");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let sim_keys = ["seed", "checks", "timeline"];
    for key in REPORT_KEYS.iter().chain(&sim_keys) {
        assert!(report.get(key).is_some(), "{key} missing from {report}");
    }
    assert_eq!(report["seed"].as_u64(), Some(5));
    assert_eq!(report["nodes"].as_u64(), Some(6));
    for name in ["first-tree.svg", "first-timeline.svg"] {
        assert!(
            std::fs::read_to_string(dir.file_arg(name))
                .unwrap()
                .starts_with("<svg")
        );
    }
}

#[test]
fn sim_refuses_bad_scenarios_with_a_clear_error() {
    let dir = TempDir::new("cli-sim-bad");
    let bad = dir.file_arg("bad.toml");
    std::fs::write(&bad, "nodes = 5\n[network]\nlatency = [\"1s\", \"10ms\"]\n").unwrap();
    let output = powchain(&["sim", "--scenario", &bad]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("min <= max"),
        "{}",
        stderr(&output)
    );
    let output = powchain(&["sim", "--nodes", "1"]);
    assert!(
        stderr(&output).contains("nodes must be 2..=10000"),
        "{}",
        stderr(&output)
    );
    let output = powchain(&["sim", "--duration", "3 fortnights"]);
    assert!(!output.status.success());
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

#[test]
fn a_shipped_scenario_runs_by_name_from_any_directory_and_list_describes_them() {
    let dir = TempDir::new("cli-sim-named");
    let run_in = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_powchain"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("the powchain binary runs")
    };
    let output = run_in(&["sim", "--scenario", "loopback", "--duration", "10s"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("scenario \"loopback\""), "{text}");
    assert!(text.contains("ok   agreement"), "{text}");
    // The path the README shows works from anywhere too, as the file's name.
    let output = run_in(&[
        "sim",
        "--scenario",
        "scenarios/loopback.toml",
        "--duration",
        "5s",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A file of that name in the directory wins over the shipped one.
    std::fs::write(
        dir.path().join("loopback.toml"),
        "name = \"mine\"\nnodes = 3\n[network]\ntopology = \"ring\"\n",
    )
    .unwrap();
    let output = run_in(&["sim", "--scenario", "loopback.toml", "--duration", "5s"]);
    assert!(
        stdout(&output).contains("scenario \"mine\""),
        "{}",
        stdout(&output)
    );
    let output = run_in(&["sim", "--scenario", "partition-hael"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("no shipped scenario \"partition-hael\"")
            && error.contains("partition-heal"),
        "{error}"
    );
    let output = run_in(&["sim", "--list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = stdout(&output);
    for (name, _) in powchain_sim::shipped::SHIPPED {
        assert!(
            listed.contains(&format!("  {name} ")),
            "{name} missing from {listed}"
        );
    }
}

/// The load bench against a real devnet, short: every accepted transfer is confirmed, every
/// refusal has a reason, and the figures it reports are there.
#[test]
fn bench_load_confirms_every_accepted_transfer() {
    let output = powchain(&["bench", "load", "--load-seconds", "10", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let load: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(load["nodes"].as_u64(), Some(4));
    let accepted = load["accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{load}");
    assert_eq!(load["unconfirmed"].as_u64(), Some(0), "{load}");
    assert_eq!(load["confirmed"].as_u64(), Some(accepted));
    let refused = load["refused"].as_u64().unwrap();
    let reasons: u64 = load["refusals"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(reasons, refused, "every refusal has a reason: {load}");
    // The references are measured, whatever the load did.
    for key in [
        "signature_verifications_per_sec",
        "batch_verifications_per_sec",
        "peak_rss_mib",
    ] {
        assert!(load[key].as_f64().unwrap() > 0.0, "{key}: {load}");
    }
    // The sustained rate counts only what was confirmed while the load ran: on a busy
    // machine a short load may end before its first block, so it may be zero, never more.
    let during = load["confirmed_during_load"].as_u64().unwrap();
    assert!(during <= accepted, "{load}");
    let rate = load["confirmed_per_sec"].as_f64().unwrap();
    let seconds = load["load_seconds"].as_f64().unwrap();
    assert!((rate - during as f64 / seconds).abs() < 1e-6, "{load}");
    let batch = load["batch_verifications_per_sec"].as_f64().unwrap();
    assert!(
        (load["ratio_to_batch"].as_f64().unwrap() - rate / batch).abs() < 1e-9,
        "{load}"
    );
}

#[test]
fn a_sweep_in_shards_merges_into_the_files_of_one_whole_run() {
    let dir = TempDir::new("cli-sweep");
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let sweep = dir.file_arg("tiny.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"name = "tiny"
scenario = "{scenarios}/baseline.toml"
seeds = 2
metrics = ["stale_rate", "propagation_ms.p50"]
[set]
nodes = 6
duration = "15m"
settle = "5m"
[[vary]]
key = "chain.block_interval"
values = ["20s", "1m", "3m"]
"#
        ),
    )
    .unwrap();
    let whole = dir.file_arg("whole");
    let output = powchain(&["sweep", &sweep, "--out", &whole]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("3 points x 2 seeds = 6 runs"), "{text}");
    assert!(
        text.contains("chain.block_interval = \"20s\": stale_rate"),
        "{text}"
    );
    let shards = dir.file_arg("shards");
    for shard in ["0/2", "1/2"] {
        let output = powchain(&[
            "sweep", &sweep, "--out", &shards, "--shard", shard, "--jobs", "1",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let merged = dir.file_arg("merged");
    let shard_file = |i: usize| format!("{shards}/tiny.shard-{i}-of-2.json");
    let merge = |files: &[String]| {
        let mut args = vec!["sweep", sweep.as_str(), "--out", merged.as_str(), "--merge"];
        args.extend(files.iter().map(String::as_str));
        powchain(&args)
    };
    let output = merge(&[shard_file(0), shard_file(1)]);
    assert!(output.status.success(), "{}", stderr(&output));
    for name in ["tiny.csv", "tiny.json", "tiny.svg"] {
        let one = std::fs::read(format!("{whole}/{name}")).unwrap();
        let two = std::fs::read(format!("{merged}/{name}")).unwrap();
        assert!(!one.is_empty());
        assert_eq!(
            one, two,
            "{name} differs between the whole run and the merge"
        );
    }
    // A shard short, the merge says which task has no row and fails.
    let output = merge(&[shard_file(1)]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("have no row"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_stopped_sweep_resumes_from_its_journal() {
    let dir = TempDir::new("cli-sweep-journal");
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let sweep_text = |seeds: usize, metric: &str| {
        format!(
            r#"name = "tiny"
scenario = "{scenarios}/baseline.toml"
seeds = {seeds}
metrics = ["{metric}"]
[set]
nodes = 6
duration = "15m"
settle = "5m"
[[vary]]
key = "chain.block_interval"
values = ["20s", "1m", "3m"]
"#
        )
    };
    let sweep = dir.file_arg("tiny.toml");
    std::fs::write(&sweep, sweep_text(2, "stale_rate")).unwrap();
    let whole = dir.file_arg("whole");
    let output = powchain(&["sweep", &sweep, "--out", &whole, "--jobs", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A finished sweep leaves no journal, only its files.
    assert!(!std::path::Path::new(&format!("{whole}/tiny.journal.jsonl")).exists());
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{whole}/tiny.rows.json")).unwrap())
            .unwrap();
    // What a sweep stopped after three runs leaves: its header, three rows (the first one's
    // value changed, to tell a row read back from a run again), half of a fourth.
    let mut header = rows.clone();
    header.as_object_mut().unwrap().remove("rows");
    let mut journal = format!("{header}\n");
    for (i, row) in rows["rows"].as_array().unwrap()[..3].iter().enumerate() {
        let mut row = row.clone();
        if i == 0 {
            row["values"][0] = serde_json::json!(0.5);
        }
        journal.push_str(&format!("{row}\n"));
    }
    journal.push_str(&rows["rows"][3].to_string()[..10]);
    let resumed = dir.file_arg("resumed");
    std::fs::create_dir_all(&resumed).unwrap();
    let journal_path = format!("{resumed}/tiny.journal.jsonl");
    std::fs::write(&journal_path, &journal).unwrap();
    let output = powchain(&["sweep", &sweep, "--out", &resumed, "--jobs", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("resuming: 3 runs already done"),
        "{}",
        stdout(&output)
    );
    let again: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{resumed}/tiny.rows.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(again["rows"][0]["values"][0], serde_json::json!(0.5));
    assert_eq!(
        again["rows"].as_array().unwrap()[1..],
        rows["rows"].as_array().unwrap()[1..]
    );
    assert!(!std::path::Path::new(&journal_path).exists());
    // The journal of another sweep (its file edited since) is refused, not mixed in.
    std::fs::write(&journal_path, &journal).unwrap();
    std::fs::write(&sweep, sweep_text(3, "stale_rate")).unwrap();
    let output = powchain(&["sweep", &sweep, "--out", &resumed, "--jobs", "1"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("was the sweep file changed?"),
        "{}",
        stderr(&output)
    );
    // A metric the report does not have fails before any run, naming what there is.
    std::fs::write(&sweep, sweep_text(2, "stale_rat")).unwrap();
    let output = powchain(&["sweep", &sweep, "--out", &whole]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(r#"no "stale_rat" in the report"#),
        "{}",
        stderr(&output)
    );
}

#[test]
fn every_shipped_experiment_reads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments");
    let mut read = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(error) =
                powchain_sim::sweep::Sweep::from_toml_str(&text, std::path::Path::new(dir))
            {
                panic!("{}: {error}", path.display());
            }
            read += 1;
        }
    }
    assert!(read >= 1, "no experiment in {dir}");
}
