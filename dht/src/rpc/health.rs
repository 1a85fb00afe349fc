//! Network health (`dht-rpc/lib/health.js`): online / degraded / offline from the response and
//! timeout counters, sampled every tick.
//!
//! Contract: pure counters; the node calls [`Health::update`] every 5-s tick with its running
//! totals. With 4 ticks of history and at least 4 outcomes in the last tick: offline after 2
//! ticks without a response, degraded after 4 ticks with more than 50 % timeouts.

/// Ticks of history (`MAX_HEALTH_WINDOW`).
pub const MAX_HEALTH_WINDOW: usize = 4;
/// Ticks without responses before offline (`OFFLINE_THRESHOLD`).
pub const OFFLINE_THRESHOLD: i64 = 2;
/// Fewer outcomes than this in a tick = idle, no state change (`IDLE_THRESHOLD`).
pub const IDLE_THRESHOLD: u64 = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    responses: u64,
    timeouts: u64,
    offline: Option<bool>,
    degraded: Option<bool>,
}

/// The node's view of its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkState {
    /// Responses arrive.
    Online,
    /// Most requests time out.
    Degraded,
    /// Nothing answers.
    Offline,
}

/// JS's `NetworkHealth`.
#[derive(Debug, Clone)]
pub struct Health {
    window: Vec<Sample>,
    head: usize,
    started: bool,
    offline_ticks: i64,
    degraded_ticks: i64,
    healthy_ticks: i64,
    online: bool,
    degraded: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            window: Vec::with_capacity(MAX_HEALTH_WINDOW),
            head: 0,
            started: false,
            offline_ticks: 0,
            degraded_ticks: 0,
            healthy_ticks: 0,
            online: true,
            degraded: false,
        }
    }
}

impl Health {
    fn tail(&self) -> usize {
        if self.started {
            (self.head + 1) % MAX_HEALTH_WINDOW
        } else {
            0
        }
    }

    fn newest(&self) -> Option<&Sample> {
        self.window.get(self.head)
    }

    fn previous(&self) -> Option<&Sample> {
        self.window
            .get((self.head + MAX_HEALTH_WINDOW - 1) % MAX_HEALTH_WINDOW)
    }

    fn delta(&self) -> (u64, u64) {
        match (self.newest(), self.previous()) {
            (Some(n), Some(p)) if self.window.len() > 1 => (
                n.responses.saturating_sub(p.responses),
                n.timeouts.saturating_sub(p.timeouts),
            ),
            _ => (0, 0),
        }
    }

    /// The current state.
    pub fn state(&self) -> NetworkState {
        if self.online && !self.degraded {
            NetworkState::Online
        } else if self.degraded {
            NetworkState::Degraded
        } else {
            NetworkState::Offline
        }
    }

    /// Forgets the history (`reset`, after a wakeup).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// One tick with the node's running totals; returns the state afterwards.
    pub fn update(&mut self, responses: u64, timeouts: u64) -> NetworkState {
        let tail = self.tail();
        if self.window.len() == MAX_HEALTH_WINDOW {
            match self.window.get(tail).and_then(|o| o.degraded) {
                Some(true) => self.degraded_ticks -= 1,
                Some(false) => self.healthy_ticks -= 1,
                None => {}
            }
        }
        self.head = tail;
        self.started = true;
        let s = Sample {
            responses,
            timeouts,
            offline: None,
            degraded: None,
        };
        if tail < self.window.len() {
            if let Some(slot) = self.window.get_mut(tail) {
                *slot = s;
            }
        } else {
            self.window.push(s);
        }
        let (r, t) = self.delta();
        if self.window.len() < MAX_HEALTH_WINDOW || r + t < IDLE_THRESHOLD {
            return self.state();
        }
        let offline = r == 0;
        let rate = if t == 0 {
            0.0
        } else {
            t as f64 / (r + t) as f64
        };
        let degraded = !offline && rate > 0.5;
        if let Some(n) = self.window.get_mut(self.head) {
            n.offline = Some(offline);
            n.degraded = Some(degraded);
        }
        if offline {
            self.offline_ticks += 1;
        } else {
            self.offline_ticks = 0;
            if degraded {
                self.degraded_ticks += 1;
            } else {
                self.healthy_ticks += 1;
            }
        }
        if !offline {
            self.online = true;
        } else if self.offline_ticks >= OFFLINE_THRESHOLD {
            self.online = false;
        }
        if !self.online || self.healthy_ticks == MAX_HEALTH_WINDOW as i64 {
            self.degraded = false;
        } else if self.degraded_ticks == MAX_HEALTH_WINDOW as i64 {
            self.degraded = true;
        }
        self.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_offline_after_two_silent_ticks_and_degraded_after_four_bad_ones() {
        let mut h = Health::default();
        let (mut r, mut t) = (0, 0);
        for _ in 0..5 {
            r += 10;
            assert_eq!(h.update(r, t), NetworkState::Online);
        }
        t += 10;
        assert_eq!(h.update(r, t), NetworkState::Online, "one silent tick");
        t += 10;
        assert_eq!(h.update(r, t), NetworkState::Offline);
        for _ in 0..3 {
            r += 2;
            t += 8;
            h.update(r, t);
        }
        r += 2;
        t += 8;
        assert_eq!(h.update(r, t), NetworkState::Degraded);
    }
}
