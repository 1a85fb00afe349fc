//! Bootstrap, the 5-s maintenance tick, liveness checks, and the ephemeral → persistent
//! transition with its firewall check (`dht-rpc/index.js` `_bootstrap`, `_ontick`,
//! `_pingSome`, `_check`, `_updateNetworkState`, `_checkIfFirewalled`).
//!
//! Contract: methods of the sans-IO [`Node`]; `now` is passed in, nothing here does I/O.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use super::api::{Event, QueryId, Reply};
use super::nat_sampler::NatSampler;
use super::node::Node;
use super::query::{QueryKind, QueryOpts};
use super::requests::Owner;
use super::routing::NodeId;
use super::wire::InternalCommand;
use crate::crypto::node_id;

/// ~20 min of ticks before an adaptive node checks whether it can be persistent (`STABLE_TICKS`).
pub const STABLE_TICKS: i64 = 240;
/// Wait after a check of the same network (`MORE_STABLE_TICKS` = 3 × 240).
pub const MORE_STABLE_TICKS: i64 = 3 * STABLE_TICKS;
/// Idle ticks between refreshes (`REFRESH_TICKS` = 60, ~5 min).
pub const REFRESH_TICKS: i64 = 60;
/// Heard from within this many ticks = recent (`RECENT_NODE` = 12, 1 min).
pub const RECENT_NODE: u64 = 12;
/// Older than this many ticks = old (`OLD_NODE` = 360, 30 min).
pub const OLD_NODE: u64 = 360;
/// Concurrent full-row re-pings (`_repinging < 3`).
pub const MAX_REPINGING: u32 = 3;
/// Concurrent DOWN_HINT-triggered checks (`_checks < 10`).
pub const MAX_CHECKS: u32 = 10;
/// Nodes asked in a firewall check (`nodes.length < 5`).
pub const FIREWALL_CHECK_NODES: usize = 5;

/// Progress of `_bootstrap`.
#[derive(Debug, Clone, Default)]
pub(crate) struct BootState {
    pub round: u8,
    pub query: Option<QueryId>,
    /// The quick firewall PING_NAT is still to be sent on the first reply.
    pub first: bool,
    /// The quick PING_NAT came back.
    pub test_nat: bool,
    /// Waiting for a network-state check started by the bootstrap.
    pub checking: bool,
}

/// Why a network-state check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckPurpose {
    Boot,
    Stable,
}

/// A running `_checkIfFirewalled` (inside `_updateNetworkState`).
#[derive(Debug, Clone)]
pub(crate) struct NetCheck {
    only_firewall: bool,
    host: Ipv4Addr,
    port: u16,
    asked: usize,
    outstanding: usize,
    sampler: NatSampler,
    count: usize,
    purpose: CheckPurpose,
}

impl Node {
    /// Starts a bootstrap round (`_backgroundQuery(table.id)`).
    pub(crate) fn start_boot_round(&mut self, now: Instant) {
        if self.boot.round == 0 {
            self.boot.first =
                self.firewalled && self.config.quick_firewall && !self.force_persistent;
        }
        let target = *self.table.id();
        let q = self.background_query(now, target, QueryKind::Bootstrap);
        self.boot.query = q;
        if q.is_none() {
            self.finish_boot();
        }
    }

    /// A bootstrap query reply with error 0 (`ondata` in `_bootstrap`).
    pub(crate) fn boot_on_data(&mut self, now: Instant, from: SocketAddrV4) {
        if !self.boot.first {
            return;
        }
        self.boot.first = false;
        let value = self.local_port.to_le_bytes().to_vec();
        self.internal_request(
            now,
            from,
            InternalCommand::PingNat,
            Some(value),
            Owner::QuickFirewall,
        );
    }

    /// A bootstrap round's query ended.
    pub(crate) fn boot_after_round(&mut self, now: Instant) {
        self.boot.query = None;
        if self.bootstrapped || (!self.boot.test_nat && !self.force_persistent) {
            self.finish_boot();
            return;
        }
        let only_firewall = !self.force_persistent;
        match self.update_network_state(now, only_firewall, CheckPurpose::Boot) {
            Some(true) => self.boot_next_round(now),
            Some(false) => self.finish_boot(),
            None => self.boot.checking = true,
        }
    }

    fn boot_next_round(&mut self, now: Instant) {
        self.boot.round += 1;
        if self.boot.round >= 2 || self.bootstrapped {
            self.finish_boot();
        } else {
            self.start_boot_round(now);
        }
    }

    fn finish_boot(&mut self) {
        if self.bootstrapped {
            return;
        }
        self.bootstrapped = true;
        self.emit(Event::Ready);
    }

    /// `_backgroundQuery`: FIND_NODE at concurrency `min(c, max(2, c / 8))`, rising to `c`
    /// while little else is in flight.
    pub(crate) fn background_query(
        &mut self,
        now: Instant,
        target: NodeId,
        kind: QueryKind,
    ) -> Option<QueryId> {
        self.refresh_ticks = REFRESH_TICKS;
        let c = self.config.concurrency;
        let bg = c.min((c / 8).max(2));
        let opts = QueryOpts {
            internal: true,
            command: InternalCommand::FindNode.to_u64(),
            concurrency: Some(bg),
            ..QueryOpts::new(target)
        };
        self.start_query(now, opts, kind, Some(bg))
    }

    /// `refresh()`: a background query for a random member's id (or our own).
    pub fn refresh(&mut self, now: Instant) {
        let n = self.table.len();
        let target = if n == 0 {
            *self.table.id()
        } else {
            let i = (self.random() % n as u64) as usize;
            self.table.nth(i).map(|x| x.id).unwrap_or(*self.table.id())
        };
        self.background_query(now, target, QueryKind::Refresh);
    }

    /// `_onwakeup`.
    pub(crate) fn on_wakeup(&mut self) {
        self.tick += 2 * OLD_NODE;
        self.tick = self.tick + 6 - (self.tick & 7);
        self.stable_ticks = MORE_STABLE_TICKS;
        self.refresh_ticks = 1;
        self.last_host = None;
        let before = self.health.state();
        self.health.reset();
        if before != self.health.state() {
            self.emit(Event::NetworkUpdate(self.health.state()));
        }
        if self.adaptive && !self.ephemeral {
            self.ephemeral = true;
            self.emit(Event::Ephemeral);
        }
    }

    /// `_ontick` (every 5 s). `advance` is false right after a wakeup (which moved the tick).
    pub(crate) fn on_tick(&mut self, now: Instant, advance: bool) {
        if advance {
            self.tick += 1;
        }
        if !self.bootstrapped {
            return;
        }
        if self.adaptive && self.ephemeral {
            self.stable_ticks -= 1;
            if self.stable_ticks <= 0 {
                if self.last_host == Some(self.nat.host) {
                    self.stable_ticks = MORE_STABLE_TICKS;
                } else {
                    self.update_network_state(now, false, CheckPurpose::Stable);
                }
            }
        }
        if self.tick & 7 == 0 {
            self.ping_some(now);
        }
        // JS short-circuits: `--_refreshTicks` only runs when the first condition is false.
        let small_table_refresh = self.tick & 63 == 0 && self.table.len() < self.table.k();
        if small_table_refresh || {
            self.refresh_ticks -= 1;
            self.refresh_ticks <= 0
        } {
            self.refresh(now);
        }
        self.down_hints_sent = 0;
        let before = self.health.state();
        let after = self
            .health
            .update(self.stats.responses, self.stats.timeouts);
        if before != after {
            self.emit(Event::NetworkUpdate(after));
        }
    }

    /// `_pingSome`: check the oldest few members.
    fn ping_some(&mut self, now: Instant) {
        let mut cnt = if self.requests.len() > 2 { 3 } else { 5 };
        let oldest: Vec<(NodeId, u64)> = self
            .table
            .oldest_first()
            .iter()
            .take(5)
            .map(|n| (n.id, n.pinged))
            .collect();
        let Some(first) = oldest.first() else {
            self.refresh(now);
            return;
        };
        if self.tick.saturating_sub(first.1) < RECENT_NODE {
            cnt = 2;
        }
        for (id, pinged) in oldest.into_iter().take(cnt) {
            // JS `continue`s without advancing, so the first node pinged this tick ends the walk.
            if pinged == self.tick {
                break;
            }
            self.check(now, id);
        }
    }

    /// `_check`: ping a member; drop it if it fails or stays silent.
    pub(crate) fn check(&mut self, now: Instant, id: NodeId) {
        let tick = self.tick;
        let Some(n) = self.table.get_mut(&id) else {
            return;
        };
        n.pinged = tick;
        let (addr, last_seen) = (n.addr, n.seen);
        self.checks += 1;
        if !self.internal_request(
            now,
            addr,
            InternalCommand::Ping,
            None,
            Owner::Check { id, last_seen },
        ) {
            self.checks = self.checks.saturating_sub(1);
        }
    }

    /// `_updateNetworkState`. `Some(result)` when decided at once, `None` while a firewall
    /// check runs (its end calls back into the purpose).
    pub(crate) fn update_network_state(
        &mut self,
        now: Instant,
        only_firewall: bool,
        purpose: CheckPurpose,
    ) -> Option<bool> {
        if !self.ephemeral {
            return Some(false);
        }
        if only_firewall && !self.firewalled {
            return Some(false);
        }
        let (host, port) = (self.nat.host, self.nat.port);
        if !only_firewall {
            self.stable_ticks = MORE_STABLE_TICKS;
            self.last_host = Some(host);
        }
        let Some(host) = host else { return Some(false) };
        if port == 0 {
            return Some(false);
        }
        if !self.firewalled {
            return Some(self.finish_network_state(now, only_firewall, host, port, None));
        }
        if self.net_check.is_some() {
            // One check at a time (JS may run them in parallel; the outcome is the same).
            return Some(false);
        }
        // `_checkIfFirewalled`
        let mut nodes: Vec<SocketAddrV4> = self
            .table
            .latest_first()
            .iter()
            .take(FIREWALL_CHECK_NODES)
            .map(|n| n.addr)
            .collect();
        if nodes.len() < FIREWALL_CHECK_NODES {
            nodes.extend(self.config.bootstrap.iter().copied());
        }
        if nodes.is_empty() {
            return Some(false);
        }
        let value = self.local_port.to_le_bytes().to_vec();
        let mut sent = 0;
        for addr in &nodes {
            if self.internal_request(
                now,
                *addr,
                InternalCommand::PingNat,
                Some(value.clone()),
                Owner::FirewallCheck,
            ) {
                sent += 1;
            } else {
                break;
            }
        }
        if sent == 0 {
            return Some(false);
        }
        self.net_check = Some(NetCheck {
            only_firewall,
            host,
            port,
            asked: nodes.len(),
            outstanding: sent,
            sampler: NatSampler::new(),
            count: 0,
            purpose,
        });
        None
    }

    /// A PING_NAT of the firewall check answered (`Some`) or failed (`None`).
    pub(crate) fn net_check_reply(&mut self, now: Instant, reply: Option<Reply>) {
        let Some(c) = self.net_check.as_mut() else {
            return;
        };
        if let Some(r) = reply {
            // One socket: every reply arrived on the socket under test.
            c.count += 1;
            c.sampler.add(*r.to.ip(), r.to.port());
        }
        c.outstanding = c.outstanding.saturating_sub(1);
        if c.outstanding > 0 {
            return;
        }
        let Some(c) = self.net_check.take() else {
            return;
        };
        let need = if c.asked >= FIREWALL_CHECK_NODES {
            3
        } else {
            1
        };
        let firewalled = c.count < need
            || c.sampler.host.is_none()
            || self.nat.host != c.sampler.host
            || c.sampler.port == 0
            || c.sampler.port != self.local_port;
        let ok = !firewalled
            && self.finish_network_state(now, c.only_firewall, c.host, c.port, Some(c.sampler));
        match c.purpose {
            CheckPurpose::Stable => {}
            CheckPurpose::Boot => {
                if self.boot.checking {
                    self.boot.checking = false;
                    if ok {
                        self.boot_next_round(now);
                    } else {
                        self.finish_boot();
                    }
                }
            }
        }
    }

    /// The tail of `_updateNetworkState` once the node is known not to be firewalled.
    fn finish_network_state(
        &mut self,
        now: Instant,
        only_firewall: bool,
        host: Ipv4Addr,
        port: u16,
        sampler: Option<NatSampler>,
    ) -> bool {
        self.firewalled = false;
        if !self.ephemeral || Some(host) != self.nat.host || port != self.nat.port {
            return false;
        }
        let (s_host, s_port) = match &sampler {
            Some(s) => (s.host, s.port),
            None => (self.nat.host, self.nat.port),
        };
        let Some(s_host) = s_host.filter(|h| *h == host) else {
            return false;
        };
        if s_port == 0 {
            return false;
        }
        let id = node_id(&SocketAddrV4::new(s_host, s_port));
        if !only_firewall {
            self.ephemeral = false;
        }
        if let Some(s) = sampler {
            let prev = (self.nat.host, self.nat.port);
            self.non_persistent_samples.clear();
            self.nat = s;
            if prev != (self.nat.host, self.nat.port) {
                let (host, port) = (self.nat.host, self.nat.port);
                self.emit_remote(Event::NatUpdate { host, port });
            }
        }
        if *self.table.id() != id {
            self.table = self.table.recentre(id);
            if self.bootstrapped {
                self.refresh(now);
            }
        }
        if !self.ephemeral {
            self.emit(Event::Persistent { id });
        }
        true
    }
}
