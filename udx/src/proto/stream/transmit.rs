//! Which datagram [`Stream`] sends next: DESTROY, an ACK, a message, a retransmission, new
//! data or a probe.

use std::time::Instant;

use super::Stream;
use crate::proto::packet::{self, Header, flags};

/// Buffer size that always fits one datagram we produce (`UDX_MTU_MAX` payload plus headers).
pub const MAX_DATAGRAM: usize = 2048;

impl Stream {
    pub(super) fn header(&self, flags: u8, seq: u32) -> Header {
        Header {
            flags,
            data_offset: 0,
            stream_id: self.remote_id.unwrap_or(0),
            rwnd: self.adv_rwnd(),
            seq,
            ack: self.recv.ack,
        }
    }

    /// Writes the next datagram to send into `out` (at least [`MAX_DATAGRAM`] bytes) and
    /// returns its length, or `None` when nothing is due now (then ask
    /// [`Stream::poll_timeout`]).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let n = self.next_transmit(now, out)?;
        self.arm_idle(now);
        Some(n)
    }

    fn next_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        self.remote_id?;
        if self.send.destroy_pending {
            self.send.destroy_pending = false;
            let h = self.header(flags::DESTROY, self.send.seq);
            self.send.seq = self.send.seq.wrapping_add(1);
            return packet::encode(out, h, &[], 0, &[]);
        }
        match self.closed {
            Some(Err(_)) => return None,
            Some(Ok(())) => {
                return if self.recv.ack_needed {
                    self.build_ack(out)
                } else {
                    None
                };
            }
            None => {}
        }
        if self.recv.ack_needed && (!self.recv.ooo.is_empty() || !self.can_send_new(now)) {
            return self.build_ack(out);
        }
        if let Some(m) = self.send.messages.pop_front() {
            let h = self.header(flags::MESSAGE, self.send.seq);
            return packet::encode(out, h, &[], 0, &m);
        }
        if let Some(n) = self.send_retransmit(now, out) {
            return Some(n);
        }
        if self.can_send_new(now)
            && let Some(n) = self.send_new(now, out)
        {
            return Some(n);
        }
        if self.recv.ack_needed {
            return self.build_ack(out);
        }
        if self.send.probe_needed {
            self.send.probe_needed = false;
            if self.send.zwp_at.is_none() && self.send.peer_rwnd == 0 && self.has_unsent() {
                self.send.zwp_at = Some(now + self.recovery.rtt.rto());
            }
            let h = self.header(flags::HEARTBEAT, self.send.seq);
            return packet::encode(out, h, &[], 0, &[]);
        }
        if let Some(k) = self.cfg.keepalive
            && self.send.keepalive_at.is_none()
            && self.recovery.inflight.is_empty()
        {
            self.send.keepalive_at = Some(now + k);
        }
        None
    }
}
