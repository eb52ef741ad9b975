//! The interactive session: the seed's commands, parsed and answered.
//!
//! Parsing is pure ([`parse`]): a line becomes a [`Line`] or a one-line error that says what
//! to type instead. Names are case-insensitive, so the seed's `ConnectTo` and `connectto`
//! are the same, and every command has a short lowercase name too.

use std::fmt;

/// Longest line the session reads, in bytes.
pub const LINE_BYTES_MAX: usize = 4_096;

/// A peer, as the user names it: a node id (seed 000's `ConnectTo 1`) or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerRef {
    /// Node `N`: the unix socket `node.N` in the socket directory.
    Id(u32),
    /// `ip:port` or a socket path.
    Address(String),
}

/// An account: a dev index or an address (64 hex digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRef {
    /// Dev account `i`.
    Dev(u64),
    /// An address, as typed.
    Address(String),
}

/// A parsed session line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Nothing to do (an empty line or a comment).
    Empty,
    Connect(PeerRef),
    Echo(PeerRef, String),
    Sync(PeerRef),
    Disconnect(PeerRef),
    Forget(PeerRef),
    Send {
        from: AccountRef,
        to: AccountRef,
        amount: u64,
        fee: Option<u64>,
    },
    Mine,
    Balance(AccountRef),
    Peers,
    Chain,
    Block(String),
    Tx(String),
    Mempool,
    Automine(bool),
    WalletNew,
    WalletList,
    Help,
    Quit,
}

/// What was wrong with a line, and what to type instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every command with an example, for `help` and for errors.
pub const HELP: &[(&str, &str)] = &[
    (
        "ConnectTo <id|addr>",
        "ConnectTo 1   (or: connect 127.0.0.1:9001)",
    ),
    (
        "EchoTo <id|addr> <message>",
        "EchoTo 1 HELLO   (or: echo 1 hi there)",
    ),
    (
        "SyncWith <id|addr>",
        "SyncWith 1   (its peers and its chain; or: sync 1)",
    ),
    (
        "MakeTransaction <from> <to> <amount> [fee]",
        "MakeTransaction 2 3 5   (or: send 2 3 5 1)",
    ),
    (
        "Mine",
        "Mine   (mine the pending transactions into a block; or: mine)",
    ),
    (
        "GetBalance <account>",
        "GetBalance 3   (or: balance <address>)",
    ),
    ("peers", "peers"),
    (
        "disconnect <id|addr>",
        "disconnect 1   (close the connection; not dialled again unless you connect to it)",
    ),
    (
        "forget <id|addr>",
        "forget 7   (stop dialling it: a mistyped ConnectTo, a node gone for good)",
    ),
    ("chain", "chain   (tip, height, work, recent blocks)"),
    (
        "block <height|hash>",
        "block 1   (or the first 8+ hex digits of its hash: block 0000fe2d39a2bab8)",
    ),
    (
        "tx <id>",
        "tx 5f3a9c0e1b2d   (a transaction id, or its first 8+ hex digits)",
    ),
    ("mempool", "mempool"),
    (
        "automine on|off",
        "automine on   (mine continuously, empty blocks included)",
    ),
    ("wallet new|list", "wallet new"),
    ("help", "help"),
    ("quit", "quit"),
];

fn usage(name: &str) -> ParseError {
    let example = HELP
        .iter()
        .find(|(syntax, _)| syntax.to_lowercase().starts_with(&name.to_lowercase()))
        .map_or(String::new(), |(syntax, example)| {
            format!(": {syntax}, for example {example}")
        });
    ParseError(format!("wrong arguments for {name}{example}"))
}

fn peer(word: &str) -> PeerRef {
    match word.parse::<u32>() {
        Ok(id) => PeerRef::Id(id),
        Err(_) => PeerRef::Address(word.to_owned()),
    }
}

fn account(word: &str) -> Result<AccountRef, ParseError> {
    if let Ok(index) = word.parse::<u64>() {
        return Ok(AccountRef::Dev(index));
    }
    if word.len() == 64 && word.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(AccountRef::Address(word.to_lowercase()));
    }
    Err(ParseError(format!(
        "{word:?} is not an account: give a dev account number (0, 1, …) or a 64-digit hex address"
    )))
}

fn number(word: &str, what: &str) -> Result<u64, ParseError> {
    word.parse()
        .map_err(|_| ParseError(format!("{what} must be a whole number, got {word:?}")))
}

/// Parses one line of the session.
pub fn parse(line: &str) -> Result<Line, ParseError> {
    if line.len() > LINE_BYTES_MAX {
        return Err(ParseError(format!(
            "line of {} bytes is over the limit of {LINE_BYTES_MAX}",
            line.len()
        )));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((name, args)) = words.split_first() else {
        return Ok(Line::Empty);
    };
    if name.starts_with('#') {
        return Ok(Line::Empty);
    }
    let lower = name.to_lowercase();
    let parsed = match (lower.as_str(), args) {
        ("connectto" | "connect", [target]) => Line::Connect(peer(target)),
        ("echoto" | "echo", [target, first, rest @ ..]) => {
            let mut message = (*first).to_owned();
            for word in rest {
                message.push(' ');
                message.push_str(word);
            }
            // Peers refuse longer echoes as misbehaviour: stop them here.
            let max = powchain_protocol::message::ECHO_BYTES_MAX;
            if message.len() > max {
                return Err(ParseError(format!(
                    "an echo holds at most {max} bytes, this one has {}",
                    message.len()
                )));
            }
            Line::Echo(peer(target), message)
        }
        ("syncwith" | "sync", [target]) => Line::Sync(peer(target)),
        ("disconnect", [target]) => Line::Disconnect(peer(target)),
        ("forget", [target]) => Line::Forget(peer(target)),
        ("maketransaction" | "send", [from, to, amount]) => Line::Send {
            from: account(from)?,
            to: account(to)?,
            amount: number(amount, "the amount")?,
            fee: None,
        },
        ("maketransaction" | "send", [from, to, amount, fee]) => Line::Send {
            from: account(from)?,
            to: account(to)?,
            amount: number(amount, "the amount")?,
            fee: Some(number(fee, "the fee")?),
        },
        ("mine", []) => Line::Mine,
        ("getbalance" | "balance", [who]) => Line::Balance(account(who)?),
        ("peers", []) => Line::Peers,
        ("chain", []) => Line::Chain,
        ("block", [which]) => Line::Block((*which).to_owned()),
        ("tx", [id]) => Line::Tx((*id).to_owned()),
        ("mempool", []) => Line::Mempool,
        ("automine", [switch]) => match switch.to_lowercase().as_str() {
            "on" => Line::Automine(true),
            "off" => Line::Automine(false),
            _ => return Err(usage("automine")),
        },
        ("wallet", [action]) => match action.to_lowercase().as_str() {
            "new" => Line::WalletNew,
            "list" => Line::WalletList,
            _ => return Err(usage("wallet")),
        },
        ("help", []) => Line::Help,
        ("quit" | "exit", []) => Line::Quit,
        (
            "connectto" | "connect" | "echoto" | "echo" | "syncwith" | "sync" | "disconnect"
            | "forget" | "maketransaction" | "send" | "mine" | "getbalance" | "balance" | "peers"
            | "chain" | "block" | "tx" | "mempool" | "automine" | "wallet" | "help" | "quit"
            | "exit",
            _,
        ) => return Err(usage(name)),
        _ => {
            let mut shown: String = name.chars().take(40).collect();
            if shown.len() < name.len() {
                shown.push('…');
            }
            return Err(ParseError(format!(
                "unknown command {shown:?}; type help for the list"
            )));
        }
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_seed_commands_parse() {
        assert_eq!(parse("ConnectTo 1"), Ok(Line::Connect(PeerRef::Id(1))));
        assert_eq!(
            parse("EchoTo 1 HELLO"),
            Ok(Line::Echo(PeerRef::Id(1), "HELLO".into()))
        );
        assert_eq!(
            parse("echo 127.0.0.1:9 hi  there"),
            Ok(Line::Echo(
                PeerRef::Address("127.0.0.1:9".into()),
                "hi there".into()
            ))
        );
        assert_eq!(parse("SyncWith 1"), Ok(Line::Sync(PeerRef::Id(1))));
        assert_eq!(
            parse("MakeTransaction 2 3 5"),
            Ok(Line::Send {
                from: AccountRef::Dev(2),
                to: AccountRef::Dev(3),
                amount: 5,
                fee: None
            })
        );
        assert_eq!(parse("Mine"), Ok(Line::Mine));
        assert_eq!(parse("GetBalance 3"), Ok(Line::Balance(AccountRef::Dev(3))));
        assert_eq!(parse("   "), Ok(Line::Empty));
        assert_eq!(parse("automine ON"), Ok(Line::Automine(true)));
    }

    #[test]
    fn errors_say_what_to_type() {
        let error = parse("MakeTransaction 2 3").unwrap_err().0;
        assert!(
            error.contains("MakeTransaction <from> <to> <amount>"),
            "{error}"
        );
        let error = parse("frobnicate").unwrap_err().0;
        assert!(error.contains("type help"), "{error}");
        let error = parse("balance xyz").unwrap_err().0;
        assert!(error.contains("not an account"), "{error}");
        assert!(parse(&"x".repeat(LINE_BYTES_MAX + 1)).is_err());
        assert!(parse(&format!("EchoTo 0 {}", "x".repeat(1_025))).is_err());
    }

    proptest! {
        #[test]
        fn any_line_parses_or_errors(line in ".{0,300}") {
            let _ = parse(&line);
        }

        #[test]
        fn binary_junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
