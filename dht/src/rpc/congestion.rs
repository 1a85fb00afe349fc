//! The outbound congestion window (`dht-rpc/lib/io.js` `CongestionWindow`).
//!
//! Contract: pure counters. Four slots rotated by [`CongestionWindow::drain`] every 750 ms; a
//! new request is queued (not dropped) while the current slot holds `max_window` sends or all
//! slots together hold `2 * max_window`. Each response, timeout or cancellation frees one.

/// Default per-slot window (`MAX_WINDOW = 80`).
pub const MAX_WINDOW: u32 = 80;

/// JS's `CongestionWindow`.
#[derive(Debug, Clone)]
pub struct CongestionWindow {
    i: usize,
    total: u32,
    window: [u32; 4],
    max_window: u32,
}

impl CongestionWindow {
    /// A window of `max_window` sends per slot.
    pub fn new(max_window: u32) -> Self {
        Self {
            i: 0,
            total: 0,
            window: [0; 4],
            max_window,
        }
    }

    fn cur(&self) -> u32 {
        self.window.get(self.i & 3).copied().unwrap_or(0)
    }

    fn set_cur(&mut self, v: u32) {
        if let Some(w) = self.window.get_mut(self.i & 3) {
            *w = v;
        }
    }

    /// Whether a new send must wait.
    pub fn is_full(&self) -> bool {
        self.total >= 2 * self.max_window || self.cur() >= self.max_window
    }

    /// A response (or timeout/cancel) arrived.
    pub fn recv(&mut self) {
        let c = self.cur();
        if c > 0 {
            self.set_cur(c - 1);
            self.total -= 1;
        }
    }

    /// A datagram was sent.
    pub fn send(&mut self) {
        self.total += 1;
        let c = self.cur();
        self.set_cur(c + 1);
    }

    /// Rotates the slots (every 750 ms).
    pub fn drain(&mut self) {
        self.i = (self.i + 1) & 3;
        let old = self.cur();
        self.total = self.total.saturating_sub(old);
        self.set_cur(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_at_max_window_and_drains() {
        let mut c = CongestionWindow::new(2);
        c.send();
        assert!(!c.is_full());
        c.send();
        assert!(c.is_full());
        c.drain();
        assert!(!c.is_full());
        c.send();
        c.send();
        assert!(c.is_full(), "total reached 2 * max");
        c.recv();
        assert!(!c.is_full());
        for _ in 0..4 {
            c.drain();
        }
        assert_eq!(c.total, 0);
    }
}
