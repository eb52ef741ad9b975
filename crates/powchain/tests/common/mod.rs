//! What the tests of real `powchain` processes share: a node process whose stdout is read
//! line by line with a deadline. Their temporary directories, and their waits for what is not
//! a line, are the test kit's (`powchain_testkit`).

#![allow(dead_code)] // Each test file uses part of it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use powchain_testkit::wait_until;

/// Runs `powchain ARGS`; returns whether it succeeded, its stdout and its stderr.
pub fn powchain(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_powchain"))
        .args(args)
        .output()
        .expect("powchain runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Only a broken node takes this long; the test then fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct NodeProcess {
    pub child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl NodeProcess {
    pub fn start(args: &[&str]) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_powchain"))
            .arg("node")
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("powchain node starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        NodeProcess {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("the node reads its stdin");
        self.stdin.flush().expect("flushed");
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stdin
            .write_all(bytes)
            .expect("the node reads its stdin");
        self.stdin.flush().expect("flushed");
    }

    /// Waits for a line containing `text`; returns it.
    pub fn expect(&mut self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?}; the node printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Asks `question` until an answer line starting with `prefix` contains `wanted`.
    pub fn ask_until(&mut self, question: &str, prefix: &str, wanted: &str) {
        let what = format!("{question} to answer {wanted:?}");
        wait_until(&what, DEADLINE, || {
            self.send(question);
            let answer = self.expect(prefix);
            if answer.contains(wanted) {
                Ok(())
            } else {
                Err(format!("last: {answer}"))
            }
        });
    }

    pub fn quit(mut self) {
        self.send("quit");
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
