//! The host of the AVX-512 IFMA Poly1305 fast path: a streaming Poly1305 state in radix 2^44
//! (limbs of 44, 44 and 42 bits, the "donna" 64-bit form) with libsodium's byte buffering
//! (`crypto_onetimeauth_poly1305_update`). Runs of at least `SIMD_MIN` bytes of whole blocks
//! within one `update` go to the eight-lane kernel in `ifma` (about 16 GB/s on bulk input on
//! a Sapphire-Rapids-class Xeon); shorter runs, the buffered partial blocks and the final
//! reduction stay in scalar limb arithmetic here.
//!
//! Why the scalar pieces are not the `poly1305` crate: the kernel's accumulator must continue
//! in the same state across short runs and be finished from it, and the crate's state cannot
//! take an accumulator from outside; and the crate's runtime-selected AVX2 backend costs about
//! 1.3 µs to set up and finish per message on our CI machine (the `throughput` test), against
//! about 0.1 µs here, which would dominate secret-stream messages up to a few KiB. Only built
//! for x86-64 without feature `portable`, and only used on CPUs with AVX-512F and IFMA; every
//! other CPU runs the crate ([`super::Poly1305`]). Checked against the crate for every length
//! to 2100 bytes, random splits and carry limits (tests below) and by the `noise_simd` fuzz
//! target.

use zeroize::Zeroize;

use super::ifma;

pub(super) const M44: u64 = 0xfff_ffff_ffff;
pub(super) const M42: u64 = 0x3ff_ffff_ffff;

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
    u64::from_le_bytes(a)
}

/// Streaming Poly1305 state of the fast path.
pub(crate) struct Fast {
    r: [u64; 3],
    s: [u64; 2],
    h: [u64; 3],
    pad: [u64; 2],
    buf: [u8; 16],
    buf_len: usize,
    /// r^1..r^8 and r^16 for the IFMA path, computed when that path is first taken.
    powers: Option<ifma::Powers>,
}

impl Drop for Fast {
    fn drop(&mut self) {
        self.r.zeroize();
        self.s.zeroize();
        self.pad.zeroize();
        if let Some(p) = &mut self.powers {
            p.zeroize();
        }
    }
}

/// Whether this CPU runs the fast path (AVX-512F and AVX-512 IFMA).
pub(super) fn available() -> bool {
    ifma::available()
}

/// Runs of whole blocks at least this many bytes go to the IFMA code where the CPU has it;
/// below ~200 bytes its fixed cost (the powers of r, the lane sums) loses to the scalar loop
/// (see the `throughput` test).
const SIMD_MIN: usize = 224;

impl Fast {
    pub(super) fn new(key: &[u8; 32]) -> Self {
        let (rk, pk) = key.split_at(16);
        let (r0b, r1b) = rk.split_at(8);
        let t0 = le64(r0b);
        let t1 = le64(r1b);
        let r0 = t0 & 0xffc_0fff_ffff;
        let r1 = ((t0 >> 44) | (t1 << 20)) & 0xfff_ffc0_ffff;
        let r2 = (t1 >> 24) & 0x00f_ffff_fc0f;
        let (p0, p1) = pk.split_at(8);
        Self {
            r: [r0, r1, r2],
            s: [r1 * (5 << 2), r2 * (5 << 2)],
            h: [0; 3],
            pad: [le64(p0), le64(p1)],
            buf: [0; 16],
            buf_len: 0,
            powers: None,
        }
    }

    fn blocks(&mut self, data: &[u8], hibit: u64) {
        let [r0, r1, r2] = self.r;
        let [s1, s2] = self.s;
        let [mut h0, mut h1, mut h2] = self.h;
        for m in data.chunks_exact(16) {
            let (a, b) = m.split_at(8);
            let t0 = le64(a);
            let t1 = le64(b);
            h0 += t0 & M44;
            h1 += ((t0 >> 44) | (t1 << 20)) & M44;
            h2 += ((t1 >> 24) & M42) | hibit;
            let d0 = u128::from(h0) * u128::from(r0)
                + u128::from(h1) * u128::from(s2)
                + u128::from(h2) * u128::from(s1);
            let mut d1 = u128::from(h0) * u128::from(r1)
                + u128::from(h1) * u128::from(r0)
                + u128::from(h2) * u128::from(s2);
            let mut d2 = u128::from(h0) * u128::from(r2)
                + u128::from(h1) * u128::from(r1)
                + u128::from(h2) * u128::from(r0);
            let mut c = (d0 >> 44) as u64;
            h0 = (d0 as u64) & M44;
            d1 += u128::from(c);
            c = (d1 >> 44) as u64;
            h1 = (d1 as u64) & M44;
            d2 += u128::from(c);
            c = (d2 >> 42) as u64;
            h2 = (d2 as u64) & M42;
            h0 += c * 5;
            c = h0 >> 44;
            h0 &= M44;
            h1 += c;
        }
        self.h = [h0, h1, h2];
    }

    /// Absorbs whole blocks (`data.len()` a multiple of 16) with the IFMA code where the CPU
    /// has it and the run is at least `simd_min` bytes; returns what is left for [`Self::blocks`].
    /// `h` goes in and comes back in the scalar form (limbs below 2^44, 2^44 + 2^7, 2^42, not
    /// fully reduced), which is within what `ifma::blocks` takes.
    fn blocks_simd<'a>(&mut self, data: &'a [u8], simd_min: usize) -> &'a [u8] {
        if data.len() < simd_min || data.len() < 16 {
            return data;
        }
        match ifma::blocks(self.h, self.r, &mut self.powers, data) {
            Some(h) => {
                self.h = h;
                &[]
            }
            None => data,
        }
    }

    /// Absorbs bytes (any length; partial blocks are buffered).
    pub(super) fn update(&mut self, data: &[u8]) {
        self.update_with(data, SIMD_MIN);
    }

    /// [`Self::update`], sending runs of at least `simd_min` whole-block bytes to the IFMA
    /// code (`usize::MAX`: never).
    pub(super) fn update_with(&mut self, data: &[u8], simd_min: usize) {
        let (mut buf, mut buf_len) = (self.buf, self.buf_len);
        super::buffered(&mut buf, &mut buf_len, data, |blocks| {
            let rest = self.blocks_simd(blocks, simd_min);
            self.blocks(rest, 1 << 40);
        });
        (self.buf, self.buf_len) = (buf, buf_len);
    }

    /// The 16-byte tag.
    #[inline]
    pub(super) fn finalize(mut self) -> [u8; 16] {
        if self.buf_len > 0 {
            let mut block = [0u8; 16];
            block
                .iter_mut()
                .zip(self.buf.iter().take(self.buf_len))
                .for_each(|(d, s)| *d = *s);
            if let Some(b) = block.get_mut(self.buf_len) {
                *b = 1;
            }
            self.blocks(&block, 0);
        }
        let [mut h0, mut h1, mut h2] = self.h;
        let mut c = h1 >> 44;
        h1 &= M44;
        h2 += c;
        c = h2 >> 42;
        h2 &= M42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= M44;
        h1 += c;
        c = h1 >> 44;
        h1 &= M44;
        h2 += c;
        c = h2 >> 42;
        h2 &= M42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= M44;
        h1 += c;

        // h + -p
        let mut g0 = h0 + 5;
        c = g0 >> 44;
        g0 &= M44;
        let mut g1 = h1 + c;
        c = g1 >> 44;
        g1 &= M44;
        let mut g2 = h2.wrapping_add(c).wrapping_sub(1 << 42);

        // select h if h < p, else h - p
        c = (g2 >> 63).wrapping_sub(1);
        g0 &= c;
        g1 &= c;
        g2 &= c;
        c = !c;
        h0 = (h0 & c) | g0;
        h1 = (h1 & c) | g1;
        h2 = (h2 & c) | g2;

        // h + pad
        let [t0, t1] = self.pad;
        h0 += t0 & M44;
        c = h0 >> 44;
        h0 &= M44;
        h1 += (((t0 >> 44) | (t1 << 20)) & M44) + c;
        c = h1 >> 44;
        h1 &= M44;
        h2 += ((t1 >> 24) & M42) + c;
        h2 &= M42;

        let lo = h0 | (h1 << 44);
        let hi = (h1 >> 20) | (h2 << 24);
        let mut out = [0u8; 16];
        let (a, b) = out.split_at_mut(8);
        a.copy_from_slice(&lo.to_le_bytes());
        b.copy_from_slice(&hi.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Fast as Poly1305;
    use poly1305::universal_hash::KeyInit;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            std::array::from_fn(|_| self.next() as u8)
        }
        fn vec(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn reference(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        poly1305::Poly1305::new(key.into())
            .compute_unpadded(msg)
            .into()
    }

    fn ours(key: &[u8; 32], parts: &[&[u8]], simd_min: usize) -> [u8; 16] {
        let mut p = Poly1305::new(key);
        for part in parts {
            p.update_with(part, simd_min);
        }
        p.finalize()
    }

    /// The crate, our scalar path, our default dispatch and the IFMA path taken for every run
    /// of whole blocks all agree.
    fn check(key: &[u8; 32], msg: &[u8], cuts: &[usize]) {
        let want = reference(key, msg);
        let mut parts = Vec::new();
        let mut at = 0;
        for &c in cuts {
            let c = c.clamp(at, msg.len());
            parts.push(&msg[at..c]);
            at = c;
        }
        parts.push(&msg[at..]);
        let len = msg.len();
        assert_eq!(
            ours(key, &parts, usize::MAX),
            want,
            "scalar, len {len} cuts {cuts:?}"
        );
        assert_eq!(
            ours(key, &parts, super::SIMD_MIN),
            want,
            "default, len {len} cuts {cuts:?}"
        );
        assert_eq!(ours(key, &parts, 0), want, "simd, len {len} cuts {cuts:?}");
    }

    /// Whether the IFMA kernel runs here; without it the test is skipped with a note, or
    /// fails when `NOISE_SIMD_REQUIRED=1`.
    fn ifma_or_note() -> bool {
        super::available() || crate::fuzzing::simd_absent(crate::fuzzing::FastPath::Poly1305)
    }

    #[test]
    fn rfc8439_vector() {
        let key: [u8; 32] =
            hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
                .unwrap()
                .try_into()
                .unwrap();
        let mut p = Poly1305::new(&key);
        p.update(b"Cryptographic Forum Research Group");
        assert_eq!(
            hex::encode(p.finalize()),
            "a8061dc1305136c6c22b8baf0c0127a9"
        );
    }

    #[test]
    fn matches_the_poly1305_crate_for_many_lengths_and_splits() {
        let mut x = 0x12345678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        };
        for len in 0..300usize {
            let key: [u8; 32] = std::array::from_fn(|_| next());
            let msg: Vec<u8> = (0..len).map(|_| next()).collect();
            let want = poly1305::Poly1305::new(&key.into()).compute_unpadded(&msg);
            let split = len / 3;
            let mut p = Poly1305::new(&key);
            p.update(&msg[..split]);
            p.update(&msg[split..]);
            assert_eq!(p.finalize(), <[u8; 16]>::from(want), "len {len}");
        }
        // all-ones key and message: the carries at their limits
        let key = [0xffu8; 32];
        let msg = [0xffu8; 64];
        let want = poly1305::Poly1305::new(&key.into()).compute_unpadded(&msg);
        let mut p = Poly1305::new(&key);
        p.update(&msg);
        assert_eq!(p.finalize(), <[u8; 16]>::from(want));
    }

    #[test]
    fn every_length_to_2100_one_call_and_split() {
        let mut rng = Rng(1);
        for len in 0..=2100usize {
            let key = rng.bytes::<32>();
            let msg = rng.vec(len);
            check(&key, &msg, &[]);
            // a partial block buffered before a long run, and a random split
            let c = rng.below(len + 1);
            check(
                &key,
                &msg,
                &[len.min(1 + rng.below(15)), c.max(len.min(16))],
            );
        }
    }

    #[test]
    fn random_lengths_and_splits_to_70000() {
        let mut rng = Rng(2);
        for _ in 0..300 {
            let len = rng.below(70_001);
            let key = rng.bytes::<32>();
            let msg = rng.vec(len);
            let mut cuts: Vec<usize> = (0..rng.below(7)).map(|_| rng.below(len + 1)).collect();
            cuts.sort_unstable();
            check(&key, &msg, &cuts);
            // small odd pieces first, then the rest in one run
            let a = rng.below(16);
            let b = a + rng.below(40);
            check(&key, &msg, &[a, b]);
        }
    }

    #[test]
    fn carry_limits() {
        // all-0xff key (r at its largest clamped value, pad all ones) and message
        let key = [0xffu8; 32];
        // r clamped to the max, pad zero / random
        let mut key0 = [0u8; 32];
        key0[..16].fill(0xff);
        let mut rng = Rng(3);
        let mut keyr = rng.bytes::<32>();
        keyr[..16].fill(0xff);
        let msg = vec![0xffu8; 70_000];
        for k in [&key, &key0, &keyr] {
            for len in [
                0, 15, 16, 17, 127, 128, 129, 255, 256, 1000, 1024, 4096, 65_536, 70_000,
            ] {
                let m = &msg[..len];
                check(k, m, &[]);
                check(k, m, &[1]);
                check(k, m, &[15, 16 * 7 + 15]);
                check(k, m, &[len / 2]);
            }
        }
        let big = vec![0xffu8; 1 << 20];
        check(&key, &big, &[]);
        check(&key0, &big, &[3]);
    }

    /// Calls the IFMA code itself, with h at the top of its contract, against the scalar
    /// blocks for every block count from 1 to 80.
    #[test]
    fn ifma_blocks_directly() {
        use super::{M42, M44};
        if !ifma_or_note() {
            return;
        }
        let mut rng = Rng(4);
        for round in 0..400 {
            let mut key = rng.bytes::<32>();
            if round % 4 == 0 {
                key[..16].fill(0xff);
            }
            let n = 1 + round % 80;
            let msg = if round % 3 == 0 {
                vec![0xff; n * 16]
            } else {
                rng.vec(n * 16)
            };
            let h = match round % 5 {
                0 => [0; 3],
                1 => [M44, M44 + (1 << 8), M42],
                2 => [(1 << 45) - 1, (1 << 45) - 1, (1 << 43) - 1],
                _ => [
                    rng.next() % (1 << 45),
                    rng.next() % (1 << 45),
                    rng.next() % (1 << 43),
                ],
            };
            let mut a = Poly1305::new(&key);
            a.h = h;
            a.blocks(&msg, 1 << 40);
            let mut b = Poly1305::new(&key);
            b.h = h;
            // computes the powers as update would
            assert!(
                b.blocks_simd(&msg, 0).is_empty(),
                "the IFMA path must take the run"
            );
            let got = b.h;
            assert!(
                got[0] <= M44 && got[1] < (1 << 44) + (1 << 7) && got[2] <= M42,
                "{got:?}"
            );
            assert!(b.powers.is_some());
            let mut fresh = None;
            assert_eq!(super::ifma::blocks(h, b.r, &mut fresh, &msg), Some(got));
            assert_eq!(super::ifma::blocks(h, b.r, &mut fresh, &msg), Some(got));
            assert_eq!(
                a.finalize(),
                b.finalize(),
                "round {round} blocks {n} h {h:?}"
            );
        }
    }

    /// `cargo test --release -p noise --lib poly1305::fast -- --ignored --nocapture`: one-shot MACs
    /// (new, update, finalize), best of three runs. "independent": the same key every time, so
    /// consecutive MACs may overlap in the CPU; "chained": each tag is folded into the next
    /// key, as secret-stream folds each tag into the next nonce, so latency counts.
    #[test]
    #[ignore = "benchmark"]
    #[allow(clippy::disallowed_methods)] // Instant::now: a benchmark needs the clock
    fn throughput() {
        use std::hint::black_box;
        use std::time::Instant;
        type Mac<'a> = &'a dyn Fn(&[u8; 32], &[u8]) -> [u8; 16];
        let mut rng = Rng(5);
        let key0 = rng.bytes::<32>();
        let msg = rng.vec(1 << 20);
        let _ = ifma_or_note();
        let time = |len: usize, chained: bool, f: Mac<'_>| {
            let iters = ((64usize << 20) / (len + 64)).clamp(16, 500_000);
            let m = &msg[..len];
            let mut best = f64::MAX;
            for _ in 0..3 {
                let mut key = key0;
                let t = Instant::now();
                for _ in 0..iters {
                    let tag = f(black_box(&key), black_box(m));
                    if chained {
                        key.iter_mut().zip(tag).for_each(|(k, t)| *k ^= t);
                    } else {
                        black_box(tag);
                    }
                }
                black_box(key);
                best = best.min(t.elapsed().as_secs_f64() / iters as f64);
            }
            best
        };
        let scalar = |k: &[u8; 32], m: &[u8]| ours(k, &[m], usize::MAX);
        let default = |k: &[u8; 32], m: &[u8]| ours(k, &[m], super::SIMD_MIN);
        let forced = |k: &[u8; 32], m: &[u8]| ours(k, &[m], 0);
        let krate = |k: &[u8; 32], m: &[u8]| reference(k, m);
        let macs: [Mac<'_>; 4] = [&scalar, &default, &forced, &krate];
        for chained in [false, true] {
            println!(
                "{:>12} {:>8} | {:>18} | {:>18} | {:>18} | {:>18}",
                if chained { "chained" } else { "independent" },
                "bytes",
                "scalar",
                "ifma (default)",
                "ifma (forced)",
                "poly1305 crate"
            );
            for len in [64, 128, 192, 224, 256, 512, 1024, 4096, 16_384, 1 << 20] {
                let cells = macs.map(|f| {
                    let t = time(len, chained, f);
                    format!("{:6.2} GB/s {:7.1} ns", len as f64 / t / 1e9, t * 1e9)
                });
                println!("{:>12} {len:>8} | {}", "", cells.join(" | "));
            }
        }
    }
}
