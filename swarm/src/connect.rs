//! Connections of the swarm core (JS `hyperswarm/index.js`: `_attemptClientConnections`,
//! `_connect`, `_handleServerConnection`, `_handleFirewall`): the outgoing attempts, incoming
//! streams and the duplicate rule.

use std::time::{Duration, Instant};

use crate::SwarmCore;
use crate::types::{Action, CloseReason, ConnError, ConnId, Event, PublicKey};

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Outgoing, waiting for the firewall's verdict (only with `firewall_outgoing`).
    Checking,
    /// Outgoing, `Dial` sent.
    Dialing,
    /// Open and handed to the application.
    Open,
    /// Incoming that beat an existing connection; installed once `old` has closed (JS
    /// `_handleServerConnectionSwap`).
    AwaitingSwap { old: ConnId },
    /// `Close` sent; waiting for `handle_closed`.
    Closing { was_open: bool },
}

/// One connection (JS: the `NoiseSecretStream` in `_allConnections`).
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) remote: PublicKey,
    /// We dialled it (JS `conn.isInitiator` for hyperswarm's purposes).
    pub(crate) client: bool,
    /// Dialled from the queue (JS `_connect(peerInfo, queued)`).
    pub(crate) queued: bool,
    pub(crate) state: State,
    /// JS `rawBytesRead > 0` / `rawBytesWritten > 0`.
    pub(crate) read: bool,
    pub(crate) written: bool,
    /// Counted in the connection totals: outgoing from the start, incoming once installed.
    pub(crate) counted: bool,
}

impl Conn {
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    fn was_open(&self) -> bool {
        matches!(self.state, State::Open | State::Closing { was_open: true })
    }
}

impl SwarmCore {
    /// JS `_withinMaxPeers`: `factor * connections < maxPeers`, the factor growing with the
    /// number of explicit peers (1, 2, 3, 4 for 0, 1, 2-3, 4+).
    pub(crate) fn within_max_peers(&self) -> bool {
        let factor = match self.explicit.len() {
            0 => 1,
            1 => 2,
            2 | 3 => 3,
            _ => 4,
        };
        factor * self.by_key.len() < self.opts.max_peers
    }

    fn should_connect_explicit(&self) -> bool {
        !self.destroyed && !self.suspended && self.connecting < self.opts.max_parallel
    }

    fn should_connect(&self) -> bool {
        self.should_connect_explicit()
            && self.within_max_peers()
            && self.client_connections < self.opts.max_client_connections
    }

    /// JS `_shouldRequeue`: explicit peers, and peers found under a topic still joined.
    fn should_requeue(&self, key: &PublicKey) -> bool {
        let Some(p) = self.peers.get(key) else {
            return false;
        };
        if self.suspended {
            return false;
        }
        p.explicit || (!self.destroyed && p.topics.iter().any(|t| self.discoveries.contains_key(t)))
    }

    /// Whether an open connection to `key` exists (JS `swarm.connections.has`).
    pub(crate) fn is_connected(&self, key: &PublicKey) -> bool {
        self.by_key
            .get(key)
            .and_then(|c| self.conns.get(c))
            .is_some_and(Conn::is_open)
    }

    /// JS `_attemptClientConnections`: explicit peers first (at most 5 attempts, spaced
    /// `attempts` seconds after the last disconnect), then the queue by priority.
    pub(crate) fn attempt(&mut self, now: Instant) {
        if self.draining || self.suspended {
            return;
        }
        self.draining = true;
        for key in self.explicit.clone() {
            if !self.should_connect_explicit() {
                break;
            }
            let Some(p) = self.peers.get(&key) else {
                continue;
            };
            let wait = Duration::from_secs(u64::from(p.attempts));
            let recent = p
                .disconnected_at
                .is_some_and(|at| now.saturating_duration_since(at) < wait);
            if p.attempts >= 5 || recent {
                continue;
            }
            self.connect(key, false);
        }
        while !self.queue.is_empty() && self.should_connect() {
            let Some(key) = self.queue.shift(&mut self.rng) else {
                break;
            };
            if let Some(p) = self.peers.get_mut(&key) {
                p.queued = false;
            }
            self.connect(key, true);
        }
        self.draining = false;
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// JS `_connect(peerInfo, queued)`.
    fn connect(&mut self, key: PublicKey, queued: bool) {
        let banned = self.peers.get(&key).is_none_or(|p| p.banned);
        if banned || self.by_key.contains_key(&key) || key == self.opts.public_key {
            if queued {
                self.flush_maybe(&key);
            }
            return;
        }
        let id = ConnId(self.next_id());
        let state = if self.opts.firewall_outgoing {
            State::Checking
        } else {
            State::Dialing
        };
        self.conns.insert(
            id,
            Conn {
                remote: key,
                client: true,
                queued,
                state,
                read: false,
                written: false,
                counted: true,
            },
        );
        self.by_key.insert(key, id);
        self.connecting += 1;
        self.client_connections += 1;
        if state == State::Checking {
            self.actions.push_back(Action::CheckFirewall {
                conn: id,
                remote: key,
            });
        } else {
            self.dial(id);
        }
    }

    fn dial(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(&id) else { return };
        let key = c.remote;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let force = p.force_relaying;
        let relay_addresses = p.relay_addresses.clone();
        // JS `toRelayFunction`: the relay when forced or when our NAT is randomized.
        let relay_through = self.opts.relay_through.filter(|_| force || self.randomized);
        self.stats.client_attempted += 1;
        self.actions.push_back(Action::Dial {
            conn: id,
            remote: key,
            relay_addresses,
            relay_through,
        });
    }

    /// The application's firewall answered [`Action::CheckFirewall`] (`refuse`: JS's firewall
    /// returned true). A refusal bans the peer, as JS `_handleFirewall` does.
    pub fn handle_firewall_verdict(&mut self, now: Instant, conn: ConnId, refuse: bool) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.state != State::Checking {
            return;
        }
        let key = c.remote;
        // Banned meanwhile (an inbound refusal): as a refusal, without a second ban.
        let banned = self.peers.get(&key).is_none_or(|p| p.banned);
        if !refuse && !self.destroyed && !banned {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.state = State::Dialing;
            }
            self.dial(conn);
            return;
        }
        let queued = c.queued;
        self.conns.remove(&conn);
        self.forget_key(key, conn);
        self.connecting = self.connecting.saturating_sub(1);
        self.client_connections = self.client_connections.saturating_sub(1);
        if refuse && !banned {
            self.ban(key, CloseReason::Firewalled);
        }
        if queued {
            self.flush_maybe(&key);
        }
        self.attempt(now);
    }

    /// JS `_handleFirewall(remotePublicKey, payload)` for an incoming handshake: `app_refuses`
    /// is the application firewall's answer. Returns true when the handshake must be refused;
    /// our own key and banned peers are always refused, and a refusal bans the peer.
    pub fn handle_inbound_firewall(&mut self, key: PublicKey, app_refuses: bool) -> bool {
        if key == self.opts.public_key {
            return true;
        }
        if self.peers.get(&key).is_some_and(|p| p.banned) {
            return true;
        }
        if app_refuses {
            self.ban(key, CloseReason::Firewalled);
        }
        app_refuses
    }

    /// JS `_banPeer`.
    fn ban(&mut self, key: PublicKey, reason: CloseReason) {
        if let Some(p) = self.upsert_existing(key) {
            p.banned = true;
            self.stats.banned_peers += 1;
            self.events.push_back(Event::Ban {
                remote: key,
                reason,
            });
        }
    }

    /// Bytes moved on a connection (JS `rawBytesRead` / `rawBytesWritten` above zero); the
    /// duplicate rule prefers a new connection over one that carried traffic both ways.
    pub fn note_traffic(&mut self, conn: ConnId, read: bool, written: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.read |= read;
            c.written |= written;
        }
    }

    /// An outgoing attempt opened (JS `conn.on('open')` in `_connect`).
    pub fn handle_opened(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !c.client || c.state != State::Dialing {
            return;
        }
        let (key, queued) = (c.remote, c.queued);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = State::Open;
        }
        self.stats.client_opened += 1;
        self.connect_done(now);
        self.open += 1;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.connected(now);
        p.client = true;
        let peer = p.snapshot();
        self.events.push_back(Event::Connection { conn, peer });
        if queued {
            self.flush_maybe(&key);
        }
    }

    /// JS `_connectDone`.
    fn connect_done(&mut self, now: Instant) {
        self.connecting = self.connecting.saturating_sub(1);
        if self.connecting < self.opts.max_parallel {
            self.attempt(now);
        }
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// A connection closed or an attempt failed (JS `conn.on('error')` then `'close'`); `error`
    /// is the JS error code class it failed with, if any.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, error: Option<ConnError>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let key = c.remote;
        match c.state {
            State::AwaitingSwap { .. } => return,
            State::Checking => {
                // Never dialled: an abort, not a disconnect.
                self.conns.insert(conn, c);
                self.handle_firewall_verdict_abort(conn);
                self.attempt(now);
                return;
            }
            _ => {}
        }
        let was_open = c.was_open();
        if was_open {
            self.open = self.open.saturating_sub(1);
            self.events
                .push_back(Event::Disconnected { conn, remote: key });
        }
        if c.client {
            self.client_closed(now, conn, &c, was_open, error);
        } else if c.counted {
            self.forget_key(key, conn);
            self.server_connections = self.server_connections.saturating_sub(1);
            self.stats.server_closed += 1;
            self.maybe_delete_peer(&key);
            self.attempt(now);
        }
        self.finish_swap(now, conn);
    }

    fn client_closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        c: &Conn,
        opened: bool,
        error: Option<ConnError>,
    ) {
        let key = c.remote;
        if !opened {
            // JS's `onerror`, removed once open: holepunch failures force the relay.
            let forces = error.is_some_and(ConnError::forces_relaying);
            if forces
                && self.opts.relay_through.is_some()
                && let Some(p) = self.peers.get_mut(&key)
            {
                p.force_relaying = true;
                p.attempts = 0;
            }
            self.connect_done(now);
        }
        self.stats.client_closed += 1;
        self.forget_key(key, conn);
        self.client_connections = self.client_connections.saturating_sub(1);
        let requeue = self.should_requeue(&key);
        if let Some(p) = self.peers.get_mut(&key) {
            p.disconnected(now);
            if !p.waiting {
                p.waiting = requeue && self.timer.add(now, p);
            }
        }
        self.maybe_delete_peer(&key);
        if !opened && c.queued {
            self.flush_maybe(&key);
        }
        self.attempt(now);
    }

    /// JS `ConnectionSet.delete(conn)`: only if it is still the key's connection.
    fn forget_key(&mut self, key: PublicKey, conn: ConnId) {
        if self.by_key.get(&key) == Some(&conn) {
            self.by_key.remove(&key);
        }
    }

    /// A connection waiting for `old` to close is handled again now (JS
    /// `_handleServerConnectionSwap`).
    fn finish_swap(&mut self, now: Instant, old: ConnId) {
        let mut waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::AwaitingSwap { old })
            .map(|(id, _)| *id)
            .collect();
        waiting.sort();
        for id in waiting {
            self.server_connection(now, id);
        }
    }

    /// An incoming connection completed its handshake (JS `_handleServerConnection`). Returns
    /// its id; the core may answer at once with [`Action::Close`] (duplicate, limit, destroyed).
    pub fn handle_incoming(&mut self, now: Instant, remote: PublicKey) -> ConnId {
        let id = ConnId(self.next_id());
        self.conns.insert(
            id,
            Conn {
                remote,
                client: false,
                queued: false,
                state: State::Dialing,
                read: false,
                written: false,
                counted: false,
            },
        );
        self.server_connection(now, id);
        id
    }

    fn server_connection(&mut self, _now: Instant, id: ConnId) {
        let Some(remote) = self.conns.get(&id).map(|c| c.remote) else {
            return;
        };
        if self.destroyed {
            return self.close(id, CloseReason::Destroyed);
        }
        if self.suspended {
            return self.close(id, CloseReason::Suspended);
        }
        let banned = self.peers.get(&remote).is_some_and(|p| p.banned);
        if remote == self.opts.public_key || banned {
            return self.close(id, CloseReason::Firewalled);
        }
        if let Some(&existing) = self.by_key.get(&remote) {
            let Some(e) = self.conns.get(&existing) else {
                return;
            };
            // Keep the new one if the old one carried traffic both ways (the peer must have
            // lost it and reconnected); otherwise the one the larger key dialled survives:
            // this incoming one was dialled by the remote, so it wins iff remote > local.
            let outdated = e.read && e.written;
            let expected_initiator = self.opts.public_key > remote;
            let keep_new = outdated || !expected_initiator;
            if !keep_new {
                self.actions
                    .push_back(Action::SendKeepAlive { conn: existing });
                return self.close(id, CloseReason::Duplicate);
            }
            let checking = e.state == State::Checking;
            self.close(existing, CloseReason::Duplicate);
            if !checking {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.state = State::AwaitingSwap { old: existing };
                }
                return;
            }
            // An attempt still waiting for its firewall verdict is dropped at once.
        }
        let total = self.by_key.len();
        if self.server_connections >= self.opts.max_server_connections
            || total >= crate::MAX_CONNECTIONS
        {
            return self.close(id, CloseReason::Limit);
        }
        if self.upsert_peer(remote, None).is_none() {
            return self.close(id, CloseReason::Limit);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.state = State::Open;
        c.counted = true;
        self.by_key.insert(remote, id);
        self.open += 1;
        self.server_connections += 1;
        self.stats.server_opened += 1;
        let Some(p) = self.peers.get_mut(&remote) else {
            return;
        };
        p.client = false;
        let peer = p.snapshot();
        self.events.push_back(Event::Connection { conn: id, peer });
    }

    fn handle_firewall_verdict_abort(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.forget_key(c.remote, conn);
        self.connecting = self.connecting.saturating_sub(1);
        self.client_connections = self.client_connections.saturating_sub(1);
        if c.queued {
            self.flush_maybe(&c.remote);
        }
    }

    /// Sends `Close` once and marks the connection closing.
    pub(crate) fn close(&mut self, id: ConnId, reason: CloseReason) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(c.state, State::Closing { .. }) {
            return;
        }
        if c.state == State::Checking {
            // Never dialled: nothing for the driver to close; a later verdict is ignored.
            return self.handle_firewall_verdict_abort(id);
        }
        let was_open = c.state == State::Open;
        c.state = State::Closing { was_open };
        self.actions.push_back(Action::Close { conn: id, reason });
    }
}
