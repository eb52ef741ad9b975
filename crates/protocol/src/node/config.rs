//! How the node behaves toward peers: every bound and interval, with its unit in the name.

use powchain_chain::{Address, ChainConfig, Keypair, MempoolConfig, Work};

/// How the node behaves toward peers.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's random id, to detect connections to itself.
    pub node_id: u64,
    /// Where this node accepts connections, told to peers.
    pub listen: Option<String>,
    /// Software name and version.
    pub agent: String,
    /// The node's number (seed 000's `-n N`), told to peers in the hello.
    pub number: Option<u32>,
    /// Outbound connections to keep.
    pub outbound_target: usize,
    /// Most inbound connections.
    pub inbound_max: usize,
    /// How long a new peer has to say hello.
    pub handshake_timeout_ms: u64,
    /// The status poll: how often each peer is pinged (and reports its tip).
    pub ping_interval_ms: u64,
    /// How long a ping may go unanswered.
    pub ping_timeout_ms: u64,
    /// How long a block request may go unanswered before it goes to another peer.
    pub block_request_timeout_ms: u64,
    /// Blocks in flight per peer.
    pub blocks_in_flight_per_peer_max: usize,
    /// Headers waiting for their blocks.
    pub download_queue_max: usize,
    /// Of those, the most one peer's headers and announcements may have queued.
    pub download_queue_per_peer_max: usize,
    /// How far above the tip blocks are downloaded (what arrives out of order must fit the
    /// chain's orphan pool).
    pub download_window_blocks: u64,
    /// Queue entries looked at per peer when handing out block requests.
    pub schedule_scan_max: usize,
    /// How long a headers request may go unanswered.
    pub headers_timeout_ms: u64,
    /// How long a misbehaving peer is refused.
    pub ban_ms: u64,
    /// Most bans remembered.
    pub bans_max: usize,
    /// First reconnection delay; doubles with each failure.
    pub backoff_base_ms: u64,
    /// Longest reconnection delay.
    pub backoff_max_ms: u64,
    /// Failed dials after which an address the user gave and that never answered is
    /// forgotten (a typo): one that worked once is retried for good, backing off.
    pub user_address_failures_max: u32,
    /// Block hashes and transaction ids remembered per peer, so nothing is sent twice.
    pub known_inventory_max: usize,
    /// Messages per second a peer may send, on average.
    pub messages_per_second_max: u32,
    /// Seconds of `messages_per_second_max` a peer may send at once: what a pause of the
    /// node, or of the network, lets build up is not a flood.
    pub flood_burst_seconds: u64,
    /// How long a peer may stay over that budget (read more slowly meanwhile, never
    /// punished) before it is a flood: a backlog drains at the budget's rate long before.
    pub flood_sustained_ms: u64,
    /// Transfers a peer may send per minute that are refused for the state they meet
    /// (stale or far-ahead nonce, unknown sender, balance, a full pool). Each costs lookups,
    /// never a signature check; past this the peer is disconnected (not banned: a peer a
    /// block behind sends such transfers honestly).
    pub refused_transfers_per_minute_max: u32,
    /// Headers requests a peer may send per second, on average, and seconds of them at once.
    /// Each answer can be 2,000 headers (about 360 KB) for 70 bytes; a syncing peer asks
    /// for the next batch only as its download queue drains, so an honest peer stays far
    /// below this. Past it the peer is banned.
    pub headers_requests_per_second_max: u32,
    pub headers_requests_burst_seconds: u64,
    /// Block bytes (KiB) a peer may draw from us a second, on average, and seconds of them
    /// at once. Past it, nothing more is read from the peer until it is paid back (not a
    /// ban: it only asked). A 70-byte request buys up to 16 blocks; this is what bounds the
    /// disk reads, checks and upload a peer asking for them again and again costs us.
    pub served_kib_per_second_max: u32,
    pub served_burst_seconds: u64,
    /// How long a wanted block may wait in the download queue without being fetched
    /// before it is dropped (with what builds on it). An honest chain's headers come again
    /// from the next header sync, since its tip is still unknown.
    pub download_entry_lifetime_ms: u64,
    /// Headers of a branch below the queue threshold held per peer (checked, not
    /// downloaded; see `sync::staged`). A branch that needs more to come near our work is
    /// not followed: up to about 500 bytes each, map included.
    pub staged_headers_per_peer_max: usize,
    /// How far behind our tip's work, in blocks at the tip's target, a branch's headers may
    /// be and still have their blocks queued (Bitcoin Core: 144, a day of blocks).
    pub presync_margin_blocks: u64,
    /// The least chain work a branch needs before its blocks are downloaded at all (Bitcoin
    /// Core's `-minimumchainwork`): a fresh node then fetches no block of a chain lighter
    /// than the one it knows exists. 0 on a new network.
    pub minimum_chain_work: Work,
    /// Transfer ids refused since the last tip change, remembered so a resent one costs
    /// nothing.
    pub refused_transfers_remembered_max: usize,
    /// Addresses remembered.
    pub address_book_max: usize,
    /// Learn any address a peer tells of, not only numeric `IP:port` ones: for a simulated
    /// network, whose nodes are named. A real node leaves it off (see `crate::netgroup`).
    pub learn_any_address: bool,
    /// How often sync progress is reported while downloading.
    pub progress_interval_ms: u64,
    /// Shortest time between two templates rebuilt for new transfers (a new tip always
    /// gets one at once).
    pub template_refresh_ms: u64,
    /// How often a node with its outbound slots full opens a feeler connection (module
    /// docs); 0: never. A node with `outbound_target` 0 never dials, feelers included.
    pub feeler_interval_ms: u64,
    /// Ask for the block after our tip in compact form (BIP 152, `crate::compact`) rather
    /// than whole. Requests for compact blocks are answered either way.
    pub compact_blocks: bool,
    /// Compact blocks waiting for their senders' missing transfers at once (one per peer
    /// at most); past it, blocks are fetched whole.
    pub compact_rebuilds_max: usize,
    /// Peers asked to push new blocks compact, unasked (BIP 152's high-bandwidth mode):
    /// the ones that most recently gave us a new tip first. 0: every block is announced
    /// and asked for (low-bandwidth mode only). Only with `compact_blocks`.
    pub compact_high_bandwidth_peers: usize,
    /// The chain's bounds.
    pub chain: ChainConfig,
    /// The mempool's bounds.
    pub mempool: MempoolConfig,
    /// Who this node's blocks pay (dev account 0 when `None`).
    pub miner_address: Option<Address>,
}

impl NodeConfig {
    /// Defaults for a node with id `node_id`.
    pub fn new(node_id: u64) -> NodeConfig {
        NodeConfig {
            node_id,
            listen: None,
            agent: concat!("powchain/", env!("CARGO_PKG_VERSION")).to_owned(),
            number: None,
            outbound_target: 8,
            inbound_max: 32,
            handshake_timeout_ms: 10_000,
            ping_interval_ms: 10_000,
            ping_timeout_ms: 30_000,
            block_request_timeout_ms: 10_000,
            blocks_in_flight_per_peer_max: 32,
            download_queue_max: 100_000,
            download_queue_per_peer_max: 25_000,
            download_window_blocks: 128,
            schedule_scan_max: 1_024,
            headers_timeout_ms: 20_000,
            ban_ms: 600_000,
            bans_max: 10_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            user_address_failures_max: 5,
            known_inventory_max: 8_192,
            messages_per_second_max: 2_000,
            flood_burst_seconds: 10,
            flood_sustained_ms: 60_000,
            refused_transfers_per_minute_max: 1_000,
            refused_transfers_remembered_max: 50_000,
            headers_requests_per_second_max: 2,
            headers_requests_burst_seconds: 60,
            served_kib_per_second_max: 32 * 1_024,
            served_burst_seconds: 10,
            download_entry_lifetime_ms: 600_000,
            staged_headers_per_peer_max: 4_000,
            presync_margin_blocks: 144,
            minimum_chain_work: Work(0),
            address_book_max: 1_024,
            learn_any_address: false,
            progress_interval_ms: 5_000,
            template_refresh_ms: 1_000,
            feeler_interval_ms: 120_000,
            compact_blocks: true,
            compact_rebuilds_max: 8,
            compact_high_bandwidth_peers: 3,
            chain: ChainConfig::default(),
            mempool: MempoolConfig::default(),
            miner_address: None,
        }
    }
}

impl NodeConfig {
    /// Where this node's blocks pay: dev account 0 unless configured otherwise.
    pub(crate) fn mining_address(&self) -> Address {
        self.miner_address
            .unwrap_or_else(|| Keypair::dev(0).address())
    }
}
