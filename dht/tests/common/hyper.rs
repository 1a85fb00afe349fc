//! A network of sans-IO `dht::hyperdht::HyperDht` nodes on the `netsim` fabric: the same
//! virtual clock and seeded latency as [`super::Net`], with the HyperDHT layer's events kept
//! per node. No sockets, no clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::hyperdht::{HyperDht, HyperDhtConfig, HyperEvent, OpError, OpId, OpOutcome};
use dht::rpc::{Config, Event};

use super::Rng;

/// Wall-clock milliseconds the virtual clock starts at.
pub const UNIX_MS: u64 = 1_700_000_000_000;

#[derive(Debug)]
pub struct HyperNet {
    pub start: Instant,
    pub now: Instant,
    pub nodes: BTreeMap<SocketAddrV4, Box<HyperDht>>,
    pub wire: netsim::Net,
    timers: BinaryHeap<Reverse<(Instant, SocketAddrV4)>>,
    /// Streamed events (lookup replies, peers found, rpc events), per node, in order.
    pub events: Vec<(SocketAddrV4, HyperEvent)>,
    pub done: BTreeMap<(SocketAddrV4, OpId), Result<OpOutcome, OpError>>,
    pub rng: Rng,
}

impl HyperNet {
    pub fn new(seed: u64) -> Self {
        let now = Instant::now();
        let mut wire =
            netsim::Net::new(now, seed ^ 0x6879_7065_7264_6874).with_stateless_default_links();
        wire.set_default_link(netsim::LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(35),
            ..netsim::LinkConfig::default()
        });
        Self {
            start: now,
            now,
            nodes: BTreeMap::new(),
            wire,
            timers: BinaryHeap::new(),
            events: Vec::new(),
            done: BTreeMap::new(),
            rng: Rng(seed),
        }
    }

    pub fn add_bootstrapper(&mut self, addr: SocketAddrV4) {
        let seed = self.rng.bytes32();
        let d = HyperDht::bootstrapper(HyperDhtConfig::default(), addr, self.now, UNIX_MS, seed);
        self.insert(addr, d);
    }

    /// A node joining through `bootstrap`; `persistent` = `ephemeral: false`.
    pub fn add_node(&mut self, addr: SocketAddrV4, bootstrap: Vec<SocketAddrV4>, persistent: bool) {
        let config = HyperDhtConfig {
            rpc: Config {
                bootstrap,
                ephemeral: if persistent { Some(false) } else { None },
                firewalled: !persistent,
                ..Config::default()
            },
            ..HyperDhtConfig::default()
        };
        let seed = self.rng.bytes32();
        let unix = UNIX_MS + self.now.saturating_duration_since(self.start).as_millis() as u64;
        let d = HyperDht::new(config, addr.port(), self.now, unix, seed);
        self.insert(addr, d);
    }

    /// A bootstrapper and `n` persistent nodes, settled for 20 virtual seconds.
    pub fn network(seed: u64, n: u32) -> (Self, Vec<SocketAddrV4>) {
        let mut net = Self::new(seed);
        let boot = super::addr_of(0);
        net.add_bootstrapper(boot);
        let mut addrs = Vec::new();
        for i in 1..=n {
            let a = super::addr_of(i);
            net.add_node(a, vec![boot], true);
            addrs.push(a);
            net.run_for(Duration::from_millis(50));
        }
        net.run_for(Duration::from_secs(20));
        (net, addrs)
    }

    pub fn insert(&mut self, addr: SocketAddrV4, d: HyperDht) {
        self.nodes.insert(addr, Box::new(d));
        self.after(addr);
    }

    pub fn kill(&mut self, addr: SocketAddrV4) {
        self.nodes.remove(&addr);
    }

    /// Runs `f` on the node at `at` with the current time, then sends what it produced.
    pub fn with<T>(&mut self, at: SocketAddrV4, f: impl FnOnce(&mut HyperDht, Instant) -> T) -> T {
        let now = self.now;
        let node = self.nodes.get_mut(&at).expect("a node at this address");
        let out = f(node, now);
        self.after(at);
        out
    }

    fn after(&mut self, addr: SocketAddrV4) {
        let Some(node) = self.nodes.get_mut(&addr) else {
            return;
        };
        while let Some(t) = node.poll_transmit() {
            self.wire
                .send(SocketAddr::V4(addr), SocketAddr::V4(t.to), &t.payload);
        }
        while let Some(e) = node.poll_event() {
            match e {
                HyperEvent::Done { op, result } => {
                    self.done.insert((addr, op), result);
                }
                HyperEvent::Rpc(Event::Request(_)) => panic!("a request nobody registered"),
                other => self.events.push((addr, other)),
            }
        }
        if let Some(t) = node.poll_timeout() {
            self.timers.push(Reverse((t, addr)));
        }
    }

    /// Delivers a datagram as if `from` had sent it to `to` (for forged replies).
    pub fn inject(&mut self, from: SocketAddrV4, to: SocketAddrV4, bytes: &[u8]) {
        self.wire
            .send(SocketAddr::V4(from), SocketAddr::V4(to), bytes);
    }

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
                    self.after(to);
                }
            } else {
                let Some(Reverse((_, addr))) = self.timers.pop() else {
                    break;
                };
                let Some(node) = self.nodes.get_mut(&addr) else {
                    continue;
                };
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

    /// Runs until `op` at `at` ends; panics after `max` of virtual time.
    pub fn wait(
        &mut self,
        at: SocketAddrV4,
        op: OpId,
        max: Duration,
    ) -> Result<OpOutcome, OpError> {
        let deadline = self.now + max;
        while self.now < deadline {
            if let Some(r) = self.done.remove(&(at, op)) {
                return r;
            }
            let step = self.now + Duration::from_millis(10);
            self.run_until(step);
        }
        self.done
            .remove(&(at, op))
            .unwrap_or_else(|| panic!("operation {op:?} at {at} did not end"))
    }

    /// The events streamed for `op` at `at`, taken out of the log.
    pub fn take_events(&mut self, at: SocketAddrV4, op: OpId) -> Vec<HyperEvent> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.events)
            .into_iter()
            .partition(|(a, e)| {
                *a == at
                    && matches!(e,
                        HyperEvent::LookupReply { op: o, .. } | HyperEvent::PeerFound { op: o, .. }
                        if *o == op)
            });
        self.events = rest;
        mine.into_iter().map(|(_, e)| e).collect()
    }
}
