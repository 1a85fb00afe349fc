//! The sending half of [`Stream`]: the write queue, unreliable messages, flow control against
//! the peer's window, pacing, and cutting new DATA packets.

use std::collections::VecDeque;
use std::time::Instant;

use super::recovery::Sent;
use super::{DEFAULT_RWND_MAX, MAX_QUEUED_MESSAGES, Stream};
use crate::proto::congestion::Pacer;
use crate::proto::error::WriteError;
use crate::proto::packet::{HEADER_SIZE, flags};

/// The send state of a [`Stream`].
#[derive(Debug)]
pub(super) struct SendState {
    /// Sequence number of the next new packet (libudx `seq`, TCP SND.NXT).
    pub(super) seq: u32,
    /// Bytes written and not yet cumulatively acknowledged; its first byte is at stream
    /// offset `buf_base`.
    pub(super) send_buf: VecDeque<u8>,
    /// Stream offset of `send_buf`'s first byte.
    pub(super) buf_base: u64,
    /// Stream offset of the first byte not yet cut into a packet.
    pub(super) unsent: u64,
    /// [`Stream::end`] was called: an END follows the last written byte.
    pub(super) end_requested: bool,
    /// Sequence number of our END packet once it was sent.
    pub(super) end_seq: Option<u32>,
    /// Our END was acknowledged (libudx `UDX_STREAM_ENDED`).
    pub(super) end_acked: bool,
    /// Unreliable MESSAGE payloads waiting to go out (<= [`MAX_QUEUED_MESSAGES`]).
    pub(super) messages: VecDeque<Vec<u8>>,
    /// A DESTROY packet goes out on the next [`Stream::poll_transmit`].
    pub(super) destroy_pending: bool,
    /// Receive window the peer last advertised, in bytes (libudx `send_rwnd`).
    pub(super) peer_rwnd: u32,
    /// Sequence number of the packet that last updated `peer_rwnd` (libudx `send_wl1`, TCP
    /// SND.WL1): only a packet with a newer sequence number, or the same one with a newer ack,
    /// may change the window, so a reordered old ACK cannot shrink or reopen it (libudx
    /// `src/udx.c process_packet`).
    pub(super) wl1: u32,
    /// Ack number of the packet that last updated `peer_rwnd` (libudx `send_wl2`, TCP
    /// SND.WL2); see `wl1`.
    pub(super) wl2: u32,
    /// When the next zero-window probe (a HEARTBEAT) is due: armed one RTO after the peer
    /// advertised a zero window with nothing in flight and data waiting, then every 2 x RTO
    /// (libudx `UDX_TIMER_ZWP`, `src/udx.c udx_zwp_timeout`).
    pub(super) zwp_at: Option<Instant>,
    /// Zero-window probes sent since the window last opened (libudx `zwp_count`).
    pub(super) zwp_count: u32,
    /// When the idle keepalive HEARTBEAT is due ([`Config::keepalive`](super::Config::keepalive); libudx
    /// `src/udx.c udx_keepalive_timeout`).
    pub(super) keepalive_at: Option<Instant>,
    /// A HEARTBEAT (zero-window or keepalive probe, or a reply to the peer's) goes out on
    /// the next [`Stream::poll_transmit`] (libudx `src/udx.c send_probe`).
    pub(super) probe_needed: bool,
    /// The next DATA packet ignores the congestion window and pacing: a tail-loss probe.
    pub(super) force_one: bool,
    /// Pacing holds transmissions until this instant.
    pub(super) pace_until: Option<Instant>,
    /// Token bucket that spreads a window over the RTT.
    pub(super) pacer: Pacer,
}

impl SendState {
    pub(super) fn new() -> Self {
        SendState {
            seq: 0,
            send_buf: VecDeque::new(),
            buf_base: 0,
            unsent: 0,
            end_requested: false,
            end_seq: None,
            end_acked: false,
            messages: VecDeque::new(),
            destroy_pending: false,
            peer_rwnd: DEFAULT_RWND_MAX,
            wl1: 0,
            wl2: 0,
            zwp_at: None,
            zwp_count: 0,
            keepalive_at: None,
            probe_needed: false,
            force_one: false,
            pace_until: None,
            pacer: Pacer::default(),
        }
    }
}

impl Stream {
    /// Bytes the application may still write before the send buffer is full.
    pub fn write_capacity(&self) -> usize {
        if self.closed.is_some() || self.send.end_requested {
            return 0;
        }
        self.cfg
            .send_buffer
            .saturating_sub(self.send.send_buf.len())
    }

    /// Bytes written but not yet acknowledged (including unsent).
    pub fn unacked_bytes(&self) -> usize {
        self.send.send_buf.len()
    }

    /// Queues application data; returns how many bytes were accepted (bounded by the send
    /// buffer; 0 = full, wait for [`Event::Writable`](super::Event::Writable)).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        if self.send.end_requested {
            return Err(WriteError::Ended);
        }
        let n = data.len().min(self.write_capacity());
        self.send.send_buf.extend(data.get(..n).unwrap_or(&[]));
        if n > 0
            && self.recovery.in_flight == 0
            && self.send.peer_rwnd == 0
            && self.send.zwp_at.is_none()
        {
            self.send.probe_needed = true;
        }
        Ok(n)
    }

    /// Ends our direction after all written data (half-close with END).
    pub fn end(&mut self) -> Result<(), WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        self.send.end_requested = true;
        Ok(())
    }

    /// Queues an unreliable MESSAGE (at most one packet's payload).
    pub fn send_message(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        let max = self.max_payload();
        if data.len() > max {
            return Err(WriteError::TooLarge {
                len: data.len(),
                max,
            });
        }
        if self.send.messages.len() >= MAX_QUEUED_MESSAGES {
            return Err(WriteError::QueueFull);
        }
        self.send.messages.push_back(data.to_vec());
        Ok(())
    }

    pub(super) fn has_unsent(&self) -> bool {
        self.send.unsent < self.send.buf_base + self.send.send_buf.len() as u64
            || (self.send.end_requested && self.send.end_seq.is_none())
    }

    pub(super) fn send_window(&self) -> usize {
        if self.send.peer_rwnd == 0 {
            return 0;
        }
        let by_rwnd = (self.send.peer_rwnd as usize / self.max_payload()).max(1);
        self.recovery.cc.window().min(by_rwnd)
    }

    pub(super) fn paced(&mut self, now: Instant, size: usize) -> bool {
        if self.send.force_one {
            return false;
        }
        if self.send.pace_until.is_some_and(|t| now < t) {
            return true;
        }
        let cwnd = self.recovery.cc.window();
        let mss = self.max_payload();
        let ss = self.recovery.cc.in_slow_start();
        match self
            .send
            .pacer
            .delay(now, size, cwnd, mss, self.recovery.rtt.srtt(), ss)
        {
            None => false,
            Some(t) => {
                self.send.pace_until = Some(t);
                true
            }
        }
    }

    pub(super) fn can_send_new(&self, now: Instant) -> bool {
        self.has_unsent()
            && (self.send.force_one
                || (self.recovery.in_flight < self.send_window()
                    && self.send.pace_until.is_none_or(|t| now >= t)))
    }

    pub(super) fn copy_payload(&self, offset: u64, len: usize, out: &mut [u8]) -> Option<()> {
        let start = usize::try_from(offset.checked_sub(self.send.buf_base)?).ok()?;
        let (a, b) = self.send.send_buf.as_slices();
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

    pub(super) fn encode_data(
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

    pub(super) fn send_new(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let mss = self.max_payload();
        let write_end = self.send.buf_base + self.send.send_buf.len() as u64;
        let avail = usize::try_from(write_end - self.send.unsent).unwrap_or(usize::MAX);
        let len = avail.min(mss);
        let end = len == avail && self.send.end_requested && self.send.end_seq.is_none();
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
        let seq = self.send.seq;
        let n = self.encode_data(out, seq, self.send.unsent, len, end, padding)?;
        if padding > 0 {
            self.mtu.on_probe_sent(padding);
        }
        self.recovery.inflight.push_back(Sent {
            offset: self.send.unsent,
            len: u16::try_from(len).ok()?,
            end,
            sent_at: now,
            transmits: 1,
            rto_expiries: 0,
            sacked: false,
            lost: false,
            counted: false,
            queued: false,
            probe: padding > 0,
            order: self.recovery.xmit_order + 1,
            prev_sent: None,
            next_sent: None,
        });
        self.recovery.xmit_order += 1;
        self.recovery.enter_network(seq);
        self.send.unsent += len as u64;
        if end {
            self.send.end_seq = Some(seq);
        }
        self.send.seq = self.send.seq.wrapping_add(1);
        self.stats.packets_sent += 1;
        self.after_send(now, n);
        if self.recovery.tlp_at.is_none() {
            self.arm_tlp(now);
        }
        Some(n)
    }

    pub(super) fn after_send(&mut self, now: Instant, n: usize) {
        self.send.force_one = false;
        self.send.pacer.on_sent(n);
        if self.recovery.rto_at.is_none() {
            self.recovery.rto_at = Some(now + self.recovery.rtt.rto());
        }
        self.send.keepalive_at = None;
        if self.recv.ooo.is_empty() {
            // DATA carries our cumulative ack: no separate ACK needed.
            self.recv.ack_needed = false;
            self.recv.last_adv_rwnd = self.adv_rwnd();
        }
    }
}
