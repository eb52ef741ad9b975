//! Transactions: the coinbase and signed transfers, their encoding, ids and rejections.
//!
//! Consensus encoding (what a transaction id hashes), all integers big-endian:
//!
//! ```text
//! coinbase:  0x00 | height u64 | to 32 | amount u64 | extra_nonce u64                (57 bytes)
//! transfer:  0x01 | from 32 | to 32 | amount u64 | fee u64 | nonce u64
//!                 | memo_len u16 | memo | signature 64                        (155 + memo bytes)
//! ```
//!
//! A transfer's signature covers [`TRANSFER_SIGNING_TAG`], the chain id (genesis hash), and
//! the transfer's encoding without kind byte and signature. The chain id stops a transfer
//! signed for one network from being replayed on another; the per-account nonce stops it
//! being replayed on the same one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::hash::{BlockHash, Hash512, TxId};
use crate::keys::{Address, Keypair, Signature};
use crate::sigcache::SigCache;
use crate::signature::Signed;
use crate::units::{Amount, Height};

/// Domain separation for transfer signatures.
pub const TRANSFER_SIGNING_TAG: &[u8] = b"powchain/transfer/v1";
/// The longest memo any chain spec may allow, in bytes (a spec may allow less).
pub const MEMO_BYTES_MAX: usize = 256;
/// Size of an encoded coinbase.
pub const COINBASE_BYTES: usize = 1 + 8 + 32 + 8 + 8;
/// Size of an encoded transfer with an empty memo.
pub const TRANSFER_BASE_BYTES: usize = 1 + 32 + 32 + 8 + 8 + 8 + 2 + 64;

/// A short free-form note on a transfer, at most [`MEMO_BYTES_MAX`] bytes. Hex text in
/// human-readable formats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Memo(Vec<u8>);

impl Serialize for Memo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(&self.0))
        } else {
            self.0.serialize(serializer)
        }
    }
}

/// A memo longer than [`MEMO_BYTES_MAX`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a memo holds at most {MEMO_BYTES_MAX} bytes, this one has {0}")]
pub struct MemoTooLong(pub usize);

impl Memo {
    /// Checks the length; longer memos cannot exist, so encodings never overflow.
    pub fn new(bytes: Vec<u8>) -> Result<Memo, MemoTooLong> {
        if bytes.len() > MEMO_BYTES_MAX {
            return Err(MemoTooLong(bytes.len()));
        }
        Ok(Memo(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the memo is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Memo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            if text.len() > 2 * MEMO_BYTES_MAX {
                return Err(serde::de::Error::custom(MemoTooLong(text.len() / 2)));
            }
            hex::decode(text).map_err(|_| serde::de::Error::custom("a memo is hex text"))?
        } else {
            // serde's Vec caps its up-front allocation, so a lying length prefix cannot make
            // this allocate more than the input holds.
            Vec::<u8>::deserialize(deserializer)?
        };
        Memo::new(bytes).map_err(serde::de::Error::custom)
    }
}

/// The first transaction of every block: the block reward plus fees, to the miner.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coinbase {
    /// The block's height, so that two coinbases never share an id.
    pub height: Height,
    /// Who is paid.
    pub to: Address,
    /// Reward plus the block's fees (in genesis: an allocation).
    pub amount: Amount,
    /// Free for the miner to vary when it has tried every nonce.
    pub extra_nonce: u64,
}

/// A signed payment from one account to another.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    /// The paying account; it signs.
    pub from: Address,
    /// The paid account.
    pub to: Address,
    /// Coins moved to `to`.
    pub amount: Amount,
    /// Coins paid to the block's miner.
    pub fee: Amount,
    /// The sender's sequence number: its first transfer has nonce 0.
    pub nonce: u64,
    /// A note, at most the spec's `memo_bytes_max`.
    pub memo: Memo,
    /// The sender's signature over [`Transfer::signing_bytes`].
    pub signature: Signature,
}

/// A transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transaction {
    /// A block's reward (or a genesis allocation).
    Coinbase(Coinbase),
    /// A payment.
    Transfer(Transfer),
}

/// What a transfer must say before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedTransfer {
    /// The paid account.
    pub to: Address,
    /// Coins moved.
    pub amount: Amount,
    /// Coins for the miner.
    pub fee: Amount,
    /// The sender's next nonce.
    pub nonce: u64,
    /// A note.
    pub memo: Memo,
}

impl UnsignedTransfer {
    /// Signs for the network named by `chain_id` with `key`, which becomes the sender.
    pub fn sign(self, key: &Keypair, chain_id: &BlockHash) -> Transfer {
        let mut transfer = Transfer {
            from: key.address(),
            to: self.to,
            amount: self.amount,
            fee: self.fee,
            nonce: self.nonce,
            memo: self.memo,
            signature: Signature([0; 64]),
        };
        transfer.signature = key.sign(&transfer.signing_bytes(chain_id));
        transfer
    }
}

/// The index of the first of `transfers` whose signature is bad, or `None` when all are
/// good: those `cache` holds are not checked again, the rest are checked in batches on all
/// cores ([`crate::signature::first_invalid`]), and every one found good is remembered.
pub fn first_bad_signature(
    transfers: &[&Transfer],
    chain_id: &BlockHash,
    cache: &SigCache,
) -> Option<usize> {
    let (bytes, keys): (Vec<Vec<u8>>, Vec<Hash512>) = crate::parallel::map(transfers, |t| {
        let bytes = t.signing_bytes(chain_id);
        let key = t.cache_key(&bytes);
        (bytes, key)
    })
    .into_iter()
    .unzip();
    let known = cache.contains_each(&keys);
    let unchecked: Vec<usize> = (0..transfers.len())
        .filter(|&index| !known[index])
        .collect();
    let signed: Vec<Signed<'_>> = unchecked
        .iter()
        .map(|&index| Signed {
            key: &transfers[index].from,
            message: &bytes[index],
            signature: &transfers[index].signature,
        })
        .collect();
    let bad = crate::signature::first_invalid(&signed);
    // Everything before the first bad one was found good.
    let good = &unchecked[..bad.unwrap_or(unchecked.len())];
    cache.insert_all(good.iter().map(|&index| keys[index]));
    bad.map(|position| unchecked[position])
}

impl Transfer {
    /// The bytes the sender signs.
    pub fn signing_bytes(&self, chain_id: &BlockHash) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRANSFER_SIGNING_TAG.len() + 64 + self.encoded_len());
        out.extend_from_slice(TRANSFER_SIGNING_TAG);
        out.extend_from_slice(&chain_id.0.0);
        self.encode_body(&mut out);
        out
    }

    /// Whether the signature is the sender's, for this chain: checked every time.
    pub fn signature_is_valid(&self, chain_id: &BlockHash) -> bool {
        self.from
            .verifies(&self.signing_bytes(chain_id), &self.signature)
    }

    /// As [`Transfer::signature_is_valid`], but a signature `cache` found valid before is
    /// not checked again, and one found valid now is remembered there.
    pub fn signature_is_valid_in(&self, chain_id: &BlockHash, cache: &SigCache) -> bool {
        let bytes = self.signing_bytes(chain_id);
        let key = self.cache_key(&bytes);
        if cache.contains(&key) {
            return true;
        }
        let valid = self.from.verifies(&bytes, &self.signature);
        if valid {
            cache.insert(key);
        }
        valid
    }

    /// What the signature cache remembers this signature by, given its signing bytes.
    pub(crate) fn cache_key(&self, signing_bytes: &[u8]) -> Hash512 {
        Hash512::digest_parts(&[signing_bytes, &self.signature.0, &self.from.0])
    }

    /// Coins that leave the sender: amount plus fee, or `None` on overflow.
    pub fn cost(&self) -> Option<Amount> {
        self.amount.checked_add(self.fee)
    }

    /// Size of the consensus encoding.
    pub fn encoded_len(&self) -> usize {
        TRANSFER_BASE_BYTES + self.memo.len()
    }

    /// The consensus encoding, kind byte and signature included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(0x01);
        self.encode_body(&mut out);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// The transaction id, as [`Transaction::id`] computes it for this transfer.
    pub fn id(&self) -> TxId {
        TxId(Hash512::digest(&self.encode()))
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.from.0);
        out.extend_from_slice(&self.to.0);
        out.extend_from_slice(&self.amount.0.to_be_bytes());
        out.extend_from_slice(&self.fee.0.to_be_bytes());
        out.extend_from_slice(&self.nonce.to_be_bytes());
        // `Memo` guarantees the length fits: MEMO_BYTES_MAX < u16::MAX.
        let memo_len = u16::try_from(self.memo.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&memo_len.to_be_bytes());
        out.extend_from_slice(self.memo.as_bytes());
    }
}

const _: () = assert!(MEMO_BYTES_MAX <= u16::MAX as usize);

impl Transaction {
    /// The accounts it touches: who is paid, and who pays (once when they are the same).
    pub fn accounts(&self) -> Vec<Address> {
        match self {
            Transaction::Coinbase(coinbase) => vec![coinbase.to],
            Transaction::Transfer(transfer) if transfer.from == transfer.to => vec![transfer.to],
            Transaction::Transfer(transfer) => vec![transfer.from, transfer.to],
        }
    }

    /// The consensus encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Transaction::Coinbase(coinbase) => {
                let mut out = Vec::with_capacity(COINBASE_BYTES);
                out.push(0x00);
                out.extend_from_slice(&coinbase.height.0.to_be_bytes());
                out.extend_from_slice(&coinbase.to.0);
                out.extend_from_slice(&coinbase.amount.0.to_be_bytes());
                out.extend_from_slice(&coinbase.extra_nonce.to_be_bytes());
                out
            }
            Transaction::Transfer(transfer) => transfer.encode(),
        }
    }

    /// Size of the consensus encoding: what counts against a block's byte limit.
    pub fn encoded_len(&self) -> usize {
        match self {
            Transaction::Coinbase(_) => COINBASE_BYTES,
            Transaction::Transfer(transfer) => transfer.encoded_len(),
        }
    }

    /// The transaction id: SHA-512 of the encoding.
    pub fn id(&self) -> TxId {
        TxId(Hash512::digest(&self.encode()))
    }

    /// The transfer inside, if this is one.
    pub fn as_transfer(&self) -> Option<&Transfer> {
        match self {
            Transaction::Transfer(transfer) => Some(transfer),
            Transaction::Coinbase(_) => None,
        }
    }

    /// The coinbase inside, if this is one.
    pub fn as_coinbase(&self) -> Option<&Coinbase> {
        match self {
            Transaction::Coinbase(coinbase) => Some(coinbase),
            Transaction::Transfer(_) => None,
        }
    }
}

impl fmt::Display for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transaction::Coinbase(c) => write!(f, "coinbase {} to {}", c.amount, c.to.short(8)),
            Transaction::Transfer(t) => write!(
                f,
                "{} from {} to {} (fee {}, nonce {})",
                t.amount,
                t.from.short(8),
                t.to.short(8),
                t.fee,
                t.nonce
            ),
        }
    }
}

/// Why a transaction is refused. The first five are the seed's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The sender has no account (seed: `NonexistentFromAccount`).
    #[error("account {0} doesn't exist")]
    UnknownSender(Address),
    /// The recipient has no account, and this chain only pays existing accounts
    /// (seed: `NonexistentToAccount`).
    #[error("account {0} doesn't exist, and this chain only pays existing accounts")]
    UnknownRecipient(Address),
    /// The sender cannot pay amount plus fee (seed: `InsufficientBalance`).
    #[error("account {from} has {balance} coins, not enough for {needed} (amount plus fee)")]
    InsufficientBalance {
        /// The sender.
        from: Address,
        /// What it has.
        balance: Amount,
        /// What the transfer costs it.
        needed: Amount,
    },
    /// The amount is zero or above the chain's maximum (seed: `InvalidAmount`).
    #[error("amount must be between 1 and {max}, got {amount}")]
    InvalidAmount {
        /// The amount given.
        amount: Amount,
        /// The chain's maximum.
        max: Amount,
    },
    /// Sender and recipient are the same account (seed: `SelfTransaction`).
    #[error("accounts `from` and `to` cannot be the same")]
    SelfTransfer,
    /// The signature is not the sender's for this chain.
    #[error("signature does not match the sender's key for this chain")]
    BadSignature,
    /// The nonce is not the sender's next one.
    #[error("wrong nonce for account {from}: expected {expected}, got {got}")]
    WrongNonce {
        /// The sender.
        from: Address,
        /// The nonce the account is at.
        expected: u64,
        /// The nonce the transfer carries.
        got: u64,
    },
    /// The same transaction is already pending or confirmed.
    #[error("transaction {0} is already known")]
    Duplicate(TxId),
    /// The fee is below the chain's minimum.
    #[error("fee {fee} is below the minimum of {min}")]
    FeeTooLow {
        /// The fee given.
        fee: Amount,
        /// The chain's minimum.
        min: Amount,
    },
    /// The transaction is larger than the chain allows.
    #[error(
        "transaction is {bytes} bytes with a {memo_bytes}-byte memo; memos may hold at most {memo_bytes_max}"
    )]
    TooLarge {
        /// Encoded size.
        bytes: usize,
        /// The memo's size.
        memo_bytes: usize,
        /// The chain's memo limit.
        memo_bytes_max: usize,
    },
    /// Paying the recipient would overflow its balance.
    #[error("account {0}'s balance would overflow")]
    BalanceOverflow(Address),
    /// Amount plus fee overflows.
    #[error("amount plus fee overflows")]
    CostOverflow,
}

impl TxError {
    /// Whether the transfer breaks a rule that no state can make right (its amount, fee,
    /// size, accounts or signature), so no honest node would ever relay it. The others
    /// (unknown sender, balance, nonce, duplicate) depend on what the receiver has seen and
    /// an honest peer a block ahead or behind sends them too.
    pub fn breaks_the_rules(&self) -> bool {
        match self {
            TxError::InvalidAmount { .. }
            | TxError::SelfTransfer
            | TxError::BadSignature
            | TxError::FeeTooLow { .. }
            | TxError::TooLarge { .. }
            | TxError::CostOverflow => true,
            TxError::UnknownSender(_)
            | TxError::UnknownRecipient(_)
            | TxError::InsufficientBalance { .. }
            | TxError::WrongNonce { .. }
            | TxError::Duplicate(_)
            | TxError::BalanceOverflow(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> Transfer {
        UnsignedTransfer {
            to: Keypair::dev(1).address(),
            amount: Amount(5),
            fee: Amount(1),
            nonce: 0,
            memo: Memo::new(b"hi".to_vec()).unwrap(),
        }
        .sign(&Keypair::dev(0), &BlockHash::ZERO)
    }

    #[test]
    fn signature_is_bound_to_the_chain_and_every_field() {
        let chain = BlockHash::ZERO;
        let good = transfer();
        assert!(good.signature_is_valid(&chain));
        assert!(!good.signature_is_valid(&BlockHash(Hash512::digest(b"other chain"))));
        let mut changed = good.clone();
        changed.amount = Amount(6);
        assert!(!changed.signature_is_valid(&chain));
        let mut changed = good;
        changed.memo = Memo::new(b"ho".to_vec()).unwrap();
        assert!(!changed.signature_is_valid(&chain));
    }

    #[test]
    fn encoded_lengths_match_the_encoding() {
        let transfer = Transaction::Transfer(transfer());
        assert_eq!(transfer.encode().len(), transfer.encoded_len());
        assert_eq!(transfer.encoded_len(), TRANSFER_BASE_BYTES + 2);
        let coinbase = Transaction::Coinbase(Coinbase {
            height: Height(1),
            to: Keypair::dev(0).address(),
            amount: Amount(50),
            extra_nonce: 0,
        });
        assert_eq!(coinbase.encode().len(), COINBASE_BYTES);
    }

    #[test]
    fn memos_are_bounded_when_built_and_when_decoded() {
        assert_eq!(
            Memo::new(vec![0; MEMO_BYTES_MAX + 1]),
            Err(MemoTooLong(MEMO_BYTES_MAX + 1))
        );
        let long = postcard::to_stdvec(&vec![0u8; MEMO_BYTES_MAX + 1]).unwrap();
        assert!(postcard::from_bytes::<Memo>(&long).is_err());
        let fine = postcard::to_stdvec(&vec![0u8; MEMO_BYTES_MAX]).unwrap();
        assert_eq!(
            postcard::from_bytes::<Memo>(&fine).unwrap().len(),
            MEMO_BYTES_MAX
        );
    }

    #[test]
    fn wire_round_trip() {
        let tx = Transaction::Transfer(transfer());
        let bytes = postcard::to_stdvec(&tx).unwrap();
        assert_eq!(postcard::from_bytes::<Transaction>(&bytes).unwrap(), tx);
    }
}
