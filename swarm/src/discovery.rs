//! Per-topic discovery state (JS `hyperswarm/lib/peer-discovery.js`: `PeerDiscovery` and
//! `PeerDiscoverySession`). The core in `core.rs` drives it; this file holds the bookkeeping:
//! sessions, client/server mode, the refresh in flight and the refresh schedule.

use std::time::{Duration, Instant};

use crate::types::{PublicKey, RefreshId, Rng, SessionId, Topic};

/// JS `REFRESH_INTERVAL`: a topic is re-announced / looked up again every 10 minutes...
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// JS `RANDOM_JITTER`: ...plus up to 2 minutes.
pub const RANDOM_JITTER_MS: u64 = 2 * 60 * 1000;
/// JS `DELAY_GRACE_PERIOD`: a refresh timer firing this much later than planned (the machine
/// slept) reschedules with jitter only instead of refreshing at once.
pub const DELAY_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// JS `MAX_DISCOVERY_CACHE`: keys remembered per refresh to apply `limit` next time.
pub const MAX_DISCOVERY_CACHE: usize = 64;
/// Sessions per topic (JS unbounded); each `join` of an already joined topic adds one.
pub const MAX_SESSIONS_PER_TOPIC: usize = 1024;

/// One `join` session (JS `PeerDiscoverySession`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) client: bool,
    pub(crate) server: bool,
}

/// The walk in flight (JS `_currentRefresh` / `_activeQuery`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Server mode, waiting for `swarm.listen()` before announcing.
    AwaitingListen(RefreshId),
    /// The query runs; `announcing` is JS's `announcing`.
    Query { id: RefreshId, announcing: bool },
}

impl Refresh {
    pub(crate) fn id(self) -> RefreshId {
        match self {
            Refresh::AwaitingListen(id) | Refresh::Query { id, .. } => id,
        }
    }
}

/// One topic (JS `PeerDiscovery`).
#[derive(Clone, Debug)]
pub(crate) struct Discovery {
    pub(crate) topic: Topic,
    pub(crate) sessions: Vec<Session>,
    /// JS `limit` (the last session refresh's), `None` for Infinity.
    pub(crate) limit: Option<usize>,
    pub(crate) is_client: bool,
    pub(crate) is_server: bool,
    pub(crate) refresh: Option<Refresh>,
    /// Peers the current walk may still hand over (`None`: no limit).
    pub(crate) budget: Option<usize>,
    /// JS `_discovered`.
    pub(crate) discovered: Vec<PublicKey>,
    pub(crate) first_announce: bool,
    pub(crate) needs_unannounce: bool,
    /// JS `_timer`: when the next refresh fires, when it was planned and its planned delay.
    pub(crate) timer: Option<(Instant, Instant, Duration)>,
}

impl Discovery {
    pub(crate) fn new(topic: Topic) -> Self {
        Discovery {
            topic,
            sessions: Vec::new(),
            limit: None,
            is_client: false,
            is_server: false,
            refresh: None,
            budget: None,
            discovered: Vec::new(),
            first_announce: true,
            needs_unannounce: false,
            timer: None,
        }
    }

    pub(crate) fn client_sessions(&self) -> usize {
        self.sessions.iter().filter(|s| s.client).count()
    }

    pub(crate) fn server_sessions(&self) -> usize {
        self.sessions.iter().filter(|s| s.server).count()
    }

    /// JS `_refreshLater(eager)`.
    pub(crate) fn refresh_later(&mut self, now: Instant, eager: bool, rng: &mut Rng) {
        let jitter = Duration::from_millis(rng.up_to(RANDOM_JITTER_MS));
        let delay = if eager {
            jitter
        } else {
            REFRESH_INTERVAL + jitter
        };
        self.timer = now.checked_add(delay).map(|at| (at, now, delay));
    }

    /// JS `_refresh`'s limit accounting: the peers of the last walk that we are connected to
    /// count against `limit`; `connected` tells whether we hold a connection to a key.
    pub(crate) fn start_budget(&mut self, connected: impl Fn(&PublicKey) -> bool) {
        self.budget = match self.limit {
            None => None,
            Some(0) => Some(0),
            Some(mut limit) => {
                for key in &self.discovered {
                    if !connected(key) {
                        continue;
                    }
                    limit -= 1;
                    if limit == 0 {
                        break;
                    }
                }
                Some(limit)
            }
        };
        self.discovered.clear();
    }

    /// JS `_refresh`'s per-peer limit check: whether this peer may be handed to the swarm.
    pub(crate) fn admit(&mut self, key: PublicKey, connected: bool) -> bool {
        let Some(budget) = self.budget.as_mut() else {
            return true;
        };
        if self.discovered.len() < MAX_DISCOVERY_CACHE {
            self.discovered.push(key);
        }
        if *budget == 0 {
            return false;
        }
        if !connected {
            *budget -= 1;
        }
        true
    }
}
