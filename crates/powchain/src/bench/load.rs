//! `powchain bench load`: a sustained stream of signed transfers through the HTTP API of a
//! real 4-node devnet on the `load` chain (this binary, `powchain devnet --chain load`, as a
//! child process), then a wait until every accepted transfer is confirmed.
//!
//! The load chain funds 10,000 dev accounts and takes blocks of 20,000 transfers, so neither
//! the senders nor block space bound the rate. [`CLIENTS`] clients, three per node, each own
//! an equal share of the accounts and post batches of [`BATCH`] signed transfers to
//! `POST /api/v1/transactions`, keeping about [`pending_target`] transfers pending in its
//! node's mempool (one full block's worth): the node always has a full block to mine and
//! check, and its mempool never overflows (an evicted transfer would be accepted and never
//! confirmed).
//!
//! Reported: transfers submitted, accepted, refused (with the node's reasons), confirmed (the
//! transfers on node 0's best chain), the sustained confirmed rate (what node 0's best chain
//! held when the load stopped, per second of load: the wait after it adds nothing), how
//! long the last confirmation took after the load stopped, the devnet's peak
//! resident memory, where the devnet's CPU time went (by thread: the miner, the signature
//! pool, the async runtime that runs the node loops, the network and the API), and two
//! references measured on one core in the same run: batch signature verification and the
//! one-at-a-time verification.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powchain_chain::mempool::MEMPOOL_BLOCKS_MIN;
use powchain_chain::{Amount, ChainSpec, Keypair, Memo, MempoolConfig, Transfer, UnsignedTransfer};
use rayon::prelude::*;

use super::verify;
use serde::Serialize;
use serde_json::Value;

/// Clients submitting at once, three per node: while one waits for its answer, the others
/// keep the node busy.
const CLIENTS: usize = 12;

/// Transfers per batch request.
const BATCH: usize = 250;

/// Transfers a client lets its node hold pending: one full block's worth, the node's
/// mempool bound divided by the
/// [`MEMPOOL_BLOCKS_MIN`] blocks it holds. Every
/// node holds every client's (they are relayed), so this bounds the whole network's pending
/// load, with room under the bound for each client's batch in flight: a full mempool
/// refuses, and one that takes back the transfers of a reorganised block must not drop them.
fn pending_target(spec: &ChainSpec) -> u64 {
    (MempoolConfig::for_chain(spec).count_max / MEMPOOL_BLOCKS_MIN) as u64
}

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
    /// Transfers confirmed while the load ran, per second of load: the sustained rate
    /// (what was confirmed in the wait after it is left out, so a long tail adds nothing).
    pub confirmed_per_sec: f64,
    /// Transfers on node 0's best chain when the load stopped.
    pub confirmed_during_load: u64,
    /// How long after the load stopped the last accepted transfer was confirmed.
    pub settle_seconds: f64,
    /// Signatures one core verifies per second, measured in this run.
    pub signature_verifications_per_sec: f64,
    /// `confirmed_per_sec / signature_verifications_per_sec`.
    pub ratio_to_verification: f64,
    /// Signatures one core verifies per second in batches of 64 (ed25519-dalek's batch
    /// verification), measured in this run: the machine's raw ceiling.
    pub batch_verifications_per_sec: f64,
    /// `confirmed_per_sec / batch_verifications_per_sec`.
    pub ratio_to_batch_verification: f64,
    /// The same ratio, under the name the throughput goal uses.
    pub ratio_to_batch: f64,
    /// The devnet process's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Blocks node 0's best chain grew by during the load and the wait.
    pub blocks: u64,
    /// Their mean interval, seconds.
    pub block_interval_seconds: f64,
    /// The devnet's CPU seconds during the load and the wait, by thread kind.
    pub cpu_seconds: BTreeMap<String, f64>,
    /// This process's CPU seconds (the clients: signing and HTTP).
    pub client_cpu_seconds: f64,
    /// The devnet's CPU time, miner threads left out, per confirmed transfer, in
    /// microseconds: what a transfer costs the four nodes together (API, checks,
    /// signatures, relay, templates, validation, commit), whatever the miner's share.
    pub node_cpu_us_per_transfer: f64,
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
    let spec = ChainSpec::load();
    let chain_id = spec.genesis_hash();
    let accounts = spec.dev_accounts.map_or(0, |dev| dev.count);
    let pending_target = pending_target(&spec);
    progress("signature verification (the reference)");
    let samples = verify::sample_transfers(&chain_id);
    let verify_rate = verify::single_rate(&samples, &chain_id);
    let batch_rate = verify::batch_rate(&samples, &chain_id);

    progress("the API load on a 4-node devnet");
    let datadir = std::env::temp_dir().join(format!("powchain-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&datadir);
    let total = seconds + SETTLE_MAX.as_secs_f64() + 30.0;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "devnet",
            "--chain",
            "load",
            "--nodes",
            "4",
            "--tx-rate",
            "0",
        ])
        .arg("--duration")
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
    let height_before = get(&agent, &apis[0], "/api/v1/status")?["height"]
        .as_u64()
        .unwrap_or(0);
    let cpu_before = thread_cpu_seconds(pid);
    let client_cpu_before = process_cpu_seconds(std::process::id());
    let stop_at = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut peak_rss = 0.0f64;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let api = apis[client % apis.len()].clone();
            let agent = agent.clone();
            let refusals = refusals.clone();
            std::thread::spawn(move || {
                client_loop(
                    client,
                    Share {
                        accounts,
                        pending_target,
                    },
                    &api,
                    &agent,
                    &chain_id,
                    stop_at,
                    &refusals,
                )
            })
        })
        .collect();
    while Instant::now() < stop_at {
        peak_rss = peak_rss.max(rss_mib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let (mut submitted, mut accepted) = (0, 0);
    for worker in workers {
        let outcome = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a load client panicked"))??;
        submitted += outcome.submitted;
        accepted += outcome.accepted;
    }
    let load_seconds = started.elapsed().as_secs_f64();
    let confirmed_during_load = confirmed_transfers(&agent, &apis[0])?;

    // Only the clients send transfers here, so every accepted one is confirmed once node
    // 0's best chain holds as many transfers as were accepted.
    progress("the confirmations");
    let settle = Instant::now();
    let confirmed = loop {
        peak_rss = peak_rss.max(rss_mib(pid));
        let confirmed = confirmed_transfers(&agent, &apis[0])?;
        if confirmed >= accepted || settle.elapsed() > SETTLE_MAX {
            break confirmed;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let settle_seconds = settle.elapsed().as_secs_f64();
    let cpu_seconds = difference(&thread_cpu_seconds(pid), &cpu_before);
    let blocks = get(&agent, &apis[0], "/api/v1/status")?["height"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(height_before);
    let busy_seconds = started.elapsed().as_secs_f64();
    let client_cpu_seconds = process_cpu_seconds(std::process::id()) - client_cpu_before;
    drop(devnet);
    let _ = std::fs::remove_dir_all(&datadir);
    let refusals = refusals.lock().map(|r| r.clone()).unwrap_or_default();
    let confirmed_per_sec = confirmed_during_load as f64 / load_seconds;
    let node_cpu_seconds: f64 = cpu_seconds
        .iter()
        .filter(|(kind, _)| kind.as_str() != "miner")
        .map(|(_, seconds)| seconds)
        .sum();
    let node_cpu_us_per_transfer = 1e6 * node_cpu_seconds / confirmed.max(1) as f64;
    Ok(LoadReport {
        nodes: apis.len(),
        clients: CLIENTS,
        load_seconds,
        submitted,
        accepted,
        refused: refusals.values().sum(),
        refusals,
        confirmed,
        unconfirmed: accepted.saturating_sub(confirmed),
        confirmed_per_sec,
        confirmed_during_load,
        settle_seconds,
        signature_verifications_per_sec: verify_rate,
        ratio_to_verification: confirmed_per_sec / verify_rate,
        batch_verifications_per_sec: batch_rate,
        ratio_to_batch_verification: confirmed_per_sec / batch_rate,
        ratio_to_batch: confirmed_per_sec / batch_rate,
        peak_rss_mib: peak_rss,
        blocks,
        block_interval_seconds: busy_seconds / blocks.max(1) as f64,
        cpu_seconds,
        client_cpu_seconds,
        node_cpu_us_per_transfer,
    })
}

/// What one client did: transfers submitted and accepted.
struct ClientOutcome {
    submitted: u64,
    accepted: u64,
}

/// What every client is told: the funded accounts, and how many transfers to keep pending.
#[derive(Clone, Copy)]
struct Share {
    accounts: u64,
    pending_target: u64,
}

/// Client `client` sends from dev accounts `client`, `client + CLIENTS`, … below
/// `accounts`, each paying the next account, in batches to its node.
fn client_loop(
    client: usize,
    Share {
        accounts,
        pending_target,
    }: Share,
    api: &Api,
    agent: &ureq::Agent,
    chain_id: &powchain_chain::BlockHash,
    stop_at: Instant,
    refusals: &Mutex<BTreeMap<String, u64>>,
) -> anyhow::Result<ClientOutcome> {
    let owned: Vec<(u64, Keypair)> = (client as u64..accounts)
        .step_by(CLIENTS)
        .map(|index| (index, Keypair::dev(index)))
        .collect();
    let mut next_nonce: Vec<u64> = vec![0; owned.len()];
    let (mut submitted, mut accepted) = (0, 0);
    let mut turn = 0;
    while Instant::now() < stop_at {
        let pending = get(agent, api, "/api/v1/status")?["mempool_count"]
            .as_u64()
            .unwrap_or(0);
        if pending >= pending_target {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let slots: Vec<usize> = (0..BATCH).map(|k| (turn + k) % owned.len()).collect();
        turn = (turn + BATCH) % owned.len();
        let transfers: Vec<Transfer> = slots
            .par_iter()
            .map(|&slot| {
                let (index, key) = &owned[slot];
                UnsignedTransfer {
                    to: Keypair::dev((index + 1) % accounts).address(),
                    amount: Amount(1),
                    fee: Amount(1),
                    nonce: next_nonce[slot],
                    memo: Memo::default(),
                }
                .sign(key, chain_id)
            })
            .collect();
        submitted += transfers.len() as u64;
        let mut response = agent
            .post(format!("{}/api/v1/transactions", api.base))
            .header("Authorization", format!("Bearer {}", api.token))
            .send_json(serde_json::json!({ "transfers": transfers }))?;
        let status = response.status();
        let body: Value = response.body_mut().read_json().unwrap_or_default();
        if !status.is_success() {
            bail!("the batch route answered {status}: {body}");
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        for (slot, result) in slots.iter().zip(&results) {
            if result["id"].is_string() {
                accepted += 1;
                next_nonce[*slot] += 1;
            } else {
                let reason = result["error"]
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
    }
    Ok(ClientOutcome {
        submitted,
        accepted,
    })
}

fn get(agent: &ureq::Agent, api: &Api, path: &str) -> anyhow::Result<Value> {
    let mut response = agent.get(format!("{}{path}", api.base)).call()?;
    if !response.status().is_success() {
        bail!("{path}: {}", response.status());
    }
    Ok(response.body_mut().read_json()?)
}

/// Transfers on `api`'s best chain, genesis excluded (its coinbases fund the accounts).
fn confirmed_transfers(agent: &ureq::Agent, api: &Api) -> anyhow::Result<u64> {
    let mut top = get(agent, api, "/api/v1/status")?["height"]
        .as_u64()
        .unwrap_or(0);
    let mut transfers = 0;
    while top > 0 {
        let page = get(agent, api, &format!("/api/v1/blocks?top={top}&count=100"))?;
        let blocks = page["blocks"].as_array().cloned().unwrap_or_default();
        if blocks.is_empty() {
            break;
        }
        for block in &blocks {
            let height = block["height"].as_u64().unwrap_or(0);
            if height > 0 {
                // Every block but genesis holds one coinbase.
                transfers += block["tx_count"].as_u64().unwrap_or(1).saturating_sub(1);
            }
            top = top.min(height.saturating_sub(1));
        }
    }
    Ok(transfers)
}

/// CPU seconds (user and system) of each kind of thread of process `pid`: the thread's
/// name with its number dropped (`miner-3` counts as `miner`).
fn thread_cpu_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut kinds = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return kinds;
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some((name, seconds)) = parse_cpu(&stat) {
            let kind = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            *kinds.entry(kind.to_owned()).or_insert(0.0) += seconds;
        }
    }
    kinds
}

/// CPU seconds of the whole process `pid`.
fn process_cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_cpu(&stat))
        .map_or(0.0, |(_, seconds)| seconds)
}

/// The name and CPU seconds (utime + stime, fields 14 and 15) of a /proc `stat` line.
fn parse_cpu(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.get(open + 1..)?.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (the state) is at index 0.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks; Linux reports them at 100 per second to user space.
    Some((name, (user + system) / 100.0))
}

fn difference(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(kind, seconds)| {
            let spent = seconds - before.get(kind).copied().unwrap_or(0.0);
            (kind.clone(), (spent * 100.0).round() / 100.0)
        })
        .collect()
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
    writeln!(
        out,
        "  {} confirmed while the load ran; the last {:.1} s after it stopped",
        report.confirmed_during_load, report.settle_seconds
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
        "  = {:.4} x one core's batch verification ({:.0}/s, batches of 64; the goal is 0.1)",
        report.ratio_to_batch_verification, report.batch_verifications_per_sec
    )?;
    writeln!(
        out,
        "  {} blocks, one every {:.2} s, {:.0} transfers each; devnet peak RSS {:.1} MiB",
        report.blocks,
        report.block_interval_seconds,
        report.confirmed as f64 / report.blocks.max(1) as f64,
        report.peak_rss_mib
    )?;
    let total: f64 = report.cpu_seconds.values().sum();
    let mut kinds: Vec<(&String, &f64)> = report.cpu_seconds.iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(a.1));
    let shares: Vec<String> = kinds
        .iter()
        .filter(|(_, seconds)| **seconds >= 0.01)
        .map(|(kind, seconds)| {
            format!(
                "{kind} {seconds:.1} s ({:.0}%)",
                100.0 * *seconds / total.max(1e-9)
            )
        })
        .collect();
    writeln!(
        out,
        "  devnet CPU {total:.1} s by thread: {}; the clients (signing, HTTP) {:.1} s",
        shares.join(", "),
        report.client_cpu_seconds
    )?;
    writeln!(
        out,
        "  the nodes' CPU (the miner left out) per confirmed transfer: {:.0} µs, the 4 nodes together",
        report.node_cpu_us_per_transfer
    )
}
