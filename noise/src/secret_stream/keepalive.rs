//! Keepalive timing of `@hyperswarm/secret-stream/index.js` (`setKeepAlive` arms a
//! `timeout-refresh` timer that runs `sendKeepAlive`), without a clock.

use std::time::{Duration, Instant};

/// hyperdht's `connectionKeepAlive` default, 5000 ms.
pub const HYPERDHT_KEEP_ALIVE: Duration = Duration::from_millis(5000);

/// JS keepalive timing (`Timeout.on(ms)` refreshed by every write) without a clock: the caller
/// reports writes and polls with its own `now`; when [`KeepAlive::poll`] says so, call
/// [`super::SecretStream::send_keep_alive`].
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Duration,
    deadline: Instant,
}

impl KeepAlive {
    /// A timer that fires `interval` after `now` unless a write refreshes it.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            deadline: now + interval,
        }
    }

    /// Restarts the interval (JS refreshes the timer on every write).
    pub fn on_write(&mut self, now: Instant) {
        self.deadline = now + self.interval;
    }

    /// When the timer next fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether a keepalive is due at `now`; if so the timer re-arms for `now + interval`.
    pub fn poll(&mut self, now: Instant) -> bool {
        if now < self.deadline {
            return false;
        }
        self.deadline = now + self.interval;
        true
    }
}
