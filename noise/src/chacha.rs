//! ChaCha20 (IETF variant: 32-bit block counter, 96-bit nonce) keystream XOR, the primitive
//! under libsodium secretstream. One entry point, [`xor_keystream`], dispatching at run time:
//! a hand-written AVX-512 backend on x86_64 CPUs with AVX-512F and AVX-512BW (module `avx512`),
//! otherwise the portable backend, the RustCrypto `chacha20` crate.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
mod avx512;

/// XORs the ChaCha20 keystream for `key` and `nonce`, starting at block `counter`, into
/// `data` (libsodium `crypto_stream_chacha20_ietf_xor_ic`). The caller keeps
/// `counter + data.len() / 64` below 2^32 (secretstream messages are far smaller); past that the
/// block counter wraps to 0 with the nonce unchanged (where libsodium aborts), in both backends.
pub(crate) fn xor_keystream(key: &[u8; 32], nonce: &[u8; 12], counter: u32, data: &mut [u8]) {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    if avx512::try_xor_keystream(key, nonce, counter, data) {
        return;
    }
    portable(key, nonce, counter, data);
}

/// `dst = src ^ keystream` (as [`xor_keystream`] on a copy of `src`), in one pass where the
/// backend can. `src` and `dst` must have the same length; if not, `dst` is left untouched.
pub(crate) fn xor_keystream_from(
    key: &[u8; 32],
    nonce: &[u8; 12],
    counter: u32,
    src: &[u8],
    dst: &mut [u8],
) {
    if src.len() != dst.len() {
        return;
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    if avx512::try_xor_keystream_from(key, nonce, counter, src, dst) {
        return;
    }
    dst.copy_from_slice(src);
    portable(key, nonce, counter, dst);
}

/// Whether [`xor_keystream`] takes the AVX-512 fast path on this CPU and build.
pub(crate) fn fast_available() -> bool {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    if avx512::available() {
        return true;
    }
    false
}

/// The `chacha20` crate, plus the wrap of the block counter that the crate refuses (it never
/// produces block 2^32 - 1 and stops there).
pub(crate) fn portable(key: &[u8; 32], nonce: &[u8; 12], counter: u32, data: &mut [u8]) {
    let mut ctr = counter;
    let mut rest = data;
    while !rest.is_empty() {
        // Blocks the crate will produce from `ctr` on: up to, not including, 2^32 - 1.
        let room = u64::from(u32::MAX - ctr).saturating_mul(64);
        let n = usize::try_from(room).map_or(rest.len(), |r| r.min(rest.len()));
        let (now, later) = core::mem::take(&mut rest).split_at_mut(n);
        if n == 0 {
            // `ctr` is 2^32 - 1: do that one block here, then carry on from block 0.
            let (block, later) = later.split_at_mut(later.len().min(64));
            for (d, k) in block.iter_mut().zip(block_scalar(key, nonce, ctr)) {
                *d ^= k;
            }
            rest = later;
            ctr = 0;
            continue;
        }
        let mut c = ChaCha20::new(key.into(), nonce.into());
        c.seek(u64::from(ctr) * 64);
        c.apply_keystream(now);
        // `n` is a multiple of 64 unless `later` is empty, and at most `room`.
        ctr = ctr.wrapping_add(u32::try_from(n / 64).unwrap_or(u32::MAX));
        rest = later;
    }
}

/// One keystream block, scalar (RFC 8439 §2.3).
fn block_scalar(key: &[u8; 32], nonce: &[u8; 12], counter: u32) -> [u8; 64] {
    fn qr(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        let [mut va, mut vb, mut vc, mut vd] = [a, b, c, d].map(|i| x.get(i).copied().unwrap_or(0));
        va = va.wrapping_add(vb);
        vd = (vd ^ va).rotate_left(16);
        vc = vc.wrapping_add(vd);
        vb = (vb ^ vc).rotate_left(12);
        va = va.wrapping_add(vb);
        vd = (vd ^ va).rotate_left(8);
        vc = vc.wrapping_add(vd);
        vb = (vb ^ vc).rotate_left(7);
        for (i, v) in [(a, va), (b, vb), (c, vc), (d, vd)] {
            if let Some(w) = x.get_mut(i) {
                *w = v;
            }
        }
    }
    let le = |b: &[u8]| b.iter().rev().fold(0u32, |w, &x| (w << 8) | u32::from(x));
    let mut s = [0u32; 16];
    let words = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]
        .into_iter()
        .chain(key.chunks_exact(4).map(le))
        .chain([counter])
        .chain(nonce.chunks_exact(4).map(le));
    for (w, v) in s.iter_mut().zip(words) {
        *w = v;
    }
    let mut x = s;
    for _ in 0..10 {
        qr(&mut x, 0, 4, 8, 12);
        qr(&mut x, 1, 5, 9, 13);
        qr(&mut x, 2, 6, 10, 14);
        qr(&mut x, 3, 7, 11, 15);
        qr(&mut x, 0, 5, 10, 15);
        qr(&mut x, 1, 6, 11, 12);
        qr(&mut x, 2, 7, 8, 13);
        qr(&mut x, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for ((o, a), b) in out.chunks_exact_mut(4).zip(x).zip(s) {
        o.copy_from_slice(&a.wrapping_add(b).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    const RFC_KEY: [u8; 32] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
        25, 26, 27, 28, 29, 30, 31,
    ];
    const RFC_NONCE: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0];
    const RFC_PLAIN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
    const RFC_CIPHER: &str = "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b\
f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8\
07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736\
5af90bbf74a35be6b40b8eedf2785e42874d";

    /// The AVX-512 backend, or `None` (with a note) where the CPU lacks it.
    #[allow(clippy::unnecessary_wraps)]
    fn simd(key: &[u8; 32], nonce: &[u8; 12], counter: u32, data: &mut [u8]) -> Option<()> {
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        if avx512::try_xor_keystream(key, nonce, counter, data) {
            return Some(());
        }
        let _ = (key, nonce, counter, data);
        None
    }

    /// Runs the AVX-512 backend, or returns `false` with a note (a failure when
    /// `NOISE_SIMD_REQUIRED=1`) where it is absent.
    fn simd_or_note(key: &[u8; 32], nonce: &[u8; 12], counter: u32, data: &mut [u8]) -> bool {
        simd(key, nonce, counter, data).is_some()
            || crate::fuzzing::simd_absent(crate::fuzzing::FastPath::ChaCha20)
    }

    #[test]
    fn fast_path_present_when_required() {
        if !fast_available() {
            crate::fuzzing::simd_absent(crate::fuzzing::FastPath::ChaCha20);
        }
    }

    #[test]
    fn rfc8439_2_4_2() {
        let expected = hex::decode(RFC_CIPHER).unwrap();
        let mut data = RFC_PLAIN.to_vec();
        xor_keystream(&RFC_KEY, &RFC_NONCE, 1, &mut data);
        assert_eq!(data, expected);

        let mut data = RFC_PLAIN.to_vec();
        portable(&RFC_KEY, &RFC_NONCE, 1, &mut data);
        assert_eq!(data, expected);

        let mut data = RFC_PLAIN.to_vec();
        if simd_or_note(&RFC_KEY, &RFC_NONCE, 1, &mut data) {
            assert_eq!(data, expected);
        }

        let mut data = RFC_PLAIN.to_vec();
        for (chunk, ctr) in data.chunks_mut(64).zip(1..) {
            for (d, k) in chunk
                .iter_mut()
                .zip(block_scalar(&RFC_KEY, &RFC_NONCE, ctr))
            {
                *d ^= k;
            }
        }
        assert_eq!(data, expected);
    }

    /// Runs both backends on `len` bytes at `offset` into a buffer of random bytes, and checks
    /// they agree and leave the bytes around the slice alone.
    fn check(rng: &mut ChaCha20Rng, len: usize, offset: usize, counter: u32) -> bool {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut nonce);
        let mut buf = vec![0u8; offset + len + 64];
        rng.fill_bytes(&mut buf);
        let mut want = buf.clone();
        portable(&key, &nonce, counter, &mut want[offset..offset + len]);
        let plain = buf[offset..offset + len].to_vec();
        let mut got = buf;
        if !simd_or_note(&key, &nonce, counter, &mut got[offset..offset + len]) {
            return false;
        }
        assert_eq!(got, want, "len {len} offset {offset} counter {counter}");
        // the fused copy-and-XOR form, source and destination at different alignments
        let src = &plain[..];
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        {
            let mut dst = vec![0x5au8; len + 70];
            let doff = (offset * 7 + 1) % 64;
            assert!(avx512::try_xor_keystream_from(
                &key,
                &nonce,
                counter,
                src,
                &mut dst[doff..doff + len]
            ));
            assert_eq!(
                &dst[doff..doff + len],
                &want[offset..offset + len],
                "from {len}"
            );
            assert!(
                dst[..doff]
                    .iter()
                    .chain(&dst[doff + len..])
                    .all(|&b| b == 0x5a)
            );
        }
        let mut dst2 = vec![0u8; len];
        xor_keystream_from(&key, &nonce, counter, src, &mut dst2);
        assert_eq!(
            &dst2[..],
            &want[offset..offset + len],
            "dispatch from, len {len}"
        );
        true
    }

    #[test]
    fn simd_matches_portable_every_length() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for len in 0..=2100 {
            let offset = len % 64;
            let counter = rng.next_u32() >> 1;
            if !check(&mut rng, len, offset, counter) {
                return;
            }
        }
    }

    #[test]
    fn simd_matches_portable_random() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for i in 0..300 {
            let len = usize::try_from(rng.next_u32() % 70_001).unwrap();
            let offset = usize::try_from(rng.next_u32() % 63).unwrap() + 1;
            let counter = if i % 3 == 0 {
                rng.next_u32() % 4
            } else {
                rng.next_u32() >> 1
            };
            if !check(&mut rng, len, offset, counter) {
                return;
            }
        }
    }

    #[test]
    fn counter_wraps() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut nonce);
        // Portable wrap: blocks 2^32-2, 2^32-1, 0, 1, ... equal the per-block reference.
        let mut data = vec![0u8; 64 * 40 + 17];
        portable(&key, &nonce, u32::MAX - 1, &mut data);
        for (chunk, i) in data.chunks(64).zip(0u32..) {
            let block = block_scalar(&key, &nonce, i.wrapping_add(u32::MAX - 1));
            assert_eq!(chunk, &block[..chunk.len()], "block {i}");
        }
        for len in [1, 64, 65, 300, 1024, 1100, 2048, 3000] {
            for back in [0u32, 1, 2, 3, 5, 8, 15, 16, 17, 40] {
                let counter = u32::MAX - back;
                for offset in [0, 3] {
                    if !check(&mut rng, len, offset, counter) {
                        return;
                    }
                }
            }
        }
    }

    #[test]
    fn block_scalar_matches_crate() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for _ in 0..50 {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 12];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut nonce);
            let counter = rng.next_u32() >> 1;
            let mut block = [0u8; 64];
            let mut c = ChaCha20::new((&key).into(), (&nonce).into());
            c.seek(u64::from(counter) * 64);
            c.apply_keystream(&mut block);
            assert_eq!(block, block_scalar(&key, &nonce, counter));
        }
    }

    /// `cargo test --release -p noise --lib chacha -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, run by hand in release mode"]
    #[allow(clippy::disallowed_methods)] // Instant::now: a benchmark needs the clock
    fn speed() {
        use std::time::Instant;
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        type Backend = fn(&[u8; 32], &[u8; 12], u32, &mut [u8]);
        let simd_fn: Backend = |k, n, c, d| {
            let _ = simd(k, n, c, d);
        };
        let backends: [(&str, Backend); 3] = [
            ("portable", portable),
            ("avx512", simd_fn),
            ("dispatch", xor_keystream),
        ];
        println!(
            "{:>8} {:>10} {:>10} {:>10}   (GB/s, best of 7)",
            "bytes", "portable", "avx512", "dispatch"
        );
        for size in [
            64usize,
            128,
            256,
            384,
            512,
            576,
            768,
            1024,
            1088,
            1152,
            1280,
            1536,
            2048,
            4096,
            16384,
            1 << 20,
        ] {
            let mut buf = vec![0u8; size];
            let mut row = format!("{size:>8}");
            for (_, f) in &backends {
                let iters = (64 << 20) / size.max(256);
                let mut best = f64::MAX;
                for _ in 0..7 {
                    let t = Instant::now();
                    for i in 0..iters {
                        f(&key, &nonce, u32::try_from(i & 0xffff).unwrap(), &mut buf);
                    }
                    best = best.min(t.elapsed().as_secs_f64());
                    std::hint::black_box(&buf);
                }
                let gbs = (size * iters) as f64 / best / 1e9;
                row += &format!(" {gbs:>10.3}");
            }
            println!("{row}");
        }
    }
}
