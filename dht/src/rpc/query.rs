//! The iterative query engine (`dht-rpc/lib/query.js`).
//!
//! Contract: methods of the sans-IO [`Node`]; a query is a state record driven by replies,
//! failures and the first timeout ("slow") of each of its requests. Bounded: at most
//! `Limits::max_queries` queries, each remembering at most `Limits::max_query_seen` addresses
//! and `Limits::max_query_refs` referrers per address; `closest_replies` holds at most k.
//!
//! Walk: seeds are the given nodes (with a slow start of concurrency 3 until `concurrency`
//! answers arrived), then the k closest table nodes, then bootstrap nodes while fewer than k
//! are pending. Each visited node gets one request with `retries` retransmissions (5 by
//! default, 3 for DOWN_HINT). A node from a reply's closer nodes is queued only while it is
//! closer than the k-th best reply. The walk ends when nothing is pending and nothing is in
//! flight, or everything in flight is slow and k replies exist. `closest_replies` only takes
//! replies with error 0 and a valid id. With `commit`, every closest reply is then sent the
//! same command with its token (JS `autoCommit`).

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Instant;

use super::api::{Event, QueryError, QueryId, QueryOutcome, Reply, RequestError};
use super::node::Node;
use super::requests::Owner;
use super::routing::{NodeId, cmp_distance};
use super::wire::{InternalCommand, Request};
use crate::crypto::node_id;

/// Options of [`Node::query`] (`dht.query(..., opts)`).
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
    /// Emit [`Event::QueryReply`] for every reply with error 0.
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

#[derive(Debug, Clone, Copy)]
struct Peer {
    id: NodeId,
    addr: SocketAddrV4,
}

/// State of one query.
#[derive(Debug)]
pub(crate) struct Query {
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
    pub(crate) slow: usize,
    slowdown: bool,
    from_table: bool,
    successes: usize,
    errors: usize,
    commit: bool,
    committing: bool,
    commit_pending: usize,
    commit_success: usize,
    kind: QueryKind,
}

impl Query {
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
}

impl Node {
    /// Starts a query (`dht.query`); [`Event::QueryDone`] reports its end.
    pub fn query(&mut self, now: Instant, opts: QueryOpts) -> QueryId {
        self.refresh_ticks = super::maintenance::REFRESH_TICKS;
        let stream = opts.stream;
        match self.start_query(now, opts, QueryKind::User { stream }, None) {
            Some(q) => q,
            None => {
                let q = self.alloc_query_id();
                self.emit(Event::QueryDone {
                    query: q,
                    result: Err(QueryError::TooManyQueries),
                });
                q
            }
        }
    }

    /// Stops a query and cancels its requests (JS `query.destroy()`); no event follows.
    pub fn cancel_query(&mut self, id: QueryId) {
        if self.queries.remove(&id).is_none() {
            return;
        }
        let tids = self.requests.owned_by(
            |o| matches!(o, Owner::Query(x) | Owner::DownHint(x) | Owner::Commit(x) if *x == id),
        );
        for t in tids {
            self.requests.finish(t);
        }
    }

    fn alloc_query_id(&mut self) -> QueryId {
        self.next_query_id += 1;
        QueryId(self.next_query_id)
    }

    pub(crate) fn start_query(
        &mut self,
        now: Instant,
        opts: QueryOpts,
        kind: QueryKind,
        background: Option<usize>,
    ) -> Option<QueryId> {
        if self.queries.len() >= self.config.limits.max_queries {
            return None;
        }
        let id = self.alloc_query_id();
        let retries = opts.retries.unwrap_or(
            if opts.internal && opts.command == InternalCommand::DownHint.to_u64() {
                3
            } else {
                5
            },
        );
        let q = Query {
            target: opts.target,
            internal: opts.internal,
            command: opts.command,
            value: opts.value,
            k: self.table.k(),
            concurrency: opts.concurrency.unwrap_or(self.config.concurrency).max(1),
            background,
            retries,
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
        };
        self.queries.insert(id, q);
        for addr in opts.nodes.iter().rev() {
            let p = Peer {
                id: node_id(addr),
                addr: *addr,
            };
            self.add_pending(now, id, p, None);
        }
        // `_open`
        self.add_from_table(id);
        let need_bootstrap = self.queries.get(&id).is_some_and(|q| q.pending.len() < q.k);
        if need_bootstrap {
            for addr in self.config.bootstrap.clone() {
                let p = Peer {
                    id: node_id(&addr),
                    addr,
                };
                self.add_pending(now, id, p, None);
            }
        }
        self.query_read_more(now, id);
        Some(id)
    }

    fn add_from_table(&mut self, id: QueryId) {
        let Some(q) = self.queries.get(&id) else {
            return;
        };
        if q.pending.len() >= q.k {
            return;
        }
        let want = q.k - q.pending.len();
        let target = q.target;
        let peers: Vec<Peer> = self
            .table
            .closest(&target, want)
            .iter()
            .map(|n| Peer {
                id: n.id,
                addr: n.addr,
            })
            .collect();
        if let Some(q) = self.queries.get_mut(&id) {
            q.from_table = true;
        }
        for p in peers {
            self.add_pending_no_hint(id, p);
        }
    }

    /// `_addPending` for seeds that have no referrer (no DOWN_HINT can follow).
    fn add_pending_no_hint(&mut self, id: QueryId, node: Peer) -> bool {
        let max_seen = self.config.limits.max_query_seen;
        let Some(q) = self.queries.get_mut(&id) else {
            return false;
        };
        let is_closer = q.is_closer(&node.id);
        match q.seen.get(&node.addr) {
            Some(_) => return is_closer,
            None if !is_closer => return false,
            None if q.seen.len() >= max_seen => return false,
            None => {}
        }
        q.seen.insert(node.addr, Seen::Refs(Vec::new()));
        q.depth.insert(node.addr, 1);
        q.pending.push(node);
        true
    }

    /// `_addPending(node, ref)`.
    fn add_pending(
        &mut self,
        now: Instant,
        id: QueryId,
        node: Peer,
        referrer: Option<SocketAddrV4>,
    ) -> bool {
        let max_seen = self.config.limits.max_query_seen;
        let max_refs = self.config.limits.max_query_refs;
        let Some(q) = self.queries.get_mut(&id) else {
            return false;
        };
        let is_closer = q.is_closer(&node.id);
        match q.seen.get_mut(&node.addr) {
            Some(Seen::Done) => return is_closer,
            Some(Seen::Down) => {
                if let Some(r) = referrer {
                    self.down_hint(now, id, r, node.addr);
                }
                return is_closer;
            }
            Some(Seen::Refs(refs)) => {
                if let Some(r) = referrer
                    && refs.len() < max_refs
                {
                    refs.push(r);
                }
                return is_closer;
            }
            None => {}
        }
        if !is_closer || q.seen.len() >= max_seen {
            return false;
        }
        let d = referrer.and_then(|r| q.depth.get(&r)).copied().unwrap_or(0);
        q.depth.insert(node.addr, d.saturating_add(1));
        q.seen
            .insert(node.addr, Seen::Refs(referrer.into_iter().collect()));
        q.pending.push(node);
        true
    }

    /// `_readMore`.
    pub(crate) fn query_read_more(&mut self, now: Instant, id: QueryId) {
        loop {
            let Some(q) = self.queries.get_mut(&id) else {
                return;
            };
            if q.committing {
                return;
            }
            let concurrency = (if q.slowdown { 3 } else { q.concurrency }) + q.slow;
            let mut visits = Vec::new();
            while q.inflight + visits.len() < concurrency {
                let Some(next) = q.pending.pop() else { break };
                if !q.is_closer(&next.id) {
                    continue;
                }
                visits.push(next);
            }
            for v in visits {
                self.visit(now, id, v);
            }
            let Some(q) = self.queries.get_mut(&id) else {
                return;
            };
            if !q.from_table && q.successes == 0 && q.errors == 0 {
                q.slowdown = true;
            }
            if !q.pending.is_empty() {
                return;
            }
            if q.inflight == 0 || (q.slow == q.inflight && q.closest.len() >= q.k) {
                if !q.from_table && q.successes < q.k / 4 {
                    self.add_from_table(id);
                    continue;
                }
                self.query_flush(now, id);
            }
            return;
        }
    }

    fn visit(&mut self, now: Instant, id: QueryId, to: Peer) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        q.inflight += 1;
        let req = Request {
            tid: 0,
            to: to.addr,
            id: None,
            token: None,
            internal: q.internal,
            command: q.command,
            target: Some(q.target),
            value: q.value.clone(),
        };
        let retries = q.retries;
        let timeout = self.config.request_timeout;
        if !self.create_request(
            now,
            to.addr,
            Some(to.id),
            req,
            retries,
            timeout,
            Owner::Query(id),
            false,
        ) {
            // In-flight table full: count it as a failed visit.
            if let Some(q) = self.queries.get_mut(&id) {
                q.inflight -= 1;
                q.errors += 1;
                q.seen.insert(to.addr, Seen::Done);
            }
        }
    }

    /// `_dec`.
    fn dec(&mut self, id: QueryId, cycled: bool) {
        if let Some(q) = self.queries.get_mut(&id) {
            if cycled {
                q.slow = q.slow.saturating_sub(1);
            }
            q.inflight = q.inflight.saturating_sub(1);
        }
    }

    /// `_onvisit`.
    pub(crate) fn query_on_visit(
        &mut self,
        now: Instant,
        id: QueryId,
        to: SocketAddrV4,
        m: Reply,
        cycled: bool,
    ) {
        self.dec(id, cycled);
        let table_id = *self.table.id();
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        q.seen.insert(to, Seen::Done);
        if q.committing {
            return;
        }
        if m.error == 0 {
            q.successes += 1;
        } else {
            q.errors += 1;
        }
        if m.error == 0
            && let Some(fid) = m.from_id
            && q.is_closer(&fid)
        {
            let mut stored = m.clone();
            stored.closer_nodes = Vec::new();
            q.push_closest(stored);
        }
        for addr in &m.closer_nodes {
            let nid = node_id(addr);
            if nid == table_id {
                continue;
            }
            if !self.add_pending(
                now,
                id,
                Peer {
                    id: nid,
                    addr: *addr,
                },
                Some(m.from),
            ) {
                break;
            }
        }
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        if !q.from_table && q.successes + q.errors >= q.concurrency {
            q.slowdown = false;
        }
        if m.error != 0 {
            self.query_read_more(now, id);
            return;
        }
        // `data`
        let kind = q.kind;
        if let Some(bg) = q.background {
            q.concurrency = if self.requests.len() < 3 {
                self.config.concurrency
            } else {
                bg
            };
        }
        match kind {
            QueryKind::User { stream: true } => self.emit_remote(Event::QueryReply {
                query: id,
                reply: m,
            }),
            QueryKind::Bootstrap => self.boot_on_data(now, m.from),
            _ => {}
        }
        self.query_read_more(now, id);
    }

    /// `_onerror`.
    pub(crate) fn query_on_error(
        &mut self,
        now: Instant,
        id: QueryId,
        to: SocketAddrV4,
        err: RequestError,
        cycled: bool,
    ) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        if err == RequestError::TimedOut {
            let refs = match q.seen.insert(to, Seen::Down) {
                Some(Seen::Refs(r)) => r,
                _ => Vec::new(),
            };
            for r in refs {
                self.down_hint(now, id, r, to);
            }
        }
        self.dec(id, cycled);
        if let Some(q) = self.queries.get_mut(&id) {
            q.errors += 1;
        }
        self.query_read_more(now, id);
    }

    /// `_downHint`: tell `node` that `down` did not answer (rate-limited per tick).
    fn down_hint(&mut self, now: Instant, id: QueryId, node: SocketAddrV4, down: SocketAddrV4) {
        if let Some(limit) = self.config.down_hints_rate_limit
            && self.down_hints_sent >= limit
        {
            return;
        }
        self.down_hints_sent += 1;
        let value = super::node::encode_addr6(&down);
        self.internal_request(
            now,
            node,
            InternalCommand::DownHint,
            Some(value),
            Owner::DownHint(id),
        );
    }

    /// `_flush`: the walk is over; commit or end.
    fn query_flush(&mut self, now: Instant, id: QueryId) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        if q.committing {
            return;
        }
        q.committing = true;
        if !q.commit {
            self.end_query(now, id, None);
            return;
        }
        let targets: Vec<(SocketAddrV4, Option<[u8; 32]>)> =
            q.closest.iter().map(|r| (r.from, r.token)).collect();
        let (target, command, value) = (q.target, q.command, q.value.clone());
        if targets.is_empty() {
            self.end_query(now, id, Some(QueryError::TooFewNodes));
            return;
        }
        let total = targets.len();
        let mut started = 0;
        for (addr, token) in targets {
            let Some(token) = token else { continue };
            // `dht.request({ token, target, command, value }, from)`: not internal, 3 retries.
            let req = Request {
                tid: 0,
                to: addr,
                id: None,
                token: Some(token),
                internal: false,
                command,
                target: Some(target),
                value: value.clone(),
            };
            let timeout = self.config.request_timeout;
            if self.create_request(now, addr, None, req, 3, timeout, Owner::Commit(id), false) {
                started += 1;
            }
        }
        if let Some(q) = self.queries.get_mut(&id) {
            q.commit_pending = started;
        }
        if started == 0 {
            self.end_query(now, id, Some(QueryError::CommitFailed(total)));
        }
    }

    /// A commit request settled.
    pub(crate) fn query_on_commit(&mut self, now: Instant, id: QueryId, ok: bool) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        if ok {
            q.commit_success += 1;
        }
        q.commit_pending = q.commit_pending.saturating_sub(1);
        if q.commit_pending > 0 {
            return;
        }
        let err = (q.commit_success == 0).then_some(QueryError::CommitFailed(q.closest.len()));
        self.end_query(now, id, err);
    }

    /// Ends a query: cancels what it still has in flight (JS destroys its session) and reports.
    fn end_query(&mut self, now: Instant, id: QueryId, err: Option<QueryError>) {
        let Some(q) = self.queries.remove(&id) else {
            return;
        };
        let tids = self
            .requests
            .owned_by(|o| matches!(o, Owner::Query(x) | Owner::DownHint(x) if *x == id));
        for t in tids {
            self.requests.cancel_session_request(t);
        }
        match q.kind {
            QueryKind::User { .. } => {
                let result = match err {
                    Some(e) => Err(e),
                    None => Ok(QueryOutcome {
                        hops: q
                            .closest
                            .first()
                            .and_then(|r| q.depth.get(&r.from))
                            .copied()
                            .unwrap_or(0),
                        closest_replies: q.closest,
                        successes: q.successes,
                        errors: q.errors,
                    }),
                };
                self.emit(Event::QueryDone { query: id, result });
            }
            QueryKind::Bootstrap => self.boot_after_round(now),
            QueryKind::Refresh => {}
        }
    }
}
