//! RTT estimation and the retransmission timeout (RFC 6298, as libudx `ack_packet`).

use std::time::Duration;

/// `UDX_RTO_MIN_MS`-style floor of the retransmission timeout (1 s).
pub const MIN_RTO: Duration = Duration::from_millis(1000);
/// `UDX_RTO_MAX_MS`: cap of the retransmission timeout (30 s).
pub const MAX_RTO: Duration = Duration::from_secs(30);
/// Initial RTO before any sample (1 s, libudx `stream->rto = 1000`).
pub const INITIAL_RTO: Duration = Duration::from_millis(1000);

/// Smoothed RTT, variance and minimum, in microseconds.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<u64>,
    rttvar: u64,
    min_rtt: u64,
    latest: u64,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    /// A fresh estimator with the given RTO bounds.
    pub fn new(min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: 0,
            min_rtt: u64::MAX,
            latest: 0,
            min_rto,
            max_rto,
        }
    }

    /// Feeds one sample from a never-retransmitted packet.
    pub fn on_sample(&mut self, rtt: Duration) {
        let mut r = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latest = r;
        self.min_rtt = self.min_rtt.min(r);
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // libudx: samples > 5 s that exceed srtt + 5*rttvar are clamped.
                let clamp = srtt.saturating_add(self.rttvar.saturating_mul(5));
                if r > 5_000_000 && r > clamp {
                    r = clamp;
                }
                self.rttvar = (3 * self.rttvar + srtt.abs_diff(r)) / 4;
                self.srtt = Some((7 * srtt + r) / 8);
            }
        }
    }

    /// Smoothed RTT (zero before the first sample).
    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt.unwrap_or(0))
    }

    /// Whether any sample arrived.
    pub fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }

    /// Minimum RTT seen (zero before the first sample).
    pub fn min_rtt(&self) -> Duration {
        if self.min_rtt == u64::MAX {
            Duration::ZERO
        } else {
            Duration::from_micros(self.min_rtt)
        }
    }

    /// Latest sample.
    pub fn latest(&self) -> Duration {
        Duration::from_micros(self.latest)
    }

    /// `max(srtt + 4*rttvar, min_rto)`, capped at `max_rto`.
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => INITIAL_RTO.clamp(self.min_rto, self.max_rto),
            Some(s) => Duration::from_micros(s.saturating_add(self.rttvar.saturating_mul(4)))
                .clamp(self.min_rto, self.max_rto),
        }
    }
}
