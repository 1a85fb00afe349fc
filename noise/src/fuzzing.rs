//! Per-input checks shared by the fuzz targets in `fuzz/fuzz_targets/noise_*.rs` and by the
//! corpus replay test (`noise/tests/fuzz_corpus.rs`), so both run exactly the same code.
//! Not a stable API. The checks panic only when an invariant breaks (that is the finding).

use std::sync::OnceLock;

use crate::crypto::KeyPair;
use crate::handshake::{Handshake, Pattern};
use crate::secret_stream::{Config, Randomness, SecretStream};

fn rand(seed: u8) -> Randomness {
    Randomness {
        ephemeral_seed: [seed; 32],
        header: [seed; 24],
        send_counter: [seed; 8],
    }
}

struct Handshakes {
    ik_responder: Handshake,
    xx_responder: Handshake,
    xx_initiator_after_msg1: Handshake,
    ik_initiator_after_msg1: Handshake,
}

#[allow(clippy::expect_used)] // fixed, valid inputs
fn handshakes() -> &'static Handshakes {
    static H: OnceLock<Handshakes> = OnceLock::new();
    H.get_or_init(|| {
        let server = KeyPair::from_seed([2; 32]);
        let client = KeyPair::from_seed([1; 32]);
        let new = |p, init, s: &KeyPair, e: u8, rs| {
            Handshake::new(p, init, s.clone(), KeyPair::from_seed([e; 32]), b"", rs)
                .expect("valid handshake parameters")
        };
        let mut xx_i = new(Pattern::XX, true, &client, 3, None);
        xx_i.write_message(b"").expect("message 1");
        let mut ik_i = new(Pattern::IK, true, &client, 3, Some(*server.public_key()));
        ik_i.write_message(b"").expect("message 1");
        Handshakes {
            ik_responder: new(Pattern::IK, false, &server, 4, None),
            xx_responder: new(Pattern::XX, false, &server, 4, None),
            xx_initiator_after_msg1: xx_i,
            ik_initiator_after_msg1: ik_i,
        }
    })
}

/// Feeds `data` as a received handshake message to IK and XX responders and to IK and XX
/// initiators that have sent message 1. Must never panic; a failed handshake stays failed.
pub fn handshake_message(data: &[u8]) {
    let h = handshakes();
    for base in [
        &h.ik_responder,
        &h.xx_responder,
        &h.xx_initiator_after_msg1,
        &h.ik_initiator_after_msg1,
    ] {
        let mut hs = base.clone();
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

struct Streams {
    peer: SecretStream,
    established: SecretStream,
    xx_responder: SecretStream,
}

fn streams() -> &'static Streams {
    static S: OnceLock<Streams> = OnceLock::new();
    S.get_or_init(|| {
        let mut a = SecretStream::new_xx(
            true,
            KeyPair::from_seed([1; 32]),
            rand(1),
            Config::default(),
        );
        let mut b = SecretStream::new_xx(
            false,
            KeyPair::from_seed([2; 32]),
            rand(2),
            Config::default(),
        );
        for _ in 0..4 {
            let x = a.take_outgoing();
            b.feed(&x);
            while let Ok(Some(_)) = b.poll_message() {}
            let y = b.take_outgoing();
            a.feed(&y);
            while let Ok(Some(_)) = a.poll_message() {}
        }
        assert!(b.is_established(), "fixed XX pair must establish");
        let xx_responder = SecretStream::new_xx(
            false,
            KeyPair::from_seed([2; 32]),
            rand(3),
            Config::default(),
        );
        Streams {
            peer: a,
            established: b,
            xx_responder,
        }
    })
}

/// Feeds `data` as raw-stream bytes, in chunks whose size comes from the first byte, to an
/// established secret stream and to a fresh XX responder, then ends the stream. Must never
/// panic, and a failed stream must stay failed. The same bytes are also offered as a datagram.
pub fn frames(data: &[u8]) {
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    let s = streams();
    for base in [&s.established, &s.xx_responder] {
        let mut st = base.clone();
        'feed: for part in data.chunks(chunk) {
            st.feed(part);
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
        st.feed_eof();
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
    let h = handshakes();
    let server = KeyPair::from_seed([2; 32]);
    let client = KeyPair::from_seed([1; 32]);
    let new = |p, init, s: &KeyPair, e: u8, rs| {
        Handshake::new(p, init, s.clone(), KeyPair::from_seed([e; 32]), b"", rs)
            .expect("valid handshake parameters")
    };
    // IK message 1 the IK responder accepts
    let mut i = new(Pattern::IK, true, &client, 7, Some(*server.public_key()));
    out.push((
        "noise_handshake_message",
        i.write_message(b"payload").expect("msg1"),
    ));
    // XX message 1 (a bare ephemeral key)
    let mut x = new(Pattern::XX, true, &client, 8, None);
    out.push((
        "noise_handshake_message",
        x.write_message(b"").expect("msg1"),
    ));
    // replies the initiators that sent message 1 accept
    let mut r = h.xx_responder.clone();
    let mut xi = h.xx_initiator_after_msg1.clone();
    let mut probe = new(Pattern::XX, true, &client, 3, None);
    r.read_message(&probe.write_message(b"").expect("msg1"))
        .expect("read msg1");
    let m2 = r.write_message(b"").expect("msg2");
    xi.read_message(&m2).expect("the initiator accepts it");
    out.push(("noise_handshake_message", m2));
    let mut ir = h.ik_responder.clone();
    let mut probe = new(Pattern::IK, true, &client, 3, Some(*server.public_key()));
    ir.read_message(&probe.write_message(b"").expect("msg1"))
        .expect("read msg1");
    out.push((
        "noise_handshake_message",
        ir.write_message(b"reply").expect("msg2"),
    ));
    out.push(("noise_handshake_message", vec![0u8; 96]));

    // frames: a chunk-size byte, then valid data frames for the established stream
    let mut peer = streams().peer.clone();
    for (chunk, msgs) in [
        (255u8, &[&b"hello"[..], b"", b"x"][..]),
        (7, &[&[9u8; 300][..]][..]),
    ] {
        for m in msgs {
            peer.write(m).expect("write");
        }
        let mut v = vec![chunk];
        v.extend(peer.take_outgoing());
        out.push(("noise_frames", v));
    }
    let mut init = SecretStream::new_xx(
        true,
        KeyPair::from_seed([1; 32]),
        rand(9),
        Config::default(),
    );
    let mut v = vec![16u8];
    v.extend(init.take_outgoing());
    out.push(("noise_frames", v));
    out.push(("noise_frames", vec![1, 0x38, 0, 0, 1, 2, 3]));
    out
}
