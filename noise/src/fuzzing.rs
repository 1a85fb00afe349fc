//! Per-input checks shared by the fuzz targets in `fuzz/fuzz_targets/noise_*.rs` and by the
//! corpus replay test, so both run exactly the same code. Not a stable API.

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

/// Feeds `data` as a received handshake message to IK and XX responders and to an XX
/// initiator that has sent message 1. Must never panic.
pub fn handshake_message(data: &[u8]) {
    let server = KeyPair::from_seed([2; 32]);
    if let Ok(mut r) = Handshake::new(
        Pattern::IK,
        false,
        server.clone(),
        KeyPair::from_seed([4; 32]),
        b"p",
        None,
    ) {
        if r.read_message(data).is_ok() {
            let _ = r.write_message(b"reply");
        }
    }
    if let Ok(mut r) = Handshake::new(
        Pattern::XX,
        false,
        server.clone(),
        KeyPair::from_seed([4; 32]),
        b"",
        None,
    ) {
        if r.read_message(data).is_ok() {
            let _ = r.write_message(b"");
        }
    }
    if let Ok(mut i) = Handshake::new(
        Pattern::XX,
        true,
        KeyPair::from_seed([1; 32]),
        KeyPair::from_seed([3; 32]),
        b"",
        None,
    ) {
        if i.write_message(b"").is_ok() && i.read_message(data).is_ok() {
            let _ = i.write_message(b"");
        }
    }
    // IK initiator reading a reply
    if let Ok(mut i) = Handshake::new(
        Pattern::IK,
        true,
        KeyPair::from_seed([1; 32]),
        KeyPair::from_seed([3; 32]),
        b"p",
        Some(*server.public_key()),
    ) {
        if i.write_message(b"").is_ok() {
            let _ = i.read_message(data);
        }
    }
}

/// Feeds `data` as raw-stream bytes, in chunks whose sizes come from the first byte, to an
/// established secret stream (after the peer's real header) and to an XX responder. Must
/// never panic, and a failed stream must stay failed.
pub fn frames(data: &[u8]) {
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    // established pair from a fixed XX run
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
    let mut xx = SecretStream::new_xx(
        false,
        KeyPair::from_seed([2; 32]),
        rand(3),
        Config::default(),
    );
    for part in data.chunks(chunk) {
        for s in [&mut b, &mut xx] {
            s.feed(part);
            loop {
                match s.poll_message() {
                    Ok(Some(m)) => {
                        let _ = m.len();
                    }
                    Ok(None) => break,
                    Err(_) => {
                        assert!(s.poll_message().is_err(), "error must be sticky");
                        break;
                    }
                }
            }
        }
    }
    b.feed_eof();
    let _ = b.poll_message();
    if let Some(d) = b.datagrams() {
        let _ = d.open(data);
    }
}
