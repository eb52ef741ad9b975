//! A whole conversation from one peer: after the connection, the input is cut into frames
//! (two length bytes, then that many), each decoded as the driver would and handed to the node
//! state machine, with time moving on. Whatever a peer says, the node never panics, and once it
//! has disconnected the peer it does not talk to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use powchain_chain::Timestamp;
use powchain_protocol::{Direction, Node, NodeConfig, Output, PeerInfo, Received};

fuzz_target!(|data: &[u8]| {
    let mut node = Node::new(NodeConfig::new(1), powchain_fuzz::chain(), 1);
    let mut now = powchain_fuzz::now();
    let info = PeerInfo {
        address: "198.51.100.7:9000".into(),
        ban_key: "198.51.100.7".into(),
        direction: Direction::Inbound,
    };
    node.peer_connected(7, info, now);
    let mut gone = false;
    let mut rest = data;
    while rest.len() >= 2 && !gone {
        let length = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let frame = &rest[2..(2 + length).min(rest.len())];
        rest = &rest[(2 + length).min(rest.len())..];
        now = Timestamp(now.0 + 250);
        node.frame_received(7, Received::decode(frame), now);
        node.tick(now);
        for output in node.outputs() {
            match output {
                Output::Disconnect { peer: 7, .. } => gone = true,
                Output::Send { peer: 7, .. } => assert!(!gone, "spoke to a peer it dropped"),
                _ => {}
            }
        }
    }
});
