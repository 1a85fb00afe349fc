//! Holepunching, sans-IO: the puncher of one connection attempt on either side
//! (JS: `hyperdht/lib/holepuncher.js`, class `Holepuncher`), the client's rounds
//! ([`client`], `lib/connect.js` `holepunch`, `probeRound`, `roundPunch`) and the server's
//! answers ([`server`], `lib/server.js` `_onpeerholepunch`, `_abort`).
//!
//! I/O contract: nothing here owns a socket or a clock. The machines work with socket
//! *handles* ([`SocketId`]): they ask the caller to bind a fresh UDP socket
//! ([`Action::Bind`]), to send a one-byte probe from one ([`Action::Probe`], with the IP TTL to
//! use), to ping a DHT node from one so as to learn the socket's reflexive address
//! ([`Action::Ping`]), and to release one ([`Action::Release`]). The caller feeds back what
//! arrives: ping outcomes, every datagram of at most one byte received on one of the sockets
//! (JS's `SocketRef` hands exactly those to the puncher; longer ones are DHT traffic), the
//! relayed coordination messages (plaintext [`HolepunchPayload`]s; encrypting them with the
//! handshake's holepunch secret is the caller's part, as JS's `SecurePayload`), and time via
//! `handle_timeout(now)` at `poll_timeout()`. Randomness (random probe ports, try-later delays)
//! comes from a seed.
//!
//! Strategies (`Holepuncher._punch`; an OPEN NAT counts as CONSISTENT):
//! - both CONSISTENT: up to [`CONSISTENT_TRIES`] rounds [`CONSISTENT_INTERVAL`] apart, each
//!   probing every remote address (unverified ones only every [`UNVERIFIED_EVERY`]th round);
//!   the server starts one interval late, as its fast-mode probe just went out;
//! - local CONSISTENT, remote RANDOM: [`RANDOM_PROBES`] probes [`PROBE_INTERVAL`] apart to
//!   random ports of the remote's verified host;
//! - local RANDOM, remote CONSISTENT (the birthday strategy): bind sockets up to
//!   [`BIRTHDAY_SOCKETS`], each sending one low-TTL probe to the remote's verified address,
//!   then after [`BIRTHDAY_SETTLE`] cycle probes over all of them, [`RANDOM_PROBES`] in all,
//!   [`PROBE_INTERVAL`] apart, the first cycle with the low TTL;
//! - both RANDOM: no strategy (the client aborts before, with
//!   [`HolepunchError::DoubleRandomizedNats`]).
//!
//! The random strategies require a remote address verified by a token echo, and are limited
//! per DHT node by [`RandomPunches`] (one at a time, [`RANDOM_PUNCH_INTERVAL`] apart).
//! A probe arriving at the client's sockets means the path is open: the client keeps that
//! socket and reports [`Event::Connected`]; the server answers every probe with a probe and
//! learns of the connection from the stream's first packet ([`server::ServerPunch::on_stream_packet`]).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::Firewall;
use super::messages::HolepunchPayload;
use super::nat::NatAnalyzer;

pub mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod server;

pub use client::{ClientConfig, ClientPunch, ClientReply, Plan, plan};
pub use server::{ServerConfig, ServerPunch, ServerRequest};

/// Sockets a birthday punch holds at most, the first included (`BIRTHDAY_SOCKETS`).
pub const BIRTHDAY_SOCKETS: usize = 256;
/// IP TTL of probes that should open the local NAT without reaching the remote one
/// (`HOLEPUNCH_TTL`).
pub const HOLEPUNCH_TTL: u8 = 5;
/// IP TTL of every other probe (`DEFAULT_TTL`).
pub const DEFAULT_TTL: u8 = 64;
/// Times an unstable socket is replaced by a fresh one (`MAX_REOPENS`).
pub const MAX_REOPENS: usize = 3;
/// Rounds of the consistent strategy (`_consistentProbe`: `tries++ < 10`).
pub const CONSISTENT_TRIES: u32 = 10;
/// Pause between consistent rounds (`_sleeper.pause(1000)`).
pub const CONSISTENT_INTERVAL: Duration = Duration::from_millis(1000);
/// Unverified remote addresses are probed only in rounds divisible by this (`(tries & 3)`).
pub const UNVERIFIED_EVERY: u32 = 4;
/// Probes of the random strategies (`tries = 1750 // ~35s`).
pub const RANDOM_PROBES: u32 = 1750;
/// Pause between random probes (`pause(20)`).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// Pause after the birthday sockets opened, before the cycle (`pause(100)`).
pub const BIRTHDAY_SETTLE: Duration = Duration::from_millis(100);
/// Lowest random probe port (`randomPort`: `1000 + Math.random() * 64536`, so 1000..=65535).
pub const RANDOM_PORT_MIN: u16 = 1000;
/// Minimum time between two random punches of one DHT node (`randomPunchInterval`, 20 s).
pub const RANDOM_PUNCH_INTERVAL: Duration = Duration::from_secs(20);
/// Random punches one DHT node runs at once (`_randomPunchLimit`).
pub const RANDOM_PUNCH_LIMIT: u32 = 1;
/// Remote addresses kept from one payload. JS keeps the whole array; a peer advertises its
/// NAT samples (at most a handful), so more than this is not a real peer's.
pub const MAX_REMOTE_ADDRESSES: usize = 32;

/// Actions queued at most before probes are dropped: room for a whole birthday burst (a bind
/// and a probe per socket, and a release per socket later). Callers drain the queue after
/// every call.
pub const MAX_QUEUED_ACTIONS: usize = 4 * BIRTHDAY_SOCKETS;

/// A socket of a puncher, bound by the caller on [`Action::Bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// What a machine asks its caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bind a fresh UDP socket (`dht._socketPool.acquire()`).
    Bind(SocketId),
    /// The socket is no longer needed (`SocketRef.release`).
    Release(SocketId),
    /// Ping `node` from `socket` (dht-rpc PING, no retry) and report the reflexive address of
    /// the reply, or the failure.
    Ping {
        /// Socket to ping from.
        socket: SocketId,
        /// DHT node to ping.
        node: SocketAddrV4,
    },
    /// Send the one-byte probe `[0]` from `socket` to `to` with IP TTL `ttl`.
    Probe {
        /// Socket to send from.
        socket: SocketId,
        /// Destination.
        to: SocketAddrV4,
        /// [`HOLEPUNCH_TTL`] or [`DEFAULT_TTL`].
        ttl: u8,
    },
    /// (Client) send PEER_HOLEPUNCH from `socket` to `relay`, for the server at
    /// `peer_address`, carrying `payload` encrypted; report the reply with
    /// [`ClientPunch::on_reply`] or its failure with [`ClientPunch::on_relay_error`].
    Relay {
        /// Socket to send from (the puncher's).
        socket: SocketId,
        /// The relay node.
        relay: SocketAddrV4,
        /// The server's address as that relay knows it.
        peer_address: SocketAddrV4,
        /// The plaintext payload.
        payload: HolepunchPayload,
    },
    /// (Server) answer the PEER_HOLEPUNCH request `request` with `payload` encrypted, from
    /// `socket` (`None`: the DHT's own socket).
    Reply {
        /// The caller's handle of the request.
        request: u64,
        /// Socket to answer from.
        socket: Option<SocketId>,
        /// The plaintext payload.
        payload: HolepunchPayload,
    },
}

/// How a punch connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchStrategy {
    /// During the probe round, before any strategy ran (the server's fast-mode probe, or an
    /// early probe of either side).
    ProbeRound,
    /// Both sides consistent (`_consistentProbe`).
    Consistent,
    /// Local consistent, remote random (`_randomProbes`).
    RandomProbes,
    /// Local random, remote consistent (`_openBirthdaySockets` + `_keepAliveRandomNat`).
    Birthday,
}

/// What a machine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The path is open: connect the stream on `socket` to `remote` (JS `onconnect`). The
    /// caller owns the socket from now on.
    Connected {
        /// Our socket.
        socket: SocketId,
        /// The peer's address.
        remote: SocketAddrV4,
        /// What was running when it connected.
        strategy: PunchStrategy,
    },
    /// The punch failed; every socket was released.
    Failed(HolepunchError),
}

/// Why a punch failed, with JS's error names (`lib/errors.js`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolepunchError {
    /// `HOLEPUNCH_ABORTED`: the puncher gave up (its probes ran out, the server's handshake
    /// wait passed, or a random punch was rate-limited with no relay to wait on).
    #[error("holepunch aborted")]
    Aborted,
    /// `HOLEPUNCH_PROBE_TIMEOUT`: a side's NAT stayed unclassified after the probe rounds.
    #[error("holepunch probe did not finish in time: a NAT could not be classified")]
    ProbeTimeout,
    /// `HOLEPUNCH_DOUBLE_RANDOMIZED_NATS`: both NATs randomise ports.
    #[error("both the local and the remote NAT randomise ports, which cannot be holepunched")]
    DoubleRandomizedNats,
    /// `HOLEPUNCH_INVALID`: a reply did not decrypt or decode.
    #[error("invalid holepunch payload")]
    Invalid,
    /// `REMOTE_ABORTED`: the remote answered with this error code.
    #[error("the remote aborted the holepunch with error code {0}")]
    RemoteAborted(u64),
    /// `REMOTE_NOT_HOLEPUNCHING`: the server did not start punching.
    #[error("the remote is not holepunching")]
    RemoteNotHolepunching,
    /// `REMOTE_NOT_HOLEPUNCHABLE`: no strategy fits (no verified remote address).
    #[error("the remote is not holepunchable")]
    RemoteNotHolepunchable,
    /// `CANNOT_HOLEPUNCH`: the server offered no holepunch relays.
    #[error("cannot holepunch to the remote: it offered no relays")]
    CannotHolepunch,
    /// The relayed request failed (the request's own error in JS, e.g. a timeout).
    #[error("the holepunch message through the relay got no reply")]
    RelayFailed,
}

impl HolepunchError {
    /// JS's error code for this cause.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Aborted => "HOLEPUNCH_ABORTED",
            Self::ProbeTimeout => "HOLEPUNCH_PROBE_TIMEOUT",
            Self::DoubleRandomizedNats => "HOLEPUNCH_DOUBLE_RANDOMIZED_NATS",
            Self::Invalid => "HOLEPUNCH_INVALID",
            Self::RemoteAborted(_) => "REMOTE_ABORTED",
            Self::RemoteNotHolepunching => "REMOTE_NOT_HOLEPUNCHING",
            Self::RemoteNotHolepunchable => "REMOTE_NOT_HOLEPUNCHABLE",
            Self::CannotHolepunch => "CANNOT_HOLEPUNCH",
            Self::RelayFailed => "REQUEST_TIMEOUT",
        }
    }

    /// The code a JS client's application sees for this failure: once the client created its
    /// puncher, every failure destroys the puncher first, whose abort handler fails the
    /// connection with `HOLEPUNCH_ABORTED` before the cause is used (`connect.js`
    /// `destroyPuncher` and the `onabort` set in `holepunch`). Only `CANNOT_HOLEPUNCH` comes
    /// before a puncher exists.
    pub fn js_reported_code(&self) -> &'static str {
        match self {
            Self::CannotHolepunch => self.code(),
            _ => "HOLEPUNCH_ABORTED",
        }
    }
}

/// The random-punch budget of one DHT node, shared by all its punchers (`dht._randomPunches`,
/// `_randomPunchLimit`, `_lastRandomPunch`, `_randomPunchInterval`).
#[derive(Debug, Clone)]
pub struct RandomPunches {
    active: u32,
    last: Option<Instant>,
    limit: u32,
    interval: Duration,
}

impl Default for RandomPunches {
    fn default() -> Self {
        RandomPunches {
            active: 0,
            last: None,
            limit: RANDOM_PUNCH_LIMIT,
            interval: RANDOM_PUNCH_INTERVAL,
        }
    }
}

impl RandomPunches {
    /// JS's defaults with another interval (`opts.randomPunchInterval`).
    pub fn with_interval(interval: Duration) -> Self {
        RandomPunches {
            interval,
            ..Self::default()
        }
    }
    /// Whether a random punch must wait (`_randomPunches >= _randomPunchLimit ||
    /// now - _lastRandomPunch < _randomPunchInterval`).
    pub fn blocked(&self, now: Instant) -> bool {
        self.active >= self.limit
            || self
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
    }
    /// Random punches running now.
    pub fn active(&self) -> u32 {
        self.active
    }
    fn begin(&mut self) {
        self.active = self.active.saturating_add(1);
    }
    fn cancel(&mut self) {
        self.active = self.active.saturating_sub(1);
    }
    fn end(&mut self, now: Instant) {
        self.last = Some(now);
        self.cancel();
    }
}

/// Which DHT nodes a puncher samples its NAT with, and how its node sees itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sampling {
    /// The routing table's nodes, newest first (at most [`super::nat::MAX_CANDIDATES`] are
    /// used).
    pub newest_first: Vec<SocketAddrV4>,
    /// The routing table's size.
    pub table_len: usize,
    /// `dht.firewalled`: false once the node found itself reachable (then its NAT is OPEN).
    pub firewalled: bool,
}

/// A remote address and whether a token echo verified its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddress {
    /// The address.
    pub addr: SocketAddrV4,
    /// Verified by a token echo.
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    Consistent {
        tries: u32,
    },
    Random {
        left: u32,
        host: Ipv4Addr,
    },
    Birthday {
        left: u32,
        next: usize,
        low_ttl_rounds: u32,
        remote: SocketAddrV4,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    Idle,
    Running { done: usize },
    Finished(bool),
}

/// Whether a remote firewall number means RANDOM (JS compares `>= FIREWALL.RANDOM`, so
/// unknown larger values count too).
fn remote_is_random(fw: u64) -> bool {
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

/// Whether JS's `bogon` package calls an IPv4 address private or reserved (`isBogon`).
pub fn is_bogon(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    let private = a == 10
        || (a == 100 && (64..=127).contains(&b))
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168);
    let reserved = a == 0
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (18..=19).contains(&b))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (224..=239).contains(&a)
        || a >= 240
        || (a == 255 && b == 255 && c == 255 && d == 255);
    private || reserved
}

#[cfg(test)]
mod tests;
