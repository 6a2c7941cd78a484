//! The public batched API: [`FssKeys`], one party's keys for many independent
//! functions of the same shape, evaluated at one point each (the MPC case:
//! one key per compared element).

use crate::codec::{self, Format, Trailer};
use crate::error::{DecodeError, FssError};
use crate::keys::{Key, Kind, Party, TreeKeys, TreeParams};
use crate::payload::Payload;
use crate::tree;
use core::marker::PhantomData;
use rand::{CryptoRng, Rng};

/// A scheme marker: [`Dpf`] or [`Dcf`].
pub trait Scheme: Send + Sync + 'static {
    /// The scheme's kind tag.
    const KIND: Kind;
}

/// Distributed point function (equality): `f(x) = beta if x == alpha else 0`.
///
/// Boyle, Gilboa, Ishai, CCS 2016 (ARIANN Algorithms 1-2), with the
/// control-bit-in-seed and early-termination optimisations.
#[derive(Debug, Clone, Copy)]
pub struct Dpf;

/// Distributed comparison function: `f(x) = beta if x < alpha else 0`
/// (unsigned comparison of `n`-bit integers).
///
/// Boyle et al., Eurocrypt 2021, Figure 3, with early termination.
#[derive(Debug, Clone, Copy)]
pub struct Dcf;

impl Scheme for Dpf {
    const KIND: Kind = Kind::Dpf;
}
impl Scheme for Dcf {
    const KIND: Kind = Kind::Dcf;
}

/// One party's keys for a batch of DPFs.
pub type DpfKeys<P> = FssKeys<Dpf, P>;
/// One party's keys for a batch of DCFs.
pub type DcfKeys<P> = FssKeys<Dcf, P>;

/// One party's keys for a batch of `len` independent functions of scheme `S`
/// with outputs in `P`, all of the same [`TreeParams`].
///
/// Key `i` is meant to be evaluated once, at one point `xs[i]`. The type does
/// not print its contents and is zeroized on drop.
#[derive(Clone)]
pub struct FssKeys<S: Scheme, P: Payload> {
    inner: TreeKeys<P>,
    _scheme: PhantomData<S>,
}

impl<S: Scheme, P: Payload> core::fmt::Debug for FssKeys<S, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FssKeys")
            .field("scheme", &S::KIND)
            .field("payload", &P::NAME)
            .field("party", &self.inner.party)
            .field("params", &self.inner.params)
            .field("len", &self.inner.len())
            .finish_non_exhaustive()
    }
}

impl<S: Scheme, P: Payload> FssKeys<S, P> {
    fn wrap(inner: TreeKeys<P>) -> Self {
        Self {
            inner,
            _scheme: PhantomData,
        }
    }

    /// Generates both parties' keys for `f_i(x) = betas[i]` if `x == alphas[i]`
    /// (DPF) or `x < alphas[i]` (DCF), else 0. Each party's root seeds are
    /// expanded from a 16-byte root key drawn from `rng` (AES-128 in counter
    /// mode; use an OS-seeded CSPRNG such as
    /// `rand::rngs::StdRng::from_os_rng()` outside tests), so that
    /// [`FssKeys::encode_into_unchecked`] carries the root key instead of
    /// 16 bytes per key (format 3); the rest is deterministic and runs on
    /// the rayon pool.
    pub fn generate<R: Rng + CryptoRng + ?Sized>(
        params: TreeParams,
        alphas: &[u64],
        betas: &[P],
        rng: &mut R,
    ) -> Result<(Self, Self), FssError> {
        tree::check_gen_inputs(params, alphas, betas)?;
        let (root_keys, roots) = tree::draw_roots(alphas.len(), rng);
        let (root_keys, roots) = (
            zeroize::Zeroizing::new(root_keys),
            zeroize::Zeroizing::new(roots),
        );
        let (mut k0, mut k1) = tree::gen_from_roots(S::KIND, params, alphas, betas, &roots)?;
        k0.root_key = Some(root_keys[0]);
        k1.root_key = Some(root_keys[1]);
        Ok((Self::wrap(k0), Self::wrap(k1)))
    }

    /// Like [`FssKeys::generate`] with explicit root seeds `[party 0, party 1]` per
    /// key. Deterministic; for tests and known-answer vectors.
    pub fn gen_from_roots(
        params: TreeParams,
        alphas: &[u64],
        betas: &[P],
        roots: &[[u128; 2]],
    ) -> Result<(Self, Self), FssError> {
        let (k0, k1) = tree::gen_from_roots(S::KIND, params, alphas, betas, roots)?;
        Ok((Self::wrap(k0), Self::wrap(k1)))
    }

    /// Evaluates key `i` at `xs[i]` into `out[i]` for all `i`, on the rayon pool.
    /// `xs[i]` must fit in `n` bits.
    pub fn eval(&self, xs: &[u64], out: &mut [P]) -> Result<(), FssError> {
        tree::eval_par(&self.inner, xs, out)
    }

    /// Like [`FssKeys::eval`] but on the calling thread only.
    pub fn eval_seq(&self, xs: &[u64], out: &mut [P]) -> Result<(), FssError> {
        tree::eval_seq(&self.inner, xs, out)
    }

    /// Convenience: evaluates into a new vector.
    pub fn eval_to_vec(&self, xs: &[u64]) -> Result<Vec<P>, FssError> {
        let mut out = vec![P::default(); xs.len()];
        self.eval(xs, &mut out)?;
        Ok(out)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.inner.len()
    }
    /// True if the batch holds no key.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }
    /// The party holding these keys.
    pub fn party(&self) -> Party {
        self.inner.party
    }
    /// The tree shape shared by all keys.
    pub fn params(&self) -> TreeParams {
        self.inner.params
    }
    /// Bytes of one key as this batch is bundled
    /// ([`FssKeys::encode_into_unchecked`]): [`TreeParams::key_bytes`], less
    /// the 16-byte root seed when the seeds are expanded from the batch's
    /// root key (keys from [`FssKeys::generate`]; the 16-byte root key itself
    /// is one per batch and not counted here).
    pub fn key_bytes(&self) -> usize {
        if self.inner.root_key.is_some() {
            Self::key_bytes_seeded_for(self.inner.params)
        } else {
            Self::key_bytes_for(self.inner.params)
        }
    }

    /// [`TreeParams::key_bytes`] less the root seed: what
    /// [`FssKeys::key_bytes`] reports for a batch of shape `params` from
    /// [`FssKeys::generate`].
    pub fn key_bytes_seeded_for(params: TreeParams) -> usize {
        params.key_bytes::<P>(S::KIND) - 16
    }

    /// Serialized bytes of one standalone key of this scheme and payload
    /// with tree shape `params` (root seed included, as in version 1 of the
    /// encoding; see [`TreeParams::key_bytes`]): what [`FssKeys::key_bytes`]
    /// reports for a batch of that shape made from explicit root seeds.
    pub fn key_bytes_for(params: TreeParams) -> usize {
        params.key_bytes::<P>(S::KIND)
    }

    /// Length of [`FssKeys::encode`]'s output for a batch of `count` keys of
    /// shape `params`, without generating it (what [`FssKeys::encoded_len`]
    /// reports); `None` if the length overflows `usize`.
    pub fn encoded_len_for(params: TreeParams, count: usize) -> Option<usize> {
        codec::checked_encoded_len::<P>(S::KIND, params, count, Format::Checked)
    }

    /// The length of [`FssKeys::encode_into_unchecked`]'s output for a
    /// batch of `count` keys of shape `params` from [`FssKeys::generate`]
    /// (format 3: no checksum, one root key instead of the root seeds).
    pub fn encoded_len_unchecked_for(params: TreeParams, count: usize) -> Option<usize> {
        codec::checked_encoded_len::<P>(S::KIND, params, count, Format::Seeded)
    }

    /// Key `i` as a standalone [`Key`] (for the reference implementation).
    pub fn key(&self, i: usize) -> Option<Key<P>> {
        self.inner.key(i)
    }

    /// Packs standalone keys of this scheme, `party` and `params` into a batch.
    pub fn from_keys(party: Party, params: TreeParams, keys: &[Key<P>]) -> Result<Self, FssError> {
        TreeKeys::from_keys(S::KIND, party, params, keys).map(Self::wrap)
    }

    /// Serializes the batch (see [`crate::codec`] for the layout).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(&self.inner)
    }

    /// Appends [`FssKeys::encode`]'s output to `out`, without a temporary
    /// buffer (the checksum covers the appended bytes only).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        codec::encode_into(&self.inner, out, Trailer::Sha256)
    }

    /// Appends format version 3, or 2 for a batch without a root key (see
    /// [`crate::codec`]): no SHA-256 trailer, and the key material in its
    /// memory order, for a container that checks the integrity of its bytes
    /// itself (a key file's signed chunk digests, a TLS stream). The
    /// checksum was about half the time of encoding and decoding, version
    /// 1's key-major gather much of the rest; version 3 carries the root key
    /// instead of 16 bytes per key. Read it back with
    /// [`FssKeys::decode_unchecked`].
    pub fn encode_into_unchecked(&self, out: &mut Vec<u8>) {
        codec::encode_into(&self.inner, out, Trailer::None)
    }

    /// Length of [`FssKeys::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        codec::encoded_len::<P>(S::KIND, self.inner.params, self.len(), Format::Checked)
    }

    /// Length of [`FssKeys::encode_into_unchecked`]'s output.
    pub fn encoded_len_unchecked(&self) -> usize {
        codec::encoded_len::<P>(
            S::KIND,
            self.inner.params,
            self.len(),
            Format::of(&self.inner, Trailer::None),
        )
    }

    /// Parses an encoding produced by [`FssKeys::encode`]. Refuses (never
    /// panics on) truncated, padded, corrupted or mismatched input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, S::KIND, Trailer::Sha256).map(Self::wrap)
    }

    /// Parses an encoding produced by [`FssKeys::encode_into_unchecked`]
    /// (versions 2 and 3, not 1). Refuses (never panics on) truncated, padded
    /// or mismatched input, as [`FssKeys::decode`]; corrupted key material
    /// is not detected here: that is the container's checksum's job.
    pub fn decode_unchecked(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, S::KIND, Trailer::None).map(Self::wrap)
    }
}
