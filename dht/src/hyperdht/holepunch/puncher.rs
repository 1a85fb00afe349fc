//! One connection attempt's puncher, either side (JS: `hyperdht/lib/holepuncher.js`, class
//! `Holepuncher`): its sockets, its NAT analysis (replacing an unstable socket up to
//! [`MAX_REOPENS`] times, `_reopen`), the remote's state (`updateRemote`) and the punch
//! strategies run on timers (`_consistentProbe`, `_randomProbes`, `_openBirthdaySockets`,
//! `_keepAliveRandomNat`).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::{
    Action, BIRTHDAY_SETTLE, BIRTHDAY_SOCKETS, CONSISTENT_INTERVAL, CONSISTENT_TRIES, DEFAULT_TTL,
    Event, HOLEPUNCH_TTL, HolepunchError, MAX_QUEUED_ACTIONS, MAX_REMOTE_ADDRESSES, MAX_REOPENS,
    PROBE_INTERVAL, PunchStrategy, RANDOM_PORT_MIN, RANDOM_PROBES, RandomPunches, RemoteAddress,
    Sampling, SocketId, UNVERIFIED_EVERY,
};
use crate::hyperdht::Firewall;
use crate::hyperdht::nat::NatAnalyzer;

/// The strategy running, with its loop state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    /// `_consistentProbe`: rounds done so far.
    Consistent { tries: u32 },
    /// `_randomProbes`: probes left, to random ports of `host`.
    Random { left: u32, host: Ipv4Addr },
    /// `_keepAliveRandomNat` after `_openBirthdaySockets`: probes left, the next socket of
    /// the cycle, low-TTL cycles left, the remote's verified address.
    Birthday {
        left: u32,
        next: usize,
        low_ttl_rounds: u32,
        remote: SocketAddrV4,
    },
}

/// Where `_reopen` stands (JS keeps its promise, so it runs once per puncher).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    Idle,
    Running { done: usize },
    Finished(bool),
}

/// Whether a remote firewall number means RANDOM (JS compares `>= FIREWALL.RANDOM`, so
/// unknown larger values count too).
pub(crate) fn remote_is_random(fw: u64) -> bool {
    fw >= Firewall::Random.to_u64()
}

/// OPEN counts as CONSISTENT (`coerceFirewall`).
fn coerce(fw: u64) -> u64 {
    if fw == Firewall::Open.to_u64() {
        Firewall::Consistent.to_u64()
    } else {
        fw
    }
}

/// One connection attempt's puncher (`Holepuncher`).
#[derive(Debug)]
pub(crate) struct Puncher {
    initiator: bool,
    rng: ChaCha20Rng,
    sampling: Sampling,
    nat: NatAnalyzer,
    /// Sockets held, the current one first ([`BIRTHDAY_SOCKETS`] at most).
    sockets: Vec<SocketId>,
    next_socket: u32,
    remote_firewall: u64,
    remote_addresses: Vec<RemoteAddress>,
    remote_holepunching: bool,
    punching: bool,
    punch_result: Option<bool>,
    connected: bool,
    destroyed: bool,
    randomized: bool,
    reopen: Reopen,
    running: Option<(Running, Instant)>,
    strategy: Option<PunchStrategy>,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) events: VecDeque<Event>,
}

impl Puncher {
    pub(crate) fn new(
        initiator: bool,
        remote_firewall: u64,
        sampling: Sampling,
        seed: [u8; 32],
    ) -> Self {
        let mut p = Puncher {
            initiator,
            rng: ChaCha20Rng::from_seed(seed),
            nat: NatAnalyzer::new(sampling.firewalled),
            sampling,
            sockets: Vec::new(),
            next_socket: 0,
            remote_firewall,
            remote_addresses: Vec::new(),
            remote_holepunching: false,
            punching: false,
            punch_result: None,
            connected: false,
            destroyed: false,
            randomized: false,
            reopen: Reopen::Idle,
            running: None,
            strategy: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        let s = p.bind();
        p.sockets.push(s);
        p.start_sampling();
        p
    }

    fn bind(&mut self) -> SocketId {
        let s = SocketId(self.next_socket);
        self.next_socket = self.next_socket.wrapping_add(1);
        self.actions.push_back(Action::Bind(s));
        s
    }

    fn start_sampling(&mut self) {
        let socket = self.socket();
        let pings = self
            .nat
            .start_sampling(&self.sampling.newest_first, self.sampling.table_len);
        self.push_pings(socket, pings);
    }

    fn push_pings(&mut self, socket: SocketId, nodes: Vec<SocketAddrV4>) {
        for node in nodes {
            self.actions.push_back(Action::Ping { socket, node });
        }
    }

    /// The current socket (`socket`).
    pub(crate) fn socket(&self) -> SocketId {
        self.sockets.first().copied().unwrap_or(SocketId(0))
    }

    pub(crate) fn owns(&self, socket: SocketId) -> bool {
        self.sockets.contains(&socket)
    }

    pub(crate) fn nat(&self) -> &NatAnalyzer {
        &self.nat
    }

    pub(crate) fn nat_mut(&mut self) -> &mut NatAnalyzer {
        &mut self.nat
    }

    pub(crate) fn remote_firewall(&self) -> u64 {
        self.remote_firewall
    }

    /// The strategy running or last run; `ProbeRound` before any.
    pub(crate) fn strategy(&self) -> PunchStrategy {
        self.strategy.unwrap_or(PunchStrategy::ProbeRound)
    }

    pub(crate) fn remote_holepunching(&self) -> bool {
        self.remote_holepunching
    }

    pub(crate) fn punching(&self) -> bool {
        self.punching
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected
    }

    pub(crate) fn destroyed(&self) -> bool {
        self.destroyed
    }

    pub(crate) fn done(&self) -> bool {
        self.destroyed || self.connected
    }

    pub(crate) fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// The remote's state from a payload (`updateRemote`). `verified` is the host whose token
    /// the remote echoed.
    pub(crate) fn update_remote(
        &mut self,
        punching: bool,
        firewall: u64,
        addresses: Option<&[SocketAddrV4]>,
        verified: Option<Ipv4Addr>,
    ) {
        let mut out = Vec::new();
        for a in addresses
            .unwrap_or_default()
            .iter()
            .take(MAX_REMOTE_ADDRESSES)
        {
            let v = verified == Some(*a.ip()) || self.is_verified(*a.ip());
            out.push(RemoteAddress {
                addr: *a,
                verified: v,
            });
        }
        self.remote_firewall = firewall;
        self.remote_addresses = out;
        self.remote_holepunching = punching;
    }

    fn is_verified(&self, host: Ipv4Addr) -> bool {
        self.remote_addresses
            .iter()
            .any(|a| a.verified && *a.addr.ip() == host)
    }

    /// A probe with the default TTL from the current socket (`ping`).
    pub(crate) fn ping(&mut self, to: SocketAddrV4) {
        let socket = self.socket();
        self.probe(socket, to, DEFAULT_TTL);
    }

    /// A low-TTL probe from the current socket (`openSession`).
    pub(crate) fn open_session(&mut self, to: SocketAddrV4) {
        let socket = self.socket();
        self.probe(socket, to, HOLEPUNCH_TTL);
    }

    fn probe(&mut self, socket: SocketId, to: SocketAddrV4, ttl: u8) {
        // Probes are best-effort datagrams: when the caller lets the queue fill up (a peer
        // flooding the server's sockets with probes to answer), further ones are dropped.
        if self.actions.len() < MAX_QUEUED_ACTIONS {
            self.actions.push_back(Action::Probe { socket, to, ttl });
        }
    }

    /// `_unstable`: our NAT unknown, or both random.
    fn unstable(&self) -> bool {
        let own = self.nat.firewall();
        (remote_is_random(self.remote_firewall) && own == Firewall::Random)
            || own == Firewall::Unknown
    }

    /// `analyze(allowReopen)`: `None` while the analysis (or a reopen) is still running.
    pub(crate) fn analyze(&mut self, allow_reopen: bool) -> Option<bool> {
        if matches!(self.reopen, Reopen::Running { .. }) || !self.nat.is_resolved() {
            return None;
        }
        if !self.unstable() {
            return Some(true);
        }
        if !allow_reopen {
            return Some(false);
        }
        match self.reopen {
            Reopen::Finished(b) => Some(b),
            Reopen::Running { .. } => None,
            Reopen::Idle => {
                self.reopen = Reopen::Running { done: 0 };
                self.step_reopen();
                match self.reopen {
                    Reopen::Finished(b) => Some(b),
                    _ => None,
                }
            }
        }
    }

    /// One step of `_reopen`: replace the socket while the NAT looks unstable, up to
    /// [`MAX_REOPENS`] times, each after the previous analysis resolved.
    fn step_reopen(&mut self) {
        let Reopen::Running { done } = self.reopen else {
            return;
        };
        if !self.nat.is_resolved() {
            return;
        }
        if self.unstable() && done < MAX_REOPENS && !self.done() && !self.punching {
            self.reset();
            self.reopen = Reopen::Running { done: done + 1 };
            return;
        }
        self.reopen =
            Reopen::Finished(coerce(self.nat.firewall().to_u64()) == Firewall::Consistent.to_u64());
    }

    /// `_reset`: a fresh socket with a fresh analysis.
    fn reset(&mut self) {
        if let Some(prev) = self.sockets.pop() {
            self.actions.push_back(Action::Release(prev));
        }
        let s = self.bind();
        self.sockets.push(s);
        self.nat.destroy();
        self.nat = NatAnalyzer::new(self.sampling.firewalled);
        self.start_sampling();
    }

    /// A sampling ping from `socket` was answered.
    pub(crate) fn on_pong(&mut self, socket: SocketId, to: SocketAddrV4, from: SocketAddrV4) {
        if socket != self.socket() || self.destroyed {
            return;
        }
        let more = self.nat.on_pong(to, from);
        self.push_pings(socket, more);
        self.step_reopen();
    }

    /// A sampling ping from `socket` failed.
    pub(crate) fn on_ping_failed(&mut self, socket: SocketId) {
        if socket != self.socket() || self.destroyed {
            return;
        }
        let more = self.nat.on_ping_failed();
        self.push_pings(socket, more);
        self.step_reopen();
    }

    /// `punch()`: picks and starts a strategy; false when none fits.
    pub(crate) fn punch(&mut self, now: Instant, budget: &mut RandomPunches) -> bool {
        if let Some(r) = self.punch_result {
            return r;
        }
        let r = self.start_punch(now, budget);
        self.punch_result = Some(r);
        r
    }

    fn start_punch(&mut self, now: Instant, budget: &mut RandomPunches) -> bool {
        if self.done() || self.remote_addresses.is_empty() {
            return false;
        }
        self.punching = true;
        let local = coerce(self.nat.firewall().to_u64());
        let remote = coerce(self.remote_firewall);
        let consistent = Firewall::Consistent.to_u64();
        let verified = self
            .remote_addresses
            .iter()
            .find(|a| a.verified)
            .map(|a| a.addr);
        if local == consistent && remote == consistent {
            self.strategy = Some(PunchStrategy::Consistent);
            let first = if self.initiator {
                now
            } else {
                now + CONSISTENT_INTERVAL
            };
            self.running = Some((Running::Consistent { tries: 0 }, first));
            self.tick(now, budget);
            return true;
        }
        let Some(verified) = verified else {
            return false;
        };
        if local == consistent && remote_is_random(remote) {
            self.strategy = Some(PunchStrategy::RandomProbes);
            self.increment_randomized(budget);
            let run = Running::Random {
                left: RANDOM_PROBES,
                host: *verified.ip(),
            };
            self.running = Some((run, now));
            self.tick(now, budget);
            return true;
        }
        if remote_is_random(local) && remote == consistent {
            self.strategy = Some(PunchStrategy::Birthday);
            self.increment_randomized(budget);
            while self.sockets.len() < BIRTHDAY_SOCKETS {
                let s = self.bind();
                self.sockets.push(s);
                self.probe(s, verified, HOLEPUNCH_TTL);
            }
            let run = Running::Birthday {
                left: RANDOM_PROBES,
                next: 0,
                low_ttl_rounds: 1,
                remote: verified,
            };
            self.running = Some((run, now + BIRTHDAY_SETTLE));
            return true;
        }
        false
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.running.map(|(_, at)| at)
    }

    /// Runs the strategy's due steps.
    pub(crate) fn tick(&mut self, now: Instant, budget: &mut RandomPunches) {
        while let Some((run, at)) = self.running {
            if at > now {
                return;
            }
            if !self.punching {
                self.running = None;
                return;
            }
            match run {
                Running::Consistent { tries } => {
                    if tries >= CONSISTENT_TRIES {
                        self.running = None;
                        self.auto_destroy(now, budget);
                        return;
                    }
                    let tries = tries + 1;
                    let socket = self.socket();
                    let targets: Vec<_> = self
                        .remote_addresses
                        .iter()
                        .filter(|a| a.verified || tries % UNVERIFIED_EVERY == 0)
                        .map(|a| a.addr)
                        .collect();
                    for to in targets {
                        self.probe(socket, to, DEFAULT_TTL);
                    }
                    self.running = Some((Running::Consistent { tries }, at + CONSISTENT_INTERVAL));
                }
                Running::Random { left, host } => {
                    if left == 0 {
                        self.running = None;
                        self.auto_destroy(now, budget);
                        return;
                    }
                    let port = self.random_port();
                    let socket = self.socket();
                    self.probe(socket, SocketAddrV4::new(host, port), DEFAULT_TTL);
                    let run = Running::Random {
                        left: left - 1,
                        host,
                    };
                    self.running = Some((run, at + PROBE_INTERVAL));
                }
                Running::Birthday {
                    left,
                    next,
                    low_ttl_rounds,
                    remote,
                } => {
                    if left == 0 {
                        self.running = None;
                        self.auto_destroy(now, budget);
                        return;
                    }
                    let (mut next, mut low) = (next, low_ttl_rounds);
                    if next >= self.sockets.len() {
                        next = 0;
                        low = low.saturating_sub(1);
                    }
                    if let Some(&s) = self.sockets.get(next) {
                        let ttl = if low > 0 { HOLEPUNCH_TTL } else { DEFAULT_TTL };
                        self.probe(s, remote, ttl);
                    }
                    let run = Running::Birthday {
                        left: left - 1,
                        next: next + 1,
                        low_ttl_rounds: low,
                        remote,
                    };
                    self.running = Some((run, at + PROBE_INTERVAL));
                }
            }
        }
    }

    /// `randomPort`: uniform in `RANDOM_PORT_MIN..=65535`.
    fn random_port(&mut self) -> u16 {
        let span = u64::from(u16::MAX - RANDOM_PORT_MIN) + 1;
        let r = ((self.rng.next_u64() >> 32) * span) >> 32;
        RANDOM_PORT_MIN.saturating_add(u16::try_from(r).unwrap_or(0))
    }

    /// A datagram of at most one byte arrived on `socket` from `from` (`_onholepunchmessage`).
    pub(crate) fn on_probe(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddrV4,
        budget: &mut RandomPunches,
    ) {
        if self.destroyed || !self.owns(socket) {
            return;
        }
        if !self.initiator {
            // The server answers every probe, from the socket it arrived on.
            self.probe(socket, from, DEFAULT_TTL);
            return;
        }
        if self.connected {
            return;
        }
        self.connected = true;
        self.punching = false;
        self.running = None;
        self.keep_only(socket);
        self.decrement_randomized(now, budget);
        let strategy = self.strategy.unwrap_or(PunchStrategy::ProbeRound);
        self.events.push_back(Event::Connected {
            socket,
            remote: from,
            strategy,
        });
    }

    /// Releases every socket but `keep`, which the caller now owns.
    pub(crate) fn keep_only(&mut self, keep: SocketId) {
        for s in std::mem::take(&mut self.sockets) {
            if s != keep {
                self.actions.push_back(Action::Release(s));
            }
        }
        self.sockets.push(keep);
    }

    /// The server's stream got its first packet on `socket` from `remote`: the punch is over.
    pub(crate) fn finish_connected(
        &mut self,
        now: Instant,
        socket: SocketId,
        budget: &mut RandomPunches,
    ) {
        self.connected = true;
        self.punching = false;
        self.running = None;
        self.keep_only(socket);
        self.decrement_randomized(now, budget);
        self.destroyed = true;
        self.nat.destroy();
    }

    fn auto_destroy(&mut self, now: Instant, budget: &mut RandomPunches) {
        if !self.connected {
            self.destroy(now, budget, Some(HolepunchError::Aborted));
        }
    }

    fn increment_randomized(&mut self, budget: &mut RandomPunches) {
        if !self.randomized {
            self.randomized = true;
            budget.begin();
        }
    }

    fn decrement_randomized(&mut self, now: Instant, budget: &mut RandomPunches) {
        if self.randomized {
            self.randomized = false;
            budget.end(now);
        }
    }

    /// `destroy`: releases every socket; when not connected, reports `abort` (JS `onabort`)
    /// unless it is `None` (JS sets `onabort = noop` first).
    pub(crate) fn destroy(
        &mut self,
        now: Instant,
        budget: &mut RandomPunches,
        abort: Option<HolepunchError>,
    ) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        self.punching = false;
        self.running = None;
        for s in std::mem::take(&mut self.sockets) {
            self.actions.push_back(Action::Release(s));
        }
        self.nat.destroy();
        if !self.connected {
            self.decrement_randomized(now, budget);
            if let Some(e) = abort {
                self.events.push_back(Event::Failed(e));
            }
        }
    }
}
