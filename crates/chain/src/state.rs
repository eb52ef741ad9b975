//! Account state: balances and nonces, applying blocks, and undoing them.
//!
//! State is read through [`AccountReader`] (the store implements it) and changed in a
//! [`StateOverlay`], which records changes in memory on top of a reader. Connecting a block
//! to an overlay returns its [`BlockUndo`]: every account the block touched, as it was
//! before. Applying that undo restores the state exactly, which is how reorgs go back.
//! Nothing is written until the caller commits the overlay's changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::block::BlockError;
use crate::keys::Address;
use crate::spec::ChainSpec;
use crate::store::StoreError;
use crate::tx::{Transaction, Transfer, TxError};
use crate::units::Amount;

/// An account's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Coins held.
    pub balance: Amount,
    /// Transfers sent so far: the nonce the next one must carry.
    pub nonce: u64,
}

/// Reads accounts.
pub trait AccountReader {
    /// The account at `address`, or `None` if it does not exist.
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError>;
}

/// The state before a block, for every account the block touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUndo {
    /// Each touched account and its state before the block (`None`: it did not exist).
    pub prior: Vec<(Address, Option<Account>)>,
}

/// Why a block could not be connected: a transaction failed against the state, or the
/// state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The block is invalid on this state.
    #[error(transparent)]
    Invalid(#[from] BlockError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Changes to accounts, held in memory on top of a reader.
pub struct StateOverlay<'a> {
    base: &'a dyn AccountReader,
    changes: BTreeMap<Address, Option<Account>>,
}

impl<'a> StateOverlay<'a> {
    /// An overlay with no changes yet.
    pub fn new(base: &'a dyn AccountReader) -> StateOverlay<'a> {
        StateOverlay {
            base,
            changes: BTreeMap::new(),
        }
    }

    /// The changed accounts (`None`: the account was removed).
    pub fn into_changes(self) -> BTreeMap<Address, Option<Account>> {
        self.changes
    }

    fn set(&mut self, address: Address, account: Option<Account>) {
        self.changes.insert(address, account);
    }

    /// Applies one transfer, checking it against the state (not its signature, nor the
    /// stateless rules: the caller has done those).
    pub fn apply_transfer(
        &mut self,
        transfer: &Transfer,
        spec: &ChainSpec,
    ) -> Result<(), ConnectError> {
        let sender = self
            .account(&transfer.from)?
            .ok_or(TxError::UnknownSender(transfer.from))
            .map_err(tx_error)?;
        let recipient = self.account(&transfer.to)?;
        if recipient.is_none() && spec.require_known_recipient {
            return Err(tx_error(TxError::UnknownRecipient(transfer.to)));
        }
        if transfer.nonce != sender.nonce {
            return Err(tx_error(TxError::WrongNonce {
                from: transfer.from,
                expected: sender.nonce,
                got: transfer.nonce,
            }));
        }
        let needed = transfer.cost().ok_or(tx_error(TxError::CostOverflow))?;
        let balance = sender.balance.checked_sub(needed).ok_or_else(|| {
            tx_error(TxError::InsufficientBalance {
                from: transfer.from,
                balance: sender.balance,
                needed,
            })
        })?;
        let mut recipient = recipient.unwrap_or_default();
        recipient.balance = recipient
            .balance
            .checked_add(transfer.amount)
            .ok_or(tx_error(TxError::BalanceOverflow(transfer.to)))?;
        self.set(
            transfer.from,
            Some(Account {
                balance,
                nonce: sender.nonce + 1,
            }),
        );
        self.set(transfer.to, Some(recipient));
        Ok(())
    }

    /// Pays `amount` new coins to `to` (a coinbase). Zero pays nothing and creates nothing.
    pub fn credit(&mut self, to: &Address, amount: Amount) -> Result<(), ConnectError> {
        if amount == Amount::ZERO {
            return Ok(());
        }
        let mut account = self.account(to)?.unwrap_or_default();
        account.balance = account
            .balance
            .checked_add(amount)
            .ok_or(tx_error(TxError::BalanceOverflow(*to)))?;
        self.set(*to, Some(account));
        Ok(())
    }

    /// Applies every transaction of a block in order, returning its undo data. On error the
    /// overlay holds a partial application: discard it.
    pub fn connect_block(
        &mut self,
        txs: &[Transaction],
        spec: &ChainSpec,
    ) -> Result<BlockUndo, ConnectError> {
        let mut prior: BTreeMap<Address, Option<Account>> = BTreeMap::new();
        for (index, tx) in txs.iter().enumerate() {
            let touched: &[Address] = match tx {
                Transaction::Coinbase(c) => &[c.to],
                Transaction::Transfer(t) => &[t.from, t.to],
            };
            for address in touched {
                if !prior.contains_key(address) {
                    let before = self.account(address)?;
                    prior.insert(*address, before);
                }
            }
            let result = match tx {
                Transaction::Coinbase(c) => self.credit(&c.to, c.amount),
                Transaction::Transfer(t) => self.apply_transfer(t, spec),
            };
            result.map_err(|error| match error {
                ConnectError::Invalid(BlockError::BadTransaction { error, .. }) => {
                    ConnectError::Invalid(BlockError::BadTransaction { index, error })
                }
                other => other,
            })?;
        }
        Ok(BlockUndo {
            prior: prior.into_iter().collect(),
        })
    }

    /// Restores every account a block touched to its state before the block.
    pub fn disconnect_block(&mut self, undo: &BlockUndo) {
        for (address, before) in &undo.prior {
            self.set(*address, *before);
        }
    }
}

impl AccountReader for StateOverlay<'_> {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        match self.changes.get(address) {
            Some(changed) => Ok(*changed),
            None => self.base.account(address),
        }
    }
}

/// A transaction error at an index the caller fixes up (see `connect_block`).
fn tx_error(error: TxError) -> ConnectError {
    ConnectError::Invalid(BlockError::BadTransaction { index: 0, error })
}

/// Accounts in memory: genesis state for tests, and the naive model in property tests.
impl AccountReader for BTreeMap<Address, Account> {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        Ok(self.get(address).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::BlockHash;
    use crate::keys::Keypair;
    use crate::tx::{Memo, UnsignedTransfer};

    fn pay(from: u64, to: u64, amount: u64, nonce: u64) -> Transfer {
        UnsignedTransfer {
            to: Keypair::dev(to).address(),
            amount: Amount(amount),
            fee: Amount(0),
            nonce,
            memo: Memo::default(),
        }
        .sign(&Keypair::dev(from), &BlockHash::ZERO)
    }

    fn funded(spec: &ChainSpec) -> BTreeMap<Address, Account> {
        spec.genesis_allocations()
            .into_iter()
            .map(|a| {
                (
                    a.address,
                    Account {
                        balance: a.balance,
                        nonce: 0,
                    },
                )
            })
            .collect()
    }

    fn error_of(result: Result<(), ConnectError>) -> TxError {
        match result {
            Err(ConnectError::Invalid(BlockError::BadTransaction { error, .. })) => error,
            other => panic!("expected a transaction error, got {other:?}"),
        }
    }

    #[test]
    fn seed_rejections_against_state() {
        let spec = ChainSpec::seed();
        let base = funded(&spec);
        let mut state = StateOverlay::new(&base);
        let stranger = Keypair::dev(1000);
        let unknown_sender = UnsignedTransfer {
            to: Keypair::dev(1).address(),
            amount: Amount(1),
            fee: Amount(0),
            nonce: 0,
            memo: Memo::default(),
        }
        .sign(&stranger, &BlockHash::ZERO);
        assert_eq!(
            error_of(state.apply_transfer(&unknown_sender, &spec)),
            TxError::UnknownSender(stranger.address())
        );
        let mut to_stranger = pay(1, 2, 1, 0);
        to_stranger.to = stranger.address();
        assert_eq!(
            error_of(state.apply_transfer(&to_stranger, &spec)),
            TxError::UnknownRecipient(stranger.address())
        );
        assert!(matches!(
            error_of(state.apply_transfer(&pay(1, 2, 11, 0), &spec)),
            TxError::InsufficientBalance { .. }
        ));
        assert!(matches!(
            error_of(state.apply_transfer(&pay(1, 2, 1, 1), &spec)),
            TxError::WrongNonce {
                expected: 0,
                got: 1,
                ..
            }
        ));
        // Nothing above changed anything.
        assert!(state.into_changes().is_empty());
    }

    #[test]
    fn undo_restores_exactly() {
        let spec = ChainSpec::dev();
        let base = funded(&spec);
        let newcomer = Keypair::dev(77).address();
        let mut to_newcomer = pay(0, 1, 5, 0);
        to_newcomer.to = newcomer;
        let txs = vec![
            Transaction::Coinbase(crate::tx::Coinbase {
                height: crate::units::Height(1),
                to: Keypair::dev(3).address(),
                amount: Amount(50),
                extra_nonce: 0,
            }),
            Transaction::Transfer(to_newcomer),
            Transaction::Transfer(pay(2, 3, 7, 0)),
        ];
        let mut state = StateOverlay::new(&base);
        let undo = state.connect_block(&txs, &spec).unwrap();
        assert_eq!(
            state.account(&newcomer).unwrap(),
            Some(Account {
                balance: Amount(5),
                nonce: 0
            })
        );
        state.disconnect_block(&undo);
        for (address, account) in state.into_changes() {
            assert_eq!(account, base.get(&address).copied(), "{address:?}");
        }
    }
}
