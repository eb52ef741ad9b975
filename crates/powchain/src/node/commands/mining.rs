//! `Mine` and `automine`: the miner, one block or continuously.

use powchain_chain::Store;
use powchain_protocol::Command;

use super::{Answer, Session};

impl<S: Store + 'static> Session<S> {
    /// `Mine`: one block of the pending transactions; its event line says how it went.
    pub(super) async fn mine(&self) -> Answer {
        self.handle.command(Command::MineOnce).await;
        Ok(None)
    }

    /// `automine on|off`: mining continuously, empty blocks included.
    pub(super) async fn automine(&self, on: bool) -> Answer {
        self.handle.command(Command::Automine(on)).await;
        Ok(Some(format!("automine {}", if on { "on" } else { "off" })))
    }
}
