//! The driver's events as the session's output: one printed line each (the API's event
//! stream gets them too), seed 003's peer report every 10 s, and a progress bar instead of
//! lines while far behind on a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use powchain_api::ApiEvent;
use powchain_chain::Store;
use powchain_node::driver::Handle;
use powchain_protocol::Event;
use tokio::sync::{broadcast, mpsc};

/// Prints each event as one line, and seed 003's peer report every 10 s. While far behind
/// on a terminal, sync progress is a progress bar instead of lines.
pub(super) async fn print<S: Store + 'static>(
    mut events: mpsc::Receiver<Event>,
    handle: Handle<S>,
    api: Option<broadcast::Sender<ApiEvent>>,
) {
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    let terminal = std::io::stdout().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
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
                    if let Some(line) = describe(&event) {
                        println!("{line}");
                    }
                }
                None => return,
            },
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

/// The line an event prints as; none for a transfer submitted to this node, whose submitter
/// already has the answer.
fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::PeerReady {
            peer,
            address,
            height,
            ..
        } => format!("peer {peer} connected: {address} (height {height})"),
        Event::PeerGone {
            peer,
            address,
            reason,
        } => format!("peer {peer} disconnected: {address}: {reason}"),
        Event::ConnectFailed { reason, .. } => reason.clone(),
        Event::EchoRequested { peer, message } => format!("echo from peer {peer}: {message}"),
        Event::EchoReplied { peer, message } => format!("echo reply from peer {peer}: {message}"),
        Event::AddressesLearned { peer, new } => {
            format!("peer {peer} told us of {new} new addresses")
        }
        Event::TipChanged {
            hash,
            height,
            disconnected,
            connected,
            from,
        } => {
            let source = from.map_or("here".to_string(), |peer| format!("from peer {peer}"));
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
            format!("transaction {} from peer {peer}", id.short(16))
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
