//! AVX-512 ChaCha20 (IETF) keystream XOR.
//!
//! - Bulk (whole 1 KiB chunks): 16 blocks at once, word-sliced: register `xi` holds state word
//!   `i` of 16 consecutive blocks, rotations are `vprold`, and a 16x16 dword transpose turns the
//!   result into 16 keystream blocks. The first column round of words 1..3 does not depend on
//!   the block counter, so it is computed once per call in scalar code.
//! - Short inputs and tails: "row" layout, one block per 128-bit lane (4 blocks per set of
//!   four registers `a, b, c, d`), diagonalised with `vpshufd`; 1..=4 blocks use one set,
//!   5..=8 two and 9..=12 three, interleaved so their dependency chains overlap. 13..=15 blocks
//!   run the 16-block kernel and use what they need. After at least one whole 1 KiB chunk, a
//!   tail of 1..=8 blocks runs its row sets inside the last 16-block kernel call.
//! - A partial final block goes through byte-masked loads and stores (AVX-512BW), so no byte
//!   outside `data` is read or written.
//!
//! The 32-bit block counter wraps modulo 2^32 (per lane), the nonce words never change.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m512i, _mm_setr_epi32, _mm512_add_epi32, _mm512_broadcast_i32x4, _mm512_loadu_si512,
    _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8, _mm512_rol_epi32, _mm512_set1_epi32,
    _mm512_setr_epi32, _mm512_shuffle_epi32, _mm512_shuffle_i32x4, _mm512_storeu_si512,
    _mm512_unpackhi_epi32, _mm512_unpackhi_epi64, _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
    _mm512_xor_si512,
};

/// "expand 32-byte k", little-endian words.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Whether this CPU runs the AVX-512 backend (AVX-512F for the arithmetic, AVX-512BW for the
/// byte-masked partial-block loads and stores).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// XORs the keystream into `data` (see `super::xor_keystream`) and returns `true`, or returns
/// `false` without touching `data` when the CPU lacks AVX-512F/BW.
pub(super) fn try_xor_keystream(
    key: &[u8; 32],
    nonce: &[u8; 12],
    counter: u32,
    data: &mut [u8],
) -> bool {
    if !available() {
        return false;
    }
    // SAFETY: `available()` just confirmed that the CPU supports avx512f and avx512bw, the
    // only target features `xor_impl` enables.
    unsafe { xor_impl(&state(key, nonce, counter), data) };
    true
}

/// Like [`try_xor_keystream`], but reads the input from `src` and writes `src ^ keystream`
/// to `dst` (same length, checked by the caller), so the data is loaded and stored once.
pub(super) fn try_xor_keystream_from(
    key: &[u8; 32],
    nonce: &[u8; 12],
    counter: u32,
    src: &[u8],
    dst: &mut [u8],
) -> bool {
    if !available() || src.len() != dst.len() {
        return false;
    }
    // SAFETY: `available()` just confirmed that the CPU supports avx512f and avx512bw, the
    // only target features `xor_from_impl` enables.
    unsafe { xor_from_impl(&state(key, nonce, counter), src, dst) };
    true
}

/// The 16-word input block; word 12 is the counter of the first block.
fn state(key: &[u8; 32], nonce: &[u8; 12], counter: u32) -> [u32; 16] {
    let mut s = [0u32; 16];
    let (head, rest) = s.split_at_mut(4);
    head.copy_from_slice(&SIGMA);
    let (k, rest) = rest.split_at_mut(8);
    for (w, b) in k.iter_mut().zip(key.as_chunks::<4>().0) {
        *w = u32::from_le_bytes(*b);
    }
    let (c, n) = rest.split_at_mut(1);
    c.fill(counter);
    for (w, b) in n.iter_mut().zip(nonce.as_chunks::<4>().0) {
        *w = u32::from_le_bytes(*b);
    }
    s
}

#[inline(always)]
fn quarter_round_scalar(a: &mut u32, b: &mut u32, c: &mut u32, d: &mut u32) {
    *a = a.wrapping_add(*b);
    *d = (*d ^ *a).rotate_left(16);
    *c = c.wrapping_add(*d);
    *b = (*b ^ *c).rotate_left(12);
    *a = a.wrapping_add(*b);
    *d = (*d ^ *a).rotate_left(8);
    *c = c.wrapping_add(*d);
    *b = (*b ^ *c).rotate_left(7);
}

/// `s` with the counter-independent part of the first column round done: columns 1..3 fully,
/// and word 0 holds `s0 + s4` (the first step of column 0). Words 4, 8 and 12 are untouched.
fn first_round(s: &[u32; 16]) -> [u32; 16] {
    let [
        mut x0,
        mut x1,
        mut x2,
        mut x3,
        x4,
        mut x5,
        mut x6,
        mut x7,
        x8,
        mut x9,
        mut x10,
        mut x11,
        x12,
        mut x13,
        mut x14,
        mut x15,
    ] = *s;
    x0 = x0.wrapping_add(x4);
    quarter_round_scalar(&mut x1, &mut x5, &mut x9, &mut x13);
    quarter_round_scalar(&mut x2, &mut x6, &mut x10, &mut x14);
    quarter_round_scalar(&mut x3, &mut x7, &mut x11, &mut x15);
    [
        x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15,
    ]
}

macro_rules! add {
    ($a:expr, $b:expr) => {
        _mm512_add_epi32($a, $b)
    };
}
macro_rules! xor {
    ($a:expr, $b:expr) => {
        _mm512_xor_si512($a, $b)
    };
}
macro_rules! rol {
    ($a:expr, $n:literal) => {
        _mm512_rol_epi32::<$n>($a)
    };
}

/// One ChaCha quarter round on four registers (any layout).
macro_rules! qr {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $a = add!($a, $b);
        $d = rol!(xor!($d, $a), 16);
        $c = add!($c, $d);
        $b = rol!(xor!($b, $c), 12);
        $a = add!($a, $b);
        $d = rol!(xor!($d, $a), 8);
        $c = add!($c, $d);
        $b = rol!(xor!($b, $c), 7);
    };
}

/// Broadcasts a `u32` to all 16 lanes.
macro_rules! splat {
    ($x:expr) => {
        _mm512_set1_epi32(u32::cast_signed($x))
    };
}

/// 4x4 transpose of 128-bit lanes: lane `k` of the result `k` is `[a_k, b_k, c_k, d_k]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose_lanes(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> [__m512i; 4] {
    let t0 = _mm512_shuffle_i32x4::<0x44>(a, b); // a0 a1 b0 b1
    let t1 = _mm512_shuffle_i32x4::<0x44>(c, d); // c0 c1 d0 d1
    let t2 = _mm512_shuffle_i32x4::<0xee>(a, b); // a2 a3 b2 b3
    let t3 = _mm512_shuffle_i32x4::<0xee>(c, d); // c2 c3 d2 d3
    [
        _mm512_shuffle_i32x4::<0x88>(t0, t1),
        _mm512_shuffle_i32x4::<0xdd>(t0, t1),
        _mm512_shuffle_i32x4::<0x88>(t2, t3),
        _mm512_shuffle_i32x4::<0xdd>(t2, t3),
    ]
}

/// Dword transpose inside each 128-bit lane of four word-sliced registers: lane `k` of result
/// `m` holds words `w, w+1, w+2, w+3` of block `4k + m`, where `xi` holds word `w + i`.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose_words(x0: __m512i, x1: __m512i, x2: __m512i, x3: __m512i) -> [__m512i; 4] {
    let a0 = _mm512_unpacklo_epi32(x0, x1);
    let a1 = _mm512_unpackhi_epi32(x0, x1);
    let a2 = _mm512_unpacklo_epi32(x2, x3);
    let a3 = _mm512_unpackhi_epi32(x2, x3);
    [
        _mm512_unpacklo_epi64(a0, a2),
        _mm512_unpackhi_epi64(a0, a2),
        _mm512_unpacklo_epi64(a1, a3),
        _mm512_unpackhi_epi64(a1, a3),
    ]
}

/// Keystream blocks `ctr .. ctr + 16` (counter wrapping per lane), in block order.
/// `s` is the input state, `p` is `first_round(s)`. Alongside, runs the 20 rounds of the
/// row-layout sets in `rows` (see [`rows_init`]), to fill the gaps of this dependency chain.
#[target_feature(enable = "avx512f")]
#[inline]
fn blocks16<const R: usize>(
    s: &[u32; 16],
    p: &[u32; 16],
    ctr: u32,
    rows: &mut [[__m512i; 4]; R],
) -> [__m512i; 16] {
    #[rustfmt::skip]
    let [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, _, s13, s14, s15] = *s;
    #[rustfmt::skip]
    let [p0, p1, p2, p3, _, p5, p6, p7, _, p9, p10, p11, _, p13, p14, p15] = *p;
    let ctrv = _mm512_add_epi32(
        splat!(ctr),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    );

    // Round 1, column 0, after its first step `x0 += x4` (precomputed in p0).
    let mut x0 = splat!(p0);
    let mut x4 = splat!(s4);
    let mut x8 = splat!(s8);
    let mut x12 = rol!(xor!(ctrv, x0), 16);
    x8 = add!(x8, x12);
    x4 = rol!(xor!(x4, x8), 12);
    x0 = add!(x0, x4);
    x12 = rol!(xor!(x12, x0), 8);
    x8 = add!(x8, x12);
    x4 = rol!(xor!(x4, x8), 7);
    // Round 1, columns 1..3: precomputed.
    let (mut x1, mut x5, mut x9, mut x13) = (splat!(p1), splat!(p5), splat!(p9), splat!(p13));
    let (mut x2, mut x6, mut x10, mut x14) = (splat!(p2), splat!(p6), splat!(p10), splat!(p14));
    let (mut x3, mut x7, mut x11, mut x15) = (splat!(p3), splat!(p7), splat!(p11), splat!(p15));
    for set in rows.iter_mut() {
        double_round_rows(set);
    }
    // Round 2 (diagonal).
    qr!(x0, x5, x10, x15);
    qr!(x1, x6, x11, x12);
    qr!(x2, x7, x8, x13);
    qr!(x3, x4, x9, x14);
    // Rounds 3..20.
    for _ in 0..9 {
        qr!(x0, x4, x8, x12);
        qr!(x1, x5, x9, x13);
        qr!(x2, x6, x10, x14);
        qr!(x3, x7, x11, x15);
        qr!(x0, x5, x10, x15);
        qr!(x1, x6, x11, x12);
        qr!(x2, x7, x8, x13);
        qr!(x3, x4, x9, x14);
        for set in rows.iter_mut() {
            double_round_rows(set);
        }
    }

    x0 = add!(x0, splat!(s0));
    x1 = add!(x1, splat!(s1));
    x2 = add!(x2, splat!(s2));
    x3 = add!(x3, splat!(s3));
    x4 = add!(x4, splat!(s4));
    x5 = add!(x5, splat!(s5));
    x6 = add!(x6, splat!(s6));
    x7 = add!(x7, splat!(s7));
    x8 = add!(x8, splat!(s8));
    x9 = add!(x9, splat!(s9));
    x10 = add!(x10, splat!(s10));
    x11 = add!(x11, splat!(s11));
    x12 = add!(x12, ctrv);
    x13 = add!(x13, splat!(s13));
    x14 = add!(x14, splat!(s14));
    x15 = add!(x15, splat!(s15));

    let [a0, a1, a2, a3] = transpose_words(x0, x1, x2, x3);
    let [b0, b1, b2, b3] = transpose_words(x4, x5, x6, x7);
    let [c0, c1, c2, c3] = transpose_words(x8, x9, x10, x11);
    let [d0, d1, d2, d3] = transpose_words(x12, x13, x14, x15);
    // Result m of transpose_lanes(a_j, b_j, c_j, d_j) is block 4m + j.
    let [k0, k4, k8, k12] = transpose_lanes(a0, b0, c0, d0);
    let [k1, k5, k9, k13] = transpose_lanes(a1, b1, c1, d1);
    let [k2, k6, k10, k14] = transpose_lanes(a2, b2, c2, d2);
    let [k3, k7, k11, k15] = transpose_lanes(a3, b3, c3, d3);
    [
        k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15,
    ]
}

/// `block ^= ks` for a whole 64-byte block.
#[target_feature(enable = "avx512f")]
#[inline]
fn xor_full(block: &mut [u8; 64], ks: __m512i) {
    let p = block.as_mut_ptr();
    // SAFETY: `p` points to 64 writable bytes (`block`); unaligned loads and stores are allowed.
    unsafe {
        let v = _mm512_loadu_si512(p.cast());
        _mm512_storeu_si512(p.cast(), xor!(v, ks));
    }
}

/// `chunk ^= ks[..chunk.len()]` for a chunk of at most 64 bytes.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn xor_partial(chunk: &mut [u8], ks: __m512i) {
    let n = chunk.len();
    if n == 0 {
        return;
    }
    let mask = u64::MAX >> 64usize.saturating_sub(n);
    let p = chunk.as_mut_ptr();
    // SAFETY: the mask enables the first min(n, 64) bytes, all inside `chunk`; masked-off bytes
    // are neither read nor written (AVX-512 masked accesses suppress them, faults included).
    unsafe {
        let v = _mm512_maskz_loadu_epi8(mask, p.cast());
        _mm512_mask_storeu_epi8(p.cast(), mask, xor!(v, ks));
    }
}

/// XORs consecutive keystream blocks into `data` (which may end inside or before the last one).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn xor_blocks(data: &mut [u8], ks: &[__m512i]) {
    for (chunk, k) in data.chunks_mut(64).zip(ks) {
        if let Ok(block) = <&mut [u8; 64]>::try_from(&mut *chunk) {
            xor_full(block, *k);
        } else {
            xor_partial(chunk, *k);
        }
    }
}

/// One double round in the row layout: `a, b, c, d` are the state rows, one block per lane.
/// The diagonal round rotates rows `a`, `c` and `d` and leaves `b` in place: `b` is the last
/// row a quarter round writes and the first it reads, so this keeps the lane shuffles off the
/// dependency chain.
#[target_feature(enable = "avx512f")]
#[inline]
fn double_round_rows(r: &mut [__m512i; 4]) {
    let [mut a, mut b, mut c, mut d] = *r;
    qr!(a, b, c, d);
    // Column i becomes (a[i-1], b[i], c[i+1], d[i+2]), the diagonal starting at word i-1.
    a = _mm512_shuffle_epi32::<0x93>(a);
    c = _mm512_shuffle_epi32::<0x39>(c);
    d = _mm512_shuffle_epi32::<0x4e>(d);
    qr!(a, b, c, d);
    a = _mm512_shuffle_epi32::<0x39>(a);
    c = _mm512_shuffle_epi32::<0x93>(c);
    d = _mm512_shuffle_epi32::<0x4e>(d);
    *r = [a, b, c, d];
}

/// Initial row-layout state for blocks `s[12] .. s[12] + 4 * G`: `G` sets of rows
/// `a, b, c, d`, one block per 128-bit lane.
#[target_feature(enable = "avx512f")]
#[inline]
fn rows_init<const G: usize>(s: &[u32; 16]) -> [[__m512i; 4]; G] {
    #[rustfmt::skip]
    let [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15] =
        s.map(u32::cast_signed);
    let a = _mm512_broadcast_i32x4(_mm_setr_epi32(s0, s1, s2, s3));
    let b = _mm512_broadcast_i32x4(_mm_setr_epi32(s4, s5, s6, s7));
    let c = _mm512_broadcast_i32x4(_mm_setr_epi32(s8, s9, s10, s11));
    let mut d = _mm512_add_epi32(
        _mm512_broadcast_i32x4(_mm_setr_epi32(s12, s13, s14, s15)),
        _mm512_setr_epi32(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0),
    );
    let four = _mm512_setr_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
    let mut init = [[a, b, c, d]; G];
    for set in &mut init {
        *set = [a, b, c, d];
        d = _mm512_add_epi32(d, four);
    }
    init
}

/// Adds the input (`init`) to the row sets `x` after their 20 rounds and XORs the keystream
/// into `data`, 256 bytes per set; `data` may end anywhere.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn rows_finish(data: &mut [u8], x: &[[__m512i; 4]], init: &[[__m512i; 4]]) {
    for ((chunk, set), orig) in data.chunks_mut(256).zip(x).zip(init) {
        let [a, b, c, d] = *set;
        let [ia, ib, ic, id] = *orig;
        let ks = transpose_lanes(add!(a, ia), add!(b, ib), add!(c, ic), add!(d, id));
        xor_blocks(chunk, &ks);
    }
}

/// Keystream for up to `4 * G` blocks (the length of `data`, at most `256 * G` bytes) in the
/// row layout, `G` sets of four blocks in flight.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn xor_rows<const G: usize>(s: &[u32; 16], data: &mut [u8]) {
    let init = rows_init::<G>(s);
    let mut x = init;
    for _ in 0..10 {
        for set in &mut x {
            double_round_rows(set);
        }
    }
    rows_finish(data, &x, &init);
}

/// XORs 16 keystream blocks into a 1 KiB chunk.
#[target_feature(enable = "avx512f")]
#[inline]
fn xor16(chunk: &mut [u8; 1024], ks: [__m512i; 16]) {
    let (blocks, _) = chunk.as_chunks_mut::<64>();
    for (block, k) in blocks.iter_mut().zip(ks) {
        xor_full(block, k);
    }
}

/// `dst = src ^ ks` for a whole 64-byte block.
#[target_feature(enable = "avx512f")]
#[inline]
fn xor_full_from(dst: &mut [u8; 64], src: &[u8; 64], ks: __m512i) {
    // SAFETY: `src` is 64 readable and `dst` 64 writable bytes; unaligned accesses are allowed.
    unsafe {
        let v = _mm512_loadu_si512(src.as_ptr().cast());
        _mm512_storeu_si512(dst.as_mut_ptr().cast(), xor!(v, ks));
    }
}

/// `dst = src ^ keystream` for 16 blocks.
#[target_feature(enable = "avx512f")]
#[inline]
fn xor16_from(dst: &mut [u8; 1024], src: &[u8; 1024], ks: [__m512i; 16]) {
    let (d, _) = dst.as_chunks_mut::<64>();
    let (s, _) = src.as_chunks::<64>();
    for ((d, s), k) in d.iter_mut().zip(s).zip(ks) {
        xor_full_from(d, s, k);
    }
}

/// `dst = src ^ keystream`: whole 1 KiB chunks fused, the rest copied and XORed in place.
#[target_feature(enable = "avx512f,avx512bw")]
fn xor_from_impl(s: &[u32; 16], src: &[u8], dst: &mut [u8]) {
    let [.., ctr0, _, _, _] = *s;
    let (bulk_d, tail_d) = dst.as_chunks_mut::<1024>();
    let (bulk_s, tail_s) = src.as_chunks::<1024>();
    let mut ctr = ctr0;
    if !bulk_d.is_empty() {
        let p = first_round(s);
        for (d, src) in bulk_d.iter_mut().zip(bulk_s) {
            xor16_from(d, src, blocks16(s, &p, ctr, &mut []));
            ctr = ctr.wrapping_add(16);
        }
    }
    if !tail_d.is_empty() {
        tail_d.copy_from_slice(tail_s);
        xor_impl(&with_counter(s, ctr), tail_d);
    }
}

/// `s` with block counter `ctr`.
fn with_counter(s: &[u32; 16], ctr: u32) -> [u32; 16] {
    let mut st = *s;
    if let Some(w) = st.get_mut(12) {
        *w = ctr;
    }
    st
}

/// The keystream XOR for input state `s` (word 12: the first block counter).
#[target_feature(enable = "avx512f,avx512bw")]
fn xor_impl(s: &[u32; 16], data: &mut [u8]) {
    let [.., ctr0, _, _, _] = *s;
    let (bulk, tail) = data.as_chunks_mut::<1024>();
    let mut ctr = ctr0;
    if let Some((last, whole)) = bulk.split_last_mut() {
        let p = first_round(s);
        for chunk in whole {
            xor16(chunk, blocks16(s, &p, ctr, &mut []));
            ctr = ctr.wrapping_add(16);
        }
        // A tail of up to 8 blocks rides along with the last 16 blocks.
        let next = with_counter(s, ctr.wrapping_add(16));
        match tail.len() {
            1..=256 => {
                let init = rows_init::<1>(&next);
                let mut x = init;
                xor16(last, blocks16(s, &p, ctr, &mut x));
                rows_finish(tail, &x, &init);
                return;
            }
            257..=512 => {
                let init = rows_init::<2>(&next);
                let mut x = init;
                xor16(last, blocks16(s, &p, ctr, &mut x));
                rows_finish(tail, &x, &init);
                return;
            }
            _ => {}
        }
        xor16(last, blocks16(s, &p, ctr, &mut []));
        ctr = ctr.wrapping_add(16);
    }
    let st = with_counter(s, ctr);
    match tail.len() {
        0 => {}
        1..=256 => xor_rows::<1>(&st, tail),
        257..=512 => xor_rows::<2>(&st, tail),
        513..=768 => xor_rows::<3>(&st, tail),
        _ => xor_blocks(tail, &blocks16(&st, &first_round(&st), ctr, &mut [])),
    }
}
