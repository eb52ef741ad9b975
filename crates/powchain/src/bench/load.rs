//! `powchain bench load`: a sustained stream of signed transfers through the HTTP API of a
//! real 4-node devnet (this binary, `powchain devnet`, as a child process), from several
//! clients at once, then a wait until every accepted transfer is confirmed.
//!
//! Reported: transfers submitted, accepted, refused (with the node's reasons), confirmed, the
//! sustained confirmed rate, the devnet's peak resident memory, and two references measured
//! on one core in the same run: batch signature verification (the machine's raw ceiling), and
//! the one-at-a-time verification the node does. Each client owns some dev accounts and keeps at most `WINDOW` of each one's
//! transfers pending, the mempool's bound on nonces ahead being 64. With the dev chain's ten
//! accounts that caps the load at about 480 transfers per block interval (2 s once the
//! difficulty has settled): the figure measures the node under that load, not its ceiling.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powchain_chain::{Amount, ChainSpec, Keypair, Memo, UnsignedTransfer};

use super::verify;
use serde::Serialize;
use serde_json::Value;

/// Pending transfers a client keeps per account (the mempool takes 64 nonces ahead).
const WINDOW: u64 = 48;

/// Clients submitting at once.
const CLIENTS: usize = 4;

/// How long the confirmations may take after the load stops.
const SETTLE_MAX: Duration = Duration::from_secs(120);

/// What the load bench measured.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub nodes: usize,
    pub clients: usize,
    pub load_seconds: f64,
    pub submitted: u64,
    pub accepted: u64,
    pub refused: u64,
    /// The node's reasons for refusals, with counts.
    pub refusals: BTreeMap<String, u64>,
    pub confirmed: u64,
    /// Accepted transfers not confirmed when the wait ended.
    pub unconfirmed: u64,
    /// Confirmed transfers per second of load.
    pub confirmed_per_sec: f64,
    /// Signatures one core verifies per second, measured in this run.
    pub signature_verifications_per_sec: f64,
    /// `confirmed_per_sec / signature_verifications_per_sec`.
    pub ratio_to_verification: f64,
    /// Signatures one core verifies per second in batches of 64 (ed25519-dalek's batch
    /// verification), measured in this run: the machine's raw ceiling.
    pub batch_verifications_per_sec: f64,
    /// `confirmed_per_sec / batch_verifications_per_sec`.
    pub ratio_to_batch_verification: f64,
    /// The devnet process's peak resident memory, MiB.
    pub peak_rss_mib: f64,
}

/// The devnet child, killed if the bench ends early.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One node's API, as the devnet printed it.
#[derive(Clone)]
struct Api {
    base: String,
    token: String,
}

/// Runs the load for `seconds`.
pub fn measure(seconds: f64, progress: &dyn Fn(&str)) -> anyhow::Result<LoadReport> {
    let spec = ChainSpec::dev();
    let chain_id = spec.genesis_hash();
    progress("signature verification (the reference)");
    let samples = verify::sample_transfers(&chain_id);
    let verify_rate = verify::single_rate(&samples, &chain_id);
    let batch_rate = verify::batch_rate(&samples, &chain_id);

    progress("the API load on a 4-node devnet");
    let datadir = std::env::temp_dir().join(format!("powchain-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&datadir);
    let total = seconds + SETTLE_MAX.as_secs_f64() + 30.0;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["devnet", "--nodes", "4", "--tx-rate", "0", "--duration"])
        .arg(format!("{}s", total.ceil()))
        .arg("--datadir")
        .arg(&datadir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the devnet")?;
    let stdout = child.stdout.take().context("no devnet output")?;
    let devnet = Devnet(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut apis = Vec::new();
    while apis.len() < 4 {
        let line = lines
            .next()
            .context("the devnet ended before serving its APIs")??;
        // "  node 0: ADDR   explorer http://API/   (clients: --datadir DIR)"
        if let (Some(api), Some(dir)) = (
            line.split("http://")
                .nth(1)
                .and_then(|r| r.split('/').next()),
            line.split("--datadir ")
                .nth(1)
                .map(|r| r.trim_end_matches(')')),
        ) {
            let token = std::fs::read_to_string(std::path::Path::new(dir).join("api.cookie"))
                .context("cannot read a devnet node's cookie")?;
            apis.push(Api {
                base: format!("http://{api}"),
                token: token.trim().to_owned(),
            });
        }
    }
    // Keep reading the devnet's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let pid = devnet.0.id();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();

    let refusals = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let stop_at = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut peak_rss = 0.0f64;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let apis = apis.clone();
            let agent = agent.clone();
            let refusals = refusals.clone();
            std::thread::spawn(move || {
                client_loop(client, &apis, &agent, &chain_id, stop_at, &refusals)
            })
        })
        .collect();
    while Instant::now() < stop_at {
        peak_rss = peak_rss.max(rss_mib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut accounts = Vec::new();
    let (mut submitted, mut accepted) = (0, 0);
    for worker in workers {
        let outcome = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a load client panicked"))??;
        submitted += outcome.submitted;
        accepted += outcome.accepted;
        accounts.extend(outcome.nonces);
    }
    let load_seconds = started.elapsed().as_secs_f64();

    // Every accepted transfer is confirmed once each account's nonce on node 0 reaches the
    // count of its accepted transfers.
    progress("the confirmations");
    let settle = Instant::now();
    let unconfirmed = loop {
        peak_rss = peak_rss.max(rss_mib(pid));
        let mut missing = 0;
        for (index, wanted) in &accounts {
            let account = get(&agent, &apis[0], &format!("/api/v1/accounts/{index}"))?;
            missing += wanted.saturating_sub(account["nonce"].as_u64().unwrap_or(0));
        }
        if missing == 0 || settle.elapsed() > SETTLE_MAX {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    drop(devnet);
    let _ = std::fs::remove_dir_all(&datadir);
    let refusals = refusals.lock().map(|r| r.clone()).unwrap_or_default();
    let confirmed = accepted - unconfirmed;
    let confirmed_per_sec = confirmed as f64 / load_seconds;
    Ok(LoadReport {
        nodes: apis.len(),
        clients: CLIENTS,
        load_seconds,
        submitted,
        accepted,
        refused: refusals.values().sum(),
        refusals,
        confirmed,
        unconfirmed,
        confirmed_per_sec,
        signature_verifications_per_sec: verify_rate,
        ratio_to_verification: confirmed_per_sec / verify_rate,
        batch_verifications_per_sec: batch_rate,
        ratio_to_batch_verification: confirmed_per_sec / batch_rate,
        peak_rss_mib: peak_rss,
    })
}

/// What one client did: transfers submitted and accepted, and per account how many of its
/// transfers were accepted (its final nonce once all are confirmed).
struct ClientOutcome {
    submitted: u64,
    accepted: u64,
    nonces: Vec<(u64, u64)>,
}

fn client_loop(
    client: usize,
    apis: &[Api],
    agent: &ureq::Agent,
    chain_id: &powchain_chain::BlockHash,
    stop_at: Instant,
    refusals: &Mutex<BTreeMap<String, u64>>,
) -> anyhow::Result<ClientOutcome> {
    // Accounts client, client + CLIENTS, … of the dev chain's ten; each pays the next one.
    let owned: Vec<u64> = (client as u64..10).step_by(CLIENTS).collect();
    let mut next_nonce: Vec<u64> = vec![0; owned.len()];
    let (mut submitted, mut accepted) = (0, 0);
    let mut turn = client;
    while Instant::now() < stop_at {
        let mut idle = true;
        for (slot, &index) in owned.iter().enumerate() {
            let api = &apis[turn % apis.len()];
            turn += 1;
            let confirmed = get(agent, api, &format!("/api/v1/accounts/{index}"))?["nonce"]
                .as_u64()
                .unwrap_or(0);
            if next_nonce[slot] >= confirmed + WINDOW {
                continue;
            }
            idle = false;
            let transfer = UnsignedTransfer {
                to: Keypair::dev((index + 1) % 10).address(),
                amount: Amount(1),
                fee: Amount(1),
                nonce: next_nonce[slot],
                memo: Memo::default(),
            }
            .sign(&Keypair::dev(index), chain_id);
            submitted += 1;
            let mut response = agent
                .post(format!("{}/api/v1/tx", api.base))
                .header("Authorization", format!("Bearer {}", api.token))
                .send_json(serde_json::to_value(&transfer)?)?;
            let status = response.status();
            let body: Value = response.body_mut().read_json().unwrap_or_default();
            if status.is_success() {
                accepted += 1;
                next_nonce[slot] += 1;
            } else {
                let reason = body["error"]["message"]
                    .as_str()
                    .unwrap_or("no reason")
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Ok(mut refusals) = refusals.lock() {
                    *refusals.entry(reason).or_default() += 1;
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(ClientOutcome {
        submitted,
        accepted,
        nonces: owned.into_iter().zip(next_nonce).collect(),
    })
}

fn get(agent: &ureq::Agent, api: &Api, path: &str) -> anyhow::Result<Value> {
    let mut response = agent.get(format!("{}{path}", api.base)).call()?;
    if !response.status().is_success() {
        bail!("{path}: {}", response.status());
    }
    Ok(response.body_mut().read_json()?)
}

/// The resident memory high-water mark of process `pid`, MiB (0 where /proc has none).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Prints the report as text.
pub fn print(report: &LoadReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "load: {} clients on a {}-node devnet for {:.1} s",
        report.clients, report.nodes, report.load_seconds
    )?;
    writeln!(
        out,
        "  submitted {}, accepted {}, refused {}, confirmed {}, unconfirmed {}",
        report.submitted, report.accepted, report.refused, report.confirmed, report.unconfirmed
    )?;
    for (reason, count) in &report.refusals {
        writeln!(out, "    refused {count}: {reason}")?;
    }
    writeln!(
        out,
        "  sustained {:.1} confirmed transfers/s = {:.4} x one core's signature verification ({:.0}/s)",
        report.confirmed_per_sec,
        report.ratio_to_verification,
        report.signature_verifications_per_sec
    )?;
    writeln!(
        out,
        "  = {:.4} x one core's batch verification ({:.0}/s, batches of 64)",
        report.ratio_to_batch_verification, report.batch_verifications_per_sec
    )?;
    writeln!(out, "  devnet peak RSS {:.1} MiB", report.peak_rss_mib)
}
