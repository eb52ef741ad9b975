//! The signature rule, one signature at a time or many at once, with one answer.
//!
//! A transfer's signature is ed25519 over its signing bytes. What makes a signature valid is
//! a consensus rule: every node must answer the same for every signature, or the network
//! splits on the first one they disagree on. So the rule is written down here, and the single
//! check and the batch check are two ways of computing **the same** rule:
//!
//! - `A` (the sender's key) and `R` (the signature's first half) are canonical encodings
//!   (`y < p`) of curve points, neither of small order (which also refuses the identity);
//! - `s` (the second half) is a canonical scalar (`s < ℓ`);
//! - with `k = SHA-512(R ‖ A ‖ message) mod ℓ`, the **cofactored** equation holds:
//!   `[8]([s]B − R − [k]A) = 0`.
//!
//! Why not ed25519-dalek's own pair (`verify_strict` and `verify_batch`): the strict single
//! check is *cofactorless* (`[s]B − [k]A = R` exactly), while a batch can only be checked
//! cofactorless with a random combination, which lets a signature whose `R` or `A` carries a
//! small torsion component pass a batch the single check refuses, in a share of batches
//! (half, for a component of order 2). dalek derives the combination from the batch's
//! contents, so anyone could grind a transfer that passes in some blocks' batches and fails
//! in others, and nodes whose caches leave different transfers to batch would disagree. The
//! cofactored equation kills every torsion component in both checks, so the batch (with
//! 128-bit random weights, nonzero) refuses exactly what a single check refuses, but for a
//! chance of 2⁻¹²⁸ per try. This is the rule Zcash adopted for the same reason (ZIP 215),
//! made stricter in one place: non-canonical encodings are refused, which costs a comparison.
//! Every signature an honest ed25519 signer makes is valid under it.
//!
//! The weights are derived from the whole batch (its `k`s and `s`es) by SHA-512, so a run
//! is reproducible; grinding them cannot help, because with torsion gone the batch sum is
//! in a group of prime order, where one bad term can never be cancelled and two can be only
//! by guessing a 128-bit weight ratio.
//!
//! [`first_invalid`] is what blocks and messages use: it checks batches in parallel across
//! the cores (rayon), and only when one fails looks at signatures one by one, to name the
//! first bad one. Its answer does not depend on the number of threads or their timing.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use crate::keys::{Address, Signature};

/// Fewest signatures worth a batch of their own on another core: below this, splitting
/// costs more in lost batching than the second core gives back.
pub const PARALLEL_BATCH_MIN: usize = 32;

/// One signature to check: who signed, the bytes signed, and the signature.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// The signer's key.
    pub key: &'a Address,
    /// The signed bytes.
    pub message: &'a [u8],
    /// The signature over them.
    pub signature: &'a Signature,
}

/// A signature decoded into curve points and scalars, its encodings found canonical and
/// its points not of small order.
struct Decoded {
    key: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    /// `SHA-512(R ‖ A ‖ message) mod ℓ`.
    k: Scalar,
}

/// `p = 2²⁵⁵ − 19`, little-endian: the field's modulus, for the canonical-encoding check.
const FIELD_MODULUS: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Whether the `y` coordinate encoded in `bytes` (the sign bit aside) is below `p`.
fn y_is_canonical(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    y[31] &= 0x7f;
    // Little-endian comparison, most significant byte first.
    for index in (0..32).rev() {
        if y[index] != FIELD_MODULUS[index] {
            return y[index] < FIELD_MODULUS[index];
        }
    }
    false
}

/// A point of the prime-order part of the curve's group (or with a torsion component, which
/// the cofactored equation ignores), from a canonical encoding; `None` for anything else or
/// for a point of small order.
fn decode_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !y_is_canonical(bytes) {
        return None;
    }
    let point = CompressedEdwardsY(*bytes).decompress()?;
    (!point.is_small_order()).then_some(point)
}

fn decode(signed: &Signed<'_>) -> Option<Decoded> {
    let key = decode_point(&signed.key.0)?;
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&signed.signature.0[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signed.signature.0[32..]);
    let r = decode_point(&r_bytes)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let mut hasher = Sha512::new();
    hasher.update(r_bytes);
    hasher.update(signed.key.0);
    hasher.update(signed.message);
    let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
    Some(Decoded { key, r, s, k })
}

/// Whether one signature is valid under the rule above.
pub fn verify(signed: &Signed<'_>) -> bool {
    let Some(decoded) = decode(signed) else {
        return false;
    };
    // [s]B − [k]A − R, times the cofactor.
    let sum =
        EdwardsPoint::vartime_double_scalar_mul_basepoint(&decoded.k, &-decoded.key, &decoded.s)
            - decoded.r;
    sum.mul_by_cofactor().is_identity()
}

/// Whether every signature in `batch` is valid: the same answer as [`verify`] on each, but
/// for a chance of 2⁻¹²⁸, in about half the time for a batch of 64 or more.
pub fn verify_batch(batch: &[Signed<'_>]) -> bool {
    let Some(decoded) = batch.iter().map(decode).collect::<Option<Vec<_>>>() else {
        return false;
    };
    let weights = weights(&decoded);
    // Σ zᵢ([sᵢ]B − Rᵢ − [kᵢ]Aᵢ) = [Σ zᵢsᵢ]B − Σ [zᵢ]Rᵢ − Σ [zᵢkᵢ]Aᵢ
    let base: Scalar = decoded.iter().zip(&weights).map(|(d, z)| z * d.s).sum();
    let scalars = std::iter::once(base)
        .chain(weights.iter().map(|z| -z))
        .chain(decoded.iter().zip(&weights).map(|(d, z)| -(z * d.k)));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(decoded.iter().map(|d| d.r))
        .chain(decoded.iter().map(|d| d.key));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// One nonzero 128-bit weight per signature, derived from the whole batch.
fn weights(decoded: &[Decoded]) -> Vec<Scalar> {
    let mut hasher = Sha512::new();
    hasher.update(b"powchain batch weights");
    hasher.update((decoded.len() as u64).to_le_bytes());
    for d in decoded {
        hasher.update(d.k.as_bytes());
        hasher.update(d.s.as_bytes());
    }
    let seed: [u8; 64] = hasher.finalize().into();
    decoded
        .iter()
        .enumerate()
        .map(|(index, _)| {
            let mut hasher = Sha512::new();
            hasher.update(seed);
            hasher.update((index as u64).to_le_bytes());
            let digest: [u8; 64] = hasher.finalize().into();
            let mut half = [0u8; 16];
            half.copy_from_slice(&digest[..16]);
            // A zero weight would let its term through unchecked.
            Scalar::from(u128::from_le_bytes(half).max(1))
        })
        .collect()
}

/// The index of the first invalid signature in `signed`, or `None` when all are valid.
///
/// Batches run in parallel, one per core, when there are enough signatures; a failed batch
/// is searched one signature at a time (in parallel too) for the first bad one. Everything
/// before the index returned was verified valid.
pub fn first_invalid(signed: &[Signed<'_>]) -> Option<usize> {
    if signed.is_empty() {
        return None;
    }
    let threads = rayon::current_num_threads().max(1);
    let batches = threads.min(signed.len() / PARALLEL_BATCH_MIN).max(1);
    let batch_len = signed.len().div_ceil(batches);
    let all_valid = if batches == 1 {
        verify_batch(signed)
    } else {
        signed.par_chunks(batch_len).all(verify_batch)
    };
    if all_valid {
        None
    } else {
        signed.par_iter().position_first(|one| !verify(one))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey};

    /// A key whose secret scalar the test knows, to make signatures by hand.
    struct HandKey {
        scalar: Scalar,
        point: EdwardsPoint,
    }

    impl HandKey {
        fn new(seed: u8) -> HandKey {
            let scalar = Scalar::from_bytes_mod_order_wide(&Sha512::digest([seed, 7]).into());
            HandKey {
                scalar,
                point: EdwardsPoint::mul_base(&scalar),
            }
        }

        /// A signature with nonce point `[r]B + r_torsion`, under the key `A + key_torsion`.
        fn sign(
            &self,
            message: &[u8],
            r_torsion: EdwardsPoint,
            key_torsion: EdwardsPoint,
        ) -> (Address, Signature) {
            let key = (self.point + key_torsion).compress().to_bytes();
            let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(message).into());
            let r_point = (EdwardsPoint::mul_base(&r) + r_torsion)
                .compress()
                .to_bytes();
            let mut hasher = Sha512::new();
            hasher.update(r_point);
            hasher.update(key);
            hasher.update(message);
            let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
            let s = r + k * self.scalar;
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r_point);
            signature[32..].copy_from_slice(s.as_bytes());
            (Address(key), Signature(signature))
        }
    }

    struct Owned {
        key: Address,
        message: Vec<u8>,
        signature: Signature,
    }

    impl Owned {
        fn honest(index: u32) -> Owned {
            let signing = SigningKey::from_bytes(
                &Sha512::digest(index.to_le_bytes())[..32]
                    .try_into()
                    .unwrap(),
            );
            let message = format!("transfer {index}").into_bytes();
            Owned {
                key: Address(signing.verifying_key().to_bytes()),
                signature: Signature(signing.sign(&message).to_bytes()),
                message,
            }
        }

        fn signed(&self) -> Signed<'_> {
            Signed {
                key: &self.key,
                message: &self.message,
                signature: &self.signature,
            }
        }
    }

    fn signed_all(owned: &[Owned]) -> Vec<Signed<'_>> {
        owned.iter().map(Owned::signed).collect()
    }

    #[test]
    fn honest_signatures_pass_alone_and_together() {
        let owned: Vec<Owned> = (0..100).map(Owned::honest).collect();
        assert!(owned.iter().all(|o| verify(&o.signed())));
        assert!(verify_batch(&signed_all(&owned)));
        assert_eq!(first_invalid(&signed_all(&owned)), None);
        assert_eq!(first_invalid(&[]), None);
    }

    #[test]
    fn a_bad_signature_anywhere_is_found_and_named() {
        for bad in [0, 1, 31, 32, 63, 64, 99] {
            let mut owned: Vec<Owned> = (0..100).map(Owned::honest).collect();
            owned[bad].message.push(b'!');
            assert!(!verify_batch(&signed_all(&owned)), "bad at {bad}");
            assert_eq!(first_invalid(&signed_all(&owned)), Some(bad));
        }
        // Two bad ones: the first is named.
        let mut owned: Vec<Owned> = (0..100).map(Owned::honest).collect();
        owned[70].signature.0[40] ^= 1;
        owned[20].signature.0[3] ^= 1;
        assert_eq!(first_invalid(&signed_all(&owned)), Some(20));
    }

    #[test]
    fn encodings_that_are_not_canonical_or_of_small_order_are_refused() {
        let honest = Owned::honest(1);
        // s + ℓ: the same scalar, a second encoding.
        let mut high_s = Owned::honest(1);
        let s = Scalar::from_canonical_bytes(high_s.signature.0[32..].try_into().unwrap()).unwrap();
        let ell: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let total = u16::from(s.as_bytes()[i]) + u16::from(ell[i]) + carry;
            sum[i] = total as u8;
            carry = total >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ fits 256 bits");
        high_s.signature.0[32..].copy_from_slice(&sum);
        // The identity as R, then as the key: both of small order.
        let mut identity_r = Owned::honest(1);
        identity_r.signature.0[..32].copy_from_slice(EdwardsPoint::default().compress().as_bytes());
        let mut identity_key = Owned::honest(1);
        identity_key.key = Address(EdwardsPoint::default().compress().to_bytes());
        // y = p + 1 encodes the identity's y again, not canonically.
        let mut non_canonical_key = Owned::honest(1);
        let mut y = FIELD_MODULUS;
        y[0] += 1;
        non_canonical_key.key = Address(y);
        for refused in [&high_s, &identity_r, &identity_key, &non_canonical_key] {
            assert!(!verify(&refused.signed()));
            assert!(!verify_batch(&[honest.signed(), refused.signed()]));
        }
        assert!(verify(&honest.signed()));
    }

    /// The reason for the rule: a nonce point with a torsion component. Our single and batch
    /// checks agree on it in every batch; dalek's strict check refuses it while dalek's batch
    /// passes it in some batches and not in others.
    #[test]
    fn torsion_gets_one_answer_from_both_checks() {
        let hand = HandKey::new(3);
        let torsion = EIGHT_TORSION[1]; // of order 8
        let (key, signature) = hand.sign(b"mixed R", torsion, EdwardsPoint::default());
        let mixed = Owned {
            key,
            message: b"mixed R".to_vec(),
            signature,
        };
        let (key, signature) = hand.sign(b"mixed A", EdwardsPoint::default(), torsion);
        let mixed_key = Owned {
            key,
            message: b"mixed A".to_vec(),
            signature,
        };
        assert!(verify(&mixed.signed()) && verify(&mixed_key.signed()));
        let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&mixed.key.0).unwrap();
        let dalek_signature = ed25519_dalek::Signature::from_bytes(&mixed.signature.0);
        assert!(
            dalek_key
                .verify_strict(&mixed.message, &dalek_signature)
                .is_err()
        );

        let (mut dalek_passed, mut dalek_failed) = (0, 0);
        for batch in 0..64u32 {
            let mut owned: Vec<Owned> = (0..4).map(|i| Owned::honest(batch * 4 + i)).collect();
            owned.push(Owned {
                key: mixed.key,
                message: mixed.message.clone(),
                signature: mixed.signature,
            });
            let signed = signed_all(&owned);
            assert!(verify_batch(&signed), "ours passes it in batch {batch}");
            assert_eq!(first_invalid(&signed), None);
            let messages: Vec<&[u8]> = owned.iter().map(|o| o.message.as_slice()).collect();
            let signatures: Vec<ed25519_dalek::Signature> = owned
                .iter()
                .map(|o| ed25519_dalek::Signature::from_bytes(&o.signature.0))
                .collect();
            let keys: Vec<ed25519_dalek::VerifyingKey> = owned
                .iter()
                .map(|o| ed25519_dalek::VerifyingKey::from_bytes(&o.key.0).unwrap())
                .collect();
            match ed25519_dalek::verify_batch(&messages, &signatures, &keys) {
                Ok(()) => dalek_passed += 1,
                Err(_) => dalek_failed += 1,
            }
        }
        assert!(
            dalek_passed > 0 && dalek_failed > 0,
            "{dalek_passed} / {dalek_failed}"
        );
    }

    #[test]
    fn the_answer_does_not_depend_on_how_batches_are_split() {
        let mut owned: Vec<Owned> = (0..300).map(Owned::honest).collect();
        owned[250].message[0] ^= 1;
        let signed = signed_all(&owned);
        for threads in [1, 2, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(|| first_invalid(&signed)), Some(250));
            assert_eq!(pool.install(|| first_invalid(&signed[..250])), None);
        }
    }
}
