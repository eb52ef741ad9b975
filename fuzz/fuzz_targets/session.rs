//! The interactive session's command parser: any line (bytes as the stdin reader passes them
//! on, lossily decoded) parses to a command or to an error that says what to type.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The parser is a module of the binary with no dependencies: compiled here as it is there.
#[allow(dead_code)]
#[path = "../../crates/powchain/src/node/session.rs"]
mod session;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Err(error) = session::parse(&line) {
        assert!(!error.to_string().is_empty(), "an error says something");
    }
});
