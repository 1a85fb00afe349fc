//! Per-input checks shared by the fuzz targets in `fuzz/fuzz_targets/noise_*.rs` and by the
//! corpus replay test (`noise/tests/fuzz_corpus.rs`), so both run exactly the same code.
//! Not a stable API. The checks panic only when an invariant breaks (that is the finding).

use crate::crypto::KeyPair;
use crate::handshake::{Handshake, Pattern, Role};
use crate::secret_stream::{Config, Randomness, SecretStream};

/// One of the hand-written SIMD fast paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastPath {
    /// AVX-512 ChaCha20 (needs AVX-512F and AVX-512BW).
    ChaCha20,
    /// AVX-512 IFMA Poly1305 (needs AVX-512F and AVX-512 IFMA).
    Poly1305,
}

impl FastPath {
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            FastPath::ChaCha20 => ("the AVX-512 ChaCha20", "avx512f and avx512bw"),
            FastPath::Poly1305 => ("the AVX-512 IFMA Poly1305", "avx512f and avx512ifma"),
        }
    }
}

/// Whether `path` runs on this CPU and build (never with feature `portable`).
pub fn fast_path_available(path: FastPath) -> bool {
    match path {
        FastPath::ChaCha20 => crate::chacha::fast_available(),
        FastPath::Poly1305 => crate::poly1305::fast_available(),
    }
}

/// Whether the environment sets `NOISE_SIMD_REQUIRED=1` (CI on a runner with AVX-512 IFMA).
pub fn simd_required() -> bool {
    std::env::var_os("NOISE_SIMD_REQUIRED").is_some_and(|v| v == "1")
}

/// For tests whose SIMD half cannot run because `path` is absent: prints a note and returns
/// `false` (the caller skips that half), or, when `NOISE_SIMD_REQUIRED=1` is set, fails the
/// test with a message naming the missing fast path, so CI cannot lose that coverage
/// silently.
#[allow(clippy::panic)] // failing the test is the point
pub fn simd_absent(path: FastPath) -> bool {
    let (name, features) = path.describe();
    if simd_required() {
        panic!(
            "NOISE_SIMD_REQUIRED=1, but {name} fast path is not available: this build has \
             feature `portable`, or this CPU lacks {features}"
        );
    }
    println!(
        "note: {name} fast path is not available here (needs {features}); SIMD checks skipped"
    );
    false
}

fn rand(seed: u8) -> Randomness {
    Randomness {
        ephemeral_seed: [seed; 32],
        header: [seed; 24],
        send_counter: [seed; 8],
    }
}

/// A fresh handshake with the fixed test keys: static seed 1 (initiator) or 2 (responder),
/// ephemeral seed `ephemeral`, empty prologue; an IK initiator knows the responder's key.
#[allow(clippy::expect_used)] // fixed, valid inputs
pub fn handshake(pattern: Pattern, role: Role, ephemeral: u8) -> Handshake {
    let server = KeyPair::from_seed([2; 32]);
    let (s, rs) = match role {
        Role::Initiator => (
            KeyPair::from_seed([1; 32]),
            (pattern == Pattern::IK).then(|| *server.public_key()),
        ),
        Role::Responder => (server, None),
    };
    Handshake::new(
        pattern,
        role,
        s,
        KeyPair::from_seed([ephemeral; 32]),
        b"",
        rs,
    )
    .expect("valid handshake parameters")
}

/// The handshakes a received message is fed to: IK and XX responders, and IK and XX
/// initiators that have sent message 1. Built fresh per input (a handshake is not `Clone`).
#[allow(clippy::expect_used)] // fixed, valid inputs
fn handshakes() -> [Handshake; 4] {
    let mut xx_i = handshake(Pattern::XX, Role::Initiator, 3);
    xx_i.write_message(b"").expect("message 1");
    let mut ik_i = handshake(Pattern::IK, Role::Initiator, 3);
    ik_i.write_message(b"").expect("message 1");
    [
        handshake(Pattern::IK, Role::Responder, 4),
        handshake(Pattern::XX, Role::Responder, 4),
        xx_i,
        ik_i,
    ]
}

/// Feeds `data` as a received handshake message to IK and XX responders and to IK and XX
/// initiators that have sent message 1. Must never panic; a failed handshake stays failed.
pub fn handshake_message(data: &[u8]) {
    for mut hs in handshakes() {
        match hs.read_message(data) {
            Ok(_) => {
                if hs.is_my_turn() {
                    let _ = hs.write_message(b"reply");
                }
            }
            Err(_) => assert!(
                hs.read_message(data).is_err(),
                "handshake error must be final"
            ),
        }
    }
}

/// Two secret streams with the fixed test keys and randomness that ran their XX handshake
/// and header exchange in memory: `(initiator, responder)`, both established.
pub fn established_pair(config: Config) -> (SecretStream, SecretStream) {
    let mut a = SecretStream::new_xx(true, KeyPair::from_seed([1; 32]), rand(1), config.clone());
    let mut b = SecretStream::new_xx(false, KeyPair::from_seed([2; 32]), rand(2), config);
    for _ in 0..4 {
        let x = a.send().take_outgoing();
        b.recv().feed(&x);
        while let Ok(Some(_)) = b.poll_message() {}
        let y = b.send().take_outgoing();
        a.recv().feed(&y);
        while let Ok(Some(_)) = a.poll_message() {}
    }
    assert!(
        a.is_established() && b.is_established(),
        "fixed XX pair must establish"
    );
    (a, b)
}

/// Feeds `data` as raw-stream bytes, in chunks whose size comes from the first byte, to an
/// established secret stream and to a fresh XX responder, then ends the stream. Must never
/// panic, and a failed stream must stay failed. The same bytes are also offered as a datagram.
pub fn frames(data: &[u8]) {
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    let established = established_pair(Config::default()).1;
    let xx_responder = SecretStream::new_xx(
        false,
        KeyPair::from_seed([2; 32]),
        rand(3),
        Config::default(),
    );
    for mut st in [established, xx_responder] {
        'feed: for part in data.chunks(chunk) {
            st.recv().feed(part);
            loop {
                match st.poll_message() {
                    Ok(Some(m)) => assert!(m.len() <= part.len() + data.len()),
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(st.poll_message().err(), Some(e), "error must be sticky");
                        break 'feed;
                    }
                }
            }
        }
        st.recv().feed_eof();
        while let Ok(Some(_)) = st.poll_message() {}
        if let Some(d) = st.datagrams() {
            let _ = d.open(data);
        }
    }
}

/// Valid inputs for the seed corpora: `(target, bytes)` pairs that get past the parsers into
/// the deep states (`cargo test -p noise --test fuzz_corpus -- --ignored` writes them).
#[allow(clippy::expect_used)] // fixed, valid inputs
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // IK message 1 the IK responder accepts
    let mut i = handshake(Pattern::IK, Role::Initiator, 7);
    out.push((
        "noise_handshake_message",
        i.write_message(b"payload").expect("msg1"),
    ));
    // XX message 1 (a bare ephemeral key)
    let mut x = handshake(Pattern::XX, Role::Initiator, 8);
    out.push((
        "noise_handshake_message",
        x.write_message(b"").expect("msg1"),
    ));
    // replies the initiators that sent message 1 accept
    let [ik_r, xx_r, mut xi, _] = handshakes();
    let mut r = xx_r;
    let mut probe = handshake(Pattern::XX, Role::Initiator, 3);
    r.read_message(&probe.write_message(b"").expect("msg1"))
        .expect("read msg1");
    let m2 = r.write_message(b"").expect("msg2");
    xi.read_message(&m2).expect("the initiator accepts it");
    out.push(("noise_handshake_message", m2));
    let mut ir = ik_r;
    let mut probe = handshake(Pattern::IK, Role::Initiator, 3);
    ir.read_message(&probe.write_message(b"").expect("msg1"))
        .expect("read msg1");
    out.push((
        "noise_handshake_message",
        ir.write_message(b"reply").expect("msg2"),
    ));
    out.push(("noise_handshake_message", vec![0u8; 96]));

    // frames: a chunk-size byte, then valid data frames for the established stream
    let mut peer = established_pair(Config::default()).0;
    for (chunk, msgs) in [
        (255u8, &[&b"hello"[..], b"", b"x"][..]),
        (7, &[&[9u8; 300][..]][..]),
    ] {
        for m in msgs {
            peer.write(m).expect("write");
        }
        let mut v = vec![chunk];
        v.extend(peer.send().take_outgoing());
        out.push(("noise_frames", v));
    }
    let mut init = SecretStream::new_xx(
        true,
        KeyPair::from_seed([1; 32]),
        rand(9),
        Config::default(),
    );
    let mut v = vec![16u8];
    v.extend(init.send().take_outgoing());
    out.push(("noise_frames", v));
    out.push(("noise_frames", vec![1, 0x38, 0, 0, 1, 2, 3]));

    // SIMD differential: 48-byte parameter header, then data of various lengths
    for (k, len) in [0usize, 63, 200, 1100, 5000].into_iter().enumerate() {
        let mut v: Vec<u8> = (0..48u8).map(|b| b.wrapping_mul(k as u8 + 3)).collect();
        v.extend((0..len).map(|j| (j % 251) as u8));
        out.push(("noise_simd", v));
    }
    out
}

/// Differential check of the crypto backends (fuzz target `noise_simd`): the dispatched
/// ChaCha20 (AVX-512 where the CPU has it) against the `chacha20` crate, in place and copying,
/// and the dispatched and fast-path Poly1305 (IFMA where available) against the `poly1305`
/// crate, over the input's
/// key, nonce, counter, cut points and data. Input: 32-byte key, 12-byte nonce, 4-byte
/// counter selector (LE), then the data.
#[allow(clippy::indexing_slicing, clippy::panic)] // lengths checked; a mismatch is the finding
pub fn simd(data: &[u8]) {
    if data.len() < 48 {
        return;
    }
    let (head, msg) = data.split_at(48);
    let mut key = [0u8; 32];
    key.copy_from_slice(&head[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&head[32..44]);
    let raw = u32::from_le_bytes([head[44], head[45], head[46], head[47]]);
    // counters near 0 (as secretstream uses them) or near the 2^32 wrap, which both
    // backends take modulo 2^32
    let counter = if raw & 1 == 0 {
        raw >> 24
    } else {
        u32::MAX
            .wrapping_sub(raw >> 24)
            .wrapping_sub((msg.len() / 64) as u32 / 2)
    };

    let mut want = msg.to_vec();
    crate::chacha::portable(&key, &nonce, counter, &mut want);
    let mut got = msg.to_vec();
    crate::chacha::xor_keystream(&key, &nonce, counter, &mut got);
    assert_eq!(got, want, "ChaCha20 in place");
    let mut dst = vec![0u8; msg.len()];
    crate::chacha::xor_keystream_from(&key, &nonce, counter, msg, &mut dst);
    assert_eq!(dst, want, "ChaCha20 copying");

    // Poly1305 over the data, fed in pieces cut at the header's bytes: the dispatched MAC
    // and the fast path (every run on the IFMA kernel, and the default threshold) against
    // the `poly1305` crate in one shot
    let cuts = [
        usize::from(head[0]),
        usize::from(head[1]) * 7,
        usize::from(head[2]) * 61,
    ];
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = msg;
    for c in cuts {
        let (a, b) = rest.split_at(c.min(rest.len()));
        parts.push(a);
        rest = b;
    }
    parts.push(rest);
    let want: [u8; 16] = {
        use poly1305::universal_hash::KeyInit;
        poly1305::Poly1305::new(&key.into())
            .compute_unpadded(msg)
            .into()
    };
    let mut p = crate::poly1305::Poly1305::new(&key);
    for part in &parts {
        p.update(part);
    }
    assert_eq!(p.finalize(), want, "Poly1305 dispatched");
    for simd_min in [0, 224] {
        if let Some(tag) = crate::poly1305::fast_mac(&key, &parts, simd_min) {
            assert_eq!(tag, want, "Poly1305 fast path, runs from {simd_min} bytes");
        }
    }
}
