//! A sweep's journal: every finished run's row, written the moment it finishes, so that a
//! sweep stopped part way (Ctrl-C, a machine taken back, a job's time limit) starts again
//! where it stopped instead of from nothing.
//!
//! The file is JSON lines: a header naming the sweep (its fingerprint) and the shard, then
//! one row per line in the order the runs finished. A line cut short by a crash is the run
//! that was being written: it is dropped and run again. A journal of another sweep (the file
//! was edited since) or another shard is refused rather than mixed in.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Row, Shard, Sweep};

/// What the first line says.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Header {
    sweep: String,
    fingerprint: String,
    shard: [usize; 2],
    tasks: usize,
}

/// An open journal, appending rows.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens the journal at `path` for `sweep`'s `shard`, creating it if absent, and returns
    /// the rows it already holds (runs that need not run again).
    pub fn open(path: &Path, sweep: &Sweep, shard: Shard) -> Result<(Journal, Vec<Row>), String> {
        let header = Header {
            sweep: sweep.file.name.clone(),
            fingerprint: sweep.fingerprint.clone(),
            shard: [shard.index, shard.count],
            tasks: sweep.tasks(),
        };
        let shown = path.display();
        let mut rows = Vec::new();
        let mut keep = 0u64;
        if let Ok(file) = File::open(path) {
            let mut lines = BufReader::new(file).lines();
            let first = match lines.next() {
                Some(Ok(line)) => line,
                _ => String::new(),
            };
            if !first.is_empty() {
                let found: Header = serde_json::from_str(&first)
                    .map_err(|_| format!("{shown} is not a sweep's journal: move it away"))?;
                if found != header {
                    return Err(format!(
                        "{shown} holds runs of sweep {:?} ({}, shard {}/{}), not of this one ({}, shard {}/{}): was the sweep file changed? Delete {shown} to start again",
                        found.sweep,
                        found.fingerprint,
                        found.shard[0],
                        found.shard[1],
                        header.fingerprint,
                        shard.index,
                        shard.count
                    ));
                }
                keep = first.len() as u64 + 1;
                for line in lines {
                    let Ok(line) = line else { break };
                    // A line cut short: the run that was being written when it stopped.
                    let Ok(row) = serde_json::from_str::<Row>(&line) else {
                        break;
                    };
                    let fits = sweep.tasks() > row.task
                        && shard.holds(row.task)
                        && sweep.task(row.task) == (row.point, row.seed)
                        && row.values.len() == sweep.file.metrics.len()
                        && rows.iter().all(|r: &Row| r.task != row.task);
                    if !fits {
                        return Err(format!(
                            "{shown}: task {} does not fit this sweep: delete {shown} to start again",
                            row.task
                        ));
                    }
                    keep += line.len() as u64 + 1;
                    rows.push(row);
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {shown}: {e}"))?;
        // Whatever followed the last whole row goes; a new journal gets its header.
        file.set_len(keep)
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
        let mut journal = Journal {
            path: path.to_owned(),
            file,
        };
        if keep == 0 {
            let line = serde_json::to_string(&header).map_err(|e| e.to_string())?;
            journal.write_line(&line)?;
        }
        Ok((journal, rows))
    }

    /// Appends a finished run's row, on disk before this returns.
    pub fn append(&mut self, row: &Row) -> Result<(), String> {
        let line = serde_json::to_string(row).map_err(|e| e.to_string())?;
        self.write_line(&line)
    }

    /// Deletes the journal: the sweep's rows are in its final files now.
    pub fn remove(self) -> Result<(), String> {
        std::fs::remove_file(&self.path)
            .map_err(|e| format!("cannot remove {}: {e}", self.path.display()))
    }

    fn write_line(&mut self, line: &str) -> Result<(), String> {
        use std::io::{Seek, SeekFrom};
        let shown = self.path.display();
        self.file
            .seek(SeekFrom::End(0))
            .and_then(|_| self.file.write_all(format!("{line}\n").as_bytes()))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write {shown}: {e}"))
    }
}
