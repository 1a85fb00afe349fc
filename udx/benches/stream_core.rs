//! Cost of the stream core's per-packet and per-wakeup work as the window in flight grows.
//!
//! `cargo bench -p udx --bench stream_core` (release build, one process, no sockets). For each
//! size N (packets sent and not yet cumulatively acknowledged; `UDX_BENCH_SIZES`, default
//! 100,1000,10000,30000) it builds a [`Stream`] in that state through its public API with a
//! simulated 1 ms path, then times:
//!
//! - **build ACK**: a receiver holding N packets past the first one, 0.5 % of them missing
//!   (pseudo-random), answers a HEARTBEAT with an ACK carrying SACK blocks;
//! - **DATA past a gap**: that receiver takes one more out-of-order packet;
//! - **SACK ACK**: a sender whose oldest packet was lost (its copies too) and whose other
//!   packets are SACKed, except the last round's, processes ACKs that each SACK one more;
//! - **poll_timeout**: that sender's next deadline;
//! - **handle_timeout**: that sender's RACK reordering timer fires and declares one packet lost.
//!
//! Each figure is the mean per call. Printed as a Markdown table.

#![allow(clippy::disallowed_methods)] // benchmarks take real time
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use udx::proto::packet::{self, Header, Packet, SackBlock, flags};
use udx::proto::stream::MAX_DATAGRAM;
use udx::proto::{Config, Stream};

const MSS: usize = 1152;
const RTT: Duration = Duration::from_millis(1);
const SENDER: u32 = 1;
const RECEIVER: u32 = 2;

fn config() -> Config {
    Config {
        // room for 30,000+ full packets on either side
        send_buffer: 128 << 20,
        recv_window: 64 << 20,
        // no MTU probing: every DATA packet carries MSS bytes
        max_mtu: 1200,
        ..Config::default()
    }
}

/// A stream with id `local`, connected to `remote`.
/// The one remote address both streams talk to (they accept packets only from it).
const PEER: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 9),
    9000,
));

fn stream(local: u32, remote: u32) -> Stream {
    let mut s = Stream::new(local, config());
    s.connect(remote, PEER);
    s
}

/// Delivery of a datagram from the peer (the one place that knows `handle_datagram`'s
/// signature, with `stream`).
trait Feed {
    fn feed(&mut self, now: Instant, datagram: &[u8]);
}

impl Feed for Stream {
    fn feed(&mut self, now: Instant, datagram: &[u8]) {
        self.handle_datagram(now, PEER, datagram);
    }
}

fn datagram(h: Header, sacks: &[SackBlock], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_DATAGRAM + 8 * packet::MAX_SACKS];
    let n = packet::encode(&mut out, h, sacks, 0, payload).unwrap();
    out.truncate(n);
    out
}

fn header(flags: u8, stream_id: u32, seq: u32, ack: u32) -> Header {
    Header {
        flags,
        data_offset: 0,
        stream_id,
        rwnd: 64 << 20,
        seq,
        ack,
    }
}

/// An ACK from the receiver to the sender: cumulative `ack`, SACK blocks `sacks`.
fn ack(ack: u32, sacks: &[SackBlock]) -> Vec<u8> {
    datagram(header(0, SENDER, 0, ack), sacks, &[])
}

// ------------------------------------------------------------------ receiver

/// xorshift32: a fixed loss pattern without a dependency.
struct Lcg(u32);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// A receiver whose packet 0 is missing and which holds packets 1..n, 0.5 % of them missing.
fn receiver(n: u32, t0: Instant) -> Stream {
    let mut r = stream(RECEIVER, SENDER);
    let payload = vec![7u8; MSS];
    let mut rng = Lcg(0x9e37_79b9);
    for seq in 1..n {
        if rng.next().is_multiple_of(200) {
            continue;
        }
        let d = datagram(header(flags::DATA, RECEIVER, seq, 0), &[], &payload);
        r.feed(t0, &d);
    }
    let mut buf = [0u8; MAX_DATAGRAM];
    while r.poll_transmit(t0, &mut buf).is_some() {}
    r
}

/// (ns per ACK built, SACK blocks in it)
fn bench_build_ack(n: u32) -> (f64, usize) {
    let t0 = Instant::now();
    let mut r = receiver(n, t0);
    let hb = datagram(header(flags::HEARTBEAT, RECEIVER, 0, 0), &[], &[]);
    let mut buf = [0u8; MAX_DATAGRAM];
    r.feed(t0, &hb);
    let len = r.poll_transmit(t0, &mut buf).expect("an ACK");
    let blocks = Packet::decode(&buf[..len]).unwrap().sack_count();
    let ns = time_per_call(|| {
        r.feed(t0, &hb);
        black_box(r.poll_transmit(t0, &mut buf));
    });
    (ns, blocks)
}

/// ns per out-of-order DATA packet taken.
fn bench_ooo_data(n: u32) -> f64 {
    let t0 = Instant::now();
    let payload = vec![7u8; MSS];
    const EXTRA: u32 = 1000;
    let mut buf = [0u8; MAX_DATAGRAM];
    repeat(|| {
        let mut r = receiver(n, t0);
        let dgrams: Vec<Vec<u8>> = (n..n + EXTRA)
            .map(|seq| datagram(header(flags::DATA, RECEIVER, seq, 0), &[], &payload))
            .collect();
        let start = Instant::now();
        for d in &dgrams {
            r.feed(t0, d);
        }
        let took = start.elapsed();
        black_box(r.poll_transmit(t0, &mut buf));
        (took, EXTRA)
    })
}

// ------------------------------------------------------------------ sender

/// A sender with `n` packets sent and not cumulatively acknowledged: `hole` was lost (and
/// every copy of it), `hole+1..last` are SACKed, `last..next` (the last round) are in flight.
struct Sender {
    s: Stream,
    now: Instant,
    hole: u32,
    last: u32,
    next: u32,
}

/// Sends everything the sender allows at `now` (the datagrams go nowhere: the ACKs are
/// made up); `next` becomes one past the highest DATA seq sent.
fn send_all(s: &mut Stream, now: Instant, next: &mut u32) {
    let mut buf = [0u8; MAX_DATAGRAM];
    while let Some(len) = s.poll_transmit(now, &mut buf) {
        let h = Packet::decode(&buf[..len]).unwrap().header;
        if h.flags & flags::DATA != 0 && packet::seq_diff(h.seq, *next) >= 0 {
            *next = h.seq.wrapping_add(1);
        }
    }
}

/// Writes until `packets` full packets were written in all (`written` counts the bytes).
fn top_up(s: &mut Stream, written: &mut usize, packets: usize) {
    let zeros = [0u8; MSS];
    while *written < packets * MSS {
        let n = s.write(&zeros).unwrap();
        assert!(n > 0, "send buffer full");
        *written += n;
    }
}

fn sender(n: u32) -> Sender {
    let t0 = Instant::now();
    let mut s = stream(SENDER, RECEIVER);
    // Slow start without loss until the window is about a quarter of n.
    let target = (n as usize / 4).clamp(16, 4096);
    let mut written = 0;
    let mut now = t0;
    let mut next = 0u32;
    loop {
        let want = next as usize + 2 * s.cwnd();
        top_up(&mut s, &mut written, want);
        send_all(&mut s, now, &mut next);
        now += RTT;
        s.feed(now, &ack(next, &[]));
        if s.cwnd() >= target {
            break;
        }
    }
    // The next packet is lost, with every retransmission of it; the rest arrive and are
    // SACKed one RTT after they were sent. Once, a packet is SACKed after later ones, so RACK
    // opens its reordering window (RFC 8985 6.2 step 3).
    let hole = next;
    let mut last = next;
    let mut round = 0;
    // exactly n packets from the hole on
    top_up(&mut s, &mut written, (hole + n) as usize);
    while next.wrapping_sub(hole) < n {
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        last = next;
        send_all(&mut s, now, &mut next);
        now += RTT;
        if round == 1 {
            // hole+1 arrives after later packets, before it could be retransmitted
            let sack = [SackBlock {
                start: hole + 2,
                end: last,
            }];
            s.feed(now, &ack(hole, &sack));
        }
        if packet::seq_lt(hole + 1, last) {
            let sack = [SackBlock {
                start: hole + 1,
                end: last,
            }];
            s.feed(now, &ack(hole, &sack));
        }
        round += 1;
    }
    // The last round (last..next) is in the network; its ACKs arrive at `now`.
    let mut buf = [0u8; MAX_DATAGRAM];
    s.feed(
        now,
        &ack(
            hole,
            &[SackBlock {
                start: hole + 1,
                end: last,
            }],
        ),
    );
    while s.poll_transmit(now, &mut buf).is_some() {}
    Sender {
        s,
        now,
        hole,
        last,
        next,
    }
}

/// ns per SACK-bearing ACK that SACKs one more packet.
fn bench_sack(n: u32) -> f64 {
    repeat(|| {
        let mut b = sender(n);
        let k = b.next.wrapping_sub(b.last).min(1000);
        let acks: Vec<Vec<u8>> = (1..=k)
            .map(|i| {
                ack(
                    b.hole,
                    &[SackBlock {
                        start: b.hole + 1,
                        end: b.last + i,
                    }],
                )
            })
            .collect();
        let start = Instant::now();
        for a in &acks {
            b.s.feed(b.now, a);
        }
        (start.elapsed(), k)
    })
}

/// (ns per poll_timeout, ns per handle_timeout at the RACK reordering timer)
fn bench_timers(n: u32) -> (f64, f64) {
    let b = sender(n);
    let poll = time_per_call(|| {
        black_box(b.s.poll_timeout());
    });
    let timeout = repeat(|| {
        // A few identical senders; in each, the last round is SACKed except its oldest
        // packet, which RACK may only declare lost once the reordering window has passed.
        let mut batch: Vec<Sender> = (0..4).map(|_| sender(n)).collect();
        for b in &mut batch {
            let sacks = [
                SackBlock {
                    start: b.hole + 1,
                    end: b.last,
                },
                SackBlock {
                    start: b.last + 1,
                    end: b.next,
                },
            ];
            b.s.feed(b.now, &ack(b.hole, &sacks));
        }
        let at = batch[0].now + RTT;
        let start = Instant::now();
        for b in &mut batch {
            b.s.handle_timeout(at);
        }
        let took = start.elapsed();
        black_box(&batch);
        (took, 4)
    });
    (poll, timeout)
}

/// Mean ns per call over runs of `run` (each sets up its own state and returns the time its
/// calls took and how many there were): until 50 ms were measured, at least 3 runs, at most
/// 2 s of wall time.
fn repeat(mut run: impl FnMut() -> (Duration, u32)) -> f64 {
    let wall = Instant::now();
    let (mut total, mut calls, mut runs) = (Duration::ZERO, 0u32, 0);
    while runs < 3 || (total < Duration::from_millis(50) && wall.elapsed() < Duration::from_secs(2))
    {
        let (t, n) = run();
        total += t;
        calls += n;
        runs += 1;
    }
    total.as_nanos() as f64 / f64::from(calls.max(1))
}

/// Mean ns per call of `f`, over at least 50 ms.
fn time_per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let mut calls = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..100 {
            f();
        }
        calls += 100;
        let e = start.elapsed();
        if e >= Duration::from_millis(50) {
            return e.as_nanos() as f64 / calls as f64;
        }
    }
}

fn fmt(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    let sizes: Vec<u32> = std::env::var("UDX_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000,30000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("UDX_BENCH_SIZES: comma-separated numbers")
        })
        .collect();
    println!(
        "| packets in flight | build ACK (SACK blocks) | DATA past a gap | SACK ACK | poll_timeout | handle_timeout (RACK timer) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let (build, blocks) = bench_build_ack(n);
        let ooo = bench_ooo_data(n);
        let sack = bench_sack(n);
        let (poll, timeout) = bench_timers(n);
        println!(
            "| {n} | {} ({blocks}) | {} | {} | {} | {} |",
            fmt(build),
            fmt(ooo),
            fmt(sack),
            fmt(poll),
            fmt(timeout)
        );
    }
}
