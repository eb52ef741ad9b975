//! Drives the real `powchain` binary as a user would.

use std::process::{Command, Output};

use powchain_chain::ChainSpec;

fn powchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the powchain binary runs")
}

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

    let dir = std::env::temp_dir().join(format!("powchain-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("custom.toml");
    std::fs::write(&file, body.replace("name = \"seed\"", "name = \"custom\"")).unwrap();
    let output = powchain(&["demo", "--chain", file.to_str().unwrap(), "--blocks", "1"]);
    std::fs::remove_dir_all(&dir).unwrap();
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
