//! The request table: in-flight requests, transaction ids, retransmission timers, the
//! congestion queue, and the outgoing datagram queue (`dht-rpc/lib/io.js` `IO.createRequest`,
//! `Request.send`, `Request._sendNow`, `IO.onmessage`).
//!
//! Contract: no I/O and no clock of its own; the node passes `now` in and drains the
//! [`Outbox`] through `Node::poll_transmit`. Bounded: at most
//! [`Limits::max_inflight`](super::Limits::max_inflight) requests in flight or queued
//! (JS: unbounded `inflight` array), at most
//! [`Limits::max_transmits`](super::Limits::max_transmits) datagrams waiting to be sent
//! (beyond that datagrams are dropped and counted, as a full UDP socket buffer would). The
//! timer heap and the congestion queue keep stale entries until they surface, and are compacted
//! when they pass twice the live count plus 64, so both stay within that bound.
//!
//! Transaction ids are drawn at random from the table's own ChaCha20 stream (seeded by the
//! node), unique among the requests in flight. JS counts up from a random start
//! (`IO._tid`); random ids make an off-path guess of the next id as hard as a guess of any id.
//!
//! Cost: creating, answering, timing out and cancelling a request is O(log n); the next
//! deadline is read from the top of a heap of `(deadline, tid)` in O(1); a query's or a
//! caller's requests are found through an index by owner.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::api::{QueryId, RequestId};
use super::congestion::CongestionWindow;
use super::routing::{NodeId, TableNode};
use super::wire::Request;
use crate::codec::Encode;

/// Transaction ids are 16 bits; this many stay free so a random draw finds a free one quickly.
const FREE_TIDS: usize = 5_536;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddrV4,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Datagrams waiting for the socket, bounded like a socket send buffer.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Transmit>,
    dropped: u64,
    max: usize,
}

impl Outbox {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            dropped: 0,
            max,
        }
    }

    /// Queues a datagram, dropping it (and counting the drop) when the queue is full.
    pub(crate) fn push(&mut self, to: SocketAddrV4, payload: Vec<u8>) {
        if self.queue.len() >= self.max {
            self.dropped += 1;
            return;
        }
        self.queue.push_back(Transmit { to, payload });
    }

    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }
}

/// Replies held back until their time (DELAYED_PING: `dht-rpc/index.js` `_onrequest` answers
/// after `setTimeout(delay)`), earliest first. Bounded by
/// [`Limits::max_delayed_pings`](super::Limits::max_delayed_pings).
#[derive(Debug)]
pub(crate) struct DelayedReplies {
    /// By due time, then arrival order.
    due: BTreeMap<(Instant, u64), Transmit>,
    seq: u64,
    max: usize,
}

impl DelayedReplies {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            due: BTreeMap::new(),
            seq: 0,
            max,
        }
    }

    /// Whether another reply can be held.
    pub(crate) fn has_room(&self) -> bool {
        self.due.len() < self.max
    }

    /// Holds `t` until `at`; false (and nothing held) when full.
    pub(crate) fn push(&mut self, at: Instant, t: Transmit) -> bool {
        if !self.has_room() {
            return false;
        }
        self.seq += 1;
        self.due.insert((at, self.seq), t);
        true
    }

    /// When the earliest held reply is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first_key_value().map(|((at, _), _)| *at)
    }

    /// Moves every reply due at `now` to the outbox, earliest first.
    pub(crate) fn release(&mut self, now: Instant, out: &mut Outbox) {
        while let Some(entry) = self.due.first_entry() {
            if entry.key().0 > now {
                return;
            }
            let t = entry.remove();
            out.push(t.to, t.payload);
        }
    }
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

/// Who owns a request, as far as cancelling goes: a caller's request, or one of a query's
/// visits, DOWN_HINTs and commits (in that order, so a query's visits and hints are one range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OwnerKey {
    User(RequestId),
    Query(QueryId, QueryRole),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum QueryRole {
    Visit,
    DownHint,
    Commit,
}

impl Owner {
    fn key(&self) -> Option<OwnerKey> {
        match self {
            Owner::User(id) => Some(OwnerKey::User(*id)),
            Owner::Query(q) => Some(OwnerKey::Query(*q, QueryRole::Visit)),
            Owner::DownHint(q) => Some(OwnerKey::Query(*q, QueryRole::DownHint)),
            Owner::Commit(q) => Some(OwnerKey::Query(*q, QueryRole::Commit)),
            _ => None,
        }
    }
}

/// What a new request needs.
#[derive(Debug)]
pub(crate) struct NewRequest {
    /// The request; its `tid` and `to` are filled in by the table.
    pub req: Request,
    /// The id the destination is believed to have (a timeout drops it from the table).
    pub to_id: Option<NodeId>,
    /// Retransmissions after the first send.
    pub retries: u32,
    /// Wait per transmission.
    pub timeout: Duration,
    pub owner: Owner,
}

/// One request in flight (JS `Request`).
#[derive(Debug)]
struct Inflight {
    req: Request,
    to_id: Option<NodeId>,
    buffer: Option<Vec<u8>>,
    sent: u32,
    retries: u32,
    timeout: Duration,
    deadline: Option<Instant>,
    started: Instant,
    /// The query's `oncycle` already fired (the request counts as slow).
    cycled: bool,
    /// Waiting in the congestion queue.
    queued: bool,
    /// Tells this request apart from an earlier one that had the same tid.
    serial: u64,
    owner: Owner,
}

/// A request taken out of the table (answered, failed or cancelled).
#[derive(Debug)]
pub(crate) struct Finished {
    pub to: SocketAddrV4,
    pub to_id: Option<NodeId>,
    pub started: Instant,
    pub cycled: bool,
    pub owner: Owner,
}

/// A request whose retransmission timer fired.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired {
    pub tid: u16,
    serial: u64,
    /// All transmissions are spent: the request has failed.
    pub exhausted: bool,
    /// The first timeout of a query visit (JS `oncycle`): the query counts it as slow.
    pub slow_query: Option<QueryId>,
}

/// How a response datagram relates to the table.
#[derive(Debug)]
pub(crate) enum Match {
    /// It answers a request in flight, which is now finished.
    Answer(Finished),
    /// No request in flight has this tid.
    Unknown,
    /// A request has this tid but was sent to another address (mainline DHTs drop these too).
    WrongSource,
}

/// Request bookkeeping shared by all of the node's traffic.
#[derive(Debug)]
pub(crate) struct Requests {
    inflight: BTreeMap<u16, Inflight>,
    /// Congestion queue: `(tid, serial)`; stale once the request left the table or was sent.
    queue: VecDeque<(u16, u64)>,
    /// Retransmission timers `(deadline, tid, serial)`, earliest on top; stale entries are
    /// skipped when they surface.
    timers: BinaryHeap<Reverse<(Instant, u16, u64)>>,
    /// Requests by owner, for cancelling a query's or a caller's requests without a scan.
    by_owner: BTreeSet<(OwnerKey, u16)>,
    congestion: CongestionWindow,
    rng: ChaCha20Rng,
    next_serial: u64,
    max_inflight: usize,
}

impl Requests {
    pub(crate) fn new(rng: ChaCha20Rng, max_window: u32, max_inflight: usize) -> Self {
        Self {
            inflight: BTreeMap::new(),
            queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            by_owner: BTreeSet::new(),
            congestion: CongestionWindow::new(max_window),
            rng,
            next_serial: 0,
            max_inflight: max_inflight.min(usize::from(u16::MAX) + 1 - FREE_TIDS),
        }
    }

    /// Requests in flight or queued.
    pub(crate) fn len(&self) -> usize {
        self.inflight.len()
    }

    /// Registers a request (`createRequest`) with a fresh random tid; `None` when the table is
    /// full.
    pub(crate) fn create(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        new: NewRequest,
    ) -> Option<u16> {
        if self.inflight.len() >= self.max_inflight {
            return None;
        }
        let mut tid = self.rng.next_u32() as u16;
        while self.inflight.contains_key(&tid) {
            tid = self.rng.next_u32() as u16;
        }
        self.next_serial += 1;
        if let Some(key) = new.owner.key() {
            self.by_owner.insert((key, tid));
        }
        let mut req = new.req;
        req.tid = tid;
        req.to = to;
        self.inflight.insert(
            tid,
            Inflight {
                req,
                to_id: new.to_id,
                buffer: None,
                sent: 0,
                retries: new.retries,
                timeout: new.timeout,
                deadline: None,
                started: now,
                cycled: false,
                queued: false,
                serial: self.next_serial,
                owner: new.owner,
            },
        );
        Some(tid)
    }

    /// Sends (or queues behind the congestion window) request `tid` (`Request.send`). The
    /// datagram is encoded on the first send, with `id` when the node is persistent.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        tid: u16,
        force: bool,
        id: Option<NodeId>,
        out: &mut Outbox,
    ) {
        let full = self.congestion.is_full();
        let Some(r) = self.inflight.get_mut(&tid) else {
            return;
        };
        if r.buffer.is_none() {
            r.req.id = id;
            r.buffer = Some(r.req.to_bytes());
        }
        if !force && full {
            if !r.queued {
                r.queued = true;
                self.queue.push_back((tid, r.serial));
                self.compact_queue();
            }
            return;
        }
        self.send_now(now, tid, out);
    }

    /// `_sendNow`.
    fn send_now(&mut self, now: Instant, tid: u16, out: &mut Outbox) {
        let Some(r) = self.inflight.get_mut(&tid) else {
            return;
        };
        r.queued = false;
        r.sent += 1;
        let deadline = now + r.timeout;
        r.deadline = Some(deadline);
        self.timers.push(Reverse((deadline, tid, r.serial)));
        let payload = r.buffer.clone().unwrap_or_default();
        out.push(r.req.to, payload);
        self.congestion.send();
        self.compact_timers();
    }

    /// Matches a response (`IO.onmessage`): by tid, and only from the address the request was
    /// sent to. JS matches the tid alone; this table is stricter, like mainline DHTs, so an
    /// off-path sender must guess the address as well as the tid.
    pub(crate) fn answer(&mut self, tid: u16, from: SocketAddrV4) -> Match {
        match self.inflight.get(&tid) {
            None => Match::Unknown,
            Some(r) if r.req.to != from => Match::WrongSource,
            Some(_) => self.finish(tid).map_or(Match::Unknown, Match::Answer),
        }
    }

    /// Removes a request, freeing its congestion slot.
    pub(crate) fn finish(&mut self, tid: u16) -> Option<Finished> {
        let r = self.inflight.remove(&tid)?;
        if let Some(key) = r.owner.key() {
            self.by_owner.remove(&(key, tid));
        }
        self.congestion.recv();
        self.pop_stale_timers();
        self.compact_timers();
        self.compact_queue();
        Some(Finished {
            to: r.req.to,
            to_id: r.to_id,
            started: r.started,
            cycled: r.cycled,
            owner: r.owner,
        })
    }

    /// Cancels a request of a destroyed query session: JS frees one congestion slot for the
    /// session and another for the request.
    pub(crate) fn cancel_session_request(&mut self, tid: u16) {
        self.congestion.recv();
        self.finish(tid);
    }

    /// The requests of query `q`: its visits and DOWN_HINTs, and its commits when
    /// `with_commits` (O(log n + found)).
    pub(crate) fn of_query(&self, q: QueryId, with_commits: bool) -> Vec<u16> {
        let last = if with_commits {
            QueryRole::Commit
        } else {
            QueryRole::DownHint
        };
        let from = (OwnerKey::Query(q, QueryRole::Visit), 0);
        let to = (OwnerKey::Query(q, last), u16::MAX);
        self.by_owner.range(from..=to).map(|(_, t)| *t).collect()
    }

    /// The requests of caller's request `id`.
    pub(crate) fn of_user(&self, id: RequestId) -> Vec<u16> {
        let key = OwnerKey::User(id);
        self.by_owner
            .range((key, 0)..=(key, u16::MAX))
            .map(|(_, t)| *t)
            .collect()
    }

    /// The 750 ms drain: rotate the congestion slots, then send queued requests while the
    /// window allows.
    pub(crate) fn drain(&mut self, now: Instant, out: &mut Outbox) {
        self.congestion.drain();
        while !self.congestion.is_full() {
            let Some((tid, serial)) = self.queue.pop_front() else {
                return;
            };
            let live = self
                .inflight
                .get(&tid)
                .is_some_and(|r| r.serial == serial && r.queued);
            if live {
                self.send_now(now, tid, out);
            }
        }
    }

    /// The earliest retransmission deadline (O(1): the top of the timer heap is kept live).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((d, _, _))| *d)
    }

    /// The earliest request whose deadline passed, taken off its timer (`oncycle`): the
    /// caller then retries it ([`Requests::retry`]) or, when `exhausted`, finishes it.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Expired> {
        loop {
            let Reverse((deadline, tid, serial)) = *self.timers.peek()?;
            if deadline > now {
                return None;
            }
            self.timers.pop();
            let Some(r) = self.inflight.get_mut(&tid) else {
                continue;
            };
            if r.serial != serial || r.deadline != Some(deadline) {
                continue;
            }
            r.deadline = None;
            let mut slow_query = None;
            if let Owner::Query(q) = r.owner
                && !r.cycled
            {
                r.cycled = true;
                slow_query = Some(q);
            }
            let exhausted = r.sent > r.retries;
            self.pop_stale_timers();
            return Some(Expired {
                tid,
                serial,
                exhausted,
                slow_query,
            });
        }
    }

    /// Sends an expired request again, unless it left the table meanwhile.
    pub(crate) fn retry(
        &mut self,
        now: Instant,
        e: &Expired,
        id: Option<NodeId>,
        out: &mut Outbox,
    ) {
        if self.is_live(e) {
            self.send(now, e.tid, false, id, out);
        }
    }

    /// Finishes an expired request, unless it left the table meanwhile.
    pub(crate) fn finish_expired(&mut self, e: &Expired) -> Option<Finished> {
        if self.is_live(e) {
            self.finish(e.tid)
        } else {
            None
        }
    }

    fn is_live(&self, e: &Expired) -> bool {
        self.inflight
            .get(&e.tid)
            .is_some_and(|r| r.serial == e.serial)
    }

    fn timer_is_live(&self, (deadline, tid, serial): (Instant, u16, u64)) -> bool {
        self.inflight
            .get(&tid)
            .is_some_and(|r| r.serial == serial && r.deadline == Some(deadline))
    }

    /// Keeps the top of the heap live so [`Requests::next_deadline`] is exact; an idle table
    /// gives its timer and queue memory back.
    fn pop_stale_timers(&mut self) {
        while let Some(Reverse(top)) = self.timers.peek().copied() {
            if self.timer_is_live(top) {
                return;
            }
            self.timers.pop();
        }
        if self.inflight.is_empty() {
            self.timers.shrink_to_fit();
            self.queue.clear();
            self.queue.shrink_to_fit();
        }
    }

    /// Drops stale timers once they pass twice the live count (amortised O(1) per call: the
    /// table must shrink by half again before the next compaction).
    fn compact_timers(&mut self) {
        if self.timers.len() > 2 * self.inflight.len() + 64 {
            let timers = std::mem::take(&mut self.timers);
            self.timers = timers
                .into_iter()
                .filter(|Reverse(t)| self.timer_is_live(*t))
                .collect();
        }
    }

    /// Drops stale queue entries once they outnumber live requests.
    fn compact_queue(&mut self) {
        if self.queue.len() > 2 * self.inflight.len() + 64 {
            let inflight = &self.inflight;
            self.queue.retain(|(tid, serial)| {
                inflight
                    .get(tid)
                    .is_some_and(|r| r.serial == *serial && r.queued)
            });
        }
    }
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
