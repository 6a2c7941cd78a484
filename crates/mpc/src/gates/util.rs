//! Small helpers shared by the gates.

use crate::codec::{Reader, put_ring};
use crate::error::MpcError;
use ariann_fss::Party;
use ariann_ring::{Ring, RingTensor};
use rand::{CryptoRng, Rng};
use zeroize::Zeroize;

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

/// Bytes of a share seed ([`split_halves`]).
pub(crate) const SEED_BYTES: usize = 16;

/// Elements of a key's ring vectors (`n` in all, the vectors one after the
/// other in body order) that party `p` expands from its seed: party 0 the
/// first `floor(n / 2)`, party 1 the last `floor(n / 2)` (see
/// [`split_halves`]).
pub(crate) fn seeded_range(p: Party, n: usize) -> core::ops::Range<usize> {
    match p {
        Party::P0 => 0..n / 2,
        Party::P1 => n - n / 2..n,
    }
}

/// Elements of the `n` that party `p`'s key writes: the rest, `ceil(n / 2)`
/// for either party (the middle element of an odd `n` in both keys).
pub(crate) fn written_range(p: Party, n: usize) -> core::ops::Range<usize> {
    match p {
        Party::P0 => n / 2..n,
        Party::P1 => 0..n - n / 2,
    }
}

/// Ring elements a key with `count` vectors of `m` elements in seeded
/// halves writes ([`written_range`]): `ceil(count m / 2)`, in the cost
/// model's arithmetic (errors on overflow).
pub(crate) fn written_cost(count: usize, m: usize) -> Result<u64, MpcError> {
    let n = crate::cost::mul(
        crate::cost::size(count)?,
        crate::cost::size(m)?,
        "seeded shares",
    )?;
    Ok(n.div_ceil(2))
}

/// Dealer: additive shares of a key's ring vectors `vals` (all of the same
/// length, `n` elements in all) in *seeded halves*: each party's shares of
/// its [`seeded_range`] are [`expand_ring`] of its seed (`seeds[0]` for
/// party 0), the other party's shares of those elements are the value minus
/// them, and the middle element of an odd `n` is split with `rng`. So each
/// key carries its seed and the `ceil(n / 2)` shares of its
/// [`written_range`], about half of them. Returns each party's shares,
/// vector by vector.
pub(crate) fn split_halves<R: Ring, G: Rng + CryptoRng + ?Sized>(
    vals: &[&[R]],
    seeds: [u128; 2],
    rng: &mut G,
) -> [Vec<Vec<R>>; 2] {
    let n: usize = vals.iter().map(|v| v.len()).sum();
    let (h, tail) = (n / 2, n - n / 2);
    let mut e0 = expand_ring::<R>(seeds[0], h);
    let mut e1 = expand_ring::<R>(seeds[1], h);
    let (mut p0, mut p1) = (
        Vec::with_capacity(vals.len()),
        Vec::with_capacity(vals.len()),
    );
    let mut i = 0;
    for v in vals {
        let (mut a, mut b) = (Vec::with_capacity(v.len()), Vec::with_capacity(v.len()));
        for x in v.iter() {
            let (s0, s1) = if i < h {
                (e0[i], x.wsub(e0[i]))
            } else if i >= tail {
                let s1 = e1[i - tail];
                (x.wsub(s1), s1)
            } else {
                let s0 = R::random(rng);
                (s0, x.wsub(s0))
            };
            a.push(s0);
            b.push(s1);
            i += 1;
        }
        p0.push(a);
        p1.push(b);
    }
    e0.zeroize();
    e1.zeroize();
    [p0, p1]
}

/// Appends party `p`'s [`written_range`] of its ring vectors `vecs` (body
/// order), as [`put_ring`] would write the concatenation's range.
pub(crate) fn put_written<R: Ring>(out: &mut Vec<u8>, p: Party, vecs: &[&[R]]) {
    let n: usize = vecs.iter().map(|v| v.len()).sum();
    let range = written_range(p, n);
    let mut at = 0;
    for v in vecs {
        let (lo, hi) = (range.start.max(at), range.end.min(at + v.len()));
        if lo < hi {
            put_ring(out, &v[lo - at..hi - at]);
        }
        at += v.len();
    }
}

/// Party `p`'s `count` ring vectors of `m` elements from its `seed` and the
/// [`written_range`] read from `rd` (the inverse of [`put_written`]).
pub(crate) fn read_halves<R: Ring>(
    rd: &mut Reader<'_>,
    p: Party,
    seed: u128,
    count: usize,
    m: usize,
    what: &str,
) -> Result<Vec<Vec<R>>, MpcError> {
    count
        .checked_mul(m)
        .ok_or_else(|| MpcError::Codec(format!("{what}: {count} x {m} elements overflow")))?;
    read_halves_of(rd, p, seed, &vec![m; count], what)
}

/// [`read_halves`] for vectors of the lengths `lens` (in body order). The
/// written elements are read (bounds-checked against the body) before the
/// seed is expanded, so a body cannot make the reader expand more than
/// about what it holds.
pub(crate) fn read_halves_of<R: Ring>(
    rd: &mut Reader<'_>,
    p: Party,
    seed: u128,
    lens: &[usize],
    what: &str,
) -> Result<Vec<Vec<R>>, MpcError> {
    let n = lens
        .iter()
        .try_fold(0usize, |a, l| a.checked_add(*l))
        .ok_or_else(|| MpcError::Codec(format!("{what}: {lens:?} elements overflow")))?;
    let written = rd.ring::<R>(written_range(p, n).len(), what)?;
    let seeded = expand_ring::<R>(seed, seeded_range(p, n).len());
    let mut all = match p {
        Party::P0 => seeded.into_iter().chain(written),
        Party::P1 => written.into_iter().chain(seeded),
    };
    Ok(lens
        .iter()
        .map(|m| all.by_ref().take(*m).collect())
        .collect())
}

/// Both parties' seeds and their shares of some tensors ([`split_tensors`]).
pub(crate) type SeededShares<R> = ([u128; 2], [Vec<RingTensor<R>>; 2]);

/// Dealer: both parties' shares of the tensors `vals` in seeded halves
/// ([`split_halves`] over their elements, in order, with fresh seeds from
/// `rng`), as tensors of the same shapes, and the two seeds.
pub(crate) fn split_tensors<R: Ring, G: Rng + CryptoRng + ?Sized>(
    vals: &[&RingTensor<R>],
    rng: &mut G,
) -> Result<SeededShares<R>, MpcError> {
    let seeds: [u128; 2] = [rng.random(), rng.random()];
    let slices: Vec<&[R]> = vals.iter().map(|t| t.as_slice()).collect();
    let [v0, v1] = split_halves(&slices, seeds, rng);
    let shaped = |vs: Vec<Vec<R>>| -> Result<Vec<RingTensor<R>>, MpcError> {
        vs.into_iter()
            .zip(vals)
            .map(|(v, t)| Ok(RingTensor::from_vec(t.shape(), v)?))
            .collect()
    };
    Ok((seeds, [shaped(v0)?, shaped(v1)?]))
}

/// Appends party `p`'s seeded tensors: its 16-byte `seed`, then its
/// [`written_range`] of the tensors' elements (in order). The shapes are
/// not written: the reader knows them ([`read_seeded_tensors`]).
pub(crate) fn put_seeded_tensors<R: Ring>(
    out: &mut Vec<u8>,
    p: Party,
    seed: u128,
    ts: &[&RingTensor<R>],
) {
    out.extend_from_slice(&seed.to_le_bytes());
    let slices: Vec<&[R]> = ts.iter().map(|t| t.as_slice()).collect();
    put_written(out, p, &slices);
}

/// Reads what [`put_seeded_tensors`] wrote for tensors of `shapes`: the
/// seed and the tensors.
pub(crate) fn read_seeded_tensors<R: Ring>(
    rd: &mut Reader<'_>,
    p: Party,
    shapes: &[&[usize]],
    what: &str,
) -> Result<(u128, Vec<RingTensor<R>>), MpcError> {
    let seed = rd.u128(what)?;
    let lens = shapes
        .iter()
        .map(|s| {
            s.iter()
                .try_fold(1usize, |a, d| a.checked_mul(*d))
                .ok_or_else(|| MpcError::Codec(format!("{what}: shape {s:?} overflows")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vs = read_halves_of::<R>(rd, p, seed, &lens, what)?;
    let ts = vs
        .into_iter()
        .zip(shapes)
        .map(|(v, s)| Ok(RingTensor::from_vec(s, v)?))
        .collect::<Result<Vec<_>, MpcError>>()?;
    Ok((seed, ts))
}

/// Key bytes of party `p`'s seeded tensors of `n` elements in all: its
/// [`written_range`] and the seed (what [`put_seeded_tensors`] writes).
pub(crate) fn seeded_tensor_bytes<R: Ring>(p: Party, n: usize) -> usize {
    written_range(p, n).len() * (R::BITS as usize / 8) + SEED_BYTES
}

/// [`seeded_tensor_bytes`] in the cost model's arithmetic, for `n` elements
/// of `w` bytes: `ceil(n / 2) w + 16` (errors on overflow).
pub(crate) fn seeded_tensor_cost(n: u64, w: u64, what: &'static str) -> Result<u64, MpcError> {
    crate::cost::add(
        crate::cost::mul(n.div_ceil(2), w, what)?,
        SEED_BYTES as u64,
        what,
    )
}

/// Reads the seeded part of a key body with `count` ring vectors: the
/// element count `m`, the 16-byte seed and party `p`'s [`written_range`]
/// (the layout [`put_written`] writes after `m` and the seed). Returns `m`,
/// the seed and the vectors.
pub(crate) fn read_seeded<R: Ring>(
    rd: &mut Reader<'_>,
    p: Party,
    count: usize,
    what: &str,
) -> Result<(usize, u128, Vec<Vec<R>>), MpcError> {
    let m = rd.count(count * (R::BITS as usize / 8) / 2, what)?;
    let seed = rd.u128(what)?;
    let ring = read_halves(rd, p, seed, count, m, what)?;
    Ok((m, seed, ring))
}

/// The `N` vectors of `v` as an array (an error names `what` otherwise).
pub(crate) fn into_array<R, const N: usize>(
    v: Vec<Vec<R>>,
    what: &str,
) -> Result<[Vec<R>; N], MpcError> {
    <[Vec<R>; N]>::try_from(v)
        .map_err(|v| MpcError::Codec(format!("{what}: {} ring vectors, not {N}", v.len())))
}

/// Key bytes of party `p`'s seeded shares of `count` vectors of `m`
/// elements: its [`written_range`] and the seed.
pub(crate) fn seeded_key_bytes<R: Ring>(p: Party, count: usize, m: usize) -> usize {
    written_range(p, count * m).len() * (R::BITS as usize / 8) + SEED_BYTES
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Seeded halves, for even and odd totals and both rings: the shares
    /// add up to the values, each party's seeded range is the expansion of
    /// its seed, both keys write `ceil(n / 2)` elements, and a party's
    /// written range read back with its seed gives its shares again.
    fn check<R: Ring>(lens: &[usize], rng: &mut ChaCha8Rng) {
        let vals: Vec<Vec<R>> = lens
            .iter()
            .map(|n| (0..*n).map(|_| R::random(rng)).collect())
            .collect();
        let refs: Vec<&[R]> = vals.iter().map(|v| &v[..]).collect();
        let seeds: [u128; 2] = [rng.random(), rng.random()];
        let shares = split_halves(&refs, seeds, rng);
        let n: usize = lens.iter().sum();
        let flat = |v: &[Vec<R>]| v.concat();
        let (s0, s1) = (flat(&shares[0]), flat(&shares[1]));
        let all = vals.concat();
        for i in 0..n {
            assert_eq!(s0[i].wadd(s1[i]), all[i], "element {i} of {lens:?}");
        }
        for (p, s) in [(Party::P0, &s0), (Party::P1, &s1)] {
            let range = seeded_range(p, n);
            let e = expand_ring::<R>(seeds[p.index() as usize], range.len());
            assert_eq!(&s[range.clone()], &e[..], "{p:?} seeded range of {lens:?}");
            let w = written_range(p, n);
            assert_eq!(w.len(), n.div_ceil(2));
            assert_eq!(w.len() + range.len(), n);
            let mut out = Vec::new();
            let vecs: Vec<&[R]> = shares[p.index() as usize].iter().map(|v| &v[..]).collect();
            put_written(&mut out, p, &vecs);
            assert_eq!(out.len(), w.len() * (R::BITS as usize / 8));
            let mut rd = Reader::new(&out);
            let back = read_halves_of::<R>(&mut rd, p, seeds[p.index() as usize], lens, "test")
                .expect("reads");
            assert_eq!(back, shares[p.index() as usize], "{p:?} read back {lens:?}");
            assert_eq!(rd.left(), 0);
            if lens.iter().all(|l| *l == lens[0]) && !lens.is_empty() {
                let mut rd = Reader::new(&out);
                let back = read_halves::<R>(
                    &mut rd,
                    p,
                    seeds[p.index() as usize],
                    lens.len(),
                    lens[0],
                    "test",
                )
                .expect("reads");
                assert_eq!(back, shares[p.index() as usize], "{p:?} read back {lens:?}");
                assert_eq!(rd.left(), 0);
            }
        }
        if let Some(m) = lens.first().filter(|m| lens.iter().all(|l| l == *m)) {
            assert_eq!(
                written_cost(lens.len(), *m).ok(),
                Some(n.div_ceil(2) as u64)
            );
        }
    }

    /// Seeded tensors (triples' bodies): shares of the right shapes that
    /// add up to the tensors, a body of a seed and half of the elements,
    /// read back to the same shares; a cut body is refused.
    #[test]
    fn seeded_tensors_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let shapes: [&[usize]; 3] = [&[2, 3], &[3, 1], &[5]];
        let ts: Vec<RingTensor<u64>> = shapes
            .iter()
            .map(|s| RingTensor::random(s, &mut rng))
            .collect();
        let refs: Vec<&RingTensor<u64>> = ts.iter().collect();
        let (seeds, shares) = split_tensors(&refs, &mut rng).expect("shapes");
        for (i, t) in ts.iter().enumerate() {
            assert_eq!(shares[0][i].shape(), t.shape());
            assert_eq!(&shares[0][i].add(&shares[1][i]).expect("shape"), t);
        }
        for p in [Party::P0, Party::P1] {
            let i = p.index() as usize;
            let mine: Vec<&RingTensor<u64>> = shares[i].iter().collect();
            let mut out = Vec::new();
            put_seeded_tensors(&mut out, p, seeds[i], &mine);
            // 14 elements: the seed and 7 of them.
            assert_eq!(out.len(), seeded_tensor_bytes::<u64>(p, 14));
            assert_eq!(out.len(), 16 + 7 * 8);
            let mut rd = Reader::new(&out);
            let (seed, back) =
                read_seeded_tensors::<u64>(&mut rd, p, &shapes, "test").expect("reads");
            assert_eq!((seed, &back), (seeds[i], &shares[i]));
            assert_eq!(rd.left(), 0);
            for cut in 0..out.len() {
                let mut rd = Reader::new(&out[..cut]);
                assert!(read_seeded_tensors::<u64>(&mut rd, p, &shapes, "test").is_err());
            }
        }
    }

    #[test]
    fn seeded_halves_share_and_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for lens in [
            vec![],
            vec![0, 0, 0],
            vec![1],
            vec![1, 1, 1],
            vec![5, 5, 5],
            vec![4, 4, 4, 4],
            vec![7; 8],
            vec![3, 1, 2],
        ] {
            check::<u64>(&lens, &mut rng);
            check::<u32>(&lens, &mut rng);
        }
    }
}
