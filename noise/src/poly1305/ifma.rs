//! AVX-512 IFMA multi-block Poly1305: eight interleaved block streams, one per 64-bit lane,
//! in the same radix 2^44 (limbs of 44, 44 and 42 bits) as the scalar host state in module
//! `fast`, multiplied with `vpmadd52luq` / `vpmadd52huq` (`d = lo + hi * 2^52`, and 2^52 is
//! 2^44 * 2^8, or 2^42 * 2^10 for the top limb, so `hi` carries into the next limb shifted by
//! 8 or 10; 2^130 = 5 mod p wraps the top carry into limb 0 times 5).
//!
//! Lane `i` of a 128-byte group holds block `i` of that group. Every group but the last is
//! absorbed as `v = (v + m) * r^8` lane by lane; the last one is multiplied by `r^(8 - i)` in
//! lane `i` instead, and the lanes are summed. A run whose block count is not a multiple of
//! eight starts with a partial group whose blocks sit in the top lanes, after zero lanes
//! without the 2^128 bit, which leaves the polynomial unchanged. Long runs use two chains,
//! `v` on the even and `w` on the odd groups, each multiplied by r^16 (twice the independent
//! work per multiply latency); the pair before the last group ends with `v * r^8 + w`.
//!
//! Bounds (every IFMA operand must stay below 2^52). The powers of r have limbs below
//! 2^44 + 2^9, 2^44 + 2^7, 2^42 + 2^6 (see [`mul_lat`]), so `20 * r1 < 2^48.4` and
//! `20 * r2 < 2^46.4`. A lane after [`mul`] is below 2^44, 2^44 + 2^7, 2^42. A multiplicand,
//! `v + m`, `v + w + m`, or the incoming `h` plus `m` (contract for `h`: below 2^45, 2^45,
//! 2^43; `m` is below 2^44, 2^44, 2^41), is then below 2^46, 2^46, 2^43.6. So each 3-term
//! product sum `d_k` is below 2^93.3: its low-half sum is below 2^54 and its high-half sum
//! below 2^41.3, the carries `c0 = d0 >> 44 < 2^49.3`, `c1 < 2^47.6`, `c2 = d2 >> 42 < 2^48.5`
//! (`5 * c2 < 2^51`) all fit, and the carried limbs are back in range.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m512i, _mm_cvtsi128_si64, _mm512_add_epi64, _mm512_and_si512, _mm512_castsi512_si128,
    _mm512_loadu_si512, _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_mask_blend_epi64,
    _mm512_maskz_loadu_epi64, _mm512_maskz_mov_epi64, _mm512_maskz_set1_epi64, _mm512_or_si512,
    _mm512_permutex2var_epi64, _mm512_permutexvar_epi64, _mm512_reduce_add_epi64, _mm512_set_epi64,
    _mm512_set1_epi64, _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srli_epi64,
    _mm512_storeu_si512, _mm512_sub_epi64, _mm512_ternarylogic_epi64,
};

use super::fast::{M42, M44};

/// Runs of at least this many 128-byte groups use the two-chain loop.
const TWO_CHAINS_MIN: usize = 4;

/// Powers of r for [`blocks`], computed on its first call for a key.
#[derive(Clone)]
pub(super) struct Powers {
    /// `r^8, r^7, .., r^1` in lanes 0..7: limbs `r0, r1, r2`, then `20 * r1`, `20 * r2`.
    fin: [[u64; 8]; 5],
    /// r^16 in the same five-word form.
    r16: [u64; 5],
}

impl Powers {
    pub(super) fn zeroize(&mut self) {
        use zeroize::Zeroize;
        self.fin.iter_mut().for_each(|l| l.zeroize());
        self.r16.zeroize();
    }
}

/// Whether this CPU can run [`blocks`].
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
}

/// Absorbs `data` (whole 16-byte blocks, each with the 2^128 bit; a trailing partial block is
/// ignored) into `h` for the key `r` (clamped, radix 2^44, as in module `fast`). `h` must
/// be below 2^45, 2^45, 2^43 per limb, as `fast` leaves it; the result is below 2^44,
/// 2^44 + 2^7, 2^42, the same form. Fills `powers` if it is `None`. `None` when the CPU lacks
/// AVX-512F or IFMA.
pub(super) fn blocks(
    h: [u64; 3],
    r: [u64; 3],
    powers: &mut Option<Powers>,
    data: &[u8],
) -> Option<[u64; 3]> {
    if !available() {
        return None;
    }
    // SAFETY: the CPU supports avx512f and avx512ifma, checked just above.
    Some(unsafe { blocks_avx512(h, r, powers, data) })
}

/// The vector state: limb `k` of the eight lanes.
type V = [__m512i; 3];

/// A multiplier: limbs `r0, r1, r2`, then `20 * r1`, `20 * r2`, eight lanes each.
type R = [__m512i; 5];

#[inline]
#[target_feature(enable = "avx512f")]
fn load(b: &[u64; 8]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes; the load has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store(v: __m512i) -> [u64; 8] {
    let mut b = [0u64; 8];
    // SAFETY: `b` is 64 writable bytes; the store has no alignment requirement.
    unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), v) };
    b
}

/// The first `min(s.len(), 64) / 8` words of `s`, zeros after them.
#[inline]
#[target_feature(enable = "avx512f")]
fn load_prefix(s: &[u8]) -> __m512i {
    let words = s.len().min(64) / 8;
    if words == 0 {
        return _mm512_setzero_si512();
    }
    let mask = (0xffu16 >> (8 - words)) as u8;
    // SAFETY: the mask enables exactly the first `words` 8-byte words, all inside `s`
    // (`8 * words <= s.len()`); masked-off words are not accessed. No alignment requirement.
    unsafe { _mm512_maskz_loadu_epi64(mask, s.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn add(a: V, b: V) -> V {
    let [a0, a1, a2] = a;
    let [b0, b1, b2] = b;
    [
        _mm512_add_epi64(a0, b0),
        _mm512_add_epi64(a1, b1),
        _mm512_add_epi64(a2, b2),
    ]
}

/// `20 * x` for `x < 2^47`, one IFMA (LLVM turns shifts and adds into a multiply, which
/// AVX-512F alone can only emulate).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn times20(x: __m512i) -> __m512i {
    _mm512_madd52lo_epu64(_mm512_setzero_si512(), x, _mm512_set1_epi64(20))
}

/// Each word in all lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn broadcast(r: &[u64; 5]) -> R {
    r.map(|x| _mm512_set1_epi64(x as i64))
}

/// `h * r` per lane, carried to limbs below 2^44, 2^44 + 2^7, 2^42 (see the module bounds).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul(h: V, r: &R) -> V {
    let [h0, h1, h2] = h;
    let [r0, r1, r2, s1, s2] = *r;
    let m44 = _mm512_set1_epi64(M44 as i64);
    let m42 = _mm512_set1_epi64(M42 as i64);
    let z = _mm512_setzero_si512();
    // limb 2 of h is ready first and limb 1 last after the carry below: start with h2.
    let mut d0l = _mm512_madd52lo_epu64(z, h2, s1);
    let mut d0h = _mm512_madd52hi_epu64(z, h2, s1);
    let mut d1l = _mm512_madd52lo_epu64(z, h2, s2);
    let mut d1h = _mm512_madd52hi_epu64(z, h2, s2);
    let mut d2l = _mm512_madd52lo_epu64(z, h2, r0);
    let mut d2h = _mm512_madd52hi_epu64(z, h2, r0);
    d0l = _mm512_madd52lo_epu64(d0l, h0, r0);
    d0h = _mm512_madd52hi_epu64(d0h, h0, r0);
    d1l = _mm512_madd52lo_epu64(d1l, h0, r1);
    d1h = _mm512_madd52hi_epu64(d1h, h0, r1);
    d2l = _mm512_madd52lo_epu64(d2l, h0, r2);
    d2h = _mm512_madd52hi_epu64(d2h, h0, r2);
    d0l = _mm512_madd52lo_epu64(d0l, h1, s2);
    d0h = _mm512_madd52hi_epu64(d0h, h1, s2);
    d1l = _mm512_madd52lo_epu64(d1l, h1, r0);
    d1h = _mm512_madd52hi_epu64(d1h, h1, r0);
    d2l = _mm512_madd52lo_epu64(d2l, h1, r1);
    d2h = _mm512_madd52hi_epu64(d2h, h1, r1);
    // d_k = d_k_lo + d_k_hi * 2^52, and 2^52 = 2^44 * 2^8 (= 2^42 * 2^10 for limb 2)
    let c0 = _mm512_add_epi64(_mm512_srli_epi64::<44>(d0l), _mm512_slli_epi64::<8>(d0h));
    let h0 = _mm512_and_si512(d0l, m44);
    let d1l = _mm512_add_epi64(d1l, c0);
    let c1 = _mm512_add_epi64(_mm512_srli_epi64::<44>(d1l), _mm512_slli_epi64::<8>(d1h));
    let h1 = _mm512_and_si512(d1l, m44);
    let d2l = _mm512_add_epi64(d2l, c1);
    let c2 = _mm512_add_epi64(_mm512_srli_epi64::<42>(d2l), _mm512_slli_epi64::<10>(d2h));
    let h2 = _mm512_and_si512(d2l, m42);
    // 2^130 = 5 (mod p)
    let h0 = _mm512_add_epi64(h0, _mm512_add_epi64(c2, _mm512_slli_epi64::<2>(c2)));
    let h1 = _mm512_add_epi64(h1, _mm512_srli_epi64::<44>(h0));
    let h0 = _mm512_and_si512(h0, m44);
    [h0, h1, h2]
}

/// [`mul`] with a shorter dependency chain and more instructions, for lone multiplies (the
/// powers): the 18 products in parallel, then two rounds of parallel carries. Same input
/// bounds; the result is below 2^44 + 2^9, 2^44 + 2^7, 2^42 + 2^6.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_lat(h: V, r: &R) -> V {
    let [g0, g1, g2] = mul_lat_partial(h, r);
    let m44 = _mm512_set1_epi64(M44 as i64);
    let m42 = _mm512_set1_epi64(M42 as i64);
    // round 2: 5 * (g2 >> 42) < 2^8.1, g0 >> 44 < 2^7, g1 >> 44 < 2^5.4
    let e2 = _mm512_srli_epi64::<42>(g2);
    let h0 = _mm512_add_epi64(
        _mm512_add_epi64(_mm512_and_si512(g0, m44), e2),
        _mm512_slli_epi64::<2>(e2),
    );
    let h1 = _mm512_add_epi64(_mm512_and_si512(g1, m44), _mm512_srli_epi64::<44>(g0));
    let h2 = _mm512_add_epi64(_mm512_and_si512(g2, m42), _mm512_srli_epi64::<44>(g1));
    [h0, h1, h2]
}

/// [`mul_lat`] up to its first round of carries: limbs below 2^51, 2^49.4, 2^47.7, fine for
/// summing the lanes but not for another multiply.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_lat_partial(h: V, r: &R) -> V {
    let [h0, h1, h2] = h;
    let [r0, r1, r2, s1, s2] = *r;
    let m44 = _mm512_set1_epi64(M44 as i64);
    let m42 = _mm512_set1_epi64(M42 as i64);
    let z = _mm512_setzero_si512();
    let sum3 = |a: [(__m512i, __m512i); 3]| {
        let [(a0, b0), (a1, b1), (a2, b2)] = a;
        let lo = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, a0, b0), a1, b1);
        let hi = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, a0, b0), a1, b1);
        (
            _mm512_add_epi64(lo, _mm512_madd52lo_epu64(z, a2, b2)),
            _mm512_add_epi64(hi, _mm512_madd52hi_epu64(z, a2, b2)),
        )
    };
    let (d0l, d0h) = sum3([(h2, s1), (h0, r0), (h1, s2)]);
    let (d1l, d1h) = sum3([(h2, s2), (h0, r1), (h1, r0)]);
    let (d2l, d2h) = sum3([(h2, r0), (h0, r2), (h1, r1)]);
    // each d_k carries into the next limb at once (c0 < 2^49.3, c1 < 2^47.6, 5 c2 < 2^50.9)
    let c0 = _mm512_add_epi64(_mm512_srli_epi64::<44>(d0l), _mm512_slli_epi64::<8>(d0h));
    let c1 = _mm512_add_epi64(_mm512_srli_epi64::<44>(d1l), _mm512_slli_epi64::<8>(d1h));
    let c2 = _mm512_add_epi64(_mm512_srli_epi64::<42>(d2l), _mm512_slli_epi64::<10>(d2h));
    let g0 = _mm512_add_epi64(
        _mm512_add_epi64(_mm512_and_si512(d0l, m44), c2),
        _mm512_slli_epi64::<2>(c2),
    );
    let g1 = _mm512_add_epi64(_mm512_and_si512(d1l, m44), c0);
    let g2 = _mm512_add_epi64(_mm512_and_si512(d2l, m42), c1);
    [g0, g1, g2]
}

/// The blocks of a group as limbs, from its two 64-byte halves: lane `i` takes block words
/// `idx_lo[i]` and `idx_lo[i] + 1` of `a || b`; `hibit` is 2^40 in the lanes holding blocks.
#[inline]
#[target_feature(enable = "avx512f")]
fn limbs(a: __m512i, b: __m512i, idx_lo: __m512i, idx_hi: __m512i, hibit: __m512i) -> V {
    let m44 = _mm512_set1_epi64(M44 as i64);
    let t0 = _mm512_permutex2var_epi64(a, idx_lo, b);
    let t1 = _mm512_permutex2var_epi64(a, idx_hi, b);
    let m0 = _mm512_and_si512(t0, m44);
    // (t0 >> 44 | t1 << 20) & M44
    let m1 = _mm512_ternarylogic_epi64::<0xa8>(
        _mm512_srli_epi64::<44>(t0),
        _mm512_slli_epi64::<20>(t1),
        m44,
    );
    let m2 = _mm512_or_si512(_mm512_srli_epi64::<24>(t1), hibit);
    [m0, m1, m2]
}

/// The eight blocks of a full group as limbs.
#[inline]
#[target_feature(enable = "avx512f")]
fn group(g: &[u8; 128]) -> V {
    let (lo, hi) = g.split_at(64);
    // SAFETY: `lo` and `hi` are 64 bytes each (halves of a 128-byte array); unaligned loads.
    let (a, b) = unsafe {
        (
            _mm512_loadu_si512(lo.as_ptr().cast()),
            _mm512_loadu_si512(hi.as_ptr().cast()),
        )
    };
    limbs(
        a,
        b,
        _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0),
        _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1),
        _mm512_set1_epi64(1 << 40),
    )
}

/// `(v + g) * r`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn step(v: V, g: &[u8; 128], r: &R) -> V {
    mul(add(v, group(g)), r)
}

/// `[r^8, .., r^1]`, r^8 and r^16 as multipliers, for the key `r`: lane exponents
/// `[2, 2, 2, 1, 2, 2, 2, 1]`, then `[4, 3, 2, 1, ..]`, then `[8, 7, .., 1]`, each step
/// multiplying some lanes by the lane-0 power so far (the others by r or 1); one more
/// multiply squares r^8.
#[target_feature(enable = "avx512f,avx512ifma")]
fn compute_powers(r: [u64; 3]) -> (R, R, R) {
    let [r0, r1, r2] = r;
    let r1v = broadcast(&[r0, r1, r2, 20 * r1, 20 * r2]);
    let z = _mm512_setzero_si512();
    let one: R = [_mm512_set1_epi64(1), z, z, z, z];
    let blend = |mask: u8, a: &R, b: &R| {
        let mut o = *b;
        o.iter_mut()
            .zip(a)
            .for_each(|(o, a)| *o = _mm512_mask_blend_epi64(mask, *o, *a));
        o
    };
    let spread = |v: V| {
        let [a, b, c] = v.map(|x| _mm512_permutexvar_epi64(z, x));
        [a, b, c, times20(b), times20(c)]
    };
    let [a0, a1, a2, _, _] = r1v;
    let x = mul_lat([a0, a1, a2], &blend(0b0111_0111, &r1v, &one));
    let y = mul_lat(
        x,
        &blend(0b0001_0001, &spread(x), &blend(0b0010_0010, &r1v, &one)),
    );
    let [f0, f1, f2] = mul_lat(y, &blend(0b0000_1111, &spread(y), &one));
    let r8 = spread([f0, f1, f2]);
    let [e0, e1, e2, _, _] = r8;
    let r16 = spread(mul_lat([e0, e1, e2], &r8));
    ([f0, f1, f2, times20(f1), times20(f2)], r8, r16)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn blocks_avx512(h: [u64; 3], r: [u64; 3], powers: &mut Option<Powers>, data: &[u8]) -> [u64; 3] {
    let n = data.len() / 16;
    let k = n % 8;
    if n == 0 {
        return h;
    }
    // the powers stay in registers; the cache is written off the critical path
    let (fin, r8, r16) = match powers {
        Some(p) => {
            let [f0, f1, f2, f3, f4] = &p.fin;
            let fin: R = [load(f0), load(f1), load(f2), load(f3), load(f4)];
            let r8 = broadcast(&[f0, f1, f2, f3, f4].map(|[x, ..]| *x));
            (fin, r8, broadcast(&p.r16))
        }
        None => {
            let (fin, r8, r16) = compute_powers(r);
            let first_lane = |x: __m512i| _mm_cvtsi128_si64(_mm512_castsi512_si128(x)) as u64;
            *powers = Some(Powers {
                fin: fin.map(|x| store(x)),
                r16: r16.map(first_lane),
            });
            (fin, r8, r16)
        }
    };
    let (first, rest) = data.split_at(k * 16);
    let (groups, _) = rest.as_chunks::<128>();

    // The incoming h joins the lane of the first block: lane 0, or 8 - k when the first group
    // is partial, its k blocks in lanes 8-k..7 after zero lanes.
    let lane0 = if k == 0 { 0 } else { 8 - k };
    let one = 1u8 << lane0;
    let [a0, a1, a2] = h;
    let mut v: V = [
        _mm512_maskz_set1_epi64(one, a0 as i64),
        _mm512_maskz_set1_epi64(one, a1 as i64),
        _mm512_maskz_set1_epi64(one, a2 as i64),
    ];
    if k != 0 {
        // lane i takes block i - (8 - k); the index wraps to a word past the k blocks, which
        // the masked loads left zero, for i < 8 - k
        let shift = _mm512_set1_epi64(2 * lane0 as i64);
        let m = limbs(
            load_prefix(first),
            load_prefix(first.get(64..).unwrap_or(&[])),
            _mm512_sub_epi64(_mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), shift),
            _mm512_sub_epi64(_mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1), shift),
            _mm512_maskz_mov_epi64(0xff << lane0, _mm512_set1_epi64(1 << 40)),
        );
        v = add(v, m);
        if groups.is_empty() {
            return finish(mul_lat_partial(v, &fin));
        }
        v = mul(v, &r8);
    }

    let Some((last, mut body)) = groups.split_last() else {
        return h;
    };
    if body.len() + 1 >= TWO_CHAINS_MIN {
        // an odd count of groups before `last`: pairs, then one that pairs with `last`
        if body.len() % 2 == 0
            && let Some((g, b)) = body.split_first()
        {
            v = step(v, g, &r8);
            body = b;
        }
        let (pairs, odd) = body.as_chunks::<2>();
        let mut w: V = [_mm512_setzero_si512(); 3];
        for [g0, g1] in pairs {
            v = step(v, g0, &r16);
            w = step(w, g1, &r16);
        }
        for g in odd {
            v = step(v, g, &r8);
        }
        v = add(v, w);
    } else {
        for g in body {
            v = step(v, g, &r8);
        }
    }
    finish(mul_lat_partial(add(v, group(last)), &fin))
}

/// The sum of the lanes (limbs below 2^51, 2^49.4, 2^47.7, from [`mul_lat_partial`]),
/// carried to limbs below 2^44, 2^44 + 1, 2^42.
#[inline]
#[target_feature(enable = "avx512f")]
fn finish(v: V) -> [u64; 3] {
    let [v0, v1, v2] = v;
    // sums below 2^54, 2^52.4, 2^50.7; the carries: below 2^10, 2^8.5, 5 * 2^8.8, 1
    let mut h0 = _mm512_reduce_add_epi64(v0) as u64;
    let mut h1 = _mm512_reduce_add_epi64(v1) as u64;
    let mut h2 = _mm512_reduce_add_epi64(v2) as u64;
    h1 += h0 >> 44;
    h0 &= M44;
    h2 += h1 >> 44;
    h1 &= M44;
    h0 += (h2 >> 42) * 5;
    h2 &= M42;
    h1 += h0 >> 44;
    h0 &= M44;
    [h0, h1, h2]
}
