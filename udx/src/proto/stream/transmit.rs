//! The sending half of [`Stream`]: which datagram goes out next.

use std::time::{Duration, Instant};

use super::{Sent, Stream};
use crate::proto::packet::{
    self, HEADER_SIZE, Header, MAX_SACKS, SACK_SCAN_LIMIT, SackBlock, flags,
};

/// Buffer size that always fits one datagram we produce (`UDX_MTU_MAX` payload plus headers).
pub const MAX_DATAGRAM: usize = 2048;

impl Stream {
    pub(super) fn has_unsent(&self) -> bool {
        self.unsent < self.buf_base + self.send_buf.len() as u64
            || (self.end_requested && self.end_seq.is_none())
    }

    fn header(&self, flags: u8, seq: u32) -> Header {
        Header {
            flags,
            data_offset: 0,
            stream_id: self.remote_id.unwrap_or(0),
            rwnd: self.adv_rwnd(),
            seq,
            ack: self.ack,
        }
    }

    /// Writes the next datagram to send into `out` (at least [`MAX_DATAGRAM`] bytes) and
    /// returns its length, or `None` when nothing is due now (then ask
    /// [`Stream::poll_timeout`]).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        self.remote_id?;
        if self.destroy_pending {
            self.destroy_pending = false;
            let h = self.header(flags::DESTROY, self.seq);
            self.seq = self.seq.wrapping_add(1);
            return packet::encode(out, h, &[], 0, &[]);
        }
        match self.closed {
            Some(Err(_)) => return None,
            Some(Ok(())) => {
                return if self.ack_needed {
                    self.build_ack(out)
                } else {
                    None
                };
            }
            None => {}
        }
        if self.ack_needed && (!self.ooo.is_empty() || !self.can_send_new(now)) {
            return self.build_ack(out);
        }
        if let Some(m) = self.messages.pop_front() {
            let h = self.header(flags::MESSAGE, self.seq);
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
        if self.ack_needed {
            return self.build_ack(out);
        }
        if self.probe_needed {
            self.probe_needed = false;
            if self.zwp_at.is_none() && self.peer_rwnd == 0 && self.has_unsent() {
                self.zwp_at = Some(now + self.rtt.rto());
            }
            let h = self.header(flags::HEARTBEAT, self.seq);
            return packet::encode(out, h, &[], 0, &[]);
        }
        if let Some(k) = self.cfg.keepalive
            && self.keepalive_at.is_none()
            && self.inflight.is_empty()
        {
            self.keepalive_at = Some(now + k);
        }
        None
    }

    fn send_window(&self) -> usize {
        if self.peer_rwnd == 0 {
            return 0;
        }
        let by_rwnd = (self.peer_rwnd as usize / self.max_payload()).max(1);
        self.cc.window().min(by_rwnd)
    }

    fn paced(&mut self, now: Instant, size: usize) -> bool {
        if self.force_one {
            return false;
        }
        if self.pace_until.is_some_and(|t| now < t) {
            return true;
        }
        let cwnd = self.cc.window();
        let mss = self.max_payload();
        let ss = self.cc.in_slow_start();
        match self.pacer.delay(now, size, cwnd, mss, self.rtt.srtt(), ss) {
            None => false,
            Some(t) => {
                self.pace_until = Some(t);
                true
            }
        }
    }

    fn can_send_new(&self, now: Instant) -> bool {
        self.has_unsent()
            && (self.force_one
                || (self.in_flight < self.send_window()
                    && self.pace_until.is_none_or(|t| now >= t)))
    }

    fn copy_payload(&self, offset: u64, len: usize, out: &mut [u8]) -> Option<()> {
        let start = usize::try_from(offset.checked_sub(self.buf_base)?).ok()?;
        let (a, b) = self.send_buf.as_slices();
        let mut written = 0;
        let mut pos = start;
        while written < len {
            let (src, idx) = if pos < a.len() {
                (a, pos)
            } else {
                (b, pos - a.len())
            };
            let avail = src.get(idx..)?;
            let n = avail.len().min(len - written);
            out.get_mut(written..written + n)?
                .copy_from_slice(avail.get(..n)?);
            written += n;
            pos += n;
        }
        Some(())
    }

    fn encode_data(
        &self,
        out: &mut [u8],
        seq: u32,
        offset: u64,
        len: usize,
        end: bool,
        padding: usize,
    ) -> Option<usize> {
        let mut f = if end { flags::END } else { 0 };
        if len > 0 {
            f |= flags::DATA;
        }
        let mut h = self.header(f, seq);
        h.data_offset = u8::try_from(padding).ok()?;
        let total = HEADER_SIZE + padding + len;
        let buf = out.get_mut(..total)?;
        h.encode(buf)?;
        buf.get_mut(HEADER_SIZE..HEADER_SIZE + padding)?.fill(0);
        self.copy_payload(offset, len, buf.get_mut(HEADER_SIZE + padding..)?)?;
        Some(total)
    }

    fn send_retransmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if self.dup_at.is_some_and(|t| now >= t)
            && let Some(seq) = self.dup_pending.take()
        {
            self.dup_at = None;
            // Second copy of the oldest packet after a repeated RTO.
            let idx = seq.wrapping_sub(self.remote_acked) as usize;
            if packet::seq_diff(seq, self.remote_acked) >= 0
                && let Some(p) = self.inflight.get(idx)
                && !p.sacked
            {
                let (offset, len, end) = (p.offset, usize::from(p.len), p.end);
                if let Some(n) = self.encode_data(out, seq, offset, len, end, 0) {
                    self.stats.retransmits += 1;
                    return Some(n);
                }
            }
        }
        while let Some(&seq) = self.retransmit.front() {
            let idx = seq.wrapping_sub(self.remote_acked) as usize;
            let valid = self
                .inflight
                .get(idx)
                .is_some_and(|p| p.queued && !p.sacked)
                && packet::seq_diff(seq, self.remote_acked) >= 0;
            if !valid {
                self.retransmit.pop_front();
                continue;
            }
            if self.in_flight >= self.cc.window() && !self.force_one {
                return None;
            }
            let (offset, len, end) = {
                let p = self.inflight.get(idx)?;
                (p.offset, usize::from(p.len), p.end)
            };
            if self.paced(now, len + HEADER_SIZE) {
                return None;
            }
            self.retransmit.pop_front();
            let n = self.encode_data(out, seq, offset, len, end, 0)?;
            let p = self.inflight.get_mut(idx)?;
            p.queued = false;
            p.lost = false;
            p.transmits = p.transmits.saturating_add(1);
            p.sent_at = now;
            self.xmit_order += 1;
            p.order = self.xmit_order;
            if !p.counted {
                p.counted = true;
                self.in_flight += 1;
            }
            self.after_send(now, n);
            self.stats.retransmits += 1;
            if self.rto_dup == Some(seq) {
                // The second copy leaves half an RTT (at least 15 ms) later, so one short
                // burst of loss does not take both.
                self.rto_dup = None;
                self.dup_pending = Some(seq);
                self.dup_at = Some(now + (self.rtt.srtt() / 2).max(Duration::from_millis(15)));
            }
            return Some(n);
        }
        None
    }

    fn send_new(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let mss = self.max_payload();
        let write_end = self.buf_base + self.send_buf.len() as u64;
        let avail = usize::try_from(write_end - self.unsent).unwrap_or(usize::MAX);
        let len = avail.min(mss);
        let end = len == avail && self.end_requested && self.end_seq.is_none();
        if len == 0 && !end {
            return None;
        }
        let padding = if len == mss {
            self.mtu.probe_padding().unwrap_or(0)
        } else {
            0
        };
        if self.paced(now, len + padding + HEADER_SIZE) {
            return None;
        }
        let seq = self.seq;
        let n = self.encode_data(out, seq, self.unsent, len, end, padding)?;
        if padding > 0 {
            self.mtu.on_probe_sent(padding);
        }
        self.inflight.push_back(Sent {
            offset: self.unsent,
            len: u16::try_from(len).ok()?,
            end,
            sent_at: now,
            transmits: 1,
            rto_expiries: 0,
            sacked: false,
            lost: false,
            counted: true,
            queued: false,
            probe: padding > 0,
            order: self.xmit_order + 1,
        });
        self.xmit_order += 1;
        self.in_flight += 1;
        self.unsent += len as u64;
        if end {
            self.end_seq = Some(seq);
        }
        self.seq = self.seq.wrapping_add(1);
        self.stats.packets_sent += 1;
        self.after_send(now, n);
        if self.tlp_at.is_none() {
            self.arm_tlp(now);
        }
        Some(n)
    }

    fn after_send(&mut self, now: Instant, n: usize) {
        self.force_one = false;
        self.pacer.on_sent(n);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        self.keepalive_at = None;
        if self.ooo.is_empty() {
            // DATA carries our cumulative ack: no separate ACK needed.
            self.ack_needed = false;
            self.last_adv_rwnd = self.adv_rwnd();
        }
    }

    fn build_ack(&mut self, out: &mut [u8]) -> Option<usize> {
        self.ack_needed = false;
        let mut blocks = [SackBlock { start: 0, end: 0 }; MAX_SACKS];
        let mut nblocks = 0;
        if !self.ooo.is_empty() {
            let mut open: Option<u32> = None;
            let scan = self.ooo_max.min(SACK_SCAN_LIMIT);
            let mut remaining = self.ooo.len();
            for d in 1..=scan {
                let s = self.ack.wrapping_add(d);
                if self.ooo.contains_key(&s) {
                    remaining -= 1;
                    if open.is_none() {
                        open = Some(s);
                    }
                } else if let Some(start) = open.take() {
                    if let Some(b) = blocks.get_mut(nblocks) {
                        *b = SackBlock { start, end: s };
                        nblocks += 1;
                    }
                    if nblocks == MAX_SACKS || remaining == 0 {
                        break;
                    }
                }
            }
            if let Some(start) = open
                && let Some(b) = blocks.get_mut(nblocks)
            {
                *b = SackBlock {
                    start,
                    end: self.ack.wrapping_add(scan).wrapping_add(1),
                };
                nblocks += 1;
            }
        }
        let h = self.header(0, self.seq);
        self.last_adv_rwnd = h.rwnd;
        self.stats.acks_sent += 1;
        packet::encode(out, h, blocks.get(..nblocks).unwrap_or(&[]), 0, &[])
    }
}
