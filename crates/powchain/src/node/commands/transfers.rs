//! `MakeTransaction` and `GetBalance`: coins moving between accounts, signed here with a dev
//! key or a key of the wallet.

use powchain_chain::{Amount, Keypair, Memo, Store, TxId, UnsignedTransfer};
use powchain_node::wallet::Wallet;

use super::{Answer, Session, stopped};
use crate::node::resolve_account;
use crate::node::session::AccountRef;

impl<S: Store + 'static> Session<S> {
    /// `MakeTransaction`: a transfer signed with `from`'s key at its next nonce, into the
    /// mempool (the fee defaults to the chain's floor).
    pub(super) async fn send(
        &self,
        from: AccountRef,
        to: AccountRef,
        amount: u64,
        fee: Option<u64>,
    ) -> Answer {
        let to = resolve_account(&self.spec, &to)?;
        let key = self.key_for(&from)?;
        let fee = Amount(fee.unwrap_or(self.spec.fee_min.0));
        let result = self
            .handle
            .build_and_submit(move |node| {
                let nonce = node.next_nonce(&key.address());
                let chain_id = node.chain().chain_id();
                UnsignedTransfer {
                    to,
                    amount: Amount(amount),
                    fee,
                    nonce,
                    memo: Memo::default(),
                }
                .sign(&key, &chain_id)
            })
            .await
            .ok_or_else(stopped)?;
        let id: TxId = result.map_err(|e| e.to_string())?;
        Ok(Some(format!(
            "transaction {id} of {amount} coins accepted into the mempool"
        )))
    }

    /// `GetBalance`: the confirmed balance, and what the pending transactions make of it.
    pub(super) async fn balance(&self, who: AccountRef) -> Answer {
        let address = resolve_account(&self.spec, &who)?;
        let (confirmed, pending) = self
            .handle
            .inspect(move |node| {
                let confirmed = node
                    .chain()
                    .account(&address)
                    .ok()
                    .flatten()
                    .map(|a| a.balance);
                let pending = node
                    .mempool()
                    .pending_balance(&address, confirmed.unwrap_or_default());
                (confirmed, pending)
            })
            .await
            .ok_or_else(stopped)?;
        let name = match who {
            AccountRef::Dev(index) => index.to_string(),
            AccountRef::Address(hex) => hex,
        };
        match (confirmed, pending) {
            (Some(confirmed), pending) if pending != confirmed => Ok(Some(format!(
                "Balance of {name}: {confirmed} (with pending transactions: {pending})"
            ))),
            (Some(confirmed), _) => Ok(Some(format!("Balance of {name}: {confirmed}"))),
            (None, pending) if pending > Amount::ZERO => Ok(Some(format!(
                "Balance of {name}: 0 (with pending transactions: {pending})"
            ))),
            (None, _) => Err(format!("account {name} doesn't exist on this chain")),
        }
    }

    /// The key that signs for `from`: a dev account, or an address in the wallet.
    fn key_for(&self, from: &AccountRef) -> Result<Keypair, String> {
        match from {
            AccountRef::Dev(index) => {
                resolve_account(&self.spec, from)?;
                Ok(Keypair::dev(*index))
            }
            AccountRef::Address(hex) => {
                let path = self
                    .wallet
                    .clone()
                    .ok_or("only dev accounts can send from an --ephemeral node")?;
                let wallet = Wallet::open(&path).map_err(|e| e.to_string())?;
                wallet
                    .keys()
                    .iter()
                    .find(|key| key.address().to_string() == *hex)
                    .cloned()
                    .ok_or_else(|| format!("the wallet {} has no key for {hex}", path.display()))
            }
        }
    }
}
