//! Binary encoding of [`KeyBundle`]s: one party's keys for one gate, as a
//! dealer writes them to a key file or a stream.
//!
//! Layout (all integers little-endian; `u64` unless said):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `ARKB` |
//! | 2 | format version (currently 2: the FSS keys without their own checksum) |
//! | 1 | ring width in bits (32 or 64) |
//! | 1 | party (0 or 1) |
//! | 8 | plan index |
//! | .. | the gate descriptor ([`GateDesc::encode`]: its kind number from the [gate table](crate::table), then its parameters) |
//! | .. | the key body of that kind (below) |
//!
//! Key bodies are written and read by each kind's gate module (dispatched by
//! the [gate table](crate::table)); their layouts (ring elements take
//! `BITS / 8` bytes each; "FSS" is a `u64`
//! byte length followed by an `ariann_fss` key encoding without its SHA-256
//! trailer, format version 2, see `ariann_fss::codec`; "seeded `v1 || v2
//! || ...`" is a 16-byte seed, then this party's *written half* of the
//! vectors' `n` elements in all, in order: party 0's last `ceil(n / 2)`,
//! party 1's first `ceil(n / 2)`; the other `floor(n / 2)` are expanded
//! from the seed, `crate::gates::util::split_halves`):
//!
//! - DReLU: `k` (u32), `m`, `r[m]`, `msb[m]`, FSS (DCF, `Z_2^64`)
//! - ReLU: `k` (u32), `m`, `r[m]`, `msb[m]`, `r_msb[m]`, FSS (DCF, `(Z_2^64)^2`)
//! - equality: `k` (u32), `m`, `r[m]`, FSS (DPF, `Z_2^64`)
//! - truncation: `f` (u32), `k` (u32), `m`, seeded `r || r_hi || r_msb`,
//!   FSS (DCF, `Z_2^64`)
//! - truncation (stochastic): `f` (u32), `k` (u32), `m`, seeded
//!   `r || r_hi || r_msb` (no FSS key)
//! - truncation (small): `f` (u32), `k` (u32), `m`, seeded
//!   `r || r_hi || r_msb || mc`, the bits `u[m]` (packed), FSS (DCF, `Z_2`)
//! - triple: the map, then seeded `a || b || c` (shapes from the map)
//! - triple reuse: the map, then seeded `a' || c'`
//! - spline (the `spline` gate, and inside batch-norm): `k` (u32), the
//!   spline (`J` then `J` knots, `J + 1` slopes, `J + 1` intercepts as i64),
//!   `m`, `r[m]`, `c[m J][2]`, FSS (DCF, `(Z_2^64)^2`); a `spline` gate's
//!   body must hold its function's spline exactly
//!   ([`SplineFn::spline`](crate::gates::spline::SplineFn::spline))
//! - max-pool: the shape, the number of levels, one ReLU body per level
//! - one-hot max-pool: the shape, a DReLU body, an equality body, a triple body
//! - batch-norm: the shape, then truncation, triple, truncation, truncation,
//!   spline, triple, truncation, triple, truncation bodies
//! - argmax: `rows`, `n`, a DReLU body, an equality body
//! - ReLU (small): `k` (u32), `m`, seeded `r || m || mr`, the bits `s[m]`
//!   (packed: eight to a byte, lowest bit first, `ceil(m / 8)` bytes, the
//!   padding bits zero), FSS (DCF, `Z_2`)
//! - truncation + ReLU: `f` (u32), `k` (u32), `m`, seeded `r || r_hi ||
//!   r_msb || md || mc || mdmc || md_rhi || md_rmsb`, the bits `s[m]` and
//!   `u[m]` (packed, each), FSS (DCF on `k - 1` bits, `Z_2`), FSS (DCF on
//!   `f` bits, `Z_2`)
//! - max-pool (small): the shape, the number of levels, one ReLU (small)
//!   body per level (the levels' number and sizes must be the tree's)
//! - argmax (small): `rows`, `n`, a DReLU (small) body (`k` (u32), `m`,
//!   `r[m]`, `m[m]`, the bits `s[m]` (packed), FSS (DCF, `Z_2`)), an
//!   equality body (counts and windows checked against `rows` and `n`)
//! - training product: a triple body, a flag byte (1 iff `cx` is there,
//!   as the descriptor's `dx`), then seeded `d || cx || cw` (`d` of the
//!   output's shape, `cx` of the left operand's, only if the flag is 1,
//!   `cw` of the right operand's)
//!
//! The encoding has no checksum of its own (raw shares carry no redundancy
//! to check): integrity is the container's job, a key file's signed
//! SHA-256 of every chunk, or the stream's TLS (in loopback plaintext mode,
//! TCP's own checksums only). Bundle format 1 also put a SHA-256 after
//! every FSS key batch; it checked the same bytes a second time and cost
//! about half of encoding and decoding, so format 2 leaves it out. Decoding never panics; every count is checked against the
//! bytes left before anything is allocated, so allocations are bounded by
//! the input length; the result is checked for internal consistency (party,
//! lengths, windows) and against its tag.

use crate::bundle::{BundleTag, GateDesc, GateKey, KeyBundle};
use crate::error::MpcError;
use ariann_fss::{FssKeys, Party, Payload, Scheme};
use ariann_ring::Ring;

/// Magic bytes of a bundle encoding.
pub const BUNDLE_MAGIC: [u8; 4] = *b"ARKB";
/// Current bundle format version (2: FSS keys without their own SHA-256).
pub const BUNDLE_VERSION: u16 = 2;

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
    // Straight into `out`: no temporary encoding to copy and wipe.
    put_usize(out, k.encoded_len_unchecked());
    k.encode_into_unchecked(out);
}

/// Bits (`0` or `1` each) packed eight to a byte, lowest bit first, the
/// last byte padded with zeros (`ceil(n / 8)` bytes; the count is the
/// caller's, from the body).
pub(crate) fn put_bits(out: &mut Vec<u8>, bits: &[u8]) {
    out.extend_from_slice(&crate::open::pack_bits(bits));
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

    pub(crate) fn u128(&mut self, what: &str) -> Result<u128, MpcError> {
        let mut b = [0u8; 16];
        b.copy_from_slice(self.bytes(16, what)?);
        Ok(u128::from_le_bytes(b))
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

    /// `n` bits written by [`put_bits`]; padding bits must be zero.
    pub(crate) fn bits(&mut self, n: usize, what: &str) -> Result<Vec<u8>, MpcError> {
        let raw = self.bytes(crate::open::bit_bytes(n), what)?;
        crate::open::unpack_bits(raw, n)
            .ok_or_else(|| err(format!("{what}: padding bits are not zero")))
    }

    pub(crate) fn fss<S: Scheme, P: Payload>(
        &mut self,
        party: Party,
        n_bits: u32,
        len: usize,
        what: &str,
    ) -> Result<FssKeys<S, P>, MpcError> {
        let n = self.count(1, what)?;
        let k = FssKeys::<S, P>::decode_unchecked(self.bytes(n, what)?)
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

    pub(crate) fn window<R: Ring>(&mut self, min: u32, what: &str) -> Result<u32, MpcError> {
        let k = self.u32(what)?;
        if (min..=R::BITS).contains(&k) {
            Ok(k)
        } else {
            Err(err(format!("{what} = {k} outside {min}..={}", R::BITS)))
        }
    }
}

impl<R: Ring> KeyBundle<R> {
    /// Appends the bundle's encoding (see [`crate::codec`]) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // One allocation of the exact size (predicted from the descriptor)
        // instead of doublings that copy and page-fault large bundles.
        if let Ok(c) = self.tag.gate.cost_in::<R>()
            && let Ok(n) = usize::try_from(c.encoded_bytes)
        {
            out.reserve(n);
        }
        out.extend_from_slice(&BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_VERSION.to_le_bytes());
        // Ring widths are 32 or 64.
        out.push(R::BITS as u8);
        out.push(self.party.index());
        put_u64(out, self.tag.index);
        self.tag.gate.encode(out);
        self.key.write_body(out);
    }

    /// The bundle's encoding in a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to a [`SecretBuf`](crate::secret::SecretBuf)
    /// (wiped when dropped or cleared), reserving its exact size first so
    /// no unwiped copy is left behind by a reallocation.
    pub fn encode_secret(&self, out: &mut crate::secret::SecretBuf) {
        out.append_with(|v| self.encode_into(v));
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
        let key = GateKey::read_body(&mut rd, party, &gate)?;
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
