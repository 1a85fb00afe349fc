//! The check behind the `holepunch_ops` fuzz target, shared with the corpus replay in
//! `cargo test` (`tests/holepunch_fuzz_replay.rs`).
//!
//! Input: the first byte picks the side (client or server) and whether a blind relay is
//! configured; then a sequence of operations: ping answers with any reflexive address, ping
//! failures, probes on any socket from anywhere, PEER_HOLEPUNCH payloads either as raw fuzzer
//! bytes through the [`HolepunchPayload`] decoder or built from fuzzer-chosen fields (any
//! error code, firewall number, round, up to 40 addresses, tokens from a small set so echoes
//! happen), relay failures, stream packets and time passing.
//! Oracle: nothing panics; every Bind is of a fresh socket and every Release of a held one;
//! at most [`BIRTHDAY_SOCKETS`] sockets are held; one call queues at most
//! [`MAX_QUEUED_ACTIONS`] plus a bind and a release per socket; the random-punch budget never
//! exceeds one; at most one outcome is reported; and once the caller reports its pings and
//! requests as failed and time runs on, the machine is done, its timers stop, the budget is
//! back to zero and exactly one outcome was reported. This module may panic: it is the oracle.

// The fuzz oracle may assert and index: it runs on inputs it builds itself.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{
    Action, BIRTHDAY_SOCKETS, ClientConfig, ClientPunch, ClientReply, MAX_QUEUED_ACTIONS,
    RandomPunches, Sampling, ServerConfig, ServerPunch, ServerRequest, SocketId,
};
use crate::codec::Decode;
use crate::hyperdht::messages::{HolepunchPayload, RelayInfo};

enum Side {
    Client(ClientPunch),
    Server(ServerPunch),
}

struct Run {
    side: Side,
    now: Instant,
    budget: RandomPunches,
    held: BTreeSet<SocketId>,
    pings: Vec<SocketId>,
    outcomes: usize,
    request: u64,
}

fn byte(rest: &mut &[u8]) -> u8 {
    match rest.split_first() {
        Some((b, r)) => {
            *rest = r;
            *b
        }
        None => 0,
    }
}

fn addr(host: u8, port: u8) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(20, 0, host % 4, host % 8),
        u16::from(port % 4),
    )
}

fn token(b: u8) -> Option<[u8; 32]> {
    (!b.is_multiple_of(4)).then_some([b % 4; 32])
}

fn sampling() -> Sampling {
    Sampling {
        newest_first: (1..=6).map(|i| addr(i, 1)).collect(),
        table_len: 6,
        firewalled: true,
    }
}

impl Run {
    fn drain(&mut self) {
        let mut acts = Vec::new();
        let mut events = Vec::new();
        match &mut self.side {
            Side::Client(c) => {
                acts.extend(std::iter::from_fn(|| c.poll_action()));
                events.extend(std::iter::from_fn(|| c.poll_event()));
            }
            Side::Server(s) => {
                acts.extend(std::iter::from_fn(|| s.poll_action()));
                events.extend(std::iter::from_fn(|| s.poll_event()));
            }
        }
        assert!(acts.len() <= MAX_QUEUED_ACTIONS + 2 * BIRTHDAY_SOCKETS);
        for a in acts {
            match a {
                Action::Bind(s) => assert!(self.held.insert(s), "bound twice"),
                Action::Release(s) => assert!(self.held.remove(&s), "released, not held"),
                Action::Ping { socket, .. } => self.pings.push(socket),
                _ => {}
            }
        }
        assert!(self.held.len() <= BIRTHDAY_SOCKETS);
        self.outcomes += events.len();
        assert!(self.outcomes <= 1, "{events:?}");
        assert!(self.budget.active() <= 1);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.side {
            Side::Client(c) => c.poll_timeout(),
            Side::Server(s) => s.poll_timeout(),
        }
    }

    fn wait(&mut self, until: Instant) {
        while let Some(t) = self.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            match &mut self.side {
                Side::Client(c) => c.handle_timeout(self.now, &mut self.budget),
                Side::Server(s) => s.handle_timeout(self.now, &mut self.budget),
            }
            self.drain();
        }
        self.now = self.now.max(until);
    }

    fn payload(&mut self, payload: Option<HolepunchPayload>, rest: &mut &[u8]) {
        let b = byte(rest);
        let peer = (b & 1 != 0).then(|| addr(byte(rest), byte(rest)));
        let (now, budget) = (self.now, &mut self.budget);
        match &mut self.side {
            Side::Client(c) => {
                let reply = ClientReply {
                    payload,
                    peer_address: peer,
                    to: addr(5, 1),
                    from: addr(1, 1),
                };
                c.on_reply(now, reply, budget);
            }
            Side::Server(s) => {
                self.request += 1;
                let req = ServerRequest {
                    request: self.request,
                    payload,
                    peer_address: peer,
                    from_server_relay: b & 2 != 0,
                    on_socket: (b & 4 != 0).then_some(SocketId(u32::from(b >> 6))),
                    to: addr(5, 1),
                    from: addr(1, 1),
                };
                s.on_request(now, req, budget);
            }
        }
    }

    fn op(&mut self, op: u8, rest: &mut &[u8]) {
        let (now, budget) = (self.now, &mut self.budget);
        match op % 8 {
            0 => {
                let (socket, host, port, node) = (byte(rest), byte(rest), byte(rest), byte(rest));
                let socket = SocketId(u32::from(socket % 4));
                let (to, from) = (addr(host, port), addr(node % 6 + 1, 1));
                match &mut self.side {
                    Side::Client(c) => c.on_pong(now, socket, to, from, budget),
                    Side::Server(s) => s.on_pong(now, socket, to, from, budget),
                }
            }
            1 => {
                let socket = SocketId(u32::from(byte(rest) % 4));
                match &mut self.side {
                    Side::Client(c) => c.on_ping_failed(now, socket, budget),
                    Side::Server(s) => s.on_ping_failed(now, socket, budget),
                }
            }
            2 => {
                let socket = SocketId(u32::from(byte(rest)));
                let from = addr(byte(rest), byte(rest));
                match &mut self.side {
                    Side::Client(c) => c.on_probe(now, socket, from, budget),
                    Side::Server(s) => s.on_probe(now, socket, from, budget),
                }
            }
            3 => {
                let len = usize::from(byte(rest) % 64).min(rest.len());
                let (raw, tail) = rest.split_at(len);
                *rest = tail;
                let payload = HolepunchPayload::from_bytes(raw).ok();
                self.payload(payload, rest);
            }
            4 => {
                if let Side::Client(c) = &mut self.side {
                    c.on_relay_error(now, budget);
                }
            }
            5 => {
                let socket = SocketId(u32::from(byte(rest)));
                if let Side::Server(s) = &mut self.side {
                    s.on_stream_packet(now, socket, addr(2, 2), budget);
                }
            }
            6 => {
                let until = self.now + Duration::from_millis(u64::from(byte(rest)) * 200);
                self.wait(until);
            }
            _ => {
                let f = byte(rest);
                let n = usize::from(byte(rest) % 41);
                let payload = HolepunchPayload {
                    error: u64::from(f & 0x0f) % 5,
                    firewall: u64::from(byte(rest) % 6),
                    round: u64::from(byte(rest) % 8),
                    connected: f & 0x10 != 0,
                    punching: f & 0x20 != 0,
                    addresses: (f & 0x40 != 0)
                        .then(|| (0..n).map(|_| addr(byte(rest), byte(rest))).collect()),
                    remote_address: (f & 0x80 != 0).then(|| addr(byte(rest), byte(rest))),
                    token: token(byte(rest)),
                    remote_token: token(byte(rest)),
                };
                self.payload(Some(payload), rest);
            }
        }
        self.drain();
    }
}

/// Runs one fuzz input against a client or a server puncher.
pub fn holepunch_ops(data: &[u8]) {
    let mut rest = data;
    let head = byte(&mut rest);
    let relay_through = head & 2 != 0;
    let now = Instant::now();
    let side = if head & 1 == 0 {
        Side::Client(
            ClientPunch::new(ClientConfig {
                server_address: addr(1, 2),
                relay_address: addr(1, 1),
                server_firewall: u64::from(head >> 2) % 5,
                server_relays: vec![RelayInfo {
                    relay_address: addr(1, 1),
                    peer_address: addr(1, 3),
                }],
                fast_open: head & 0x80 == 0,
                relay_through,
                local_secret: [7; 32],
                sampling: sampling(),
                seed: [8; 32],
            })
            .expect("a relay is given"),
        )
    } else {
        Side::Server(ServerPunch::new(
            now,
            ServerConfig {
                client_firewall: u64::from(head >> 2) % 5,
                local_secret: [7; 32],
                relay_through,
                sampling: sampling(),
                seed: [9; 32],
            },
        ))
    };
    let mut run = Run {
        side,
        now,
        budget: RandomPunches::default(),
        held: BTreeSet::new(),
        pings: Vec::new(),
        outcomes: 0,
        request: 0,
    };
    run.drain();
    while !rest.is_empty() {
        let op = byte(&mut rest);
        run.op(op, &mut rest);
    }
    // The caller reports every ping and request as failed; time runs on.
    for _ in 0..20 {
        let (now, budget) = (run.now, &mut run.budget);
        for socket in std::mem::take(&mut run.pings) {
            match &mut run.side {
                Side::Client(c) => c.on_ping_failed(now, socket, budget),
                Side::Server(s) => s.on_ping_failed(now, socket, budget),
            }
        }
        if let Side::Client(c) = &mut run.side {
            c.on_relay_error(now, budget);
        }
        run.drain();
        run.wait(run.now + Duration::from_secs(3600));
    }
    assert!(run.poll_timeout().is_none(), "timers never stop");
    let done = match &run.side {
        Side::Client(c) => c.is_done(),
        Side::Server(s) => s.is_done(),
    };
    assert!(done);
    assert_eq!(run.budget.active(), 0);
    assert_eq!(run.outcomes, 1);
}
