//! Named stream behaviours over `netsim`: MTU probing, the RTO
//! give-up bound, zero-window probing, half-close, simultaneous END, DESTROY, MESSAGE, SACK
//! limits and libudx regressions.

#![allow(clippy::disallowed_methods)] // an origin for virtual time

mod sim;

use std::time::Duration;

use netsim::LinkConfig;
use sim::{Pair, pattern, transfer};
use udx::proto::packet::{self, Header, Packet, flags};
use udx::proto::stream::MAX_DATAGRAM;
use udx::proto::{Config, Event, Stream, StreamError};

const MIB: u64 = 1024 * 1024;

fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(5),
        rate: Some(25_000_000),
        ..Default::default()
    }
}

fn run_until(p: &mut Pair, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !done(p) {
        assert!(p.step(&mut buf), "nothing scheduled");
        assert!(p.net.elapsed() <= limit, "not done within {limit:?}");
    }
}

fn closed_event(s: &mut Stream) -> Option<Result<(), StreamError>> {
    let mut r = None;
    while let Some(e) = s.poll_event() {
        if let Event::Closed(c) = e {
            r = Some(c);
        }
    }
    r
}

/// libudx#287: probing promotes the MTU from 1200 to 1500 during an 8 MiB transfer.
#[test]
fn mtu_probe_promotes_1200_to_1500() {
    let mut p = Pair::new(1, Config::default());
    p.set_link(link(), link());
    assert_eq!(p.a.mtu(), 1200);
    let data: Vec<u8> = (0..8 * MIB).map(pattern).collect();
    let mut off = 0;
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    run_until(&mut p, Duration::from_secs(60), |p| {
        if off < data.len() {
            off += p.a.write(&data[off..]).unwrap();
        }
        while let Ok(n) = p.b.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        got == data.len()
    });
    assert_eq!(p.a.mtu(), 1500);
    assert_eq!(p.a.max_payload(), 1452);
}

/// S4: a path that drops everything above 1200 bytes: probing gives up after 3 lost probes and
/// the transfer completes at the base MTU.
#[test]
fn mtu_blackhole_above_base_stays_at_1200_and_completes() {
    let small = LinkConfig {
        mtu: Some(1200 - 28),
        ..link()
    };
    let o = transfer(2, 4 * MIB, small.clone(), small, Duration::from_secs(600));
    assert_eq!(o.writer, Some(Ok(())));
    assert_eq!(o.sent_sha, o.recv_sha);
}

/// S3: with the peer gone, a packet that suffered 6 RTO expiries ends the stream with
/// TimedOut on the next one: RTO 1 s, re-armed at 2 x RTO, so after 1 + 6 x 2 = 13 s.
#[test]
fn rto_closes_stream_after_six_timeouts() {
    let mut p = Pair::new(3, Config::default());
    p.set_link(link(), link());
    p.a.write(b"hello").unwrap();
    let start = p.net.now();
    // blackhole everything from the start
    let hole = LinkConfig {
        blackholes: vec![(Duration::ZERO, Duration::from_secs(3600))],
        ..link()
    };
    p.set_link(hole.clone(), hole);
    let mut result = None;
    run_until(&mut p, Duration::from_secs(100), |p| {
        result = result.or(closed_event(&mut p.a));
        result.is_some()
    });
    assert_eq!(result, Some(Err(StreamError::TimedOut)));
    let t = p.net.now() - start;
    assert!(
        t >= Duration::from_secs(13) && t < Duration::from_secs(14),
        "timed out after {t:?}"
    );
    assert_eq!(p.a.stats().rto_expiries, 7);
    assert!(matches!(
        p.a.write(b"x"),
        Err(udx::proto::WriteError::Closed)
    ));
}

/// A 2 s blackhole (shorter than the give-up bound) is survived.
#[test]
fn blackhole_shorter_than_give_up_bound_is_survived() {
    let hole = LinkConfig {
        blackholes: vec![(Duration::from_millis(100), Duration::from_secs(8))],
        ..link()
    };
    let o = transfer(4, 2 * MIB, hole.clone(), hole, Duration::from_secs(600));
    assert_eq!(o.writer, Some(Ok(())));
    assert_eq!(o.sent_sha, o.recv_sha);
}

/// Zero window: the receiver stops reading, the sender stops at the window and probes with
/// HEARTBEAT; once the reader drains, everything arrives.
#[test]
fn zero_window_probe_resumes_after_reader_drains() {
    let cfg = Config {
        recv_window: 64 * 1024,
        ..Config::default()
    };
    let mut p = Pair::new(5, cfg);
    p.set_link(link(), link());
    let data: Vec<u8> = (0..512 * 1024).map(pattern).collect();
    let mut off = 0;
    // phase 1: nobody reads for 10 s of virtual time
    run_until(&mut p, Duration::from_secs(20), |p| {
        if off < data.len() {
            off += p.a.write(&data[off..]).unwrap();
        }
        p.net.elapsed() > Duration::from_secs(10)
    });
    assert!(p.b.readable_bytes() <= 64 * 1024 + 1452);
    assert!(
        p.a.closed().is_none(),
        "a zero window must not time the stream out"
    );
    // phase 2: read everything
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    run_until(&mut p, Duration::from_secs(120), |p| {
        if off < data.len() {
            off += p.a.write(&data[off..]).unwrap();
        }
        while let Ok(n) = p.b.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    });
    assert_eq!(got, data);
}

/// S5: half-close in both directions with data flowing each way, then a clean close on both.
#[test]
fn half_close_both_directions_then_clean_close() {
    let mut p = Pair::new(6, Config::default());
    p.set_link(link(), link());
    p.a.write(b"request").unwrap();
    p.a.end().unwrap();
    let mut at_b = Vec::new();
    let mut at_a = Vec::new();
    let mut buf = [0u8; 1024];
    let mut b_replied = false;
    let (mut ra, mut rb) = (None, None);
    run_until(&mut p, Duration::from_secs(30), |p| {
        while let Ok(n) = p.b.read(&mut buf) {
            if n == 0 {
                break;
            }
            at_b.extend_from_slice(&buf[..n]);
        }
        // B still writes after A's END
        if p.b.is_eof() && !b_replied {
            b_replied = true;
            p.b.write(b"response after your END").unwrap();
            p.b.end().unwrap();
        }
        while let Ok(n) = p.a.read(&mut buf) {
            if n == 0 {
                break;
            }
            at_a.extend_from_slice(&buf[..n]);
        }
        ra = ra.or(closed_event(&mut p.a));
        rb = rb.or(closed_event(&mut p.b));
        ra.is_some() && rb.is_some()
    });
    assert_eq!(at_b, b"request");
    assert_eq!(at_a, b"response after your END");
    assert!(p.a.is_eof());
    assert_eq!((ra, rb), (Some(Ok(())), Some(Ok(()))));
}

/// S5 / libudx#223: both sides END at the same instant; both close cleanly.
#[test]
fn simultaneous_end_closes_both() {
    let mut p = Pair::new(7, Config::default());
    p.set_link(link(), link());
    p.a.end().unwrap();
    p.b.end().unwrap();
    let (mut ra, mut rb) = (None, None);
    run_until(&mut p, Duration::from_secs(30), |p| {
        ra = ra.or(closed_event(&mut p.a));
        rb = rb.or(closed_event(&mut p.b));
        ra.is_some() && rb.is_some()
    });
    assert_eq!((ra, rb), (Some(Ok(())), Some(Ok(()))));
}

/// DESTROY mid-transfer: the peer closes with Reset, reads then fail.
#[test]
fn destroy_mid_transfer_resets_peer() {
    let mut p = Pair::new(8, Config::default());
    p.set_link(link(), link());
    let data: Vec<u8> = (0..MIB).map(pattern).collect();
    p.a.write(&data).unwrap();
    let mut destroyed = false;
    let mut rb = None;
    let mut buf = vec![0u8; 65536];
    run_until(&mut p, Duration::from_secs(30), |p| {
        if !destroyed && p.b.readable_bytes() > 100_000 {
            destroyed = true;
            let now = p.net.now();
            p.a.destroy(now);
        }
        rb = rb.or(closed_event(&mut p.b));
        rb.is_some()
    });
    assert_eq!(rb, Some(Err(StreamError::Reset)));
    // buffered bytes are still a correct prefix, then the error
    let mut off = 0u64;
    loop {
        match p.b.read(&mut buf) {
            Ok(n) => {
                assert!(n > 0);
                for (i, c) in buf[..n].iter().enumerate() {
                    assert_eq!(*c, pattern(off + i as u64));
                }
                off += n as u64;
            }
            Err(e) => {
                assert_eq!(e, StreamError::Reset);
                break;
            }
        }
    }
    assert!(off < MIB);
}

/// MESSAGE datagrams are delivered unordered-reliable-free in both directions.
#[test]
fn messages_flow_both_ways() {
    let mut p = Pair::new(9, Config::default());
    p.set_link(link(), link());
    p.a.send_message(b"ping").unwrap();
    p.b.send_message(b"pong").unwrap();
    let (mut ma, mut mb) = (None, None);
    run_until(&mut p, Duration::from_secs(5), |p| {
        while let Some(e) = p.a.poll_event() {
            if let Event::Message(m) = e {
                ma = Some(m);
            }
        }
        while let Some(e) = p.b.poll_event() {
            if let Event::Message(m) = e {
                mb = Some(m);
            }
        }
        ma.is_some() && mb.is_some()
    });
    assert_eq!(ma.as_deref(), Some(&b"pong"[..]));
    assert_eq!(mb.as_deref(), Some(&b"ping"[..]));
    let too_big = vec![0u8; 2000];
    assert!(p.a.send_message(&too_big).is_err());
}

fn peer() -> std::net::SocketAddr {
    "10.0.0.9:9000".parse().unwrap()
}

fn data_packet(to: u32, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_DATAGRAM];
    let h = Header {
        flags: flags::DATA,
        stream_id: to,
        rwnd: 1 << 22,
        seq,
        ..Default::default()
    };
    let n = packet::encode(&mut out, h, &[], 0, payload).unwrap();
    out.truncate(n);
    out
}

/// SACK generation: one immediate ACK per DATA (coalesced per poll), never more than 50
/// blocks, blocks describe exactly the out-of-order packets above `ack`.
#[test]
fn sack_blocks_are_bounded_and_exact() {
    let now = std::time::Instant::now();
    let mut s = Stream::new(2, Config::default());
    s.connect(1, peer());
    // every second packet from seq 1 to 200 arrives: 100 single-packet holes
    for seq in (1..200).step_by(2) {
        s.handle_datagram(now, peer(), &data_packet(2, seq, b"x"));
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = s.poll_transmit(now, &mut buf).unwrap();
    let pkt = Packet::decode(&buf[..n]).unwrap();
    assert_eq!(pkt.header.ack, 0);
    assert_ne!(pkt.header.flags & flags::SACK, 0);
    let blocks: Vec<_> = pkt.sacks().collect();
    assert_eq!(blocks.len(), 50);
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!((b.start, b.end), (1 + 2 * i as u32, 2 + 2 * i as u32));
    }
    assert!(
        s.poll_transmit(now, &mut buf).is_none(),
        "ACKs are coalesced"
    );
    // the hole fills: cumulative ack jumps, no SACK left
    s.handle_datagram(now, peer(), &data_packet(2, 0, b"x"));
    let n = s.poll_transmit(now, &mut buf).unwrap();
    let pkt = Packet::decode(&buf[..n]).unwrap();
    assert_eq!(pkt.header.ack, 2);
    // a duplicate below ack is still acknowledged (libudx acks every DATA)
    s.handle_datagram(now, peer(), &data_packet(2, 0, b"x"));
    assert!(s.poll_transmit(now, &mut buf).is_some());
}

/// libudx#255: an ACK below what was already acknowledged is ignored (no loop, no state change).
#[test]
fn libudx_255_ack_below_remote_acked_is_ignored() {
    let mut p = Pair::new(10, Config::default());
    p.set_link(link(), link());
    p.a.write(&vec![7u8; 100_000]).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut got = 0;
    run_until(&mut p, Duration::from_secs(10), |p| {
        while let Ok(n) = p.b.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        got == 100_000 && p.a.unacked_bytes() == 0
    });
    let before = p.a.debug_state();
    let stale = Header {
        flags: 0,
        stream_id: 1,
        rwnd: 1 << 22,
        seq: 0,
        ack: 3,
        ..Default::default()
    };
    let mut out = [0u8; 20];
    stale.encode(&mut out).unwrap();
    let now = p.net.now();
    p.a.handle_datagram(now, p.addr_b, &out);
    assert_eq!(p.a.debug_state(), before);
}

/// A spoofed ACK for packets never sent is dropped (and counted).
#[test]
fn ack_beyond_sent_is_ignored() {
    let now = std::time::Instant::now();
    let mut s = Stream::new(1, Config::default());
    s.connect(2, peer());
    s.write(b"abc").unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    assert!(s.poll_transmit(now, &mut buf).is_some());
    let h = Header {
        stream_id: 1,
        rwnd: 1,
        seq: 0,
        ack: 1000,
        ..Default::default()
    };
    let mut out = [0u8; 20];
    h.encode(&mut out).unwrap();
    s.handle_datagram(now, peer(), &out);
    assert_eq!(s.unacked_bytes(), 3);
    assert_eq!(s.stats().dropped_bad_ack, 1);
}

/// Keepalive (libudx `udx_stream_set_keepalive`): an idle stream sends a HEARTBEAT every
/// interval, the peer answers each with an ACK, and nothing times out.
#[test]
fn keepalive_heartbeats_while_idle() {
    let cfg = Config {
        keepalive: Some(Duration::from_secs(5)),
        ..Config::default()
    };
    let mut p = Pair::new(11, cfg);
    p.set_link(link(), link());
    p.a.write(b"x").unwrap();
    run_until(&mut p, Duration::from_secs(61), |p| {
        p.net.elapsed() >= Duration::from_secs(60)
    });
    let ab = p.net.counters(p.addr_a, p.addr_b);
    let ba = p.net.counters(p.addr_b, p.addr_a);
    // 1 DATA + ~12 heartbeats from each side (both have keepalive), each answered
    assert!((20..=30).contains(&ab.sent), "A sent {}", ab.sent);
    assert!((20..=30).contains(&ba.sent), "B sent {}", ba.sent);
    assert!(p.a.closed().is_none() && p.b.closed().is_none());
    assert_eq!(p.a.stats().rto_expiries, 0);
}
