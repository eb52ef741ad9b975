//! The scenarios shipped in `scenarios/`, compiled into the binary, so `powchain sim
//! --scenario partition-heal` works from any directory and `--list` can describe them.

use crate::scenario::{Scenario, ScenarioError};

/// Every shipped scenario: its name (the file's stem) and its TOML.
pub const SHIPPED: &[(&str, &str)] = &[
    ("baseline", include_str!("../../../scenarios/baseline.toml")),
    (
        "bitcoin-2015",
        include_str!("../../../scenarios/bitcoin-2015.toml"),
    ),
    ("churn", include_str!("../../../scenarios/churn.toml")),
    (
        "gervais-2016",
        include_str!("../../../scenarios/gervais-2016.toml"),
    ),
    (
        "high-latency",
        include_str!("../../../scenarios/high-latency.toml"),
    ),
    ("liar", include_str!("../../../scenarios/liar.toml")),
    ("loopback", include_str!("../../../scenarios/loopback.toml")),
    (
        "partition-heal",
        include_str!("../../../scenarios/partition-heal.toml"),
    ),
    (
        "selfish-miner",
        include_str!("../../../scenarios/selfish-miner.toml"),
    ),
];

/// The shipped scenario called `name` (`partition-heal`, or `partition-heal.toml`).
pub fn find(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".toml").unwrap_or(name);
    SHIPPED
        .iter()
        .find(|(shipped, _)| *shipped == name)
        .map(|(_, text)| *text)
}

/// The shipped scenarios, read: name and scenario.
pub fn all() -> Result<Vec<(&'static str, Scenario)>, ScenarioError> {
    SHIPPED
        .iter()
        .map(|&(name, text)| Ok((name, Scenario::from_toml_str(text)?)))
        .collect()
}

/// The names, comma-separated, for an error message.
pub fn names() -> String {
    SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}
