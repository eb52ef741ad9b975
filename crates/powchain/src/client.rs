//! The command-line clients of a running node's HTTP API: `status`, `block`, `balance`,
//! `tx`, `send`, `peers`, `mine`. Each finds the node through the address file in its data
//! directory (or `--rpc`), asks one or two questions, and prints text or, with `--json`, the
//! API's answer as it came.
//!
//! `send` signs on this side: the key never travels. It asks the node for the chain's id
//! (the genesis hash), the fee floor and the sender's next nonce, signs, and submits; with
//! `--count N`, N transfers at consecutive nonces go in one request to the batch route.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use powchain_chain::{Address, Amount, BlockHash, Keypair, Memo, UnsignedTransfer};
use powchain_node::wallet::Wallet;
use serde_json::{Value, json};

use crate::node::rpc::{ADDRESS_FILE, COOKIE_FILE};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `mine` looks for its block.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where the node is, and how to print: the flags every client shares.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The node's API address (default: read from the node's data directory).
    #[arg(long, value_name = "ADDR")]
    rpc: Option<String>,
    /// The node's data directory, which holds its api.address and api.cookie (default:
    /// powchain-data, or powchain-data/node-N with -n).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// The node's number, as given to `powchain node -n`.
    #[arg(short = 'n', long = "id")]
    id: Option<u32>,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// What `powchain send` sends.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Who pays: a dev account number, or an address whose key is in the wallet.
    #[arg(long)]
    from: String,
    /// Who receives: an address, or a dev account number.
    #[arg(long)]
    to: String,
    /// Coins to send.
    #[arg(long)]
    amount: u64,
    /// The fee (default: the chain's minimum).
    #[arg(long)]
    fee: Option<u64>,
    /// A note carried with the transfer (at most 256 bytes).
    #[arg(long, default_value = "")]
    memo: String,
    /// The wallet holding --from's key (default: wallet.keys in the data directory).
    #[arg(long)]
    wallet: Option<PathBuf>,
    /// Send this many transfers, at consecutive nonces, in one request to the batch route
    /// (`POST /api/v1/transactions`); each is answered on its own. A node holds a sender's
    /// transfers at most 64 nonces ahead of its account, and refuses the rest.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=powchain_api::TRANSFERS_PER_BATCH_MAX as u64))]
    count: u64,
}

/// A node's API, as the clients reach it.
struct Api {
    base: String,
    datadir: PathBuf,
    agent: ureq::Agent,
}

impl ClientArgs {
    fn datadir(&self) -> PathBuf {
        self.datadir
            .clone()
            .unwrap_or_else(|| crate::node::default_datadir(self.id))
    }

    fn connect(&self) -> anyhow::Result<Api> {
        let datadir = self.datadir();
        let address = match &self.rpc {
            Some(address) => address.clone(),
            None => {
                let file = datadir.join(ADDRESS_FILE);
                let text = std::fs::read_to_string(&file).with_context(|| {
                    format!(
                        "no running node found: {} is missing (start `powchain node`, or \
                         point at one with --datadir, -n or --rpc)",
                        file.display()
                    )
                })?;
                text.trim().to_owned()
            }
        };
        let base = if address.starts_with("http://") {
            address.trim_end_matches('/').to_owned()
        } else {
            format!("http://{address}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(Api {
            base,
            datadir,
            agent,
        })
    }
}

impl Api {
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.agent.get(format!("{}{path}", self.base)).call();
        self.answer(response)
    }

    fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let token = self.token()?;
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(body);
        self.answer(response)
    }

    /// The token from the node's cookie file.
    fn token(&self) -> anyhow::Result<String> {
        let file = self.datadir.join(COOKIE_FILE);
        let token = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "changing the node needs its token, and {} is not readable (use the node's \
                 --datadir or -n)",
                file.display()
            )
        })?;
        Ok(token.trim().to_owned())
    }

    /// The JSON of a 2xx answer; the API's own message otherwise.
    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response = response.map_err(|error| {
            anyhow::anyhow!(
                "cannot reach the node's API at {}: {error} (is `powchain node` running?)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("the node answered {status} with something not JSON"))?;
        if status.is_success() {
            Ok(body)
        } else {
            match body["error"]["message"].as_str() {
                Some(message) => bail!("{message}"),
                None => bail!("the node answered {status}: {body}"),
            }
        }
    }
}

/// Prints `value` as the API gave it, or as text.
fn print(args: &ClientArgs, value: &Value, text: impl FnOnce(&Value) -> String) {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    } else {
        println!("{}", text(value));
    }
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("?")
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// A hash rate with its unit.
fn rate(hashes_per_second: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s"];
    let mut value = hashes_per_second;
    let mut unit = 0;
    while value >= 1_000.0 && unit + 1 < units.len() {
        value /= 1_000.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

/// `powchain status`.
pub fn status(args: &ClientArgs) -> anyhow::Result<()> {
    let api = args.connect()?;
    let status = api.get("/api/v1/status")?;
    print(args, &status, |s| {
        let mining = if s["mining"] == true {
            format!(
                "mining at {}",
                rate(s["miner_hash_rate"].as_f64().unwrap_or(0.0))
            )
        } else {
            "not mining".to_owned()
        };
        format!(
            "chain {} (genesis {})\n\
             height {}, tip {}, difficulty {:.1} bits, total work {}\n\
             {} peers, {} pending transactions ({} bytes), {} blocks downloading\n\
             {mining}{}; network about {}",
            str_of(s, "network"),
            short(str_of(s, "genesis")),
            s["height"],
            short(str_of(s, "tip")),
            s["difficulty_bits"].as_f64().unwrap_or(0.0),
            str_of(s, "total_work"),
            s["peers"],
            s["mempool_count"],
            s["mempool_bytes"],
            s["downloading"],
            if s["automine"] == true {
                " (automine on)"
            } else {
                ""
            },
            rate(s["network_hash_rate"].as_f64().unwrap_or(0.0)),
        )
    });
    Ok(())
}

/// `powchain block [HEIGHT|HASH]` (default: the tip).
pub fn block(args: &ClientArgs, which: Option<&str>) -> anyhow::Result<()> {
    let api = args.connect()?;
    let which = match which {
        Some(which) => which.to_owned(),
        None => api.get("/api/v1/status")?["height"].to_string(),
    };
    if which.is_empty() || !which.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("{which:?} is neither a height nor a block hash");
    }
    let block = api.get(&format!("/api/v1/blocks/{which}"))?;
    print(args, &block, describe_block);
    Ok(())
}

/// `powchain tx ID` (the id, or its first 8 or more hex digits).
pub fn tx(args: &ClientArgs, id: &str) -> anyhow::Result<()> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{id:?} is not a transaction id: give its hex digits, all 128 or the first 8 or more"
        );
    }
    let api = args.connect()?;
    let tx = api.get(&format!("/api/v1/tx/{id}"))?;
    print(args, &tx, |tx| {
        let place = if tx["pending"] == true {
            "pending in the mempool".to_owned()
        } else {
            format!(
                "in block {} {}, {}",
                tx["block"]["height"],
                short(str_of(&tx["block"], "hash")),
                confirmations(tx["confirmations"].as_u64().unwrap_or(0))
            )
        };
        format!(
            "{}
  {place}",
            describe_tx(tx)
        )
    });
    Ok(())
}

/// "1 confirmation", "2 confirmations".
pub(crate) fn confirmations(n: u64) -> String {
    match n {
        1 => "1 confirmation".to_owned(),
        n => format!("{n} confirmations"),
    }
}

fn describe_block(b: &Value) -> String {
    let mut lines = vec![
        format!("block {} {}", b["height"], str_of(b, "hash")),
        format!(
            "  parent {}\n  time {} ms, nonce {}, difficulty {:.1} bits",
            short(str_of(b, "prev_hash")),
            b["time"],
            b["nonce"],
            b["difficulty_bits"].as_f64().unwrap_or(0.0)
        ),
        match b["confirmations"].as_u64() {
            Some(n) => format!("  on the best chain, {}", confirmations(n)),
            None => "  not on the best chain".to_owned(),
        },
    ];
    for tx in b["txs"].as_array().into_iter().flatten() {
        lines.push(format!("  {}", describe_tx(tx)));
    }
    lines.join("\n")
}

fn describe_tx(tx: &Value) -> String {
    match tx["kind"].as_str() {
        Some("coinbase") => format!(
            "{} coinbase: {} coins to {}",
            short(str_of(tx, "id")),
            tx["amount"],
            short(str_of(tx, "to"))
        ),
        _ => format!(
            "{} {} coins from {} to {}, fee {}, nonce {}",
            short(str_of(tx, "id")),
            tx["amount"],
            short(str_of(tx, "from")),
            short(str_of(tx, "to")),
            tx["fee"],
            tx["nonce"]
        ),
    }
}

/// Checks that `who` is a dev account number or an address, so it can go in a URL.
fn account_path(who: &str) -> anyhow::Result<String> {
    let who = who.strip_prefix("dev:").unwrap_or(who);
    if who.is_empty() || !who.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{who:?} is neither a dev account number nor an address (64 hex digits)");
    }
    Ok(format!("/api/v1/accounts/{who}"))
}

/// `powchain balance WHO`.
pub fn balance(args: &ClientArgs, who: &str) -> anyhow::Result<()> {
    let api = args.connect()?;
    let account = api.get(&account_path(who)?)?;
    print(args, &account, |a| {
        let name = match a["dev_index"].as_u64() {
            Some(index) => format!("dev account {index} ({})", str_of(a, "address")),
            None => str_of(a, "address").to_owned(),
        };
        let mut text = format!("{name}\n  balance {}, nonce {}", a["balance"], a["nonce"]);
        if a["pending_balance"] != a["balance"] {
            text.push_str(&format!(
                "\n  with pending transactions: balance {}, next nonce {}",
                a["pending_balance"], a["next_nonce"]
            ));
        }
        if a["exists"] == false {
            text.push_str("\n  (no transaction has touched it yet)");
        }
        for tx in a["recent"].as_array().into_iter().flatten().take(5) {
            let place = match tx["block"]["height"].as_u64() {
                Some(height) => format!("block {height}"),
                None => "pending".to_owned(),
            };
            text.push_str(&format!("\n  {place}: {}", describe_tx(tx)));
        }
        text
    });
    Ok(())
}

/// `powchain send`: signs here, submits there.
pub fn send(args: &ClientArgs, send: &SendArgs) -> anyhow::Result<()> {
    let api = args.connect()?;
    // The key, and the sender's account when it was already fetched.
    let (key, sender) = match send
        .from
        .strip_prefix("dev:")
        .unwrap_or(&send.from)
        .parse::<u64>()
    {
        Ok(index) => {
            let account = api.get(&account_path(&index.to_string())?)?;
            let key = Keypair::dev(index);
            if account["address"].as_str() != Some(key.address().to_string().as_str()) {
                bail!("the node's dev account {index} is not this build's: different chains?");
            }
            (key, Some(account))
        }
        Err(_) => {
            let address: Address = send
                .from
                .parse()
                .with_context(|| format!("--from {:?} is not an address", send.from))?;
            let path = send
                .wallet
                .clone()
                .unwrap_or_else(|| args.datadir().join("wallet.keys"));
            let wallet = Wallet::open(&path)?;
            let key = wallet
                .keys()
                .iter()
                .find(|key| key.address() == address)
                .cloned()
                .with_context(|| {
                    format!("the wallet {} has no key for {address}", path.display())
                })?;
            (key, None)
        }
    };
    let to: Address = api.get(&account_path(&send.to)?)?["address"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .context("the node described the recipient without a valid address")?;
    let status = api.get("/api/v1/status")?;
    let chain_id: BlockHash = str_of(&status, "genesis")
        .parse()
        .context("the node's genesis hash is not a hash")?;
    let fee = send
        .fee
        .unwrap_or_else(|| status["fee_min"].as_u64().unwrap_or(0));
    let sender = match sender {
        Some(account) => account,
        None => api.get(&format!("/api/v1/accounts/{}", key.address()))?,
    };
    let nonce = sender["next_nonce"]
        .as_u64()
        .context("the node did not say the sender's next nonce")?;
    let memo = Memo::new(send.memo.clone().into_bytes())
        .map_err(|e| anyhow::anyhow!("--memo is too long: {e}"))?;
    let sign = |nonce: u64| {
        UnsignedTransfer {
            to,
            amount: Amount(send.amount),
            fee: Amount(fee),
            nonce,
            memo: memo.clone(),
        }
        .sign(&key, &chain_id)
    };
    if send.count > 1 {
        // The nonce is the node's answer: it must leave room for the count.
        let end = nonce
            .checked_add(send.count)
            .context("the sender's next nonce leaves no room for --count transfers")?;
        let transfers: Vec<_> = (nonce..end).map(sign).collect();
        let answer = api.post(
            "/api/v1/transactions",
            &serde_json::json!({ "transfers": transfers }),
        )?;
        print(args, &answer, |a| {
            describe_batch(a, send.count, send.amount, &to, fee, nonce)
        });
        return Ok(());
    }
    let transfer = sign(nonce);
    let accepted = api.post("/api/v1/tx", &serde_json::to_value(&transfer)?)?;
    print(args, &accepted, |a| {
        format!(
            "sent {} coins to {}, fee {fee}, nonce {nonce}: transaction {id} is pending (`powchain tx {id}` follows it)",
            send.amount,
            short(&to.to_string()),
            id = short(str_of(a, "id"))
        )
    });
    Ok(())
}

/// What the batch route answered to `count` transfers from nonce `first` on: how many went
/// in, and the first few refusals with their reasons (each names its nonce).
fn describe_batch(
    answer: &Value,
    count: u64,
    amount: u64,
    to: &Address,
    fee: u64,
    first: u64,
) -> String {
    const REFUSALS_SHOWN: usize = 5;
    let refusals: Vec<&str> = answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|result| result["error"].as_str())
        .collect();
    let mut text = format!(
        "sent {count} transfers of {amount} coins to {}, fee {fee}, nonces {first}..={}: \
         {} accepted, {} refused",
        short(&to.to_string()),
        first + (count - 1),
        answer["accepted"].as_u64().unwrap_or(0),
        answer["refused"].as_u64().unwrap_or(0),
    );
    for reason in refusals.iter().take(REFUSALS_SHOWN) {
        text.push_str(&format!("\n  refused: {reason}"));
    }
    if refusals.len() > REFUSALS_SHOWN {
        text.push_str(&format!(
            "\n  and {} more refused (--json lists every answer)",
            refusals.len() - REFUSALS_SHOWN
        ));
    }
    text
}

/// `powchain peers`.
pub fn peers(args: &ClientArgs) -> anyhow::Result<()> {
    let api = args.connect()?;
    let peers = api.get("/api/v1/peers")?;
    print(args, &peers, |p| {
        let list = p["peers"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return "no peers".to_owned();
        }
        list.iter()
            .map(|peer| {
                let rtt = peer["rtt_ms"]
                    .as_u64()
                    .map_or("-".to_owned(), |ms| format!("{ms} ms"));
                // Named as the session names it: by node number when it said one.
                let name = peer["number"].as_u64().map_or_else(
                    || format!("peer {:>3}", peer["id"]),
                    |number| format!("node {number:>3}"),
                );
                format!(
                    "{name} {:<8} {:<22} height {:>6}  rtt {rtt:>6}  in {} B, out {} B, {} s{}",
                    str_of(peer, "direction"),
                    str_of(peer, "address"),
                    peer["tip_height"],
                    peer["bytes_in"],
                    peer["bytes_out"],
                    peer["connected_seconds"],
                    if peer["feeler"] == true {
                        " (feeler)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// What `powchain mine` asks a running node for.
pub struct MineOrder {
    /// Blocks to mine.
    pub blocks: u64,
    /// Whether they may be empty.
    pub allow_empty: bool,
    /// How long to wait for them.
    pub timeout: Duration,
    /// Return once the node has started.
    pub no_wait: bool,
}

/// `powchain mine`: one block of the pending transactions, or `blocks` (empty ones too with
/// `allow_empty`); waits for them unless `no_wait`.
pub fn mine(args: &ClientArgs, order: &MineOrder) -> anyhow::Result<()> {
    let api = args.connect()?;
    let before = api.get("/api/v1/status")?["height"].as_u64().unwrap_or(0);
    let body = json!({ "blocks": order.blocks, "allow_empty": order.allow_empty });
    let accepted = api.post("/api/v1/mine", &body)?;
    if order.no_wait {
        print(args, &accepted, |a| {
            format!(
                "mining {} block(s) of {} pending transactions",
                a["blocks"], a["pending"]
            )
        });
        return Ok(());
    }
    let deadline = Instant::now() + order.timeout;
    let wanted = before + order.blocks;
    loop {
        let height = api.get("/api/v1/status")?["height"].as_u64().unwrap_or(0);
        if height >= wanted {
            let block = api.get(&format!("/api/v1/blocks/{height}"))?;
            let what = match order.blocks {
                1 => "mined".to_owned(),
                n => format!("mined {n} blocks, the last"),
            };
            print(args, &block, |b| format!("{what}: {}", describe_block(b)));
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} blocks within {} s (the miner may still be working)",
                height.saturating_sub(before),
                order.blocks,
                order.timeout.as_secs()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_rates_get_a_readable_unit() {
        assert_eq!(rate(0.0), "0.0 H/s");
        assert_eq!(rate(999.0), "999.0 H/s");
        assert_eq!(rate(12_345_678.0), "12.3 MH/s");
    }

    #[test]
    fn account_paths_take_numbers_dev_prefixes_and_hex_only() {
        assert_eq!(account_path("3").unwrap(), "/api/v1/accounts/3");
        assert_eq!(account_path("dev:3").unwrap(), "/api/v1/accounts/3");
        assert!(account_path("../status").is_err());
        assert!(account_path("").is_err());
    }
}
