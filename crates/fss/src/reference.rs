//! Plain scalar reference implementation of DPF and DCF key generation and
//! evaluation: one key, one point, one AES block at a time, written to follow
//! the papers line by line. The fast batched path ([`crate::FssKeys`]) must
//! produce bit-identical keys and outputs; the tests check that.
//!
//! - DPF: Boyle, Gilboa, Ishai, "Function Secret Sharing: Improvements and
//!   Extensions", CCS 2016, Figure 1 (ARIANN Algorithms 1-2), with early
//!   termination (section 3.2.1).
//! - DCF: Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee, "Function
//!   Secret Sharing for Mixed-Mode and Fixed-Point Secure Computation",
//!   Eurocrypt 2021, Figure 3, with the same early termination applied to the
//!   last `nu` levels (the leaf vector holds `beta * [j < alpha_low]`).
//!
//! Seeds carry metadata in their low bits: bit 0 is
//! the control bit `t` and, for a one-bit DCF, bit 1 is the payload bit `v`.
//! Inputs are read most significant bit first.

use crate::keys::{Key, Kind, Party, TreeParams};
use crate::payload::{Payload, per_block};
use crate::prg::{TWEAK_LEAF, TWEAK_SEED, TWEAK_V, prg};

/// One expanded child: seed, control bit and payload word.
#[derive(Clone, Copy)]
struct Child<P> {
    s: u128,
    t: bool,
    v: P,
}

fn expand<P: Payload>(kind: Kind, seed: u128, side: usize) -> Child<P> {
    let block = prg().hash(seed, TWEAK_SEED[side]);
    let v = match kind {
        Kind::Dpf => P::default(),
        Kind::Dcf if P::BITS == 1 => P::from_block(block >> 1, 0),
        Kind::Dcf => P::from_block(prg().hash(seed, TWEAK_V[side]), 0),
    };
    Child {
        s: block & TreeParams::seed_mask::<P>(kind),
        t: block & 1 == 1,
        v,
    }
}

/// `Convert` of leaf element `j`: element `j` of the pseudorandom leaf vector.
fn convert_leaf<P: Payload>(seed: u128, j: usize) -> P {
    let pb = per_block::<P>();
    P::from_block(prg().hash(seed, TWEAK_LEAF + (j / pb) as u128), j % pb)
}

fn bit(x: u64, n: u32, level: usize) -> usize {
    ((x >> (n as usize - 1 - level)) & 1) as usize
}

/// Generates the two keys of `f(x) = beta if x == alpha` (DPF) or
/// `f(x) = beta if x < alpha` (DCF), from the two root seeds `roots`.
///
/// `alpha` must fit in `n` bits (the bits above are ignored).
pub fn generate<P: Payload>(
    kind: Kind,
    params: TreeParams,
    alpha: u64,
    beta: P,
    roots: [u128; 2],
) -> (Key<P>, Key<P>) {
    let n = params.n();
    let levels = params.levels();
    let mut s = roots;
    let mut t = [false, true];
    let mut v_alpha = P::default();
    let mut cw_seed = Vec::with_capacity(levels);
    let mut cw_t = Vec::with_capacity(levels);
    let mut cw_v = Vec::new();
    for i in 0..levels {
        let a = bit(alpha, n, i);
        let (keep, lose) = (a, 1 - a);
        let ch: [[Child<P>; 2]; 2] = [
            [expand(kind, s[0], 0), expand(kind, s[0], 1)],
            [expand(kind, s[1], 0), expand(kind, s[1], 1)],
        ];
        let s_cw = ch[0][lose].s ^ ch[1][lose].s;
        let t_cw = [
            ch[0][0].t ^ ch[1][0].t ^ (a == 1) ^ true,
            ch[0][1].t ^ ch[1][1].t ^ (a == 1),
        ];
        if kind == Kind::Dcf {
            // V_CW = (-1)^t1 [Convert(v1^Lose) - Convert(v0^Lose) - V_alpha] (+ (-1)^t1 beta if Lose = L)
            let mut v_cw = ch[1][lose].v.sub(ch[0][lose].v).sub(v_alpha).cond_neg(t[1]);
            if lose == 0 {
                v_cw = v_cw.add(beta.cond_neg(t[1]));
            }
            v_alpha = v_alpha
                .sub(ch[1][keep].v)
                .add(ch[0][keep].v)
                .add(v_cw.cond_neg(t[1]));
            cw_v.push(v_cw);
        }
        for b in 0..2 {
            let next_s = ch[b][keep].s ^ if t[b] { s_cw } else { 0 };
            let next_t = ch[b][keep].t ^ (t[b] && t_cw[keep]);
            s[b] = next_s;
            t[b] = next_t;
        }
        cw_seed.push(s_cw);
        cw_t.push(t_cw);
    }
    let low = (alpha & ((1u64 << params.nu()) - 1)) as usize;
    let leaf: Vec<P> = (0..params.leaf_len())
        .map(|j| {
            let c0: P = convert_leaf(s[0], j);
            let c1: P = convert_leaf(s[1], j);
            match kind {
                // (-1)^t1 [beta * [j == alpha_low] - Convert(s0) + Convert(s1)]
                Kind::Dpf => beta.select(j == low).sub(c0).add(c1).cond_neg(t[1]),
                // (-1)^t1 [Convert(s1) - Convert(s0) - V_alpha + beta * [j < alpha_low]]
                Kind::Dcf => c1
                    .sub(c0)
                    .sub(v_alpha)
                    .add(beta.select(j < low))
                    .cond_neg(t[1]),
            }
        })
        .collect();
    let key = |party: Party, seed: u128| Key {
        kind,
        party,
        params,
        seed,
        cw_seed: cw_seed.clone(),
        cw_t: cw_t.clone(),
        cw_v: cw_v.clone(),
        leaf: leaf.clone(),
    };
    (key(Party::P0, roots[0]), key(Party::P1, roots[1]))
}

/// Evaluates one key at one point `x` (bits above `n` are ignored).
pub fn eval<P: Payload>(key: &Key<P>, x: u64) -> P {
    let params = key.params;
    let n = params.n();
    let neg = key.party.is_one();
    let mut s = key.seed;
    let mut t = neg;
    let mut acc = P::default();
    for i in 0..params.levels() {
        let side = bit(x, n, i);
        let c: Child<P> = expand(key.kind, s, side);
        if key.kind == Kind::Dcf {
            // V += (-1)^b [Convert(v^side) + t * V_CW]
            acc = acc.add(c.v.add(key.cw_v[i].select(t)).cond_neg(neg));
        }
        let next_s = c.s ^ if t { key.cw_seed[i] } else { 0 };
        let next_t = c.t ^ (t && key.cw_t[i][side]);
        s = next_s;
        t = next_t;
    }
    let j = (x & ((1u64 << params.nu()) - 1)) as usize;
    let c: P = convert_leaf(s, j);
    acc.add(c.add(key.leaf[j].select(t)).cond_neg(neg))
}

/// The cleartext function the keys share: `beta` if `x == alpha` (DPF) or
/// `x < alpha` (DCF), else 0; inputs are taken modulo `2^n`.
pub fn cleartext<P: Payload>(kind: Kind, params: TreeParams, alpha: u64, beta: P, x: u64) -> P {
    let m = params.domain_mask();
    let hit = match kind {
        Kind::Dpf => x & m == alpha & m,
        Kind::Dcf => x & m < alpha & m,
    };
    beta.select(hit)
}
