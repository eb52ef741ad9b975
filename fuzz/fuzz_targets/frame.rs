//! The transport: bytes from a socket through the node's length-prefixed frame codec, then
//! each frame through message decoding. No input may panic, allocate beyond the frame limit,
//! or produce a frame over it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use powchain_node::driver::frame_codec;
use powchain_protocol::Message;
use powchain_protocol::message::FRAME_BYTES_MAX;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = frame_codec();
    let mut buffer = BytesMut::from(data);
    loop {
        match codec.decode(&mut buffer) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= FRAME_BYTES_MAX);
                let _ = Message::decode(&frame);
            }
            // More bytes needed, or a length over the limit (the driver disconnects).
            Ok(None) | Err(_) => break,
        }
    }
});
