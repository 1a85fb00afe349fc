//! NAT sampling (`nat-sampler` 1.0.1): which address do other nodes see us at?
//!
//! Contract: pure data. Keeps the last 16 samples, each recorded twice (as `host:port` and as
//! `host:0`) in a 32-slot ring. A new sample only matches one of the last four of its kind;
//! matching bumps a shared hit counter (in JS the same object sits in several slots, so
//! evicting one slot lowers the hits every slot shares; an arena with stable ids mirrors that).
//! Threshold = `size - (0 if size < 4, 1 if < 8, 2 if < 12, else 3)`.

use std::net::Ipv4Addr;

/// Ring size (`32`: 16 samples, two entries each).
pub const RING: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Sample {
    serial: u64,
    host: Ipv4Addr,
    port: u16,
    hits: i64,
}

/// JS's `NatSampler`.
#[derive(Debug, Clone, Default)]
pub struct NatSampler {
    /// The consistent host, if any.
    pub host: Option<Ipv4Addr>,
    /// The consistent port, 0 when unknown or randomized.
    pub port: u16,
    /// Samples taken, up to 16.
    pub size: u32,
    a: Option<u64>,
    b: Option<u64>,
    threshold: i64,
    top: usize,
    /// Ring of sample serials.
    samples: Vec<u64>,
    /// Arena holding every sample still referenced (at most 32 + 2 + 2).
    arena: Vec<Sample>,
    next_serial: u64,
}

impl NatSampler {
    /// An empty sampler.
    pub fn new() -> Self {
        Self::default()
    }

    fn hits(&self, serial: u64) -> i64 {
        self.arena
            .iter()
            .find(|s| s.serial == serial)
            .map(|s| s.hits)
            .unwrap_or(0)
    }

    fn sample(&self, serial: u64) -> Option<&Sample> {
        self.arena.iter().find(|s| s.serial == serial)
    }

    fn bump_hits(&mut self, serial: u64, d: i64) {
        if let Some(s) = self.arena.iter_mut().find(|s| s.serial == serial) {
            s.hits += d;
        }
    }

    fn bump(&mut self, host: Ipv4Addr, port: u16, inc: usize) -> u64 {
        for i in 0..4usize {
            let j = (self.top.wrapping_sub(inc).wrapping_sub(2 * i)) & 31;
            let Some(&serial) = self.samples.get(j) else {
                break;
            };
            if let Some(s) = self.arena.iter_mut().find(|s| s.serial == serial)
                && s.port == port
                && s.host == host
            {
                s.hits += 1;
                return serial;
            }
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        self.arena.push(Sample {
            serial,
            host,
            port,
            hits: 1,
        });
        serial
    }

    /// Records that a node saw us at `host:port`.
    pub fn add(&mut self, host: Ipv4Addr, port: u16) {
        let a = self.bump(host, port, 2);
        let b = self.bump(host, 0, 1);

        if self.samples.len() < RING {
            self.size += 1;
            let size = i64::from(self.size);
            self.threshold = size
                - if size < 4 {
                    0
                } else if size < 8 {
                    1
                } else if size < 12 {
                    2
                } else {
                    3
                };
            self.samples.push(a);
            self.samples.push(b);
            self.top += 2;
        } else {
            if self.top == RING {
                self.top = 0;
            }
            for new in [a, b] {
                if let Some(slot) = self.samples.get_mut(self.top) {
                    let old = std::mem::replace(slot, new);
                    self.bump_hits(old, -1);
                }
                self.top += 1;
            }
        }

        if self.a.is_none_or(|x| self.hits(x) < self.hits(a)) {
            self.a = Some(a);
        }
        if self.b.is_none_or(|x| self.hits(x) < self.hits(b)) {
            self.b = Some(b);
        }

        let best_a = self.a.and_then(|x| self.sample(x)).copied();
        let best_b = self.b.and_then(|x| self.sample(x)).copied();
        match (best_a, best_b) {
            (Some(sa), _) if sa.hits >= self.threshold => {
                self.host = Some(sa.host);
                self.port = sa.port;
            }
            (_, Some(sb)) if sb.hits >= self.threshold => {
                self.host = Some(sb.host);
                self.port = 0;
            }
            _ => {
                self.host = None;
                self.port = 0;
            }
        }

        // Drop arena entries nobody references any more (bounded: ring + a + b).
        let (sa, sb) = (self.a, self.b);
        let samples = &self.samples;
        self.arena.retain(|s| {
            Some(s.serial) == sa || Some(s.serial) == sb || samples.contains(&s.serial)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_is_enough_then_needs_majority() {
        let mut n = NatSampler::new();
        let ip = Ipv4Addr::LOCALHOST;
        n.add(ip, 1000);
        assert_eq!((n.host, n.port), (Some(ip), 1000));
        n.add(ip, 1001);
        // two samples, threshold 2: host agrees twice, port only once
        assert_eq!((n.host, n.port), (Some(ip), 0));
        n.add(ip, 1000);
        n.add(ip, 1000);
        // size 4, threshold 3: 1000 hit 3 times
        assert_eq!((n.host, n.port), (Some(ip), 1000));
    }

    #[test]
    fn ring_wraps_and_stays_bounded() {
        let mut n = NatSampler::new();
        for i in 0..1000u16 {
            n.add(Ipv4Addr::new(10, 0, 0, (i % 3) as u8), 5000);
        }
        assert!(n.arena.len() <= RING + 4);
        assert_eq!(n.size, 16);
        for _ in 0..20 {
            n.add(Ipv4Addr::new(1, 2, 3, 4), 7);
        }
        assert_eq!((n.host, n.port), (Some(Ipv4Addr::new(1, 2, 3, 4)), 7));
    }
}
