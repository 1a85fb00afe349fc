//! Path MTU probing (libudx `UDX_MTU_*`, `src/udx.c mtu_probeify_packet`): start at 1200,
//! after the first acknowledgement pad one DATA packet to `current + 32`; an acknowledged probe
//! raises the MTU, three lost probes end the search; never above the maximum (1500).

/// `UDX_MTU_BASE`.
pub const BASE_MTU: usize = 1200;
/// `UDX_MTU_MAX`.
pub const MAX_MTU: usize = 1500;
/// `UDX_MTU_STEP`.
pub const MTU_STEP: usize = 32;
/// `UDX_MTU_MAX_PROBES`.
pub const MAX_PROBES: u8 = 3;

/// Probe state.
#[derive(Debug, Clone)]
pub struct MtuProber {
    current: usize,
    max: usize,
    in_flight: Option<usize>,
    failures: u8,
    acked_any: bool,
}

impl MtuProber {
    /// A prober between `base` and `max` (no probing when `max <= base`).
    pub fn new(base: usize, max: usize) -> Self {
        MtuProber {
            current: base,
            max,
            in_flight: None,
            failures: 0,
            acked_any: false,
        }
    }

    /// MTU in use.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Whether the search ended (success at max, or too many lost probes).
    pub fn done(&self) -> bool {
        self.current >= self.max || self.failures >= MAX_PROBES
    }

    /// Padding bytes for the next probe, if one should go out now.
    pub fn probe_padding(&self) -> Option<usize> {
        if self.done() || self.in_flight.is_some() || !self.acked_any {
            return None;
        }
        Some(MTU_STEP.min(self.max - self.current))
    }

    /// A probe with `padding` bytes went out.
    pub fn on_probe_sent(&mut self, padding: usize) {
        self.in_flight = Some(self.current + padding);
    }

    /// Any packet was acknowledged.
    pub fn on_ack(&mut self) {
        self.acked_any = true;
    }

    /// The probe arrived: adopt its size.
    pub fn on_probe_acked(&mut self) {
        if let Some(s) = self.in_flight.take() {
            self.current = self.current.max(s).min(self.max);
        }
    }

    /// The probe was lost.
    pub fn on_probe_lost(&mut self) {
        if self.in_flight.take().is_some() {
            self.failures = self.failures.saturating_add(1);
        }
    }
}
