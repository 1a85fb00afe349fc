//! Per-peer state, the shuffled priority queue of peers to dial and the retry timers
//! (JS `hyperswarm/lib/peer-info.js`, `shuffled-priority-queue`, `lib/retry-timer.js`,
//! `lib/bulk-timer.js`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::types::{PeerSnapshot, PublicKey, Rng, Topic};

/// JS `MIN_CONNECTION_TIME`: a connection that lived this long resets `attempts` on close.
pub const MIN_CONNECTION_TIME: Duration = Duration::from_secs(15);
/// JS `VERY_LOW_PRIORITY`.
pub const VERY_LOW_PRIORITY: u8 = 0;
/// JS `LOW_PRIORITY`.
pub const LOW_PRIORITY: u8 = 1;
/// JS `NORMAL_PRIORITY`.
pub const NORMAL_PRIORITY: u8 = 2;
/// JS `HIGH_PRIORITY`.
pub const HIGH_PRIORITY: u8 = 3;
/// JS `VERY_HIGH_PRIORITY`.
pub const VERY_HIGH_PRIORITY: u8 = 4;
/// Relay addresses kept per peer; hyperdht announces at most 3 (`announce` keeps
/// `relayAddresses.slice(0, 3)`), so more is never legitimate.
pub const MAX_RELAY_ADDRESSES: usize = 3;
/// Topics remembered per peer (JS `PeerInfo.topics`, unbounded there); a peer is rarely
/// discovered under more than a handful.
pub const MAX_TOPICS_PER_PEER: usize = 64;

/// One peer the swarm knows (JS `PeerInfo`).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// JS `publicKey`.
    pub public_key: PublicKey,
    /// JS `relayAddresses`: the latest record's, "new is always better".
    pub relay_addresses: Vec<SocketAddr>,
    /// JS `reconnecting`: retry after disconnects.
    pub reconnecting: bool,
    /// JS `proven`: a connection to it opened once.
    pub proven: bool,
    /// JS `connectedTime` (-1 there: `None` here).
    pub connected_at: Option<Instant>,
    /// JS `disconnectedTime` (0 there: `None` here).
    pub disconnected_at: Option<Instant>,
    /// JS `banned`.
    pub banned: bool,
    /// JS `tried`.
    pub tried: bool,
    /// JS `explicit`.
    pub explicit: bool,
    /// JS `waiting`: sits in a retry timer.
    pub waiting: bool,
    /// JS `forceRelaying`.
    pub force_relaying: bool,
    /// JS `queued`: sits in the connect queue.
    pub queued: bool,
    /// JS `client`: the live connection is one we dialled.
    pub client: bool,
    /// JS `topics`.
    pub topics: Vec<Topic>,
    /// JS `attempts`.
    pub attempts: u32,
    /// JS `priority`.
    pub priority: u8,
    /// JS `_flushTick`.
    pub(crate) flush_tick: u64,
}

impl PeerInfo {
    /// JS `new PeerInfo({ publicKey, relayAddresses })`.
    pub fn new(public_key: PublicKey, relay_addresses: Vec<SocketAddr>) -> Self {
        PeerInfo {
            public_key,
            relay_addresses: cap_relays(relay_addresses),
            reconnecting: true,
            proven: false,
            connected_at: None,
            disconnected_at: None,
            banned: false,
            tried: false,
            explicit: false,
            waiting: false,
            force_relaying: false,
            queued: false,
            client: false,
            topics: Vec::new(),
            attempts: 0,
            priority: NORMAL_PRIORITY,
            flush_tick: 0,
        }
    }

    /// JS getter `server`.
    pub fn server(&self) -> bool {
        !self.client
    }

    /// JS getter `prioritized`.
    pub fn prioritized(&self) -> bool {
        self.priority >= NORMAL_PRIORITY
    }

    /// JS `_getPriority`.
    pub fn compute_priority(&self) -> u8 {
        let stale = self.tried && !self.proven;
        if stale || self.attempts > 3 {
            return VERY_LOW_PRIORITY;
        }
        match self.attempts {
            3 => LOW_PRIORITY,
            2 => HIGH_PRIORITY,
            1 => VERY_HIGH_PRIORITY,
            _ => NORMAL_PRIORITY,
        }
    }

    /// JS `_connected`.
    pub(crate) fn connected(&mut self, now: Instant) {
        self.proven = true;
        self.connected_at = Some(now);
    }

    /// JS `_disconnected`.
    pub(crate) fn disconnected(&mut self, now: Instant) {
        self.disconnected_at = Some(now);
        if let Some(at) = self.connected_at.take()
            && now.saturating_duration_since(at) >= MIN_CONNECTION_TIME
        {
            self.attempts = 0; // fast retry
        }
        self.attempts = self.attempts.saturating_add(1);
    }

    /// JS `_reset`.
    pub(crate) fn reset(&mut self) {
        self.client = false;
        self.proven = false;
        self.tried = false;
        self.attempts = 0;
    }

    /// JS `_updatePriority`: false when the peer must not be queued.
    pub(crate) fn update_priority(&mut self) -> bool {
        if self.explicit && self.attempts > 3 {
            self.attempts = 3; // JS `_deprioritize`
        }
        if self.banned || self.queued || self.attempts > 3 {
            return false;
        }
        self.priority = self.compute_priority();
        true
    }

    /// JS `_topic`: remember a topic it was discovered under, once.
    pub(crate) fn add_topic(&mut self, topic: Topic) {
        if !self.topics.contains(&topic) && self.topics.len() < MAX_TOPICS_PER_PEER {
            self.topics.push(topic);
        }
    }

    /// JS `shouldGC`.
    pub(crate) fn should_gc(&self) -> bool {
        !(self.banned || self.queued || self.explicit || self.waiting)
    }

    /// JS `peerInfo.relayAddresses = relayAddresses`.
    pub(crate) fn set_relays(&mut self, relays: Vec<SocketAddr>) {
        self.relay_addresses = cap_relays(relays);
    }

    /// What the application sees.
    pub fn snapshot(&self) -> PeerSnapshot {
        PeerSnapshot {
            public_key: self.public_key,
            topics: self.topics.clone(),
            client: self.client,
            priority: self.priority,
            banned: self.banned,
            explicit: self.explicit,
            attempts: self.attempts,
        }
    }
}

fn cap_relays(mut relays: Vec<SocketAddr>) -> Vec<SocketAddr> {
    relays.truncate(MAX_RELAY_ADDRESSES);
    relays
}

/// JS `shuffled-priority-queue`: one bucket per priority; `shift` takes a random member of the
/// highest non-empty bucket. Holds keys; each peer is in it at most once (its `queued` flag).
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerQueue {
    buckets: [Vec<PublicKey>; 5],
}

impl PeerQueue {
    pub(crate) fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.iter().all(Vec::is_empty)
    }

    pub(crate) fn add(&mut self, key: PublicKey, priority: u8) {
        let i = usize::from(priority.min(VERY_HIGH_PRIORITY));
        if let Some(bucket) = self.buckets.get_mut(i) {
            bucket.push(key);
        }
    }

    /// JS `queue.shift()`.
    pub(crate) fn shift(&mut self, rng: &mut Rng) -> Option<PublicKey> {
        let bucket = self.buckets.iter_mut().rev().find(|b| !b.is_empty())?;
        let i = rng.index(bucket.len());
        (i < bucket.len()).then(|| bucket.swap_remove(i))
    }

    pub(crate) fn clear(&mut self) {
        for b in &mut self.buckets {
            b.clear();
        }
    }
}

/// JS `BACKOFF_JITTER`.
pub const BACKOFF_JITTER_MS: u64 = 500;
/// JS `BACKOFF_S` base (plus 0-500 ms fixed per process).
pub const BACKOFF_S_MS: u64 = 1000;
/// JS `BACKOFF_M` base (plus 0-1000 ms fixed per process).
pub const BACKOFF_M_MS: u64 = 5000;
/// JS `BACKOFF_L` base (plus 0-2000 ms fixed per process).
pub const BACKOFF_L_MS: u64 = 15_000;
/// JS `BACKOFF_X` base (plus 0-120 s fixed per process).
pub const BACKOFF_X_MS: u64 = 10 * 60 * 1000;

/// Which retry timer a peer goes to (JS `RetryTimer._selectRetryTimer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// `_sTimer`.
    S,
    /// `_mTimer`.
    M,
    /// `_lTimer`.
    L,
    /// `_xTimer` (explicit peers past 3 attempts).
    X,
}

/// JS `_selectRetryTimer`: `None` means the peer is not retried.
pub fn select_backoff(peer: &PeerInfo) -> Option<Backoff> {
    if peer.banned || !peer.reconnecting {
        return None;
    }
    if peer.attempts > 3 {
        return peer.explicit.then_some(Backoff::X);
    }
    match (peer.attempts, peer.proven) {
        (0, _) | (1, true) => Some(Backoff::S),
        (2, true) | (1, false) => Some(Backoff::M),
        (3, _) | (2, false) => Some(Backoff::L),
        _ => None,
    }
}

/// JS `BulkTimer`: an interval of `0.66 x period` started on the first `add`; a peer added
/// goes to `pending`, moves to `next` at the following tick, and is released at the tick after
/// that, so the real delay is 0.66 to 1.32 periods.
#[derive(Clone, Debug)]
pub(crate) struct BulkTimer {
    interval: Duration,
    next_tick: Option<Instant>,
    next: Vec<PublicKey>,
    pending: Vec<PublicKey>,
}

impl BulkTimer {
    fn new(period_ms: u64) -> Self {
        // JS `Math.floor(this._time * 0.66)`; at least 1 ms so ticks always advance.
        let interval = Duration::from_millis((period_ms.saturating_mul(66) / 100).max(1));
        BulkTimer {
            interval,
            next_tick: None,
            next: Vec::new(),
            pending: Vec::new(),
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    fn add(&mut self, now: Instant, key: PublicKey) {
        match self.next_tick {
            None => self.next_tick = now.checked_add(self.interval),
            // The interval kept running while idle (JS `setInterval`): those ticks did
            // nothing, so move the phase to the first tick after `now`.
            Some(at) if at <= now && self.next.is_empty() && self.pending.is_empty() => {
                let behind = now.saturating_duration_since(at).as_nanos();
                let steps = behind / self.interval.as_nanos().max(1) + 1;
                let steps = u32::try_from(steps).unwrap_or(u32::MAX);
                self.next_tick = at
                    .checked_add(self.interval.saturating_mul(steps))
                    .or_else(|| now.checked_add(self.interval));
            }
            Some(_) => {}
        }
        self.pending.push(key);
    }

    /// The next tick that would do something.
    fn deadline(&self) -> Option<Instant> {
        if self.next.is_empty() && self.pending.is_empty() {
            return None;
        }
        self.next_tick
    }

    /// Runs the ticks due at `now` (JS `_ontick`), releasing peers into `out`. A clock at the
    /// end of `Instant`'s range stops the ticks rather than overflow.
    fn tick(&mut self, now: Instant, out: &mut Vec<PublicKey>) {
        let Some(mut at) = self.next_tick else { return };
        while at <= now {
            if self.next.is_empty() && self.pending.is_empty() {
                // Idle ticks change nothing; jump the phase forward in one step.
                let behind = now.saturating_duration_since(at).as_nanos();
                let steps = behind / self.interval.as_nanos().max(1) + 1;
                let steps = u32::try_from(steps).unwrap_or(u32::MAX);
                self.next_tick = at
                    .checked_add(self.interval.saturating_mul(steps))
                    .or_else(|| now.checked_add(self.interval));
                return;
            }
            out.append(&mut self.next);
            self.next = std::mem::take(&mut self.pending);
            let Some(next) = at.checked_add(self.interval) else {
                self.next_tick = None;
                return;
            };
            at = next;
        }
        self.next_tick = Some(at);
    }

    fn len(&self) -> usize {
        self.next.len() + self.pending.len()
    }

    fn clear(&mut self) {
        self.next.clear();
        self.pending.clear();
    }
}

/// JS `RetryTimer`: four bulk timers whose periods carry a random addition chosen once (per
/// process in JS, per core here).
#[derive(Clone, Debug)]
pub struct RetryTimer {
    s: BulkTimer,
    m: BulkTimer,
    l: BulkTimer,
    x: BulkTimer,
}

impl RetryTimer {
    /// Periods as JS computes them: the module's `BACKOFF_*` constants carry a random
    /// addition (S +0-500, M +0-1000, L +0-2000, X +0-120000 ms) unless `backoffs` is given,
    /// then the constructor adds `round(jitter * random)` to each.
    pub(crate) fn new(rng: &mut Rng, backoffs: Option<[u64; 4]>, jitter: u64) -> Self {
        let j = BACKOFF_JITTER_MS;
        let [s, m, l, x] = backoffs.unwrap_or_else(|| {
            [
                BACKOFF_S_MS + rng.up_to(j),
                BACKOFF_M_MS + rng.up_to(2 * j),
                BACKOFF_L_MS + rng.up_to(4 * j),
                BACKOFF_X_MS + rng.up_to(240 * j),
            ]
        });
        let mut t = |base: u64| BulkTimer::new(base.saturating_add(rng.up_to(jitter)));
        RetryTimer {
            s: t(s),
            m: t(m),
            l: t(l),
            x: t(x),
        }
    }

    pub(crate) fn timer(&self, b: Backoff) -> &BulkTimer {
        match b {
            Backoff::S => &self.s,
            Backoff::M => &self.m,
            Backoff::L => &self.l,
            Backoff::X => &self.x,
        }
    }

    /// JS `RetryTimer.add`: false when the peer is not retried.
    pub(crate) fn add(&mut self, now: Instant, peer: &PeerInfo) -> bool {
        let Some(b) = select_backoff(peer) else {
            return false;
        };
        let t = match b {
            Backoff::S => &mut self.s,
            Backoff::M => &mut self.m,
            Backoff::L => &mut self.l,
            Backoff::X => &mut self.x,
        };
        t.add(now, peer.public_key);
        true
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        [&self.s, &self.m, &self.l, &self.x]
            .into_iter()
            .filter_map(BulkTimer::deadline)
            .min()
    }

    pub(crate) fn tick(&mut self, now: Instant) -> Vec<PublicKey> {
        let mut out = Vec::new();
        for t in [&mut self.s, &mut self.m, &mut self.l, &mut self.x] {
            t.tick(now, &mut out);
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.s.len() + self.m.len() + self.l.len() + self.x.len()
    }

    /// JS `RetryTimer.destroy` (the timers keep their periods).
    pub(crate) fn clear(&mut self) {
        for t in [&mut self.s, &mut self.m, &mut self.l, &mut self.x] {
            t.clear();
        }
    }
}
