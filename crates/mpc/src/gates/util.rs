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
