//! Training products with mask reuse (after the two-party SPDZ CNN-training
//! paper): ONE key serves the forward product `z = x * y` of a bilinear map
//! and both backward products, `dx = back_x(dz, y)` and
//! `dy = back_y(x, dz)` ([`Bilinear::back_x`], [`Bilinear::back_y`]).
//!
//! The key is a forward triple `a`, `b`, `c = a * b` ([`TripleKey`]) plus a
//! fresh mask `d` of the output gradient and shares of
//! `cx = back_x(d, b)` (only if the input gradient is needed) and
//! `cw = back_y(a, d)`.
//!
//! - Forward (one round, `|x| + |y|` ring elements per party): open
//!   `E = x - a` and `F = y - b` and compute `z_i = c_i + E * y_i + a_i * F`,
//!   as the triple gate does; the tape keeps `x_i`, `E`, `F`, `d_i`, `cx_i`,
//!   `cw_i`.
//! - Backward (one round, `|z|` ring elements per party, no new key): open
//!   `G = dz - d` and compute locally
//!   `dx_i = back_x(G, y_i) + back_x(d_i, F) + cx_i` and
//!   `dy_i = back_y(x_i, G) + back_y(E, d_i) + cw_i`.
//!
//! Both maps are bilinear, so the shares add up to
//! `back_x(G, y) + back_x(d, y - b) + back_x(d, b) = back_x(dz, y)` and
//! `back_y(x, G) + back_y(x - a, d) + back_y(a, d) = back_y(x, dz)`; no term
//! is party 0's alone. Without mask reuse the backward needs two more
//! triples, on `(dz, y)` and on `(x, dz)`, which open `dz` twice and `x` and
//! `y` again.
//!
//! Outputs carry the sum of the inputs' fractional bits; truncate afterwards.
//! The triple's shares and those of `d`, `cx`, `cw` are each in seeded
//! halves (a seed and about half of the elements per key, see
//! [`crate::gates::beaver`]).
//! Key material and tapes live in [`RingTensor`]s, which are zeroized on
//! drop; `Debug` prints shapes and flags, never values.

use crate::backend::{BilinearTape, TapeOrigin, foreign_tape};
use crate::bundle::GateDesc;
use crate::codec::{Reader, err};
use crate::cost::{self, GateCost};
use crate::error::MpcError;
use crate::gates::beaver::{Bilinear, TripleKey};
use crate::gates::util::{
    check_party, put_seeded_tensors, read_seeded_tensors, seeded_tensor_bytes, seeded_tensor_cost,
    split_tensors,
};
use crate::open::open;
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::Party;
use ariann_ring::{Ring, RingTensor};
use rand::{CryptoRng, Rng};

/// One party's key of a training product: the forward triple and the
/// backward's correlated masks.
#[derive(Clone)]
pub struct TrainTripleKey<R: Ring> {
    /// The forward triple `a`, `b`, `c` (party and map).
    pub(crate) triple: TripleKey<R>,
    /// Share of the mask `d` of the output gradient (output shape).
    pub(crate) d: RingTensor<R>,
    /// Share of `back_x(d, b)` (left operand's shape), iff the input
    /// gradient is needed.
    pub(crate) cx: Option<RingTensor<R>>,
    /// Share of `back_y(a, d)` (right operand's shape).
    pub(crate) cw: RingTensor<R>,
    /// The seed of this party's seeded half of `d || cx || cw`.
    pub(crate) seed: u128,
}

impl<R: Ring> core::fmt::Debug for TrainTripleKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrainTripleKey")
            .field("party", &self.triple.party)
            .field("map", &self.triple.map)
            .field("dx", &self.cx.is_some())
            .finish_non_exhaustive()
    }
}

/// The private backward material of a training product, kept in its
/// [`BilinearTape`] between the forward and the backward pass.
pub(crate) struct Backward<R: Ring> {
    party: Party,
    /// The opened `E = x - a` (public to both parties).
    e: RingTensor<R>,
    /// The opened `F = y - b`.
    f: RingTensor<R>,
    /// Shares of `d`, `back_x(d, b)` (iff dx) and `back_y(a, d)`.
    d: RingTensor<R>,
    cx: Option<RingTensor<R>>,
    cw: RingTensor<R>,
}

impl<R: Ring> TrainTripleKey<R> {
    /// Dealer: a fresh key of a training product for `map`; `dx: false`
    /// leaves out the input gradient's mask (`cx`).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        map: Bilinear,
        dx: bool,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (sa, sb, sz) = map.shapes()?;
        let a = RingTensor::<R>::random(&sa, rng);
        let b = RingTensor::<R>::random(&sb, rng);
        let (t0, t1) = TripleKey::deal_from(map, &a, &b, rng)?;
        let d = RingTensor::<R>::random(&sz, rng);
        let cw = map.back_y(&a, &d)?;
        let cx = if dx { Some(map.back_x(&d, &b)?) } else { None };
        let vals: Vec<&RingTensor<R>> = [Some(&d), cx.as_ref(), Some(&cw)]
            .into_iter()
            .flatten()
            .collect();
        let ([s0, s1], [v0, v1]) = split_tensors(&vals, rng)?;
        Ok((
            Self::from_shares(t0, dx, s0, v0)?,
            Self::from_shares(t1, dx, s1, v1)?,
        ))
    }

    /// A key from its triple, its seed and its shares of `d`, `cx` (iff
    /// `dx`) and `cw`, in this order.
    fn from_shares(
        triple: TripleKey<R>,
        dx: bool,
        seed: u128,
        shares: Vec<RingTensor<R>>,
    ) -> Result<Self, MpcError> {
        let mut it = shares.into_iter();
        let (d, cx, cw) = match (it.next(), dx.then(|| it.next()).flatten(), it.next()) {
            (Some(d), cx, Some(cw)) if cx.is_some() == dx && it.next().is_none() => (d, cx, cw),
            _ => return Err(err("training product: not its backward tensors")),
        };
        Ok(Self {
            triple,
            d,
            cx,
            cw,
            seed,
        })
    }

    /// The map this key serves.
    pub fn map(&self) -> Bilinear {
        self.triple.map
    }

    /// Whether the key serves the input gradient too.
    pub fn need_dx(&self) -> bool {
        self.cx.is_some()
    }

    /// Key bytes held by this party: the triple's and the seed and written
    /// half of `d || cx || cw`.
    pub fn key_bytes(&self) -> usize {
        let extra = self.d.len() + self.cx.as_ref().map_or(0, RingTensor::len) + self.cw.len();
        self.triple.key_bytes() + seeded_tensor_bytes::<R>(self.triple.party, extra)
    }

    /// Cost of a training product for `map`, without generating it (see
    /// [`crate::cost`]): 2 rounds (forward and backward) opening
    /// `|x| + |y| + |z|` ring elements in all; the key holds the triple's
    /// (seeded halves of `|x| + |y| + |z|` elements), then a seed and half
    /// of `d` (`|z|`), `cw` (`|y|`) and, if `dx`, `cx` (`|x|`); the key
    /// body is the triple's, a flag byte, the seed and those elements.
    pub fn cost(map: Bilinear, dx: bool) -> Result<GateCost, MpcError> {
        let what = "training product";
        // Refuses what the triple refuses (invalid or overflowing geometry).
        let fwd = TripleKey::<R>::cost(map)?;
        let w = cost::ring_bytes::<R>();
        let (sx, sy, sz) = map
            .shapes()
            .map_err(|e| MpcError::InvalidParameter(format!("{map:?}: {e}")))?;
        // Element count of a shape.
        let field = |shape: &[usize]| -> Result<u64, MpcError> {
            let dims = shape
                .iter()
                .map(|d| cost::size(*d))
                .collect::<Result<Vec<_>, _>>()?;
            cost::product(&dims, what)
        };
        let (lx, ly, lz) = (field(&sx)?, field(&sy)?, field(&sz)?);
        let lx = if dx { lx } else { 0 };
        let elems = cost::sum(&[lz, lx, ly], what)?;
        let extra_key = seeded_tensor_cost(elems, w, what)?;
        let key_bytes = cost::add(fwd.key_bytes, extra_key, what)?;
        Ok(GateCost {
            rounds: 2,
            bytes_sent: cost::add(fwd.bytes_sent, cost::mul(lz, w, what)?, what)?,
            key_bytes,
            encoded_bytes: cost::sum(&[fwd.encoded_bytes, 1, extra_key], what)?,
        })
    }

    /// The forward pass (one round, `|x| + |y|` ring elements per party):
    /// this party's share of `x * y` and the tape for [`backward`].
    /// Consumes the key: its backward masks move into the tape.
    pub fn forward<T: Transport + ?Sized>(
        self,
        t: &mut T,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(RingTensor<R>, BilinearTape<R>), MpcError> {
        let party = self.triple.party;
        check_party(party, t.party())?;
        let map = self.triple.map;
        let msg = self.triple.mask(x, y)?;
        let (sx, _, _) = map.shapes()?;
        let x = conform(&map, "left operand", x, &sx)?;
        let opened = open(t, &msg, R::BITS)?;
        let (e, f) = self.triple.split_opened(&opened)?;
        let z = self.triple.combine(&e, &f, y)?;
        let need_dx = self.cx.is_some();
        let TrainTripleKey { d, cx, cw, .. } = self;
        Ok((
            z,
            BilinearTape {
                map,
                need_dx,
                x,
                origin: TapeOrigin::Session(Box::new(Backward {
                    party,
                    e,
                    f,
                    d,
                    cx,
                    cw,
                })),
            },
        ))
    }
}

/// `t` under the map's canonical shape `want`: any shape with as many
/// elements for an elementwise product, exactly `want` for the others.
fn conform<R: Ring>(
    map: &Bilinear,
    what: &'static str,
    t: &RingTensor<R>,
    want: &[usize],
) -> Result<RingTensor<R>, MpcError> {
    let expected: usize = want.iter().product();
    if t.len() != expected {
        return Err(MpcError::SizeMismatch {
            what,
            expected,
            got: t.len(),
        });
    }
    match map {
        Bilinear::Mul { .. } => Ok(t.reshape(want)?),
        _ if t.shape() == want => Ok(t.clone()),
        _ => Err(MpcError::InvalidParameter(format!(
            "{what} of shape {:?}, {map:?} needs {want:?}",
            t.shape()
        ))),
    }
}

/// The backward pass of a training product made by
/// [`TrainTripleKey::forward`] (one round, `|z|` ring elements per party,
/// no key): this party's shares of `dx = back_x(dz, y)` (if the forward's
/// key asked for it) and `dy = back_y(x, dz)`, from its shares of the
/// output gradient `dz` and of `y` (the forward's right operand).
///
/// Refuses, before anything is sent, a tape of another backend or of the
/// other party ([`MpcError::InvalidParameter`], [`MpcError::WrongParty`])
/// and operands of the wrong sizes ([`MpcError::SizeMismatch`]).
pub fn backward<R: Ring, T: Transport + ?Sized>(
    t: &mut T,
    tape: BilinearTape<R>,
    dz: &RingTensor<R>,
    y: &RingTensor<R>,
) -> Result<(Option<RingTensor<R>>, RingTensor<R>), MpcError> {
    if !matches!(tape.origin, TapeOrigin::Session(_)) {
        return Err(foreign_tape(&tape, "private"));
    }
    let BilinearTape {
        map,
        need_dx,
        x,
        origin,
    } = tape;
    let TapeOrigin::Session(bw) = origin else {
        return Err(MpcError::InvalidParameter(
            "a training tape without its backward material".into(),
        ));
    };
    check_party(bw.party, t.party())?;
    if need_dx != bw.cx.is_some() {
        return Err(MpcError::InvalidParameter(format!(
            "the tape of a training product {map:?} asks for dx = {need_dx} but its key has {}",
            if bw.cx.is_some() { "cx" } else { "no cx" }
        )));
    }
    let (_, sy, sz) = map.shapes()?;
    let dz = conform(&map, "output gradient", dz, &sz)?;
    let y = conform(&map, "right operand", y, &sy)?;
    let g = dz.sub(&bw.d)?;
    let g = RingTensor::from_vec(&sz, open(t, g.as_slice(), R::BITS)?)?;
    let dx = match &bw.cx {
        Some(cx) => {
            let mut dx = map.back_x(&g, &y)?;
            dx.add_assign(&map.back_x(&bw.d, &bw.f)?)?;
            dx.add_assign(cx)?;
            Some(dx)
        }
        None => None,
    };
    let mut dy = map.back_y(&x, &g)?;
    dy.add_assign(&map.back_y(&bw.e, &bw.d)?)?;
    dy.add_assign(&bw.cw)?;
    Ok((dx, dy))
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> KindKeys<R> for TrainTripleKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::TrainTriple { map, dx } = *desc else {
            return Err(other_kind(desc, GateKind::TrainTriple));
        };
        Self::generate(map, dx, rng)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::TrainTriple { map, dx } = *desc else {
            return Err(other_kind(desc, GateKind::TrainTriple));
        };
        Self::cost(map, dx)
    }

    /// The triple's body (map, seed, half of `a`, `b`, `c`), a flag byte
    /// (1 iff `cx` is there), then the seed and written half of `d`, `cx`
    /// (if the flag is 1), `cw`.
    fn write_body(&self, out: &mut Vec<u8>) {
        self.triple.write(out);
        out.push(u8::from(self.cx.is_some()));
        let ts: Vec<&RingTensor<R>> = [Some(&self.d), self.cx.as_ref(), Some(&self.cw)]
            .into_iter()
            .flatten()
            .collect();
        put_seeded_tensors(out, self.triple.party, self.seed, &ts);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::TrainTriple { map, dx } = *desc else {
            return Err(other_kind(desc, GateKind::TrainTriple));
        };
        // Reads the map and checks `a`, `b`, `c` against it.
        let triple = TripleKey::read(rd, party)?;
        if triple.map != map {
            return Err(body_mismatch(desc, "bilinear map"));
        }
        let has_cx = match rd.u8("training product dx flag")? {
            0 => false,
            1 => true,
            v => return Err(err(format!("training product dx flag {v} is not 0 or 1"))),
        };
        if has_cx != dx {
            return Err(body_mismatch(desc, "dx flag"));
        }
        let (sx, sy, sz) = map
            .shapes()
            .map_err(|e| err(format!("training product map {map:?}: {e}")))?;
        let shapes: Vec<&[usize]> = [Some(&sz[..]), dx.then_some(&sx[..]), Some(&sy[..])]
            .into_iter()
            .flatten()
            .collect();
        let (seed, ts) = read_seeded_tensors::<R>(rd, party, &shapes, "training product")?;
        Self::from_shares(triple, dx, seed, ts)
    }
}
