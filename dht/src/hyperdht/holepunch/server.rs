//! The server's side of a holepunch (JS: `hyperdht/lib/server.js` `_onpeerholepunch`,
//! `_abort`, and the puncher `_addHandshake` sets up with its `prepunching` timeout).
//!
//! The server creates its puncher when it answers a relayed handshake
//! ([`ServerPunch::new`]); the puncher samples its NAT at once. Each PEER_HOLEPUNCH message
//! from the client ([`ServerPunch::on_request`]) updates the view of the client, waits for our
//! NAT analysis (replacing an unstable socket when the client is not punching yet), fires a
//! fast-mode probe when the client already opened its NAT towards our address, starts
//! punching when the client is, and is answered with our view ([`super::Action::Reply`]).

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::{
    Action, Event, HolepunchError, Puncher, RandomPunches, Sampling, SocketId, remote_is_random,
};
use crate::crypto::keyed_hash;
use crate::hyperdht::messages::HolepunchPayload;
use crate::hyperdht::{ErrorCode, Firewall};

/// How long a puncher waits for the client to start punching before it is destroyed
/// (`HANDSHAKE_INITIAL_TIMEOUT`).
pub const HANDSHAKE_INITIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests waiting for the NAT analysis at once. JS keeps one pending call per request; a
/// client sends one message at a time and waits for its answer, so more are not a real
/// client's. Requests beyond it get no answer (the relay's request times out).
pub const MAX_PENDING: usize = 4;

/// What [`ServerPunch::new`] needs from the handshake.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The client's firewall from its handshake payload.
    pub client_firewall: u64,
    /// Our random secret for address tokens (`SecurePayload._localSecret`).
    pub local_secret: [u8; 32],
    /// A blind relay pairs this connection (`h.relayToken`): a rate-limited random punch is
    /// answered with TRY_LATER instead of aborting.
    pub relay_through: bool,
    /// NAT sampling.
    pub sampling: Sampling,
    /// Seed of the puncher's randomness.
    pub seed: [u8; 32],
}

/// A PEER_HOLEPUNCH request that reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRequest {
    /// The caller's handle, echoed in [`super::Action::Reply`].
    pub request: u64,
    /// The decrypted payload; `None` when it did not decrypt or decode (not answered).
    pub payload: Option<HolepunchPayload>,
    /// The client's address as the relay saw it (`peerAddress`; without it, not answered).
    pub peer_address: Option<SocketAddrV4>,
    /// Whether the sender is one of our announce relays (`_announcer.isRelay(req.from)`): only
    /// then are tokens given and trusted.
    pub from_server_relay: bool,
    /// The socket it arrived on, when one of the puncher's (then it is a NAT sample).
    pub on_socket: Option<SocketId>,
    /// Our address as the sender saw it (the request's `to`).
    pub to: SocketAddrV4,
    /// The sender.
    pub from: SocketAddrV4,
}

#[derive(Debug, Clone)]
struct Pending {
    request: u64,
    payload: HolepunchPayload,
    peer_address: SocketAddrV4,
    from_server_relay: bool,
    token: [u8; 32],
    reopen: bool,
}

/// The server's punch for one handshake.
#[derive(Debug)]
pub struct ServerPunch {
    p: Puncher,
    local_secret: [u8; 32],
    relay_through: bool,
    round: u64,
    pending: VecDeque<Pending>,
    prepunch_deadline: Option<Instant>,
    done: bool,
}

impl ServerPunch {
    /// The puncher of a relayed handshake answered at `now` (`setupHolepuncher`).
    pub fn new(now: Instant, cfg: ServerConfig) -> Self {
        ServerPunch {
            p: Puncher::new(false, cfg.client_firewall, cfg.sampling, cfg.seed),
            local_secret: cfg.local_secret,
            relay_through: cfg.relay_through,
            round: 0,
            pending: VecDeque::new(),
            prepunch_deadline: Some(now + HANDSHAKE_INITIAL_TIMEOUT),
            done: false,
        }
    }

    /// The puncher's socket: the handshake reply goes out from it (`replyFromPuncher`), so the
    /// client learns its address.
    pub fn socket(&self) -> SocketId {
        self.p.socket()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.p.actions.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.p.events.pop_front()
    }

    /// Whether the punch is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Requests waiting for the NAT analysis.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Our NAT verdict so far.
    pub fn firewall(&self) -> Firewall {
        self.p.nat().firewall()
    }

    /// When to call [`ServerPunch::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        match (self.prepunch_deadline, self.p.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant, budget: &mut RandomPunches) {
        if self.done {
            return;
        }
        if self.prepunch_deadline.is_some_and(|d| d <= now) {
            self.prepunch_deadline = None;
            self.p.destroy(now, budget, Some(HolepunchError::Aborted));
        }
        self.p.tick(now, budget);
        self.settle();
    }

    /// A sampling ping from `socket` was answered.
    pub fn on_pong(
        &mut self,
        now: Instant,
        socket: SocketId,
        to: SocketAddrV4,
        from: SocketAddrV4,
        budget: &mut RandomPunches,
    ) {
        self.p.on_pong(socket, to, from);
        self.process(now, budget);
    }

    /// A sampling ping from `socket` failed.
    pub fn on_ping_failed(&mut self, now: Instant, socket: SocketId, budget: &mut RandomPunches) {
        self.p.on_ping_failed(socket);
        self.process(now, budget);
    }

    /// A datagram of at most one byte arrived on `socket` from `from`: answered with a probe.
    pub fn on_probe(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddrV4,
        budget: &mut RandomPunches,
    ) {
        if !self.done {
            self.p.on_probe(now, socket, from, budget);
        }
    }

    /// The stream's first packet arrived on `socket` from `from` (JS: the raw stream's
    /// firewall hook calls `onsocket`, which destroys the puncher quietly): reports
    /// [`Event::Connected`] and releases the other sockets.
    pub fn on_stream_packet(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddrV4,
        budget: &mut RandomPunches,
    ) {
        if self.done || !self.p.owns(socket) {
            return;
        }
        let strategy = self.p.strategy();
        self.p.finish_connected(now, socket, budget);
        self.p.events.push_back(Event::Connected {
            socket,
            remote: from,
            strategy,
        });
        self.done = true;
        self.pending.clear();
    }

    /// A PEER_HOLEPUNCH message for this handshake (`_onpeerholepunch`'s first half).
    pub fn on_request(&mut self, now: Instant, req: ServerRequest, budget: &mut RandomPunches) {
        if self.done || self.p.destroyed() {
            return;
        }
        let (Some(payload), Some(peer_address)) = (req.payload, req.peer_address) else {
            return;
        };
        if payload.error != ErrorCode::None.to_u64() {
            if payload.round >= self.round {
                self.round = payload.round;
            }
            return self.abort(now, budget, req.request, ErrorCode::Aborted);
        }
        let token = keyed_hash(&self.local_secret, peer_address.ip().to_string().as_bytes());
        let echoed = req.from_server_relay && payload.remote_token == Some(token);
        if req.on_socket == Some(self.p.socket()) {
            self.p.nat_mut().add(req.to, req.from);
        }
        if payload.round >= self.round {
            self.round = payload.round;
            self.p.update_remote(
                payload.punching,
                payload.firewall,
                payload.addresses.as_deref(),
                echoed.then_some(*peer_address.ip()),
            );
        }
        if self.pending.len() >= MAX_PENDING {
            return;
        }
        self.pending.push_back(Pending {
            request: req.request,
            payload,
            peer_address,
            from_server_relay: req.from_server_relay,
            token,
            reopen: false,
        });
        self.process(now, budget);
    }

    /// `_onpeerholepunch`'s second half, for every request whose analysis is ready.
    fn process(&mut self, now: Instant, budget: &mut RandomPunches) {
        while let Some(front) = self.pending.front_mut() {
            if self.p.destroyed() {
                self.pending.clear();
                break;
            }
            let Some(stable) = self.p.analyze(front.reopen) else {
                break;
            };
            if !stable && !front.reopen {
                if !self.p.remote_holepunching() {
                    front.reopen = true;
                    continue;
                }
            } else if !stable {
                let request = front.request;
                self.pending.clear();
                self.abort(now, budget, request, ErrorCode::Aborted);
                break;
            }
            let Some(req) = self.pending.pop_front() else {
                break;
            };
            self.answer(now, req, budget);
        }
        self.settle();
    }

    fn answer(&mut self, now: Instant, req: Pending, budget: &mut RandomPunches) {
        let fw = self.p.nat().firewall();
        // Fast mode: the client opened its NAT towards one of our addresses; probe back now.
        let consistent = matches!(fw, Firewall::Open | Firewall::Consistent);
        if consistent
            && let Some(ra) = req.payload.remote_address
            && self.p.nat().addresses().is_some_and(|a| a.contains(&ra))
        {
            self.p.ping(req.peer_address);
        }
        // A punching round repeated while our punch already runs (the client's request was
        // retried after its reply was lost) is answered like the first. JS checks the random
        // budget again, finds its own running punch holding it and aborts the punch; we do not
        // count a punch against itself.
        if self.p.remote_holepunching() && !self.p.punching() {
            self.prepunch_deadline = None;
            let random = remote_is_random(self.p.remote_firewall()) || fw == Firewall::Random;
            if random && budget.blocked(now) {
                if !self.relay_through {
                    return self.abort(now, budget, req.request, ErrorCode::TryLater);
                }
                let payload = self.payload(ErrorCode::TryLater, &req);
                self.reply(req.request, Some(self.p.socket()), payload);
                return;
            }
            if !self.p.punch(now, budget) {
                return self.abort(now, budget, req.request, ErrorCode::Aborted);
            }
        }
        if self.p.nat().firewall() != Firewall::Unknown {
            self.p.nat_mut().freeze();
        }
        let payload = self.payload(ErrorCode::None, &req);
        self.reply(req.request, Some(self.p.socket()), payload);
    }

    fn payload(&self, error: ErrorCode, req: &Pending) -> HolepunchPayload {
        HolepunchPayload {
            error: error.to_u64(),
            firewall: self.p.nat().firewall().to_u64(),
            round: self.round,
            connected: self.p.connected(),
            punching: self.p.punching(),
            addresses: self.p.nat().addresses().map(<[_]>::to_vec),
            remote_address: None,
            token: req.from_server_relay.then_some(req.token),
            remote_token: req.payload.token,
        }
    }

    fn reply(&mut self, request: u64, socket: Option<SocketId>, payload: HolepunchPayload) {
        self.p.actions.push_back(Action::Reply {
            request,
            socket,
            payload,
        });
    }

    /// `_abort`: answer with an error from the DHT socket and destroy the puncher.
    fn abort(&mut self, now: Instant, budget: &mut RandomPunches, request: u64, error: ErrorCode) {
        let payload = HolepunchPayload {
            error: error.to_u64(),
            firewall: Firewall::Unknown.to_u64(),
            round: self.round,
            connected: false,
            punching: false,
            addresses: None,
            remote_address: None,
            token: None,
            remote_token: None,
        };
        self.reply(request, None, payload);
        self.p.destroy(now, budget, Some(HolepunchError::Aborted));
        self.settle();
    }

    fn settle(&mut self) {
        if self.p.destroyed() {
            self.done = true;
            self.pending.clear();
        }
    }
}
