//! The receiving half of [`Stream`]: incoming datagrams, the in-order and out-of-order
//! buffers, reading, and the ACKs (with SACK blocks) we send back.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::{Config, Event, MAX_EVENTS, MAX_OOO_DISTANCE, Stream};
use crate::proto::error::StreamError;
use crate::proto::packet::{self, MAX_SACKS, Packet, SackBlock, flags, seq_lt};
use crate::proto::range_set::SeqRanges;

/// A packet received past a gap in the sequence, held until the gap fills.
#[derive(Debug)]
pub(super) struct OutOfOrder {
    /// Carries the END flag.
    pub(super) end: bool,
    /// Its payload.
    pub(super) data: Vec<u8>,
}

/// The receive state of a [`Stream`].
#[derive(Debug)]
pub(super) struct RecvState {
    /// Next sequence number expected in order (libudx `ack`, TCP RCV.NXT): our cumulative
    /// acknowledgement.
    pub(super) ack: u32,
    /// In-order bytes the application has not read yet.
    pub(super) recv_buf: VecDeque<u8>,
    /// Packets received past a gap, keyed by sequence number, all within
    /// [`MAX_OOO_DISTANCE`] of `ack` (libudx keeps them in `incoming`).
    pub(super) ooo: HashMap<u32, OutOfOrder>,
    /// Payload bytes held in `ooo` (bounded by [`Config::recv_window`]).
    pub(super) ooo_bytes: usize,
    /// The sequence numbers in `ooo` as ranges: the SACK blocks we send are the first
    /// [`MAX_SACKS`] of them.
    pub(super) ooo_seqs: SeqRanges,
    /// Sequence number of the peer's END once delivered in order (libudx `remote_ended`).
    pub(super) remote_end_seq: Option<u32>,
    /// The peer's END was delivered in order.
    pub(super) eof: bool,
    /// We owe the peer an ACK (new DATA/END, a HEARTBEAT, or a window update).
    pub(super) ack_needed: bool,
    /// Receive window we advertised last; reading that reopens it past half sends a
    /// window update.
    pub(super) last_adv_rwnd: u32,
}

impl RecvState {
    /// Forgets the out-of-order packets.
    pub(super) fn clear_ooo(&mut self) {
        self.ooo.clear();
        self.ooo_seqs.clear();
        self.ooo_bytes = 0;
    }

    pub(super) fn new(cfg: &Config) -> Self {
        RecvState {
            ack: 0,
            recv_buf: VecDeque::new(),
            ooo: HashMap::new(),
            ooo_bytes: 0,
            ooo_seqs: SeqRanges::default(),
            remote_end_seq: None,
            eof: false,
            ack_needed: false,
            last_adv_rwnd: cfg.recv_window,
        }
    }
}

impl Stream {
    /// Copies in-order received bytes into `out`. `Ok(0)` with a non-empty `out` means EOF
    /// (the peer's END was reached) or nothing available yet: check [`Stream::is_eof`].
    /// After a failure, buffered bytes are still returned first, then the error.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, StreamError> {
        if self.recv.recv_buf.is_empty()
            && let Some(Err(e)) = self.closed
        {
            return Err(e);
        }
        let n = out.len().min(self.recv.recv_buf.len());
        let (a, b) = self.recv.recv_buf.as_slices();
        let na = n.min(a.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..na), a.get(..na)) {
            dst.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (out.get_mut(na..n), b.get(..n - na)) {
            dst.copy_from_slice(src);
        }
        self.recv.recv_buf.drain(..n);
        // Window update: tell a sender that saw a small window that it opened up.
        let now_rwnd = self.adv_rwnd();
        let half = self.cfg.recv_window / 2;
        if self.recv.last_adv_rwnd < half && now_rwnd >= half && self.closed.is_none() {
            self.recv.ack_needed = true;
        }
        Ok(n)
    }

    /// Bytes ready to read.
    pub fn readable_bytes(&self) -> usize {
        self.recv.recv_buf.len()
    }

    /// Whether the peer's END was reached and all data before it was read.
    pub fn is_eof(&self) -> bool {
        self.recv.eof && self.recv.recv_buf.is_empty()
    }

    pub(super) fn adv_rwnd(&self) -> u32 {
        let used = u32::try_from(self.recv.recv_buf.len()).unwrap_or(u32::MAX);
        self.cfg.recv_window.saturating_sub(used)
    }

    /// Processes one datagram addressed to this stream (the driver checked the stream id)
    /// that arrived from `from`. Malformed input is ignored and counted. Packets from
    /// anywhere but the remote address ([`Stream::accepts_source`]) are dropped, and so are
    /// implausible ones (module docs), each counted in [`Stats`](super::Stats) before any
    /// state changes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(pkt) = Packet::decode(datagram) else {
            self.stats.malformed += 1;
            return;
        };
        if pkt.header.stream_id != self.local_id {
            return;
        }
        let h = pkt.header;
        if !self.accepts_source(from) {
            return;
        }
        if let Some(Err(_)) = self.closed {
            return;
        }
        if !self.plausible(&pkt) {
            return;
        }
        if self.closed.is_some() {
            // Lingering after a clean close: keep acknowledging retransmitted DATA/END.
            if h.flags & (flags::DATA_OR_END | flags::HEARTBEAT) != 0 {
                self.recv.ack_needed = true;
            }
            return;
        }
        self.heard_from_peer(now);
        if h.flags & flags::HEARTBEAT != 0 {
            self.recv.ack_needed = true;
            return;
        }
        let data_inflight = self.recovery.remote_acked != self.send.seq;
        if !seq_lt(h.seq, self.recv.ack) {
            if h.flags & flags::DATA_OR_END != 0 {
                self.on_data(h.seq, h.flags & flags::END != 0, pkt.payload);
            }
            if h.flags & flags::DESTROY != 0 {
                self.close(now, Err(StreamError::Reset));
                return;
            }
        } else if h.flags & flags::DATA_OR_END != 0 {
            self.stats.duplicates += 1;
        }
        if h.flags & flags::MESSAGE != 0 {
            if self.events.len() < MAX_EVENTS {
                self.events.push_back(Event::Message(pkt.payload.to_vec()));
            } else {
                self.stats.messages_dropped += 1;
            }
        }
        if h.flags & flags::DATA_OR_END != 0 {
            self.recv.ack_needed = true;
        }
        self.on_ack(now, &pkt, data_inflight);
        self.check_all_ended(now);
    }

    /// RFC 5961-style checks before a packet from the right address may change state; what
    /// a legitimate libudx peer sends (libudx `udx_write_header`, `process_packet`) bounds
    /// them:
    /// - its `ack` never exceeds what we sent (`send.seq`); an older one is legitimate
    ///   (reordering) and only ignored by `on_ack`;
    /// - DESTROY carries the peer's next seq: never below our `ack` (nothing it sent lies
    ///   beyond it; libudx ignores such a DESTROY too) and beyond it only by the packets it
    ///   has in flight, which stay under [`MAX_OOO_DISTANCE`] (the distance we buffer DATA
    ///   at);
    /// - DATA and END at or above `ack` lie within [`MAX_OOO_DISTANCE`]; END is the peer's
    ///   last packet, so no DATA or END follows an END already received. Below `ack` they
    ///   are retransmissions: acknowledged, not dropped.
    ///
    /// A blind attacker who knows the stream id and spoofs the remote address still has to
    /// hit a window of 32,768 of 2^32 sequence numbers (1 in 131,072 per forged DESTROY).
    fn plausible(&mut self, pkt: &Packet<'_>) -> bool {
        let h = pkt.header;
        if seq_lt(self.send.seq, h.ack) {
            self.stats.dropped_bad_ack += 1;
            return false;
        }
        let destroy = h.flags & flags::DESTROY != 0;
        if destroy && seq_lt(h.seq, self.recv.ack) {
            self.stats.dropped_bad_seq += 1;
            return false;
        }
        if (h.flags & flags::DATA_OR_END == 0 && !destroy) || seq_lt(h.seq, self.recv.ack) {
            return true;
        }
        let dist = h.seq.wrapping_sub(self.recv.ack);
        // A DESTROY after the peer's END legitimately carries END's seq + 1.
        let past_end = h.flags & flags::DATA_OR_END != 0
            && self.recv.remote_end_seq.is_some_and(|e| seq_lt(e, h.seq));
        if dist >= MAX_OOO_DISTANCE || past_end {
            self.stats.dropped_bad_seq += 1;
            return false;
        }
        true
    }

    pub(super) fn on_data(&mut self, seq: u32, end: bool, payload: &[u8]) {
        let dist = seq.wrapping_sub(self.recv.ack);
        let window = self.cfg.recv_window as usize;
        if dist == 0 {
            // The next in-order packet is refused only when the application is not reading;
            // never because of the out-of-order buffer, which it drains (refusing it there
            // deadlocks a sender whose SACKed packets fill our buffer).
            if self.recv.recv_buf.len() + payload.len() > window {
                self.stats.recv_dropped += 1;
                return;
            }
            self.deliver(seq, end, payload);
            // drain the out-of-order buffer
            while let Some(p) = self.recv.ooo.remove(&self.recv.ack) {
                self.recv.ooo_bytes -= p.data.len();
                let s = self.recv.ack;
                self.deliver(s, p.end, &p.data);
            }
            self.recv.ooo_seqs.remove_below(self.recv.ack);
        } else if dist < MAX_OOO_DISTANCE {
            if self.recv.ooo.contains_key(&seq) {
                self.stats.duplicates += 1;
                return;
            }
            if self.recv.ooo_bytes + payload.len() > window {
                self.stats.recv_dropped += 1;
                return;
            }
            self.recv.ooo_bytes += payload.len();
            self.recv.ooo_seqs.insert(seq, seq.wrapping_add(1));
            self.recv.ooo.insert(
                seq,
                OutOfOrder {
                    end,
                    data: payload.to_vec(),
                },
            );
        }
    }

    pub(super) fn deliver(&mut self, seq: u32, end: bool, payload: &[u8]) {
        self.recv.ack = seq.wrapping_add(1);
        if !payload.is_empty() && !self.recv.eof {
            self.recv.recv_buf.extend(payload);
            self.readable_pending = true;
        }
        if end && !self.recv.eof {
            self.recv.remote_end_seq = Some(seq);
            self.recv.eof = true;
            self.readable_pending = true;
            self.recv.clear_ooo();
        }
    }

    pub(super) fn build_ack(&mut self, out: &mut [u8]) -> Option<usize> {
        self.recv.ack_needed = false;
        let mut blocks = [SackBlock { start: 0, end: 0 }; MAX_SACKS];
        let mut nblocks = 0;
        for ((start, end), b) in self.recv.ooo_seqs.iter().zip(blocks.iter_mut()) {
            *b = SackBlock { start, end };
            nblocks += 1;
        }
        let h = self.header(0, self.send.seq);
        self.recv.last_adv_rwnd = h.rwnd;
        self.stats.acks_sent += 1;
        packet::encode(out, h, blocks.get(..nblocks).unwrap_or(&[]), 0, &[])
    }
}
