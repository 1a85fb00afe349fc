//! NAT classification of one holepunch socket, sans-IO (JS: `hyperdht/lib/nat.js`, class
//! `Nat`).
//!
//! The socket pings a few DHT nodes; each reply says from which address the node saw the
//! socket (its reflexive address). If every node saw the same port, the socket sits behind a
//! NAT (or firewall) with a consistent mapping; if every node saw another port, the NAT
//! randomises ports per destination. The rules and thresholds are JS's (`_updateFirewall`):
//!
//! - not firewalled (the DHT node found itself reachable): OPEN;
//! - fewer than 3 samples: no verdict (UNKNOWN);
//! - the most frequent address seen 3 or more times: CONSISTENT;
//! - every address seen once: RANDOM;
//! - the most frequent seen twice: RANDOM if all samples share one host and there are more
//!   than 3; CONSISTENT if two hosts were each seen at least twice (multi-homed); RANDOM once
//!   more than 4 samples arrived; else no verdict yet.
//!
//! The analysis resolves (JS resolves its `analyzing` promise) on an OPEN or CONSISTENT
//! verdict, or once [`MIN_SAMPLES`] samples arrived, or when the sampling pings ran out.
//!
//! Which nodes to ping mirrors `autoSample`: walk the routing table from the newest node,
//! skipping the [`SKIP_NEWEST`] newest when it holds at least [`SKIP_FROM_NODES`], until
//! [`MIN_SAMPLES`] pings are in flight or answered; when they all finish short of
//! [`MIN_SAMPLES`], walk once more (skipping nodes already visited), then give up.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::Firewall;

/// Samples the analysis wants (`_minSamples`).
pub const MIN_SAMPLES: usize = 4;
/// Newest routing-table nodes skipped when sampling (`skip = nodes.length >= 8 ? 5 : 0`)...
pub const SKIP_NEWEST: usize = 5;
/// ...when the table holds at least this many nodes.
pub const SKIP_FROM_NODES: usize = 8;
/// Bound on the candidate nodes kept for the two sampling walks (JS walks its whole routing
/// table but stops after [`MIN_SAMPLES`] pings in flight, so it never looks further than
/// [`SKIP_NEWEST`] plus two walks' worth of failed nodes in practice).
pub const MAX_CANDIDATES: usize = 32;
/// Bound on the distinct sample sources remembered (JS's `_visited` map is unbounded; sources
/// are the pinged nodes plus the relays that answered holepunch messages). Samples from
/// further sources are ignored.
pub const MAX_VISITED: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    host: Ipv4Addr,
    port: u16,
    hits: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// Pinged, no sample yet (JS value 1).
    Pinged,
    /// A sample was taken from this source (JS value 2).
    Sampled,
}

/// The classifier of one socket (`Nat`).
#[derive(Debug, Clone)]
pub struct NatAnalyzer {
    firewalled: bool,
    /// Reflexive hosts (port 0), most hits first (`_samplesHost`).
    samples_host: Vec<Sample>,
    /// Reflexive host:port pairs, most hits first (`_samplesFull`).
    samples_full: Vec<Sample>,
    visited: BTreeMap<SocketAddrV4, Visit>,
    sampled: usize,
    firewall: Firewall,
    addresses: Option<Vec<SocketAddrV4>>,
    frozen: bool,
    min_samples: usize,
    resolved: bool,
    // autoSample
    auto_sampling: bool,
    retry: bool,
    pending: usize,
    candidates: Vec<SocketAddrV4>,
    routing_table_len: usize,
}

impl NatAnalyzer {
    /// A fresh analysis. `firewalled` is the DHT node's view of itself (`dht.firewalled`).
    pub fn new(firewalled: bool) -> Self {
        NatAnalyzer {
            firewalled,
            samples_host: Vec::new(),
            samples_full: Vec::new(),
            visited: BTreeMap::new(),
            sampled: 0,
            firewall: if firewalled {
                Firewall::Unknown
            } else {
                Firewall::Open
            },
            addresses: None,
            frozen: false,
            min_samples: MIN_SAMPLES,
            resolved: false,
            auto_sampling: false,
            retry: true,
            pending: 0,
            candidates: Vec::new(),
            routing_table_len: 0,
        }
    }

    /// The current verdict.
    pub fn firewall(&self) -> Firewall {
        self.firewall
    }

    /// The addresses to advertise: every address seen twice or more (and at least the first
    /// two) when CONSISTENT, the host with port 0 when RANDOM, none otherwise.
    pub fn addresses(&self) -> Option<&[SocketAddrV4]> {
        self.addresses.as_deref()
    }

    /// Samples taken.
    pub fn sampled(&self) -> usize {
        self.sampled
    }

    /// Whether the analysis reached a conclusion or gave up (JS's `analyzing` resolved).
    pub fn is_resolved(&self) -> bool {
        self.resolved
    }

    /// Starts sampling (`autoSample`): `newest_first` are the routing table's nodes, newest
    /// first (at most [`MAX_CANDIDATES`] are kept), `table_len` the table's size. Returns the
    /// nodes to ping from this socket; report each outcome with [`NatAnalyzer::on_pong`] or
    /// [`NatAnalyzer::on_ping_failed`].
    pub fn start_sampling(
        &mut self,
        newest_first: &[SocketAddrV4],
        table_len: usize,
    ) -> Vec<SocketAddrV4> {
        self.candidates = newest_first.iter().take(MAX_CANDIDATES).copied().collect();
        self.routing_table_len = table_len;
        self.auto_sample()
    }

    fn auto_sample(&mut self) -> Vec<SocketAddrV4> {
        let mut out = Vec::new();
        if self.auto_sampling {
            return out;
        }
        self.auto_sampling = true;
        let mut skip = if self.routing_table_len >= SKIP_FROM_NODES {
            SKIP_NEWEST
        } else {
            0
        };
        for node in &self.candidates {
            if self.sampled + self.pending >= self.min_samples {
                break;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.visited.contains_key(node) || self.visited.len() >= MAX_VISITED {
                continue;
            }
            self.visited.insert(*node, Visit::Pinged);
            self.pending += 1;
            out.push(*node);
        }
        // JS counts one extra pending and settles it at once, so an empty walk finishes.
        self.pending += 1;
        out.extend(self.on_skip());
        out
    }

    fn on_skip(&mut self) -> Vec<SocketAddrV4> {
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 && self.sampled < self.min_samples {
            if self.retry {
                self.retry = false;
                self.auto_sampling = false;
                return self.auto_sample();
            }
            self.resolved = true;
        }
        Vec::new()
    }

    /// A sampling ping from this socket was answered: `to` is the socket's address as `from`
    /// saw it. Returns further nodes to ping.
    pub fn on_pong(&mut self, to: SocketAddrV4, from: SocketAddrV4) -> Vec<SocketAddrV4> {
        self.add(to, from);
        if self.pending == 0 {
            return Vec::new(); // not one of ours, or sampling is over
        }
        self.on_skip()
    }

    /// A sampling ping failed. Returns further nodes to ping.
    pub fn on_ping_failed(&mut self) -> Vec<SocketAddrV4> {
        if self.pending == 0 {
            return Vec::new();
        }
        self.on_skip()
    }

    /// Stops the analysis (`destroy`): it counts as resolved.
    pub fn destroy(&mut self) {
        self.auto_sampling = true;
        self.min_samples = 0;
        self.pending = 0;
        self.resolved = true;
    }

    /// Stops updating the verdict (`freeze`), as once it was told to the other peer.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Resumes updating the verdict (`unfreeze`).
    pub fn unfreeze(&mut self) {
        self.frozen = false;
        self.update_firewall();
        self.update_addresses();
    }

    /// The DHT node changed its view of itself (`dht.firewalled`); re-derives the verdict
    /// (`update`).
    pub fn set_firewalled(&mut self, firewalled: bool) {
        self.firewalled = firewalled;
        if self.firewalled && self.firewall == Firewall::Open {
            self.firewall = Firewall::Unknown;
        }
        self.update_firewall();
        self.update_addresses();
    }

    /// A sample: `from` (a DHT node or relay) saw this socket as `addr` (`add`). One sample per
    /// source.
    pub fn add(&mut self, addr: SocketAddrV4, from: SocketAddrV4) {
        match self.visited.get(&from) {
            Some(Visit::Sampled) => return,
            None if self.visited.len() >= MAX_VISITED => return,
            _ => {}
        }
        self.visited.insert(from, Visit::Sampled);
        add_sample(&mut self.samples_host, *addr.ip(), 0);
        add_sample(&mut self.samples_full, *addr.ip(), addr.port());
        self.sampled += 1;
        if (self.sampled >= 3 || !self.firewalled) && !self.frozen {
            if self.firewalled && self.firewall == Firewall::Open {
                self.firewall = Firewall::Unknown;
            }
            self.update_firewall();
            self.update_addresses();
        }
        if matches!(self.firewall, Firewall::Consistent | Firewall::Open)
            || self.sampled >= self.min_samples
        {
            self.resolved = true;
        }
    }

    fn update_firewall(&mut self) {
        if !self.firewalled {
            self.firewall = Firewall::Open;
            return;
        }
        if self.sampled < 3 {
            return;
        }
        let Some(top) = self.samples_full.first() else {
            return;
        };
        let max = top.hits;
        if max >= 3 {
            self.firewall = Firewall::Consistent;
            return;
        }
        if max == 1 {
            self.firewall = Firewall::Random;
            return;
        }
        // max == 2
        if self.samples_host.len() == 1 && self.sampled > 3 {
            self.firewall = Firewall::Random;
            return;
        }
        if self.samples_host.len() > 1 && self.samples_full.get(1).is_some_and(|s| s.hits > 1) {
            self.firewall = Firewall::Consistent;
            return;
        }
        if self.sampled > 4 {
            self.firewall = Firewall::Random;
        }
    }

    fn update_addresses(&mut self) {
        self.addresses = match self.firewall {
            Firewall::Unknown => None,
            Firewall::Random => self
                .samples_host
                .first()
                .map(|s| vec![SocketAddrV4::new(s.host, 0)]),
            Firewall::Consistent => {
                let mut out = Vec::new();
                for s in &self.samples_full {
                    if s.hits >= 2 || out.len() < 2 {
                        out.push(SocketAddrV4::new(s.host, s.port));
                    }
                }
                Some(out)
            }
            // JS leaves the addresses as they were for OPEN.
            Firewall::Open => self.addresses.take(),
        };
    }
}

/// Counts one more hit of `host:port`, keeping the list sorted by hits, most first, and
/// stable among equals (`addSample`).
fn add_sample(samples: &mut Vec<Sample>, host: Ipv4Addr, port: u16) {
    if let Some(mut i) = samples
        .iter()
        .position(|s| s.host == host && s.port == port)
    {
        if let Some(s) = samples.get_mut(i) {
            s.hits += 1;
        }
        while i > 0 {
            let (Some(prev), Some(cur)) = (samples.get(i - 1), samples.get(i)) else {
                break;
            };
            if prev.hits >= cur.hits {
                break;
            }
            samples.swap(i - 1, i);
            i -= 1;
        }
        return;
    }
    samples.push(Sample {
        host,
        port,
        hits: 1,
    });
}

#[cfg(test)]
#[path = "nat_tests.rs"]
mod tests;
