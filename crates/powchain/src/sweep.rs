//! `powchain sweep`: a scenario over a grid of parameters times a list of seeds, on every
//! core, summarised per point (mean and 95% confidence interval) as CSV, JSON and an SVG
//! plot; `--shard I/N` runs one slice for a merge (`powchain sweep FILE --merge ...`).
//! Each run's row is journalled as it finishes, so a stopped sweep run again resumes.
//!
//! The grid, the runs and the summary are the sim crate's (`powchain_sim::sweep`); here are
//! the files, the cores and the progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use powchain_sim::sweep::journal::Journal;
use powchain_sim::sweep::plot;
use powchain_sim::sweep::{Row, Shard, ShardFile, Sweep};
use rayon::prelude::*;

/// Flags of `powchain sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep file (TOML; see experiments/).
    file: PathBuf,
    /// Where the output files go: NAME.csv, NAME.json, NAME.svg and every run's row in
    /// NAME.rows.json, or a shard's rows.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Run only the tasks whose number is I modulo N, and write their rows for a merge.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Merge these row files (shards' from --shard, or a whole sweep's NAME.rows.json)
    /// instead of running anything.
    #[arg(long, num_args = 1.., value_name = "SHARD_FILE", conflicts_with = "shard")]
    merge: Vec<PathBuf>,
    /// Runs at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Runs `powchain sweep`.
pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let dir = args.file.parent().unwrap_or(Path::new("."));
    let sweep = Sweep::from_toml_str(&text, dir)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("in {}", args.file.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    if !args.merge.is_empty() {
        let shards = args
            .merge
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str::<ShardFile>(&text)
                    .with_context(|| format!("{} is not a shard's rows", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rows = sweep.merge(&shards).map_err(anyhow::Error::msg)?;
        println!(
            "powchain sweep {:?}: merged {} shard file{}, {} runs",
            sweep.file.name,
            shards.len(),
            if shards.len() == 1 { "" } else { "s" },
            rows.len()
        );
        return write_summary(&sweep, &rows, &args.out);
    }
    let shard = match &args.shard {
        Some(text) => Shard::parse(text).map_err(anyhow::Error::msg)?,
        None => Shard::ALL,
    };
    let name = &sweep.file.name;
    let (rows_path, journal_path) = match shard == Shard::ALL {
        true => (
            args.out.join(format!("{name}.rows.json")),
            args.out.join(format!("{name}.journal.jsonl")),
        ),
        false => (
            args.out.join(format!(
                "{name}.shard-{}-of-{}.json",
                shard.index, shard.count
            )),
            args.out.join(format!(
                "{name}.shard-{}-of-{}.journal.jsonl",
                shard.index, shard.count
            )),
        ),
    };
    sweep
        .check_metrics()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("in {}", args.file.display()))?;
    let (journal, done_rows) =
        Journal::open(&journal_path, &sweep, shard).map_err(anyhow::Error::msg)?;
    let tasks: Vec<usize> = (0..sweep.tasks())
        .filter(|&t| shard.holds(t) && done_rows.iter().all(|row| row.task != t))
        .collect();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256);
    println!(
        "powchain sweep {:?}: {} points x {} seeds = {} runs{}, {jobs} at a time",
        sweep.file.name,
        sweep.points.len(),
        sweep.seeds.len(),
        sweep.tasks(),
        if shard == Shard::ALL {
            String::new()
        } else {
            format!(
                "; shard {}/{} runs {} of them",
                shard.index,
                shard.count,
                tasks.len() + done_rows.len()
            )
        }
    );
    if !done_rows.is_empty() {
        println!(
            "  resuming: {} runs already done in {}, {} to go",
            done_rows.len(),
            journal_path.display(),
            tasks.len()
        );
    } else {
        println!(
            "  each run's row goes to {} as it finishes: a stopped sweep resumes from it",
            journal_path.display()
        );
    }
    let started = Instant::now();
    let progress = progress_bar(tasks.len() as u64, "runs");
    let done = AtomicUsize::new(0);
    let journal = Mutex::new(journal);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("sweep-{i}"))
        .build()
        .context("cannot start the sweep's threads")?;
    let new_rows: Vec<Row> = pool.install(|| {
        tasks
            .par_iter()
            .map(|&task| {
                let row = sweep.run_task(task).map_err(|e| {
                    let (point, seed) = sweep.task(task);
                    anyhow::anyhow!("{} with seed {seed}: {e}", sweep.describe(point))
                })?;
                journal
                    .lock()
                    .map_err(|_| anyhow::anyhow!("a run failed while writing the journal"))?
                    .append(&row)
                    .map_err(anyhow::Error::msg)?;
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                match &progress {
                    Some(bar) => bar.inc(1),
                    // Not a terminal: a line per tenth, so a log shows it moving.
                    None if finished * 10 / tasks.len().max(1)
                        != (finished - 1) * 10 / tasks.len().max(1) =>
                    {
                        println!(
                            "  {finished}/{} runs, {:.0} s",
                            tasks.len(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    None => {}
                }
                Ok(row)
            })
            .collect::<anyhow::Result<Vec<Row>>>()
    })?;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    println!(
        "  {} runs in {:.1} s of wall time",
        new_rows.len(),
        started.elapsed().as_secs_f64()
    );
    let mut rows = done_rows;
    rows.extend(new_rows);
    rows.sort_by_key(|row| row.task);
    // Every run's row is kept: a shard's for the merge, a whole sweep's so that its files can
    // be drawn again (`--merge NAME.rows.json`) without running it again.
    let file = sweep.shard_file(shard, rows);
    write(&rows_path, &serde_json::to_string(&file)?)?;
    println!("rows written to {} (for --merge)", rows_path.display());
    let journal = journal
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a run failed while writing the journal"))?;
    journal.remove().map_err(anyhow::Error::msg)?;
    if shard != Shard::ALL {
        return Ok(());
    }
    write_summary(&sweep, &file.rows, &args.out)
}

/// A progress bar on stderr counting `len` of `unit` (`runs`, `simulated s`), when stderr
/// is a terminal.
pub fn progress_bar(len: u64, unit: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    let template = format!("  {{bar:40}} {{pos}}/{{len}} {unit}, {{elapsed}} (about {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Prints the summary and writes it as CSV, JSON and SVG.
fn write_summary(sweep: &Sweep, rows: &[Row], out: &Path) -> anyhow::Result<()> {
    let summary = sweep.summarise(rows);
    for (point, estimate) in summary.points.iter().enumerate() {
        let metrics: Vec<String> = summary
            .metrics
            .iter()
            .zip(&estimate.metrics)
            .map(|(name, e)| match (e.mean, e.ci95) {
                (Some(mean), Some(ci)) => format!("{name} {mean:.4} +- {ci:.4}"),
                (Some(mean), None) => format!("{name} {mean:.4}"),
                _ => format!("{name} -"),
            })
            .collect();
        let failed = match estimate.runs_with_failed_checks {
            0 => String::new(),
            n => format!(" ({n} with a failed check)"),
        };
        let point_text = sweep.describe(point);
        println!(
            "  {}: {}{failed}",
            if point_text.is_empty() {
                "all"
            } else {
                &point_text
            },
            metrics.join(", ")
        );
    }
    let name = &sweep.file.name;
    for (extension, text) in [
        ("csv", summary.to_csv()),
        ("json", summary.to_json()),
        ("svg", plot::svg(&summary, &sweep.file)),
    ] {
        let path = out.join(format!("{name}.{extension}"));
        write(&path, &text)?;
        println!("{extension} written to {}", path.display());
    }
    if rows.iter().any(|row| !row.passed) {
        // A sweep measures; a failed check is reported (the CSV counts them), not fatal.
        println!("note: some runs failed a named check (runs_with_failed_checks in the CSV)");
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
