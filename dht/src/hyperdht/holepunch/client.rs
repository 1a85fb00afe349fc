//! The client's side of a holepunch (JS: `hyperdht/lib/connect.js` `holepunch`,
//! `updateHolepunch`, `probeRound`, `roundPunch`, `tryLater`, `abort`).
//!
//! After the Noise handshake went through a relay, [`plan`] decides whether a punch is needed
//! at all. A punch starts with [`ClientPunch::new`]: a low-TTL probe to the server (unless
//! fast-open is off) and a probe round — a PEER_HOLEPUNCH message through the server's relay
//! telling the server our NAT view, answered with the server's view. When both views are known
//! (each side waits for its NAT analysis, and replaces an unstable socket up to
//! [`super::MAX_REOPENS`] times), the punch round tells the server to start punching and both
//! run their strategy (the puncher, `holepuncher.js`).

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::{
    Action, Event, HolepunchError, Puncher, RandomPunches, Sampling, is_bogon, remote_is_random,
};
use crate::crypto::keyed_hash;
use crate::hyperdht::messages::{HolepunchPayload, RelayInfo};
use crate::hyperdht::{ErrorCode, Firewall};

/// How long the client waits for an unclassified server before going on (`sleeper.pause(1000)`
/// in `probeRound`).
pub const REMOTE_UNKNOWN_WAIT: Duration = Duration::from_millis(1000);
/// Shortest wait before retrying a rate-limited random punch (`tryLater`: 10 s...).
pub const TRY_LATER_MIN: Duration = Duration::from_secs(10);
/// ...plus up to this much at random.
pub const TRY_LATER_JITTER: Duration = Duration::from_secs(10);
/// How long an OPEN client waits for the server to connect to it (`passiveConnectTimeout`).
pub const PASSIVE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do after a relayed handshake (the first half of `holepunch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Connect the stream from the DHT socket straight to this address (the server is OPEN,
    /// or the handshake was relayed and the server offers no holepunch relays).
    Direct(SocketAddrV4),
    /// We are OPEN: the server connects to us; give up after
    /// [`PASSIVE_CONNECT_TIMEOUT`].
    AwaitServer,
    /// Holepunch with [`ClientPunch`].
    Holepunch,
    /// `CANNOT_HOLEPUNCH`.
    CannotHolepunch,
}

/// The first half of `holepunch`. The LAN shortcut JS races with the punch is
/// [`super::lan_candidate`].
/// `server_addresses4` are the addresses the server listed in its handshake payload,
/// `server_address` where the relay saw it, `relayed` whether the handshake reply came
/// through another node than the server, `own_firewall` what we told the server.
pub fn plan(
    server_firewall: u64,
    server_addresses4: &[SocketAddrV4],
    server_address: SocketAddrV4,
    relayed: bool,
    server_relays: usize,
    own_firewall: Firewall,
) -> Plan {
    let holepunchable = server_relays > 0;
    if server_firewall == Firewall::Open.to_u64() || (relayed && !holepunchable) {
        let first = server_addresses4
            .iter()
            .find(|a| !is_bogon(*a.ip()))
            .copied()
            .unwrap_or(server_address);
        return Plan::Direct(first);
    }
    if own_firewall == Firewall::Open {
        return Plan::AwaitServer;
    }
    if !holepunchable {
        return Plan::CannotHolepunch;
    }
    Plan::Holepunch
}

/// What [`ClientPunch::new`] needs from the handshake (`c.connect` and options).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's address as the handshake's relay saw it (`serverAddress`).
    pub server_address: SocketAddrV4,
    /// The node the handshake went through (`relayAddress`).
    pub relay_address: SocketAddrV4,
    /// The server's firewall from its handshake payload.
    pub server_firewall: u64,
    /// The server's holepunch relays (`payload.holepunch.relays`), at least one.
    pub server_relays: Vec<RelayInfo>,
    /// Send a low-TTL probe to the server first (`opts.fastOpen !== false`).
    pub fast_open: bool,
    /// A blind relay is configured (`c.relayToken`): a rate-limited random punch waits
    /// instead of failing.
    pub relay_through: bool,
    /// Our random secret for address tokens (`SecurePayload._localSecret`).
    pub local_secret: [u8; 32],
    /// NAT sampling.
    pub sampling: Sampling,
    /// Seed of the puncher's randomness.
    pub seed: [u8; 32],
}

/// A reply to a PEER_HOLEPUNCH message, as the caller received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReply {
    /// The decrypted payload; `None` when it did not decrypt or decode.
    pub payload: Option<HolepunchPayload>,
    /// The server's address as the relay saw it (`holepunch.peerAddress`).
    pub peer_address: Option<SocketAddrV4>,
    /// Our address as the replying relay saw it (the reply's `to`).
    pub to: SocketAddrV4,
    /// The node that replied.
    pub from: SocketAddrV4,
}

/// The message awaiting a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    None,
    Probe {
        retry: bool,
        token: Option<[u8; 32]>,
        peer: SocketAddrV4,
    },
    Delayed {
        token: Option<[u8; 32]>,
        remote_token: Option<[u8; 32]>,
    },
    Punch {
        random: bool,
        token: Option<[u8; 32]>,
        peer: SocketAddrV4,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for a reply (see `awaiting`).
    Reply,
    /// The 1 s pause for an unclassified server, then the analysis.
    WaitRemote { until: Instant, probe: Probed },
    /// Waiting for the analysis; `reopen`: the second `analyze(true)` call.
    Analyze { probe: Probed, reopen: bool },
    /// `tryLater`: sleeping before re-checking the random-punch budget.
    TryLater {
        until: Instant,
        remote_token: Option<[u8; 32]>,
    },
    /// The strategy runs (in the puncher).
    Punching,
    /// Connected or failed.
    Done,
}

/// What the probe round learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probed {
    retry: bool,
    token: Option<[u8; 32]>,
    peer_address: Option<SocketAddrV4>,
}

/// The client's punch.
#[derive(Debug)]
pub struct ClientPunch {
    p: Puncher,
    server_address: SocketAddrV4,
    relay_address: SocketAddrV4,
    server_relay: RelayInfo,
    relay_through: bool,
    fast_open: bool,
    local_secret: [u8; 32],
    round: u64,
    awaiting: Awaiting,
    step: Step,
}

impl ClientPunch {
    /// Starts the punch: binds the puncher's socket, starts its NAT sampling and sends the
    /// first probe round. Fails with `CANNOT_HOLEPUNCH` when the server offered no relays.
    pub fn new(cfg: ClientConfig) -> Result<Self, HolepunchError> {
        // `pickServerRelay`: the relay the handshake used if the server lists it, else its first.
        let server_relay = cfg
            .server_relays
            .iter()
            .find(|r| r.relay_address == cfg.relay_address)
            .or_else(|| cfg.server_relays.first())
            .cloned()
            .ok_or(HolepunchError::CannotHolepunch)?;
        let mut c = ClientPunch {
            p: Puncher::new(true, cfg.server_firewall, cfg.sampling, cfg.seed),
            server_address: cfg.server_address,
            relay_address: cfg.relay_address,
            server_relay,
            relay_through: cfg.relay_through,
            fast_open: cfg.fast_open,
            local_secret: cfg.local_secret,
            round: 0,
            awaiting: Awaiting::None,
            step: Step::Reply,
        };
        let fast_open = cfg.fast_open.then_some(cfg.server_address);
        c.probe_round(fast_open, true);
        Ok(c)
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.p.actions.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.p.events.pop_front()
    }

    /// When to call [`ClientPunch::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = match self.step {
            Step::WaitRemote { until, .. } | Step::TryLater { until, .. } => Some(until),
            _ => None,
        };
        match (own, self.p.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the punch is over (connected or failed).
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// Our NAT verdict so far.
    pub fn firewall(&self) -> Firewall {
        self.p.nat().firewall()
    }

    /// The server's firewall as it last told us.
    pub fn remote_firewall(&self) -> u64 {
        self.p.remote_firewall()
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant, budget: &mut RandomPunches) {
        if self.step == Step::Done {
            return;
        }
        self.p.tick(now, budget);
        match self.step {
            Step::WaitRemote { until, probe } if until <= now => {
                self.step = Step::Analyze {
                    probe,
                    reopen: false,
                };
            }
            Step::TryLater {
                until,
                remote_token,
            } if until <= now => {
                self.round_punch(now, remote_token, true, budget);
            }
            _ => {}
        }
        self.advance(now, budget);
    }

    /// A sampling ping from `socket` was answered; `to` is the socket's address as `from`
    /// saw it.
    pub fn on_pong(
        &mut self,
        now: Instant,
        socket: super::SocketId,
        to: SocketAddrV4,
        from: SocketAddrV4,
        budget: &mut RandomPunches,
    ) {
        self.p.on_pong(socket, to, from);
        self.advance(now, budget);
    }

    /// A sampling ping from `socket` failed.
    pub fn on_ping_failed(
        &mut self,
        now: Instant,
        socket: super::SocketId,
        budget: &mut RandomPunches,
    ) {
        self.p.on_ping_failed(socket);
        self.advance(now, budget);
    }

    /// A datagram of at most one byte arrived on `socket` from `from`.
    pub fn on_probe(
        &mut self,
        now: Instant,
        socket: super::SocketId,
        from: SocketAddrV4,
        budget: &mut RandomPunches,
    ) {
        if self.step == Step::Done {
            return;
        }
        self.p.on_probe(now, socket, from, budget);
        self.settle(budget);
    }

    /// The PEER_HOLEPUNCH request failed (no reply).
    pub fn on_relay_error(&mut self, now: Instant, budget: &mut RandomPunches) {
        if self.step == Step::Done || self.awaiting == Awaiting::None {
            return;
        }
        self.fail(now, budget, HolepunchError::RelayFailed);
    }

    /// The reply to our last PEER_HOLEPUNCH message (`updateHolepunch`'s second half).
    pub fn on_reply(&mut self, now: Instant, reply: ClientReply, budget: &mut RandomPunches) {
        let awaiting = std::mem::replace(&mut self.awaiting, Awaiting::None);
        if self.step == Step::Done || awaiting == Awaiting::None {
            return;
        }
        if let Awaiting::Punch { random: true, .. } = awaiting {
            budget.cancel(); // `finally { _randomPunches-- }`
        }
        let Some(payload) = reply.payload else {
            return self.fail(now, budget, HolepunchError::Invalid);
        };
        let (sent_token, sent_peer, sent_punching) = match awaiting {
            Awaiting::Probe { peer, .. } => (None, peer, false),
            Awaiting::Delayed { token, .. } => (token, self.server_address, false),
            Awaiting::Punch { token, peer, .. } => (token, peer, true),
            Awaiting::None => return,
        };
        let try_later =
            payload.error == ErrorCode::TryLater.to_u64() && self.relay_through && sent_punching;
        if !try_later {
            if payload.error != ErrorCode::None.to_u64() {
                return self.fail(now, budget, HolepunchError::RemoteAborted(payload.error));
            }
            let echoed = sent_token.is_some() && payload.remote_token == sent_token;
            self.p.update_remote(
                payload.punching,
                payload.firewall,
                payload.addresses.as_deref(),
                echoed.then_some(*sent_peer.ip()),
            );
        }
        match awaiting {
            Awaiting::Probe { retry, .. } => {
                // The relay's view of our socket is one more NAT sample. (JS then opens a
                // session to `reply.payload.address` when the server is not random, but the
                // holepunch payload has no such field, so that branch never runs.)
                self.p.nat_mut().add(reply.to, reply.from);
                let probe = Probed {
                    retry,
                    token: payload.token,
                    peer_address: reply.peer_address,
                };
                self.step = if self.p.remote_firewall() == Firewall::Unknown.to_u64() {
                    Step::WaitRemote {
                        until: now + REMOTE_UNKNOWN_WAIT,
                        probe,
                    }
                } else {
                    Step::Analyze {
                        probe,
                        reopen: false,
                    }
                };
            }
            Awaiting::Delayed { remote_token, .. } => self.try_later(now, remote_token),
            Awaiting::Punch { .. } => {
                if try_later {
                    self.try_later(now, payload.remote_token);
                } else if !self.p.remote_holepunching() {
                    return self.fail(now, budget, HolepunchError::RemoteNotHolepunching);
                } else if !self.p.punch(now, budget) {
                    return self.fail(now, budget, HolepunchError::RemoteNotHolepunchable);
                } else {
                    self.step = Step::Punching;
                    self.settle(budget);
                }
            }
            Awaiting::None => {}
        }
        self.advance(now, budget);
    }

    /// `probeRound`'s first half: a low-TTL probe and our view to the server.
    fn probe_round(&mut self, server_address: Option<SocketAddrV4>, retry: bool) {
        if let Some(a) = server_address {
            self.p.open_session(a);
        }
        let payload = HolepunchPayload {
            error: ErrorCode::None.to_u64(),
            firewall: self.p.nat().firewall().to_u64(),
            round: self.next_round(),
            connected: false,
            punching: false,
            addresses: self.p.nat().addresses().map(<[_]>::to_vec),
            remote_address: server_address,
            token: None,
            remote_token: None,
        };
        let peer = self.server_relay.peer_address;
        self.send(self.server_relay.relay_address, peer, payload);
        self.awaiting = Awaiting::Probe {
            retry,
            token: None,
            peer,
        };
        self.step = Step::Reply;
    }

    /// `probeRound`'s `serverAddress` argument: none when fast-open is off.
    fn fast_open_address(&self) -> Option<SocketAddrV4> {
        self.fast_open.then_some(self.server_address)
    }

    fn next_round(&mut self) -> u64 {
        let r = self.round;
        self.round += 1;
        r
    }

    fn send(&mut self, relay: SocketAddrV4, peer_address: SocketAddrV4, payload: HolepunchPayload) {
        let socket = self.p.socket();
        self.p.actions.push_back(Action::Relay {
            socket,
            relay,
            peer_address,
            payload,
        });
    }

    /// Our token for an address (`SecurePayload.token`: keyed BLAKE2b of the host string).
    fn token(&self, addr: SocketAddrV4) -> [u8; 32] {
        keyed_hash(&self.local_secret, addr.ip().to_string().as_bytes())
    }

    /// Drives the analysis steps as far as they go.
    fn advance(&mut self, now: Instant, budget: &mut RandomPunches) {
        while let Step::Analyze { probe, reopen } = self.step {
            let Some(stable) = self.p.analyze(reopen) else {
                return;
            };
            if !stable && !reopen {
                self.step = Step::Analyze {
                    probe,
                    reopen: true,
                };
                continue;
            }
            if reopen && stable {
                // A fresh socket looks stable: probe again from it.
                self.probe_round(self.fast_open_address(), false);
                return;
            }
            self.after_analysis(now, probe, budget);
        }
        self.settle(budget);
    }

    /// The end of `probeRound` and the middle of `holepunch`.
    fn after_analysis(&mut self, now: Instant, probe: Probed, budget: &mut RandomPunches) {
        let unknown = Firewall::Unknown.to_u64();
        if (self.p.remote_firewall() == unknown || probe.token.is_none()) && probe.retry {
            return self.probe_round(self.fast_open_address(), false);
        }
        if self.p.remote_firewall() == unknown || self.p.nat().firewall() == Firewall::Unknown {
            return self.abort(now, budget, HolepunchError::ProbeTimeout);
        }
        if remote_is_random(self.p.remote_firewall()) && self.p.nat().firewall() == Firewall::Random
        {
            return self.abort(now, budget, HolepunchError::DoubleRandomizedNats);
        }
        // The server may have moved to another socket; if it answered through the relay we
        // used, its new address is the one that relay reports.
        if let Some(peer) = probe.peer_address
            && self.server_relay.relay_address == self.relay_address
            && peer != self.server_address
        {
            self.server_address = peer;
            self.p.open_session(peer);
        }
        self.round_punch(now, probe.token, false, budget);
    }

    /// `roundPunch`: ask the server to punch, respecting the random-punch budget.
    fn round_punch(
        &mut self,
        now: Instant,
        remote_token: Option<[u8; 32]>,
        delayed: bool,
        budget: &mut RandomPunches,
    ) {
        self.p.nat_mut().freeze();
        let random = remote_is_random(self.p.remote_firewall())
            || self.p.nat().firewall() == Firewall::Random;
        if random && budget.blocked(now) {
            if !self.relay_through {
                return self.fail(now, budget, HolepunchError::Aborted);
            }
            if !delayed {
                let token = Some(self.token(self.server_address));
                let payload = self.update(false, token, remote_token);
                self.send(self.relay_address, self.server_address, payload);
                self.awaiting = Awaiting::Delayed {
                    token,
                    remote_token,
                };
                self.step = Step::Reply;
                return;
            }
            return self.try_later(now, remote_token);
        }
        if random {
            budget.begin();
        }
        let (peer, relay, token) = if delayed {
            (
                self.server_relay.peer_address,
                self.server_relay.relay_address,
                None,
            )
        } else {
            (
                self.server_address,
                self.relay_address,
                Some(self.token(self.server_address)),
            )
        };
        let payload = self.update(true, token, remote_token);
        self.send(relay, peer, payload);
        self.awaiting = Awaiting::Punch {
            random,
            token,
            peer,
        };
        self.step = Step::Reply;
    }

    fn update(
        &mut self,
        punching: bool,
        token: Option<[u8; 32]>,
        remote_token: Option<[u8; 32]>,
    ) -> HolepunchPayload {
        HolepunchPayload {
            error: ErrorCode::None.to_u64(),
            firewall: self.p.nat().firewall().to_u64(),
            round: self.next_round(),
            connected: false,
            punching,
            addresses: self.p.nat().addresses().map(<[_]>::to_vec),
            remote_address: None,
            token,
            remote_token,
        }
    }

    fn try_later(&mut self, now: Instant, remote_token: Option<[u8; 32]>) {
        // `tryLater` only runs with a relay token; without one the callers failed already.
        let jitter_ms = self.p.random_u64() % (TRY_LATER_JITTER.as_millis() as u64 + 1);
        self.step = Step::TryLater {
            until: now + TRY_LATER_MIN + Duration::from_millis(jitter_ms),
            remote_token,
        };
    }

    /// `abort`: tell the server, then fail.
    fn abort(&mut self, now: Instant, budget: &mut RandomPunches, err: HolepunchError) {
        let payload = HolepunchPayload {
            error: ErrorCode::Aborted.to_u64(),
            firewall: Firewall::Unknown.to_u64(),
            round: self.next_round(),
            connected: false,
            punching: false,
            addresses: None,
            remote_address: None,
            token: None,
            remote_token: None,
        };
        self.send(
            self.server_relay.relay_address,
            self.server_relay.peer_address,
            payload,
        );
        self.fail(now, budget, err);
    }

    fn fail(&mut self, now: Instant, budget: &mut RandomPunches, err: HolepunchError) {
        self.forget_reply(budget);
        self.step = Step::Done;
        self.p.destroy(now, budget, None);
        self.p.events.push_back(Event::Failed(err));
    }

    /// Notices the puncher connecting or giving up.
    fn settle(&mut self, budget: &mut RandomPunches) {
        if self.p.connected() || self.p.destroyed() {
            self.step = Step::Done;
            self.forget_reply(budget);
        }
    }

    /// Stops waiting for a reply; a random punch round committed to the budget gives its
    /// place back (JS decrements in `roundPunch`'s `finally` whenever the reply settles).
    fn forget_reply(&mut self, budget: &mut RandomPunches) {
        if let Awaiting::Punch { random: true, .. } = self.awaiting {
            budget.cancel();
        }
        self.awaiting = Awaiting::None;
    }
}
