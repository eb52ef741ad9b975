//! The driver's events as the session's output: one printed line each (the API's event
//! stream gets them too), seed 003's peer report every 10 s, and a progress bar instead of
//! lines while far behind on a terminal.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use powchain_api::ApiEvent;
use powchain_chain::{BlockHash, Store};
use powchain_node::driver::Handle;
use powchain_protocol::{Event, PeerId};

use super::commands::peer_name;
use tokio::sync::{broadcast, mpsc};

/// Prints each event as one line, and seed 003's peer report every 10 s. While far behind
/// on a terminal, sync progress is a progress bar instead of lines. Lines that come in
/// floods (new tips while syncing or mining fast, transfers relayed, a dial failing again)
/// are held to one a second per kind (see [`Printer`]); every event still goes to the log
/// (`--log`) and the API's event stream.
pub(super) async fn print<S: Store + 'static>(
    mut events: mpsc::Receiver<Event>,
    handle: Handle<S>,
    api: Option<broadcast::Sender<ApiEvent>>,
) {
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    // A quarter of FLOOD_QUIET: a held line waits at most that long past its second.
    let mut flush = tokio::time::interval(FLOOD_QUIET / 4);
    let terminal = std::io::stdout().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut printer = Printer::default();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::SyncProgress { height, remaining, blocks_per_sec }) if terminal => {
                    let bar = bar.get_or_insert_with(|| {
                        let bar = indicatif::ProgressBar::new(0);
                        bar.set_style(
                            indicatif::ProgressStyle::with_template(
                                "syncing [{bar:40}] {pos}/{len} blocks {msg}",
                            )
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                        );
                        bar
                    });
                    bar.set_length(height.0 + remaining as u64);
                    bar.set_position(height.0);
                    bar.set_message(format!("{blocks_per_sec:.0} blocks/s"));
                }
                Some(event) => {
                    if let Some(api) = &api {
                        ApiEvent::publish(api, &event);
                    }
                    if let (Some(done), Event::TipChanged { .. }) = (&bar, &event) {
                        let caught_up = handle
                            .inspect(|node| node.download_queue_len() == 0)
                            .await
                            .unwrap_or(true);
                        if caught_up {
                            done.finish_and_clear();
                            bar = None;
                        } else {
                            // Far behind: the bar speaks for every block.
                            continue;
                        }
                    }
                    for line in printer.lines(&event, Instant::now()) {
                        println!("{line}");
                    }
                }
                None => return,
            },
            _ = flush.tick() => {
                for line in printer.flush(Instant::now()) {
                    println!("{line}");
                }
            }
            _ = report.tick() => {
                let Some((known, connected)) = handle
                    .inspect(|node| (node.addresses().len(), node.peers().len()))
                    .await
                else {
                    return;
                };
                println!("{known} peers known, {connected} connected");
            }
        }
    }
}

/// Kinds of line that come in floods, each held to one a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Flood {
    Tip,
    Mined,
    Relayed,
}

/// One flooding kind's state: when its last line was printed, and what was held back
/// since (how many, and the latest, which the summary shows).
#[derive(Debug)]
struct Held {
    shown_at: Instant,
    count: u64,
    latest: String,
}

/// Turns events into the lines a person reads: peers by node number when they said one,
/// at most one line a second of each flooding kind (the rest summed up in the next), a
/// failing dial said once until it works or is given up.
#[derive(Debug, Default)]
pub(super) struct Printer {
    /// Each connected peer's node number, if it said one.
    numbers: HashMap<PeerId, Option<u32>>,
    held: HashMap<Flood, Held>,
    /// Addresses whose failure was said and has not ended.
    failing: HashSet<String>,
    /// The block this node mined last: its "mined block" line says the new tip already.
    mined: Option<BlockHash>,
}

/// How long a flooding kind stays quiet after a line.
const FLOOD_QUIET: Duration = Duration::from_secs(1);

impl Printer {
    /// The lines `event` prints now (none, one, or a summary and one).
    pub(super) fn lines(&mut self, event: &Event, now: Instant) -> Vec<String> {
        let name = |numbers: &HashMap<PeerId, Option<u32>>, peer: &PeerId| {
            peer_name(numbers.get(peer).copied().flatten(), *peer)
        };
        let flood = match event {
            Event::PeerReady {
                peer,
                number,
                address,
                ..
            } => {
                self.numbers.insert(*peer, *number);
                self.failing.remove(address);
                None
            }
            Event::ConnectFailed { address, .. } => {
                if !self.failing.insert(address.clone()) {
                    return Vec::new();
                }
                None
            }
            Event::AddressForgotten { address, .. } => {
                self.failing.remove(address);
                None
            }
            Event::TipChanged {
                hash,
                disconnected: 0,
                from: None,
                ..
            } if self.mined == Some(*hash) => return Vec::new(),
            Event::TipChanged { disconnected, .. } if *disconnected == 0 => Some(Flood::Tip),
            Event::Mined { hash, .. } => {
                self.mined = Some(*hash);
                Some(Flood::Mined)
            }
            Event::TransferAccepted { from: Some(_), .. } => Some(Flood::Relayed),
            _ => None,
        };
        let Some(line) = describe(event, &|peer| name(&self.numbers, peer)) else {
            return Vec::new();
        };
        if let Event::PeerGone { peer, .. } = event {
            self.numbers.remove(peer);
        }
        let Some(kind) = flood else {
            return vec![line];
        };
        match self.held.get_mut(&kind) {
            Some(held) if now.duration_since(held.shown_at) < FLOOD_QUIET || held.count > 0 => {
                held.count += 1;
                held.latest = line;
                Vec::new()
            }
            _ => {
                self.held.insert(
                    kind,
                    Held {
                        shown_at: now,
                        count: 0,
                        latest: String::new(),
                    },
                );
                vec![line]
            }
        }
    }

    /// The summaries due at `now`: for each kind held back for a second, its latest line
    /// and how many more there were.
    pub(super) fn flush(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for kind in [Flood::Tip, Flood::Mined, Flood::Relayed] {
            let Some(held) = self.held.get_mut(&kind) else {
                continue;
            };
            if held.count == 0 || now.duration_since(held.shown_at) < FLOOD_QUIET {
                continue;
            }
            let latest = std::mem::take(&mut held.latest);
            lines.push(match held.count {
                1 => latest,
                n => format!("{latest} (and {} more since the last such line)", n - 1),
            });
            held.count = 0;
            held.shown_at = now;
        }
        lines
    }
}

/// The line an event prints as; none for a transfer submitted to this node, whose submitter
/// already has the answer.
fn describe(event: &Event, name: &dyn Fn(&PeerId) -> String) -> Option<String> {
    Some(match event {
        Event::PeerReady {
            peer,
            address,
            height,
            ..
        } => format!("{} connected: {address} (height {height})", name(peer)),
        Event::PeerGone {
            peer,
            address,
            reason,
        } => format!("{} disconnected: {address}: {reason}", name(peer)),
        Event::ConnectFailed { reason, .. } => {
            format!("{reason} (tried again later, less and less often; `forget` stops it)")
        }
        Event::AddressForgotten { address, failures } => format!(
            "gave up on {address}: no answer in {failures} tries (connect to it again to retry)"
        ),
        Event::EchoRequested { peer, message } => format!("echo from {}: {message}", name(peer)),
        Event::EchoReplied { peer, message } => {
            format!("echo reply from {}: {message}", name(peer))
        }
        // Every address exchange says it; only news is worth a line.
        Event::AddressesLearned { new: 0, .. } => return None,
        Event::AddressesLearned { peer, new } => {
            format!("{} told us of {new} new addresses", name(peer))
        }
        Event::TipChanged {
            hash,
            height,
            disconnected,
            connected,
            from,
        } => {
            let source = from.map_or("here".to_string(), |peer| format!("from {}", name(&peer)));
            if *disconnected > 0 {
                format!(
                    "reorg: {disconnected} blocks out, {connected} in; tip {} at height {height} ({source})",
                    hash.short(16)
                )
            } else {
                format!("new tip {} at height {height} ({source})", hash.short(16))
            }
        }
        Event::Mined { hash, height, txs } => {
            format!(
                "mined block {height} {} with {txs} transactions",
                hash.short(16)
            )
        }
        Event::NothingToMine => {
            "WARNING: empty pool of pending transactions, nothing to mine".to_string()
        }
        Event::TransferAccepted {
            id,
            from: Some(peer),
        } => {
            format!("transaction {} from {}", id.short(16), name(peer))
        }
        Event::TransferAccepted { from: None, .. } => return None,
        Event::TransferRefused { error } => format!("transaction refused: {error}"),
        Event::TransferDropped { id, reason } => {
            format!("transaction {} left the mempool: {reason}", id.short(16))
        }
        Event::SyncProgress {
            height,
            remaining,
            blocks_per_sec,
        } => format!(
            "syncing: height {height}, {remaining} blocks to go, {blocks_per_sec:.0} blocks/s"
        ),
        Event::StoreFailed(error) => format!("ERROR: the database failed: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use powchain_chain::{Hash512, Height};
    use powchain_protocol::Direction;

    use super::*;

    fn tip(height: u64, disconnected: usize, from: Option<PeerId>) -> Event {
        Event::TipChanged {
            hash: BlockHash(Hash512::digest(&height.to_le_bytes())),
            height: Height(height),
            disconnected,
            connected: 1,
            from,
        }
    }

    #[test]
    fn a_flood_of_tips_is_one_line_a_second_and_a_reorg_always_shows() {
        let mut printer = Printer::default();
        let start = Instant::now();
        let ready = Event::PeerReady {
            peer: 4,
            address: "unix-peer-4".into(),
            direction: Direction::Inbound,
            node_id: 9,
            agent: "test".into(),
            number: Some(3),
            height: Height(0),
        };
        assert_eq!(
            printer.lines(&ready, start),
            vec!["node 3 connected: unix-peer-4 (height 0)".to_string()]
        );
        let mut printed = Vec::new();
        for height in 1..=100 {
            let at = start + Duration::from_millis(height * 5);
            printed.extend(printer.lines(&tip(height, 0, Some(4)), at));
        }
        assert_eq!(printed.len(), 1, "{printed:?}");
        assert!(printed[0].contains("from node 3"), "{printed:?}");
        // A reorg is never held back.
        let reorg = printer.lines(&tip(101, 2, Some(4)), start + Duration::from_millis(600));
        assert_eq!(reorg.len(), 1);
        assert!(reorg[0].starts_with("reorg: 2 blocks out"), "{reorg:?}");
        // Not yet a second: nothing to sum up.
        assert!(printer.flush(start + Duration::from_millis(900)).is_empty());
        let summary = printer.flush(start + Duration::from_millis(1_100));
        assert_eq!(summary.len(), 1, "{summary:?}");
        assert!(summary[0].contains("at height 100"), "{summary:?}");
        assert!(summary[0].ends_with("(and 98 more since the last such line)"));
        // Quiet again: the next tip a second later prints at once.
        let next = printer.lines(&tip(102, 0, None), start + Duration::from_millis(2_200));
        assert_eq!(next.len(), 1);
    }

    #[test]
    fn a_block_mined_here_is_one_line_not_two() {
        let mut printer = Printer::default();
        let now = Instant::now();
        let Event::TipChanged { hash, .. } = tip(1, 0, None) else {
            unreachable!("tip makes a TipChanged");
        };
        let mined = Event::Mined {
            hash,
            height: Height(1),
            txs: 1,
        };
        assert_eq!(printer.lines(&mined, now).len(), 1);
        assert!(printer.lines(&tip(1, 0, None), now).is_empty());
        // A tip from elsewhere still has its line.
        let later = now + Duration::from_secs(2);
        assert_eq!(printer.lines(&tip(2, 0, None), later).len(), 1);
    }

    #[test]
    fn a_failing_dial_is_said_once_until_it_is_given_up() {
        let mut printer = Printer::default();
        let now = Instant::now();
        let failed = Event::ConnectFailed {
            address: "10.0.0.7:9000".into(),
            reason: "cannot connect to 10.0.0.7:9000: refused".into(),
        };
        assert_eq!(printer.lines(&failed, now).len(), 1);
        assert!(printer.lines(&failed, now).is_empty());
        let gone = Event::AddressForgotten {
            address: "10.0.0.7:9000".into(),
            failures: 5,
        };
        assert!(printer.lines(&gone, now)[0].starts_with("gave up on 10.0.0.7:9000"));
        assert_eq!(printer.lines(&failed, now).len(), 1);
    }
}
