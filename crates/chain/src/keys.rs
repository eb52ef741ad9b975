//! Addresses, signatures and key pairs (ed25519).
//!
//! An [`Address`] is an ed25519 public key. Dev account `i` has a key derived from `i` alone
//! ([`Keypair::dev`]), so every node can sign the seed's `MakeTransaction 0 1 5` for account 0
//! without a wallet file. Those keys are public knowledge: they exist for local networks and
//! tests, never for value.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Hash512, ParseHashError, parse_hex_array};

/// Length of an address (an ed25519 public key) in bytes.
pub const ADDRESS_BYTES: usize = 32;
/// Length of an ed25519 signature in bytes.
pub const SIGNATURE_BYTES: usize = 64;

/// An account's address: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; ADDRESS_BYTES]);

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddressError {
    /// Not 64 hex digits.
    #[error("an address is 64 hex digits: {0}")]
    Hex(ParseHashError),
    /// 64 hex digits, but not a point on the curve, so nobody could ever sign for it.
    #[error("those 64 hex digits are not a valid ed25519 public key")]
    NotAKey,
}

impl Address {
    /// The first `chars` hex digits, for logs and tables.
    pub fn short(&self, chars: usize) -> String {
        let mut text = hex::encode(self.0);
        text.truncate(chars);
        text
    }

    /// Whether `signature` over `message` was made by this address's key, under the
    /// consensus rule of [`crate::signature`] (canonical encodings, no small-order points,
    /// the cofactored equation).
    pub fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        crate::signature::verify(&crate::signature::Signed {
            key: self,
            message,
            signature,
        })
    }
}

impl FromStr for Address {
    type Err = ParseAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = parse_hex_array(text).map_err(ParseAddressError::Hex)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| ParseAddressError::NotAKey)?;
        Ok(Address(bytes))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.short(12))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::bytes::deserialize(deserializer).map(Address)
    }
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_BYTES]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &hex::encode(self.0)[..16])
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::bytes::deserialize(deserializer).map(Signature)
    }
}

/// A private key and its address.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// The key pair of a 32-byte secret seed.
    pub fn from_secret(secret: [u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// A fresh key pair from `rng` (the caller decides where randomness comes from).
    pub fn generate(rng: &mut impl rand::Rng) -> Keypair {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        Keypair::from_secret(secret)
    }

    /// The addresses of dev accounts `0..count`, handed to `f`. Each is derived once per
    /// process (on all cores) and remembered: a chain that funds ten thousand dev accounts
    /// lists them for every genesis it builds, and a derivation is a scalar multiplication.
    /// A pure function's memo, so nothing measured or decided depends on it.
    pub fn with_dev_addresses<R>(count: u64, f: impl FnOnce(&[Address]) -> R) -> R {
        static DERIVED: std::sync::Mutex<Vec<Address>> = std::sync::Mutex::new(Vec::new());
        let lock = || {
            DERIVED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let have = lock().len() as u64;
        if have < count {
            // Derived without the lock held: a thread of the pool that waits for this work
            // may meanwhile run another caller's, which must not find the lock taken by
            // the thread it runs on.
            let indices: Vec<u64> = (have..count).collect();
            let fresh = crate::parallel::map(&indices, |&index| Keypair::dev(index).address());
            let mut derived = lock();
            let known = derived.len() as u64;
            if known < count {
                derived.extend(fresh.into_iter().skip((known.max(have) - have) as usize));
            }
        }
        f(&lock()[..count as usize])
    }

    /// Dev account `index`: its secret is the first 32 bytes of
    /// SHA-512("powchain dev account" || index as u64 big-endian). Public knowledge.
    pub fn dev(index: u64) -> Keypair {
        let digest = Hash512::digest_parts(&[b"powchain dev account", &index.to_be_bytes()]);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&digest.0[..32]);
        Keypair::from_secret(secret)
    }

    /// The 32-byte secret seed (for a wallet file; never for the chain database).
    pub fn secret(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// This key's address.
    pub fn address(&self) -> Address {
        Address(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Keypair({:?})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_deterministic_and_distinct() {
        assert_eq!(Keypair::dev(3).address(), Keypair::dev(3).address());
        assert_ne!(Keypair::dev(3).address(), Keypair::dev(4).address());
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let key = Keypair::dev(0);
        let signature = key.sign(b"pay 5");
        assert!(key.address().verifies(b"pay 5", &signature));
        assert!(!key.address().verifies(b"pay 6", &signature));
        assert!(!Keypair::dev(1).address().verifies(b"pay 5", &signature));
        let mut bent = signature;
        bent.0[10] ^= 1;
        assert!(!key.address().verifies(b"pay 5", &bent));
    }

    #[test]
    fn address_parsing_checks_hex_and_curve() {
        let address = Keypair::dev(7).address();
        assert_eq!(address.to_string().parse::<Address>(), Ok(address));
        assert!(matches!(
            "12".parse::<Address>(),
            Err(ParseAddressError::Hex(_))
        ));
        // y = 2 does not decompress to a curve point.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            hex::encode(not_a_point).parse::<Address>(),
            Err(ParseAddressError::NotAKey)
        );
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = Keypair::dev(1);
        let printed = format!("{key:?}");
        assert!(!printed.contains(&hex::encode(key.secret())));
    }
}
