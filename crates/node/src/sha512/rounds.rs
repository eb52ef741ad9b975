//! The 80 rounds of SHA-512 (FIPS 180-4, section 6.4), once, for any [`Lanes`].

use super::lanes::Lanes;

/// The round constants.
pub const ROUND_CONSTANTS: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// One round: updates `d` and `h` in place; the caller rotates the names.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn round<V: Lanes>(a: V, b: V, c: V, d: &mut V, e: V, f: V, g: V, h: &mut V, k_plus_w: V) {
    let sigma1 = V::xor3(e.rotr(14), e.rotr(18), e.rotr(41));
    let t1 = h.add(sigma1).add(V::choose(e, f, g)).add(k_plus_w);
    let sigma0 = V::xor3(a.rotr(28), a.rotr(34), a.rotr(39));
    *d = d.add(t1);
    *h = t1.add(sigma0).add(V::majority(a, b, c));
}

/// Message word `t >= 16`, computed in place in the 16-word window.
#[inline(always)]
fn schedule<V: Lanes>(w: &mut [V; 16], t: usize) {
    let w15 = w[(t + 1) % 16];
    let w2 = w[(t + 14) % 16];
    let s0 = V::xor3(w15.rotr(1), w15.rotr(8), w15.shr(7));
    let s1 = V::xor3(w2.rotr(19), w2.rotr(61), w2.shr(6));
    w[t % 16] = w[t % 16].add(s0).add(w[(t + 9) % 16]).add(s1);
}

/// Compresses the message block `w` (16 words per lane, consumed) into `state`.
#[inline(always)]
pub fn compress<V: Lanes>(state: &mut [V; 8], w: &mut [V; 16]) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    // Fully unrolled with constant indices: the working variables only change names, and
    // the message window stays in registers.
    macro_rules! step {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $t:expr) => {{
            let t: usize = $t;
            if t >= 16 {
                schedule(w, t);
            }
            // SAFETY: `V` values exist only where their instructions run (see lanes.rs),
            // and one exists already: the state.
            let k = unsafe { V::splat(ROUND_CONSTANTS[t]) };
            round($a, $b, $c, &mut $d, $e, $f, $g, &mut $h, k.add(w[t % 16]));
        }};
    }
    macro_rules! eight {
        ($t:expr) => {{
            step!(a, b, c, d, e, f, g, h, $t);
            step!(h, a, b, c, d, e, f, g, $t + 1);
            step!(g, h, a, b, c, d, e, f, $t + 2);
            step!(f, g, h, a, b, c, d, e, $t + 3);
            step!(e, f, g, h, a, b, c, d, $t + 4);
            step!(d, e, f, g, h, a, b, c, $t + 5);
            step!(c, d, e, f, g, h, a, b, $t + 6);
            step!(b, c, d, e, f, g, h, a, $t + 7);
        }};
    }
    eight!(0);
    eight!(8);
    eight!(16);
    eight!(24);
    eight!(32);
    eight!(40);
    eight!(48);
    eight!(56);
    eight!(64);
    eight!(72);
    let out = [a, b, c, d, e, f, g, h];
    for (word, add) in state.iter_mut().zip(out) {
        *word = word.add(add);
    }
}
