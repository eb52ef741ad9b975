//! `wallet new` and `wallet list`: the keys this node keeps in its wallet file.

use powchain_chain::{Keypair, Store};
use powchain_node::wallet::Wallet;

use super::{Answer, Session};

impl<S: Store + 'static> Session<S> {
    /// `wallet new`: a fresh key, saved in the wallet.
    pub(super) fn wallet_new(&self) -> Answer {
        let path = self
            .wallet
            .clone()
            .ok_or("an --ephemeral node keeps no wallet")?;
        let mut wallet = Wallet::open(&path).map_err(|e| e.to_string())?;
        let key = Keypair::generate(&mut rand::rng());
        let address = key.address();
        wallet.add(key).map_err(|e| e.to_string())?;
        Ok(Some(format!("new key {address} in {}", path.display())))
    }

    /// `wallet list`: the address of every key in the wallet.
    pub(super) fn wallet_list(&self) -> Answer {
        let path = self
            .wallet
            .clone()
            .ok_or("an --ephemeral node keeps no wallet")?;
        let wallet = Wallet::open(&path).map_err(|e| e.to_string())?;
        if wallet.keys().is_empty() {
            return Ok(Some("the wallet is empty; type wallet new".into()));
        }
        Ok(Some(
            wallet
                .keys()
                .iter()
                .map(|k| k.address().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        ))
    }
}
