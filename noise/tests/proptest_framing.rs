//! Property: whatever the message sizes and however the raw stream is chunked, every message
//! comes out whole, in order, exactly once; a single corrupted byte anywhere after the
//! handshake stops delivery at the corrupted frame.

use noise::{Config, SecretStream};
use proptest::prelude::*;

fn pair() -> (SecretStream, SecretStream) {
    noise::fuzzing::established_pair(Config::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn messages_survive_any_chunking(
        sizes in proptest::collection::vec(0usize..3000, 1..40),
        chunks in proptest::collection::vec(1usize..700, 1..20),
    ) {
        let (mut a, mut b) = pair();
        let msgs: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(k, n)| vec![k as u8; *n]).collect();
        for m in &msgs {
            a.write(m).unwrap();
        }
        let wire = a.send().take_outgoing();
        let mut got = Vec::new();
        let mut off = 0;
        let mut k = 0;
        while off < wire.len() {
            let n = chunks[k % chunks.len()].min(wire.len() - off);
            b.recv().feed(&wire[off..off + n]);
            off += n;
            k += 1;
            while let Some(m) = b.poll_message().unwrap() {
                got.push(m.to_vec());
            }
        }
        b.recv().feed_eof();
        prop_assert_eq!(b.poll_message().unwrap(), None);
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn a_corrupted_byte_stops_delivery_at_its_frame(
        sizes in proptest::collection::vec(0usize..500, 1..20),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (mut a, mut b) = pair();
        let msgs: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(k, n)| vec![k as u8; *n]).collect();
        let mut ends = Vec::new();
        let mut wire = Vec::new();
        for m in &msgs {
            a.write(m).unwrap();
            wire.extend(a.send().take_outgoing());
            ends.push(wire.len());
        }
        let i = at.index(wire.len());
        wire[i] ^= flip;
        let bad = ends.iter().position(|&e| i < e).unwrap();
        b.recv().feed(&wire);
        b.recv().feed_eof();
        let mut got = Vec::new();
        let err = loop {
            match b.poll_message() {
                Ok(Some(m)) => got.push(m.to_vec()),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        prop_assert!(err.is_some(), "corruption went unnoticed");
        prop_assert_eq!(&got[..], &msgs[..bad]);
    }
}
