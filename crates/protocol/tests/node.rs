//! The node state machine alone, without sockets: nodes wired to each other in memory,
//! every message encoded and decoded as on the wire, time passed by hand.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};

use powchain_chain::{
    Amount, Block, BlockHash, Chain, ChainConfig, ChainSpec, Header, Keypair, MemStore, Memo,
    Timestamp, Transfer, UnsignedTransfer, miner,
};
use powchain_protocol::frame::{self, Received};
use powchain_protocol::{
    AddressStore, Command, Direction, DisconnectReason, Event, MemAddresses, Message, Node,
    NodeConfig, Output, PeerId, PeerInfo, Unasked,
};
use powchain_testkit::spec_with_dev_accounts;
use rand::SeedableRng;

/// The chain of the nodes here: 4 bits, six dev accounts of 1,000 coins.
fn spec() -> ChainSpec {
    spec_with_dev_accounts("protocol-test", 4, 6, Amount(1_000))
}

const START: u64 = 1_800_000_000_000;

/// In-memory nodes and the links between them.
struct Net {
    nodes: Vec<Node<MemStore>>,
    /// (node, its peer id) -> (other node, the other's peer id)
    links: HashMap<(usize, PeerId), (usize, PeerId)>,
    next_peer: PeerId,
    now: Timestamp,
    events: Vec<(usize, Event)>,
    templates: Vec<Option<Block>>,
    /// Every message delivered: (from node, to node, message name).
    delivered: Vec<(usize, usize, Message)>,
    pending: VecDeque<(usize, Output)>,
    /// Messages dropped on the way: (from, to, message) -> drop?
    drop_if: Option<fn(usize, usize, &Message) -> bool>,
}

impl Net {
    fn new(count: usize) -> Net {
        Net::with_specs(vec![spec(); count])
    }

    fn with_specs(specs: Vec<ChainSpec>) -> Net {
        Net::build(specs, |_, _, _| {})
    }

    /// Nodes with `configure` applied to each one's config and kept addresses before it
    /// starts.
    fn build(
        specs: Vec<ChainSpec>,
        configure: impl Fn(usize, &mut NodeConfig, &mut MemAddresses),
    ) -> Net {
        Net::build_chains(specs, configure, |_| ChainConfig::default())
    }

    /// As [`Net::build`], each node's chain opened with `chain_config(index)`.
    fn build_chains(
        specs: Vec<ChainSpec>,
        configure: impl Fn(usize, &mut NodeConfig, &mut MemAddresses),
        chain_config: impl Fn(usize) -> ChainConfig,
    ) -> Net {
        let nodes = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let store = MemStore::new();
                let mut addresses = MemAddresses::default();
                let mut config = NodeConfig::new(1_000 + i as u64);
                config.listen = Some(address(i));
                config.outbound_target = 0;
                config.miner_address = Some(Keypair::dev(i as u64).address());
                configure(i, &mut config, &mut addresses);
                let chain = Chain::open(spec, store, chain_config(i)).unwrap();
                Node::new(config, chain, i as u64)
                    .with_address_store(Box::new(addresses))
                    .unwrap()
            })
            .collect::<Vec<_>>();
        let count = nodes.len();
        Net {
            nodes,
            links: HashMap::new(),
            next_peer: 1,
            now: Timestamp(START),
            events: Vec::new(),
            templates: vec![None; count],
            delivered: Vec::new(),
            pending: VecDeque::new(),
            drop_if: None,
        }
    }

    /// Opens a connection from `from` to `to` (as if `from` dialled `to`'s address).
    fn connect(&mut self, from: usize, to: usize) -> (PeerId, PeerId) {
        let (a, b) = (self.next_peer, self.next_peer + 1);
        self.next_peer += 2;
        self.links.insert((from, a), (to, b));
        self.links.insert((to, b), (from, a));
        let now = self.now;
        self.nodes[from].peer_connected(
            a,
            PeerInfo {
                address: address(to),
                ban_key: address(to),
                direction: Direction::Outbound,
            },
            now,
        );
        self.nodes[to].peer_connected(
            b,
            PeerInfo {
                address: format!("inbound-{from}-{b}"),
                ban_key: format!("host-{from}"),
                direction: Direction::Inbound,
            },
            now,
        );
        (a, b)
    }

    /// Delivers everything until no node has anything left to do.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            for (index, node) in self.nodes.iter_mut().enumerate() {
                for output in node.outputs() {
                    self.pending.push_back((index, output));
                }
            }
            let Some((index, output)) = self.pending.pop_front() else {
                return;
            };
            self.apply(index, output);
        }
        panic!("the network never settled");
    }

    fn apply(&mut self, index: usize, output: Output) {
        let now = self.now;
        match output {
            Output::Send { peer, message } => {
                if let Some(&(other, other_peer)) = self.links.get(&(index, peer)) {
                    if self
                        .drop_if
                        .is_some_and(|drop| drop(index, other, &message))
                    {
                        return;
                    }
                    // As on the wire: encoded, decoded, bounds checked.
                    let frame = frame::encode(&message);
                    let received = Received::decode(&frame[frame::LENGTH_PREFIX_BYTES..]);
                    let decoded = received.message.clone().expect("our messages decode");
                    self.delivered.push((index, other, decoded));
                    self.nodes[other].frame_received(other_peer, received, now);
                }
            }
            Output::Disconnect { peer, .. } => {
                if let Some((other, other_peer)) = self.links.remove(&(index, peer)) {
                    self.links.remove(&(other, other_peer));
                    self.nodes[other].peer_disconnected(other_peer, now);
                }
            }
            Output::Connect(target) => {
                match (0..self.nodes.len()).find(|i| address(*i) == target) {
                    Some(to) => {
                        self.connect(index, to);
                    }
                    None => self.nodes[index].connect_failed(&target, "no such node", now),
                }
            }
            Output::Mine(template) => self.templates[index] = template,
            Output::Event(event) => self.events.push((index, event)),
            // Messages here are handed in as they are sent, not read from a socket.
            Output::PauseReading { .. } => {}
        }
    }

    /// Mines node `index`'s current template and hands it the block.
    fn mine(&mut self, index: usize) -> Block {
        let mut block = self.templates[index].clone().expect("a template to mine");
        miner::mine(&mut block);
        self.nodes[index].block_mined(block.clone(), self.now);
        self.settle();
        block
    }

    fn advance(&mut self, ms: u64) {
        self.now = Timestamp(self.now.0 + ms);
        let now = self.now;
        for (index, node) in self.nodes.iter_mut().enumerate() {
            node.tick(now);
            // What a tick was due for, it did: the next wake is later (a driver that sleeps
            // until `poll_timeout` would otherwise spin).
            let next = node.poll_timeout();
            assert!(
                next.is_none_or(|at| at > now),
                "node {index} wants waking at {next:?} right after a tick at {now:?}"
            );
        }
        self.settle();
    }

    fn tip(&self, index: usize) -> BlockHash {
        self.nodes[index].chain().tip().hash
    }

    fn peer_gone(&self, index: usize) -> Vec<DisconnectReason> {
        self.events
            .iter()
            .filter(|(i, _)| *i == index)
            .filter_map(|(_, event)| match event {
                Event::PeerGone { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// Injects a message into `index` as if sent by its peer `peer`.
    fn inject(&mut self, index: usize, peer: PeerId, message: Message) {
        let now = self.now;
        receive(&mut self.nodes[index], peer, message, now);
        self.settle();
    }
}

/// Hands `node` a message from `peer` as an in-memory transport would.
fn receive<S: powchain_chain::Store>(
    node: &mut Node<S>,
    peer: PeerId,
    message: Message,
    now: Timestamp,
) {
    let bytes = frame::wire_len(&message) - frame::LENGTH_PREFIX_BYTES;
    node.frame_received(peer, Received::message(message, bytes), now);
}

fn address(index: usize) -> String {
    format!("127.0.0.1:{}", 9_000 + index)
}

fn transfer(from: u64, to: u64, amount: u64, nonce: u64) -> Transfer {
    UnsignedTransfer {
        to: Keypair::dev(to).address(),
        amount: Amount(amount),
        fee: Amount(1),
        nonce,
        memo: Memo::default(),
    }
    .sign(&Keypair::dev(from), &spec().genesis_hash())
}

/// Node `index` mines `count` blocks on its own (automine).
fn mine_blocks(net: &mut Net, index: usize, count: usize) {
    net.nodes[index].command(Command::Automine(true), net.now);
    net.settle();
    for _ in 0..count {
        net.now = Timestamp(net.now.0 + 1);
        net.mine(index);
    }
    net.nodes[index].command(Command::Automine(false), net.now);
    net.settle();
}

/// Node 1 holds node 0's block A when node 2 announces B, of the same work. A first-seen
/// node does not fetch B (it could never follow it); one that breaks ties at random does, so
/// that its coin has both to choose from.
#[test]
fn only_a_node_that_breaks_ties_at_random_fetches_a_block_of_equal_work() {
    let fetched = |tie_break: powchain_chain::TieBreak| {
        let mut net = Net::build_chains(
            vec![spec(); 3],
            |_, _, _| {},
            |i| ChainConfig {
                tie_break: if i == 1 {
                    tie_break
                } else {
                    powchain_chain::TieBreak::FirstSeen
                },
                ..ChainConfig::default()
            },
        );
        net.connect(1, 0);
        net.connect(1, 2);
        net.settle();
        // Node 1 relays no block, so A and B stay apart.
        net.drop_if = Some(|from, _, message| {
            from == 1 && matches!(message, Message::Announce { .. } | Message::CompactBlock(_))
        });
        mine_blocks(&mut net, 0, 1);
        let a = net.nodes[0].chain().tip().hash;
        assert_eq!(net.nodes[1].chain().tip().hash, a);
        mine_blocks(&mut net, 2, 1);
        let b = net.nodes[2].chain().tip().hash;
        assert_ne!(a, b);
        net.nodes[1].chain().tree().get(&b).is_some()
    };
    assert!(!fetched(powchain_chain::TieBreak::FirstSeen));
    assert!(fetched(powchain_chain::TieBreak::Random { key: 7 }));
}

#[test]
fn handshake_then_echo_both_ways_and_goodbye_is_answered_by_bye() {
    let mut net = Net::new(2);
    let (a, b) = net.connect(0, 1);
    net.settle();
    let ready = |net: &Net, i| {
        net.events
            .iter()
            .any(|(index, e)| *index == i && matches!(e, Event::PeerReady { .. }))
    };
    assert!(ready(&net, 0) && ready(&net, 1));
    net.nodes[0].command(
        Command::Echo {
            peer: a,
            message: "HELLO".into(),
        },
        net.now,
    );
    net.nodes[1].command(
        Command::Echo {
            peer: b,
            message: "WORLD".into(),
        },
        net.now,
    );
    net.settle();
    let echoed = |net: &Net, i, text: &str| {
        net.events.iter().any(|(index, e)| {
            *index == i && matches!(e, Event::EchoReplied { message, .. } if message == text)
        })
    };
    assert!(echoed(&net, 0, "HELLO") && echoed(&net, 1, "WORLD"));
    net.inject(
        1,
        b,
        Message::Goodbye {
            reason: "exit".into(),
        },
    );
    assert!(net.delivered.iter().any(|(from, to, m)| *from == 1
        && *to == 0
        && matches!(m, Message::Goodbye { reason } if reason == "bye")));
    assert!(net.links.is_empty());
}

#[test]
fn handshakes_are_refused_for_another_network_another_version_or_oneself() {
    let mut other = spec();
    other.name = "another".into();
    let mut net = Net::with_specs(vec![spec(), other]);
    net.connect(0, 1);
    net.settle();
    assert!(matches!(
        net.peer_gone(0)[..],
        [DisconnectReason::WrongGenesis { .. }]
    ));
    // Not misbehaviour: no ban.
    assert!(!net.nodes[0].is_banned(&address(1), net.now));

    let mut net = Net::new(2);
    let (_, b) = net.connect(0, 1);
    let mut hello = match net.nodes[0].outputs().remove(0) {
        Output::Send {
            message: Message::Hello(hello),
            ..
        } => hello,
        other => panic!("expected a hello, got {other:?}"),
    };
    hello.version = 99;
    net.inject(1, b, Message::Hello(hello.clone()));
    assert!(matches!(
        net.peer_gone(1)[..],
        [DisconnectReason::ProtocolVersion { theirs: 99, .. }]
    ));

    // A node that dials its own address finds itself by node id, and never dials it again.
    let mut net = Net::new(1);
    net.connect(0, 0);
    net.settle();
    assert!(net.peer_gone(0).contains(&DisconnectReason::SelfConnection));
    net.nodes[0].add_address(&address(0));
    net.nodes[0].command(Command::Automine(false), net.now);
    assert!(
        net.nodes[0]
            .addresses()
            .candidates(
                Timestamp(u64::MAX),
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
                |_| false
            )
            .is_empty()
    );
}

#[test]
fn a_silent_peer_times_out_unbanned_and_a_message_before_hello_is_a_violation() {
    let mut net = Net::new(2);
    let (_, b) = net.connect(0, 1);
    // Drop node 0's hello: node 1 never hears it.
    net.nodes[0].outputs();
    net.advance(11_000);
    assert!(
        net.peer_gone(1)
            .contains(&DisconnectReason::HandshakeTimeout)
    );
    // Slowness is not misbehaviour: the peer may come back.
    assert!(!net.nodes[1].is_banned("host-0", net.now));

    let mut net = Net::new(2);
    let (_, b2) = net.connect(0, 1);
    net.nodes[0].outputs();
    net.inject(1, b2, Message::Ping { nonce: 1 });
    assert!(matches!(
        net.peer_gone(1)[..],
        [DisconnectReason::ProtocolViolation(_)]
    ));
    let _ = b;
}

#[test]
fn a_new_node_syncs_a_long_chain_from_scratch() {
    let mut net = Net::new(2);
    // More blocks than one headers message holds, so headers are requested again.
    mine_blocks(&mut net, 0, 2_100);
    assert_eq!(net.nodes[0].chain().tip().height.0, 2_100);
    net.connect(1, 0);
    net.settle();
    for _ in 0..50 {
        if net.tip(1) == net.tip(0) {
            break;
        }
        net.advance(100);
    }
    assert_eq!(net.tip(1), net.tip(0));
    let header_requests = net
        .delivered
        .iter()
        .filter(|(from, _, m)| *from == 1 && matches!(m, Message::GetHeaders { .. }))
        .count();
    assert!(header_requests >= 2, "{header_requests} header requests");
}

#[test]
fn a_heavier_branch_from_a_peer_wins_and_lost_transfers_come_back() {
    let mut net = Net::new(2);
    // Node 0 mines 3 blocks, one with a transfer; node 1 mines 5 on its own.
    net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 10, 0)), net.now);
    net.settle();
    mine_blocks(&mut net, 0, 3);
    mine_blocks(&mut net, 1, 5);
    assert!(net.nodes[0].mempool().is_empty());
    net.connect(0, 1);
    net.settle();
    assert_eq!(net.tip(0), net.tip(1), "node 0 took the heavier branch");
    // Blocks arrive one by one: ties go to the branch seen first, so the reorg comes with
    // node 1's fourth block, and the fifth extends it.
    assert!(net.events.iter().any(|(i, e)| *i == 0
        && matches!(
            e,
            Event::TipChanged {
                disconnected: 3,
                connected: 4,
                ..
            }
        )));
    assert_eq!(net.nodes[0].mempool().len(), 1, "the transfer is back");
    // Node 1 learns it by relay and either can mine it.
    assert_eq!(net.nodes[1].mempool().len(), 1);
}

#[test]
fn transfers_are_relayed_once_to_each_peer() {
    let mut net = Net::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    net.connect(2, 0);
    net.settle();
    net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 10, 0)), net.now);
    net.settle();
    for node in &net.nodes {
        assert_eq!(node.mempool().len(), 1);
    }
    // Each node sends it to each peer at most once: never back to the one it came from.
    let mut sends = HashMap::new();
    for (from, to, message) in &net.delivered {
        if matches!(message, Message::Transactions(_)) {
            *sends.entry((*from, *to)).or_insert(0) += 1;
        }
    }
    assert!(sends.values().all(|count| *count == 1), "{sends:?}");
    assert!(
        sends.len() <= 4,
        "three links, the origin's two and at most two onward: {sends:?}"
    );
    // Mining it propagates the block to everyone, and every mempool empties.
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    net.mine(0);
    for index in 0..3 {
        assert_eq!(net.tip(index), net.tip(0));
        assert!(net.nodes[index].mempool().is_empty());
    }
}

#[test]
fn mine_with_an_empty_pool_says_so() {
    let mut net = Net::new(1);
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    assert!(net.events.contains(&(0, Event::NothingToMine)));
    assert!(net.templates[0].is_none());
}

#[test]
fn gossip_lets_a_node_find_peers_it_was_never_told_about() {
    let mut net = Net::new(3);
    net.connect(1, 0); // B dialled A: A is verified for B.
    let (c_to_b, _) = net.connect(2, 1); // C knows only B.
    net.settle();
    net.nodes[2].command(Command::SyncWith(c_to_b), net.now);
    net.settle();
    let c_peers: Vec<String> = net.nodes[2].peers().into_iter().map(|p| p.1).collect();
    assert!(
        c_peers.contains(&address(0)),
        "C connected to A: {c_peers:?}"
    );
}

/// Node 1 and a misbehaving peer `b` on it, handshake done.
fn hostile() -> (Net, PeerId) {
    let mut net = Net::new(2);
    mine_blocks(&mut net, 1, 2);
    let (_, b) = net.connect(0, 1);
    net.settle();
    (net, b)
}

fn assert_banned_for(net: &Net, check: fn(&DisconnectReason) -> bool) {
    let gone = net.peer_gone(1);
    assert!(gone.iter().any(check), "{gone:?}");
    assert!(net.nodes[1].is_banned("host-0", net.now));
    assert_eq!(
        net.nodes[1].chain().tip().height.0,
        2,
        "the chain is unchanged"
    );
}

#[test]
fn misbehaviour_ends_in_a_disconnect_and_a_ban() {
    // Bytes that are not a message.
    let (mut net, b) = hostile();
    net.nodes[1].frame_received(b, Received::decode(&[250, 250, 250]), net.now);
    net.settle();
    assert_banned_for(&net, |r| matches!(r, DisconnectReason::BadMessage(_)));

    // A block nobody asked for.
    let (mut net, b) = hostile();
    let block = net.nodes[1]
        .chain()
        .block_at(powchain_chain::Height(1))
        .unwrap()
        .unwrap();
    net.inject(1, b, Message::Blocks(vec![block.as_ref().clone()]));
    assert_banned_for(&net, |r| {
        matches!(r, DisconnectReason::Unrequested(Unasked::Block))
    });

    // Headers nobody asked for.
    let (mut net, b) = hostile();
    net.inject(1, b, Message::Headers(vec![]));
    assert_banned_for(&net, |r| {
        matches!(r, DisconnectReason::Unrequested(Unasked::Headers))
    });

    // An announced header without proof of work.
    let (mut net, b) = hostile();
    let mut header: Header = net.nodes[1].chain().tip().header;
    header.prev_hash = net.tip(1);
    header.height = powchain_chain::Height(3);
    while header.meets_own_target() {
        header.nonce += 1;
    }
    net.inject(1, b, Message::Announce { header });
    assert_banned_for(&net, |r| matches!(r, DisconnectReason::InvalidHeaders(_)));

    // A transfer with a forged signature.
    let (mut net, b) = hostile();
    let mut forged = transfer(1, 2, 10, 0);
    forged.amount = Amount(11);
    net.inject(1, b, Message::Transactions(vec![forged]));
    assert_banned_for(&net, |r| {
        matches!(r, DisconnectReason::InvalidTransaction(_))
    });
    assert!(net.nodes[1].mempool().is_empty());

    // A ping flood: half as fast again as the budget allows, for longer than a peer may
    // stay over it (a burst alone is only read more slowly).
    let (mut net, b) = hostile();
    let config = NodeConfig::new(1);
    let per_10_ms = u64::from(config.messages_per_second_max) * 3 / 200;
    let steps = (config.flood_sustained_ms + config.flood_burst_seconds * 3_000) / 10;
    let start = net.now;
    for nonce in 0..steps * per_10_ms {
        let now = start.saturating_add_ms(nonce / per_10_ms * 10);
        receive(&mut net.nodes[1], b, Message::Ping { nonce }, now);
    }
    net.settle();
    assert_banned_for(&net, |r| matches!(r, DisconnectReason::Flood));

    // A second hello.
    let (mut net, b) = hostile();
    let hello = net
        .delivered
        .iter()
        .find_map(|(from, _, m)| match m {
            Message::Hello(hello) if *from == 0 => Some(hello.clone()),
            _ => None,
        })
        .unwrap();
    net.inject(1, b, Message::Hello(hello));
    assert_banned_for(&net, |r| {
        matches!(r, DisconnectReason::ProtocolViolation(_))
    });

    // And a banned peer that comes back is refused at once.
    net.connect(0, 1);
    net.settle();
    assert!(net.peer_gone(1).contains(&DisconnectReason::Banned));
}

#[test]
fn an_invalid_block_from_a_peer_is_refused_and_the_peer_banned() {
    let mut net = Net::new(2);
    let (_, b) = net.connect(0, 1);
    net.settle();
    // Node 0 builds a block that overspends and announces it to node 1.
    let chain = net.nodes[0].chain();
    let mut template = chain
        .block_template(
            &powchain_chain::Mempool::new(Default::default()),
            Keypair::dev(0).address(),
            net.now,
            0,
        )
        .unwrap()
        .block;
    template
        .txs
        .push(powchain_chain::Transaction::Transfer(transfer(
            1, 2, 5_000, 0,
        )));
    if let powchain_chain::Transaction::Coinbase(coinbase) = &mut template.txs[0] {
        coinbase.amount = Amount(coinbase.amount.0 + 1);
    }
    template.header.tx_root = powchain_chain::block::tx_root(&template.txs);
    miner::mine(&mut template);
    // Node 1 asks for the announced block; the answer arrives before node 0 could say it
    // has no such block.
    let now = net.now;
    let announce = Message::Announce {
        header: template.header,
    };
    receive(&mut net.nodes[1], b, announce, now);
    receive(&mut net.nodes[1], b, Message::Blocks(vec![template]), now);
    net.settle();
    assert_banned_for_height(&net, 0);
}

fn assert_banned_for_height(net: &Net, height: u64) {
    let gone = net.peer_gone(1);
    assert!(
        gone.iter()
            .any(|r| matches!(r, DisconnectReason::InvalidBlock(_))),
        "{gone:?}"
    );
    assert!(net.nodes[1].is_banned("host-0", net.now));
    assert_eq!(net.nodes[1].chain().tip().height.0, height);
}

#[test]
fn the_status_poll_pings_and_a_silent_peer_is_dropped() {
    let mut net = Net::new(2);
    let (a, _) = net.connect(0, 1);
    net.settle();
    net.advance(10_000);
    let pings = net
        .delivered
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Ping { .. }))
        .count();
    assert!(pings >= 2, "both nodes polled each other");
    // Cut node 1 off silently: node 0's next ping goes unanswered.
    net.links.clear();
    net.advance(10_000);
    net.advance(31_000);
    assert!(net.peer_gone(0).contains(&DisconnectReason::PingTimeout));
    let _ = a;
}

/// Node 2 has the chain but never sends headers or blocks; node 1 is honest.
fn staller_then_honest() -> Net {
    let mut net = Net::new(3);
    mine_blocks(&mut net, 1, 40);
    // Node 2 gets the same chain, then turns silent about it.
    net.connect(2, 1);
    net.settle();
    assert_eq!(net.tip(2), net.tip(1));
    net.links.clear();
    net.drop_if = Some(|from, _, message| {
        from == 2
            && matches!(
                message,
                Message::Headers(_) | Message::Blocks(_) | Message::NotFound(_)
            )
    });
    net
}

#[test]
fn a_peer_that_never_answers_headers_is_dropped_and_sync_goes_on() {
    let mut net = staller_then_honest();
    net.connect(0, 2);
    net.settle();
    net.connect(0, 1);
    net.settle();
    for _ in 0..100 {
        if net.tip(0) == net.tip(1) {
            break;
        }
        net.advance(1_000);
    }
    assert_eq!(net.tip(0), net.tip(1), "node 0 synced from the honest peer");
    assert!(net.peer_gone(0).contains(&DisconnectReason::HeadersStalled));
    assert!(!net.nodes[0].is_banned("host-1", net.now));
}

#[test]
fn a_peer_that_never_delivers_blocks_is_dropped() {
    let mut net = staller_then_honest();
    // Node 2 answers headers but keeps its blocks.
    net.drop_if = Some(|from, _, message| from == 2 && matches!(message, Message::Blocks(_)));
    net.connect(0, 2);
    net.settle();
    net.connect(0, 1);
    net.settle();
    for _ in 0..200 {
        if net.tip(0) == net.tip(1) {
            break;
        }
        net.advance(1_000);
    }
    assert_eq!(
        net.tip(0),
        net.tip(1),
        "the blocks came from the honest peer"
    );
    assert!(
        net.peer_gone(0).contains(&DisconnectReason::Stalled),
        "{:?}",
        net.peer_gone(0)
    );
    assert!(!net.nodes[0].is_banned("host-1", net.now));
}

#[test]
fn sync_with_during_a_header_sync_asks_once() {
    let mut net = Net::new(2);
    mine_blocks(&mut net, 1, 5);
    let (a, _) = net.connect(0, 1);
    // The handshake starts a header sync; SyncWith asks for headers too, before any answer.
    let now = net.now;
    for output in net.nodes[1].outputs() {
        net.pending.push_back((1, output));
    }
    while let Some((index, output)) = net.pending.pop_front() {
        net.apply(index, output);
    }
    net.nodes[0].command(Command::SyncWith(a), now);
    net.settle();
    assert_eq!(net.tip(0), net.tip(1));
    assert!(net.peer_gone(0).is_empty() && net.peer_gone(1).is_empty());
}

#[test]
fn a_block_that_arrives_after_being_given_up_on_is_welcome() {
    let mut net = Net::new(2);
    mine_blocks(&mut net, 1, 3);
    let (a, _) = net.connect(0, 1);
    // Node 1's blocks are held back on the way; node 0 gives up on one (as after a NotFound
    // or a timeout) and then it arrives after all.
    net.drop_if = Some(|from, _, message| from == 1 && matches!(message, Message::Blocks(_)));
    net.settle();
    let late = net.nodes[1]
        .chain()
        .block_at(powchain_chain::Height(1))
        .unwrap()
        .unwrap();
    net.inject(0, a, Message::NotFound(vec![late.hash()]));
    net.drop_if = None;
    net.inject(0, a, Message::Blocks(vec![late.as_ref().clone()]));
    assert!(net.peer_gone(0).is_empty(), "{:?}", net.peer_gone(0));
    assert_eq!(net.nodes[0].chain().tip().height.0, 1);
}

/// Two pairs, each on its own branch, the state a healed partition leaves: nodes 0 and 2
/// filled their one outbound slot within their pair and know every address; 1 and 3 know
/// only their partner, already connected, so nobody needs a new connection.
fn split_pairs(feeler_interval_ms: u64) -> Net {
    let mut net = Net::build(vec![spec(); 4], |i, config, addresses| {
        config.outbound_target = 1;
        config.feeler_interval_ms = feeler_interval_ms;
        let known: Vec<String> = match i {
            0 | 2 => (0..4).filter(|&j| j != i).map(address).collect(),
            _ => vec![address(i - 1)],
        };
        addresses.save(&known).unwrap();
    });
    net.connect(0, 1);
    net.connect(2, 3);
    net.settle();
    mine_blocks(&mut net, 0, 2);
    mine_blocks(&mut net, 2, 3);
    assert_eq!(net.tip(0), net.tip(1));
    assert_eq!(net.tip(2), net.tip(3));
    net
}

#[test]
fn a_feeler_joins_a_split_network_and_closes_when_done() {
    // Without feelers nobody needs a new connection: the split lasts.
    let mut net = split_pairs(0);
    for _ in 0..20 {
        net.advance(30_000);
    }
    assert_ne!(net.tip(0), net.tip(2), "no connection crosses the split");

    let mut net = split_pairs(120_000);
    let heavier = net.tip(2);
    for _ in 0..20 {
        net.advance(30_000);
    }
    for node in 0..4 {
        assert_eq!(
            net.tip(node),
            heavier,
            "node {node} is on the heavier branch"
        );
    }
    // Feelers were opened and closed; the slots are as they were (one outbound each for the
    // dialling nodes, the feelers gone).
    for node in [0, 2] {
        let gone = net.peer_gone(node);
        assert!(gone.contains(&DisconnectReason::FeelerDone), "{gone:?}");
        assert!(
            gone.iter().all(|reason| !reason.is_misbehaviour()),
            "{gone:?}"
        );
        let outbound = net.nodes[node]
            .peers()
            .iter()
            .filter(|(_, _, direction, _, _)| *direction == Direction::Outbound)
            .count();
        assert_eq!(outbound, 1, "node {node} keeps one outbound peer");
    }
}

#[test]
fn a_node_with_nothing_to_do_is_never_woken() {
    let net = Net::new(1);
    assert_eq!(net.nodes[0].poll_timeout(), None);
}

#[test]
fn the_next_wake_is_the_next_deadline_and_ticking_there_does_its_work() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.settle();
    // Ready peers, and an address book with room: gossip is due at once.
    for node in &net.nodes {
        assert!(node.poll_timeout().is_some_and(|at| at <= net.now));
    }
    net.advance(0);
    // Then the next thing either node must do is ping (and gossip again), one interval
    // after the connection opened.
    let interval = NodeConfig::new(0).ping_interval_ms;
    for node in &net.nodes {
        assert_eq!(node.poll_timeout(), Some(Timestamp(START + interval)));
    }
    // Nothing is done before the deadline; at it, the ping goes out.
    net.advance(interval - 1);
    let pings = |net: &Net| {
        net.delivered
            .iter()
            .filter(|(_, _, m)| matches!(m, Message::Ping { .. }))
            .count()
    };
    assert_eq!(pings(&net), 0);
    net.advance(1);
    assert_eq!(pings(&net), 2);
    // Its pong came back at once: the next wake is the next ping.
    for node in &net.nodes {
        assert_eq!(node.poll_timeout(), Some(Timestamp(START + 2 * interval)));
    }
}

#[test]
fn a_silent_handshake_is_the_next_deadline() {
    let mut net = Net::new(2);
    // A connection node 1 never answers: node 0's wake is its handshake timeout.
    net.links.clear();
    let now = net.now;
    net.nodes[0].peer_connected(
        77,
        PeerInfo {
            address: address(1),
            ban_key: address(1),
            direction: Direction::Inbound,
        },
        now,
    );
    let timeout = NodeConfig::new(0).handshake_timeout_ms;
    assert_eq!(
        net.nodes[0].poll_timeout(),
        Some(Timestamp(START + timeout + 1))
    );
    net.advance(timeout + 1);
    assert!(
        net.peer_gone(0)
            .contains(&DisconnectReason::HandshakeTimeout)
    );
    assert_eq!(net.nodes[0].poll_timeout(), None);
}

/// Peers teach only numeric `IP:port` addresses: a host name or a unix socket path in a
/// hello's listen address is not learned (it would make the node resolve a name, or dial a
/// file, of an attacker's choosing); a numeric one is.
#[test]
fn only_numeric_addresses_are_learned_from_peers() {
    let chain = Chain::open(spec(), MemStore::new(), ChainConfig::default()).unwrap();
    let mut node = Node::new(NodeConfig::new(1), chain, 1);
    let now = Timestamp(START);
    let listens = [
        "evil.example:8333",
        "/tmp/powchain-nodes/node.3",
        "198.51.100.4:8333",
    ];
    for (index, listen) in listens.iter().enumerate() {
        let peer = index as PeerId + 1;
        let address = format!("203.0.113.{peer}:5000");
        let info = PeerInfo {
            address: address.clone(),
            ban_key: address,
            direction: Direction::Inbound,
        };
        node.peer_connected(peer, info, now);
        let hello = Message::Hello(powchain_protocol::Hello {
            version: powchain_protocol::PROTOCOL_VERSION,
            genesis: spec().genesis_hash(),
            node_id: 100 + peer,
            listen: Some((*listen).to_owned()),
            tip: powchain_protocol::TipSummary {
                hash: spec().genesis_hash(),
                height: powchain_chain::Height(0),
                work: powchain_chain::Work(1),
            },
            agent: "test".into(),
            number: None,
        });
        let frame = frame::encode(&hello);
        node.frame_received(peer, Received::decode(&frame[4..]), now);
    }
    assert_eq!(node.peers().len(), 3, "every hello was taken");
    assert!(!node.addresses().contains("evil.example:8333"));
    assert!(!node.addresses().contains("/tmp/powchain-nodes/node.3"));
    assert!(node.addresses().contains("198.51.100.4:8333"));
}

/// Issue 16's eclipse by address: outbound dials go one per public network group, so the
/// addresses one operator holds in a single /16 take one outbound slot however many of
/// them it taught us. An address the user gave, and private or loopback ones (a LAN, a test
/// network on one machine), are dialled whatever their group.
#[test]
fn outbound_dials_spread_over_network_groups() {
    let learned = [
        "203.0.1.1:8333",
        "203.0.2.2:8333",
        "203.0.3.3:8333",
        "198.51.100.1:8333",
        "10.0.0.1:8333",
        "10.0.0.2:8333",
    ];
    let mut net = Net::build(vec![spec()], |_, config, addresses| {
        config.outbound_target = 8;
        *addresses = MemAddresses::holding(learned.iter().map(|a| a.to_string()).collect());
    });
    net.nodes[0].add_address("203.0.4.4:8333");
    net.nodes[0].tick(net.now);
    let dialled: Vec<String> = net.nodes[0]
        .outputs()
        .into_iter()
        .filter_map(|output| match output {
            Output::Connect(address) => Some(address),
            _ => None,
        })
        .collect();
    let in_203_0 = |a: &&String| a.starts_with("203.0.") && a.as_str() != "203.0.4.4:8333";
    assert_eq!(dialled.iter().filter(in_203_0).count(), 1, "{dialled:?}");
    for always in [
        "203.0.4.4:8333",
        "198.51.100.1:8333",
        "10.0.0.1:8333",
        "10.0.0.2:8333",
    ] {
        assert!(
            dialled.iter().any(|a| a == always),
            "{always} in {dialled:?}"
        );
    }
    assert_eq!(dialled.len(), 5, "{dialled:?}");
}

/// A node's pool shares its chain's signature cache: a transfer it admits leaves its
/// signature there, so the block that confirms it is not checked again; another node keeps
/// a cache of its own.
#[test]
fn a_nodes_pool_shares_its_chains_signature_cache() {
    let open = || Chain::open(spec(), MemStore::new(), ChainConfig::default()).unwrap();
    let mut node = Node::new(NodeConfig::new(1), open(), 1);
    let other = Node::new(NodeConfig::new(2), open(), 2);
    assert!(node.chain().sig_cache().is_empty());
    node.submit_transfer(transfer(0, 1, 5, 0), Timestamp(START))
        .unwrap();
    assert_eq!(node.chain().sig_cache().len(), 1);
    assert!(other.chain().sig_cache().is_empty());
}

/// After a tip change the pool still checks into the chain's cache: a block of transfers
/// the pool admitted is imported without checking one signature again (a fresh pool with a
/// cache of its own once made every block after the first check all of them twice).
#[test]
fn the_pool_still_shares_the_cache_after_a_tip_change() {
    let mut net = Net::new(1);
    for round in 0..3u64 {
        net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 1, round)), net.now);
        net.nodes[0].command(Command::MineOnce, net.now);
        net.settle();
        let cached = net.nodes[0].chain().sig_cache().len();
        assert_eq!(
            cached as u64,
            round + 1,
            "round {round}: the pool's check is cached"
        );
        net.mine(0);
        assert_eq!(
            net.nodes[0].chain().sig_cache().len(),
            cached,
            "round {round}: the block's import found its signature in the cache"
        );
        assert_eq!(net.nodes[0].chain().tip().height.0, round + 1);
    }
}

// ---- compact blocks ---------------------------------------------------------------------

/// Two nodes, 0 dialling 1, with `count` transfers in node 0's pool, of which node 1 holds
/// all but those `lacks` names (from dev account 3, given to node 0 before the two
/// connect; the others are from account 1 and relayed); node 0 then mines them. Returns
/// the net, node 1's peer id for node 0, and the block.
fn compact_pair(
    count: u64,
    lacks: impl Fn(u64) -> bool,
    drop_if: Option<fn(usize, usize, &Message) -> bool>,
) -> (Net, PeerId, Block) {
    compact_pair_in(Net::new(2), count, lacks, drop_if)
}

/// [`compact_pair`] on the two nodes of `net`.
fn compact_pair_in(
    mut net: Net,
    count: u64,
    lacks: impl Fn(u64) -> bool,
    drop_if: Option<fn(usize, usize, &Message) -> bool>,
) -> (Net, PeerId, Block) {
    let lacking: Vec<u64> = (0..count).filter(|i| lacks(*i)).collect();
    for (nonce, _) in lacking.iter().enumerate() {
        net.nodes[0]
            .submit_transfer(transfer(3, 2, 1, nonce as u64), net.now)
            .expect("node 0 takes it");
    }
    net.settle();
    let (_, b) = net.connect(0, 1);
    net.settle();
    for nonce in 0..count - lacking.len() as u64 {
        net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 1, nonce)), net.now);
    }
    net.settle();
    assert_eq!(net.nodes[0].mempool().len() as u64, count);
    assert_eq!(
        net.nodes[1].mempool().len() as u64,
        count - lacking.len() as u64
    );
    net.drop_if = drop_if;
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    let block = net.mine(0);
    (net, b, block)
}

fn count_delivered(net: &Net, what: fn(&Message) -> bool) -> usize {
    net.delivered.iter().filter(|(_, _, m)| what(m)).count()
}

#[test]
fn a_new_block_travels_compact_and_is_rebuilt_from_the_mempool() {
    let mut net = Net::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    for nonce in 0..20 {
        net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 1, nonce)), net.now);
    }
    net.settle();
    assert!(net.nodes.iter().all(|node| node.mempool().len() == 20));
    net.delivered.clear();
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    let block = net.mine(0);
    for index in 0..3 {
        assert_eq!(net.tip(index), block.hash(), "node {index}");
        assert!(net.nodes[index].mempool().is_empty());
    }
    assert_eq!(
        count_delivered(&net, |m| matches!(m, Message::Blocks(_))),
        0
    );
    assert_eq!(
        count_delivered(&net, |m| matches!(m, Message::GetBlockTxn { .. })),
        0
    );
    // One compact block per hop, each far smaller than the block.
    let compact_bytes: Vec<usize> = net
        .delivered
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::CompactBlock(_)))
        .map(|(_, _, m)| m.encoded_len())
        .collect();
    assert_eq!(compact_bytes.len(), 2);
    assert!(compact_bytes.iter().all(|b| b * 5 < block.encoded_len()));
    for index in [1, 2] {
        assert_eq!(net.nodes[index].compact_stats().rebuilt_at_once, 1);
    }
}

#[test]
fn what_the_mempool_lacks_is_asked_for_by_place() {
    // Node 1 lacks three transfers of ten (they never reached it).
    let (net, _, block) = compact_pair(10, |i| i % 3 == 0 && i < 9, None);
    assert_eq!(net.tip(1), block.hash());
    let asked: Vec<Vec<u32>> = net
        .delivered
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::GetBlockTxn { indexes, .. } => Some(indexes.clone()),
            _ => None,
        })
        .collect();
    let lacking: Vec<u32> = (0..block.txs.len() as u32)
        .filter(|i| {
            block.txs[*i as usize]
                .as_transfer()
                .is_some_and(|t| t.from == Keypair::dev(3).address())
        })
        .collect();
    assert_eq!(lacking.len(), 3);
    assert_eq!(asked, vec![lacking]);
    let stats = net.nodes[1].compact_stats();
    assert_eq!((stats.rebuilt_after_asking, stats.transfers_asked), (1, 3));
    assert_eq!(
        count_delivered(&net, |m| matches!(m, Message::Blocks(_))),
        0
    );
}

#[test]
fn with_compact_blocks_off_a_node_fetches_blocks_whole() {
    let mut net = Net::build(vec![spec(); 2], |index, config, _| {
        config.compact_blocks = index != 1;
    });
    net.connect(0, 1);
    net.settle();
    net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 1, 0)), net.now);
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    let block = net.mine(0);
    assert_eq!(net.tip(1), block.hash());
    assert_eq!(
        count_delivered(&net, |m| matches!(m, Message::Blocks(_))),
        1
    );
    assert_eq!(
        count_delivered(&net, |m| matches!(m, Message::CompactBlock(_))),
        0
    );
}

/// Drops node 0's compact blocks to node 1: the test sends its own instead.
fn no_compact_from_0(from: usize, _: usize, message: &Message) -> bool {
    from == 0 && matches!(message, Message::CompactBlock(_))
}

#[test]
fn a_compact_block_that_rebuilds_the_wrong_block_is_fetched_whole() {
    use powchain_protocol::compact::{CompactBlock, ShortIdKey};
    // Node 0 mines four transfers; node 1 then also holds a fifth, which the block lacks.
    let (mut net, b, block) = compact_pair(4, |_| false, Some(no_compact_from_0));
    assert_ne!(
        net.tip(1),
        block.hash(),
        "node 1 waits for its compact block"
    );
    let outsider = transfer(1, 2, 1, 4);
    assert_eq!(block.txs.len(), 5, "the coinbase and the four");
    receive(
        &mut net.nodes[1],
        b,
        Message::Transactions(vec![outsider.clone()]),
        net.now,
    );
    net.settle();
    // Place 2's short id is the outsider's: as a collision would, the rebuild picks a
    // pool transfer that is not the block's. The root catches it; the block comes whole.
    let mut compact = CompactBlock::of(&block, &block.hash(), 11);
    compact.short_ids[1] = ShortIdKey::new(&block.hash(), 11).short_id(&outsider.id());
    net.drop_if = None;
    net.inject(1, b, Message::CompactBlock(compact.clone()));
    assert_eq!(net.tip(1), block.hash());
    assert_eq!(net.nodes[1].compact_stats().fell_back, 1);
    assert!(net.nodes[1].peers().len() == 1, "an accident costs no one");

    // A compact block naming one short id twice is fetched whole as well.
    let (mut net, b, block) = compact_pair(3, |_| false, Some(no_compact_from_0));
    let mut repeated = CompactBlock::of(&block, &block.hash(), 5);
    repeated.short_ids[2] = repeated.short_ids[0];
    net.drop_if = None;
    net.inject(1, b, Message::CompactBlock(repeated));
    assert_eq!(net.tip(1), block.hash());
    assert_eq!(net.nodes[1].compact_stats().fell_back, 1);
}

#[test]
fn a_bogus_compact_block_or_answer_ends_in_a_ban() {
    use powchain_protocol::compact::CompactBlock;
    let banned = |net: &Net, check: fn(&DisconnectReason) -> bool| {
        let gone = net.peer_gone(1);
        assert!(gone.iter().any(check), "{gone:?}");
        assert!(net.nodes[1].is_banned("host-0", net.now));
    };
    // No coinbase where it belongs.
    let (mut net, b, block) = compact_pair(3, |_| false, Some(no_compact_from_0));
    let mut bogus = CompactBlock::of(&block, &block.hash(), 1);
    bogus.prefilled[0].index = 3;
    net.inject(1, b, Message::CompactBlock(bogus));
    banned(&net, |r| {
        matches!(r, DisconnectReason::InvalidCompactBlock(_))
    });

    // More transactions than a block may hold.
    let (mut net, b, block) = compact_pair(1, |_| false, Some(no_compact_from_0));
    let mut bogus = CompactBlock::of(&block, &block.hash(), 1);
    let limit = spec().limits.block_txs_max as usize;
    bogus.short_ids = vec![bogus.short_ids[0]; limit];
    net.inject(1, b, Message::CompactBlock(bogus));
    banned(&net, |r| {
        matches!(r, DisconnectReason::InvalidCompactBlock(_))
    });

    // A compact block nobody asked for (node 1 has this one already, and never asks a
    // peer to push).
    let low_bandwidth_only = Net::build(vec![spec(); 2], |_, config, _| {
        config.compact_high_bandwidth_peers = 0;
    });
    let (mut net, b, block) = compact_pair_in(low_bandwidth_only, 1, |_| false, None);
    assert_eq!(net.tip(1), block.hash());
    net.inject(
        1,
        b,
        Message::CompactBlock(CompactBlock::of(&block, &block.hash(), 1)),
    );
    banned(&net, |r| {
        matches!(r, DisconnectReason::Unrequested(Unasked::Block))
    });

    // Transfers for a rebuild nobody started.
    let (mut net, b, block) = compact_pair(1, |_| false, None);
    let transfers = vec![transfer(1, 2, 1, 7)];
    net.inject(
        1,
        b,
        Message::BlockTxn {
            block: block.hash(),
            transfers,
        },
    );
    banned(&net, |r| {
        matches!(r, DisconnectReason::Unrequested(Unasked::BlockTransfers))
    });

    // An answer of the wrong length: node 1 lacks all three and is sent two.
    fn no_block_txn_from_0(from: usize, _: usize, message: &Message) -> bool {
        from == 0 && matches!(message, Message::BlockTxn { .. })
    }
    let (mut net, b, block) = compact_pair(3, |_| true, Some(no_block_txn_from_0));
    assert_ne!(net.tip(1), block.hash());
    let transfers = (0..2).map(|nonce| transfer(1, 2, 1, nonce)).collect();
    net.inject(
        1,
        b,
        Message::BlockTxn {
            block: block.hash(),
            transfers,
        },
    );
    banned(&net, |r| {
        matches!(r, DisconnectReason::InvalidCompactBlock(_))
    });

    // Places asked for out of order, or the coinbase's, from the server's side.
    for indexes in [vec![2, 1], vec![0], vec![1, 1], vec![9]] {
        let (mut net, _, block) = compact_pair(3, |_| false, None);
        // Node 0 is asked by node 1 (its peer id there is the first one, 1).
        net.inject(
            0,
            1,
            Message::GetBlockTxn {
                block: block.hash(),
                indexes,
            },
        );
        let gone = net.peer_gone(0);
        assert!(
            gone.iter()
                .any(|r| matches!(r, DisconnectReason::ProtocolViolation(_))),
            "{gone:?}"
        );
    }
}

// ---- compact blocks, high-bandwidth mode -------------------------------------------------

fn send_compact(message: &Message) -> Option<bool> {
    match message {
        Message::SendCompact { high_bandwidth } => Some(*high_bandwidth),
        _ => None,
    }
}

/// The `SendCompact` messages delivered from node `from` to node `to`, in order.
fn send_compacts(net: &Net, from: usize, to: usize) -> Vec<bool> {
    net.delivered
        .iter()
        .filter(|(f, t, _)| (*f, *t) == (from, to))
        .filter_map(|(_, _, m)| send_compact(m))
        .collect()
}

/// Node 0 mines one block with `transfers` transfers from dev account 1 (nonces from
/// `first_nonce`), after every node's pool holds them. Returns the block.
fn mine_with_transfers(net: &mut Net, first_nonce: u64, transfers: u64) -> Block {
    for nonce in first_nonce..first_nonce + transfers {
        net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 1, nonce)), net.now);
    }
    net.settle();
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    net.mine(0)
}

#[test]
fn the_peer_that_gave_a_tip_first_pushes_the_next_block_compact_unasked() {
    // A line: 0 -> 1 -> 2.
    let mut net = Net::new(3);
    let (_, one_sees_zero) = net.connect(0, 1);
    let (_, two_sees_one) = net.connect(1, 2);
    net.settle();
    // The first block travels announced and asked for; each receiver then asks the peer
    // that gave it the tip to push from now on.
    let first = mine_with_transfers(&mut net, 0, 5);
    assert_eq!(net.tip(2), first.hash());
    assert_eq!(send_compacts(&net, 1, 0), [true]);
    assert_eq!(send_compacts(&net, 2, 1), [true]);
    assert_eq!(net.nodes[1].compact_high_bandwidth_peers(), [one_sees_zero]);
    assert_eq!(net.nodes[2].compact_high_bandwidth_peers(), [two_sees_one]);

    net.delivered.clear();
    let second = mine_with_transfers(&mut net, 5, 20);
    for index in 0..3 {
        assert_eq!(net.tip(index), second.hash(), "node {index}");
        assert!(net.nodes[index].mempool().is_empty(), "node {index}");
    }
    // No announcement, no request: one compact block per hop, pushed.
    let count = |what: fn(&Message) -> bool| count_delivered(&net, what);
    assert_eq!(count(|m| matches!(m, Message::Announce { .. })), 0);
    assert_eq!(count(|m| matches!(m, Message::GetCompactBlock(_))), 0);
    assert_eq!(count(|m| matches!(m, Message::Blocks(_))), 0);
    assert_eq!(count(|m| matches!(m, Message::CompactBlock(_))), 2);
    for index in [1, 2] {
        let stats = net.nodes[index].compact_stats();
        assert_eq!(
            (stats.pushed_taken, stats.rebuilt_at_once),
            (1, 2),
            "node {index}"
        );
    }
    // Nobody is asked again: the same peers delivered first.
    assert!(send_compacts(&net, 1, 0).is_empty());
}

#[test]
fn a_pushed_block_missing_transfers_asks_its_pusher_for_them() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.settle();
    mine_with_transfers(&mut net, 0, 1);
    assert_eq!(send_compacts(&net, 1, 0), [true]);
    // Two transfers reach node 0 only (node 1 is not told of them); the block then holds them.
    fn no_transactions_to_1(_: usize, to: usize, message: &Message) -> bool {
        to == 1 && matches!(message, Message::Transactions(_))
    }
    net.drop_if = Some(no_transactions_to_1);
    for nonce in 1..3 {
        net.nodes[0].command(Command::SubmitTransfer(transfer(1, 2, 1, nonce)), net.now);
    }
    net.settle();
    net.drop_if = None;
    net.delivered.clear();
    net.nodes[0].command(Command::MineOnce, net.now);
    net.settle();
    let block = net.mine(0);
    assert_eq!(net.tip(1), block.hash());
    let asked: Vec<usize> = net
        .delivered
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::GetBlockTxn { indexes, .. } => Some(indexes.len()),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [2]);
    assert_eq!(
        count_delivered(&net, |m| matches!(m, Message::GetCompactBlock(_))),
        0
    );
    let stats = net.nodes[1].compact_stats();
    assert_eq!((stats.pushed_taken, stats.rebuilt_after_asking), (1, 1));
}

#[test]
fn the_peer_longest_without_a_first_delivery_is_told_to_stop_pushing() {
    // Node 0 hears from four peers, each of which mines one block in turn.
    let mut net = Net::new(5);
    let mut peer_of = vec![0];
    for index in 1..5 {
        let (_, on_zero) = net.connect(index, 0);
        peer_of.push(on_zero);
    }
    net.settle();
    let mine_at = |net: &mut Net, index: usize, nonce: u64| {
        let transfer = transfer(index as u64, 0, 1, nonce);
        net.nodes[index].command(Command::SubmitTransfer(transfer), net.now);
        net.settle();
        net.nodes[index].command(Command::MineOnce, net.now);
        net.settle();
        let block = net.mine(index);
        assert_eq!(net.tip(0), block.hash());
    };
    for index in 1..5 {
        mine_at(&mut net, index, 0);
        assert!(send_compacts(&net, 0, index)[0], "node {index} asked");
    }
    assert_eq!(send_compacts(&net, 0, 1), [true, false], "node 1 stopped");
    assert_eq!(
        net.nodes[0].compact_high_bandwidth_peers(),
        [peer_of[4], peer_of[3], peer_of[2]]
    );
    // Node 1, told to stop, announces its next block by header again, and is asked for it;
    // having given node 0 a tip first, it is asked to push again, and node 2 stops.
    net.delivered.clear();
    mine_at(&mut net, 1, 1);
    let names = |from: usize, to: usize| -> Vec<&'static str> {
        net.delivered
            .iter()
            .filter(|(f, t, _)| (*f, *t) == (from, to))
            .map(|(_, _, m)| m.name())
            .collect()
    };
    assert_eq!(names(1, 0), ["transactions", "announce", "compact-block"]);
    assert!(
        names(0, 1).contains(&"get-compact-block"),
        "{:?}",
        names(0, 1)
    );
    assert_eq!(send_compacts(&net, 0, 1), [true]);
    assert_eq!(send_compacts(&net, 0, 2), [false]);
}

#[test]
fn a_pushed_block_is_checked_as_an_announced_header_first() {
    use powchain_protocol::compact::CompactBlock;
    let mut net = Net::new(2);
    let (_, b) = net.connect(0, 1);
    net.settle();
    let first = mine_with_transfers(&mut net, 0, 1);
    assert_eq!(send_compacts(&net, 1, 0), [true]);
    // A block node 1 has: pushed again, it is ignored (pushes may cross), not abuse.
    net.inject(
        1,
        b,
        Message::CompactBlock(CompactBlock::of(&first, &first.hash(), 3)),
    );
    assert_eq!(
        net.nodes[1].peers().len(),
        1,
        "a repeated push costs nothing"
    );
    // A block on our tip whose header does not meet its target: the pusher is gone.
    let mut forged = first.clone();
    forged.header.prev_hash = first.hash();
    forged.header.height = powchain_chain::Height(first.header.height.0 + 1);
    while forged.header.meets_own_target() {
        forged.header.nonce += 1;
    }
    net.inject(
        1,
        b,
        Message::CompactBlock(CompactBlock::of(&forged, &forged.hash(), 3)),
    );
    assert!(
        net.nodes[1].peers().is_empty(),
        "a push without its work is refused"
    );
    assert_eq!(net.tip(1), first.hash());
}

/// An address the user typed that never answers (a mistyped `ConnectTo 7`) is dialled
/// again, backing off, and forgotten after a few failures, said once; `Forget` drops one at
/// once. One that answered before is kept however long it is down.
#[test]
fn a_user_address_that_never_answers_is_forgotten_after_a_few_tries() {
    let mut net = Net::build(vec![spec()], |_, config, _| config.outbound_target = 8);
    let node = &mut net.nodes[0];
    let mut now = net.now;
    node.command(Command::Connect("127.0.0.1:1".into()), now);
    let mut dials = 0;
    let mut forgotten = Vec::new();
    let mut delays = Vec::new();
    let mut last_dial = now;
    for _ in 0..2_000 {
        for output in node.outputs() {
            match output {
                Output::Connect(address) if address == "127.0.0.1:1" => {
                    dials += 1;
                    delays.push(now.ms_since(last_dial));
                    last_dial = now;
                    node.connect_failed(&address, "connection refused", now);
                }
                Output::Event(Event::AddressForgotten { address, failures }) => {
                    forgotten.push((address, failures));
                }
                _ => {}
            }
        }
        now = now.saturating_add_ms(1_000);
        node.tick(now);
    }
    assert_eq!(dials, 5, "dialled {dials} times");
    assert_eq!(forgotten, vec![("127.0.0.1:1".to_string(), 5)]);
    // Each retry waits longer than the one before.
    assert!(delays[1..].windows(2).all(|w| w[0] < w[1]), "{delays:?}");
    // `Forget`: no dial after it.
    node.command(Command::Connect("127.0.0.1:2".into()), now);
    node.command(Command::Forget("127.0.0.1:2".into()), now);
    let _ = node.outputs();
    for _ in 0..100 {
        now = now.saturating_add_ms(1_000);
        node.tick(now);
        assert!(
            !node
                .outputs()
                .iter()
                .any(|o| matches!(o, Output::Connect(a) if a == "127.0.0.1:2")),
            "dialled after Forget"
        );
    }
}
