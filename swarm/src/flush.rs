//! Flushes (JS `hyperswarm/index.js flush`, `_flushMaybe`, `_flushAllMaybe` and
//! `lib/peer-discovery.js flushed`): a flush first waits for the topics' walks in flight, then,
//! for a swarm flush, for an attempt to complete for every peer queued by then.

use std::time::Instant;

use crate::MAX_PENDING_FLUSHES;
use crate::SwarmCore;
use crate::discovery::Refresh;
use crate::types::{Event, FlushId, PublicKey, RefreshId, SessionId, SwarmError, Topic};

/// A `flush()` (or a topic's `flushed()`) waiting for refreshes to end (JS `Promise.all` over
/// the discoveries' `flushed()`).
#[derive(Clone, Debug)]
pub(crate) struct FlushWait {
    pub(crate) id: FlushId,
    pub(crate) refreshes: Vec<RefreshId>,
    pub(crate) listening: bool,
    /// A swarm `flush()` goes on to wait for dials (JS `_pendingFlushes`); a topic's
    /// `flushed()` is done here.
    pub(crate) swarm: bool,
}

/// A swarm `flush()` waiting for dials (JS `_pendingFlushes` entry).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingFlush {
    pub(crate) id: FlushId,
    pub(crate) missing: usize,
    pub(crate) tick: u64,
}

impl SwarmCore {
    /// JS `discovery.flushed()` for the topic of a session (resolves at once when idle).
    pub fn session_flushed(
        &mut self,
        now: Instant,
        session: SessionId,
    ) -> Result<FlushId, SwarmError> {
        let topic = self
            .discoveries
            .values()
            .find(|d| d.sessions.iter().any(|s| s.id == session))
            .map(|d| d.topic)
            .ok_or(SwarmError::UnknownSession)?;
        self.new_flush_wait(now, Some(topic), false)
    }

    /// JS `swarm.flush()`: every topic's current walk done, then every peer queued by then has
    /// had an attempt complete, or the swarm is at its limits. Answered by [`Event::Flushed`].
    pub fn flush(&mut self, now: Instant) -> Result<FlushId, SwarmError> {
        self.new_flush_wait(now, None, true)
    }

    fn new_flush_wait(
        &mut self,
        now: Instant,
        topic: Option<Topic>,
        swarm: bool,
    ) -> Result<FlushId, SwarmError> {
        if self.flush_waits.len() + self.pending_flushes.len() >= MAX_PENDING_FLUSHES {
            return Err(SwarmError::TooManyFlushes);
        }
        let id = FlushId(self.next_id());
        if self.destroyed {
            self.events.push_back(Event::Flushed {
                flush: id,
                ok: false,
            });
            return Ok(id);
        }
        let refreshes = self
            .discoveries
            .values()
            .filter(|d| topic.is_none_or(|t| t == d.topic))
            .filter_map(|d| d.refresh.map(Refresh::id))
            .collect();
        self.flush_waits.push(FlushWait {
            id,
            refreshes,
            listening: self.listening == Some(false),
            swarm,
        });
        self.settle_flush_waits(now);
        Ok(id)
    }

    /// Moves flush waits whose walks are over on: a topic flush resolves, a swarm flush runs
    /// the second half of JS `flush()`.
    pub(crate) fn settle_flush_waits(&mut self, _now: Instant) {
        let mut i = 0;
        while let Some(w) = self.flush_waits.get(i) {
            if !w.refreshes.is_empty() || w.listening {
                i += 1;
                continue;
            }
            let w = self.flush_waits.remove(i);
            if !w.swarm {
                self.events.push_back(Event::Flushed {
                    flush: w.id,
                    ok: true,
                });
                continue;
            }
            let pending = self.by_key.len().saturating_sub(self.open);
            if self.flush_all_maybe() || (self.queue.is_empty() && pending == 0) {
                self.events.push_back(Event::Flushed {
                    flush: w.id,
                    ok: true,
                });
                continue;
            }
            let tick = self.flush_tick;
            self.flush_tick += 1;
            self.pending_flushes.push(PendingFlush {
                id: w.id,
                missing: self.queue.len() + pending,
                tick,
            });
        }
    }

    /// JS `_flushMaybe(peerInfo)`: an attempt for a peer queued before a flush completed.
    pub(crate) fn flush_maybe(&mut self, key: &PublicKey) {
        let Some(tick) = self.peers.get(key).map(|p| p.flush_tick) else {
            return;
        };
        let mut i = 0;
        while let Some(f) = self.pending_flushes.get_mut(i) {
            if tick > f.tick {
                i += 1;
                continue;
            }
            f.missing = f.missing.saturating_sub(1);
            if f.missing > 0 {
                i += 1;
                continue;
            }
            let f = self.pending_flushes.remove(i);
            self.events.push_back(Event::Flushed {
                flush: f.id,
                ok: true,
            });
        }
    }

    /// JS `_flushAllMaybe`: at the limits with nothing connecting, every flush resolves.
    pub(crate) fn flush_all_maybe(&mut self) -> bool {
        if self.connecting > 0
            || (self.within_max_peers()
                && self.client_connections < self.opts.max_client_connections)
        {
            return false;
        }
        while let Some(f) = self.pending_flushes.pop() {
            self.events.push_back(Event::Flushed {
                flush: f.id,
                ok: true,
            });
        }
        true
    }
}
