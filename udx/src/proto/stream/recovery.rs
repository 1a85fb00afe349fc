//! Loss recovery for [`Stream`]: the packets in flight, SACK and cumulative ACK processing,
//! RACK loss detection, tail-loss probes, the retransmission timeout and congestion control.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Config, MAX_TLPS, Stream};
use crate::proto::congestion::Cubic;
use crate::proto::error::StreamError;
use crate::proto::packet::{self, HEADER_SIZE, Packet, SackBlock, seq_diff, seq_lt};
use crate::proto::range_set::SeqRanges;
use crate::proto::rtt::RttEstimator;

/// One packet between `remote_acked` and `seq`: what it carried and how it fared.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    /// Stream offset of its first payload byte.
    pub(super) offset: u64,
    /// Payload bytes.
    pub(super) len: u16,
    /// Carries the END flag.
    pub(super) end: bool,
    /// Time of its latest transmission.
    pub(super) sent_at: Instant,
    /// Transmissions so far (1 = never retransmitted).
    pub(super) transmits: u8,
    /// RTO expiries while it was the oldest unacknowledged packet (libudx `rto_count`,
    /// bounded by [`Config::max_rto_timeouts`]).
    pub(super) rto_expiries: u8,
    /// Covered by a SACK block (not yet cumulatively acknowledged).
    pub(super) sacked: bool,
    /// Declared lost by RACK or an RTO and not yet retransmitted.
    pub(super) lost: bool,
    /// In the network: counted in `in_flight` and linked into the transmission-order list.
    pub(super) counted: bool,
    /// Queued in `retransmit`.
    pub(super) queued: bool,
    /// MTU probe padding used when first sent.
    pub(super) probe: bool,
    /// Transmission order, to break ties between packets sent at the same instant.
    pub(super) order: u64,
    /// While `counted`: the seq of the packet in the network transmitted just before this
    /// one, and just after (the transmission-order list, see `Recovery::oldest_sent`).
    pub(super) prev_sent: Option<u32>,
    pub(super) next_sent: Option<u32>,
}

/// Congestion state, as libudx `ca_state` (Linux `tcp_ca_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CaState {
    /// No loss outstanding (`UDX_CA_OPEN`).
    Open,
    /// RACK declared a loss; the window was cut once and holds until `high_seq` is
    /// acknowledged (`UDX_CA_RECOVERY`).
    Recovery,
    /// The RTO fired; everything not SACKed is being resent from a window of one
    /// (`UDX_CA_LOSS`).
    Loss,
}

/// The recovery state of a [`Stream`].
#[derive(Debug)]
pub(super) struct Recovery {
    /// Oldest sequence number the peer has not cumulatively acknowledged (libudx
    /// `remote_acked`, TCP SND.UNA); `inflight[0]` carries it.
    pub(super) remote_acked: u32,
    /// Every packet from `remote_acked` up to `seq - 1`, in sequence order, whether SACKed,
    /// lost or still in the network (libudx `outgoing` / `inflight_queue`).
    pub(super) inflight: VecDeque<Sent>,
    /// Packets counted against the congestion window: sent, not SACKed and not declared lost
    /// (libudx `inflight`, counted in packets here).
    pub(super) in_flight: usize,
    /// SACKed packets in `inflight` (libudx `sacks`).
    pub(super) sacked_count: usize,
    /// The SACKed sequence numbers in `inflight` as ranges, so a SACK block costs only the
    /// packets it newly covers and the oldest and newest unSACKed packets are found at once.
    pub(super) sacked: SeqRanges,
    /// Oldest and newest transmission still in the network: the ends of a list, linked
    /// through `Sent::prev_sent`/`next_sent`, of the `counted` packets in transmission order
    /// (Linux's `tsorted_sent_queue`). RACK walks it from the oldest (RFC 8985 6.2 step 5)
    /// and stops at the first packet still within its reordering window; a packet leaves it
    /// in O(1) when it is acknowledged, SACKed, declared lost or resent.
    pub(super) oldest_sent: Option<u32>,
    pub(super) newest_sent: Option<u32>,
    /// Sequence numbers queued to retransmit (libudx `retransmit_queue`).
    pub(super) retransmit: VecDeque<u32>,
    /// Smoothed RTT, variance, minimum and the RTO (RFC 6298).
    pub(super) rtt: RttEstimator,
    /// CUBIC congestion window (RFC 9438).
    pub(super) cc: Cubic,
    /// Congestion state (libudx `ca_state`: `UDX_CA_OPEN`, `UDX_CA_RECOVERY`, `UDX_CA_LOSS`).
    pub(super) ca: CaState,
    /// Last sequence number sent when recovery or loss began: the state returns to `Open`
    /// once `remote_acked` passes it (libudx `high_seq`).
    pub(super) high_seq: u32,
    /// Retransmission timer (libudx `UDX_TIMER_RTO`, `src/udx.c udx_rto_timeout`).
    pub(super) rto_at: Option<Instant>,
    /// Tail-loss probe timer: 2 x SRTT after the last send or delivery, never after the RTO
    /// (RACK-TLP, RFC 8985 7.2 "PTO"; libudx `src/udx.c schedule_loss_probe`).
    pub(super) tlp_at: Option<Instant>,
    /// Tail-loss probes still allowed before an ACK delivers new data ([`MAX_TLPS`]; libudx
    /// allows one, `tlp_permitted`).
    pub(super) tlp_left: u8,
    /// Send time of the newest never-retransmitted packet the ACK being processed delivered:
    /// its one RTT sample.
    pub(super) rtt_candidate: Option<Instant>,
    /// Sequence number whose second copy is due at `dup_at` (after a repeated RTO).
    pub(super) dup_pending: Option<u32>,
    /// When the second copy of `dup_pending` goes out.
    pub(super) dup_at: Option<Instant>,
    /// Sequence number an RTO asked to send twice; becomes `dup_pending` once the first copy
    /// leaves.
    pub(super) rto_dup: Option<u32>,
    /// RACK reordering timer: when the oldest packet that is not yet lost passes
    /// `rack_rtt + reo_wnd` (RFC 8985 6.3; libudx `UDX_TIMER_RACK_REO`,
    /// `src/udx.c udx_rack_reo_timeout`).
    pub(super) reorder_at: Option<Instant>,
    /// RACK.xmit_ts (RFC 8985 6.1): send time of the most recently sent packet that was
    /// delivered (libudx `rack_time_sent`).
    pub(super) rack_xmit: Option<Instant>,
    /// Sequence number of that packet (RACK.end_seq; libudx keeps one past it,
    /// `rack_next_seq`).
    pub(super) rack_seq: u32,
    /// Transmission order of that packet, which breaks ties within a burst sent at the same
    /// instant.
    pub(super) rack_order: u64,
    /// End of the current HyStart++ round (the `seq` when it began).
    pub(super) round_end: u32,
    /// Transmissions so far; each one stamps `Sent::order`.
    pub(super) xmit_order: u64,
    /// RACK.rtt (RFC 8985 6.1): RTT of the packet `rack_xmit` comes from (libudx `rack_rtt`).
    pub(super) rack_rtt: Duration,
    /// RACK.reordering_seen (RFC 8985 6.2 step 3): the peer delivered a packet after a later
    /// one, so the reordering window stays open in recovery (libudx `reordering_seen`).
    pub(super) reorder_seen: bool,
    /// RACK.reo_wnd_mult (RFC 8985 6.2.4 step 2): how many quarter min-RTTs the reordering
    /// window spans; grows by one per spurious retransmission, at most 16.
    pub(super) reo_mult: u32,
}

impl Recovery {
    fn get_mut(&mut self, seq: u32) -> Option<&mut Sent> {
        self.inflight
            .get_mut(seq.wrapping_sub(self.remote_acked) as usize)
    }

    /// Packet `seq` (in `inflight`, not counted) was just transmitted: count it in
    /// `in_flight` and append it to the transmission-order list.
    pub(super) fn enter_network(&mut self, seq: u32) {
        let tail = self.newest_sent;
        let Some(p) = self.get_mut(seq) else {
            return;
        };
        if p.counted {
            return;
        }
        p.counted = true;
        p.prev_sent = tail;
        p.next_sent = None;
        match tail.and_then(|t| self.get_mut(t)) {
            Some(t) => t.next_sent = Some(seq),
            None => self.oldest_sent = Some(seq),
        }
        self.newest_sent = Some(seq);
        self.in_flight += 1;
    }

    /// Packet `seq` was acknowledged, SACKed or declared lost: it no longer counts in
    /// `in_flight` and leaves the transmission-order list.
    pub(super) fn leave_network(&mut self, seq: u32) {
        let Some(p) = self.get_mut(seq) else {
            return;
        };
        if !p.counted {
            return;
        }
        p.counted = false;
        let (prev, next) = (p.prev_sent.take(), p.next_sent.take());
        match prev.and_then(|s| self.get_mut(s)) {
            Some(q) => q.next_sent = next,
            None => self.oldest_sent = next,
        }
        match next.and_then(|s| self.get_mut(s)) {
            Some(q) => q.prev_sent = prev,
            None => self.newest_sent = prev,
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Nothing is in the network any more (an RTO declared every packet lost).
    fn all_left_network(&mut self) {
        for p in self.inflight.iter_mut() {
            p.counted = false;
        }
        self.in_flight = 0;
        self.oldest_sent = None;
        self.newest_sent = None;
    }

    /// Forgets every packet in flight (the stream failed).
    pub(super) fn clear(&mut self) {
        self.inflight.clear();
        self.in_flight = 0;
        self.sacked_count = 0;
        self.sacked.clear();
        self.oldest_sent = None;
        self.newest_sent = None;
    }

    pub(super) fn new(cfg: &Config) -> Self {
        Recovery {
            remote_acked: 0,
            inflight: VecDeque::new(),
            in_flight: 0,
            sacked_count: 0,
            sacked: SeqRanges::default(),
            oldest_sent: None,
            newest_sent: None,
            retransmit: VecDeque::new(),
            rtt: RttEstimator::new(cfg.min_rto, cfg.max_rto),
            cc: Cubic::new(),
            ca: CaState::Open,
            high_seq: 0,
            rto_at: None,
            tlp_at: None,
            tlp_left: 0,
            rtt_candidate: None,
            dup_pending: None,
            dup_at: None,
            rto_dup: None,
            reorder_at: None,
            rack_xmit: None,
            rack_seq: 0,
            rack_order: 0,
            round_end: 0,
            xmit_order: 0,
            rack_rtt: Duration::ZERO,
            reorder_seen: false,
            reo_mult: 1,
        }
    }
}

impl Stream {
    pub(super) fn on_ack(&mut self, now: Instant, pkt: &Packet<'_>, data_inflight: bool) {
        let h = pkt.header;
        let ack = h.ack;
        if seq_lt(self.send.seq, ack) {
            return; // acks something we never sent
        }
        if !seq_lt(ack, self.recovery.remote_acked)
            && (seq_lt(self.send.wl1, h.seq)
                || (self.send.wl1 == h.seq && !seq_lt(ack, self.send.wl2)))
        {
            if h.rwnd > 0 {
                self.send.zwp_at = None;
                self.send.zwp_count = 0;
            }
            self.send.peer_rwnd = h.rwnd;
            self.send.wl1 = h.seq;
            self.send.wl2 = ack;
        }
        if seq_lt(ack, self.recovery.remote_acked) {
            return; // an ACK older than one already processed (libudx `src/udx.c process_packet`)
        }
        let mut newly = 0usize;
        let mut latest: Option<(Instant, u64, u32)> = None;
        let advanced = seq_diff(ack, self.recovery.remote_acked) > 0;
        while seq_lt(self.recovery.remote_acked, ack) {
            let s = self.recovery.remote_acked;
            self.recovery.leave_network(s);
            let Some(p) = self.recovery.inflight.pop_front() else {
                break;
            };
            self.recovery.remote_acked = self.recovery.remote_acked.wrapping_add(1);
            if p.sacked {
                self.recovery.sacked_count = self.recovery.sacked_count.saturating_sub(1);
            } else {
                newly += 1;
                self.on_packet_delivered(now, &p, s, &mut latest);
            }
            let n = usize::from(p.len).min(self.send.send_buf.len());
            self.send.send_buf.drain(..n);
            self.send.buf_base += n as u64;
            if p.end {
                self.send.end_acked = true;
            }
        }
        if advanced {
            self.writable_pending = true;
            self.recovery
                .sacked
                .remove_below(self.recovery.remote_acked);
        }
        for b in pkt.sacks() {
            if !self.sack_valid(b) {
                self.stats.dropped_sacks += 1;
                continue;
            }
            // Only the packets this block newly covers cost anything.
            let mut from = b.start;
            while let Some((gap_start, gap_end)) = self.recovery.sacked.first_gap(from, b.end) {
                let mut s = gap_start;
                while s != gap_end {
                    let i = s.wrapping_sub(self.recovery.remote_acked) as usize;
                    if let Some(p) = self.recovery.inflight.get_mut(i)
                        && !p.sacked
                    {
                        p.sacked = true;
                        let p = p.clone();
                        self.recovery.leave_network(s);
                        self.recovery.sacked_count += 1;
                        newly += 1;
                        self.on_packet_delivered(now, &p, s, &mut latest);
                    }
                    s = s.wrapping_add(1);
                }
                from = gap_end;
            }
            self.recovery.sacked.insert(b.start, b.end);
        }
        if let Some(sent_at) = self.recovery.rtt_candidate.take() {
            let sample = now.saturating_duration_since(sent_at);
            self.recovery.rtt.on_sample(sample);
            self.recovery.cc.on_rtt_sample(sample);
        }
        if advanced && !seq_lt(self.recovery.remote_acked, self.recovery.round_end) {
            self.recovery.round_end = self.send.seq;
            self.recovery.cc.on_round_start();
        }
        if let Some(target) = self.remote_change_seq
            && !seq_lt(self.recovery.remote_acked, target)
        {
            self.remote_change_done();
        }
        if let Some((t, o, s)) = latest
            && self
                .recovery
                .rack_xmit
                .is_none_or(|x| (t, o) > (x, self.recovery.rack_order))
        {
            self.recovery.rack_order = o;
            // RACK.rtt belongs to the packet RACK.xmit_ts comes from (RFC 8985 6.2 step 2).
            self.recovery.rack_xmit = Some(t);
            self.recovery.rack_seq = s;
            self.recovery.rack_rtt = now.saturating_duration_since(t);
        }
        if self.recovery.ca != CaState::Open
            && seq_lt(self.recovery.high_seq, self.recovery.remote_acked)
        {
            self.recovery.ca = CaState::Open;
        }
        if newly > 0 {
            self.recovery.tlp_left = MAX_TLPS;
            if self.recovery.ca != CaState::Recovery {
                let app_limited = self.recovery.in_flight + newly < self.recovery.cc.window() / 2;
                self.recovery
                    .cc
                    .on_ack(now, newly, self.recovery.rtt.srtt(), app_limited);
            }
            self.detect_loss(now);
            if self.recovery.inflight.is_empty() {
                self.recovery.rto_at = None;
                self.recovery.tlp_at = None;
                self.recovery.rack_xmit = None;
            } else {
                self.recovery.rto_at = Some(now + self.recovery.rtt.rto());
                self.arm_tlp(now);
            }
        } else if data_inflight && advanced {
            self.recovery.rto_at = Some(now + self.recovery.rtt.rto());
        }
        if self.recovery.inflight.is_empty()
            && self.send.peer_rwnd == 0
            && self.has_unsent()
            && self.send.zwp_at.is_none()
        {
            self.send.zwp_at = Some(now + self.recovery.rtt.rto());
        }
    }

    pub(super) fn sack_valid(&self, b: SackBlock) -> bool {
        // remote_acked <= start < end <= seq
        !seq_lt(b.start, self.recovery.remote_acked)
            && seq_lt(b.start, b.end)
            && !seq_lt(self.send.seq, b.end)
    }

    pub(super) fn on_packet_delivered(
        &mut self,
        now: Instant,
        p: &Sent,
        seq: u32,
        latest: &mut Option<(Instant, u64, u32)>,
    ) {
        if p.transmits == 1 && !p.lost {
            // One RTT sample per ACK, from the newest never-retransmitted packet it covers:
            // older ones may have waited on lost ACKs and would inflate the estimate. A packet
            // already declared lost (e.g. by an RTO across a blackhole) gives no sample.
            if self.recovery.rtt_candidate.is_none_or(|t| p.sent_at > t) {
                self.recovery.rtt_candidate = Some(p.sent_at);
            }
        } else if now.saturating_duration_since(p.sent_at) < self.recovery.rtt.min_rtt() {
            // acked faster than possible for the retransmission: the original arrived
            self.stats.spurious += 1;
            self.recovery.reorder_seen = true;
            self.recovery.reo_mult = (self.recovery.reo_mult + 1).min(16);
        }
        if p.probe {
            self.mtu.on_probe_acked();
        }
        self.mtu.on_ack();
        if seq_lt(seq, self.recovery.rack_seq)
            && p.transmits == 1
            && self.recovery.rack_xmit.is_some()
        {
            self.recovery.reorder_seen = true;
        }
        if latest.is_none_or(|(t, o, _)| (p.sent_at, p.order) > (t, o)) {
            *latest = Some((p.sent_at, p.order, seq));
        }
    }

    pub(super) fn reo_wnd(&self) -> Duration {
        if !self.recovery.reorder_seen
            && (self.recovery.ca != CaState::Open || self.recovery.sacked_count >= 3)
        {
            return Duration::ZERO;
        }
        let base = (self.recovery.rtt.min_rtt() / 4).max(Duration::from_micros(500));
        (base * self.recovery.reo_mult).min(self.recovery.rtt.srtt().max(Duration::from_millis(1)))
    }

    /// RACK (RFC 8985 6.2): a packet sent before the most recently delivered one and older
    /// than `rack_rtt + reo_wnd` is lost; only packets below the RACK packet's seq qualify
    /// while it is unacknowledged, which keeps a quickly acknowledged (spurious)
    /// retransmission from condemning everything sent before it. Walks the packets in the
    /// network from the oldest transmission and stops at the first one sent after the RACK
    /// packet or still inside the window: its deadline is the reordering timer (libudx
    /// `src/udx.c rack_detect_loss`). Senders pass a `now` that never goes backwards, so later
    /// transmissions have later deadlines.
    pub(super) fn detect_loss(&mut self, now: Instant) {
        let Some(rack_xmit) = self.recovery.rack_xmit else {
            return;
        };
        let rack_order = self.recovery.rack_order;
        let reo = self.reo_wnd();
        let horizon = self.recovery.rack_rtt + reo;
        let limit = self
            .recovery
            .rack_seq
            .wrapping_sub(self.recovery.remote_acked) as usize;
        let mut next_timer: Option<Instant> = None;
        let mut lost_any = false;
        // indices in `inflight` of the packets newly queued for retransmission
        let mut queue: Vec<usize> = Vec::new();
        let mut cursor = self.recovery.oldest_sent;
        while let Some(seq) = cursor {
            let i = seq.wrapping_sub(self.recovery.remote_acked) as usize;
            let Some(p) = self.recovery.inflight.get_mut(i) else {
                break;
            };
            // sent at or after the RACK packet (transmission order breaks ties within a burst)
            if (p.sent_at, p.order) >= (rack_xmit, rack_order) {
                break;
            }
            cursor = p.next_sent;
            if i >= limit {
                continue;
            }
            let deadline = p.sent_at + horizon;
            if now < deadline {
                next_timer = Some(deadline);
                break;
            }
            p.lost = true;
            if std::mem::take(&mut p.probe) {
                self.mtu.on_probe_lost();
            }
            if !p.queued {
                p.queued = true;
                queue.push(i);
            }
            self.recovery.leave_network(seq);
            lost_any = true;
        }
        // retransmit in sequence order
        queue.sort_unstable();
        let base = self.recovery.remote_acked;
        self.recovery
            .retransmit
            .extend(queue.into_iter().map(|i| base.wrapping_add(i as u32)));
        self.recovery.reorder_at = next_timer;
        if lost_any && self.recovery.ca == CaState::Open {
            self.recovery.ca = CaState::Recovery;
            self.recovery.high_seq = self.send.seq.wrapping_sub(1);
            let min = self.recovery.rtt.min_rtt();
            let queue_empty = !min.is_zero()
                && self.recovery.rtt.latest() <= min + min / 4 + Duration::from_millis(1);
            self.recovery.cc.on_loss(queue_empty);
            self.stats.loss_events += 1;
        }
    }

    pub(super) fn arm_tlp(&mut self, now: Instant) {
        if !self.recovery.rtt.has_sample() || self.recovery.tlp_left == 0 {
            self.recovery.tlp_at = None;
            return;
        }
        let mut pto = self.recovery.rtt.srtt() * 2;
        if self.recovery.in_flight == 1 {
            pto += Duration::from_millis(2);
        }
        let pto = pto.max(Duration::from_millis(2));
        let at = now + pto;
        self.recovery.tlp_at = Some(match self.recovery.rto_at {
            Some(r) => at.min(r),
            None => at,
        });
    }

    pub(super) fn on_rto(&mut self, now: Instant) {
        self.stats.rto_expiries += 1;
        let max = self.cfg.max_rto_timeouts;
        if self.recovery.sacked_count >= self.recovery.inflight.len() {
            // Everything SACKed yet never cumulatively acknowledged: the SACKs were wrong (a
            // reneging or spoofing peer). Forget them, as TCP does on RTO (RFC 2018 8).
            for p in self.recovery.inflight.iter_mut() {
                p.sacked = false;
            }
            self.recovery.sacked_count = 0;
            self.recovery.sacked.clear();
        }
        // The oldest packet not SACKed: right after the SACKed run at the front, if any.
        let base = self.recovery.remote_acked;
        let front_idx = match self.recovery.sacked.first() {
            Some((start, end)) if start == base => end.wrapping_sub(base) as usize,
            _ => 0,
        };
        let Some(front) = self.recovery.inflight.get_mut(front_idx) else {
            self.recovery.rto_at = None;
            return;
        };
        if front.rto_expiries >= max {
            self.close(now, Err(StreamError::TimedOut));
            return;
        }
        front.rto_expiries = front.rto_expiries.saturating_add(1);
        let repeated = front.rto_expiries >= 2;
        let front_seq = Some(base.wrapping_add(front_idx as u32));
        // Everything not SACKed is presumed lost (RFC 6298 5.4-5.6 / Linux tcp_enter_loss).
        for (i, p) in self.recovery.inflight.iter_mut().enumerate() {
            if p.sacked {
                continue;
            }
            p.lost = true;
            if std::mem::take(&mut p.probe) {
                self.mtu.on_probe_lost();
            }
            if !p.queued {
                p.queued = true;
                self.recovery
                    .retransmit
                    .push_back(base.wrapping_add(i as u32));
            }
        }
        self.recovery.all_left_network();
        if let Some(f) = front_seq {
            // The oldest packet goes first; after a repeated RTO it goes out twice, so one
            // lost copy or ACK does not cost another (doubling) timeout.
            self.recovery.retransmit.push_front(f);
            self.recovery.rto_dup = repeated.then_some(f);
        }
        if self.recovery.ca != CaState::Loss {
            self.recovery.cc.on_rto();
        }
        self.recovery.ca = CaState::Loss;
        self.recovery.high_seq = self.send.seq.wrapping_sub(1);
        self.recovery.tlp_at = None;
        self.recovery.tlp_left = 0;
        self.recovery.rack_xmit = None;
        self.recovery.rto_at = Some(now + self.recovery.rtt.rto() * 2);
    }

    pub(super) fn on_tlp(&mut self, now: Instant) {
        if self.recovery.tlp_left == 0 || self.recovery.inflight.is_empty() {
            return;
        }
        self.recovery.tlp_left -= 1;
        self.arm_tlp(now);
        self.stats.tlp += 1;
        // New data if any is allowed, else re-send the last packet.
        if self.has_unsent() && self.send.peer_rwnd > 0 {
            self.send.force_one = true;
            return;
        }
        // The newest packet not SACKed: right before the SACKed run at the end, if any.
        let base = self.recovery.remote_acked;
        let end = base.wrapping_add(self.recovery.inflight.len() as u32);
        let last = match self.recovery.sacked.last() {
            Some((start, e)) if e == end => start,
            _ => end,
        };
        if let Some(i) = (last.wrapping_sub(base) as usize).checked_sub(1)
            && let Some(p) = self.recovery.inflight.get_mut(i)
            && !p.queued
        {
            p.queued = true;
            self.recovery
                .retransmit
                .push_front(base.wrapping_add(i as u32));
            self.send.force_one = true;
        }
    }

    pub(super) fn send_retransmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if self.recovery.dup_at.is_some_and(|t| now >= t)
            && let Some(seq) = self.recovery.dup_pending.take()
        {
            self.recovery.dup_at = None;
            // Second copy of the oldest packet after a repeated RTO.
            let idx = seq.wrapping_sub(self.recovery.remote_acked) as usize;
            if packet::seq_diff(seq, self.recovery.remote_acked) >= 0
                && let Some(p) = self.recovery.inflight.get(idx)
                && !p.sacked
            {
                let (offset, len, end) = (p.offset, usize::from(p.len), p.end);
                if let Some(n) = self.encode_data(out, seq, offset, len, end, 0) {
                    self.stats.retransmits += 1;
                    return Some(n);
                }
            }
        }
        while let Some(&seq) = self.recovery.retransmit.front() {
            let idx = seq.wrapping_sub(self.recovery.remote_acked) as usize;
            let valid = self
                .recovery
                .inflight
                .get(idx)
                .is_some_and(|p| p.queued && !p.sacked)
                && packet::seq_diff(seq, self.recovery.remote_acked) >= 0;
            if !valid {
                self.recovery.retransmit.pop_front();
                continue;
            }
            if self.recovery.in_flight >= self.recovery.cc.window() && !self.send.force_one {
                return None;
            }
            let (offset, len, end) = {
                let p = self.recovery.inflight.get(idx)?;
                (p.offset, usize::from(p.len), p.end)
            };
            if self.paced(now, len + HEADER_SIZE) {
                return None;
            }
            self.recovery.retransmit.pop_front();
            let n = self.encode_data(out, seq, offset, len, end, 0)?;
            let p = self.recovery.inflight.get_mut(idx)?;
            p.queued = false;
            p.lost = false;
            p.transmits = p.transmits.saturating_add(1);
            p.sent_at = now;
            self.recovery.xmit_order += 1;
            p.order = self.recovery.xmit_order;
            // a tail-loss probe may resend a packet still in the network: it moves to the end
            self.recovery.leave_network(seq);
            self.recovery.enter_network(seq);
            self.after_send(now, n);
            self.stats.retransmits += 1;
            if self.recovery.rto_dup == Some(seq) {
                // The second copy leaves half an RTT (at least 15 ms) later, so one short
                // burst of loss does not take both.
                self.recovery.rto_dup = None;
                self.recovery.dup_pending = Some(seq);
                self.recovery.dup_at =
                    Some(now + (self.recovery.rtt.srtt() / 2).max(Duration::from_millis(15)));
            }
            return Some(n);
        }
        None
    }
}
