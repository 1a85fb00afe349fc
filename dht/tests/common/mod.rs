//! A whole DHT of sans-IO `dht::rpc::Node`s on the `netsim` datagram fabric, for tests and
//! simulation.
//!
//! Every node sits at a virtual IPv4 address; `netsim` delivers datagrams after a seeded
//! latency of 5-40 ms (links without their own configuration keep no per-link state, so 10,000
//! nodes fit); timers fire in virtual time. No sockets, no clock.

#![allow(clippy::disallowed_methods)] // tests and benchmarks take real time as their origin
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::rpc::{Config, Event, Node, NodeId, QueryError, QueryId, QueryOutcome, ReplyOpts};

pub mod hyper;
#[cfg(feature = "tokio")]
pub mod live;

/// A tiny deterministic RNG (SplitMix64) for the harness itself.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        b
    }
}

#[derive(Debug)]
pub struct Net {
    pub start: Instant,
    pub now: Instant,
    /// Boxed, so the heap per node counts the node and not the map's spare slots.
    pub nodes: BTreeMap<SocketAddrV4, Box<Node>>,
    pub dead: BTreeSet<SocketAddrV4>,
    /// The datagram fabric.
    pub wire: netsim::Net,
    timers: BinaryHeap<Reverse<(Instant, SocketAddrV4)>>,
    pub done: BTreeMap<(SocketAddrV4, QueryId), Result<QueryOutcome, QueryError>>,
    pub persistent: BTreeSet<SocketAddrV4>,
    pub ready: BTreeSet<SocketAddrV4>,
    pub rng: Rng,
    pub delivered: u64,
    /// User requests seen by each node (answered at once with value `b"ok"`, token and closer
    /// nodes, as a hyperdht handler would).
    pub user_requests: Vec<(SocketAddrV4, dht::rpc::IncomingRequest)>,
    /// Replies streamed by queries started with `stream: true`, per querying node.
    pub query_replies: Vec<(SocketAddrV4, QueryId, dht::rpc::Reply)>,
}

pub fn addr_of(i: u32) -> SocketAddrV4 {
    let ip = 0x0a00_0000u32 + 1 + i;
    SocketAddrV4::new(Ipv4Addr::from(ip), 49_737)
}

impl Net {
    pub fn new(seed: u64) -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            nodes: BTreeMap::new(),
            dead: BTreeSet::new(),
            wire: {
                let mut w =
                    netsim::Net::new(start, seed ^ 0x6e65_7473_696d).with_stateless_default_links();
                w.set_default_link(netsim::LinkConfig {
                    delay: Duration::from_millis(5),
                    jitter: Duration::from_millis(35),
                    ..netsim::LinkConfig::default()
                });
                w
            },
            timers: BinaryHeap::new(),
            done: BTreeMap::new(),
            persistent: BTreeSet::new(),
            ready: BTreeSet::new(),
            rng: Rng(seed),
            delivered: 0,
            user_requests: Vec::new(),
            query_replies: Vec::new(),
        }
    }

    /// Adds a bootstrap node at `addr`.
    pub fn add_bootstrapper(&mut self, addr: SocketAddrV4) {
        let seed = self.rng.bytes32();
        let node = Node::bootstrapper(Config::default(), addr, self.now, seed);
        self.insert(addr, node);
    }

    /// Adds a node that joins through `bootstrap`; `persistent` = `ephemeral: false`.
    pub fn add_node(&mut self, addr: SocketAddrV4, bootstrap: Vec<SocketAddrV4>, persistent: bool) {
        let config = Config {
            bootstrap,
            ephemeral: if persistent { Some(false) } else { None },
            firewalled: !persistent,
            ..Config::default()
        };
        let seed = self.rng.bytes32();
        let node = Node::new(config, addr.port(), self.now, seed);
        self.insert(addr, node);
    }

    pub fn insert(&mut self, addr: SocketAddrV4, node: Node) {
        self.dead.remove(&addr);
        self.nodes.insert(addr, Box::new(node));
        self.after(addr);
    }

    pub fn kill(&mut self, addr: SocketAddrV4) {
        self.nodes.remove(&addr);
        self.persistent.remove(&addr);
        self.ready.remove(&addr);
        self.dead.insert(addr);
    }

    /// Drains a node's outputs after it ran.
    fn after(&mut self, addr: SocketAddrV4) {
        let Some(node) = self.nodes.get_mut(&addr) else {
            return;
        };
        while let Some(t) = node.poll_transmit() {
            self.wire
                .send(SocketAddr::V4(addr), SocketAddr::V4(t.to), &t.payload);
        }
        let mut answered = false;
        while let Some(e) = node.poll_event() {
            match e {
                Event::Request(r) => {
                    node.reply(&r, ReplyOpts::value(Some(b"ok".to_vec())));
                    self.user_requests.push((addr, r));
                    answered = true;
                }
                Event::QueryReply { query, reply } => {
                    self.query_replies.push((addr, query, reply));
                }
                Event::QueryDone { query, result } => {
                    self.done.insert((addr, query), result);
                }
                Event::Persistent { .. } => {
                    self.persistent.insert(addr);
                }
                Event::Ready => {
                    self.ready.insert(addr);
                }
                Event::Ephemeral => {
                    self.persistent.remove(&addr);
                }
                _ => {}
            }
        }
        if let Some(t) = node.poll_timeout() {
            self.timers.push(Reverse((t, addr)));
        }
        if answered {
            self.after(addr);
        }
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let w = self.wire.next_delivery();
            let t = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = match (w, t) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            self.wire.advance_to(self.now);
            if w == Some(next) {
                let Some(d) = self.wire.poll_deliver() else {
                    continue;
                };
                let (SocketAddr::V4(from), SocketAddr::V4(to)) = (d.from, d.to) else {
                    continue;
                };
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.handle_datagram(self.now, from, &d.data);
                    self.delivered += 1;
                    self.after(to);
                }
            } else {
                let Some(Reverse((_, addr))) = self.timers.pop() else {
                    break;
                };
                let Some(node) = self.nodes.get_mut(&addr) else {
                    continue;
                };
                // Stale timer entries are skipped; `after` always pushes the current one.
                if node.poll_timeout().is_some_and(|d| d <= self.now) {
                    node.handle_timeout(self.now);
                    self.after(addr);
                }
            }
        }
        self.now = self.now.max(until);
        self.wire.advance_to(self.now);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Starts a FIND_NODE from `at`.
    pub fn find_node(&mut self, at: SocketAddrV4, target: NodeId) -> Option<QueryId> {
        let now = self.now;
        let node = self.nodes.get_mut(&at)?;
        let q = node.find_node(now, target);
        self.after(at);
        Some(q)
    }

    /// Runs until the query ends (or `max` passes).
    pub fn wait_query(
        &mut self,
        at: SocketAddrV4,
        q: QueryId,
        max: Duration,
    ) -> Option<Result<QueryOutcome, QueryError>> {
        let deadline = self.now + max;
        while self.now < deadline {
            if let Some(r) = self.done.remove(&(at, q)) {
                return Some(r);
            }
            let step = self.now + Duration::from_millis(10);
            self.run_until(step);
        }
        self.done.remove(&(at, q))
    }

    /// Live persistent nodes sorted by XOR distance to `target`.
    pub fn true_closest(&self, target: &NodeId, n: usize) -> Vec<SocketAddrV4> {
        let mut v: Vec<(NodeId, SocketAddrV4)> = self
            .nodes
            .iter()
            .filter_map(|(a, node)| node.id().map(|id| (id, *a)))
            .collect();
        v.sort_by(|a, b| dht::rpc::routing::cmp_distance(target, &a.0, &b.0));
        v.into_iter().take(n).map(|(_, a)| a).collect()
    }
}
