//! Helpers shared by the gate tests.
#![allow(dead_code, unreachable_pub)]

use ariann_ring::Ring;
use rand_chacha::ChaCha8Rng;

/// Additive shares of signed cleartext values.
pub fn shares<R: Ring>(xs: &[i64], rng: &mut ChaCha8Rng) -> (Vec<R>, Vec<R>) {
    let a: Vec<R> = xs.iter().map(|_| R::random(rng)).collect();
    let b = xs
        .iter()
        .zip(&a)
        .map(|(x, a)| R::from_i64(*x).wsub(*a))
        .collect();
    (a, b)
}

/// Reconstruction: elementwise sum of the two parties' shares.
pub fn add<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(x, y)| x.wadd(*y)).collect()
}
