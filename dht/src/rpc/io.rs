//! In-flight requests, transaction ids, retries and the send queue (`dht-rpc/lib/io.js`).
//!
//! Contract: no I/O and no clock of its own; the node passes `now` in and drains
//! [`Io::transmits`] through `Node::poll_transmit`. Bounded: at most
//! [`Limits::max_inflight`](super::Limits::max_inflight) requests in flight or queued
//! (JS: unbounded `inflight` array), at most
//! [`Limits::max_transmits`](super::Limits::max_transmits) datagrams waiting to be sent
//! (beyond that datagrams are dropped and counted, as a full UDP socket buffer would).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::congestion::CongestionWindow;
use super::node::{QueryId, RequestId};
use super::routing::{NodeId, TableNode};
use super::tokens::Tokens;
use super::wire::Request;
use crate::codec::Encode;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddrV4,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Who is waiting for a request's outcome.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A caller's `request`/`ping`; completes with `Event::Response`.
    User(RequestId),
    /// A query visit.
    Query(QueryId),
    /// A query's commit request.
    Commit(QueryId),
    /// A DOWN_HINT sent on behalf of a query (cancelled with it).
    DownHint(QueryId),
    /// A liveness check of a table member (`_check`).
    Check { id: NodeId, last_seen: u64 },
    /// A full-row re-ping (`_repingAndSwap`).
    Reping {
        newcomer: Box<TableNode>,
        old: NodeId,
        last_seen: u64,
    },
    /// The quick PING_NAT of the bootstrap query.
    QuickFirewall,
    /// A PING_NAT of `_checkIfFirewalled`.
    FirewallCheck,
}

/// One request in flight (JS `Request`).
#[derive(Debug)]
pub(crate) struct Inflight {
    pub to: SocketAddrV4,
    /// The id the destination is believed to have (timeouts drop it from the table).
    pub to_id: Option<NodeId>,
    pub req: Request,
    pub buffer: Option<Vec<u8>>,
    pub sent: u32,
    pub retries: u32,
    pub timeout: Duration,
    pub deadline: Option<Instant>,
    pub started: Instant,
    /// The query's `oncycle` already fired (the request counts as slow).
    pub cycled: bool,
    pub owner: Owner,
}

/// Request bookkeeping shared by all of the node's traffic.
#[derive(Debug)]
pub(crate) struct Io {
    pub inflight: HashMap<u16, Inflight>,
    pub pending: VecDeque<u16>,
    pub congestion: CongestionWindow,
    pub tokens: Tokens,
    pub transmits: VecDeque<Transmit>,
    pub dropped_transmits: u64,
    next_tid: u16,
    max_inflight: usize,
    max_transmits: usize,
}

impl Io {
    pub(crate) fn new(
        first_tid: u16,
        tokens: Tokens,
        max_window: u32,
        max_inflight: usize,
        max_transmits: usize,
    ) -> Self {
        Self {
            inflight: HashMap::new(),
            pending: VecDeque::new(),
            congestion: CongestionWindow::new(max_window),
            tokens,
            transmits: VecDeque::new(),
            dropped_transmits: 0,
            next_tid: first_tid,
            // tids are 16 bits; keep some free so a fresh one is always found quickly.
            max_inflight: max_inflight.min(60_000),
            max_transmits,
        }
    }

    /// Queues a datagram, dropping it when the queue is full.
    pub(crate) fn push_transmit(&mut self, to: SocketAddrV4, payload: Vec<u8>) {
        if self.transmits.len() >= self.max_transmits {
            self.dropped_transmits += 1;
            return;
        }
        self.transmits.push_back(Transmit { to, payload });
    }

    /// Registers a request (`createRequest`); `None` when the in-flight table is full.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        to_id: Option<NodeId>,
        mut req: Request,
        retries: u32,
        timeout: Duration,
        owner: Owner,
    ) -> Option<u16> {
        if self.inflight.len() >= self.max_inflight {
            return None;
        }
        let mut tid = self.next_tid;
        while self.inflight.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        req.tid = tid;
        req.to = to;
        self.inflight.insert(
            tid,
            Inflight {
                to,
                to_id,
                req,
                buffer: None,
                sent: 0,
                retries,
                timeout,
                deadline: None,
                started: now,
                cycled: false,
                owner,
            },
        );
        Some(tid)
    }

    /// Sends (or queues behind the congestion window) request `tid` (`Request.send`). The
    /// datagram is encoded on the first send, with `id` when the node is persistent.
    pub(crate) fn send(&mut self, now: Instant, tid: u16, force: bool, id: Option<NodeId>) {
        let Some(r) = self.inflight.get_mut(&tid) else {
            return;
        };
        if r.buffer.is_none() {
            r.req.id = id;
            r.buffer = Some(r.req.to_bytes());
        }
        if !force && self.congestion.is_full() {
            if !self.pending.contains(&tid) {
                self.pending.push_back(tid);
            }
            return;
        }
        self.send_now(now, tid);
    }

    /// `_sendNow`.
    pub(crate) fn send_now(&mut self, now: Instant, tid: u16) {
        let Some(r) = self.inflight.get_mut(&tid) else {
            return;
        };
        r.sent += 1;
        r.deadline = Some(now + r.timeout);
        let to = r.to;
        let payload = r.buffer.clone().unwrap_or_default();
        self.congestion.send();
        self.push_transmit(to, payload);
    }

    /// Removes a finished request, freeing its congestion slot.
    pub(crate) fn finish(&mut self, tid: u16) -> Option<Inflight> {
        let r = self.inflight.remove(&tid)?;
        self.congestion.recv();
        if r.deadline.is_none() {
            self.pending.retain(|t| *t != tid);
        }
        Some(r)
    }

    /// The 750 ms drain: rotate token secrets and the congestion slots, then send queued
    /// requests while the window allows.
    pub(crate) fn drain(&mut self, now: Instant) {
        self.tokens.drain();
        self.congestion.drain();
        while !self.congestion.is_full() {
            let Some(tid) = self.pending.pop_front() else {
                return;
            };
            self.send_now(now, tid);
        }
    }

    /// The earliest retransmission deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.inflight.values().filter_map(|r| r.deadline).min()
    }

    /// Requests whose deadline passed, earliest first.
    pub(crate) fn expired(&self, now: Instant) -> Vec<u16> {
        let mut v: Vec<(Instant, u16)> = self
            .inflight
            .iter()
            .filter_map(|(t, r)| r.deadline.filter(|d| *d <= now).map(|d| (d, *t)))
            .collect();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    }
}
