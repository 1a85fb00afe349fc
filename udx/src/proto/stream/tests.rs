//! The stream's internal bookkeeping stays consistent through loss, reordering, duplication
//! and a blackout: the transmission-order list, `in_flight`, the SACK ranges and the
//! out-of-order ranges always describe exactly the packets they index.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{Config, Stream};
use crate::proto::packet::seq_lt;
use crate::proto::stream::MAX_DATAGRAM;

impl Stream {
    fn check_invariants(&self) {
        let r = &self.recovery;
        // transmission-order list: exactly the counted packets, oldest transmission first
        let mut walked = 0usize;
        let mut prev: Option<u32> = None;
        let mut last_order = 0u64;
        let mut cursor = r.oldest_sent;
        while let Some(seq) = cursor {
            let i = seq.wrapping_sub(r.remote_acked) as usize;
            let p = r.inflight.get(i).expect("list names a packet in flight");
            assert!(p.counted && !p.sacked && !p.lost, "seq {seq}: {p:?}");
            assert_eq!(p.prev_sent, prev, "seq {seq}: back link");
            assert!(p.order > last_order, "seq {seq}: transmission order");
            last_order = p.order;
            prev = Some(seq);
            cursor = p.next_sent;
            walked += 1;
            assert!(walked <= r.inflight.len(), "list has a cycle");
        }
        assert_eq!(r.newest_sent, prev);
        let counted = r.inflight.iter().filter(|p| p.counted).count();
        assert_eq!(walked, counted);
        assert_eq!(r.in_flight, counted);
        // SACK ranges: exactly the SACKed packets
        let mut sacked = crate::proto::range_set::SeqRanges::default();
        for (i, p) in r.inflight.iter().enumerate() {
            if p.sacked {
                let s = r.remote_acked.wrapping_add(i as u32);
                sacked.insert(s, s.wrapping_add(1));
            }
        }
        assert_eq!(
            r.sacked.iter().collect::<Vec<_>>(),
            sacked.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            r.sacked_count,
            r.inflight.iter().filter(|p| p.sacked).count()
        );
        // out-of-order ranges: exactly the buffered packets, all past `ack`
        let mut ooo = crate::proto::range_set::SeqRanges::default();
        for &s in self.recv.ooo.keys() {
            assert!(seq_lt(self.recv.ack, s));
            ooo.insert(s, s.wrapping_add(1));
        }
        assert_eq!(
            self.recv.ooo_seqs.iter().collect::<Vec<_>>(),
            ooo.iter().collect::<Vec<_>>()
        );
    }
}

/// xorshift64: deterministic channel decisions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One direction: drops `loss` %, duplicates 2 %, delays 5 to 9 ms (so packets reorder),
/// and drops everything while `blackout` covers the send time.
struct Link {
    queue: Vec<(Instant, Vec<u8>)>,
    loss: u64,
}

impl Link {
    fn send(&mut self, rng: &mut Rng, now: Instant, blackout: bool, d: &[u8]) {
        if blackout || rng.chance(self.loss) {
            return;
        }
        let copies = if rng.chance(2) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::from_micros(5_000 + rng.next() % 4_000);
            self.queue.push((now + delay, d.to_vec()));
        }
    }
    fn due(&mut self, now: Instant) -> VecDeque<Vec<u8>> {
        let (due, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|(t, _)| *t <= now);
        self.queue = rest;
        let mut due = due;
        due.sort_by_key(|(t, _)| *t);
        due.into_iter().map(|(_, d)| d).collect()
    }
}

/// The one address both streams see their peer at (they take packets only from it).
const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 9000));

// The two calls whose signatures involve the peer's identity.
fn connect(s: &mut Stream, remote: u32) {
    s.connect(remote, PEER);
}

fn feed(s: &mut Stream, now: Instant, d: &[u8]) {
    s.handle_datagram(now, PEER, d);
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) >> 3) as u8
}

/// Moves `size` bytes from A to B over lossy links (with a 3 s blackout in the middle),
/// checking both streams' invariants after every step.
fn transfer(seed: u64, size: usize, loss: u64) {
    #[allow(clippy::disallowed_methods)] // any origin will do; the test steps time itself
    let t0 = Instant::now();
    let mut rng = Rng(seed | 1);
    let cfg = Config::default();
    let (mut a, mut b) = (Stream::new(1, cfg.clone()), Stream::new(2, cfg));
    connect(&mut a, 2);
    connect(&mut b, 1);
    let mut ab = Link {
        queue: Vec::new(),
        loss,
    };
    let mut ba = Link {
        queue: Vec::new(),
        loss,
    };
    let mut now = t0;
    let mut written = 0;
    let mut got = Vec::with_capacity(size);
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut read_buf = vec![0u8; 64 * 1024];
    let blackout = |now: Instant| {
        let e = now - t0;
        e >= Duration::from_secs(1) && e < Duration::from_secs(4)
    };
    while got.len() < size || !a.is_end_acked() {
        assert!(now - t0 < Duration::from_secs(600), "seed {seed}: stuck");
        while written < size {
            let chunk: Vec<u8> = (written..size.min(written + 4096)).map(pattern).collect();
            let n = a.write(&chunk).unwrap();
            if n == 0 {
                break;
            }
            written += n;
        }
        if written == size && !a.is_ending() {
            a.end().unwrap();
        }
        for (s, link) in [(&mut a, &mut ab), (&mut b, &mut ba)] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            while let Some(n) = s.poll_transmit(now, &mut buf) {
                link.send(&mut rng, now, blackout(now), &buf[..n]);
            }
            s.check_invariants();
        }
        for d in ab.due(now) {
            feed(&mut b, now, &d);
            b.check_invariants();
        }
        for d in ba.due(now) {
            feed(&mut a, now, &d);
            a.check_invariants();
        }
        loop {
            let n = b.read(&mut read_buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&read_buf[..n]);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        now += Duration::from_micros(500);
    }
    assert_eq!(got.len(), size);
    assert!(got.iter().enumerate().all(|(i, &v)| v == pattern(i)));
    assert!(b.is_eof());
    let st = a.stats();
    assert!(st.retransmits > 0 && st.rto_expiries > 0, "{st:?}");
}

#[test]
fn bookkeeping_holds_through_loss_reordering_and_a_blackout() {
    for seed in 1..=3 {
        transfer(seed, 3 << 20, 3);
    }
}

#[test]
fn bookkeeping_holds_under_heavy_loss() {
    transfer(7, 1 << 20, 20);
}

/// A peer that answers from another socket than the one we send to: after
/// `connect_rebinding` the first packet moves the remote there and the transfer completes;
/// after that a third address is refused again. A plain `connect` refuses the other socket.
#[test]
fn connect_rebinding_follows_the_first_answer_then_checks_the_path() {
    #[allow(clippy::disallowed_methods)] // any origin will do; the test steps time itself
    let now = Instant::now();
    let other = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 9001));
    let third = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 9001));
    let cfg = Config::default();
    for rebinding in [true, false] {
        let (mut a, mut b) = (Stream::new(1, cfg.clone()), Stream::new(2, cfg.clone()));
        if rebinding {
            a.connect_rebinding(2, PEER);
        } else {
            a.connect(2, PEER);
        }
        b.connect(1, PEER);
        a.write(b"ping").unwrap();
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut read = [0u8; 16];
        let mut t = now;
        for _ in 0..20 {
            t += Duration::from_millis(10);
            while let Some(n) = a.poll_transmit(t, &mut buf) {
                b.handle_datagram(t, PEER, &buf[..n]);
            }
            while let Some(n) = b.poll_transmit(t, &mut buf) {
                // b's answers reach a from the other socket
                a.handle_datagram(t, other, &buf[..n]);
            }
        }
        assert_eq!(b.read(&mut read).unwrap_or(0), 4);
        if rebinding {
            assert_eq!(a.remote_addr(), Some(other));
            assert_eq!(a.stats().dropped_off_path, 0);

            let before = a.stats().dropped_off_path;
            b.write(b"x").unwrap();
            while let Some(n) = b.poll_transmit(t, &mut buf) {
                a.handle_datagram(t, third, &buf[..n]);
            }
            assert_eq!(a.stats().dropped_off_path, before + 1);
        } else {
            assert_eq!(a.remote_addr(), Some(PEER));
            assert!(a.stats().dropped_off_path > 0);
        }
    }
}
