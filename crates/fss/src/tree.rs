//! The fast batched paths shared by DPF and DCF: many independent keys, one
//! point each.
//!
//! Keys are processed in groups of [`EVAL_WIDTH`] (evaluation) or
//! [`GEN_WIDTH`] (generation), level by level: the seed blocks of every key in
//! the group go to AES in one call, so the AES pipeline has that many
//! independent blocks in flight instead of waiting on one key's latency chain.
//! Rayon splits a batch into chunks of [`CHUNK`] keys. Nothing in the
//! per-level loops allocates. The algorithm is exactly that of
//! [`crate::reference`]; tests check bit-identical keys and outputs.

use crate::error::FssError;
use crate::keys::{Corrections, GROUP, Kind, Party, TreeKeys, TreeParams, cw_index};
use crate::payload::{Payload, per_block};
use crate::prg::{HashJob, Hasher, TWEAK_LEAF, TWEAK_SEED, TWEAK_V, ctr_blocks, prg, sigma};
use rand::{CryptoRng, Rng};
use rayon::prelude::*;
use std::sync::Arc;

/// Keys interleaved per AES call during evaluation (one layout group).
pub(crate) const EVAL_WIDTH: usize = GROUP;
/// Keys interleaved per AES call during generation (4 or 8 blocks per key per level).
pub(crate) const GEN_WIDTH: usize = 16;
/// Keys per rayon task.
pub(crate) const CHUNK: usize = 2048;
const _: () = assert!(
    CHUNK.is_multiple_of(GROUP),
    "chunks must hold whole layout groups"
);

/// Splits `v` into `nchunks` consecutive pieces of `per` elements (the last
/// one shorter); works when `per == 0` or `v` is empty.
fn chunks_of<T>(v: &mut [T], per: usize, nchunks: usize) -> Vec<&mut [T]> {
    let mut out = Vec::with_capacity(nchunks);
    let mut rest = v;
    for _ in 0..nchunks {
        let take = per.min(rest.len());
        let (a, b) = rest.split_at_mut(take);
        out.push(a);
        rest = b;
    }
    out
}

/// Draws a root key per party from `rng` and expands each into one root
/// seed per key ([`ctr_blocks`]): `([key 0, key 1], [seed 0, seed 1] per key)`.
pub(crate) fn draw_roots<R: Rng + CryptoRng + ?Sized>(
    len: usize,
    rng: &mut R,
) -> ([u128; 2], Vec<[u128; 2]>) {
    let root_keys: [u128; 2] = [rng.random(), rng.random()];
    let mut s0 = ctr_blocks(root_keys[0], len);
    let mut s1 = ctr_blocks(root_keys[1], len);
    let roots = s0.iter().zip(&s1).map(|(a, b)| [*a, *b]).collect();
    zeroize::Zeroize::zeroize(&mut s0);
    zeroize::Zeroize::zeroize(&mut s1);
    (root_keys, roots)
}

/// Checks a batch of special points and payloads.
pub(crate) fn check_gen_inputs<P>(
    params: TreeParams,
    alphas: &[u64],
    betas: &[P],
) -> Result<(), FssError> {
    if alphas.len() != betas.len() {
        return Err(FssError::LengthMismatch {
            what: "betas (one per alpha)",
            expected: alphas.len(),
            got: betas.len(),
        });
    }
    let m = params.domain_mask();
    if let Some(index) = alphas.iter().position(|a| a & !m != 0) {
        return Err(FssError::OutOfDomain {
            what: "alpha",
            index,
            n: params.n(),
        });
    }
    Ok(())
}

/// Generates both parties' keys from the given root seeds (deterministic).
pub(crate) fn gen_from_roots<P: Payload>(
    kind: Kind,
    params: TreeParams,
    alphas: &[u64],
    betas: &[P],
    roots: &[[u128; 2]],
) -> Result<(TreeKeys<P>, TreeKeys<P>), FssError> {
    check_gen_inputs(params, alphas, betas)?;
    if roots.len() != alphas.len() {
        return Err(FssError::LengthMismatch {
            what: "root seeds (one pair per alpha)",
            expected: alphas.len(),
            got: roots.len(),
        });
    }
    let len = alphas.len();
    let mut cw = Corrections::<P>::empty(kind, params, len);
    let l = params.levels();
    let lb = params.leaf_blocks::<P>();
    let nchunks = len.div_ceil(CHUNK);
    let vl = if kind == Kind::Dcf { l } else { 0 };
    let cs = chunks_of(&mut cw.cw_seed, CHUNK * l, nchunks);
    let ct = chunks_of(&mut cw.cw_t, CHUNK * l, nchunks);
    let cv = chunks_of(&mut cw.cw_v, CHUNK * vl, nchunks);
    let cl = chunks_of(&mut cw.leaf, CHUNK * lb, nchunks);
    cs.into_par_iter()
        .zip(ct)
        .zip(cv)
        .zip(cl)
        .enumerate()
        .for_each(|(c, (((cs, ct), cv), cl))| {
            let lo = c * CHUNK;
            let hi = (lo + CHUNK).min(len);
            prg().run(GenJob {
                kind,
                params,
                alphas: &alphas[lo..hi],
                betas: &betas[lo..hi],
                roots: &roots[lo..hi],
                cw_seed: cs,
                cw_t: ct,
                cw_v: cv,
                leaf: cl,
            });
        });
    let cw = Arc::new(cw);
    let keys = |party: Party| TreeKeys {
        kind,
        party,
        params,
        seeds: roots
            .iter()
            .map(|r| r[usize::from(party.index())])
            .collect(),
        root_key: None,
        cw: Arc::clone(&cw),
    };
    Ok((keys(Party::P0), keys(Party::P1)))
}

/// Key generation for one chunk of keys (chunk-local slices of the outputs).
struct GenJob<'a, P: Payload> {
    kind: Kind,
    params: TreeParams,
    alphas: &'a [u64],
    betas: &'a [P],
    roots: &'a [[u128; 2]],
    cw_seed: &'a mut [u128],
    cw_t: &'a mut [u8],
    cw_v: &'a mut [P],
    leaf: &'a mut [u128],
}

impl<P: Payload> HashJob for GenJob<'_, P> {
    type Output = ();
    fn run<H: Hasher>(self, h: &mut H) {
        match self.kind {
            Kind::Dcf => gen_chunk::<P, H, true>(self, h),
            Kind::Dpf => gen_chunk::<P, H, false>(self, h),
        }
    }
}

fn gen_chunk<P: Payload, H: Hasher, const DCF: bool>(job: GenJob<'_, P>, h: &mut H) {
    let GenJob {
        kind,
        params,
        alphas,
        betas,
        roots,
        cw_seed,
        cw_t,
        cw_v,
        leaf,
    } = job;
    let n = params.n() as usize;
    let l = params.levels();
    let lb = params.leaf_blocks::<P>();
    let mask = TreeParams::seed_mask::<P>(kind);
    let vb = DCF && P::BITS > 1;
    let nu_mask = (1u64 << params.nu()) - 1;
    // Both parties' leaf blocks for a group: block j of party b of key k at (2k + b) lb + j.
    let mut leaf_buf = vec![0u128; 2 * GEN_WIDTH * lb];
    // Level blocks: seed block of (key k, party b, side) at 4k + 2b + side,
    // payload block (wide DCF) at 4c + 4k + 2b + side.
    let mut buf = [0u128; 8 * GEN_WIDTH];
    // Writes the inputs of H below seed `s` of party `b` of key `k`: both
    // children at a level, or the whole leaf after the last level.
    let prep = |buf: &mut [u128],
                leaf_buf: &mut [u128],
                k: usize,
                c: usize,
                b: usize,
                s: u128,
                last: bool| {
        let sg = sigma(s);
        if last {
            for j in 0..lb {
                leaf_buf[(2 * k + b) * lb + j] = sg ^ (TWEAK_LEAF + j as u128);
            }
        } else {
            for side in 0..2 {
                buf[4 * k + 2 * b + side] = sg ^ TWEAK_SEED[side];
                if vb {
                    buf[4 * c + 4 * k + 2 * b + side] = sg ^ TWEAK_V[side];
                }
            }
        }
    };

    for (g, alpha_g) in alphas.chunks(GEN_WIDTH).enumerate() {
        let base = g * GEN_WIDTH;
        let c = alpha_g.len();
        let mut t = [[false; GEN_WIDTH]; 2];
        let mut v_alpha = [P::default(); GEN_WIDTH];
        for k in 0..c {
            for (b, root) in roots[base + k].iter().enumerate() {
                prep(&mut buf, &mut leaf_buf, k, c, b, *root, l == 0);
            }
            t[1][k] = true;
        }
        for i in 0..l {
            let shift = n - 1 - i;
            let last = i + 1 == l;
            h.hash(&mut buf[..if vb { 8 * c } else { 4 * c }]);
            for k in 0..c {
                let a = ((alpha_g[k] >> shift) & 1) as usize;
                let (keep, lose) = (a, 1 - a);
                let blk = |b: usize, side: usize| buf[4 * k + 2 * b + side];
                let conv = |b: usize, side: usize| -> P {
                    if vb {
                        P::from_block(buf[4 * c + 4 * k + 2 * b + side], 0)
                    } else {
                        P::from_block(blk(b, side) >> 1, 0)
                    }
                };
                let s_cw = (blk(0, lose) ^ blk(1, lose)) & mask;
                let tl = (blk(0, 0) ^ blk(1, 0)) & 1 == 1;
                let tr = (blk(0, 1) ^ blk(1, 1)) & 1 == 1;
                let t_cw = [tl ^ (a == 1) ^ true, tr ^ (a == 1)];
                let idx = cw_index(base + k, i, alphas.len(), l);
                if DCF {
                    let t1 = t[1][k];
                    // V_CW = (-1)^t1 [v1^Lose - v0^Lose - V_alpha] (+ (-1)^t1 beta if Lose = L)
                    let v_cw = conv(1, lose)
                        .sub(conv(0, lose))
                        .sub(v_alpha[k])
                        .add(betas[base + k].select(lose == 0))
                        .cond_neg(t1);
                    v_alpha[k] = v_alpha[k]
                        .sub(conv(1, keep))
                        .add(conv(0, keep))
                        .add(v_cw.cond_neg(t1));
                    cw_v[idx] = v_cw;
                }
                cw_seed[idx] = s_cw;
                cw_t[idx] = u8::from(t_cw[0]) | (u8::from(t_cw[1]) << 1);
                let kb = [blk(0, keep), blk(1, keep)];
                for b in 0..2 {
                    let tb = t[b][k];
                    let next = (kb[b] & mask) ^ (s_cw & u128::from(tb).wrapping_neg());
                    t[b][k] = (kb[b] & 1 == 1) ^ (tb & t_cw[keep]);
                    prep(&mut buf, &mut leaf_buf, k, c, b, next, last);
                }
            }
        }
        // Leaf: both parties' full leaf vectors.
        h.hash(&mut leaf_buf[..2 * c * lb]);
        for k in 0..c {
            let out = &mut leaf[(base + k) * lb..(base + k + 1) * lb];
            let c0 = &leaf_buf[2 * k * lb..(2 * k + 1) * lb];
            let c1 = &leaf_buf[(2 * k + 1) * lb..(2 * k + 2) * lb];
            leaf_correction::<P, DCF>(
                params,
                out,
                c0,
                c1,
                (alpha_g[k] & nu_mask) as usize,
                betas[base + k],
                v_alpha[k],
                t[1][k],
            );
        }
    }
}

/// The leaf correction vector, element `j` of `2^nu`:
/// DPF `(-1)^t1 [beta [j == low] - c0_j + c1_j]`,
/// DCF `(-1)^t1 [c1_j - c0_j - V_alpha + beta [j < low]]`,
/// where `c0`, `c1` are the parties' leaf expansions. For `Z_2` whole blocks
/// are computed at once (128 elements per block).
#[allow(clippy::too_many_arguments)]
#[inline]
fn leaf_correction<P: Payload, const DCF: bool>(
    params: TreeParams,
    out: &mut [u128],
    c0: &[u128],
    c1: &[u128],
    low: usize,
    beta: P,
    v_alpha: P,
    t1: bool,
) {
    let len = params.leaf_len();
    if P::BITS == 1 {
        let bit = |p: P| {
            let mut b = 0u128;
            p.put_in_block(&mut b, 0);
            (b & 1).wrapping_neg()
        };
        let ones_below = |cnt: usize| -> u128 {
            if cnt >= 128 {
                u128::MAX
            } else {
                (1u128 << cnt) - 1
            }
        };
        let (beta_m, va_m) = (bit(beta), bit(v_alpha));
        for (bi, o) in out.iter_mut().enumerate() {
            let first = 128 * bi;
            let valid = ones_below(len - first);
            let fixed = if DCF {
                (va_m & valid) ^ (beta_m & ones_below(low.saturating_sub(first)))
            } else if low / 128 == bi {
                beta_m & (1u128 << (low % 128))
            } else {
                0
            };
            *o = (c0[bi] ^ c1[bi] ^ fixed) & valid;
        }
        return;
    }
    let pb = per_block::<P>();
    for j in 0..len {
        let e0 = P::from_block(c0[j / pb], j % pb);
        let e1 = P::from_block(c1[j / pb], j % pb);
        let val = if DCF {
            e1.sub(e0)
                .sub(v_alpha)
                .add(beta.select(j < low))
                .cond_neg(t1)
        } else {
            beta.select(j == low).sub(e0).add(e1).cond_neg(t1)
        };
        val.put_in_block(&mut out[j / pb], j % pb);
    }
}

/// Checks evaluation inputs.
pub(crate) fn check_eval_inputs<P: Payload>(
    keys: &TreeKeys<P>,
    xs: &[u64],
    out: &[P],
) -> Result<(), FssError> {
    if xs.len() != keys.len() {
        return Err(FssError::LengthMismatch {
            what: "evaluation points (one per key)",
            expected: keys.len(),
            got: xs.len(),
        });
    }
    if out.len() != keys.len() {
        return Err(FssError::LengthMismatch {
            what: "output slice (one per key)",
            expected: keys.len(),
            got: out.len(),
        });
    }
    let m = keys.params.domain_mask();
    if let Some(index) = xs.iter().position(|x| x & !m != 0) {
        return Err(FssError::OutOfDomain {
            what: "x",
            index,
            n: keys.params.n(),
        });
    }
    Ok(())
}

/// Evaluates key `i` at `xs[i]` for every key, on the rayon pool.
pub(crate) fn eval_par<P: Payload>(
    keys: &TreeKeys<P>,
    xs: &[u64],
    out: &mut [P],
) -> Result<(), FssError> {
    check_eval_inputs(keys, xs, out)?;
    out.par_chunks_mut(CHUNK)
        .zip(xs.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, (out, xs))| {
            prg().run(EvalJob {
                keys,
                start: c * CHUNK,
                xs,
                out,
            })
        });
    Ok(())
}

/// Evaluates key `i` at `xs[i]` for every key, on the calling thread.
pub(crate) fn eval_seq<P: Payload>(
    keys: &TreeKeys<P>,
    xs: &[u64],
    out: &mut [P],
) -> Result<(), FssError> {
    check_eval_inputs(keys, xs, out)?;
    prg().run(EvalJob {
        keys,
        start: 0,
        xs,
        out,
    });
    Ok(())
}

/// Evaluation of keys `start..start + xs.len()` (`start` a multiple of [`GROUP`]).
struct EvalJob<'a, P: Payload> {
    keys: &'a TreeKeys<P>,
    start: usize,
    xs: &'a [u64],
    out: &'a mut [P],
}

impl<P: Payload> HashJob for EvalJob<'_, P> {
    type Output = ();
    fn run<H: Hasher>(self, h: &mut H) {
        match self.keys.kind {
            Kind::Dcf => eval_chunk::<P, H, true>(self, h),
            Kind::Dpf => eval_chunk::<P, H, false>(self, h),
        }
    }
}

fn eval_chunk<P: Payload, H: Hasher, const DCF: bool>(job: EvalJob<'_, P>, h: &mut H) {
    let EvalJob {
        keys,
        start,
        xs,
        out,
    } = job;
    let kind = if DCF { Kind::Dcf } else { Kind::Dpf };
    let params = keys.params;
    let n = params.n() as usize;
    let l = params.levels();
    let lb = params.leaf_blocks::<P>();
    let pb = per_block::<P>();
    let mask = TreeParams::seed_mask::<P>(kind);
    let vb = DCF && P::BITS > 1;
    let neg = keys.party.is_one();
    let nu_mask = (1u64 << params.nu()) - 1;
    let mut buf = [0u128; 2 * EVAL_WIDTH];
    // Input of H for the node below seed `s` on the path of `x` at level `i`
    // (or of its leaf block when `i == l`): written as soon as `s` is known, so
    // each level is one pass over the group after one batched hash.
    let prep = |buf: &mut [u128], k: usize, c: usize, s: u128, x: u64, i: usize| {
        let sg = sigma(s);
        if i < l {
            let side = ((x >> (n - 1 - i)) & 1) as usize;
            buf[k] = sg ^ TWEAK_SEED[side];
            if vb {
                buf[c + k] = sg ^ TWEAK_V[side];
            }
        } else {
            let j = (x & nu_mask) as usize;
            buf[k] = sg ^ (TWEAK_LEAF + (j / pb) as u128);
        }
    };

    for (g, (xg, og)) in xs
        .chunks(EVAL_WIDTH)
        .zip(out.chunks_mut(EVAL_WIDTH))
        .enumerate()
    {
        let base = start + g * EVAL_WIDTH;
        let c = xg.len();
        let mut t = [neg; EVAL_WIDTH];
        let mut acc = [P::default(); EVAL_WIDTH];
        let t = &mut t[..c];
        let acc = &mut acc[..c];
        for (k, (seed, x)) in keys.seeds[base..base + c].iter().zip(xg).enumerate() {
            prep(&mut buf, k, c, *seed, *x, 0);
        }
        for i in 0..l {
            let shift = n - 1 - i;
            h.hash(&mut buf[..if vb { 2 * c } else { c }]);
            let row = base * l + i * c;
            let cs_row = &keys.cw.cw_seed[row..row + c];
            let ct_row = &keys.cw.cw_t[row..row + c];
            for k in 0..c {
                let x = xg[k];
                let side = (x >> shift) & 1;
                let blk = buf[k];
                let tk = t[k];
                if DCF {
                    let v = if vb {
                        P::from_block(buf[c + k], 0)
                    } else {
                        P::from_block(blk >> 1, 0)
                    };
                    acc[k] = acc[k].add(v.add(keys.cw.cw_v[row + k].select(tk)).cond_neg(neg));
                }
                // Branch-free corrections: t is secret and unpredictable.
                let cs = cs_row[k] & u128::from(tk).wrapping_neg();
                let ct = (ct_row[k] >> side) & u8::from(tk) & 1;
                t[k] = ((blk as u8) ^ ct) & 1 == 1;
                prep(&mut buf, k, c, (blk & mask) ^ cs, x, i + 1);
            }
        }
        h.hash(&mut buf[..c]);
        for k in 0..c {
            let j = (xg[k] & nu_mask) as usize;
            let conv = P::from_block(buf[k], j % pb);
            let cw = P::from_block(keys.cw.leaf[(base + k) * lb + j / pb], j % pb);
            let y = conv.add(cw.select(t[k])).cond_neg(neg);
            og[k] = acc[k].add(y);
        }
    }
}
