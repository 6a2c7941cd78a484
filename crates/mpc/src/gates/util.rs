//! Small helpers shared by the gates.

use crate::error::MpcError;
use ariann_fss::Party;
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};

/// `Ok` if `got == expected`, else a [`MpcError::SizeMismatch`] about `what`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), MpcError> {
    if expected == got {
        Ok(())
    } else {
        Err(MpcError::SizeMismatch {
            what,
            expected,
            got,
        })
    }
}

/// `Ok` if a key of party `key` is used by party `me`.
pub(crate) fn check_party(key: Party, me: Party) -> Result<(), MpcError> {
    if key == me {
        Ok(())
    } else {
        Err(MpcError::WrongParty {
            key: key.index(),
            me: me.index(),
        })
    }
}

/// `n` ring elements expanded from `seed` (AES-128 in counter mode,
/// [`ariann_fss::prg::ctr_blocks`]; two 64-bit words per block, lowest
/// first, each reduced to the ring).
pub(crate) fn expand_ring<R: Ring>(seed: u128, n: usize) -> Vec<R> {
    let mut blocks = ariann_fss::prg::ctr_blocks(seed, n.div_ceil(2));
    let out = blocks
        .iter()
        .flat_map(|b| [*b as u64, (*b >> 64) as u64])
        .take(n)
        .map(R::from_u64)
        .collect();
    zeroize::Zeroize::zeroize(&mut blocks);
    out
}

/// Additive sharing of the dealer vectors `vals`, where party `seeded`'s
/// shares are expanded from `seed` ([`expand_ring`], the vectors one after
/// the other) and the other party's are `v - share`: that party's key can
/// carry the 16-byte seed instead of its shares. Returns party 0's and
/// party 1's shares of each vector.
pub(crate) fn split_seeded<R: Ring>(
    vals: &[&[R]],
    seeded: Party,
    seed: u128,
) -> (Vec<Vec<R>>, Vec<Vec<R>>) {
    let total = vals.iter().map(|v| v.len()).sum();
    let mut from_seed = expand_ring::<R>(seed, total).into_iter();
    let (mut derived, mut rest) = (Vec::new(), Vec::new());
    for v in vals {
        let a: Vec<R> = from_seed.by_ref().take(v.len()).collect();
        let b: Vec<R> = v.iter().zip(&a).map(|(v, a)| v.wsub(*a)).collect();
        derived.push(a);
        rest.push(b);
    }
    match seeded {
        Party::P0 => (derived, rest),
        Party::P1 => (rest, derived),
    }
}

/// Additive sharing of dealer values: `(random, v - random)`.
pub(crate) fn split<R: Ring, G: Rng + CryptoRng + ?Sized>(
    vals: &[R],
    rng: &mut G,
) -> (Vec<R>, Vec<R>) {
    let a: Vec<R> = vals.iter().map(|_| R::random(rng)).collect();
    let b = vals.iter().zip(&a).map(|(v, a)| v.wsub(*a)).collect();
    (a, b)
}

/// This party's share of the public value `v`: `v` for party 0, zero for party 1.
#[inline]
pub(crate) fn public_share<R: Ring>(p: Party, v: R) -> R {
    if p == Party::P0 { v } else { R::ZERO }
}
