//! NAT boxes: sites whose hosts reach the rest of the network through a translating or
//! filtering router, modelled on what Linux conntrack does with `MASQUERADE` (consistent),
//! `MASQUERADE --random-fully` (port-randomising) and a stateful firewall without translation.
//!
//! A box owns one public address and a set of inside addresses. A datagram an inside host sends
//! to the outside creates (or refreshes) a *flow* `(inside address, remote address)` and leaves
//! with the flow's public source address; a datagram arriving from the outside at the public
//! address passes only when the box's [`Filtering`] finds a flow it belongs to, and is then
//! delivered to the flow's inside address. Flows expire after [`NatConfig::mapping_timeout`]
//! without traffic in either direction. Every random choice (port allocation) comes from the
//! network's seeded generator, and the tables are ordered maps, so a run replays from its seed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::Rng;

/// How a box chooses the public source address of a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Endpoint-independent ("consistent"): every flow of one inside address shares one public
    /// port, kept equal to the inside port when it is free (as `MASQUERADE` does).
    EndpointIndependent,
    /// Port-randomising ("random", `--random-fully`): every new flow, that is every new
    /// destination, gets a fresh random public port.
    PortRandomizing,
    /// No translation (a firewall only): the public address is the inside address itself.
    None,
}

/// Which inbound datagrams a box admits to a flow's inside address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filtering {
    /// Anything sent to a public address with a live flow (a "full cone").
    EndpointIndependent,
    /// Datagrams from a host (any port) the inside address has sent to.
    AddressDependent,
    /// Datagrams from exactly an address the inside address has sent to (conntrack's
    /// `ESTABLISHED`); the default.
    #[default]
    AddressAndPortDependent,
}

/// The behaviour of one NAT box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// How public addresses are chosen.
    pub mapping: Mapping,
    /// Which inbound datagrams pass.
    pub filtering: Filtering,
    /// Whether an inside host can reach another inside host through the box's public address
    /// (the datagram is translated and then filtered like any inbound one). Off: dropped.
    pub hairpin: bool,
    /// A flow expires after this long without a datagram in either direction.
    pub mapping_timeout: Duration,
    /// Most flows the box tracks at once; an inside host's new flow beyond it is dropped.
    pub max_flows: usize,
}

/// Linux conntrack's `nf_conntrack_udp_timeout` (seconds an unanswered UDP flow lives).
pub const DEFAULT_MAPPING_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`NatConfig::max_flows`]: room for a birthday punch (256 sockets) and a random-port
/// probe run (1,750 flows) many times over.
pub const DEFAULT_MAX_FLOWS: usize = 65_536;
/// Lowest public port a translating box hands out.
pub const FIRST_PORT: u16 = 1024;

impl NatConfig {
    fn with(mapping: Mapping) -> Self {
        NatConfig {
            mapping,
            filtering: Filtering::default(),
            hairpin: false,
            mapping_timeout: DEFAULT_MAPPING_TIMEOUT,
            max_flows: DEFAULT_MAX_FLOWS,
        }
    }
    /// Endpoint-independent mapping, address-and-port-dependent filtering, no hairpin.
    pub fn consistent() -> Self {
        Self::with(Mapping::EndpointIndependent)
    }
    /// Port-randomising mapping, address-and-port-dependent filtering, no hairpin.
    pub fn random() -> Self {
        Self::with(Mapping::PortRandomizing)
    }
    /// No translation; drops unsolicited inbound, admits replies to flows the inside opened.
    pub fn firewall() -> Self {
        Self::with(Mapping::None)
    }
    /// The same configuration with hairpinning on or off.
    pub fn hairpin(mut self, on: bool) -> Self {
        self.hairpin = on;
        self
    }
    /// The same configuration with another flow timeout.
    pub fn mapping_timeout(mut self, t: Duration) -> Self {
        self.mapping_timeout = t;
        self
    }
    /// The same configuration with another filter.
    pub fn filtering(mut self, f: Filtering) -> Self {
        self.filtering = f;
        self
    }
}

/// What a NAT box did, counted since it was added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Datagrams from inside hosts that left through the box.
    pub outbound: u64,
    /// Datagrams from the outside admitted to an inside host.
    pub inbound: u64,
    /// New flows created (each a new translation for a translating box).
    pub translations: u64,
    /// Inbound datagrams dropped because no flow admitted them.
    pub unsolicited_dropped: u64,
    /// Datagrams sent by an inside host to the box's own public address.
    pub hairpinned: u64,
    /// Of those, dropped because hairpinning is off.
    pub hairpin_dropped: u64,
    /// Flows that expired.
    pub expired: u64,
    /// New flows refused because the table held [`NatConfig::max_flows`].
    pub table_full_dropped: u64,
    /// Datagrams that reached the box with a TTL too low to be forwarded.
    pub ttl_expired: u64,
    /// Datagrams from outside addressed to an inside (private) address: not routable.
    pub unroutable: u64,
}

/// Handle of a NAT box in a [`crate::Net`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatId(pub(crate) usize);

#[derive(Debug, Clone, Copy)]
struct Flow {
    public: SocketAddr,
    last_used: Instant,
}

/// One box's state.
#[derive(Debug)]
pub(crate) struct NatBox {
    cfg: NatConfig,
    public: IpAddr,
    inside: BTreeSet<IpAddr>,
    /// `(inside, remote)` -> flow.
    flows: BTreeMap<(SocketAddr, SocketAddr), Flow>,
    /// `(public, remote)` -> inside, the inbound index of `flows`.
    inbound: BTreeMap<(SocketAddr, SocketAddr), SocketAddr>,
    /// Endpoint-independent bindings: inside -> (public, number of live flows).
    bindings: BTreeMap<SocketAddr, (SocketAddr, usize)>,
    /// Public addresses in use -> number of flows on them.
    ports: BTreeMap<SocketAddr, usize>,
    /// `(last_used, inside, remote)`, oldest first, for expiry.
    ages: BTreeSet<(Instant, SocketAddr, SocketAddr)>,
    pub(crate) counters: NatCounters,
}

/// What happened to an outbound datagram at its box.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outbound {
    /// Leaves with this source address and TTL.
    Forward(SocketAddr, u8),
    /// Dropped (counted).
    Drop,
}

const MIN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
const MAX_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(
        0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
    )),
    u16::MAX,
);

impl NatBox {
    pub(crate) fn new(public: IpAddr, inside: &[IpAddr], cfg: NatConfig) -> Self {
        let mut inside: BTreeSet<IpAddr> = inside.iter().copied().collect();
        if cfg.mapping == Mapping::None {
            // A firewall translates nothing: its hosts are their own public addresses.
            inside.insert(public);
        }
        NatBox {
            cfg,
            public,
            inside,
            flows: BTreeMap::new(),
            inbound: BTreeMap::new(),
            bindings: BTreeMap::new(),
            ports: BTreeMap::new(),
            ages: BTreeSet::new(),
            counters: NatCounters::default(),
        }
    }

    pub(crate) fn public(&self) -> IpAddr {
        self.public
    }

    pub(crate) fn inside(&self) -> impl Iterator<Item = &IpAddr> {
        self.inside.iter()
    }

    pub(crate) fn is_inside(&self, ip: IpAddr) -> bool {
        self.inside.contains(&ip)
    }

    /// Whether `ip` addresses the box from the outside (its public address, or for a firewall
    /// one of its hosts).
    pub(crate) fn is_public(&self, ip: IpAddr) -> bool {
        ip == self.public || (self.cfg.mapping == Mapping::None && self.inside.contains(&ip))
    }

    /// Whether datagrams to `ip` from outside the box cannot be routed (a private address).
    pub(crate) fn hides(&self, ip: IpAddr) -> bool {
        self.cfg.mapping != Mapping::None && self.inside.contains(&ip)
    }

    /// Live flows.
    pub(crate) fn flows(&self) -> usize {
        self.flows.len()
    }

    /// The public address of the flow `inside -> remote`, if live.
    pub(crate) fn public_of(&self, inside: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
        self.flows.get(&(inside, remote)).map(|f| f.public)
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.cfg.mapping_timeout;
        while let Some(&(at, inside, remote)) = self.ages.first() {
            if now.saturating_duration_since(at) < timeout {
                break;
            }
            self.ages.pop_first();
            self.remove_flow(inside, remote);
            self.counters.expired += 1;
        }
    }

    fn remove_flow(&mut self, inside: SocketAddr, remote: SocketAddr) {
        let Some(flow) = self.flows.remove(&(inside, remote)) else {
            return;
        };
        self.inbound.remove(&(flow.public, remote));
        if let Some(n) = self.ports.get_mut(&flow.public) {
            *n -= 1;
            if *n == 0 {
                self.ports.remove(&flow.public);
            }
        }
        if let Some((_, n)) = self.bindings.get_mut(&inside) {
            *n -= 1;
            if *n == 0 {
                self.bindings.remove(&inside);
            }
        }
    }

    fn touch(&mut self, inside: SocketAddr, remote: SocketAddr, now: Instant) {
        if let Some(f) = self.flows.get_mut(&(inside, remote)) {
            self.ages.remove(&(f.last_used, inside, remote));
            f.last_used = now;
            self.ages.insert((now, inside, remote));
        }
    }

    /// A free public port: `preferred` if free, else random draws, else a scan.
    fn allocate(&self, preferred: Option<u16>, rng: &mut Rng) -> Option<SocketAddr> {
        let free = |p: u16| !self.ports.contains_key(&SocketAddr::new(self.public, p));
        if let Some(p) = preferred.filter(|p| *p >= FIRST_PORT && free(*p)) {
            return Some(SocketAddr::new(self.public, p));
        }
        let span = u64::from(u16::MAX - FIRST_PORT) + 1;
        let draw = |rng: &mut Rng| FIRST_PORT + (rng.next_u64() % span) as u16;
        for _ in 0..64 {
            let p = draw(rng);
            if free(p) {
                return Some(SocketAddr::new(self.public, p));
            }
        }
        let start = u64::from(draw(rng) - FIRST_PORT);
        (0..span)
            .map(|i| FIRST_PORT + ((start + i) % span) as u16)
            .find(|p| free(*p))
            .map(|p| SocketAddr::new(self.public, p))
    }

    /// An inside host sends `from -> to` with `ttl`: translate, or drop.
    pub(crate) fn outbound(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        ttl: u8,
        now: Instant,
        rng: &mut Rng,
    ) -> Outbound {
        // The box is one hop: a datagram it would forward with TTL 0 dies here, before any
        // connection tracking (as in Linux, where the TTL check precedes POSTROUTING).
        if ttl <= 1 {
            self.counters.ttl_expired += 1;
            return Outbound::Drop;
        }
        if to.ip() == self.public {
            self.counters.hairpinned += 1;
            if !self.cfg.hairpin {
                self.counters.hairpin_dropped += 1;
                return Outbound::Drop;
            }
        }
        self.expire(now);
        if let Some(f) = self.flows.get(&(from, to)) {
            let public = f.public;
            self.touch(from, to, now);
            self.counters.outbound += 1;
            return Outbound::Forward(public, ttl - 1);
        }
        if self.flows.len() >= self.cfg.max_flows {
            self.counters.table_full_dropped += 1;
            return Outbound::Drop;
        }
        let public = match self.cfg.mapping {
            Mapping::None => Some(from),
            Mapping::EndpointIndependent => match self.bindings.get(&from) {
                Some((p, _)) => Some(*p),
                None => self.allocate(Some(from.port()), rng),
            },
            Mapping::PortRandomizing => self.allocate(None, rng),
        };
        let Some(public) = public else {
            self.counters.table_full_dropped += 1;
            return Outbound::Drop;
        };
        self.flows.insert(
            (from, to),
            Flow {
                public,
                last_used: now,
            },
        );
        self.inbound.insert((public, to), from);
        *self.ports.entry(public).or_insert(0) += 1;
        if self.cfg.mapping != Mapping::PortRandomizing {
            self.bindings.entry(from).or_insert((public, 0)).1 += 1;
        }
        self.ages.insert((now, from, to));
        self.counters.translations += 1;
        self.counters.outbound += 1;
        Outbound::Forward(public, ttl - 1)
    }

    /// A datagram from outside arrives at `to` (a public address of the box): the inside
    /// address it goes to, or `None` (dropped and counted).
    pub(crate) fn inbound(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        ttl: u8,
        now: Instant,
    ) -> Option<SocketAddr> {
        if ttl <= 1 {
            self.counters.ttl_expired += 1;
            return None;
        }
        self.expire(now);
        let found = match self.cfg.filtering {
            Filtering::AddressAndPortDependent => {
                self.inbound.get(&(to, from)).map(|inside| (*inside, from))
            }
            Filtering::AddressDependent => {
                let lo = SocketAddr::new(from.ip(), 0);
                let hi = SocketAddr::new(from.ip(), u16::MAX);
                self.inbound
                    .range((to, lo)..=(to, hi))
                    .next()
                    .map(|((_, r), inside)| (*inside, *r))
            }
            Filtering::EndpointIndependent => self
                .inbound
                .range((to, MIN_ADDR)..=(to, MAX_ADDR))
                .next()
                .map(|((_, r), inside)| (*inside, *r)),
        };
        match found {
            Some((inside, remote)) => {
                self.touch(inside, remote, now);
                self.counters.inbound += 1;
                Some(inside)
            }
            None => {
                self.counters.unsolicited_dropped += 1;
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "nat_tests.rs"]
mod tests;
