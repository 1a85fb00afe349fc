//! The sans-IO swarm (JS `hyperswarm/index.js` class `Hyperswarm`): topics, flushes, timers and
//! the public API. Connection handling (dials, incoming streams, the duplicate rule) is in
//! `connect.rs`. Time comes in as `now`, randomness from [`Options::seed`]; the driver performs
//! the [`Action`]s and feeds results back.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::connect::Conn;
use crate::discovery::{DELAY_GRACE_PERIOD, Discovery, MAX_SESSIONS_PER_TOPIC, Refresh, Session};
use crate::flush::{FlushWait, PendingFlush};
use crate::peer::{PeerInfo, PeerQueue, RetryTimer};
use crate::types::{
    Action, ConnId, Event, JoinOptions, Options, PeerRecord, PeerSnapshot, PublicKey, RefreshId,
    Rng, SessionId, SwarmError, Topic,
};
use crate::{MAX_EXPLICIT_PEERS, MAX_KNOWN_PEERS, MAX_TOPICS};

/// The swarm policy core (JS `Hyperswarm`).
#[derive(Debug)]
pub struct SwarmCore {
    pub(crate) opts: Options,
    pub(crate) rng: Rng,
    pub(crate) destroyed: bool,
    /// JS `suspended`.
    pub(crate) suspended: bool,
    /// JS `dht.randomized`: our NAT is randomized, so dials go through `relay_through`.
    pub(crate) randomized: bool,
    /// `None`: never asked; `Some(false)`: `Listen` sent; `Some(true)`: listening.
    pub(crate) listening: Option<bool>,
    pub(crate) peers: HashMap<PublicKey, PeerInfo>,
    /// JS `explicitPeers` (insertion order).
    pub(crate) explicit: Vec<PublicKey>,
    pub(crate) queue: PeerQueue,
    pub(crate) timer: RetryTimer,
    pub(crate) conns: HashMap<ConnId, Conn>,
    /// JS `_allConnections`: the latest connection (open or pending) per key.
    pub(crate) by_key: HashMap<PublicKey, ConnId>,
    /// JS `connecting`.
    pub(crate) connecting: usize,
    /// JS `connections.size`.
    pub(crate) open: usize,
    pub(crate) client_connections: usize,
    pub(crate) server_connections: usize,
    pub(crate) discoveries: HashMap<Topic, Discovery>,
    pub(crate) flush_waits: Vec<FlushWait>,
    pub(crate) pending_flushes: Vec<PendingFlush>,
    pub(crate) flush_tick: u64,
    pub(crate) draining: bool,
    pub(crate) stats: crate::types::Stats,
    next_id: u64,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) events: VecDeque<Event>,
}

impl SwarmCore {
    /// JS `new Hyperswarm(opts)` (the retry timers' random periods are drawn here).
    pub fn new(opts: Options) -> Self {
        let mut rng = Rng::new(opts.seed);
        let timer = RetryTimer::new(&mut rng, opts.backoffs_ms, opts.backoff_jitter_ms);
        SwarmCore {
            opts,
            rng,
            destroyed: false,
            suspended: false,
            randomized: false,
            listening: None,
            peers: HashMap::new(),
            explicit: Vec::new(),
            queue: PeerQueue::default(),
            timer,
            conns: HashMap::new(),
            by_key: HashMap::new(),
            connecting: 0,
            open: 0,
            client_connections: 0,
            server_connections: 0,
            discoveries: HashMap::new(),
            flush_waits: Vec::new(),
            pending_flushes: Vec::new(),
            flush_tick: 0,
            draining: false,
            stats: crate::types::Stats::default(),
            next_id: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Our key.
    pub fn public_key(&self) -> PublicKey {
        self.opts.public_key
    }

    /// JS `swarm.peers.get(key)`.
    pub fn peer(&self, key: &PublicKey) -> Option<PeerSnapshot> {
        self.peers.get(key).map(PeerInfo::snapshot)
    }

    /// Number of known peers (JS `swarm.peers.size`).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// JS `swarm.connecting`.
    pub fn connecting(&self) -> usize {
        self.connecting
    }

    /// JS `swarm.connections.size`.
    pub fn connection_count(&self) -> usize {
        self.open
    }

    /// Peers waiting in the connect queue (JS `_queue.length`).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The tick interval of one retry timer (JS `BulkTimer`: 0.66 x its period, drawn once at
    /// construction); a peer handed to it is released after one to two intervals.
    pub fn retry_tick_interval(&self, b: crate::Backoff) -> std::time::Duration {
        self.timer.timer(b).interval()
    }

    /// Peers waiting in the retry timers.
    pub fn retry_waiting(&self) -> usize {
        self.timer.len()
    }

    /// JS `swarm.stats`.
    pub fn stats(&self) -> crate::types::Stats {
        self.stats
    }

    /// Whether `destroy` was called.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// Topics joined (JS `swarm.topics()`).
    pub fn topics(&self) -> Vec<Topic> {
        let mut t: Vec<Topic> = self.discoveries.keys().copied().collect();
        t.sort();
        t
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let refresh = self
            .discoveries
            .values()
            .filter_map(|d| d.timer.map(|t| t.0));
        refresh.chain(self.timer.deadline()).min()
    }

    /// Runs the retry timers (JS `_requeue`) and topic refresh timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.destroyed || self.suspended {
            return;
        }
        let batch = self.timer.tick(now);
        if !batch.is_empty() {
            self.requeue(now, batch);
        }
        let mut due: Vec<Topic> = self
            .discoveries
            .values()
            .filter(|d| d.timer.is_some_and(|t| t.0 <= now))
            .map(|d| d.topic)
            .collect();
        due.sort();
        for topic in due {
            let Some(d) = self.discoveries.get_mut(&topic) else {
                continue;
            };
            let Some((_, start, delay)) = d.timer.take() else {
                continue;
            };
            if now.saturating_duration_since(start) > delay + DELAY_GRACE_PERIOD {
                d.refresh_later(now, true, &mut self.rng);
            } else {
                self.refresh(now, topic);
            }
        }
    }

    /// JS `_requeue(batch)`.
    fn requeue(&mut self, now: Instant, batch: Vec<PublicKey>) {
        for key in batch {
            let tick = self.flush_tick;
            let connected = self.by_key.contains_key(&key);
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.waiting = false;
            if !p.update_priority() || connected || p.queued {
                // Not in JS: forget peers nothing refers to any more (bounds `peers`).
                self.maybe_delete_peer(&key);
                continue;
            }
            p.queued = true;
            p.flush_tick = tick;
            self.queue.add(key, p.priority);
        }
        self.attempt(now);
    }

    /// JS `join(topic, opts)`: a new session on the topic's discovery, refreshed at once.
    pub fn join(
        &mut self,
        now: Instant,
        topic: Topic,
        opts: JoinOptions,
    ) -> Result<SessionId, SwarmError> {
        if self.destroyed {
            return Err(SwarmError::Destroyed);
        }
        if !opts.client && !opts.server {
            return Err(SwarmError::NeitherClientNorServer);
        }
        if !self.discoveries.contains_key(&topic) && self.discoveries.len() >= MAX_TOPICS {
            return Err(SwarmError::TooManyTopics);
        }
        let id = SessionId(self.next_id());
        let d = self
            .discoveries
            .entry(topic)
            .or_insert_with(|| Discovery::new(topic));
        if d.sessions.len() >= MAX_SESSIONS_PER_TOPIC {
            return Err(SwarmError::TooManyTopics);
        }
        d.sessions.push(Session {
            id,
            client: opts.client,
            server: opts.server,
        });
        d.limit = opts.limit;
        self.refresh(now, topic);
        Ok(id)
    }

    /// JS `session.refresh({ server, client, limit })`: change a session's mode and refresh.
    pub fn update_session(
        &mut self,
        now: Instant,
        session: SessionId,
        opts: JoinOptions,
    ) -> Result<(), SwarmError> {
        if self.destroyed {
            return Err(SwarmError::Destroyed);
        }
        if !opts.client && !opts.server {
            return Err(SwarmError::NeitherClientNorServer);
        }
        let Some(d) = self
            .discoveries
            .values_mut()
            .find(|d| d.sessions.iter().any(|s| s.id == session))
        else {
            return Err(SwarmError::UnknownSession);
        };
        for s in d.sessions.iter_mut().filter(|s| s.id == session) {
            s.client = opts.client;
            s.server = opts.server;
        }
        d.limit = opts.limit;
        let topic = d.topic;
        self.refresh(now, topic);
        Ok(())
    }

    /// JS `peerInfo.ban(val)` from the application: a banned peer is never dialled and its
    /// handshakes are refused (a live connection stays until it closes, as in JS).
    pub fn set_banned(&mut self, key: PublicKey, banned: bool) {
        if let Some(p) = self.upsert_existing(key) {
            p.banned = banned;
        }
        self.maybe_delete_peer(&key);
    }

    /// JS `peerInfo.reconnect(val)`: whether the peer is retried after a disconnect.
    pub fn set_reconnecting(&mut self, key: PublicKey, reconnecting: bool) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.reconnecting = reconnecting;
        }
    }

    pub(crate) fn upsert_existing(&mut self, key: PublicKey) -> Option<&mut PeerInfo> {
        if self.peers.contains_key(&key) {
            return self.peers.get_mut(&key);
        }
        self.upsert_peer(key, None)
    }

    /// JS `session.destroy()`: the last session leaves the topic; if no server session is left
    /// and the topic was announced, a refresh in client mode unannounces it.
    pub fn leave_session(&mut self, now: Instant, session: SessionId) -> Result<(), SwarmError> {
        let Some(d) = self
            .discoveries
            .values_mut()
            .find(|d| d.sessions.iter().any(|s| s.id == session))
        else {
            return Err(SwarmError::UnknownSession);
        };
        d.sessions.retain(|s| s.id != session);
        let topic = d.topic;
        if d.sessions.is_empty() {
            self.leave(now, topic);
        } else if d.server_sessions() == 0 && d.needs_unannounce {
            self.refresh(now, topic);
        }
        Ok(())
    }

    /// JS `leave(topic)`: stop the topic's walk and timer, unannounce it if it was announced.
    pub fn leave(&mut self, now: Instant, topic: Topic) {
        let Some(d) = self.discoveries.remove(&topic) else {
            return;
        };
        if let Some(r) = d.refresh {
            if let Refresh::Query { id, .. } = r {
                self.actions
                    .push_back(Action::CancelQuery { topic, refresh: id });
            }
            self.refresh_ended(r.id());
        }
        if d.needs_unannounce {
            self.actions.push_back(Action::Unannounce { topic });
        }
        self.settle_flush_waits(now);
    }

    /// JS `discovery.refresh()` (also `session.refresh()`): a walk of the same mode already in
    /// flight is joined; a change of mode cancels it and starts a new one.
    pub(crate) fn refresh(&mut self, now: Instant, topic: Topic) {
        if self.suspended {
            return; // JS: a suspended discovery does not walk; `resume` refreshes
        }
        let listening = self.listening;
        let Some(d) = self.discoveries.get_mut(&topic) else {
            return;
        };
        let server = d.server_sessions() > 0;
        let client = d.client_sessions() > 0;
        let same = server == d.is_server && client == d.is_client;
        if same && d.refresh.is_some() {
            return; // joins the refresh in flight
        }
        let old = d.refresh.take();
        d.is_server = server;
        d.is_client = client;
        let id = RefreshId(self.next_id());
        let Some(d) = self.discoveries.get_mut(&topic) else {
            return;
        };
        if server && listening != Some(true) {
            d.refresh = Some(Refresh::AwaitingListen(id));
        } else {
            d.refresh = Some(Refresh::Query {
                id,
                announcing: server,
            });
        }
        if let Some(old) = old {
            if let Refresh::Query { id: old_id, .. } = old {
                self.actions.push_back(Action::CancelQuery {
                    topic,
                    refresh: old_id,
                });
            }
            self.refresh_ended(old.id());
            self.settle_flush_waits(now);
        }
        if server && listening.is_none() {
            self.listening = Some(false);
            self.actions.push_back(Action::Listen);
        }
        if !server || listening == Some(true) {
            self.start_query(now, topic);
        }
    }

    /// The part of JS `_refresh` after `await swarm.listen()`: issue the walk.
    fn start_query(&mut self, _now: Instant, topic: Topic) {
        let by_key = &self.by_key;
        let conns = &self.conns;
        let Some(d) = self.discoveries.get_mut(&topic) else {
            return;
        };
        let Some(r) = d.refresh else { return };
        let id = r.id();
        let announcing = d.is_server;
        d.refresh = Some(Refresh::Query { id, announcing });
        let clear = announcing && d.first_announce;
        if clear {
            d.first_announce = false;
        }
        if announcing {
            d.needs_unannounce = true;
        }
        d.start_budget(|k| {
            by_key
                .get(k)
                .and_then(|c| conns.get(c))
                .is_some_and(Conn::is_open)
        });
        let action = if announcing {
            Action::Announce {
                topic,
                refresh: id,
                clear,
            }
        } else {
            Action::Lookup {
                topic,
                refresh: id,
                unannounce: d.needs_unannounce,
            }
        };
        self.actions.push_back(action);
    }

    /// The swarm's server listens (answer to [`Action::Listen`]); waiting announces start.
    pub fn handle_listening(&mut self, now: Instant) {
        if self.destroyed || self.listening == Some(true) {
            return;
        }
        self.listening = Some(true);
        let mut waiting: Vec<Topic> = self
            .discoveries
            .values()
            .filter(|d| matches!(d.refresh, Some(Refresh::AwaitingListen(_))))
            .map(|d| d.topic)
            .collect();
        waiting.sort();
        for topic in waiting {
            self.start_query(now, topic);
        }
        for w in &mut self.flush_waits {
            w.listening = false;
        }
        self.settle_flush_waits(now);
    }

    /// Peers from one LOOKUP / ANNOUNCE reply of a topic's walk (JS `for await (const data of
    /// query)` then `_handlePeer` for each).
    pub fn handle_lookup_peers(
        &mut self,
        now: Instant,
        topic: Topic,
        refresh: RefreshId,
        peers: &[PeerRecord],
    ) {
        if self.destroyed {
            return;
        }
        for peer in peers {
            let connected = self.is_connected(&peer.public_key);
            let Some(d) = self.discoveries.get_mut(&topic) else {
                return;
            };
            let current = matches!(d.refresh, Some(Refresh::Query { id, .. }) if id == refresh);
            if !current || !d.is_client {
                return;
            }
            if !d.admit(peer.public_key, connected) {
                continue;
            }
            self.handle_peer(now, peer, topic);
        }
    }

    /// A topic's walk completed (JS: the query's iterator finished). The next refresh is
    /// scheduled; a completed lookup has also done the unannounce it carried.
    pub fn handle_refresh_done(&mut self, now: Instant, topic: Topic, refresh: RefreshId) {
        self.refresh_over(now, topic, refresh, true);
    }

    /// A topic's walk failed (JS: the query threw). The next refresh is scheduled all the
    /// same; an unannounce it carried is still owed, so the next lookup carries it again.
    pub fn handle_refresh_failed(&mut self, now: Instant, topic: Topic, refresh: RefreshId) {
        self.refresh_over(now, topic, refresh, false);
    }

    fn refresh_over(&mut self, now: Instant, topic: Topic, refresh: RefreshId, ok: bool) {
        let Some(d) = self.discoveries.get_mut(&topic) else {
            return;
        };
        let Some(Refresh::Query { id, announcing }) = d.refresh else {
            return;
        };
        if id != refresh {
            return;
        }
        d.refresh = None;
        if ok && !announcing {
            d.needs_unannounce = false;
        }
        if !self.destroyed {
            d.refresh_later(now, false, &mut self.rng);
        }
        self.refresh_ended(refresh);
        self.settle_flush_waits(now);
    }

    /// JS `_handleNetworkChange`: keepalive on every connection, refresh every topic.
    pub fn handle_network_change(&mut self, now: Instant) {
        if self.destroyed || self.suspended {
            return;
        }
        let mut ids: Vec<ConnId> = self.by_key.values().copied().collect();
        ids.sort();
        for conn in ids {
            self.actions.push_back(Action::SendKeepAlive { conn });
        }
        let mut topics = self.topics();
        topics.sort();
        for topic in topics {
            self.refresh(now, topic);
        }
    }

    /// JS `dht.randomized` changed: dials go through `relay_through` while it holds.
    pub fn set_randomized_nat(&mut self, randomized: bool) {
        self.randomized = randomized;
    }

    fn refresh_ended(&mut self, refresh: RefreshId) {
        for w in &mut self.flush_waits {
            w.refreshes.retain(|r| *r != refresh);
        }
    }

    /// JS `joinPeer(publicKey)`: keep dialling this peer whatever the topics.
    pub fn join_peer(&mut self, now: Instant, key: PublicKey) -> Result<(), SwarmError> {
        if self.destroyed {
            return Err(SwarmError::Destroyed);
        }
        let known = self.explicit.contains(&key);
        if !known && self.explicit.len() >= MAX_EXPLICIT_PEERS {
            return Err(SwarmError::TooManyExplicitPeers);
        }
        if self.upsert_peer(key, None).is_none() {
            return Ok(());
        }
        if !known {
            self.explicit.push(key);
        }
        let connected = self.by_key.contains_key(&key);
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        p.explicit = true;
        if connected {
            return Ok(());
        }
        if p.update_priority() {
            self.enqueue(now, key);
        }
        Ok(())
    }

    /// JS `leavePeer(publicKey)`.
    pub fn leave_peer(&mut self, _now: Instant, key: PublicKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.explicit = false;
        self.explicit.retain(|k| *k != key);
        self.maybe_delete_peer(&key);
    }

    /// JS `_upsertPeer(publicKey, relayAddresses)`: `None` for our own key, or when the table
    /// is full ([`MAX_KNOWN_PEERS`]; not in JS).
    pub(crate) fn upsert_peer(
        &mut self,
        key: PublicKey,
        relays: Option<Vec<std::net::SocketAddr>>,
    ) -> Option<&mut PeerInfo> {
        if key == self.opts.public_key {
            return None;
        }
        if !self.peers.contains_key(&key) && self.peers.len() >= MAX_KNOWN_PEERS {
            return None;
        }
        let p = self
            .peers
            .entry(key)
            .or_insert_with(|| PeerInfo::new(key, Vec::new()));
        p.set_relays(relays.unwrap_or_default());
        Some(p)
    }

    /// JS `_maybeDeletePeer`.
    pub(crate) fn maybe_delete_peer(&mut self, key: &PublicKey) {
        let Some(p) = self.peers.get(key) else { return };
        if !p.should_gc() || self.by_key.contains_key(key) {
            return;
        }
        self.peers.remove(key);
    }

    /// JS `_handlePeer(peer, topic)`: a peer found by a lookup.
    fn handle_peer(&mut self, now: Instant, record: &PeerRecord, topic: Topic) {
        let key = record.public_key;
        let connected = self.by_key.contains_key(&key);
        let Some(p) = self.upsert_peer(key, Some(record.relay_addresses.clone())) else {
            return;
        };
        p.add_topic(topic);
        if connected {
            return;
        }
        if !p.prioritized() || p.server() {
            p.reset();
        }
        if p.update_priority() {
            self.enqueue(now, key);
        }
    }

    /// JS `_enqueue(peerInfo)`.
    pub(crate) fn enqueue(&mut self, now: Instant, key: PublicKey) {
        let tick = self.flush_tick;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.queued {
            return;
        }
        p.queued = true;
        p.flush_tick = tick;
        self.queue.add(key, p.priority);
        self.attempt(now);
    }

    /// JS `suspend()`: stop every topic's walk and timer (unannouncing what was announced),
    /// destroy every connection, empty the queue and the retry timers, and ask the driver to
    /// suspend the server and the DHT. Nothing is dialled until [`Self::resume`].
    pub fn suspend(&mut self, now: Instant) {
        if self.destroyed || self.suspended {
            return;
        }
        self.suspended = true;
        self.actions.push_back(Action::Suspend);
        for topic in self.topics() {
            let Some(d) = self.discoveries.get_mut(&topic) else {
                continue;
            };
            d.timer = None;
            let owed = std::mem::take(&mut d.needs_unannounce);
            if let Some(r) = d.refresh.take() {
                if let Refresh::Query { id, .. } = r {
                    self.actions
                        .push_back(Action::CancelQuery { topic, refresh: id });
                }
                self.refresh_ended(r.id());
            }
            if owed {
                self.actions.push_back(Action::Unannounce { topic });
            }
        }
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        for conn in ids {
            self.close(conn, crate::types::CloseReason::Suspended);
        }
        // JS builds a new RetryTimer and queue; it leaves `queued` set on the peers, which
        // would keep them out of the new queue for good, so the flags are cleared here.
        self.timer = RetryTimer::new(
            &mut self.rng,
            self.opts.backoffs_ms,
            self.opts.backoff_jitter_ms,
        );
        self.queue.clear();
        for p in self.peers.values_mut() {
            p.queued = false;
            p.waiting = false;
        }
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.maybe_delete_peer(&key);
        }
        self.settle_flush_waits(now);
    }

    /// JS `resume()`: the driver resumes the DHT and the server, every topic refreshes, the
    /// explicit peers and the queue are dialled again.
    pub fn resume(&mut self, now: Instant) {
        if self.destroyed || !self.suspended {
            return;
        }
        self.suspended = false;
        self.actions.push_back(Action::Resume);
        for topic in self.topics() {
            self.refresh(now, topic);
        }
        self.attempt(now);
    }

    /// Whether `suspend` holds.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// JS `destroy()`: stop every topic (unannouncing), close the server and every connection,
    /// settle pending flushes with `false`.
    pub fn destroy(&mut self, now: Instant) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        self.timer.clear();
        // Before the topics go, so that their walks ending does not settle them as done.
        for w in std::mem::take(&mut self.flush_waits) {
            self.events.push_back(Event::Flushed {
                flush: w.id,
                ok: false,
            });
        }

        let topics = self.topics();
        for topic in topics {
            self.leave(now, topic);
        }
        if self.listening.is_some() {
            self.actions.push_back(Action::CloseServer);
        }
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        for conn in ids {
            self.close(conn, crate::types::CloseReason::Destroyed);
        }
        for key in std::mem::take(&mut self.explicit) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.explicit = false;
            }
        }
        self.queue.clear();
        for p in self.peers.values_mut() {
            p.queued = false;
            p.waiting = false;
        }
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.maybe_delete_peer(&key);
        }
        while let Some(f) = self.pending_flushes.pop() {
            self.events.push_back(Event::Flushed {
                flush: f.id,
                ok: false,
            });
        }
    }
}
