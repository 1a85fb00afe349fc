//! Behaviour of the sans-IO core beyond the JS vectors: limits, ends of stream, misuse,
//! keepalive timing.

#![allow(clippy::disallowed_methods)] // tests and benchmarks take real time as their origin

use std::time::{Duration, Instant};

use noise::{
    Config, Handshake, HandshakeError, KeepAlive, KeyPair, MAX_MESSAGE_LEN, Pattern, Randomness,
    Role, SecretStream, StreamError,
};

fn rand(b: u8) -> Randomness {
    Randomness {
        ephemeral_seed: [b; 32],
        header: [b; 24],
        send_counter: [b; 8],
    }
}

fn xx_pair(config: Config) -> (SecretStream, SecretStream) {
    noise::fuzzing::established_pair(config)
}

#[test]
fn frames_before_the_peer_authenticated_are_capped_before_they_are_buffered() {
    // during the handshake: a Noise message is at most 65535 bytes
    let mut r = SecretStream::new_xx(
        false,
        KeyPair::from_seed([2; 32]),
        rand(2),
        Config::default(),
    );
    r.recv().feed(&[0x00, 0x00, 0x01]);
    assert_eq!(
        r.poll_message().unwrap_err(),
        StreamError::FrameTooLarge {
            len: 0x01_0000,
            max: 65535
        }
    );
    assert!(r.recv_ref().buffer_capacity() < 1024);
    // waiting for the peer's header: exactly 56 bytes, refused from the prefix alone
    let res = |init: bool| noise::HandshakeResult {
        is_initiator: init,
        tx: [2; 32],
        rx: [3; 32],
        hash: [1; 64],
        local_public_key: [4; 32],
        remote_public_key: [5; 32],
    };
    let mut s = SecretStream::from_handshake(&res(true), rand(3), Config::default());
    s.recv().feed(&[0xff, 0xff, 0xff, 1, 2, 3]);
    assert_eq!(
        s.poll_message().unwrap_err(),
        StreamError::InvalidHeaderLength { len: 0xff_ffff }
    );
    assert!(s.recv_ref().buffer_capacity() < 1024);
}

#[test]
fn a_large_frame_does_not_pin_its_buffer_after_it_was_read() {
    let (mut a, mut b) = xx_pair(Config::default());
    let big = vec![7u8; 4 << 20];
    a.write(&big).unwrap();
    let wire = a.send().take_outgoing();
    // as a socket reader does: 64 KiB reads into the input buffer
    for chunk in wire.chunks(64 * 1024) {
        let dst = b.recv().input_buffer(chunk.len());
        dst.copy_from_slice(chunk);
        b.recv().input_filled(chunk.len());
    }
    assert!(b.recv_ref().buffer_capacity() >= 4 << 20);
    assert_eq!(b.poll_message().unwrap().map(<[u8]>::len), Some(big.len()));
    assert_eq!(b.poll_message().unwrap(), None);
    // the next read finds everything consumed and lets the 4 MiB go
    a.write(b"small").unwrap();
    let wire = a.send().take_outgoing();
    let dst = b.recv().input_buffer(64 * 1024);
    dst[..wire.len()].copy_from_slice(&wire);
    b.recv().input_filled(wire.len());
    assert!(b.recv_ref().buffer_capacity() <= 64 * 1024);
    assert_eq!(b.poll_message().unwrap(), Some(&b"small"[..]));
}

#[test]
fn eof_inside_a_frame_is_a_truncated_frame_error() {
    let (mut a, mut b) = xx_pair(Config::default());
    a.write(b"hello world").unwrap();
    let wire = a.send().take_outgoing();
    b.recv().feed(&wire[..wire.len() - 1]);
    assert_eq!(b.poll_message().unwrap(), None);
    b.recv().feed_eof();
    assert_eq!(
        b.poll_message().unwrap_err(),
        StreamError::TruncatedFrame {
            expected: wire.len(),
            got: wire.len() - 1
        }
    );
}

#[test]
fn eof_between_frames_is_a_clean_end() {
    let (mut a, mut b) = xx_pair(Config::default());
    a.write(b"last").unwrap();
    b.recv().feed(&a.send().take_outgoing());
    b.recv().feed_eof();
    assert_eq!(b.poll_message().unwrap(), Some(&b"last"[..]));
    assert_eq!(b.poll_message().unwrap(), None);
    assert!(b.recv_ref().is_finished());
}

#[test]
fn eof_during_the_handshake_is_an_error() {
    let mut b = SecretStream::new_xx(
        false,
        KeyPair::from_seed([2; 32]),
        rand(2),
        Config::default(),
    );
    b.recv().feed_eof();
    assert_eq!(
        b.poll_message().unwrap_err(),
        StreamError::EndedBeforeEstablished
    );
}

#[test]
fn a_length_prefix_above_the_cap_fails_before_the_body_arrives() {
    let config = Config {
        max_frame_len: 1000,
        ..Config::default()
    };
    let (_, mut b) = xx_pair(config);
    b.recv().feed(&[0xe9, 0x03, 0x00]); // 1001
    assert_eq!(
        b.poll_message().unwrap_err(),
        StreamError::FrameTooLarge {
            len: 1001,
            max: 1000
        }
    );
}

#[test]
fn writes_above_one_atomic_frame_are_refused_and_the_limit_itself_works() {
    let (mut a, mut b) = xx_pair(Config::default());
    assert_eq!(
        a.write(&vec![0; MAX_MESSAGE_LEN + 1]).unwrap_err(),
        StreamError::MessageTooLarge {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        }
    );
    a.write(&vec![7; MAX_MESSAGE_LEN]).unwrap();
    let wire = a.send().take_outgoing();
    assert_eq!(&wire[..3], &[0xff, 0xff, 0xff]);
    b.recv().feed(&wire);
    assert_eq!(b.poll_message().unwrap().unwrap().len(), MAX_MESSAGE_LEN);
}

#[test]
fn short_data_frame_is_invalid_message() {
    let (_, mut b) = xx_pair(Config::default());
    b.recv().feed(&[16, 0, 0]);
    b.recv().feed(&[0; 16]);
    assert_eq!(
        b.poll_message().unwrap_err(),
        StreamError::MessageTooShort { len: 16 }
    );
    // sticky, and writes fail too
    assert_eq!(
        b.write(b"x").unwrap_err(),
        StreamError::MessageTooShort { len: 16 }
    );
}

#[test]
fn zero_byte_messages_surface_unless_filtered() {
    let (mut a, mut b) = xx_pair(Config::default());
    a.send_keep_alive().unwrap();
    a.write(b"data").unwrap();
    let wire = a.send().take_outgoing();
    b.recv().feed(&wire);
    assert_eq!(b.poll_message().unwrap(), Some(&b""[..]));
    assert_eq!(b.poll_message().unwrap(), Some(&b"data"[..]));

    let (mut a, mut b) = xx_pair(Config {
        filter_zero_byte_messages: true,
        ..Config::default()
    });
    a.send_keep_alive().unwrap();
    a.write(b"data").unwrap();
    b.recv().feed(&a.send().take_outgoing());
    assert_eq!(b.poll_message().unwrap(), Some(&b"data"[..]));
    assert_eq!(b.recv_ref().data_frames_read(), 2);
}

#[test]
fn writes_before_the_keys_exist_are_refused() {
    let mut b = SecretStream::new_xx(
        false,
        KeyPair::from_seed([2; 32]),
        rand(2),
        Config::default(),
    );
    assert_eq!(b.write(b"early").unwrap_err(), StreamError::NotConnected);
}

#[test]
fn handshake_steps_out_of_turn_are_errors_not_panics() {
    let mut r = Handshake::new(
        Pattern::XX,
        Role::Responder,
        KeyPair::from_seed([2; 32]),
        KeyPair::from_seed([4; 32]),
        b"",
        None,
    )
    .unwrap();
    assert_eq!(
        r.write_message(b"").unwrap_err(),
        HandshakeError::WrongTurn {
            expected: "receive"
        }
    );
    assert_eq!(
        Handshake::new(
            Pattern::IK,
            Role::Initiator,
            KeyPair::from_seed([1; 32]),
            KeyPair::from_seed([3; 32]),
            b"",
            None
        )
        .unwrap_err(),
        HandshakeError::MissingRemoteStatic
    );
    // a truncated message fails, and the handshake stays failed
    assert_eq!(
        r.read_message(&[0; 31]).unwrap_err(),
        HandshakeError::TooShort {
            needed: 32,
            got: 31
        }
    );
    assert_eq!(
        r.read_message(&[0; 32]).unwrap_err(),
        HandshakeError::Finished
    );
}

#[test]
fn keep_alive_fires_after_an_idle_interval_and_writes_push_it_back() {
    let t0 = Instant::now();
    let iv = Duration::from_millis(5000);
    let mut k = KeepAlive::new(iv, t0);
    assert!(!k.poll(t0 + Duration::from_millis(4999)));
    k.on_write(t0 + Duration::from_millis(4000));
    assert!(!k.poll(t0 + Duration::from_millis(8999)));
    assert!(k.poll(t0 + Duration::from_millis(9000)));
    assert_eq!(k.deadline(), t0 + Duration::from_millis(14000));
    assert!(!k.poll(t0 + Duration::from_millis(13999)));
    assert!(k.poll(t0 + Duration::from_millis(14000)));
}

#[test]
fn datagrams_from_the_wrong_stream_or_tampered_are_dropped() {
    let (mut a, mut b) = xx_pair(Config::default());
    let sealed = a.datagrams().unwrap().seal(b"dgram").unwrap();
    assert_eq!(b.datagrams().unwrap().open(&sealed).unwrap(), b"dgram");
    for i in 0..sealed.len() {
        let mut t = sealed.clone();
        t[i] ^= 0x80;
        assert!(b.datagrams().unwrap().open(&t).is_none(), "byte {i}");
    }
    assert!(b.datagrams().unwrap().open(&sealed[..23]).is_none());
    // a second pair with different ephemerals has a different hash and keys
    let mut c = SecretStream::new_xx(
        true,
        KeyPair::from_seed([1; 32]),
        rand(5),
        Config::default(),
    );
    let mut d = SecretStream::new_xx(
        false,
        KeyPair::from_seed([2; 32]),
        rand(6),
        Config::default(),
    );
    for _ in 0..3 {
        d.recv().feed(&c.send().take_outgoing());
        let _ = d.poll_message().unwrap();
        c.recv().feed(&d.send().take_outgoing());
        let _ = c.poll_message().unwrap();
    }
    let foreign = c.datagrams().unwrap().seal(b"dgram").unwrap();
    assert!(b.datagrams().unwrap().open(&foreign).is_none());
}

#[test]
fn owned_buffers_move_frames_without_losing_or_reordering_bytes() {
    let (mut a, mut b) = xx_pair(Config::default());
    let sizes = [0usize, 5, 1024, 1025, 16_384, 40_000, 3, 70_000];
    let msgs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| (0..n).map(|j| (j * 7 + k) as u8).collect())
        .collect();
    let mut spare = Vec::new();
    let mut got = Vec::new();
    for (k, m) in msgs.iter().enumerate() {
        a.write(m).unwrap();
        let wire = a.send().swap_outgoing(spare);
        assert!(a.send_ref().outgoing().is_empty());
        if k % 3 == 2 {
            // a partial frame pending in `b`: the rest arrives as an owned buffer and is copied
            let (head, tail) = wire.split_at(wire.len() / 2);
            b.recv().feed(head);
            assert!(b.poll_message().unwrap().is_none());
            spare = b.recv().feed_vec(tail.to_vec());
        } else {
            spare = b.recv().feed_vec(wire);
        }
        while let Some(m) = b.poll_message().unwrap() {
            got.push(m.to_vec());
        }
    }
    assert_eq!(got, msgs);
    // the reused buffer's stale bytes never leak into what is sent next
    a.write(b"tail").unwrap();
    let wire = a.send().swap_outgoing(vec![0xee; 100_000]);
    assert_eq!(wire.len(), 3 + 4 + 17);
    b.recv().feed_vec(wire);
    assert_eq!(b.poll_message().unwrap(), Some(&b"tail"[..]));
    a.write(b"again").unwrap();
    assert_eq!(a.send_ref().outgoing().len(), 3 + 5 + 17);
}

#[test]
fn split_halves_run_full_duplex_on_four_threads() {
    use std::sync::mpsc::sync_channel;
    // XX pair, established; then each side splits into a send and a receive half
    let (a, b) = xx_pair(Config::default());
    let (a_tx, a_rx) = a.into_split().unwrap();
    let (b_tx, b_rx) = b.into_split().unwrap();
    assert!(a_rx.is_established() && b_rx.is_established());
    assert_eq!(a_rx.handshake_hash(), b_rx.handshake_hash());

    let message = |k: usize, side: u8| -> Vec<u8> {
        let n = [1usize, 100, 1500, 20_000, 65_536][k % 5];
        (0..n).map(|j| (j as u8) ^ (k as u8) ^ side).collect()
    };
    const COUNT: usize = 600;
    let (to_b, from_a) = sync_channel::<Vec<u8>>(4);
    let (to_a, from_b) = sync_channel::<Vec<u8>>(4);
    // each thread hands its half back when done
    let sender = |mut tx: noise::SendHalf, ch: std::sync::mpsc::SyncSender<Vec<u8>>, side| {
        std::thread::spawn(move || {
            for k in 0..COUNT {
                tx.write(&message(k, side)).unwrap();
                if k % 7 == 6 || k == COUNT - 1 {
                    ch.send(tx.take_outgoing()).unwrap();
                }
            }
            tx
        })
    };
    let receiver = |mut rx: noise::RecvHalf, ch: std::sync::mpsc::Receiver<Vec<u8>>, side| {
        std::thread::spawn(move || {
            let mut k = 0;
            while let Ok(wire) = ch.recv() {
                rx.feed_vec(wire);
                while let Some(m) = rx.poll_message().unwrap() {
                    assert_eq!(m, &message(k, side)[..], "message {k}");
                    k += 1;
                }
            }
            (k, rx)
        })
    };
    let sa = sender(a_tx, to_b, 1);
    let sb = sender(b_tx, to_a, 2);
    let ra = receiver(a_rx, from_b, 2);
    let rb = receiver(b_rx, from_a, 1);
    let mut a_tx = sa.join().unwrap();
    let mut b_tx = sb.join().unwrap();
    let (got_b, mut b_rx) = rb.join().unwrap();
    let (got_a, mut a_rx) = ra.join().unwrap();
    assert_eq!(got_b, COUNT);
    assert_eq!(got_a, COUNT);

    // the halves still work as a pair after the threads, and a tampered frame fails
    // only the receive half it reaches
    a_tx.write(b"after").unwrap();
    b_rx.feed(&a_tx.take_outgoing());
    assert_eq!(b_rx.poll_message().unwrap(), Some(&b"after"[..]));
    a_tx.write(b"bad").unwrap();
    let mut wire = a_tx.take_outgoing();
    wire[5] ^= 1;
    b_rx.feed(&wire);
    assert!(b_rx.poll_message().is_err());
    assert!(b_rx.error().is_some());
    b_tx.write(b"still sends").unwrap();
    a_rx.feed(&b_tx.take_outgoing());
    assert_eq!(a_rx.poll_message().unwrap(), Some(&b"still sends"[..]));
}

#[test]
fn split_needs_a_finished_handshake_and_keeps_queued_bytes() {
    // during XX: refused, and the stream comes back intact
    let a = SecretStream::new_xx(
        true,
        KeyPair::from_seed([1; 32]),
        rand(1),
        Config::default(),
    );
    let first = a.send_ref().outgoing().to_vec();
    let a = a.into_split().unwrap_err();
    assert_eq!(a.send_ref().outgoing(), &first[..]);

    // bytes queued before the split move to the send half
    let (mut x, mut y) = xx_pair(Config::default());
    x.write(b"queued").unwrap();
    let queued = x.send_ref().outgoing().to_vec();
    let (tx, _rx) = x.into_split().unwrap();
    assert_eq!(tx.outgoing(), &queued[..]);
    y.recv().feed(tx.outgoing());
    assert_eq!(y.poll_message().unwrap(), Some(&b"queued"[..]));
}
