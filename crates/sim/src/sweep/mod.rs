//! Sweeps: one scenario run over a grid of parameter values times a list of seeds, each
//! point summarised by the mean of its runs and a 95% confidence interval.
//!
//! ```text
//!  sweep file (TOML) ──> Sweep::from_toml_str ──> tasks (point x seed, numbered)
//!        │                                          │  any order, any machine: run_task
//!        │                                          v
//!        │                                 Row per task (metrics, checks)
//!        │                                          │  each as it finishes: Journal
//!        │                                          │  a shard's rows: ShardFile (JSON)
//!        v                                          v
//!   Sweep::summarise(rows) ──> Summary ──> CSV, JSON, SVG (stats, plot)
//! ```
//!
//! A task depends only on the sweep file and its number, so `--shard I/N` (the tasks whose
//! number is I modulo N) on N machines and a merge of their rows give the same files, byte
//! for byte, as one machine running every task: the summary is computed from the rows in
//! task order whoever ran them.
//!
//! - [`stats`]: means, confidence intervals, the summary and its CSV and JSON.
//! - [`plot`]: the summary as an SVG plot with axes, units, error bars and a legend.
//! - [`journal`]: rows on disk as runs finish, so a stopped sweep resumes.

pub mod journal;
pub mod plot;
pub mod stats;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
pub use stats::Summary;

/// The most runs one sweep may ask for (points x seeds): beyond it is a typo.
pub const TASKS_MAX: usize = 100_000;

/// A sweep file, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Short name: the output files are called after it.
    pub name: String,
    /// What the sweep shows.
    #[serde(default)]
    pub description: String,
    /// The scenario every point starts from: a path relative to the sweep file; the
    /// baseline without one.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The seeds each point runs with: a list, or a count `N` for seeds 1 to N.
    pub seeds: Seeds,
    /// Report keys to summarise, dotted (`stale_rate`, `propagation_ms.p50`,
    /// `adversary.best_chain_share`).
    pub metrics: Vec<String>,
    /// Scenario settings every point shares, dotted keys (`duration = "30d"`).
    #[serde(default)]
    pub set: toml::Table,
    /// The parameters varied, in order: the first is the plot's x axis, every combination
    /// of the others a series.
    #[serde(default)]
    pub vary: Vec<Axis>,
    /// Published or closed-form values drawn beside the measured ones.
    #[serde(default)]
    pub reference: Vec<Reference>,
    /// Vertical lines on the plot (a threshold, say).
    #[serde(default)]
    pub mark: Vec<Mark>,
    /// Axis titles with units, for the plot.
    #[serde(default)]
    pub labels: Labels,
}

/// Seeds: `seeds = [1, 5, 9]` or `seeds = 4` (1 to 4).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Seeds {
    /// Seeds 1 to N.
    Count(u64),
    /// These seeds.
    List(Vec<u64>),
}

/// One varied parameter.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// The scenario key, dotted (`adversary.hash_share`, `chain.block_interval`).
    pub key: String,
    /// Its values, in order.
    pub values: Vec<toml::Value>,
}

/// Values to draw beside a metric's measurements.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// What they are ("Eyal and Sirer, closed form").
    pub label: String,
    /// The metric they are compared with.
    pub metric: String,
    /// `[x, y]` pairs.
    pub points: Vec<[f64; 2]>,
}

/// A vertical line across the plot.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// Where, on the x axis.
    pub x: f64,
    /// What it is.
    pub label: String,
}

/// Axis titles.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Labels {
    /// The x axis (the first varied key if empty).
    pub x: String,
    /// The y axis of each metric's panel, by metric (the metric's key if absent).
    pub y: toml::Table,
}

/// One point of the grid: a value for each axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The values, in the axes' order.
    pub values: Vec<toml::Value>,
}

/// A sweep ready to run: the file, its base scenario and its grid.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The file.
    pub file: SweepFile,
    /// The scenario with the shared settings applied.
    base: toml::Table,
    /// Every point, the first axis varying fastest.
    pub points: Vec<Point>,
    /// Every seed.
    pub seeds: Vec<u64>,
    /// Identifies the sweep (file and base scenario): shards of different sweeps do not
    /// merge.
    pub fingerprint: String,
}

/// One run: which task, and what it measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The task's number.
    pub task: usize,
    /// Its point.
    pub point: usize,
    /// Its seed.
    pub seed: u64,
    /// Each metric's value (`None`: the report had none, as a settle time that never came).
    pub values: Vec<Option<f64>>,
    /// Whether every named check of the run held.
    pub passed: bool,
}

/// One shard's rows, as written for a merge.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardFile {
    /// The sweep's name.
    pub sweep: String,
    /// The sweep's fingerprint.
    pub fingerprint: String,
    /// Which shard: `[index, count]`.
    pub shard: [usize; 2],
    /// Tasks in the whole sweep.
    pub tasks: usize,
    /// This shard's rows.
    pub rows: Vec<Row>,
}

/// Which slice of the tasks to run: `I/N` runs the tasks whose number is I modulo N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// I, from 0.
    pub index: usize,
    /// N.
    pub count: usize,
}

impl Shard {
    /// Every task.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard is I/N with 0 <= I < N (3/8 runs the fourth of eight slices), not {text:?}"
            )
        };
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = index.trim().parse().map_err(|_| bad())?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether task `task` is this shard's.
    pub fn holds(self, task: usize) -> bool {
        task % self.count == self.index
    }
}

impl Sweep {
    /// Reads a sweep file; `dir` is where it lies (its scenario path is relative to it).
    pub fn from_toml_str(text: &str, dir: &Path) -> Result<Sweep, String> {
        let file: SweepFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let scenario_text = match &file.scenario {
            Some(path) => {
                let path = dir.join(path);
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("scenario {}: {e}", path.display()))?
            }
            None => Scenario::default().to_toml_string(),
        };
        let scenario = Scenario::from_toml_str(&scenario_text).map_err(|e| e.to_string())?;
        Sweep::new(file, &scenario)
    }

    /// A sweep of `file` from `scenario`.
    pub fn new(file: SweepFile, scenario: &Scenario) -> Result<Sweep, String> {
        if file.metrics.is_empty() {
            return Err("metrics: name at least one report key (stale_rate, say)".into());
        }
        let seeds = match &file.seeds {
            Seeds::Count(n) => (1..=*n).collect(),
            Seeds::List(list) => list.clone(),
        };
        if seeds.is_empty() {
            return Err("seeds: at least one".into());
        }
        let mut base: toml::Table =
            toml::from_str(&scenario.to_toml_string()).map_err(|e| e.to_string())?;
        for (key, value) in &file.set {
            set_dotted(&mut base, key, value.clone())?;
        }
        if let Some(axis) = file.vary.iter().find(|axis| axis.values.is_empty()) {
            return Err(format!("vary {:?}: no values", axis.key));
        }
        let count: usize = file.vary.iter().map(|axis| axis.values.len()).product();
        if count > TASKS_MAX {
            return Err(format!("{count} points: at most {TASKS_MAX}"));
        }
        // Counting in mixed radix, the first axis as the lowest digit: it varies fastest, so
        // a series (one value of every other axis) is one run of consecutive points.
        let points: Vec<Point> = (0..count)
            .map(|mut index| {
                let values = file
                    .vary
                    .iter()
                    .map(|axis| {
                        let value = axis.values[index % axis.values.len()].clone();
                        index /= axis.values.len();
                        value
                    })
                    .collect();
                Point { values }
            })
            .collect();
        let tasks = points.len().saturating_mul(seeds.len());
        if tasks > TASKS_MAX {
            return Err(format!(
                "{tasks} runs ({} points x {} seeds): at most {TASKS_MAX}",
                points.len(),
                seeds.len()
            ));
        }
        let fingerprint = {
            let text = format!(
                "{}\n{}",
                toml::to_string(&file).map_err(|e| e.to_string())?,
                toml::to_string(&base).map_err(|e| e.to_string())?
            );
            powchain_chain::Hash512::digest(text.as_bytes()).short(16)
        };
        let sweep = Sweep {
            file,
            base,
            points,
            seeds,
            fingerprint,
        };
        // Every point must be a scenario the simulator can run: find out now, not hours in.
        for point in 0..sweep.points.len() {
            sweep.scenario(point, sweep.seeds[0])?;
        }
        Ok(sweep)
    }

    /// Tasks in the whole sweep.
    pub fn tasks(&self) -> usize {
        self.points.len() * self.seeds.len()
    }

    /// Task `task`'s point and seed.
    pub fn task(&self, task: usize) -> (usize, u64) {
        (task / self.seeds.len(), self.seeds[task % self.seeds.len()])
    }

    /// The scenario of `point` with `seed`.
    pub fn scenario(&self, point: usize, seed: u64) -> Result<Scenario, String> {
        let mut table = self.table(point)?;
        table.insert("seed".into(), toml::Value::Integer(seed as i64));
        let text = toml::to_string(&table).map_err(|e| e.to_string())?;
        Scenario::from_toml_str(&text).map_err(|e| format!("point {}: {e}", self.describe(point)))
    }

    /// The scenario's table at `point`: the base with the point's values set.
    fn table(&self, point: usize) -> Result<toml::Table, String> {
        let mut table = self.base.clone();
        for (axis, value) in self.file.vary.iter().zip(&self.points[point].values) {
            set_dotted(&mut table, &axis.key, value.clone())?;
        }
        Ok(table)
    }

    /// Runs task `task` and measures it.
    pub fn run_task(&self, task: usize) -> Result<Row, String> {
        let (point, seed) = self.task(task);
        let scenario = self.scenario(point, seed)?;
        let (outcome, _) = crate::run(scenario, false)?;
        let report = serde_json::to_value(&outcome.report).map_err(|e| e.to_string())?;
        let values = self
            .file
            .metrics
            .iter()
            .map(|metric| lookup(&report, metric))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Row {
            task,
            point,
            seed,
            values,
            passed: outcome.report.passed(),
        })
    }

    /// Checks that every metric names a number of the report, by a run of the first point
    /// cut to one simulated second, so that a typo fails at once rather than after the
    /// first long run.
    pub fn check_metrics(&self) -> Result<(), String> {
        let mut table = self.table(0)?;
        for key in ["duration", "settle"] {
            table.insert(key.into(), toml::Value::String("1s".into()));
        }
        let text = toml::to_string(&table).map_err(|e| e.to_string())?;
        let scenario = Scenario::from_toml_str(&text).map_err(|e| e.to_string())?;
        let (outcome, _) = crate::run(scenario, false)?;
        let report = serde_json::to_value(&outcome.report).map_err(|e| e.to_string())?;
        for metric in &self.file.metrics {
            lookup(&report, metric)?;
        }
        Ok(())
    }

    /// `point` as `key = value, ...`.
    pub fn describe(&self, point: usize) -> String {
        self.file
            .vary
            .iter()
            .zip(&self.points[point].values)
            .map(|(axis, value)| format!("{} = {}", axis.key, value))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rows of one shard, for a merge.
    pub fn shard_file(&self, shard: Shard, rows: Vec<Row>) -> ShardFile {
        ShardFile {
            sweep: self.file.name.clone(),
            fingerprint: self.fingerprint.clone(),
            shard: [shard.index, shard.count],
            tasks: self.tasks(),
            rows,
        }
    }

    /// Puts shards' rows together: every task exactly once, every shard of this sweep.
    pub fn merge(&self, shards: &[ShardFile]) -> Result<Vec<Row>, String> {
        let mut rows: Vec<Option<Row>> = vec![None; self.tasks()];
        for shard in shards {
            if shard.fingerprint != self.fingerprint || shard.tasks != self.tasks() {
                return Err(format!(
                    "shard {}/{} is of sweep {:?} ({}), not of this one {:?} ({}): was the sweep file changed between the runs?",
                    shard.shard[0],
                    shard.shard[1],
                    shard.sweep,
                    shard.fingerprint,
                    self.file.name,
                    self.fingerprint
                ));
            }
            for row in &shard.rows {
                let slot = rows
                    .get_mut(row.task)
                    .ok_or_else(|| format!("task {} is not in this sweep", row.task))?;
                if self.task(row.task) != (row.point, row.seed)
                    || row.values.len() != self.file.metrics.len()
                {
                    return Err(format!(
                        "task {}: the row does not match the sweep",
                        row.task
                    ));
                }
                if slot.replace(row.clone()).is_some() {
                    return Err(format!("task {} is in two shards", row.task));
                }
            }
        }
        let missing: Vec<usize> = (0..rows.len()).filter(|&t| rows[t].is_none()).collect();
        if let Some(first) = missing.first() {
            return Err(format!(
                "{} of {} tasks have no row (the first: task {first}, {}): is a shard missing?",
                missing.len(),
                rows.len(),
                self.describe(self.task(*first).0)
            ));
        }
        Ok(rows.into_iter().flatten().collect())
    }

    /// Summarises every task's row (in task order).
    pub fn summarise(&self, rows: &[Row]) -> Summary {
        stats::summarise(self, rows)
    }
}

/// Sets `key` (dotted: `network.latency`) in `table`, making the tables on the way.
fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("empty key {key:?}"))?;
    let mut here = table;
    for part in parts {
        let entry = here
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key:?}: {part:?} is a value, not a section"))?;
    }
    here.insert(last.to_owned(), value);
    Ok(())
}

/// The number at `path` (dotted) in the report: `null` is `None`, a boolean 0 or 1.
fn lookup(report: &serde_json::Value, path: &str) -> Result<Option<f64>, String> {
    let mut here = report;
    for part in path.split('.') {
        here = match here.get(part) {
            Some(next) => next,
            None if here.is_null() => return Ok(None),
            None => {
                let known: Vec<&String> = here
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                return Err(format!(
                    "metric {path:?}: no {part:?} in the report (there: {known:?})"
                ));
            }
        };
    }
    match here {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Bool(b) => Ok(Some(f64::from(u8::from(*b)))),
        serde_json::Value::Number(n) => Ok(n.as_f64()),
        other => Err(format!("metric {path:?} is not a number: {other}")),
    }
}
