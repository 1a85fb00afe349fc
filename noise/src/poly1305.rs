//! Poly1305 one-time authenticator (RFC 8439) with byte-stream buffering like libsodium's
//! `crypto_onetimeauth_poly1305_update`, dispatching once per key:
//! - the portable path, the RustCrypto `poly1305` crate (audited), on every CPU without
//!   AVX-512 IFMA and always with feature `portable`;
//! - the fast path on x86-64 CPUs with AVX-512F and AVX-512 IFMA: the eight-lane kernel in
//!   `ifma` for runs of whole blocks, hosted by the radix-2^44 state in `fast` (which says why
//!   its short runs and final reduction are not the crate). Both are checked against the crate
//!   (tests, `noise_simd` fuzz target).

use poly1305::universal_hash::{KeyInit, UniversalHash};

#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
mod fast;
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
mod ifma;

/// Streaming Poly1305: `new`, any number of `update`s, `finalize`.
pub(crate) enum Poly1305 {
    /// The `poly1305` crate.
    Portable(Portable),
    /// AVX-512 IFMA (see module `fast`).
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    Fast(fast::Fast),
}

impl Poly1305 {
    /// A MAC for the one-time `key`, on the fast path where the CPU has it.
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        if fast::available() {
            return Self::Fast(fast::Fast::new(key));
        }
        Self::Portable(Portable::new(key))
    }

    /// Absorbs bytes (any length; partial blocks are buffered).
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Portable(p) => p.update(data),
            #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
            Self::Fast(f) => f.update(data),
        }
    }

    /// The 16-byte tag.
    pub(crate) fn finalize(self) -> [u8; 16] {
        match self {
            Self::Portable(p) => p.finalize(),
            #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
            Self::Fast(f) => f.finalize(),
        }
    }
}

/// The `poly1305` crate behind a byte-stream `update`: the crate takes whole blocks until the
/// last call, so a partial block is held here until more bytes or `finalize` arrive. The
/// crate wipes its key state on drop (feature `zeroize`); the buffer holds message bytes
/// (secretstream authenticates ciphertext), nothing secret.
pub(crate) struct Portable {
    mac: poly1305::Poly1305,
    buf: [u8; 16],
    buf_len: usize,
}

impl Portable {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            mac: poly1305::Poly1305::new(key.into()),
            buf: [0; 16],
            buf_len: 0,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        // whole blocks only reach the crate, so `update_padded` adds no padding
        buffered(&mut self.buf, &mut self.buf_len, data, |blocks| {
            self.mac.update_padded(blocks);
        });
    }

    pub(crate) fn finalize(self) -> [u8; 16] {
        let tail = self.buf.get(..self.buf_len).unwrap_or(&[]);
        self.mac.compute_unpadded(tail).into()
    }
}

/// libsodium's byte-stream `update` over a block function, shared by both paths: tops up the
/// buffered partial block `buf[..*buf_len]` first, hands whole 16-byte blocks to `blocks` (a
/// completed buffered block, then the longest whole-block run of `data`), and keeps the tail.
fn buffered(
    buf: &mut [u8; 16],
    buf_len: &mut usize,
    mut data: &[u8],
    mut blocks: impl FnMut(&[u8]),
) {
    if *buf_len > 0 {
        let take = (16 - *buf_len).min(data.len());
        let (head, rest) = data.split_at(take);
        buf.iter_mut()
            .skip(*buf_len)
            .zip(head)
            .for_each(|(d, s)| *d = *s);
        *buf_len += take;
        data = rest;
        if *buf_len < 16 {
            return;
        }
        blocks(buf);
        *buf_len = 0;
    }
    let (whole, tail) = data.split_at(data.len() - data.len() % 16);
    if !whole.is_empty() {
        blocks(whole);
    }
    buf.iter_mut().zip(tail).for_each(|(d, s)| *d = *s);
    *buf_len = tail.len();
}

/// The fast path's MAC of `parts` fed in turn, with runs of at least `simd_min` whole-block
/// bytes on the IFMA kernel (`0`: every run), or `None` where the fast path is not available.
/// For the differential checks (`crate::fuzzing::simd`, tests).
#[allow(clippy::unnecessary_wraps)] // `None` only on builds without the fast path
pub(crate) fn fast_mac(key: &[u8; 32], parts: &[&[u8]], simd_min: usize) -> Option<[u8; 16]> {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    if fast::available() {
        let mut f = fast::Fast::new(key);
        for p in parts {
            f.update_with(p, simd_min);
        }
        return Some(f.finalize());
    }
    let _ = (key, parts, simd_min);
    None
}

/// Whether [`Poly1305::new`] takes the fast path on this CPU and build.
pub(crate) fn fast_available() -> bool {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    if fast::available() {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        poly1305::Poly1305::new(key.into())
            .compute_unpadded(msg)
            .into()
    }

    fn pieces(msg: &[u8], split: usize) -> [&[u8]; 3] {
        let a = split.min(msg.len());
        let b = (a + split / 3 + 1).min(msg.len());
        [&msg[..a], &msg[a..b], &msg[b..]]
    }

    #[test]
    fn rfc8439_vector_on_both_paths() {
        let key: [u8; 32] =
            hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
                .unwrap()
                .try_into()
                .unwrap();
        let msg = b"Cryptographic Forum Research Group";
        let want = "a8061dc1305136c6c22b8baf0c0127a9";
        let mut p = Poly1305::new(&key);
        p.update(msg);
        assert_eq!(hex::encode(p.finalize()), want);
        let mut p = Portable::new(&key);
        p.update(msg);
        assert_eq!(hex::encode(p.finalize()), want);
        if let Some(tag) = fast_mac(&key, &[msg], 0) {
            assert_eq!(hex::encode(tag), want);
        } else {
            crate::fuzzing::simd_absent(crate::fuzzing::FastPath::Poly1305);
        }
    }

    /// The buffering wrapper and the dispatched MAC equal the crate in one shot, for every
    /// length to 600 and cuts that leave partial blocks behind.
    #[test]
    fn streaming_matches_the_crate_for_every_length_and_cut() {
        let mut x = 0x1234_5678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        };
        for len in 0..600usize {
            let key: [u8; 32] = std::array::from_fn(|_| next());
            let msg: Vec<u8> = (0..len).map(|_| next()).collect();
            let want = reference(&key, &msg);
            for split in [0, 1, 15, 17, len / 2, len] {
                let mut p = Portable::new(&key);
                let mut d = Poly1305::new(&key);
                for part in pieces(&msg, split) {
                    p.update(part);
                    d.update(part);
                }
                assert_eq!(p.finalize(), want, "portable len {len} split {split}");
                assert_eq!(d.finalize(), want, "dispatch len {len} split {split}");
            }
        }
    }

    #[test]
    fn fast_path_present_when_required() {
        if !fast_available() {
            crate::fuzzing::simd_absent(crate::fuzzing::FastPath::Poly1305);
        }
    }
}
