//! Bootstrap, the 5-s maintenance tick, liveness checks, and the ephemeral → persistent
//! transition with its firewall check (`dht-rpc/index.js` `_bootstrap`, `_ontick`,
//! `_pingSome`, `_check`, `_updateNetworkState`, `_checkIfFirewalled`).
//!
//! Contract: `Maintenance` owns the schedule and the counters (tick, refresh and stable
//! countdowns, concurrent checks and re-pings, the DOWN_HINT budget, bootstrap progress, the
//! running firewall check, network health) behind narrow methods; the node's side below asks
//! it what is due and sends the requests. `now` is passed in, nothing here does I/O.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use super::api::{Event, QueryId, Reply};
use super::health::{Health, NetworkState};
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

/// The maintenance schedule and counters (`dht-rpc/index.js` `_tick`, `_refreshTicks`,
/// `_stableTicks`, `_lastHost`, `_repinging`, `_checks`, `_downHintsSent`, `_bootstrap`).
#[derive(Debug, Clone)]
pub(crate) struct Maintenance {
    tick: u64,
    refresh_ticks: i64,
    stable_ticks: i64,
    last_host: Option<Option<Ipv4Addr>>,
    repinging: u32,
    checks: u32,
    down_hints_sent: u32,
    boot: BootState,
    net_check: Option<NetCheck>,
    health: Health,
}

impl Maintenance {
    /// `tick` and `refresh_ticks` start at JS's random offsets; an adaptive node waits
    /// `STABLE_TICKS` before its first persistence check.
    pub(crate) fn new(tick: u64, refresh_ticks: i64, adaptive: bool) -> Self {
        Self {
            tick,
            refresh_ticks,
            stable_ticks: if adaptive { STABLE_TICKS } else { 0 },
            last_host: None,
            repinging: 0,
            checks: 0,
            down_hints_sent: 0,
            boot: BootState::default(),
            net_check: None,
            health: Health::default(),
        }
    }

    /// The current tick (table entries remember when they were added, pinged and seen in it).
    pub(crate) fn tick(&self) -> u64 {
        self.tick
    }

    /// A query ran: the next idle refresh is `REFRESH_TICKS` away.
    pub(crate) fn touch_refresh(&mut self) {
        self.refresh_ticks = REFRESH_TICKS;
    }

    /// Spends one DOWN_HINT of this tick's budget (`downHintsRateLimit`; `None` = unlimited).
    pub(crate) fn take_down_hint(&mut self, limit: Option<u32>) -> bool {
        if limit.is_some_and(|l| self.down_hints_sent >= l) {
            return false;
        }
        self.down_hints_sent += 1;
        true
    }

    /// Room for one more DOWN_HINT-triggered check (`_checks < 10`).
    pub(crate) fn can_check(&self) -> bool {
        self.checks < MAX_CHECKS
    }

    pub(crate) fn check_started(&mut self) {
        self.checks += 1;
    }

    pub(crate) fn check_ended(&mut self) {
        self.checks = self.checks.saturating_sub(1);
    }

    /// Room for one more full-row re-ping (`_repinging < 3`).
    pub(crate) fn can_reping(&self) -> bool {
        self.repinging < MAX_REPINGING
    }

    pub(crate) fn reping_started(&mut self) {
        self.repinging += 1;
    }

    pub(crate) fn reping_ended(&mut self) {
        self.repinging = self.repinging.saturating_sub(1);
    }

    /// The quick firewall PING_NAT of the bootstrap came back.
    pub(crate) fn quick_firewall_answered(&mut self) {
        self.boot.test_nat = true;
    }

    /// `_onwakeup`'s bookkeeping; returns the new network state when it changed.
    fn wakeup(&mut self) -> Option<NetworkState> {
        self.tick += 2 * OLD_NODE;
        self.tick = self.tick + 6 - (self.tick & 7);
        self.stable_ticks = MORE_STABLE_TICKS;
        self.refresh_ticks = 1;
        self.last_host = None;
        let before = self.health.state();
        self.health.reset();
        (before != self.health.state()).then(|| self.health.state())
    }

    /// An adaptive ephemeral node's stable countdown; true when a persistence check is due
    /// (the host changed since the last one).
    fn stable_check_due(&mut self, host: Option<Ipv4Addr>) -> bool {
        self.stable_ticks -= 1;
        if self.stable_ticks > 0 {
            return false;
        }
        if self.last_host == Some(host) {
            self.stable_ticks = MORE_STABLE_TICKS;
            return false;
        }
        true
    }

    /// Every 8th tick the oldest members are pinged.
    fn ping_due(&self) -> bool {
        self.tick & 7 == 0
    }

    /// A refresh is due every 64th tick while the table is small, otherwise after
    /// `REFRESH_TICKS` idle ticks. JS short-circuits: the countdown only moves when the first
    /// condition is false.
    fn refresh_due(&mut self, small_table: bool) -> bool {
        if self.tick & 63 == 0 && small_table {
            return true;
        }
        self.refresh_ticks -= 1;
        self.refresh_ticks <= 0
    }

    /// The end of a tick: a new DOWN_HINT budget and a health sample; returns the new network
    /// state when it changed.
    fn end_tick(&mut self, responses: u64, timeouts: u64) -> Option<NetworkState> {
        self.down_hints_sent = 0;
        let before = self.health.state();
        let after = self.health.update(responses, timeouts);
        (before != after).then_some(after)
    }
}

impl Node {
    /// Starts a bootstrap round (`_backgroundQuery(table.id)`).
    pub(crate) fn start_boot_round(&mut self, now: Instant) {
        if self.maintenance.boot.round == 0 {
            self.maintenance.boot.first =
                self.firewalled && self.config.quick_firewall && !self.force_persistent;
        }
        let target = *self.table.id();
        let q = self.background_query(now, target, QueryKind::Bootstrap);
        self.maintenance.boot.query = q;
        if q.is_none() {
            self.finish_boot();
        }
    }

    /// A bootstrap query reply with error 0 (`ondata` in `_bootstrap`).
    pub(crate) fn boot_on_data(&mut self, now: Instant, from: SocketAddrV4) {
        if !self.maintenance.boot.first {
            return;
        }
        self.maintenance.boot.first = false;
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
        self.maintenance.boot.query = None;
        if self.bootstrapped || (!self.maintenance.boot.test_nat && !self.force_persistent) {
            self.finish_boot();
            return;
        }
        let only_firewall = !self.force_persistent;
        match self.update_network_state(now, only_firewall, CheckPurpose::Boot) {
            Some(true) => self.boot_next_round(now),
            Some(false) => self.finish_boot(),
            None => self.maintenance.boot.checking = true,
        }
    }

    fn boot_next_round(&mut self, now: Instant) {
        self.maintenance.boot.round += 1;
        if self.maintenance.boot.round >= 2 || self.bootstrapped {
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
        self.maintenance.touch_refresh();
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
        if let Some(state) = self.maintenance.wakeup() {
            self.emit(Event::NetworkUpdate(state));
        }
        if self.adaptive && !self.ephemeral {
            self.ephemeral = true;
            self.emit(Event::Ephemeral);
        }
    }

    /// `_ontick` (every 5 s). `advance` is false right after a wakeup (which moved the tick).
    pub(crate) fn on_tick(&mut self, now: Instant, advance: bool) {
        if advance {
            self.maintenance.tick += 1;
        }
        if !self.bootstrapped {
            return;
        }
        if self.adaptive && self.ephemeral && self.maintenance.stable_check_due(self.nat.host) {
            self.update_network_state(now, false, CheckPurpose::Stable);
        }
        if self.maintenance.ping_due() {
            self.ping_some(now);
        }
        if self
            .maintenance
            .refresh_due(self.table.len() < self.table.k())
        {
            self.refresh(now);
        }
        if let Some(state) = self
            .maintenance
            .end_tick(self.stats.responses, self.stats.timeouts)
        {
            self.emit(Event::NetworkUpdate(state));
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
        let tick = self.maintenance.tick();
        if tick.saturating_sub(first.1) < RECENT_NODE {
            cnt = 2;
        }
        for (id, pinged) in oldest.into_iter().take(cnt) {
            // JS `continue`s without advancing, so the first node pinged this tick ends the walk.
            if pinged == tick {
                break;
            }
            self.check(now, id);
        }
    }

    /// `_check`: ping a member; drop it if it fails or stays silent.
    pub(crate) fn check(&mut self, now: Instant, id: NodeId) {
        let tick = self.maintenance.tick();
        let Some(n) = self.table.get_mut(&id) else {
            return;
        };
        n.pinged = tick;
        let (addr, last_seen) = (n.addr, n.seen);
        self.maintenance.check_started();
        if !self.internal_request(
            now,
            addr,
            InternalCommand::Ping,
            None,
            Owner::Check { id, last_seen },
        ) {
            self.maintenance.check_ended();
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
            self.maintenance.stable_ticks = MORE_STABLE_TICKS;
            self.maintenance.last_host = Some(host);
        }
        let Some(host) = host else { return Some(false) };
        if port == 0 {
            return Some(false);
        }
        if !self.firewalled {
            return Some(self.finish_network_state(now, only_firewall, host, port, None));
        }
        if self.maintenance.net_check.is_some() {
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
        self.maintenance.net_check = Some(NetCheck {
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
        let Some(c) = self.maintenance.net_check.as_mut() else {
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
        let Some(c) = self.maintenance.net_check.take() else {
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
                if self.maintenance.boot.checking {
                    self.maintenance.boot.checking = false;
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
