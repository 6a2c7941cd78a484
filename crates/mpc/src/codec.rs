//! Binary encoding of [`KeyBundle`]s: one party's keys for one gate, as a
//! dealer writes them to a key file or a stream.
//!
//! Layout (all integers little-endian; `u64` unless said):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `ARKB` |
//! | 2 | format version (currently 1) |
//! | 1 | ring width in bits (32 or 64) |
//! | 1 | party (0 or 1) |
//! | 8 | plan index |
//! | .. | the gate descriptor ([`GateDesc::encode`]: its kind number from the [gate table](crate::table), then its parameters) |
//! | .. | the key body of that kind (below) |
//!
//! Key bodies (ring elements take `BITS / 8` bytes each; "FSS" is a `u64`
//! byte length followed by an `ariann_fss` key encoding, see
//! `ariann_fss::codec`, which carries its own header and SHA-256):
//!
//! - DReLU: `k` (u32), `m`, `r[m]`, `msb[m]`, FSS (DCF, `Z_2^64`)
//! - ReLU: `k` (u32), `m`, `r[m]`, `msb[m]`, `r_msb[m]`, FSS (DCF, `(Z_2^64)^2`)
//! - equality: `k` (u32), `m`, `r[m]`, FSS (DPF, `Z_2^64`)
//! - truncation: `f` (u32), `k` (u32), `m`, `r[m]`, `r_hi[m]`, `r_msb[m]`, FSS (DCF, `Z_2^64`)
//! - triple: the map, then the tensors `a`, `b`, `c`, each as a rank byte,
//!   the dimensions and the elements
//! - spline (inside batch-norm): `k` (u32), the spline (`J` then `J` knots,
//!   `J + 1` slopes, `J + 1` intercepts as i64), `m`, `r[m]`, `c[m J][2]`,
//!   FSS (DCF, `(Z_2^64)^2`)
//! - max-pool: the shape, the number of levels, one ReLU body per level
//! - one-hot max-pool: the shape, a DReLU body, an equality body, a triple body
//! - batch-norm: the shape, then truncation, triple, truncation, truncation,
//!   spline, triple, truncation, triple, truncation bodies
//! - argmax: `rows`, `n`, a DReLU body, an equality body
//!
//! The encoding has no checksum of its own beyond the FSS keys' (raw
//! shares carry no redundancy to check): integrity of whole files is the key
//! file's job. Decoding never panics; every count is checked against the
//! bytes left before anything is allocated, so allocations are bounded by
//! the input length; the result is checked for internal consistency (party,
//! lengths, windows) and against its tag.

use crate::bundle::{BundleTag, GateDesc, GateKey, KeyBundle};
use crate::error::MpcError;
use crate::gates::batchnorm::{BatchNormKey, BatchNormShape};
use crate::gates::beaver::{Bilinear, TripleKey};
use crate::gates::cmp::{DreluKey, EqZeroKey, ReluKey};
use crate::gates::pool::{ArgmaxKey, MaxPoolKey, MaxPoolOneHotKey, PoolShape};
use crate::gates::spline::{Spline, SplineKey};
use crate::gates::trunc::TruncKey;
use ariann_fss::{FssKeys, Party, Payload, Scheme};
use ariann_ring::{Ring, RingTensor};

/// Magic bytes of a bundle encoding.
pub const BUNDLE_MAGIC: [u8; 4] = *b"ARKB";
/// Current bundle format version.
pub const BUNDLE_VERSION: u16 = 1;

pub(crate) fn err(msg: impl Into<String>) -> MpcError {
    MpcError::Codec(msg.into())
}

// ---------------------------------------------------------------- writing

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_usize(out: &mut Vec<u8>, v: usize) {
    put_u64(out, v as u64);
}

pub(crate) fn put_ring<R: Ring>(out: &mut Vec<u8>, vals: &[R]) {
    let w = R::BITS as usize / 8;
    out.reserve(vals.len() * w);
    for v in vals {
        out.extend_from_slice(&v.to_u64().to_le_bytes()[..w]);
    }
}

pub(crate) fn put_fss<S: Scheme, P: Payload>(out: &mut Vec<u8>, k: &FssKeys<S, P>) {
    let bytes = zeroize::Zeroizing::new(k.encode());
    put_usize(out, bytes.len());
    out.extend_from_slice(&bytes);
}

fn put_drelu<R: Ring>(out: &mut Vec<u8>, k: &DreluKey<R>) {
    put_u32(out, k.k);
    put_usize(out, k.r.len());
    put_ring(out, &k.r);
    put_ring(out, &k.msb);
    put_fss(out, &k.dcf);
}

fn put_relu<R: Ring>(out: &mut Vec<u8>, k: &ReluKey<R>) {
    put_u32(out, k.k);
    put_usize(out, k.r.len());
    put_ring(out, &k.r);
    put_ring(out, &k.msb);
    put_ring(out, &k.r_msb);
    put_fss(out, &k.dcf);
}

fn put_eq<R: Ring>(out: &mut Vec<u8>, k: &EqZeroKey<R>) {
    put_u32(out, k.k);
    put_usize(out, k.r.len());
    put_ring(out, &k.r);
    put_fss(out, &k.dpf);
}

fn put_trunc<R: Ring>(out: &mut Vec<u8>, k: &TruncKey<R>) {
    put_u32(out, k.f);
    put_u32(out, k.k);
    put_usize(out, k.r.len());
    put_ring(out, &k.r);
    put_ring(out, &k.r_hi);
    put_ring(out, &k.r_msb);
    put_fss(out, &k.dcf);
}

fn put_tensor<R: Ring>(out: &mut Vec<u8>, t: &RingTensor<R>) {
    // Ranks are at most 4 for every map; `as u8` cannot truncate.
    out.push(t.shape().len() as u8);
    for d in t.shape() {
        put_usize(out, *d);
    }
    put_ring(out, t.as_slice());
}

fn put_triple<R: Ring>(out: &mut Vec<u8>, k: &TripleKey<R>) {
    k.map.encode(out);
    put_tensor(out, &k.a);
    put_tensor(out, &k.b);
    put_tensor(out, &k.c);
}

fn put_spline<R: Ring>(out: &mut Vec<u8>, k: &SplineKey<R>) {
    put_u32(out, k.k);
    put_usize(out, k.spline.knots.len());
    for v in k.spline.knots.iter().chain(&k.spline.a).chain(&k.spline.b) {
        put_u64(out, *v as u64);
    }
    put_usize(out, k.r.len());
    put_ring(out, &k.r);
    for pair in &k.c {
        put_ring(out, pair);
    }
    put_fss(out, &k.dcf);
}

fn put_key<R: Ring>(out: &mut Vec<u8>, key: &GateKey<R>) {
    match key {
        GateKey::Drelu(k) => put_drelu(out, k),
        GateKey::Relu(k) => put_relu(out, k),
        GateKey::EqZero(k) => put_eq(out, k),
        GateKey::Trunc(k) => put_trunc(out, k),
        GateKey::Triple(k) => put_triple(out, k),
        GateKey::MaxPool(k) => {
            k.shape.encode(out);
            put_usize(out, k.levels.len());
            for l in &k.levels {
                put_relu(out, l);
            }
        }
        GateKey::MaxPoolOneHot(k) => {
            k.shape.encode(out);
            put_drelu(out, &k.cmp);
            put_eq(out, &k.eq);
            put_triple(out, &k.mul);
        }
        GateKey::BatchNorm(k) => {
            k.shape.encode(out);
            put_trunc(out, &k.t_mean);
            put_triple(out, &k.sq);
            put_trunc(out, &k.t_sq);
            put_trunc(out, &k.t_var);
            put_spline(out, &k.inv);
            put_triple(out, &k.g);
            put_trunc(out, &k.t_g);
            put_triple(out, &k.y);
            put_trunc(out, &k.t_y);
        }
        GateKey::Argmax(k) => {
            put_usize(out, k.rows);
            put_usize(out, k.n);
            put_drelu(out, &k.cmp);
            put_eq(out, &k.eq);
        }
    }
}

// ---------------------------------------------------------------- reading

/// A cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], MpcError> {
        if n > self.left() {
            return Err(err(format!(
                "truncated: {what} needs {n} bytes, {} left",
                self.left()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, MpcError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, MpcError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.bytes(4, what)?);
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, MpcError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.bytes(8, what)?);
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn usize(&mut self, what: &str) -> Result<usize, MpcError> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| err(format!("{what} = {v} does not fit in usize")))
    }

    /// A count of items of `item_bytes` each that must fit in the bytes left.
    pub(crate) fn count(&mut self, item_bytes: usize, what: &str) -> Result<usize, MpcError> {
        let n = self.usize(what)?;
        self.check_fits(n, item_bytes, what)?;
        Ok(n)
    }

    pub(crate) fn check_fits(
        &self,
        n: usize,
        item_bytes: usize,
        what: &str,
    ) -> Result<(), MpcError> {
        match n.checked_mul(item_bytes) {
            Some(b) if b <= self.left() => Ok(()),
            _ => Err(err(format!(
                "truncated: {what} announces {n} items of {item_bytes} bytes, {} bytes left",
                self.left()
            ))),
        }
    }

    pub(crate) fn ring<R: Ring>(&mut self, n: usize, what: &str) -> Result<Vec<R>, MpcError> {
        let w = R::BITS as usize / 8;
        self.check_fits(n, w, what)?;
        let raw = self.bytes(n * w, what)?;
        Ok(raw
            .chunks_exact(w)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                R::from_u64(u64::from_le_bytes(b))
            })
            .collect())
    }

    pub(crate) fn fss<S: Scheme, P: Payload>(
        &mut self,
        party: Party,
        n_bits: u32,
        len: usize,
        what: &str,
    ) -> Result<FssKeys<S, P>, MpcError> {
        let n = self.count(1, what)?;
        let k = FssKeys::<S, P>::decode(self.bytes(n, what)?)
            .map_err(|e| err(format!("{what}: {e}")))?;
        if k.party() != party {
            return Err(err(format!("{what}: FSS keys of the other party")));
        }
        if k.params().n() != n_bits || k.len() != len {
            return Err(err(format!(
                "{what}: FSS keys on {} bits for {} elements, expected {n_bits} bits and {len}",
                k.params().n(),
                k.len()
            )));
        }
        Ok(k)
    }

    fn window<R: Ring>(&mut self, min: u32, what: &str) -> Result<u32, MpcError> {
        let k = self.u32(what)?;
        if (min..=R::BITS).contains(&k) {
            Ok(k)
        } else {
            Err(err(format!("{what} = {k} outside {min}..={}", R::BITS)))
        }
    }

    fn drelu<R: Ring>(&mut self, party: Party) -> Result<DreluKey<R>, MpcError> {
        let k = self.window::<R>(2, "DReLU window")?;
        let m = self.count(2 * (R::BITS as usize / 8), "DReLU elements")?;
        Ok(DreluKey {
            party,
            k,
            r: self.ring(m, "DReLU r")?,
            msb: self.ring(m, "DReLU msb")?,
            dcf: self.fss::<_, u64>(party, k - 1, m, "DReLU DCF keys")?,
        })
    }

    fn relu<R: Ring>(&mut self, party: Party) -> Result<ReluKey<R>, MpcError> {
        let k = self.window::<R>(2, "ReLU window")?;
        let m = self.count(3 * (R::BITS as usize / 8), "ReLU elements")?;
        Ok(ReluKey {
            party,
            k,
            r: self.ring(m, "ReLU r")?,
            msb: self.ring(m, "ReLU msb")?,
            r_msb: self.ring(m, "ReLU r_msb")?,
            dcf: self.fss::<_, [u64; 2]>(party, k - 1, m, "ReLU DCF keys")?,
        })
    }

    fn eq<R: Ring>(&mut self, party: Party) -> Result<EqZeroKey<R>, MpcError> {
        let k = self.window::<R>(1, "equality window")?;
        let m = self.count(R::BITS as usize / 8, "equality elements")?;
        Ok(EqZeroKey {
            party,
            k,
            r: self.ring(m, "equality r")?,
            dpf: self.fss::<_, u64>(party, k, m, "equality DPF keys")?,
        })
    }

    fn trunc<R: Ring>(&mut self, party: Party) -> Result<TruncKey<R>, MpcError> {
        let f = self.u32("truncation f")?;
        let k = self.u32("truncation k")?;
        if !(f >= 1 && f < k && k < R::BITS) {
            return Err(err(format!(
                "truncation f = {f}, k = {k} (need 1 <= f < k <= {})",
                R::BITS - 1
            )));
        }
        let m = self.count(3 * (R::BITS as usize / 8), "truncation elements")?;
        Ok(TruncKey {
            party,
            f,
            k,
            r: self.ring(m, "truncation r")?,
            r_hi: self.ring(m, "truncation r_hi")?,
            r_msb: self.ring(m, "truncation r_msb")?,
            dcf: self.fss::<_, u64>(party, f, m, "truncation DCF keys")?,
        })
    }

    fn tensor<R: Ring>(
        &mut self,
        expected: &[usize],
        what: &str,
    ) -> Result<RingTensor<R>, MpcError> {
        let rank = self.u8(what)? as usize;
        self.check_fits(rank, 8, what)?;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(self.usize(what)?);
        }
        if shape != expected {
            return Err(err(format!(
                "{what} has shape {shape:?}, the map needs {expected:?}"
            )));
        }
        let n = shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| err(format!("{what}: element count overflows")))?;
        let data = self.ring::<R>(n, what)?;
        RingTensor::from_vec(&shape, data).map_err(|e| err(format!("{what}: {e}")))
    }

    fn triple<R: Ring>(&mut self, party: Party) -> Result<TripleKey<R>, MpcError> {
        let map = Bilinear::read(self)?;
        let (sa, sb, sc) = map
            .shapes()
            .map_err(|e| err(format!("triple map {map:?}: {e}")))?;
        Ok(TripleKey {
            party,
            map,
            a: self.tensor(&sa, "triple a")?,
            b: self.tensor(&sb, "triple b")?,
            c: self.tensor(&sc, "triple c")?,
        })
    }

    fn spline<R: Ring>(&mut self, party: Party) -> Result<SplineKey<R>, MpcError> {
        let k = self.window::<R>(3, "spline window")?;
        let j = self.count(24, "spline knots")?;
        let mut vals = Vec::with_capacity(3 * j + 2);
        for _ in 0..3 * j + 2 {
            vals.push(self.u64("spline coefficient")? as i64);
        }
        let b = vals.split_off(2 * j + 1);
        let a = vals.split_off(j);
        let spline = Spline { knots: vals, a, b };
        spline.validate().map_err(|e| err(format!("spline: {e}")))?;
        let m = self.count(R::BITS as usize / 8, "spline elements")?;
        let r = self.ring::<R>(m, "spline r")?;
        let mj = m
            .checked_mul(j)
            .ok_or_else(|| err("spline: element count overflows"))?;
        // Wiped after it is split into pairs.
        let flat = zeroize::Zeroizing::new(
            self.ring::<R>(
                mj.checked_mul(2)
                    .ok_or_else(|| err("spline: element count overflows"))?,
                "spline c",
            )?,
        );
        let c = flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        let dcf = self.fss::<_, [u64; 2]>(party, k - 1, mj, "spline DCF keys")?;
        Ok(SplineKey {
            party,
            k,
            spline,
            r,
            c,
            dcf,
        })
    }

    fn key<R: Ring>(&mut self, party: Party, gate: &GateDesc) -> Result<GateKey<R>, MpcError> {
        let mismatch = |what: &str| err(format!("key body does not match its tag {gate}: {what}"));
        Ok(match *gate {
            GateDesc::Drelu { m, k } => {
                let key = self.drelu::<R>(party)?;
                if key.k != k || key.r.len() != m {
                    return Err(mismatch("window or element count"));
                }
                GateKey::Drelu(key)
            }
            GateDesc::Relu { m, k } => {
                let key = self.relu::<R>(party)?;
                if key.k != k || key.r.len() != m {
                    return Err(mismatch("window or element count"));
                }
                GateKey::Relu(key)
            }
            GateDesc::EqZero { m, k } => {
                let key = self.eq::<R>(party)?;
                if key.k != k || key.r.len() != m {
                    return Err(mismatch("window or element count"));
                }
                GateKey::EqZero(key)
            }
            GateDesc::Trunc { m, f, k } => {
                let key = self.trunc::<R>(party)?;
                if key.f != f || key.k != k || key.r.len() != m {
                    return Err(mismatch("f, window or element count"));
                }
                GateKey::Trunc(key)
            }
            GateDesc::Triple(map) => {
                let key = self.triple::<R>(party)?;
                if key.map != map {
                    return Err(mismatch("bilinear map"));
                }
                GateKey::Triple(Box::new(key))
            }
            GateDesc::MaxPool { shape, k } => {
                if PoolShape::read(self)? != shape {
                    return Err(mismatch("pool shape"));
                }
                // Each level holds at least a ReLU header.
                let n = self.count(12, "max-pool levels")?;
                let mut levels = Vec::with_capacity(n);
                for _ in 0..n {
                    let l = self.relu::<R>(party)?;
                    if l.k != k {
                        return Err(mismatch("window of a level"));
                    }
                    levels.push(l);
                }
                GateKey::MaxPool(MaxPoolKey {
                    party,
                    shape,
                    levels,
                })
            }
            GateDesc::MaxPoolOneHot { shape, k } => {
                if PoolShape::read(self)? != shape {
                    return Err(mismatch("pool shape"));
                }
                let cmp = self.drelu::<R>(party)?;
                if cmp.k != k {
                    return Err(mismatch("comparison window"));
                }
                let eq = self.eq::<R>(party)?;
                let mul = self.triple::<R>(party)?;
                if !matches!(mul.map, Bilinear::Mul { len } if len == eq.r.len()) {
                    return Err(mismatch("selection triple"));
                }
                GateKey::MaxPoolOneHot(Box::new(MaxPoolOneHotKey {
                    party,
                    shape,
                    cmp,
                    eq,
                    mul,
                }))
            }
            GateDesc::BatchNorm(shape) => {
                if BatchNormShape::read(self)? != shape {
                    return Err(mismatch("batch-norm shape"));
                }
                if R::BITS != 64 {
                    return Err(err("batch-norm keys exist for Z_2^64 only"));
                }
                GateKey::BatchNorm(Box::new(BatchNormKey {
                    party,
                    shape,
                    t_mean: self.trunc(party)?,
                    sq: self.triple(party)?,
                    t_sq: self.trunc(party)?,
                    t_var: self.trunc(party)?,
                    inv: self.spline(party)?,
                    g: self.triple(party)?,
                    t_g: self.trunc(party)?,
                    y: self.triple(party)?,
                    t_y: self.trunc(party)?,
                }))
            }
            GateDesc::Argmax { rows, n, k } => {
                if self.usize("argmax rows")? != rows || self.usize("argmax n")? != n {
                    return Err(mismatch("rows or n"));
                }
                let cmp = self.drelu::<R>(party)?;
                if cmp.k != k {
                    return Err(mismatch("comparison window"));
                }
                let eq = self.eq::<R>(party)?;
                GateKey::Argmax(ArgmaxKey {
                    party,
                    rows,
                    n,
                    cmp,
                    eq,
                })
            }
        })
    }
}

impl<R: Ring> KeyBundle<R> {
    /// Appends the bundle's encoding (see [`crate::codec`]) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_VERSION.to_le_bytes());
        // Ring widths are 32 or 64.
        out.push(R::BITS as u8);
        out.push(self.party.index());
        put_u64(out, self.tag.index);
        self.tag.gate.encode(out);
        put_key(out, &self.key);
    }

    /// The bundle's encoding in a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Parses exactly one bundle encoded by [`KeyBundle::encode_into`] for
    /// this ring. Refuses (never panics on) truncated, padded, garbled or
    /// inconsistent input with [`MpcError::Codec`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        let mut rd = Reader::new(bytes);
        if rd.bytes(4, "magic")? != BUNDLE_MAGIC {
            return Err(err("bad magic (not a key bundle)"));
        }
        let version = u16::from_le_bytes([rd.u8("version")?, rd.u8("version")?]);
        if version != BUNDLE_VERSION {
            return Err(err(format!(
                "bundle format version {version}, this build reads {BUNDLE_VERSION}"
            )));
        }
        let bits = rd.u8("ring width")?;
        if u32::from(bits) != R::BITS {
            return Err(err(format!(
                "bundle is for Z_2^{bits}, expected Z_2^{}",
                R::BITS
            )));
        }
        let p = rd.u8("party")?;
        let party = Party::from_index(p).ok_or_else(|| err(format!("party {p} is not 0 or 1")))?;
        let index = rd.u64("plan index")?;
        let gate = GateDesc::read(&mut rd)?;
        let key = rd.key::<R>(party, &gate)?;
        if rd.left() != 0 {
            return Err(err(format!(
                "{} trailing bytes after the bundle",
                rd.left()
            )));
        }
        Ok(KeyBundle {
            party,
            tag: BundleTag { index, gate },
            key,
        })
    }
}
