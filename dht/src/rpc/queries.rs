//! The node's side of its queries (`dht-rpc/index.js` `query`, `lib/query.js` `_visit`,
//! `_downHint`, `_flush`, `destroy`): it owns the running [`QueryWalk`]s and turns their
//! steps into requests and events.
//!
//! Contract: the walk decides, this file only executes: [`Step::Visit`] becomes one request per
//! node, [`Step::DownHint`] a DOWN_HINT (rate-limited per tick), [`Step::TableNodes`] a table
//! lookup, [`Step::Flush`] the commit phase or the end. Bounded by `Limits::max_queries`.

use std::net::SocketAddrV4;
use std::time::Instant;

use super::api::{Event, QueryError, QueryId, Reply, RequestError};
use super::node::Node;
use super::query::{Flush, Peer, QueryKind, QueryOpts, QueryWalk, ReplyEffect, Step};
use super::requests::{NewRequest, Owner};
use super::wire::InternalCommand;

impl Node {
    /// Starts a query (`dht.query`); [`Event::QueryDone`] reports its end. A layer above
    /// (hyperdht) runs its lookups and announces this way: a user command and value, with
    /// `stream: true` to read each reply as an [`Event::QueryReply`].
    pub fn query(&mut self, now: Instant, opts: QueryOpts) -> QueryId {
        self.maintenance.touch_refresh();
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
        let tids = self.requests.of_query(id, true);
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
        let mut walk = QueryWalk::new(
            &opts,
            self.table.k(),
            self.config.concurrency,
            background,
            kind,
            &self.config.limits,
        );
        let seeds: Vec<SocketAddrV4> = opts.nodes.iter().rev().copied().collect();
        walk.add_seeds(&seeds);
        // `_open`
        if let Some(want) = walk.table_want() {
            walk.add_table_nodes(self.closest_peers(walk.target(), want));
        }
        if walk.needs_bootstrap() {
            walk.add_seeds(&self.config.bootstrap);
        }
        self.queries.insert(id, walk);
        self.drive_query(now, id);
        Some(id)
    }

    fn closest_peers(&self, target: &super::NodeId, n: usize) -> Vec<Peer> {
        self.table
            .closest(target, n)
            .iter()
            .map(|n| Peer {
                id: n.id,
                addr: n.addr,
            })
            .collect()
    }

    /// Runs the walk's steps until it waits (`_readMore`).
    pub(crate) fn drive_query(&mut self, now: Instant, id: QueryId) {
        loop {
            let Some(walk) = self.queries.get_mut(&id) else {
                return;
            };
            match walk.next() {
                Step::Wait => return,
                Step::DownHint { to, down } => self.down_hint(now, id, to, down),
                Step::TableNodes(want) => {
                    let target = *walk.target();
                    let peers = self.closest_peers(&target, want);
                    if let Some(walk) = self.queries.get_mut(&id) {
                        walk.add_table_nodes(peers);
                    }
                }
                Step::Visit(peers) => {
                    for peer in peers {
                        self.visit(now, id, peer);
                    }
                }
                Step::Flush => {
                    self.flush_query(now, id);
                    return;
                }
            }
        }
    }

    fn visit(&mut self, now: Instant, id: QueryId, to: Peer) {
        let Some(walk) = self.queries.get(&id) else {
            return;
        };
        let new = NewRequest {
            req: walk.request(to.addr),
            to_id: Some(to.id),
            retries: walk.retries(),
            timeout: self.config.request_timeout,
            owner: Owner::Query(id),
        };
        let sent = self.create_request(now, to.addr, new);
        if !sent && let Some(walk) = self.queries.get_mut(&id) {
            walk.visit_failed(&to);
        }
    }

    /// The first timeout of a visit.
    pub(crate) fn on_query_slow(&mut self, now: Instant, id: QueryId) {
        if let Some(walk) = self.queries.get_mut(&id) {
            walk.on_slow();
        }
        self.drive_query(now, id);
    }

    /// A visit answered (`_onvisit`).
    pub(crate) fn on_query_reply(
        &mut self,
        now: Instant,
        id: QueryId,
        to: SocketAddrV4,
        m: Reply,
        cycled: bool,
    ) {
        let own_id = *self.table.id();
        let Some(walk) = self.queries.get_mut(&id) else {
            return;
        };
        let effect = walk.on_reply(to, &m, cycled, &own_id);
        self.send_down_hints(now, id);
        match effect {
            ReplyEffect::Ignored => return,
            ReplyEffect::Error => {}
            ReplyEffect::Data => {
                let inflight = self.requests.len();
                let Some(walk) = self.queries.get_mut(&id) else {
                    return;
                };
                walk.adapt_background(inflight, self.config.concurrency);
                match walk.kind() {
                    QueryKind::User { stream: true } => self.emit_remote(Event::QueryReply {
                        query: id,
                        reply: m,
                    }),
                    QueryKind::Bootstrap => self.boot_on_data(now, m.from),
                    _ => {}
                }
            }
        }
        self.drive_query(now, id);
    }

    /// A visit failed (`_onerror`).
    pub(crate) fn on_query_failure(
        &mut self,
        now: Instant,
        id: QueryId,
        to: SocketAddrV4,
        err: RequestError,
        cycled: bool,
    ) {
        let Some(walk) = self.queries.get_mut(&id) else {
            return;
        };
        walk.on_failure(to, &err, cycled);
        self.send_down_hints(now, id);
        self.drive_query(now, id);
    }

    fn send_down_hints(&mut self, now: Instant, id: QueryId) {
        while let Some((to, down)) = self.queries.get_mut(&id).and_then(|w| w.pop_down_hint()) {
            self.down_hint(now, id, to, down);
        }
    }

    /// `_downHint`: tell `node` that `down` did not answer (rate-limited per tick).
    fn down_hint(&mut self, now: Instant, id: QueryId, node: SocketAddrV4, down: SocketAddrV4) {
        if !self
            .maintenance
            .take_down_hint(self.config.down_hints_rate_limit)
        {
            return;
        }
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
    fn flush_query(&mut self, now: Instant, id: QueryId) {
        let Some(walk) = self.queries.get_mut(&id) else {
            return;
        };
        let (targets, total) = match walk.flush() {
            Flush::Again => return,
            Flush::End(err) => return self.end_query(now, id, err),
            Flush::Commit { targets, total } => (targets, total),
        };
        let mut started = 0;
        for (addr, token) in targets {
            let Some(req) = self.queries.get(&id).map(|w| w.commit_request(addr, token)) else {
                return;
            };
            // `dht.request(...)` defaults: 3 retries.
            let new = NewRequest {
                req,
                to_id: None,
                retries: 3,
                timeout: self.config.request_timeout,
                owner: Owner::Commit(id),
            };
            if self.create_request(now, addr, new) {
                started += 1;
            }
        }
        if let Some(walk) = self.queries.get_mut(&id) {
            walk.commits_sent(started);
        }
        if started == 0 {
            self.end_query(now, id, Some(QueryError::CommitFailed(total)));
        }
    }

    /// A commit request settled.
    pub(crate) fn on_query_commit(&mut self, now: Instant, id: QueryId, ok: bool) {
        let Some(walk) = self.queries.get_mut(&id) else {
            return;
        };
        if let Some(err) = walk.on_commit(ok) {
            self.end_query(now, id, err);
        }
    }

    /// Ends a query: cancels what it still has in flight (JS destroys its session) and reports.
    fn end_query(&mut self, now: Instant, id: QueryId, err: Option<QueryError>) {
        let Some(walk) = self.queries.remove(&id) else {
            return;
        };
        let tids = self.requests.of_query(id, false);
        for t in tids {
            self.requests.cancel_session_request(t);
        }
        match walk.kind() {
            QueryKind::User { .. } => {
                let result = match err {
                    Some(e) => Err(e),
                    None => Ok(walk.into_outcome()),
                };
                self.emit(Event::QueryDone { query: id, result });
            }
            QueryKind::Bootstrap => self.boot_after_round(now),
            QueryKind::Refresh => {}
        }
    }
}
