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
//! everything (the DHT shares its port with UDX streams, as hyperdht's `lib/connect.js` runs
//! streams on `dht.io.serverSocket`); the id is therefore sent in every datagram once the node
//! is persistent.
//!
//! Replies: a response completes a request only when it comes from the address the request
//! was sent to and carries its transaction id; ids are random. JS (`dht-rpc/lib/io.js`
//! `onmessage`) matches the id alone; we are stricter, so an off-path sender must know both.
//! Others are dropped and counted in [`Stats::wrong_source_responses`].
//!
//! User (hyperdht) commands: [`Node::register_command`] declares a non-internal command number;
//! requests for it come out as [`Event::Request`] and are answered with [`Node::reply`] and a
//! [`ReplyOpts`](super::ReplyOpts) (or forwarded with [`Node::relay`]). A layer such as hyperdht composes the
//! node through this API: it registers its commands, answers them with a value and a token,
//! and walks the DHT with [`Node::query`] (a user command and value, `stream: true` for one
//! [`Event::QueryReply`] per answer). Requests for commands nobody registered get
//! JS's answer: `UNKNOWN_COMMAND` with closer nodes when the request had a target.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::api::{Event, QueryId, Reply, RequestError, RequestId, RequestOpts, Stats};
use super::config::Config;
use super::maintenance::Maintenance;
use super::nat_sampler::NatSampler;
use super::query::{QueryOpts, QueryWalk};
use super::requests::{DelayedReplies, Expired, NewRequest, Outbox, Owner, Requests, Transmit};
use super::routing::{NodeId, RoutingTable, TableNode};
use super::tokens::Tokens;
use super::wire::{InternalCommand, Message, Request};
use crate::codec::{Decode, Writer};
use crate::crypto::node_id;

/// Token-bucket drain interval (`setInterval(this._drain, 750)`).
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(750);
/// Maintenance tick (`TICK_INTERVAL = 5000`).
pub const TICK_INTERVAL: Duration = Duration::from_millis(5000);
/// A gap between ticks above this means the machine slept (`SLEEPING_INTERVAL`).
pub const SLEEPING_INTERVAL: Duration = Duration::from_millis(15_000);

/// The dht-rpc node. See the module docs for the I/O contract.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    rng: ChaCha20Rng,
    pub(crate) requests: Requests,
    pub(crate) outbox: Outbox,
    pub(crate) tokens: Tokens,
    pub(crate) table: RoutingTable,
    pub(crate) nat: NatSampler,
    pub(crate) local_port: u16,
    pub(crate) ephemeral: bool,
    pub(crate) firewalled: bool,
    pub(crate) adaptive: bool,
    pub(crate) force_persistent: bool,
    pub(crate) bootstrapped: bool,
    pub(crate) maintenance: Maintenance,
    pub(crate) non_persistent_samples: Vec<SocketAddrV4>,
    pub(crate) queries: BTreeMap<QueryId, QueryWalk>,
    pub(crate) next_query_id: u64,
    next_request: u64,
    pub(crate) registered: BTreeSet<u64>,
    events: VecDeque<Event>,
    pub(crate) delayed: DelayedReplies,
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
        let mut tid_seed = [0u8; 32];
        rng.fill_bytes(&mut tid_seed);
        let requests = Requests::new(
            ChaCha20Rng::from_seed(tid_seed),
            config.max_window,
            config.limits.max_inflight,
        );
        let adaptive = config.ephemeral.is_none() && config.adaptive;
        let force_persistent = config.ephemeral == Some(false);
        let tick = random_offset(&mut rng, 100);
        let refresh_ticks =
            random_offset(&mut rng, super::maintenance::REFRESH_TICKS as u64) as i64;
        let mut node = Self {
            table: RoutingTable::new(table_id, config.k),
            firewalled: config.firewalled,
            requests,
            outbox: Outbox::new(config.limits.max_transmits),
            tokens: Tokens::new(s0, s1),
            nat: NatSampler::new(),
            local_port,
            ephemeral: true,
            adaptive,
            force_persistent,
            bootstrapped: false,
            maintenance: Maintenance::new(tick, refresh_ticks, adaptive),
            non_persistent_samples: Vec::new(),
            queries: BTreeMap::new(),
            next_query_id: 0,
            next_request: 0,
            registered: BTreeSet::new(),
            events: VecDeque::new(),
            delayed: DelayedReplies::new(config.limits.max_delayed_pings),
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
        self.requests.len()
    }

    /// Queries running.
    pub fn running_queries(&self) -> usize {
        self.queries.len()
    }

    /// The token this node hands to `ip` in replies.
    pub fn token_for(&self, ip: Ipv4Addr) -> [u8; 32] {
        self.tokens.token(ip)
    }

    // ---- sans-IO plumbing ------------------------------------------------------------

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_drain.min(self.next_tick);
        if let Some(d) = self.requests.next_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.delayed.next_due() {
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
            self.tokens.drain();
            self.requests.drain(now, &mut self.outbox);
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
        while let Some(e) = self.requests.pop_expired(now) {
            self.on_cycle(now, e);
        }
        self.delayed.release(now, &mut self.outbox);
    }

    /// A retransmission timer fired (`oncycle`).
    fn on_cycle(&mut self, now: Instant, e: Expired) {
        if let Some(q) = e.slow_query {
            self.on_query_slow(now, q);
        }
        if e.exhausted {
            self.stats.timeouts += 1;
            if let Some(r) = self.requests.finish_expired(&e) {
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
            self.requests.retry(now, &e, id, &mut self.outbox);
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

    // ---- commands --------------------------------------------------------------------

    /// Sends a request to `to` (`dht.request`, or an internal one) and reports the outcome as
    /// [`Event::Response`].
    pub fn request(&mut self, now: Instant, to: SocketAddrV4, opts: RequestOpts) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        let req = Request {
            tid: 0,
            to,
            id: None,
            token: opts.token,
            internal: opts.internal,
            command: opts.command,
            target: opts.target,
            value: opts.value,
        };
        let new = NewRequest {
            req,
            to_id: None,
            retries: opts.retries,
            timeout: self.config.request_timeout,
            owner: Owner::User(id),
        };
        let ok = self.create_request(now, to, new);
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
        self.request(now, to, RequestOpts::internal(InternalCommand::Ping))
    }

    /// DELAYED_PING (`dht.delayedPing`): the remote answers after `delay_ms`; this request waits
    /// `delay_ms + 1000` ms per transmission. `None` when `delay_ms` exceeds `max_ping_delay_ms`
    /// (JS throws).
    pub fn delayed_ping(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        delay_ms: u32,
    ) -> Option<RequestId> {
        if delay_ms > self.config.max_ping_delay_ms {
            return None;
        }
        self.next_request += 1;
        let id = RequestId(self.next_request);
        let req = Request {
            tid: 0,
            to,
            id: None,
            token: None,
            internal: true,
            command: InternalCommand::DelayedPing.to_u64(),
            target: None,
            value: Some(delay_ms.to_le_bytes().to_vec()),
        };
        let timeout = Duration::from_millis(u64::from(delay_ms) + 1000);
        let new = NewRequest {
            req,
            to_id: None,
            retries: 3,
            timeout,
            owner: Owner::User(id),
        };
        if !self.create_request(now, to, new) {
            self.emit(Event::Response {
                request: id,
                result: Err(RequestError::TooManyRequests),
            });
        }
        Some(id)
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
        for t in self.requests.of_user(id) {
            self.requests.finish(t);
        }
    }

    /// Registers and sends a request to `to`; false when the in-flight table is full.
    pub(crate) fn create_request(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        new: NewRequest,
    ) -> bool {
        let Some(tid) = self.requests.create(now, to, new) else {
            return false;
        };
        self.stats.requests_out += 1;
        let id = self.id();
        self.requests.send(now, tid, false, id, &mut self.outbox);
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
        let new = NewRequest {
            req,
            to_id: None,
            retries: 3,
            timeout: self.config.request_timeout,
            owner,
        };
        self.create_request(now, to, new)
    }

    /// Dispatches a reply to whoever waits for it.
    pub(crate) fn on_request_done(
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
            Owner::Query(q) => self.on_query_reply(now, q, to, reply, cycled),
            Owner::Commit(q) => self.on_query_commit(now, q, true),
            Owner::DownHint(_) => {}
            Owner::Check { id, last_seen } => {
                self.maintenance.check_ended();
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
                    self.maintenance.reping_ended();
                }
            }
            Owner::QuickFirewall => self.maintenance.quick_firewall_answered(),
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
            Owner::Query(q) => self.on_query_failure(now, q, to, err, cycled),
            Owner::Commit(q) => self.on_query_commit(now, q, false),
            Owner::DownHint(_) | Owner::QuickFirewall => {}
            Owner::Check { id, .. } => {
                self.maintenance.check_ended();
                self.remove_node(&id);
            }
            Owner::Reping { newcomer, old, .. } => self.swap(now, *newcomer, &old),
            Owner::FirewallCheck => self.net_check_reply(now, None),
        }
    }

    pub(crate) fn swap(&mut self, now: Instant, newcomer: TableNode, old: &NodeId) {
        self.maintenance.reping_ended();
        self.remove_node(old);
        self.add_table_node(now, newcomer);
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
