//! The transport: bytes from a socket through the driver's frame codec (the protocol's
//! `frame` module inside tokio's codec), each frame decoded and bounds-checked. No input may
//! panic, allocate beyond the frame limit, or produce a frame over it; a bad length ends the
//! stream with one error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use powchain_node::driver::FrameCodec;
use powchain_protocol::message::FRAME_BYTES_MAX;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec;
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buffer) {
        assert!(frame.bytes <= FRAME_BYTES_MAX);
        // The driver stops reading after a frame that is not a message.
        if frame.message.is_err() {
            break;
        }
    }
});
