//! Byte buffers that hold encoded key material, wiped when dropped.
//!
//! `zeroize::Zeroizing<Vec<u8>>` wipes with one volatile store per byte
//! (about a byte per cycle): on the key path, where hundreds of MB of
//! encoded bundles pass per second, that was about a quarter of the
//! dealer's time and a sixth of a party's. [`SecretBuf`] wipes with
//! `fill(0)` (a `memset`, at memory speed) followed by
//! [`std::hint::black_box`], which keeps the compiler from treating the
//! stores as dead. Like `zeroize`, this is best effort: it does not reach
//! copies the allocator or the kernel made; [`SecretBuf`] grows by copying
//! into a new buffer and wiping the old one, never by `realloc`.

/// Overwrites `buf` with zeros at memory speed (see the [module docs](self)).
pub fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(&*buf);
}

/// A byte buffer of key material, wiped ([`wipe`]) on drop and by
/// [`SecretBuf::clear`], which keeps the capacity for the next content.
#[derive(Default)]
pub struct SecretBuf {
    v: Vec<u8>,
    /// Bytes `[0, dirty)` may hold key material (an earlier, longer content).
    dirty: usize,
}

impl SecretBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            v: Vec::with_capacity(n),
            dirty: 0,
        }
    }

    /// Appends `data`. When the capacity does not suffice, the content moves
    /// to a new buffer (at least twice as large) and the old one is wiped.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let need = self.v.len().saturating_add(data.len());
        if need > self.v.capacity() {
            let mut bigger =
                SecretBuf::with_capacity(need.max(self.v.capacity().saturating_mul(2)));
            bigger.v.extend_from_slice(&self.v);
            bigger.dirty = bigger.v.len();
            std::mem::swap(self, &mut bigger);
            // `bigger` (the old buffer) is wiped as it drops.
        }
        self.v.extend_from_slice(data);
        self.dirty = self.dirty.max(self.v.len());
    }

    /// Appends with `f`, which must not grow the vector beyond its capacity
    /// (a reallocation would leave an unwiped copy): reserve first, as
    /// [`crate::KeyBundle::encode_into`] does with the exact size.
    pub fn append_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(&mut self.v);
        self.dirty = self.dirty.max(self.v.len());
    }

    /// Replaces the contents with `n` zero bytes (to be read into with
    /// [`SecretBuf::as_mut_slice`]); the old contents are wiped, and a
    /// buffer too small is replaced by a new one.
    pub fn zeroed(&mut self, n: usize) {
        self.clear();
        if n > self.v.capacity() {
            *self = SecretBuf::with_capacity(n);
        }
        self.v.resize(n, 0);
        self.dirty = n;
    }

    /// The contents, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.v
    }

    /// Wipes the contents and empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        let d = self.dirty.max(self.v.len());
        if d > self.v.len() {
            // Re-exposes the old bytes so they can be overwritten (`resize`
            // writes the zeros itself).
            self.v.resize(d, 0);
        }
        wipe(&mut self.v[..d]);
        self.v.clear();
        self.dirty = 0;
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.clear();
    }
}

impl core::ops::Deref for SecretBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.v
    }
}

impl AsRef<[u8]> for SecretBuf {
    fn as_ref(&self) -> &[u8] {
        &self.v
    }
}

impl core::fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBuf({} bytes)", self.v.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_clears_and_keeps_capacity() {
        let mut b = SecretBuf::with_capacity(4);
        b.extend_from_slice(&[7u8; 3]);
        b.extend_from_slice(&[8u8; 10]);
        assert_eq!(&b[..], &[7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]);
        let cap = b.v.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.v.capacity(), cap);
        b.append_with(|v| v.extend_from_slice(&[1, 2]));
        assert_eq!(&b[..], &[1, 2]);
        assert_eq!(b.dirty, 2);
        b.zeroed(100);
        assert_eq!(&b[..], &[0u8; 100][..]);
        b.as_mut_slice()[99] = 5;
        b.zeroed(3);
        assert_eq!(&b[..], &[0u8; 3]);
        let mut v = vec![9u8; 16];
        wipe(&mut v);
        assert_eq!(v, vec![0u8; 16]);
    }
}
