//! The wire boundary, with no I/O: how messages become frames and bytes become messages.
//!
//! A frame is a u32 big-endian length, then that many bytes of postcard-encoded [`Message`].
//! Everything a peer sends crosses here, and every bound is checked here, once: the length
//! against [`FRAME_BYTES_MAX`] before anything is allocated for it, then the message's counts
//! and lengths ([`Message::check_bounds`]). What comes out is a [`Received`], the node's one
//! input per frame; the node trusts its bounds.
//!
//! ```text
//!  socket bytes ──split──> payload ──Received::decode──> Received { bytes, message | error }
//!  in-memory transport (simulator, tests) ──Received::message──┘         │
//!                                                       Node::frame_received
//!  Message ──encode──> length + payload ──> socket        (wire_len: its size, for the simulator)
//! ```
//!
//! The tokio driver wraps [`split`] and [`encode`] in a codec; the simulator and the tests
//! hand messages over in memory through [`Received::message`], which checks the same bounds;
//! the fuzz targets feed raw bytes to [`split`] and [`Received::decode`].

use crate::message::{FRAME_BYTES_MAX, Message, MessageError};

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// One frame from a peer, as the node receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// The frame's payload bytes (counted whether or not they decoded).
    pub bytes: usize,
    /// The message, or why the bytes are not one the node accepts.
    pub message: Result<Message, MessageError>,
}

impl Received {
    /// Decodes a frame's payload and checks every bound.
    pub fn decode(payload: &[u8]) -> Received {
        Received {
            bytes: payload.len(),
            message: decode(payload),
        }
    }

    /// A message handed over in memory (no bytes to decode), whose payload would take
    /// `bytes`; its bounds are checked as if it had been decoded.
    pub fn message(message: Message, bytes: usize) -> Received {
        Received {
            bytes,
            message: message.check_bounds().map(|()| message),
        }
    }

    /// A stream that broke before a whole frame arrived (a length prefix over the maximum).
    pub fn error(error: MessageError) -> Received {
        Received {
            bytes: 0,
            message: Err(error),
        }
    }
}

/// Decodes a frame's payload: its size first, then postcard, then every count and length.
fn decode(payload: &[u8]) -> Result<Message, MessageError> {
    if payload.len() > FRAME_BYTES_MAX {
        return Err(MessageError::FrameTooLarge(payload.len()));
    }
    let message: Message =
        postcard::from_bytes(payload).map_err(|e| MessageError::Undecodable(e.to_string()))?;
    message.check_bounds()?;
    Ok(message)
}

/// Where the first frame in `buffer` ends: `Ok(Some(n))` when its first `n` bytes are a
/// whole frame (prefix included; the payload is `buffer[LENGTH_PREFIX_BYTES..n]`), `Ok(None)`
/// when more bytes are needed, and an error when the length is over [`FRAME_BYTES_MAX`]:
/// the stream is then unusable, and nothing was allocated for the frame.
pub fn split(buffer: &[u8]) -> Result<Option<usize>, MessageError> {
    let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let length = u32::from_be_bytes(*prefix) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(MessageError::FrameTooLarge(length));
    }
    let end = LENGTH_PREFIX_BYTES + length;
    Ok((buffer.len() >= end).then_some(end))
}

/// `message` as a frame: its length, then its payload.
pub fn encode(message: &Message) -> Vec<u8> {
    let payload = message.encode();
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + payload.len());
    // A message of ours over 4 GiB cannot exist: the largest is a `Blocks` reply of
    // `BLOCKS_MESSAGE_BYTES_MAX`.
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The bytes `message` takes on the wire, prefix included, without encoding it (the
/// simulator's link model charges this).
pub fn wire_len(message: &Message) -> usize {
    LENGTH_PREFIX_BYTES + message.encoded_len()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::ECHO_BYTES_MAX;

    #[test]
    fn a_frame_round_trips() {
        let message = Message::EchoRequest {
            message: "HELLO".into(),
        };
        let frame = encode(&message);
        assert_eq!(frame.len(), wire_len(&message));
        assert_eq!(split(&frame), Ok(Some(frame.len())));
        let received = Received::decode(&frame[LENGTH_PREFIX_BYTES..]);
        assert_eq!(received.message, Ok(message));
        assert_eq!(received.bytes, frame.len() - LENGTH_PREFIX_BYTES);
    }

    #[test]
    fn a_partial_frame_waits_for_more() {
        let frame = encode(&Message::Ping { nonce: 9 });
        for cut in 0..frame.len() {
            assert_eq!(split(&frame[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn a_length_over_the_maximum_is_refused_before_allocation() {
        let mut buffer = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
        buffer.push(0);
        assert_eq!(
            split(&buffer),
            Err(MessageError::FrameTooLarge(FRAME_BYTES_MAX + 1))
        );
        let at_limit = (FRAME_BYTES_MAX as u32).to_be_bytes();
        assert_eq!(split(&at_limit), Ok(None));
    }

    #[test]
    fn bounds_are_checked_on_every_path_in() {
        let long_echo = Message::EchoRequest {
            message: "x".repeat(ECHO_BYTES_MAX + 1),
        };
        let decoded = Received::decode(&long_echo.encode());
        let in_memory = Received::message(long_echo.clone(), wire_len(&long_echo));
        for received in [decoded, in_memory] {
            assert!(matches!(
                received.message,
                Err(MessageError::OverLimit { what: "echo", .. })
            ));
        }
        assert_eq!(
            Received::decode(&vec![0; FRAME_BYTES_MAX + 1]).message,
            Err(MessageError::FrameTooLarge(FRAME_BYTES_MAX + 1))
        );
        assert!(matches!(
            Received::decode(&[200, 1]).message,
            Err(MessageError::Undecodable(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_never_overrun(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut rest = &bytes[..];
            while let Ok(Some(end)) = split(rest) {
                prop_assert!(end <= rest.len() && end - LENGTH_PREFIX_BYTES <= FRAME_BYTES_MAX);
                let _ = Received::decode(&rest[LENGTH_PREFIX_BYTES..end]);
                rest = &rest[end..];
            }
        }
    }
}
