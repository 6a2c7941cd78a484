//! Bilinear gates from dealer triples, each in ONE round: elementwise
//! products (Beaver triples), matrix products (matrix triples) and 2-D
//! convolutions (convolution triples, after the two-party SPDZ CNN-training
//! paper, section 3.4).
//!
//! For a bilinear map `*` and secret `x`, `y`, the dealer hands out shares of
//! random `a`, `b` and of `c = a * b`. The parties open `e = x - a` and
//! `f = y - b` (one exchange, both in the same message) and each computes
//! `z_b = c_b + e * y_b + a_b * f`, so that
//! `z_0 + z_1 = ab + (x - a) y + a (y - b) = x * y`: two products per party
//! (the textbook `c + e b + a f + e f` costs party 0 three). For convolutions `e` has the input's shape and `f` the
//! weight's, so the opening costs input size + weight size elements, not the
//! unrolled im2col matrix.
//!
//! Outputs carry the sum of the inputs' fractional bits; fixed-point
//! truncation is a separate step.
//!
//! A key's shares of `a`, `b` and `c` are in *seeded halves*
//! (`gates::util::split_halves`, crate-private): of their `n` elements in all,
//! party 0 expands the first `floor(n / 2)` from a 16-byte seed in its key
//! and party 1 the last `floor(n / 2)`, so each key carries its seed and
//! about half of the elements.

use crate::bundle::GateDesc;
use crate::codec::{Reader, put_usize};
use crate::cost::{self, GateCost, U64};
use crate::error::MpcError;
use crate::gates::util::{
    check_party, put_seeded_tensors, read_seeded_tensors, seeded_tensor_bytes, seeded_tensor_cost,
    split_tensors,
};
use crate::open::open;
use crate::table::{GateKind, KindKeys, MapKind, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::Party;
use ariann_ring::{Conv2dShape, Ring, RingTensor, conv2d, reconstruct};
use rand::{CryptoRng, Rng};

/// The bilinear map a triple is for.
///
/// Serialized (serde) with its kind's name from [`MapKind`] under `"map"`,
/// beside its fields: `{"map": "matmul", "m": 2, "k": 3, "n": 4}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "map", rename_all = "snake_case", deny_unknown_fields)]
pub enum Bilinear {
    /// Elementwise product of two tensors of `shape`.
    Mul {
        /// Number of elements.
        len: usize,
    },
    /// `(m x k) . (k x n)`.
    #[serde(rename = "matmul")]
    MatMul {
        /// Rows of the left operand.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns of the right operand.
        n: usize,
    },
    /// 2-D convolution (NCHW input, OIHW weight, no bias).
    Conv2d(Conv2dShape),
}

/// Shapes of the left operand, the right operand and the output of a map.
pub type OperandShapes = (Vec<usize>, Vec<usize>, Vec<usize>);

impl Bilinear {
    /// The map's kind (its row of [`MapKind`]).
    pub fn kind(&self) -> MapKind {
        match self {
            Bilinear::Mul { .. } => MapKind::Mul,
            Bilinear::MatMul { .. } => MapKind::MatMul,
            Bilinear::Conv2d(_) => MapKind::Conv2d,
        }
    }

    /// Appends the map's binary encoding: its kind number (one byte), then
    /// its dimensions in declaration order (`u64` LE each).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind().number());
        match *self {
            Bilinear::Mul { len } => put_usize(out, len),
            Bilinear::MatMul { m, k, n } => {
                for v in [m, k, n] {
                    put_usize(out, v);
                }
            }
            Bilinear::Conv2d(s) => {
                for v in [s.n, s.c, s.h, s.w, s.oc, s.kh, s.kw, s.stride, s.pad] {
                    put_usize(out, v);
                }
            }
        }
    }

    /// Reads a map written by [`Bilinear::encode`].
    pub(crate) fn read(rd: &mut Reader<'_>) -> Result<Self, MpcError> {
        let t = rd.u8("bilinear map kind")?;
        let kind = MapKind::from_number(t)
            .ok_or_else(|| MpcError::Codec(format!("unknown bilinear map kind {t}")))?;
        Ok(match kind {
            MapKind::Mul => Bilinear::Mul {
                len: rd.usize("mul length")?,
            },
            MapKind::MatMul => Bilinear::MatMul {
                m: rd.usize("matmul m")?,
                k: rd.usize("matmul k")?,
                n: rd.usize("matmul n")?,
            },
            MapKind::Conv2d => {
                let mut v = [0usize; 9];
                for x in &mut v {
                    *x = rd.usize("conv2d shape")?;
                }
                let [n, c, h, w, oc, kh, kw, stride, pad] = v;
                Bilinear::Conv2d(Conv2dShape {
                    n,
                    c,
                    h,
                    w,
                    oc,
                    kh,
                    kw,
                    stride,
                    pad,
                })
            }
        })
    }

    /// Shapes of the left operand, right operand and output.
    pub fn shapes(&self) -> Result<OperandShapes, MpcError> {
        Ok(match *self {
            Bilinear::Mul { len } => (vec![len], vec![len], vec![len]),
            Bilinear::MatMul { m, k, n } => (vec![m, k], vec![k, n], vec![m, n]),
            Bilinear::Conv2d(s) => (
                s.input_shape().to_vec(),
                s.weight_shape().to_vec(),
                s.output_shape()?.to_vec(),
            ),
        })
    }

    /// The map on cleartext (or on one share and a public value).
    pub fn apply<R: Ring>(
        &self,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        Ok(match self {
            Bilinear::Mul { .. } => x.mul_elem(y)?,
            Bilinear::MatMul { .. } => x.matmul(y)?,
            Bilinear::Conv2d(s) => conv2d(x, y, s)?,
        })
    }
}

impl Bilinear {
    /// The gradient of `z = x * y` with respect to `x` for an output
    /// gradient `dz`: the adjoint of the map in its first argument
    /// (`<x * y, dz> = <x, back_x(dz, y)>`): `dz . y` elementwise, `dz y^T`
    /// for a matrix product, the transposed convolution for a convolution.
    pub fn back_x<R: Ring>(
        &self,
        dz: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        Ok(match self {
            Bilinear::Mul { len } => dz.reshape(&[*len])?.mul_elem(&y.reshape(&[*len])?)?,
            Bilinear::MatMul { .. } => dz.matmul(&y.transpose2d()?)?,
            Bilinear::Conv2d(s) => ariann_ring::conv2d_grad_input(dz, y, s)?,
        })
    }

    /// The gradient of `z = x * y` with respect to `y` for an output
    /// gradient `dz` (`<x * y, dz> = <y, back_y(x, dz)>`): `x . dz`
    /// elementwise, `x^T dz` for a matrix product, the weight-gradient
    /// correlation (summed over the batch) for a convolution.
    pub fn back_y<R: Ring>(
        &self,
        x: &RingTensor<R>,
        dz: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        Ok(match self {
            Bilinear::Mul { len } => x.reshape(&[*len])?.mul_elem(&dz.reshape(&[*len])?)?,
            Bilinear::MatMul { .. } => x.transpose2d()?.matmul(dz)?,
            Bilinear::Conv2d(s) => ariann_ring::conv2d_grad_weight(x, dz, s)?,
        })
    }
}

/// Bytes of `map` in the bundle encoding (a kind byte and its dimensions as
/// `u64`, as [`crate::codec`] writes it).
pub(crate) fn map_encoded_len(map: &Bilinear) -> u64 {
    1 + U64
        * match map {
            Bilinear::Mul { .. } => 1,
            Bilinear::MatMul { .. } => 3,
            Bilinear::Conv2d(_) => 9,
        }
}

/// One party's share of a triple for a [`Bilinear`] map.
#[derive(Clone)]
pub struct TripleKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) map: Bilinear,
    /// The seed of this party's seeded half of `a || b || c`.
    pub(crate) seed: u128,
    pub(crate) a: RingTensor<R>,
    pub(crate) b: RingTensor<R>,
    pub(crate) c: RingTensor<R>,
}

impl<R: Ring> core::fmt::Debug for TripleKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TripleKey")
            .field("party", &self.party)
            .field("map", &self.map)
            .finish_non_exhaustive()
    }
}

impl<R: Ring> TripleKey<R> {
    /// Dealer: a fresh triple for `map`.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        map: Bilinear,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (sa, sb, _) = map.shapes()?;
        let a = RingTensor::<R>::random(&sa, rng);
        let b = RingTensor::<R>::random(&sb, rng);
        Self::deal_from(map, &a, &b, rng)
    }

    /// Dealer: [`TripleKey::generate`] (the same draws from `rng`, so the
    /// same keys), also returning the right mask `b`, which the dealer keeps
    /// for the later `triple_reuse` gates of the same weight
    /// ([`crate::gates::reuse`]).
    pub(crate) fn generate_keeping<G: Rng + CryptoRng + ?Sized>(
        map: Bilinear,
        rng: &mut G,
    ) -> Result<(Self, Self, RingTensor<R>), MpcError> {
        let (sa, sb, _) = map.shapes()?;
        let a = RingTensor::<R>::random(&sa, rng);
        let b = RingTensor::<R>::random(&sb, rng);
        let (k0, k1) = Self::deal_from(map, &a, &b, rng)?;
        Ok((k0, k1, b))
    }

    /// Dealer: both parties' shares of the triple `a`, `b`, `c = a * b` for
    /// the given masks (of the map's operand shapes).
    pub(crate) fn deal_from<G: Rng + CryptoRng + ?Sized>(
        map: Bilinear,
        a: &RingTensor<R>,
        b: &RingTensor<R>,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let c = map.apply(a, b)?;
        let ([s0, s1], [v0, v1]) = split_tensors(&[a, b, &c], rng)?;
        Ok((
            Self::from_shares(Party::P0, map, s0, v0)?,
            Self::from_shares(Party::P1, map, s1, v1)?,
        ))
    }

    /// A key from its seed and its shares of `a`, `b`, `c` (in this order).
    fn from_shares(
        party: Party,
        map: Bilinear,
        seed: u128,
        shares: Vec<RingTensor<R>>,
    ) -> Result<Self, MpcError> {
        let [a, b, c] = <[RingTensor<R>; 3]>::try_from(shares)
            .map_err(|v| MpcError::Codec(format!("triple: {} tensors, not 3", v.len())))?;
        Ok(Self {
            party,
            map,
            seed,
            a,
            b,
            c,
        })
    }

    /// The map this triple serves.
    pub fn map(&self) -> Bilinear {
        self.map
    }

    /// Key bytes held by this party: its seed and its written half of
    /// `a || b || c`.
    pub fn key_bytes(&self) -> usize {
        seeded_tensor_bytes::<R>(self.party, self.a.len() + self.b.len() + self.c.len())
    }

    /// Cost of a triple for `map`, without generating it (see
    /// [`crate::cost`]): one round opening `|a| + |b|` ring elements; the
    /// key holds a 16-byte seed and `ceil(n / 2)` of the `n = |a| + |b| +
    /// |c|` elements (seeded halves); the key body is the map, the seed and
    /// those elements (the shapes follow from the map).
    pub fn cost(map: Bilinear) -> Result<GateCost, MpcError> {
        let what = "triple";
        let w = cost::ring_bytes::<R>();
        // A geometry the map refuses (or whose padded size overflows) is an
        // invalid gate parameter here.
        let (sa, sb, sc) = map
            .shapes()
            .map_err(|e| MpcError::InvalidParameter(format!("{map:?}: {e}")))?;
        let mut lens = [0u64; 3];
        for (len, shape) in lens.iter_mut().zip([&sa, &sb, &sc]) {
            let dims = shape
                .iter()
                .map(|d| cost::size(*d))
                .collect::<Result<Vec<_>, _>>()?;
            *len = cost::product(&dims, what)?;
        }
        let opened = cost::add(lens[0], lens[1], what)?;
        let held = cost::add(opened, lens[2], what)?;
        let key_bytes = seeded_tensor_cost(held, w, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(opened, w, what)?,
            key_bytes,
            encoded_bytes: cost::add(map_encoded_len(&map), key_bytes, what)?,
        })
    }

    /// Local step 1: this party's shares of `e = x - a` and `f = y - b`,
    /// concatenated (the message to open).
    /// For [`Bilinear::Mul`] the inputs may have any shape with `len` elements.
    /// Written straight into the message (no intermediate tensors: for a
    /// large weight the message is the only buffer of its size).
    pub fn mask(&self, x: &RingTensor<R>, y: &RingTensor<R>) -> Result<Vec<R>, MpcError> {
        let flat = matches!(self.map, Bilinear::Mul { .. });
        conforms(x, &self.a, flat)?;
        conforms(y, &self.b, flat)?;
        let mut msg = Vec::with_capacity(self.a.len() + self.b.len());
        for (v, m) in [(x, &self.a), (y, &self.b)] {
            msg.extend(
                v.as_slice()
                    .iter()
                    .zip(m.as_slice())
                    .map(|(v, m)| v.wsub(*m)),
            );
        }
        Ok(msg)
    }

    /// Local step 2: from the opened `e || f` and this party's share of `y`,
    /// this party's share of `x * y`.
    pub fn finish(&self, opened: &[R], y: &RingTensor<R>) -> Result<RingTensor<R>, MpcError> {
        let (e, f) = self.split_slices(opened)?;
        self.combine_slices(e, f, y)
    }

    /// [`TripleKey::combine`] from the opened `e` and `f` as slices: the
    /// elementwise and matrix products read them in place (a matrix
    /// product's `f` is a whole weight); a convolution copies them into
    /// tensors first.
    pub(crate) fn combine_slices(
        &self,
        e: &[R],
        f: &[R],
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        match self.map {
            Bilinear::Mul { len } => {
                conforms(y, &self.b, true)?;
                let (c, a, y) = (self.c.as_slice(), self.a.as_slice(), y.as_slice());
                if e.len() != len || f.len() != len {
                    return Err(MpcError::SizeMismatch {
                        what: "opened e || f",
                        expected: 2 * len,
                        got: e.len() + f.len(),
                    });
                }
                let z = (0..len)
                    .map(|i| c[i].wadd(e[i].wmul(y[i])).wadd(a[i].wmul(f[i])))
                    .collect();
                Ok(RingTensor::from_vec(&[len], z)?)
            }
            Bilinear::MatMul { m, k, n } => {
                conforms(y, &self.b, false)?;
                let mut z = self
                    .c
                    .add(&RingTensor::matmul_slices(e, y.as_slice(), m, k, n)?)?;
                z.add_assign(&RingTensor::matmul_slices(self.a.as_slice(), f, m, k, n)?)?;
                Ok(z)
            }
            Bilinear::Conv2d(_) => {
                let e = RingTensor::from_vec(self.a.shape(), e.to_vec())?;
                let f = RingTensor::from_vec(self.b.shape(), f.to_vec())?;
                self.combine(&e, &f, y)
            }
        }
    }

    /// The opened `e || f` as the tensors `e` (shape of `a`) and `f` (shape
    /// of `b`).
    pub(crate) fn split_opened(
        &self,
        opened: &[R],
    ) -> Result<(RingTensor<R>, RingTensor<R>), MpcError> {
        let (e, f) = self.split_slices(opened)?;
        let e = RingTensor::from_vec(self.a.shape(), e.to_vec())?;
        let f = RingTensor::from_vec(self.b.shape(), f.to_vec())?;
        Ok((e, f))
    }

    /// The opened `e || f` as the slices `e` (`|a|` elements) and `f`
    /// (`|b|`); a message of another length is refused.
    pub(crate) fn split_slices<'o>(&self, opened: &'o [R]) -> Result<(&'o [R], &'o [R]), MpcError> {
        let na = self.a.len();
        if opened.len() != na + self.b.len() {
            return Err(MpcError::SizeMismatch {
                what: "opened e || f",
                expected: na + self.b.len(),
                got: opened.len(),
            });
        }
        Ok(opened.split_at(na))
    }

    /// This party's share of `x * y`: `c + e * y + a * f`.
    pub(crate) fn combine(
        &self,
        e: &RingTensor<R>,
        f: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        let flat;
        let y = if let Bilinear::Mul { len } = self.map {
            flat = y.reshape(&[len])?;
            &flat
        } else {
            y
        };
        let mut z = self.c.add(&self.map.apply(e, y)?)?;
        z.add_assign(&self.map.apply(&self.a, f)?)?;
        Ok(z)
    }

    /// The whole gate: one round, `|x| + |y|` ring elements per party.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x, y)?, R::BITS)?;
        self.finish(&opened, y)
    }
}

/// `Ok` if operand `v` fits its mask `m`: the same shape, or for an
/// elementwise product (`flat`) the same number of elements.
fn conforms<R: Ring>(v: &RingTensor<R>, m: &RingTensor<R>, flat: bool) -> Result<(), MpcError> {
    if v.shape() == m.shape() || (flat && v.len() == m.len()) {
        Ok(())
    } else {
        Err(ariann_ring::RingError::ShapeMismatch {
            expected: m.shape().to_vec(),
            got: v.shape().to_vec(),
        }
        .into())
    }
}

/// Reconstructs a triple from both shares and checks `c == a * b` (tests, audits).
pub fn check_triple<R: Ring>(k0: &TripleKey<R>, k1: &TripleKey<R>) -> Result<bool, MpcError> {
    let a = reconstruct(&k0.a, &k1.a)?;
    let b = reconstruct(&k0.b, &k1.b)?;
    let c = reconstruct(&k0.c, &k1.c)?;
    Ok(k0.map.apply(&a, &b)? == c)
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> TripleKey<R> {
    /// Key body: the map ([`Bilinear::encode`]), then the seed and this
    /// party's written half of `a || b || c`
    /// ([`crate::gates::util::put_seeded_tensors`]).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.map.encode(out);
        put_seeded_tensors(out, self.party, self.seed, &[&self.a, &self.b, &self.c]);
    }

    /// Reads a body written by [`TripleKey::write`] (the tensors' shapes
    /// are the map's).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let map = Bilinear::read(rd)?;
        let (sa, sb, sc) = map
            .shapes()
            .map_err(|e| MpcError::Codec(format!("triple map {map:?}: {e}")))?;
        let (seed, ts) = read_seeded_tensors::<R>(rd, party, &[&sa, &sb, &sc], "triple")?;
        Self::from_shares(party, map, seed, ts)
    }
}

impl<R: Ring> KindKeys<R> for TripleKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::Triple(map) = *desc else {
            return Err(other_kind(desc, GateKind::Triple));
        };
        Self::generate(map, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::Triple(map) = *desc else {
            return Err(other_kind(desc, GateKind::Triple));
        };
        Self::cost(map)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        self.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::Triple(map) = *desc else {
            return Err(other_kind(desc, GateKind::Triple));
        };
        let key = Self::read(rd, party)?;
        if key.map != map {
            return Err(body_mismatch(desc, "bilinear map"));
        }
        Ok(key)
    }
}
