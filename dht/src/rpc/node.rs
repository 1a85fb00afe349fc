//! The sans-IO dht-rpc node (`dht-rpc/index.js` `DHT`).
//!
//! I/O contract (quinn's shape): feed every received UDP datagram to
//! [`Node::handle_datagram`]`(now, from, bytes)`, call [`Node::handle_timeout`]`(now)` when
//! [`Node::poll_timeout`] says so, send everything [`Node::poll_transmit`] returns from the one
//! UDP socket the node is bound to, and read [`Node::poll_event`] until it is empty. The node
//! never reads the clock and never draws randomness itself: time comes in as `now`, randomness
//! from the seed given to [`Node::new`] (ChaCha20). Commands ([`Node::find_node`],
//! [`Node::query`], [`Node::request`], [`Node::ping`]) return ids that their completion events
//! echo.
//!
//! Unlike JS, which binds a server and a client socket, this node uses one socket for
//! everything (protocol-map 0.3: the DHT shares its port with UDX streams); the id is therefore
//! sent in every datagram once the node is persistent.
//!
//! User (hyperdht) commands: [`Node::register_command`] declares a non-internal command number;
//! requests for it come out as [`Event::Request`] and are answered with [`Node::reply`] /
//! [`Node::reply_error`] (or [`Node::relay`]). Requests for commands nobody registered get
//! JS's answer: `UNKNOWN_COMMAND` with closer nodes when the request had a target.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::config::Config;
use super::io::{Io, Owner, Transmit};
use super::maintenance::{BootState, NetCheck};
use super::nat_sampler::NatSampler;
use super::query::{Query, QueryOpts};
use super::routing::{NodeId, RoutingTable, TableNode};
use super::tokens::Tokens;
use super::wire::{self, InternalCommand, Message, Request, Response};
use crate::codec::{Decode, Encode, Writer};
use crate::crypto::node_id;

/// Token-bucket drain interval (`setInterval(this._drain, 750)`).
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(750);
/// Maintenance tick (`TICK_INTERVAL = 5000`).
pub const TICK_INTERVAL: Duration = Duration::from_millis(5000);
/// A gap between ticks above this means the machine slept (`SLEEPING_INTERVAL`).
pub const SLEEPING_INTERVAL: Duration = Duration::from_millis(15_000);

/// Id of a caller's request ([`Node::request`], [`Node::ping`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Id of a query ([`Node::find_node`], [`Node::query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// A response as the node hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The responder's address.
    pub from: SocketAddrV4,
    /// The responder's id, only when it sent one that matches `from` (JS `validateId`).
    pub from_id: Option<NodeId>,
    /// Our address as the responder saw it.
    pub to: SocketAddrV4,
    /// A token for our IP, to present on a later write.
    pub token: Option<[u8; 32]>,
    /// Nodes closer to the target.
    pub closer_nodes: Vec<SocketAddrV4>,
    /// Error code, 0 = none.
    pub error: u64,
    /// Reply value.
    pub value: Option<Vec<u8>>,
    /// Time from the request's creation to this reply.
    pub rtt: Duration,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No reply after all retries (JS `REQUEST_TIMEOUT`).
    #[error("request timed out")]
    TimedOut,
    /// The in-flight table is full (bound `Limits::max_inflight`).
    #[error("too many requests in flight")]
    TooManyRequests,
    /// The request was cancelled (JS `REQUEST_DESTROYED`).
    #[error("request cancelled")]
    Cancelled,
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The commit phase had no closest node to commit to (JS "Too few nodes responded").
    #[error("too few nodes responded")]
    TooFewNodes,
    /// Every commit request failed.
    #[error("all {0} commit requests failed")]
    CommitFailed(usize),
    /// Too many queries running (bound `Limits::max_queries`).
    #[error("too many queries running")]
    TooManyQueries,
}

/// Result of a finished query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryOutcome {
    /// Up to k replies from persistent nodes with no error, closest to the target first
    /// (`query.closestReplies`; their `closer_nodes` are left empty).
    pub closest_replies: Vec<Reply>,
    /// Replies with error 0.
    pub successes: usize,
    /// Replies with an error plus failed requests.
    pub errors: usize,
    /// Referral depth of the closest reply: 1 when it was a seed, +1 per closer-nodes hop.
    pub hops: u8,
}

/// A request for a registered user command, to answer with [`Node::reply`] or
/// [`Node::reply_error`]. Carries everything needed to answer, so the node keeps no state
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// Sender address.
    pub from: SocketAddrV4,
    /// Sender id when valid.
    pub from_id: Option<NodeId>,
    /// Our address as the sender addressed us.
    pub to: SocketAddrV4,
    /// Transaction id.
    pub tid: u16,
    /// The token the sender presented (already checked: it is valid when present).
    pub token: Option<[u8; 32]>,
    /// Internal flag.
    pub internal: bool,
    /// Command number.
    pub command: u64,
    /// Target.
    pub target: Option<NodeId>,
    /// Value.
    pub value: Option<Vec<u8>>,
}

/// What the node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The bootstrap finished (JS `ready`).
    Ready,
    /// The node became persistent: it now has an id and enters other nodes' tables.
    Persistent {
        /// Its id.
        id: NodeId,
    },
    /// An adaptive node went back to ephemeral after a sleep (JS `ephemeral`).
    Ephemeral,
    /// The sampled external address changed (JS `nat-update`).
    NatUpdate {
        /// Host, if consistent.
        host: Option<Ipv4Addr>,
        /// Port, 0 when unknown.
        port: u16,
    },
    /// The network health changed (JS `network-update` with `online` / `degraded`).
    NetworkUpdate(super::health::NetworkState),
    /// A request for a registered user command.
    Request(IncomingRequest),
    /// A caller's request finished.
    Response {
        /// Its id.
        request: RequestId,
        /// The reply or why none came.
        result: Result<Reply, RequestError>,
    },
    /// A reply with error 0 seen by a query started with `stream: true` (JS query `data`).
    QueryReply {
        /// The query.
        query: QueryId,
        /// The reply.
        reply: Reply,
    },
    /// A query finished.
    QueryDone {
        /// The query.
        query: QueryId,
        /// Outcome.
        result: Result<QueryOutcome, QueryError>,
    },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams: u64,
    /// Datagrams dropped as undecodable or too short.
    pub malformed: u64,
    /// Requests received.
    pub requests_in: u64,
    /// Responses matched to an in-flight request.
    pub responses: u64,
    /// Responses with an unknown tid.
    pub unmatched_responses: u64,
    /// Requests created.
    pub requests_out: u64,
    /// Request transmissions that timed out and were retried.
    pub retries: u64,
    /// Requests that timed out for good.
    pub timeouts: u64,
    /// Events dropped because the event queue was full (remote-driven events only).
    pub dropped_events: u64,
    /// DELAYED_PINGs refused because the delayed-reply list was full.
    pub dropped_delayed_pings: u64,
}

/// The dht-rpc node. See the module docs for the I/O contract.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) io: Io,
    pub(crate) table: RoutingTable,
    pub(crate) nat: NatSampler,
    pub(crate) local_port: u16,
    pub(crate) ephemeral: bool,
    pub(crate) firewalled: bool,
    pub(crate) adaptive: bool,
    pub(crate) force_persistent: bool,
    pub(crate) bootstrapped: bool,
    pub(crate) boot: BootState,
    pub(crate) net_check: Option<NetCheck>,
    pub(crate) tick: u64,
    pub(crate) refresh_ticks: i64,
    pub(crate) stable_ticks: i64,
    pub(crate) last_host: Option<Option<Ipv4Addr>>,
    pub(crate) repinging: u32,
    pub(crate) checks: u32,
    pub(crate) down_hints_sent: u32,
    pub(crate) non_persistent_samples: Vec<SocketAddrV4>,
    pub(crate) queries: HashMap<QueryId, Query>,
    pub(crate) health: super::health::Health,
    pub(crate) next_query_id: u64,
    next_request: u64,
    registered: BTreeSet<u64>,
    events: VecDeque<Event>,
    delayed: Vec<(Instant, Transmit)>,
    next_drain: Instant,
    next_tick: Instant,
    pub(crate) stats: Stats,
}

impl Node {
    /// A node bound to local UDP port `local_port`, starting its bootstrap at `now`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use dht::rpc::{Config, Node};
    /// let mut node = Node::new(Config::default(), 49737, Instant::now(), [7; 32]);
    /// while let Some(t) = node.poll_transmit() { let _ = t; /* send it */ }
    /// ```
    pub fn new(config: Config, local_port: u16, now: Instant, seed: [u8; 32]) -> Self {
        let mut node = Self::build(config, local_port, now, seed);
        node.start_boot_round(now);
        node
    }

    fn build(config: Config, local_port: u16, now: Instant, seed: [u8; 32]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut table_id = [0u8; 32];
        rng.fill_bytes(&mut table_id);
        let mut s0 = [0u8; 32];
        let mut s1 = [0u8; 32];
        rng.fill_bytes(&mut s0);
        rng.fill_bytes(&mut s1);
        let first_tid = (rng.next_u32() & 0xffff) as u16;
        let io = Io::new(
            first_tid,
            Tokens::new(s0, s1),
            config.max_window,
            config.limits.max_inflight,
            config.limits.max_transmits,
        );
        let adaptive = config.ephemeral.is_none() && config.adaptive;
        let force_persistent = config.ephemeral == Some(false);
        let tick = random_offset(&mut rng, 100);
        let refresh_ticks =
            random_offset(&mut rng, super::maintenance::REFRESH_TICKS as u64) as i64;
        let mut node = Self {
            table: RoutingTable::new(table_id, config.k),
            firewalled: config.firewalled,
            io,
            nat: NatSampler::new(),
            local_port,
            ephemeral: true,
            adaptive,
            force_persistent,
            bootstrapped: false,
            boot: BootState::default(),
            net_check: None,
            tick,
            refresh_ticks,
            stable_ticks: if adaptive {
                super::maintenance::STABLE_TICKS
            } else {
                0
            },
            last_host: None,
            repinging: 0,
            checks: 0,
            down_hints_sent: 0,
            non_persistent_samples: Vec::new(),
            queries: HashMap::new(),
            health: super::health::Health::default(),
            next_query_id: 0,
            next_request: 0,
            registered: BTreeSet::new(),
            events: VecDeque::new(),
            delayed: Vec::new(),
            next_drain: now + DRAIN_INTERVAL,
            next_tick: now + TICK_INTERVAL,
            stats: Stats::default(),
            rng,
            config,
        };
        for addr in node.config.nodes.clone().into_iter().rev() {
            node.add_node(now, addr);
        }
        node
    }

    /// A bootstrap node (`DHT.bootstrapper(port, host)`): persistent at once with id
    /// `H(public)`, not firewalled, no bootstrap nodes of its own.
    pub fn bootstrapper(
        mut config: Config,
        public: SocketAddrV4,
        now: Instant,
        seed: [u8; 32],
    ) -> Self {
        config.ephemeral = Some(false);
        config.firewalled = false;
        config.bootstrap.clear();
        // `_nat.add` happens right after construction in JS, before the bootstrap query runs.
        let mut node = Self::build(config, public.port(), now, seed);
        node.nat.add(*public.ip(), public.port());
        node.start_boot_round(now);
        node
    }

    // ---- accessors -------------------------------------------------------------------

    /// The node id while persistent, `None` while ephemeral (JS `dht.id`).
    pub fn id(&self) -> Option<NodeId> {
        if self.ephemeral {
            None
        } else {
            Some(*self.table.id())
        }
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Whether the node is ephemeral.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Whether the node believes it is firewalled.
    pub fn is_firewalled(&self) -> bool {
        self.firewalled
    }

    /// Whether the bootstrap finished.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// The sampled external host and port (port 0 = unknown or randomized).
    pub fn nat(&self) -> (Option<Ipv4Addr>, u16) {
        (self.nat.host, self.nat.port)
    }

    /// `remoteAddress()`: our public address when known, not firewalled and not remapped.
    pub fn remote_address(&self) -> Option<SocketAddrV4> {
        let host = self.nat.host?;
        if self.nat.port == 0 || self.firewalled || self.nat.port != self.local_port {
            return None;
        }
        Some(SocketAddrV4::new(host, self.local_port))
    }

    /// Table members, most recently seen first (`dht.toArray()`).
    pub fn to_array(&self) -> Vec<SocketAddrV4> {
        self.table.latest_first().iter().map(|n| n.addr).collect()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The local UDP port.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// Requests in flight or queued.
    pub fn inflight(&self) -> usize {
        self.io.inflight.len()
    }

    /// Queries running.
    pub fn running_queries(&self) -> usize {
        self.queries.len()
    }

    /// The token this node hands to `ip` in replies.
    pub fn token_for(&self, ip: Ipv4Addr) -> [u8; 32] {
        self.io.tokens.token(ip)
    }

    // ---- sans-IO plumbing ------------------------------------------------------------

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.io.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_drain.min(self.next_tick);
        if let Some(d) = self.io.next_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.delayed.iter().map(|(d, _)| *d).min() {
            t = t.min(d);
        }
        Some(t)
    }

    pub(crate) fn emit(&mut self, e: Event) {
        self.events.push_back(e);
    }

    /// Remote-driven events are dropped (and counted) when the queue is full.
    pub(crate) fn emit_remote(&mut self, e: Event) {
        if self.events.len() >= self.config.limits.max_events {
            self.stats.dropped_events += 1;
            return;
        }
        self.events.push_back(e);
    }

    /// Declares that the caller handles non-internal command `command`.
    pub fn register_command(&mut self, command: u64) {
        self.registered.insert(command);
    }

    /// Adds a node by address (`dht.addNode`).
    pub fn add_node(&mut self, now: Instant, addr: SocketAddrV4) {
        let node = TableNode::new(node_id(&addr), addr, None);
        self.add_table_node(now, node);
    }

    /// Processes timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while now >= self.next_drain {
            self.next_drain += DRAIN_INTERVAL;
            self.io.drain(now);
            if now.saturating_duration_since(self.next_drain) > SLEEPING_INTERVAL {
                self.next_drain = now + DRAIN_INTERVAL;
            }
        }
        if now >= self.next_tick {
            let late = now.saturating_duration_since(self.next_tick);
            if late + TICK_INTERVAL > SLEEPING_INTERVAL {
                self.on_wakeup();
                self.next_tick = now + TICK_INTERVAL;
                self.on_tick(now, false);
            } else {
                while now >= self.next_tick {
                    self.next_tick += TICK_INTERVAL;
                    self.on_tick(now, true);
                }
            }
        }
        for tid in self.io.expired(now) {
            self.on_cycle(now, tid);
        }
        if !self.delayed.is_empty() {
            let mut due = Vec::new();
            self.delayed.retain(|(d, t)| {
                if *d <= now {
                    due.push(t.clone());
                    false
                } else {
                    true
                }
            });
            for t in due {
                self.io.push_transmit(t.to, t.payload);
            }
        }
    }

    /// A retransmission timer fired (`oncycle`).
    fn on_cycle(&mut self, now: Instant, tid: u16) {
        let Some(r) = self.io.inflight.get_mut(&tid) else {
            return;
        };
        r.deadline = None;
        let mut slow_query = None;
        if let Owner::Query(q) = r.owner {
            if !r.cycled {
                r.cycled = true;
                slow_query = Some(q);
            }
        }
        let done = r.sent > r.retries;
        if let Some(q) = slow_query {
            if let Some(query) = self.queries.get_mut(&q) {
                query.slow += 1;
            }
            self.query_read_more(now, q);
        }
        if done {
            self.stats.timeouts += 1;
            if let Some(r) = self.io.finish(tid) {
                let to_id = r.to_id;
                self.on_request_failed(now, r.owner, r.to, RequestError::TimedOut, r.cycled);
                // `_ontimeout`: a known id that stopped answering leaves the table.
                if let Some(id) = to_id {
                    self.remove_node(&id);
                }
            }
        } else {
            self.stats.retries += 1;
            let id = self.id();
            self.io.send(now, tid, false, id);
        }
    }

    /// Handles one received UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        self.stats.datagrams += 1;
        if bytes.len() < 2 || from.port() == 0 {
            self.stats.malformed += 1;
            return;
        }
        match Message::from_bytes(bytes) {
            Ok(Message::Request(req)) => self.on_request(now, from, req),
            Ok(Message::Response(res)) => self.on_response(now, from, res),
            Err(_) => self.stats.malformed += 1,
        }
    }

    fn validate_id(id: Option<NodeId>, from: &SocketAddrV4) -> Option<NodeId> {
        let id = id?;
        let expected = node_id(from);
        (expected == id).then_some(expected)
    }

    fn on_response(&mut self, now: Instant, from: SocketAddrV4, res: Response) {
        let Some(r) = self.io.finish(res.tid) else {
            self.stats.unmatched_responses += 1;
            return;
        };
        self.stats.responses += 1;
        let from_id = Self::validate_id(res.id, &from);
        self.add_node_from_network(now, true, from, from_id, res.to);
        let reply = Reply {
            from,
            from_id,
            to: res.to,
            token: res.token,
            closer_nodes: res.closer_nodes,
            error: res.error,
            value: res.value,
            rtt: now.saturating_duration_since(r.started),
        };
        self.on_request_done(now, r.owner, r.to, reply, r.cycled);
    }

    fn on_request(&mut self, now: Instant, from: SocketAddrV4, req: Request) {
        self.stats.requests_in += 1;
        let from_id = Self::validate_id(req.id, &from);
        if let Some(t) = &req.token {
            if !self.io.tokens.is_valid(*from.ip(), t) {
                self.send_reply(
                    from,
                    req.tid,
                    req.target.as_ref(),
                    wire::errors::INVALID_TOKEN,
                    None,
                    true,
                    true,
                );
                return;
            }
        }
        if from_id.is_some() {
            self.add_node_from_network(now, true, from, from_id, req.to);
        }
        let target = req.target;
        if req.internal {
            match InternalCommand::from_u64(req.command) {
                Some(InternalCommand::Ping) => {
                    self.send_reply(from, req.tid, None, 0, None, false, false);
                }
                Some(InternalCommand::DelayedPing) => {
                    let Some(delay) = req.value.as_deref().and_then(le_u32) else {
                        return;
                    };
                    if delay > self.config.max_ping_delay_ms {
                        return;
                    }
                    if self.delayed.len() >= self.config.limits.max_delayed_pings {
                        self.stats.dropped_delayed_pings += 1;
                        return;
                    }
                    let payload = self.reply_bytes(from, req.tid, None, 0, None, false, false);
                    self.delayed.push((
                        now + Duration::from_millis(u64::from(delay)),
                        Transmit { to: from, payload },
                    ));
                }
                Some(InternalCommand::PingNat) => {
                    let Some(port) = req.value.as_deref().and_then(le_u16) else {
                        return;
                    };
                    if port == 0 {
                        return;
                    }
                    let to = SocketAddrV4::new(*from.ip(), port);
                    self.send_reply(to, req.tid, None, 0, None, false, false);
                }
                Some(InternalCommand::FindNode) => {
                    if target.is_none() {
                        return;
                    }
                    self.send_reply(from, req.tid, target.as_ref(), 0, None, false, true);
                }
                Some(InternalCommand::DownHint) => {
                    let Some(v) = req.value.as_deref().filter(|v| v.len() >= 6) else {
                        return;
                    };
                    if self.checks < super::maintenance::MAX_CHECKS {
                        if let Some(addr) = v.get(..6).and_then(addr6) {
                            let id = node_id(&addr);
                            let tick = self.tick;
                            if let Some(n) = self.table.get_mut(&id) {
                                if n.pinged < tick || n.down_hints == 0 {
                                    n.down_hints += 1;
                                    self.check(now, id);
                                }
                            }
                        }
                    }
                    self.send_reply(from, req.tid, None, 0, None, false, false);
                }
                None => {
                    self.send_reply(
                        from,
                        req.tid,
                        target.as_ref(),
                        wire::errors::UNKNOWN_COMMAND,
                        None,
                        false,
                        true,
                    );
                }
            }
            return;
        }
        if self.registered.contains(&req.command) {
            self.emit_remote(Event::Request(IncomingRequest {
                from,
                from_id,
                to: req.to,
                tid: req.tid,
                token: req.token,
                internal: req.internal,
                command: req.command,
                target: req.target,
                value: req.value,
            }));
        } else {
            self.send_reply(
                from,
                req.tid,
                target.as_ref(),
                wire::errors::UNKNOWN_COMMAND,
                None,
                false,
                true,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_bytes(
        &self,
        to: SocketAddrV4,
        tid: u16,
        target: Option<&NodeId>,
        error: u64,
        value: Option<Vec<u8>>,
        token: bool,
        closer_nodes: bool,
    ) -> Vec<u8> {
        let closer = match (target, closer_nodes) {
            (Some(t), true) => self
                .table
                .closest(t, self.table.k())
                .iter()
                .map(|n| n.addr)
                .collect(),
            _ => Vec::new(),
        };
        Response {
            tid,
            to,
            id: self.id(),
            token: token.then(|| self.io.tokens.token(*to.ip())),
            closer_nodes: closer,
            error,
            value,
        }
        .to_bytes()
    }

    /// `_sendReply`.
    #[allow(clippy::too_many_arguments)]
    fn send_reply(
        &mut self,
        to: SocketAddrV4,
        tid: u16,
        target: Option<&NodeId>,
        error: u64,
        value: Option<Vec<u8>>,
        token: bool,
        closer_nodes: bool,
    ) {
        let b = self.reply_bytes(to, tid, target, error, value, token, closer_nodes);
        self.io.push_transmit(to, b);
    }

    /// Answers a user request with a value (`req.reply(value, { token, closerNodes })`; JS
    /// defaults are `token: true, closer_nodes: true`).
    pub fn reply(
        &mut self,
        req: &IncomingRequest,
        value: Option<Vec<u8>>,
        token: bool,
        closer_nodes: bool,
    ) {
        self.send_reply(
            req.from,
            req.tid,
            req.target.as_ref(),
            0,
            value,
            token,
            closer_nodes,
        );
    }

    /// Answers a user request with an error code (`req.error(code, { token, closerNodes })`;
    /// JS defaults are `token: false, closer_nodes: true`).
    pub fn reply_error(
        &mut self,
        req: &IncomingRequest,
        code: u64,
        token: bool,
        closer_nodes: bool,
    ) {
        self.send_reply(
            req.from,
            req.tid,
            req.target.as_ref(),
            code,
            None,
            token,
            closer_nodes,
        );
    }

    /// Re-sends the incoming request, with a new value, as a request to `to` (`req.relay`).
    pub fn relay(&mut self, req: &IncomingRequest, value: Option<Vec<u8>>, to: SocketAddrV4) {
        let r = Request {
            tid: req.tid,
            to,
            id: self.id(),
            token: None,
            internal: req.internal,
            command: req.command,
            target: req.target,
            value,
        };
        self.io.push_transmit(to, r.to_bytes());
    }

    // ---- commands --------------------------------------------------------------------

    /// Sends a request (`dht.request`, or an internal one) and reports the outcome as
    /// [`Event::Response`]. `retries` defaults to JS's 3.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        internal: bool,
        command: u64,
        target: Option<NodeId>,
        value: Option<Vec<u8>>,
        token: Option<[u8; 32]>,
        retries: Option<u32>,
    ) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        let req = Request {
            tid: 0,
            to,
            id: None,
            token,
            internal,
            command,
            target,
            value,
        };
        let ok = self.create_request(
            now,
            to,
            None,
            req,
            retries.unwrap_or(3),
            self.config.request_timeout,
            Owner::User(id),
            false,
        );
        if !ok {
            self.emit(Event::Response {
                request: id,
                result: Err(RequestError::TooManyRequests),
            });
        }
        id
    }

    /// PING (`dht.ping`).
    pub fn ping(&mut self, now: Instant, to: SocketAddrV4) -> RequestId {
        self.request(
            now,
            to,
            true,
            InternalCommand::Ping.to_u64(),
            None,
            None,
            None,
            None,
        )
    }

    /// An iterative FIND_NODE query for `target` (`dht.findNode`).
    pub fn find_node(&mut self, now: Instant, target: NodeId) -> QueryId {
        self.query(
            now,
            QueryOpts {
                internal: true,
                command: InternalCommand::FindNode.to_u64(),
                ..QueryOpts::new(target)
            },
        )
    }

    /// Cancels a caller's request; no event follows.
    pub fn cancel_request(&mut self, id: RequestId) {
        let tids: Vec<u16> = self
            .io
            .inflight
            .iter()
            .filter(|(_, r)| matches!(r.owner, Owner::User(x) if x == id))
            .map(|(t, _)| *t)
            .collect();
        for t in tids {
            self.io.finish(t);
        }
    }

    /// Registers and sends a request; false when the in-flight table is full.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_request(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        to_id: Option<NodeId>,
        req: Request,
        retries: u32,
        timeout: Duration,
        owner: Owner,
        force: bool,
    ) -> bool {
        let Some(tid) = self.io.create(now, to, to_id, req, retries, timeout, owner) else {
            return false;
        };
        self.stats.requests_out += 1;
        let id = self.id();
        self.io.send(now, tid, force, id);
        true
    }

    /// An internal request owned by the node itself (`_request`).
    pub(crate) fn internal_request(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        command: InternalCommand,
        value: Option<Vec<u8>>,
        owner: Owner,
    ) -> bool {
        if command == InternalCommand::DownHint && !self.config.send_down_hints {
            return false;
        }
        let req = Request {
            tid: 0,
            to,
            id: None,
            token: None,
            internal: true,
            command: command.to_u64(),
            target: None,
            value,
        };
        self.create_request(
            now,
            to,
            None,
            req,
            3,
            self.config.request_timeout,
            owner,
            false,
        )
    }

    /// Dispatches a reply to whoever waits for it.
    fn on_request_done(
        &mut self,
        now: Instant,
        owner: Owner,
        to: SocketAddrV4,
        reply: Reply,
        cycled: bool,
    ) {
        match owner {
            Owner::User(id) => self.emit(Event::Response {
                request: id,
                result: Ok(reply),
            }),
            Owner::Query(q) => self.query_on_visit(now, q, to, reply, cycled),
            Owner::Commit(q) => self.query_on_commit(now, q, true),
            Owner::DownHint(_) => {}
            Owner::Check { id, last_seen } => {
                self.checks = self.checks.saturating_sub(1);
                if self.table.get(&id).is_some_and(|n| n.seen <= last_seen) {
                    self.remove_node(&id);
                }
            }
            Owner::Reping {
                newcomer,
                old,
                last_seen,
            } => {
                if self.table.get(&old).is_none_or(|n| n.seen <= last_seen) {
                    self.swap(now, *newcomer, &old);
                } else {
                    self.repinging = self.repinging.saturating_sub(1);
                }
            }
            Owner::QuickFirewall => self.boot.test_nat = true,
            Owner::FirewallCheck => self.net_check_reply(now, Some(reply)),
        }
    }

    /// Dispatches a failure.
    pub(crate) fn on_request_failed(
        &mut self,
        now: Instant,
        owner: Owner,
        to: SocketAddrV4,
        err: RequestError,
        cycled: bool,
    ) {
        match owner {
            Owner::User(id) => self.emit(Event::Response {
                request: id,
                result: Err(err),
            }),
            Owner::Query(q) => self.query_on_error(now, q, to, err, cycled),
            Owner::Commit(q) => self.query_on_commit(now, q, false),
            Owner::DownHint(_) | Owner::QuickFirewall => {}
            Owner::Check { id, .. } => {
                self.checks = self.checks.saturating_sub(1);
                self.remove_node(&id);
            }
            Owner::Reping { newcomer, old, .. } => self.swap(now, *newcomer, &old),
            Owner::FirewallCheck => self.net_check_reply(now, None),
        }
    }

    fn swap(&mut self, now: Instant, newcomer: TableNode, old: &NodeId) {
        self.repinging = self.repinging.saturating_sub(1);
        self.remove_node(old);
        self.add_table_node(now, newcomer);
    }

    // ---- routing-table feeding -------------------------------------------------------

    pub(crate) fn nat_add(&mut self, host: Ipv4Addr, port: u16) {
        let prev = (self.nat.host, self.nat.port);
        self.nat.add(host, port);
        if prev != (self.nat.host, self.nat.port) {
            let (host, port) = (self.nat.host, self.nat.port);
            self.emit(Event::NatUpdate { host, port });
        }
    }

    fn sample_bootstrap_maybe(&mut self, from: SocketAddrV4, to: SocketAddrV4) {
        if self.non_persistent_samples.len() >= self.config.bootstrap.len().max(1) {
            return;
        }
        if self.non_persistent_samples.contains(&from) {
            return;
        }
        self.non_persistent_samples.push(from);
        self.nat_add(*to.ip(), to.port());
    }

    /// `_addNodeFromNetwork`.
    fn add_node_from_network(
        &mut self,
        now: Instant,
        sample: bool,
        from: SocketAddrV4,
        from_id: Option<NodeId>,
        to: SocketAddrV4,
    ) {
        let Some(id) = from_id else {
            self.sample_bootstrap_maybe(from, to);
            return;
        };
        let tick = self.tick;
        if let Some(old) = self.table.get_mut(&id) {
            let mut nat = None;
            if sample
                && (old.sampled == 0
                    || tick.saturating_sub(old.sampled) >= super::maintenance::OLD_NODE)
            {
                old.to = Some(to);
                old.sampled = tick;
                nat = Some(to);
            }
            old.pinged = tick;
            old.seen = tick;
            self.table.touch(&id);
            if let Some(to) = nat {
                self.nat_add(*to.ip(), to.port());
            }
            return;
        }
        self.add_table_node(now, TableNode::new(id, from, Some(to)));
    }

    /// `_addNode`.
    pub(crate) fn add_table_node(&mut self, now: Instant, mut node: TableNode) {
        if node.id == *self.table.id() {
            return;
        }
        let tick = self.tick;
        node.added = tick;
        node.pinged = tick;
        node.seen = tick;
        let id = node.id;
        let sample = node.to.filter(|_| node.sampled == 0);
        match self.table.add(node.clone()) {
            super::routing::AddOutcome::Full => {
                self.on_full_row(now, node);
            }
            _ => {
                if let Some(to) = sample {
                    if let Some(n) = self.table.get_mut(&id) {
                        n.sampled = tick;
                    }
                    self.nat_add(*to.ip(), to.port());
                }
            }
        }
    }

    pub(crate) fn remove_node(&mut self, id: &NodeId) {
        self.table.remove(id);
    }

    /// `_onfullrow`: maybe re-ping the row's oldest member and replace it with `newcomer`.
    fn on_full_row(&mut self, now: Instant, newcomer: TableNode) {
        if !self.bootstrapped || self.repinging >= super::maintenance::MAX_REPINGING {
            return;
        }
        let tick = self.tick;
        let mut oldest: Option<&TableNode> = None;
        for n in self.table.row_nodes(&newcomer.id) {
            if n.pinged == tick {
                continue;
            }
            if oldest
                .is_none_or(|o| o.pinged > n.pinged || (o.pinged == n.pinged && o.added > n.added))
            {
                oldest = Some(n);
            }
        }
        let Some(o) = oldest else { return };
        if tick.saturating_sub(o.pinged) < super::maintenance::RECENT_NODE
            && tick.saturating_sub(o.added) > super::maintenance::OLD_NODE
        {
            return;
        }
        let (old, addr, last_seen) = (o.id, o.addr, o.seen);
        if let Some(n) = self.table.get_mut(&old) {
            n.pinged = tick;
        }
        self.repinging += 1;
        let ok = self.internal_request(
            now,
            addr,
            InternalCommand::Ping,
            None,
            Owner::Reping {
                newcomer: Box::new(newcomer),
                old,
                last_seen,
            },
        );
        if !ok {
            self.repinging = self.repinging.saturating_sub(1);
        }
    }

    /// Draws a random `u64`.
    pub(crate) fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

/// `n - floor(random * 0.5 * n)` (`randomOffset`).
fn random_offset(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    let half = n / 2;
    n - if half == 0 { 0 } else { rng.next_u64() % half }
}

fn le_u16(v: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes([*v.first()?, *v.get(1)?]))
}

fn le_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes([
        *v.first()?,
        *v.get(1)?,
        *v.get(2)?,
        *v.get(3)?,
    ]))
}

/// Decodes a 6-byte `addr6`.
pub(crate) fn addr6(v: &[u8]) -> Option<SocketAddrV4> {
    crate::codec::Reader::new(v).ipv4_addr().ok()
}

/// Encodes a 6-byte `addr6`.
pub(crate) fn encode_addr6(a: &SocketAddrV4) -> Vec<u8> {
    let mut v = Vec::with_capacity(6);
    v.put_ipv4_addr(a);
    v
}
