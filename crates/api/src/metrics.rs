//! `GET /metrics`: the node's figures in Prometheus's text format, for a scraper or a
//! dashboard. Gauges say how things are now; `_total` counters count since the node started.

use std::fmt::Write;

use powchain_chain::Store;
use powchain_node::driver::MiningStatus;
use powchain_protocol::{Direction, Node};

use crate::views::network_hash_rate;

/// The content type of Prometheus's text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics page of `node` and its miner.
pub fn render<S: Store>(node: &Node<S>, mining: MiningStatus) -> String {
    let chain = node.chain();
    let tip = chain.tip();
    let stats = node.stats();
    let peers = node.peer_summaries();
    let inbound = peers
        .iter()
        .filter(|p| p.direction == Direction::Inbound)
        .count();
    let mut page = Page(String::with_capacity(4_096));
    page.gauge(
        "powchain_height",
        "Height of the best chain's tip.",
        tip.height.0,
    );
    page.gauge(
        "powchain_total_work",
        "Cumulative work of the best chain (expected hashes).",
        tip.chain_work.0 as f64,
    );
    page.gauge(
        "powchain_difficulty_bits",
        "The tip's difficulty in leading zero bits.",
        tip.header.target.difficulty_bits(),
    );
    page.header(
        "powchain_peers",
        "gauge",
        "Ready peer connections, by who opened them.",
    );
    page.sample("powchain_peers{direction=\"inbound\"}", inbound);
    page.sample(
        "powchain_peers{direction=\"outbound\"}",
        peers.len() - inbound,
    );
    page.gauge(
        "powchain_addresses_known",
        "Peer addresses in the address book.",
        node.addresses().len(),
    );
    page.gauge(
        "powchain_mempool_transactions",
        "Transfers waiting in the mempool.",
        node.mempool().len(),
    );
    page.gauge(
        "powchain_mempool_bytes",
        "Encoded size of the mempool's transfers.",
        node.mempool().bytes(),
    );
    page.gauge(
        "powchain_blocks_downloading",
        "Blocks wanted from peers and not yet stored.",
        node.download_queue_len(),
    );
    page.counter(
        "powchain_blocks_accepted_total",
        "Blocks from peers that passed validation.",
        stats.blocks_accepted,
    );
    page.counter(
        "powchain_blocks_rejected_total",
        "Blocks from peers that failed validation.",
        stats.blocks_rejected,
    );
    page.counter(
        "powchain_blocks_mined_total",
        "Blocks this node mined that joined the best chain.",
        stats.blocks_mined,
    );
    page.counter(
        "powchain_reorgs_total",
        "Tip changes that took blocks off the best chain.",
        stats.reorgs,
    );
    page.counter(
        "powchain_transactions_accepted_total",
        "Transfers accepted into the mempool, from users and peers.",
        stats.transfers_accepted,
    );
    page.gauge(
        "powchain_network_hash_rate",
        "Hashes per second of the whole network, estimated from the last blocks.",
        network_hash_rate(node),
    );
    page.gauge(
        "powchain_miner_hash_rate",
        "Hashes per second of this node's miner over the last seconds (0 when idle).",
        mining.hash_rate,
    );
    page.counter(
        "powchain_miner_hashes_total",
        "Hashes this node's miner has tried.",
        mining.hashes,
    );
    page.counter(
        "powchain_peer_bytes_received_total",
        "Frame bytes received from peers.",
        stats.bytes_in,
    );
    page.counter(
        "powchain_peer_bytes_sent_total",
        "Frame bytes sent to peers.",
        stats.bytes_out,
    );
    page.0
}

struct Page(String);

impl Page {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, series: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{series} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, "gauge", help);
        self.sample(name, value);
    }

    fn counter(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, "counter", help);
        self.sample(name, value);
    }
}
