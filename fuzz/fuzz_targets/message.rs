//! Message decoding: anything that decodes is within every bound, encodes back to a message
//! that decodes to itself, and says its encoded length truly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use powchain_protocol::Received;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Received::decode(data).message else {
        return;
    };
    assert!(message.check_bounds().is_ok());
    let encoded = message.encode();
    assert_eq!(encoded.len(), message.encoded_len());
    let again = Received::decode(&encoded)
        .message
        .expect("our own encoding decodes");
    assert_eq!(again, message);
});
