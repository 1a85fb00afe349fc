//! Congestion control: CUBIC (RFC 9438) in packets, plus a token-bucket pacer.
//!
//! libudx runs BBR (`src/udx_bbr.c`); congestion control is purely sender-side and invisible on
//! the wire (nothing in the header carries it), so we use CUBIC, which is simpler to get right
//! and fair to itself and to loss-based peers.

use std::time::{Duration, Instant};

/// Initial congestion window in packets (libudx: 10).
pub const INITIAL_CWND: f64 = 10.0;
/// Minimum congestion window in packets after a loss event (libudx BBR minimum: 4).
pub const MIN_CWND: f64 = 4.0;
/// Largest congestion window in packets: bounds the in-flight table (4 MiB of 1152-byte
/// packets is 3,641; we allow 16,384 so a larger peer window still fills).
pub const MAX_CWND: f64 = 16_384.0;
const BETA: f64 = 0.7;
const RANDOM_LOSS_BETA: f64 = 0.9;
const C: f64 = 0.4;

/// CUBIC state.
#[derive(Debug, Clone)]
pub struct Cubic {
    /// Congestion window in packets (RFC 9438 `cwnd`).
    cwnd: f64,
    /// Slow-start threshold in packets (`ssthresh`).
    ssthresh: f64,
    /// Window just before the last reduction (RFC 9438 `W_max`).
    w_max: f64,
    /// Seconds the cubic curve takes to climb back to `w_max` (RFC 9438 `K`, 4.2).
    k: f64,
    /// Start of the current congestion-avoidance epoch (RFC 9438 `t_epoch`).
    epoch_start: Option<Instant>,
    /// Reno-friendly window estimate (RFC 9438 `W_est`, 4.3).
    w_est: f64,
    /// HyStart++ (RFC 9406): minimum RTT of the current and the previous round in slow start.
    cur_round_min: Option<Duration>,
    last_round_min: Option<Duration>,
    round_samples: u32,
}

impl Default for Cubic {
    fn default() -> Self {
        Self::new()
    }
}

impl Cubic {
    /// A controller in slow start.
    pub fn new() -> Self {
        Cubic {
            cwnd: INITIAL_CWND,
            ssthresh: f64::INFINITY,
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            cur_round_min: None,
            last_round_min: None,
            round_samples: 0,
        }
    }

    /// The congestion window in whole packets (at least 1).
    pub fn window(&self) -> usize {
        (self.cwnd as usize).max(1)
    }

    /// Whether the controller is in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// A new round (one window of packets) begins.
    pub fn on_round_start(&mut self) {
        if self.cur_round_min.is_some() {
            self.last_round_min = self.cur_round_min;
        }
        self.cur_round_min = None;
        self.round_samples = 0;
    }

    /// An RTT sample. In slow start, HyStart++'s delay test (RFC 9406 4.2): once a round has
    /// 8 samples and its minimum RTT exceeds the previous round's by `clamp(last/8, 4 ms,
    /// 16 ms)`, the queue is building: leave slow start before it overflows.
    pub fn on_rtt_sample(&mut self, rtt: Duration) {
        if !self.in_slow_start() {
            return;
        }
        self.cur_round_min = Some(self.cur_round_min.map_or(rtt, |m| m.min(rtt)));
        self.round_samples += 1;
        if let (Some(cur), Some(last)) = (self.cur_round_min, self.last_round_min)
            && self.round_samples >= 8
        {
            let eta = (last / 8).clamp(Duration::from_millis(4), Duration::from_millis(16));
            if cur >= last + eta {
                self.ssthresh = self.cwnd;
            }
        }
    }

    /// `n` packets newly acknowledged outside recovery; `app_limited` when the sender did not
    /// fill the window (the window then does not grow).
    pub fn on_ack(&mut self, now: Instant, n: usize, srtt: Duration, app_limited: bool) {
        if n == 0 || app_limited {
            return;
        }
        let n = n as f64;
        if self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + n).min(MAX_CWND);
            return;
        }
        let start = *self.epoch_start.get_or_insert_with(|| {
            self.w_est = self.cwnd;
            now
        });
        if self.w_max <= self.cwnd && self.k == 0.0 {
            self.w_max = self.cwnd;
        }
        let t = (now - start + srtt).as_secs_f64();
        let target = C * (t - self.k).powi(3) + self.w_max;
        // Reno-friendly estimate (RFC 9438 4.3)
        self.w_est += n * (3.0 * (1.0 - BETA) / (1.0 + BETA)) / self.cwnd;
        let target = target.max(self.w_est).min(1.5 * self.cwnd);
        if target > self.cwnd {
            self.cwnd += (target - self.cwnd) * n / self.cwnd;
        } else {
            self.cwnd += 0.01 * n / self.cwnd;
        }
        self.cwnd = self.cwnd.min(MAX_CWND);
    }

    /// A loss event (once per recovery episode). `queue_empty` says the RTT showed no
    /// queueing when the loss was found, so the loss is more likely random than congestion:
    /// the window then backs off by 10 % instead of 30 % (the idea of TCP Veno), which keeps
    /// a lossy but uncongested path (Wi-Fi, a 5 % netem-style drop) usable.
    pub fn on_loss(&mut self, queue_empty: bool) {
        let beta = if queue_empty { RANDOM_LOSS_BETA } else { BETA };
        self.w_max = self.cwnd;
        self.cwnd = (self.cwnd * beta).max(MIN_CWND);
        self.ssthresh = self.cwnd;
        self.k = ((self.w_max - self.cwnd) / C).cbrt();
        self.epoch_start = None;
    }

    /// A retransmission timeout: back to one packet, slow start up to half the old window.
    pub fn on_rto(&mut self) {
        self.ssthresh = (self.cwnd * BETA).max(MIN_CWND);
        self.w_max = self.cwnd;
        self.k = ((self.w_max - self.ssthresh) / C).cbrt();
        self.cwnd = 1.0;
        self.epoch_start = None;
    }
}

/// Token-bucket pacer: releases `cwnd * mss / srtt * gain` bytes per second with a burst of at
/// least 16 packets or 2 ms of rate, so a 1 ms timer granularity never starves a fast link.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    tokens: f64,
    last: Option<Instant>,
}

impl Pacer {
    fn rate_and_burst(cwnd: usize, mss: usize, srtt: Duration, slow_start: bool) -> (f64, f64) {
        let gain = if slow_start { 2.0 } else { 1.25 };
        let srtt = srtt.as_secs_f64().max(1e-5);
        let rate = (cwnd * mss) as f64 / srtt * gain;
        let burst = (16 * mss) as f64;
        (rate, burst.max(rate * 0.002))
    }

    /// When a packet of `size` bytes may be sent: `None` = now; `Some(t)` = wait until `t`.
    pub fn delay(
        &mut self,
        now: Instant,
        size: usize,
        cwnd: usize,
        mss: usize,
        srtt: Duration,
        slow_start: bool,
    ) -> Option<Instant> {
        if srtt.is_zero() {
            return None;
        }
        let (rate, burst) = Self::rate_and_burst(cwnd, mss, srtt, slow_start);
        let last = *self.last.get_or_insert_with(|| {
            self.tokens = burst;
            now
        });
        let dt = now.saturating_duration_since(last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = Some(now);
        if self.tokens >= size as f64 {
            return None;
        }
        let wait = (size as f64 - self.tokens) / rate;
        Some(now + Duration::from_secs_f64(wait.max(1e-6)))
    }

    /// Consumes tokens for a sent packet.
    pub fn on_sent(&mut self, size: usize) {
        self.tokens -= size as f64;
    }
}
