//! The iterative query walk (`dht-rpc/lib/query.js`), as a state machine with no I/O.
//!
//! Contract: a [`QueryWalk`] never sends anything. It is fed the outcome of each of its visits
//! ([`QueryWalk::on_reply`], [`QueryWalk::on_failure`], [`QueryWalk::on_slow`] for the first
//! timeout of a visit) and says what to do next through [`QueryWalk::next`]: visit nodes, send
//! a DOWN_HINT, hand it table nodes, or flush. The node turns those steps into requests. Bounded:
//! at most `Limits::max_query_seen` addresses and `Limits::max_query_refs` referrers per address
//! are remembered; `closest` holds at most k replies.
//!
//! Walk: seeds are the given nodes (with a slow start of concurrency 3 until `concurrency`
//! answers arrived), then the k closest table nodes, then bootstrap nodes while fewer than k
//! are pending. Each visited node gets one request with `retries` retransmissions (5 by
//! default, 3 for DOWN_HINT). A node from a reply's closer nodes is queued only while it is
//! closer than the k-th best reply. The walk ends when nothing is pending and nothing is in
//! flight, or everything in flight is slow and k replies exist. `closest_replies` only takes
//! replies with error 0 and a valid id. With `commit`, every closest reply is then sent the
//! same command with its token (JS `autoCommit`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;

use super::api::{QueryError, QueryOutcome, Reply, RequestError};
use super::config::Limits;
use super::routing::{NodeId, cmp_distance};
use super::wire::{InternalCommand, Request};
use crate::crypto::node_id;

/// Options of [`Node::query`](super::Node::query) (`dht.query(..., opts)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOpts {
    /// The key searched for.
    pub target: NodeId,
    /// Internal (dht-rpc) or user (hyperdht) command.
    pub internal: bool,
    /// Command number.
    pub command: u64,
    /// Request value.
    pub value: Option<Vec<u8>>,
    /// `opts.concurrency` (default: the node's, 10).
    pub concurrency: Option<usize>,
    /// `opts.retries` (default 5, 3 for DOWN_HINT).
    pub retries: Option<u32>,
    /// `opts.nodes`: seed addresses (triggers JS's slow start).
    pub nodes: Vec<SocketAddrV4>,
    /// `opts.commit === true`: resend the command with each closest node's token.
    pub commit: bool,
    /// Emit [`Event::QueryReply`](super::Event::QueryReply) for every reply with error 0.
    pub stream: bool,
}

impl QueryOpts {
    /// Defaults for `target` (internal FIND_NODE, no value).
    pub fn new(target: NodeId) -> Self {
        Self {
            target,
            internal: true,
            command: InternalCommand::FindNode.to_u64(),
            value: None,
            concurrency: None,
            retries: None,
            nodes: Vec::new(),
            commit: false,
            stream: false,
        }
    }
}

/// Who started a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    User { stream: bool },
    Bootstrap,
    Refresh,
}

#[derive(Debug, Clone)]
enum Seen {
    Refs(Vec<SocketAddrV4>),
    Done,
    Down,
}

/// A node the walk may visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    pub id: NodeId,
    pub addr: SocketAddrV4,
}

impl Peer {
    /// A peer known by address only; its id is the one its address implies.
    pub(crate) fn at(addr: SocketAddrV4) -> Self {
        Self {
            id: node_id(&addr),
            addr,
        }
    }
}

/// What the walk wants done next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Tell `to` that `down` did not answer (`_downHint`).
    DownHint {
        to: SocketAddrV4,
        down: SocketAddrV4,
    },
    /// Send the query's request to each of these nodes; they already count as in flight.
    /// A request the node cannot create is reported with [`QueryWalk::visit_failed`].
    Visit(Vec<Peer>),
    /// Hand the walk up to this many of the table's nodes closest to the target
    /// ([`QueryWalk::add_table_nodes`]).
    TableNodes(usize),
    /// The walk is over (`_flush`): see [`QueryWalk::flush`].
    Flush,
    /// Nothing until a reply, a failure or a timeout.
    Wait,
}

/// How a reply moved the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyEffect {
    /// The walk is committing; the reply only freed its slot.
    Ignored,
    /// An error reply.
    Error,
    /// A reply with error 0 (JS `data`).
    Data,
}

/// What the flush asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Already flushed.
    Again,
    /// End the query now, with this error if any.
    End(Option<QueryError>),
    /// Send the query's command with each closest node's token; `total` is the number of
    /// closest replies (with or without a token).
    Commit {
        targets: Vec<(SocketAddrV4, [u8; 32])>,
        total: usize,
    },
}

/// State of one query (JS `Query`).
#[derive(Debug)]
pub(crate) struct QueryWalk {
    target: NodeId,
    internal: bool,
    command: u64,
    value: Option<Vec<u8>>,
    k: usize,
    concurrency: usize,
    background: Option<usize>,
    retries: u32,
    closest: Vec<Reply>,
    seen: BTreeMap<SocketAddrV4, Seen>,
    /// Referral depth of every address queued (1 = seed), for the `hops` figure.
    depth: BTreeMap<SocketAddrV4, u8>,
    pending: Vec<Peer>,
    inflight: usize,
    slow: usize,
    slowdown: bool,
    from_table: bool,
    successes: usize,
    errors: usize,
    commit: bool,
    committing: bool,
    commit_pending: usize,
    commit_success: usize,
    kind: QueryKind,
    /// DOWN_HINTs to send, oldest first.
    down_hints: VecDeque<(SocketAddrV4, SocketAddrV4)>,
    /// A batch of visits went out; the end-of-`_readMore` checks run on the next `next`.
    after_visits: bool,
    max_seen: usize,
    max_refs: usize,
}

impl QueryWalk {
    /// A walk for `opts`; `concurrency` is the node's default, `background` the reduced
    /// concurrency of a background query (`_backgroundQuery`).
    pub(crate) fn new(
        opts: &QueryOpts,
        k: usize,
        concurrency: usize,
        background: Option<usize>,
        kind: QueryKind,
        limits: &Limits,
    ) -> Self {
        let down_hint = opts.internal && opts.command == InternalCommand::DownHint.to_u64();
        Self {
            target: opts.target,
            internal: opts.internal,
            command: opts.command,
            value: opts.value.clone(),
            k,
            concurrency: opts.concurrency.unwrap_or(concurrency).max(1),
            background,
            retries: opts.retries.unwrap_or(if down_hint { 3 } else { 5 }),
            closest: Vec::new(),
            seen: BTreeMap::new(),
            depth: BTreeMap::new(),
            pending: Vec::new(),
            inflight: 0,
            slow: 0,
            slowdown: false,
            from_table: false,
            successes: 0,
            errors: 0,
            commit: opts.commit,
            committing: false,
            commit_pending: 0,
            commit_success: 0,
            kind,
            down_hints: VecDeque::new(),
            after_visits: false,
            max_seen: limits.max_query_seen,
            max_refs: limits.max_query_refs,
        }
    }

    pub(crate) fn kind(&self) -> QueryKind {
        self.kind
    }

    pub(crate) fn target(&self) -> &NodeId {
        &self.target
    }

    /// Retransmissions per visit.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    /// The request a visit to `to` sends.
    pub(crate) fn request(&self, to: SocketAddrV4) -> Request {
        Request {
            tid: 0,
            to,
            id: None,
            token: None,
            internal: self.internal,
            command: self.command,
            target: Some(self.target),
            value: self.value.clone(),
        }
    }

    /// The request a commit to `to` sends (`dht.request({ token, target, command, value })`:
    /// never internal).
    pub(crate) fn commit_request(&self, to: SocketAddrV4, token: [u8; 32]) -> Request {
        Request {
            token: Some(token),
            internal: false,
            ..self.request(to)
        }
    }

    /// Seeds and bootstrap nodes, in JS's order (the last one is visited first).
    pub(crate) fn add_seeds(&mut self, addrs: &[SocketAddrV4]) {
        for addr in addrs {
            self.add_pending(Peer::at(*addr), None);
        }
    }

    /// How many table nodes `_addFromTable` wants now; `None` when enough are pending.
    pub(crate) fn table_want(&self) -> Option<usize> {
        (self.pending.len() < self.k).then(|| self.k - self.pending.len())
    }

    /// `_addFromTable`: the table's closest nodes to the target.
    pub(crate) fn add_table_nodes(&mut self, peers: impl IntoIterator<Item = Peer>) {
        self.from_table = true;
        for p in peers {
            self.add_pending_no_referrer(p);
        }
    }

    /// Fewer than k pending after the seeds and the table: add the bootstrap nodes.
    pub(crate) fn needs_bootstrap(&self) -> bool {
        self.pending.len() < self.k
    }

    fn is_closer(&self, id: &NodeId) -> bool {
        if self.closest.len() < self.k {
            return true;
        }
        match self.closest.last().and_then(|r| r.from_id) {
            Some(last) => cmp_distance(&self.target, id, &last) == std::cmp::Ordering::Less,
            None => true,
        }
    }

    fn push_closest(&mut self, m: Reply) {
        let Some(id) = m.from_id else { return };
        let pos = self.closest.iter().position(|r| {
            r.from_id
                .is_none_or(|x| cmp_distance(&self.target, &x, &id) != std::cmp::Ordering::Less)
        });
        match pos {
            Some(i) if self.closest.get(i).and_then(|r| r.from_id) == Some(id) => {}
            Some(i) => self.closest.insert(i, m),
            None => self.closest.push(m),
        }
        self.closest.truncate(self.k);
    }

    /// `_addPending` for table nodes (no referrer, so no DOWN_HINT can follow).
    fn add_pending_no_referrer(&mut self, node: Peer) -> bool {
        let is_closer = self.is_closer(&node.id);
        match self.seen.get(&node.addr) {
            Some(_) => return is_closer,
            None if !is_closer => return false,
            None if self.seen.len() >= self.max_seen => return false,
            None => {}
        }
        self.seen.insert(node.addr, Seen::Refs(Vec::new()));
        self.depth.insert(node.addr, 1);
        self.pending.push(node);
        true
    }

    /// `_addPending(node, ref)`.
    fn add_pending(&mut self, node: Peer, referrer: Option<SocketAddrV4>) -> bool {
        let is_closer = self.is_closer(&node.id);
        match self.seen.get_mut(&node.addr) {
            Some(Seen::Done) => return is_closer,
            Some(Seen::Down) => {
                if let Some(r) = referrer {
                    self.down_hints.push_back((r, node.addr));
                }
                return is_closer;
            }
            Some(Seen::Refs(refs)) => {
                if let Some(r) = referrer
                    && refs.len() < self.max_refs
                {
                    refs.push(r);
                }
                return is_closer;
            }
            None => {}
        }
        if !is_closer || self.seen.len() >= self.max_seen {
            return false;
        }
        let d = referrer
            .and_then(|r| self.depth.get(&r))
            .copied()
            .unwrap_or(0);
        self.depth.insert(node.addr, d.saturating_add(1));
        self.seen
            .insert(node.addr, Seen::Refs(referrer.into_iter().collect()));
        self.pending.push(node);
        true
    }

    /// The next step (`_readMore`, cut where it sends requests).
    pub(crate) fn next(&mut self) -> Step {
        if let Some((to, down)) = self.down_hints.pop_front() {
            return Step::DownHint { to, down };
        }
        if self.committing {
            return Step::Wait;
        }
        // The first half of `_readMore`: fill the concurrency with the closest pending nodes.
        if !self.after_visits {
            let concurrency = (if self.slowdown { 3 } else { self.concurrency }) + self.slow;
            let mut visits = Vec::new();
            while self.inflight + visits.len() < concurrency {
                let Some(next) = self.pending.pop() else {
                    break;
                };
                if self.is_closer(&next.id) {
                    visits.push(next);
                }
            }
            if !visits.is_empty() {
                self.inflight += visits.len();
                self.after_visits = true;
                return Step::Visit(visits);
            }
        }
        // The second half, once those visits went out: slow start, then the end of the walk.
        self.after_visits = false;
        if !self.from_table && self.successes == 0 && self.errors == 0 {
            self.slowdown = true;
        }
        if !self.pending.is_empty() {
            return Step::Wait;
        }
        if self.inflight == 0 || (self.slow == self.inflight && self.closest.len() >= self.k) {
            if !self.from_table && self.successes < self.k / 4 {
                // Nothing is pending here, so the table is asked for k nodes; the next call
                // starts over with them.
                return Step::TableNodes(self.table_want().unwrap_or(self.k));
            }
            return Step::Flush;
        }
        Step::Wait
    }

    /// The oldest DOWN_HINT waiting: `(to, down)`. The node sends them right after the reply
    /// or failure that queued them, before anything else that reply causes.
    pub(crate) fn pop_down_hint(&mut self) -> Option<(SocketAddrV4, SocketAddrV4)> {
        self.down_hints.pop_front()
    }

    /// A visit could not be sent (the request table is full): it counts as a failed visit.
    pub(crate) fn visit_failed(&mut self, peer: &Peer) {
        self.inflight = self.inflight.saturating_sub(1);
        self.errors += 1;
        self.seen.insert(peer.addr, Seen::Done);
    }

    /// The first timeout of a visit (`oncycle`): the visit counts as slow, so one more may go.
    pub(crate) fn on_slow(&mut self) {
        self.slow += 1;
    }

    /// `_dec`.
    fn dec(&mut self, cycled: bool) {
        if cycled {
            self.slow = self.slow.saturating_sub(1);
        }
        self.inflight = self.inflight.saturating_sub(1);
    }

    /// `_onvisit`: the visit to `to` answered with `m`. `own_id` is our table id (never
    /// queued). DOWN_HINTs it triggers come out of [`QueryWalk::next`] first.
    pub(crate) fn on_reply(
        &mut self,
        to: SocketAddrV4,
        m: &Reply,
        cycled: bool,
        own_id: &NodeId,
    ) -> ReplyEffect {
        self.dec(cycled);
        self.seen.insert(to, Seen::Done);
        if self.committing {
            return ReplyEffect::Ignored;
        }
        if m.error == 0 {
            self.successes += 1;
        } else {
            self.errors += 1;
        }
        if m.error == 0
            && let Some(fid) = m.from_id
            && self.is_closer(&fid)
        {
            let mut stored = m.clone();
            stored.closer_nodes = Vec::new();
            self.push_closest(stored);
        }
        for addr in &m.closer_nodes {
            let peer = Peer::at(*addr);
            if peer.id == *own_id {
                continue;
            }
            if !self.add_pending(peer, Some(m.from)) {
                break;
            }
        }
        if !self.from_table && self.successes + self.errors >= self.concurrency {
            self.slowdown = false;
        }
        if m.error != 0 {
            return ReplyEffect::Error;
        }
        ReplyEffect::Data
    }

    /// A background query runs at full concurrency while little else is in flight
    /// (`_backgroundQuery`'s `ondata`).
    pub(crate) fn adapt_background(&mut self, node_inflight: usize, full: usize) {
        if let Some(bg) = self.background {
            self.concurrency = if node_inflight < 3 { full } else { bg };
        }
    }

    /// `_onerror`: the visit to `to` failed; a timeout marks it down and queues DOWN_HINTs to
    /// the nodes that referred it.
    pub(crate) fn on_failure(&mut self, to: SocketAddrV4, err: &RequestError, cycled: bool) {
        if *err == RequestError::TimedOut {
            let refs = match self.seen.insert(to, Seen::Down) {
                Some(Seen::Refs(r)) => r,
                _ => Vec::new(),
            };
            self.down_hints.extend(refs.into_iter().map(|r| (r, to)));
        }
        self.dec(cycled);
        self.errors += 1;
    }

    /// `_flush`: the walk is over; commit or end.
    pub(crate) fn flush(&mut self) -> Flush {
        if self.committing {
            return Flush::Again;
        }
        self.committing = true;
        if !self.commit {
            return Flush::End(None);
        }
        if self.closest.is_empty() {
            return Flush::End(Some(QueryError::TooFewNodes));
        }
        Flush::Commit {
            targets: self
                .closest
                .iter()
                .filter_map(|r| Some((r.from, r.token?)))
                .collect(),
            total: self.closest.len(),
        }
    }

    /// The number of commit requests that went out.
    pub(crate) fn commits_sent(&mut self, n: usize) {
        self.commit_pending = n;
    }

    /// A commit request settled; `Some(result)` once all have.
    pub(crate) fn on_commit(&mut self, ok: bool) -> Option<Option<QueryError>> {
        if ok {
            self.commit_success += 1;
        }
        self.commit_pending = self.commit_pending.saturating_sub(1);
        if self.commit_pending > 0 {
            return None;
        }
        Some((self.commit_success == 0).then_some(QueryError::CommitFailed(self.closest.len())))
    }

    /// The result of a finished walk.
    pub(crate) fn into_outcome(self) -> QueryOutcome {
        QueryOutcome {
            hops: self
                .closest
                .first()
                .and_then(|r| self.depth.get(&r.from))
                .copied()
                .unwrap_or(0),
            closest_replies: self.closest,
            successes: self.successes,
            errors: self.errors,
        }
    }
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
