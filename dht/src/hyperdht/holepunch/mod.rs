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

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::messages::HolepunchPayload;
pub(crate) use puncher::{Puncher, remote_is_random};

pub mod client;
#[doc(hidden)]
pub mod fuzzing;
mod puncher;
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

/// Whether JS's `bogon` package calls an IPv4 address private (`isPrivate`): 10/8,
/// 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16.
pub fn is_private(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 10
        || (a == 100 && (64..=127).contains(&b))
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
}

/// Whether JS's `bogon` package calls an IPv4 address reserved (`isReserved`): 0/8,
/// 192.0.0/24, the TEST-NETs, 198.18/15, multicast and everything from 240/4 up.
pub fn is_reserved(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (18..=19).contains(&b))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224
}

/// Whether JS's `bogon` package calls an IPv4 address private or reserved (`isBogon`).
pub fn is_bogon(ip: Ipv4Addr) -> bool {
    is_private(ip) || is_reserved(ip)
}

/// The remote local address sharing the longest prefix (1 to 3 leading octets) with one of
/// ours, preferring the first found at each length (`Holepuncher.matchAddress`).
pub fn match_address(
    local: &[SocketAddrV4],
    remote_local: &[SocketAddrV4],
) -> Option<SocketAddrV4> {
    let mut best: (u8, Option<SocketAddrV4>) = (1, None);
    for l in local {
        let a = l.ip().octets();
        for r in remote_local {
            let b = r.ip().octets();
            if a[0] == b[0] {
                if best.0 == 1 {
                    best = (2, Some(*r));
                }
                if a[1] == b[1] {
                    if best.0 == 2 {
                        best = (3, Some(*r));
                    }
                    if a[2] == b[2] {
                        return Some(*r);
                    }
                }
            }
        }
    }
    best.1
}

/// The LAN shortcut of `connect.js` `holepunch`, raced there with the punch: when the relay
/// saw client and server behind one public host, the server address to ping (from the DHT
/// socket) and connect to if it answers: the server's non-reserved listed address sharing the
/// longest prefix with one of `own_local`, else its first.
pub fn lan_candidate(
    client_address: SocketAddrV4,
    server_address: SocketAddrV4,
    relayed: bool,
    server_addresses4: &[SocketAddrV4],
    own_local: &[SocketAddrV4],
) -> Option<SocketAddrV4> {
    if !relayed || client_address.ip() != server_address.ip() {
        return None;
    }
    let candidates: Vec<_> = server_addresses4
        .iter()
        .filter(|a| !is_reserved(*a.ip()))
        .copied()
        .collect();
    match_address(own_local, &candidates).or_else(|| candidates.first().copied())
}

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
