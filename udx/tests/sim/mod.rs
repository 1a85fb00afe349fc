//! A two-stream harness over `netsim`: stream A (id 1) writes a position-dependent pattern and
//! ends; stream B (id 2) reads, checks every byte against its offset, and ends after EOF.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netsim::{LinkConfig, Net};
use sha2::{Digest, Sha256};
use udx::proto::stream::MAX_DATAGRAM;
use udx::proto::{Config, Event, Stream, StreamError};

pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i as u8)
}

#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub sent_sha: [u8; 32],
    pub recv_sha: [u8; 32],
    pub received: u64,
    pub writer: Option<Result<(), StreamError>>,
    pub reader: Option<Result<(), StreamError>>,
    pub elapsed: Duration,
    pub a_stats: udx::proto::Stats,
    pub b_stats: udx::proto::Stats,
    pub eof: bool,
}

pub struct Pair {
    pub net: Net,
    pub a: Stream,
    pub b: Stream,
    pub addr_a: SocketAddr,
    pub addr_b: SocketAddr,
    /// The last datagrams delivered between A and B (an on-path observer's capture).
    pub tap: std::collections::VecDeque<netsim::Datagram>,
    /// A is gone (its owner dropped it): datagrams to it vanish and it is not polled.
    pub a_gone: bool,
    /// B is gone, likewise.
    pub b_gone: bool,
}

/// Datagrams kept in [`Pair::tap`].
pub const TAP: usize = 64;

impl Pair {
    pub fn new(seed: u64, cfg: Config) -> Pair {
        let start = Instant::now();
        let net = Net::new(start, seed);
        let addr_a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let addr_b: SocketAddr = "10.0.0.2:2000".parse().unwrap();
        let mut a = Stream::new(1, cfg.clone());
        let mut b = Stream::new(2, cfg);
        a.connect(2, addr_b);
        b.connect(1, addr_a);
        Pair {
            net,
            a,
            b,
            addr_a,
            addr_b,
            tap: Default::default(),
            a_gone: false,
            b_gone: false,
        }
    }

    pub fn set_link(&mut self, a_to_b: LinkConfig, b_to_a: LinkConfig) {
        self.net.set_link(self.addr_a, self.addr_b, a_to_b);
        self.net.set_link(self.addr_b, self.addr_a, b_to_a);
    }

    /// Moves every due datagram and timer once; returns false if nothing is scheduled at all.
    pub fn step(&mut self, buf: &mut [u8]) -> bool {
        let now = self.net.now();
        while let Some(n) = self.a.poll_transmit(now, buf).filter(|_| !self.a_gone) {
            self.net.send(self.addr_a, self.addr_b, &buf[..n]);
        }
        while let Some(n) = self.b.poll_transmit(now, buf).filter(|_| !self.b_gone) {
            self.net.send(self.addr_b, self.addr_a, &buf[..n]);
        }
        let next = [
            self.net.next_delivery(),
            self.a.poll_timeout().filter(|_| !self.a_gone),
            self.b.poll_timeout().filter(|_| !self.b_gone),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        self.net.advance_to(next);
        let now = self.net.now();
        while let Some(d) = self.net.poll_deliver() {
            if d.to == self.addr_b && !self.b_gone {
                self.b.handle_datagram(now, d.from, &d.data);
            } else if d.to == self.addr_a && !self.a_gone {
                self.a.handle_datagram(now, d.from, &d.data);
            }
            if [self.addr_a, self.addr_b].contains(&d.from) {
                if self.tap.len() == TAP {
                    self.tap.pop_front();
                }
                self.tap.push_back(d);
            }
        }
        if !self.a_gone && self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        if !self.b_gone && self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
        }
        true
    }
}

/// Transfers `size` bytes from A to B over links configured by the caller; stops at `limit`
/// virtual time. Panics (printing the seed) on a wrong byte, a hang or a stall.
pub fn transfer(
    seed: u64,
    size: u64,
    link: LinkConfig,
    back: LinkConfig,
    limit: Duration,
) -> Outcome {
    transfer_with(Config::default(), seed, size, link, back, limit)
}

/// [`transfer`] with a custom stream configuration on both ends.
pub fn transfer_with(
    cfg: Config,
    seed: u64,
    size: u64,
    link: LinkConfig,
    back: LinkConfig,
    limit: Duration,
) -> Outcome {
    transfer_hooked(cfg, seed, size, link, back, limit, |_| {})
}

/// [`transfer_with`] that calls `hook` before every step (an attacker injects datagrams, a
/// test drops a stream, ...). The transfer is over once both sides report their end, or the
/// writer fails; with a gone A, once B reports its end.
pub fn transfer_hooked(
    cfg: Config,
    seed: u64,
    size: u64,
    link: LinkConfig,
    back: LinkConfig,
    limit: Duration,
    mut hook: impl FnMut(&mut Pair),
) -> Outcome {
    let mut p = Pair::new(seed, cfg);
    p.set_link(link, back);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut written = 0u64;
    let mut received = 0u64;
    let mut sent_sha = Sha256::new();
    let mut recv_sha = Sha256::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut writer = None;
    let mut reader = None;
    let mut eof = false;
    let mut b_ended = false;
    let mut last_progress = p.net.now();
    let start = p.net.now();
    let trace = std::env::var("UDX_TRACE").is_ok();
    let mut last_now = p.net.now();
    let mut same_time = 0u32;
    let ctx = |p: &Pair| format!("NETSIM_SEED={seed} t={:?}", p.net.elapsed());
    loop {
        // writer
        while written < size && writer.is_none() {
            let cap =
                p.a.write_capacity()
                    .min(chunk.len())
                    .min((size - written) as usize);
            if cap == 0 {
                break;
            }
            for (i, c) in chunk[..cap].iter_mut().enumerate() {
                *c = pattern(written + i as u64);
            }
            let n = p.a.write(&chunk[..cap]).expect("write");
            sent_sha.update(&chunk[..n]);
            written += n as u64;
        }
        if written == size && writer.is_none() && p.a.closed().is_none() {
            let _ = p.a.end();
        }
        // reader
        loop {
            match p.b.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    for (i, c) in chunk[..n].iter().enumerate() {
                        let want = pattern(received + i as u64);
                        assert_eq!(
                            *c,
                            want,
                            "wrong byte at {} ({})",
                            received + i as u64,
                            ctx(&p)
                        );
                    }
                    recv_sha.update(&chunk[..n]);
                    received += n as u64;
                    last_progress = p.net.now();
                }
                Err(_) => break,
            }
        }
        assert!(
            received <= written,
            "delivered more than written ({})",
            ctx(&p)
        );
        if p.b.is_eof() && !b_ended {
            eof = true;
            assert_eq!(received, size, "EOF before all bytes ({})", ctx(&p));
            b_ended = true;
            let _ = p.b.end();
        }
        while let Some(e) = p.a.poll_event() {
            if let Event::Closed(r) = e {
                writer = Some(r);
            }
        }
        while let Some(e) = p.b.poll_event() {
            if let Event::Closed(r) = e {
                reader = Some(r);
            }
        }
        if writer.is_some() && (reader.is_some() || writer != Some(Ok(()))) {
            break;
        }
        hook(&mut p);
        if trace {
            eprintln!(
                "{:?} A: {}\n    B: {}",
                p.net.elapsed(),
                p.a.debug_state(),
                p.b.debug_state()
            );
        }
        if !p.step(&mut buf) {
            panic!("nothing scheduled but not finished: hang ({})", ctx(&p));
        }
        let elapsed = p.net.elapsed();
        if p.net.now() == last_now {
            same_time += 1;
            assert!(
                same_time < 100_000,
                "virtual clock stuck: busy loop ({})\nA: {}\nB: {}",
                ctx(&p),
                p.a.debug_state(),
                p.b.debug_state()
            );
        } else {
            same_time = 0;
            last_now = p.net.now();
        }
        assert!(
            p.net.now() - last_progress <= Duration::from_secs(120) || writer.is_some(),
            "no progress for 120 s without a terminal error ({})",
            ctx(&p)
        );
        assert!(
            elapsed <= limit,
            "not finished within {limit:?} ({})",
            ctx(&p)
        );
    }
    Outcome {
        seed,
        sent_sha: sent_sha.finalize().into(),
        recv_sha: recv_sha.finalize().into(),
        received,
        writer,
        reader,
        elapsed: p.net.now() - start,
        a_stats: p.a.stats(),
        b_stats: p.b.stats(),
        eof,
    }
}
