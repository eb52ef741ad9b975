//! The session's commands, answered. [`Session`] holds what every answer needs (the driver's
//! handle, the chain spec, the socket directory, the wallet file), and [`Session::answer`]
//! hands each parsed line to the module of its group, one file a group:
//!
//! - [`peers`]: `ConnectTo`, `EchoTo`, `SyncWith` and `peers`, the other nodes;
//! - [`chain`]: `chain`, `block`, `tx` and `mempool`, what this node holds;
//! - [`transfers`]: `MakeTransaction` and `GetBalance`, coins moving between accounts;
//! - [`mining`]: `Mine` and `automine`, the miner;
//! - [`wallet`]: `wallet new` and `wallet list`, the keys kept on disk.

mod chain;
mod mining;
mod peers;
pub(super) use peers::peer_name;
mod transfers;
mod wallet;

use std::path::PathBuf;

use powchain_chain::{ChainSpec, Store};
use powchain_node::driver::Handle;

use super::session::{self, HELP, Line};

/// What a command answers: a text to print (or nothing), or the error to print.
type Answer = Result<Option<String>, String>;

/// The session's state: how to reach the node, and what names mean.
pub(super) struct Session<S: Store> {
    pub(super) handle: Handle<S>,
    pub(super) spec: ChainSpec,
    pub(super) sockets: PathBuf,
    pub(super) wallet: Option<PathBuf>,
}

impl<S: Store + 'static> Session<S> {
    /// Runs one line and prints its answer; false on `quit`.
    pub(super) async fn execute(&mut self, line: &str) -> bool {
        match session::parse(line) {
            Ok(Line::Quit) => return false,
            Ok(parsed) => match self.answer(parsed).await {
                Ok(Some(text)) => println!("{text}"),
                Ok(None) => {}
                Err(error) => println!("error: {error}"),
            },
            Err(error) => println!("error: {error}"),
        }
        true
    }

    /// Hands a line to the command that answers it.
    async fn answer(&mut self, line: Line) -> Answer {
        match line {
            Line::Empty | Line::Quit => Ok(None),
            Line::Help => Ok(Some(help())),
            Line::Connect(peer) => self.connect(peer).await,
            Line::Echo(peer, message) => self.echo(peer, message).await,
            Line::Sync(peer) => self.sync(peer).await,
            Line::Peers => self.peers().await,
            Line::Disconnect(peer) => self.disconnect(peer).await,
            Line::Forget(peer) => self.forget(peer).await,
            Line::Chain => self.chain().await,
            Line::Block(which) => self.block(which).await,
            Line::Tx(id) => self.tx(id).await,
            Line::Mempool => self.mempool().await,
            Line::Send {
                from,
                to,
                amount,
                fee,
            } => self.send(from, to, amount, fee).await,
            Line::Balance(who) => self.balance(who).await,
            Line::Mine => self.mine().await,
            Line::Automine(on) => self.automine(on).await,
            Line::WalletNew => self.wallet_new(),
            Line::WalletList => self.wallet_list(),
        }
    }
}

/// `help`: every command with an example.
fn help() -> String {
    HELP.iter()
        .map(|(syntax, example)| format!("  {syntax:<45} e.g. {example}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error of a question the driver did not answer.
fn stopped() -> String {
    "the node has stopped".to_string()
}
