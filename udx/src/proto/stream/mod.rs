//! The sans-IO UDX stream.
//!
//! I/O contract: a [`Stream`] never touches a socket or a clock. Feed it datagrams addressed to
//! its local id with [`Stream::handle_datagram`] and expired timers with
//! [`Stream::handle_timeout`]; pull datagrams to send with [`Stream::poll_transmit`] (they go to
//! the stream's remote address, which the driver owns), the next timer with
//! [`Stream::poll_timeout`] and events with [`Stream::poll_event`]. Application data goes in
//! with [`Stream::write`] / [`Stream::end`] and comes out with [`Stream::read`]. Every method
//! takes `now` where time matters.
//!
//! Bounds (each mirrors a libudx constant):
//! - send buffer (unsent + unacknowledged bytes) <= [`Config::send_buffer`] (default 4 MiB +
//!   256 KiB: `UDX_DEFAULT_RWND_MAX` plus `UDX_HIGH_WATERMARK`);
//! - in-flight table <= congestion window <= [`MAX_CWND`](super::congestion::MAX_CWND) packets;
//! - in-order receive buffer <= [`Config::recv_window`] (`UDX_DEFAULT_RWND_MAX`, 4 MiB) before
//!   a packet is appended, out-of-order buffer <= `recv_window` as well (a libudx sender
//!   keeps SACKed packets outside its window, so they can exceed it), and draining it may
//!   add one `recv_window`: at most 2 x `recv_window` buffered; out-of-order packets only
//!   within [`MAX_OOO_DISTANCE`] of `ack`;
//! - SACK blocks per ACK <= [`MAX_SACKS`] (`UDX_MAX_SACKS` 50);
//! - queued outgoing messages <= [`MAX_QUEUED_MESSAGES`], queued events <= [`MAX_EVENTS`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

mod transmit;

pub use transmit::MAX_DATAGRAM;

use super::congestion::{Cubic, Pacer};
use super::error::{StreamError, WriteError};
use super::mtu::MtuProber;
use super::packet::{Packet, SackBlock, flags, seq_diff, seq_lt};
use super::rtt::{MAX_RTO, MIN_RTO, RttEstimator};

/// Out-of-order packets are buffered only this far past `ack` (libudx scans 65,536 ahead for
/// SACKs; we bound the buffer much tighter since the window bounds what a sane peer sends).
pub const MAX_OOO_DISTANCE: u32 = 32_768;
/// Outgoing unreliable messages queued at most (beyond: [`WriteError::QueueFull`]).
pub const MAX_QUEUED_MESSAGES: usize = 256;
/// Events queued at most; incoming messages beyond it are dropped (and counted).
pub const MAX_EVENTS: usize = 1024;
/// `UDX_MAX_RTO_TIMEOUTS`: a packet that already suffered this many RTO expiries closes the
/// stream with [`StreamError::TimedOut`] on the next.
pub const MAX_RTO_TIMEOUTS: u8 = 6;
/// Tail-loss probes sent before the RTO takes over (RFC 8985 sends one; a second one halves
/// the chance that a lossy path falls back to a 1 s timeout).
pub const MAX_TLPS: u8 = 2;
/// `UDX_DEFAULT_RWND_MAX`: 4 MiB.
pub const DEFAULT_RWND_MAX: u32 = 4 * 1024 * 1024;
/// `UDX_HIGH_WATERMARK`: 256 KiB.
pub const HIGH_WATERMARK: usize = 256 * 1024;

/// Per-stream configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Receive window we advertise when our buffer is empty (default 4 MiB).
    pub recv_window: u32,
    /// Most unsent + unacknowledged bytes held (default 4 MiB + 256 KiB).
    pub send_buffer: usize,
    /// Floor of the RTO (default 1 s).
    pub min_rto: Duration,
    /// Cap of the RTO (default 30 s).
    pub max_rto: Duration,
    /// RTO expiries of one packet before [`StreamError::TimedOut`] (default 6).
    pub max_rto_timeouts: u8,
    /// Idle keepalive HEARTBEAT interval (default none, as hyperdht).
    pub keepalive: Option<Duration>,
    /// Base MTU (default 1200, `UDX_MTU_BASE`).
    pub base_mtu: usize,
    /// Largest MTU probed (default 1500, `UDX_MTU_MAX`); <= `base_mtu` disables probing.
    pub max_mtu: usize,
    /// IPv6 path (68 bytes of IP+UDP+UDX overhead instead of 48).
    pub ipv6: bool,
    /// How long a closed stream keeps acknowledging retransmitted DATA/END before it may be
    /// dropped (covers a lost final ACK); at least 13 x RTO (default 15 s).
    pub linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recv_window: DEFAULT_RWND_MAX,
            send_buffer: DEFAULT_RWND_MAX as usize + HIGH_WATERMARK,
            min_rto: MIN_RTO,
            max_rto: MAX_RTO,
            max_rto_timeouts: MAX_RTO_TIMEOUTS,
            keepalive: None,
            base_mtu: super::mtu::BASE_MTU,
            max_mtu: super::mtu::MAX_MTU,
            ipv6: false,
            linger: Duration::from_secs(15),
        }
    }
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// New in-order data or EOF can be read.
    Readable,
    /// Send buffer space became free.
    Writable,
    /// An unreliable MESSAGE arrived.
    Message(Vec<u8>),
    /// Everything sent before [`Stream::change_remote`] was acknowledged.
    RemoteChanged,
    /// The stream is finished: `Ok` when both directions ended cleanly and our END was
    /// acknowledged, otherwise the cause. Emitted once.
    Closed(Result<(), StreamError>),
}

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Data/END packets sent for the first time.
    pub packets_sent: u64,
    /// Retransmitted packets.
    pub retransmits: u64,
    /// Retransmissions later found spurious.
    pub spurious: u64,
    /// RTO expiries.
    pub rto_expiries: u64,
    /// Tail-loss probes sent.
    pub tlp: u64,
    /// Loss events (entries into recovery).
    pub loss_events: u64,
    /// ACK/SACK packets sent.
    pub acks_sent: u64,
    /// Incoming DATA dropped because the receive buffer was full or too far ahead.
    pub recv_dropped: u64,
    /// Incoming messages dropped because the event queue was full.
    pub messages_dropped: u64,
    /// Invalid SACK blocks ignored.
    pub dropped_sacks: u64,
    /// Duplicate DATA/END received.
    pub duplicates: u64,
}

#[derive(Debug, Clone)]
struct Sent {
    offset: u64,
    len: u16,
    end: bool,
    sent_at: Instant,
    transmits: u8,
    rto_expiries: u8,
    sacked: bool,
    lost: bool,
    /// Counted in `in_flight`.
    counted: bool,
    /// Queued in `retransmit`.
    queued: bool,
    /// MTU probe padding used when first sent.
    probe: bool,
    /// Transmission order, to break ties between packets sent at the same instant.
    order: u64,
}

#[derive(Debug)]
struct Ooo {
    end: bool,
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaState {
    Open,
    Recovery,
    Loss,
}

/// One UDX stream's state machine. See the module docs for the contract.
#[derive(Debug)]
pub struct Stream {
    cfg: Config,
    local_id: u32,
    remote_id: Option<u32>,
    pending_remote: Option<u32>,
    // ---- send side
    seq: u32,
    remote_acked: u32,
    send_buf: VecDeque<u8>,
    buf_base: u64,
    unsent: u64,
    end_requested: bool,
    end_seq: Option<u32>,
    end_acked: bool,
    inflight: VecDeque<Sent>,
    in_flight: usize,
    sacked_count: usize,
    retransmit: VecDeque<u32>,
    peer_rwnd: u32,
    wl1: u32,
    wl2: u32,
    rtt: RttEstimator,
    cc: Cubic,
    pacer: Pacer,
    ca: CaState,
    high_seq: u32,
    rto_at: Option<Instant>,
    tlp_at: Option<Instant>,
    tlp_left: u8,
    rtt_candidate: Option<Instant>,
    dup_pending: Option<u32>,
    dup_at: Option<Instant>,
    rto_dup: Option<u32>,
    reorder_at: Option<Instant>,
    zwp_at: Option<Instant>,
    zwp_count: u32,
    keepalive_at: Option<Instant>,
    probe_needed: bool,
    force_one: bool,
    pace_until: Option<Instant>,
    rack_xmit: Option<Instant>,
    rack_seq: u32,
    rack_order: u64,
    /// End of the current HyStart++ round (the `seq` when it began).
    round_end: u32,
    xmit_order: u64,
    rack_rtt: Duration,
    reorder_seen: bool,
    reo_mult: u32,
    mtu: MtuProber,
    messages: VecDeque<Vec<u8>>,
    destroy_pending: bool,
    remote_change_seq: Option<u32>,
    // ---- receive side
    ack: u32,
    recv_buf: VecDeque<u8>,
    ooo: HashMap<u32, Ooo>,
    ooo_bytes: usize,
    ooo_max: u32,
    remote_end_seq: Option<u32>,
    eof: bool,
    ack_needed: bool,
    last_adv_rwnd: u32,
    // ---- lifecycle
    closed: Option<Result<(), StreamError>>,
    closed_at: Option<Instant>,
    linger_until: Option<Instant>,
    events: VecDeque<Event>,
    readable_pending: bool,
    writable_pending: bool,
    stats: Stats,
}

fn mss_for(mtu: usize, ipv6: bool) -> usize {
    mtu.saturating_sub(if ipv6 { 68 } else { 48 }).max(1)
}

impl Stream {
    /// A new, unconnected stream with local id `local_id`.
    pub fn new(local_id: u32, cfg: Config) -> Self {
        let rtt = RttEstimator::new(cfg.min_rto, cfg.max_rto);
        let mtu = MtuProber::new(cfg.base_mtu, cfg.max_mtu);
        Stream {
            local_id,
            remote_id: None,
            pending_remote: None,
            seq: 0,
            remote_acked: 0,
            send_buf: VecDeque::new(),
            buf_base: 0,
            unsent: 0,
            end_requested: false,
            end_seq: None,
            end_acked: false,
            inflight: VecDeque::new(),
            in_flight: 0,
            sacked_count: 0,
            retransmit: VecDeque::new(),
            peer_rwnd: DEFAULT_RWND_MAX,
            wl1: 0,
            wl2: 0,
            rtt,
            cc: Cubic::new(),
            pacer: Pacer::default(),
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
            zwp_at: None,
            zwp_count: 0,
            keepalive_at: None,
            probe_needed: false,
            force_one: false,
            pace_until: None,
            rack_xmit: None,
            rack_seq: 0,
            rack_order: 0,
            round_end: 0,
            xmit_order: 0,
            rack_rtt: Duration::ZERO,
            reorder_seen: false,
            reo_mult: 1,
            mtu,
            messages: VecDeque::new(),
            destroy_pending: false,
            remote_change_seq: None,
            ack: 0,
            recv_buf: VecDeque::new(),
            ooo: HashMap::new(),
            ooo_bytes: 0,
            ooo_max: 0,
            remote_end_seq: None,
            eof: false,
            ack_needed: false,
            last_adv_rwnd: cfg.recv_window,
            closed: None,
            closed_at: None,
            linger_until: None,
            events: VecDeque::new(),
            readable_pending: false,
            writable_pending: false,
            stats: Stats::default(),
            cfg,
        }
    }

    /// Our id (the one the peer addresses packets to).
    pub fn local_id(&self) -> u32 {
        self.local_id
    }

    /// The peer's id once connected.
    pub fn remote_id(&self) -> Option<u32> {
        self.remote_id
    }

    /// Connects to the peer's id. Anything received before is acknowledged now.
    pub fn connect(&mut self, remote_id: u32) {
        self.remote_id = Some(remote_id);
    }

    /// Whether the path is IPv6 (68 bytes of IP+UDP+UDX overhead per packet instead of 48);
    /// the driver sets it from the peer's address.
    pub fn set_ipv6(&mut self, ipv6: bool) {
        self.cfg.ipv6 = ipv6;
    }

    /// Remembers the peer's id for [`Stream::accept_pending_remote`]: the driver connects the
    /// stream when the first packet passes its firewall.
    pub fn set_pending_remote(&mut self, remote_id: u32) {
        self.pending_remote = Some(remote_id);
    }

    /// Connects to the id given to [`Stream::set_pending_remote`]; false if there is none.
    pub fn accept_pending_remote(&mut self) -> bool {
        match self.pending_remote.take() {
            Some(id) => {
                self.connect(id);
                true
            }
            None => false,
        }
    }

    /// Starts `initial_seq`/`initial_ack` other than 0 (libudx `setSeq`/`setAck`); only before
    /// anything was sent or received.
    pub fn set_initial_seq_ack(&mut self, seq: u32, ack: u32) {
        if self.inflight.is_empty() && self.unsent == 0 {
            self.seq = seq;
            self.remote_acked = seq;
            self.high_seq = seq;
            self.rack_seq = seq;
            self.wl1 = 0;
        }
        if self.ooo.is_empty() && self.recv_buf.is_empty() {
            self.ack = ack;
        }
    }

    /// Moves the stream to a new remote id (the driver moves the address). Completes with
    /// [`Event::RemoteChanged`] once everything sent so far is acknowledged; the MTU search
    /// restarts.
    pub fn change_remote(&mut self, remote_id: u32) {
        self.remote_id = Some(remote_id);
        self.remote_change_seq = Some(self.seq);
        self.mtu = MtuProber::new(self.cfg.base_mtu, self.cfg.max_mtu);
        if self.remote_acked == self.seq {
            self.remote_change_seq = None;
            self.push_event(Event::RemoteChanged);
        }
    }

    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        format!(
            "seq={} remote_acked={} ack={} inflight={} in_flight={} cwnd={} rwnd={} ca={:?} rtx_q={} rto_at={:?} tlp_at={:?} reo_at={:?} pace={:?} srtt={:?} rto={:?} sacked={} ooo={} front={:?}",
            self.seq,
            self.remote_acked,
            self.ack,
            self.inflight.len(),
            self.in_flight,
            self.cc.window(),
            self.peer_rwnd,
            self.ca,
            self.retransmit.len(),
            self.rto_at,
            self.tlp_at,
            self.reorder_at,
            self.pace_until,
            self.rtt.srtt(),
            self.rtt.rto(),
            self.sacked_count,
            self.ooo.len(),
            self.inflight.front(),
        )
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Current congestion window in packets.
    pub fn cwnd(&self) -> usize {
        self.cc.window()
    }

    /// Smoothed RTT.
    pub fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// Current path MTU (UDP payload + IP/UDP headers) in use.
    pub fn mtu(&self) -> usize {
        self.mtu.current()
    }

    /// Largest payload of one DATA packet now.
    pub fn max_payload(&self) -> usize {
        mss_for(self.mtu.current(), self.cfg.ipv6)
    }

    /// The terminal result, once the stream is finished.
    pub fn closed(&self) -> Option<Result<(), StreamError>> {
        self.closed
    }

    /// Whether the stream is finished and its linger period is over: the driver may forget it.
    pub fn is_drained(&self, now: Instant) -> bool {
        match (self.closed, self.linger_until) {
            (Some(Ok(())), Some(at)) => now >= at,
            (Some(_), _) => true,
            _ => false,
        }
    }

    /// Bytes the application may still write before the send buffer is full.
    pub fn write_capacity(&self) -> usize {
        if self.closed.is_some() || self.end_requested {
            return 0;
        }
        self.cfg.send_buffer.saturating_sub(self.send_buf.len())
    }

    /// Bytes written but not yet acknowledged (including unsent).
    pub fn unacked_bytes(&self) -> usize {
        self.send_buf.len()
    }

    /// Queues application data; returns how many bytes were accepted (bounded by the send
    /// buffer; 0 = full, wait for [`Event::Writable`]).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        if self.end_requested {
            return Err(WriteError::Ended);
        }
        let n = data.len().min(self.write_capacity());
        self.send_buf.extend(data.get(..n).unwrap_or(&[]));
        if n > 0 && self.in_flight == 0 && self.peer_rwnd == 0 && self.zwp_at.is_none() {
            self.probe_needed = true;
        }
        Ok(n)
    }

    /// Ends our direction after all written data (half-close with END).
    pub fn end(&mut self) -> Result<(), WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        self.end_requested = true;
        Ok(())
    }

    /// Destroys the stream: sends DESTROY once (if connected) and closes with
    /// [`StreamError::LocallyClosed`].
    pub fn destroy(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.remote_id.is_some() {
            self.destroy_pending = true;
        }
        self.close(now, Err(StreamError::LocallyClosed));
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
        if self.messages.len() >= MAX_QUEUED_MESSAGES {
            return Err(WriteError::QueueFull);
        }
        self.messages.push_back(data.to_vec());
        Ok(())
    }

    /// Copies in-order received bytes into `out`. `Ok(0)` with a non-empty `out` means EOF
    /// (the peer's END was reached) or nothing available yet: check [`Stream::is_eof`].
    /// After a failure, buffered bytes are still returned first, then the error.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, StreamError> {
        if self.recv_buf.is_empty()
            && let Some(Err(e)) = self.closed
        {
            return Err(e);
        }
        let n = out.len().min(self.recv_buf.len());
        let (a, b) = self.recv_buf.as_slices();
        let na = n.min(a.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..na), a.get(..na)) {
            dst.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (out.get_mut(na..n), b.get(..n - na)) {
            dst.copy_from_slice(src);
        }
        self.recv_buf.drain(..n);
        // Window update: tell a sender that saw a small window that it opened up.
        let now_rwnd = self.adv_rwnd();
        let half = self.cfg.recv_window / 2;
        if self.last_adv_rwnd < half && now_rwnd >= half && self.closed.is_none() {
            self.ack_needed = true;
        }
        Ok(n)
    }

    /// Whether our END was acknowledged (everything we wrote arrived).
    pub fn is_end_acked(&self) -> bool {
        self.end_acked
    }

    /// Whether `end()` was called.
    pub fn is_ending(&self) -> bool {
        self.end_requested
    }

    /// Whether a datagram is waiting to go out right now (an ACK, a message, DESTROY, ...);
    /// drivers use it to skip idle streams.
    pub fn wants_transmit(&self) -> bool {
        self.remote_id.is_some()
            && (self.ack_needed
                || self.destroy_pending
                || !self.messages.is_empty()
                || !self.retransmit.is_empty()
                || self.probe_needed
                || self.dup_pending.is_some()
                || (self.closed.is_none() && self.has_unsent()))
    }

    /// Bytes ready to read.
    pub fn readable_bytes(&self) -> usize {
        self.recv_buf.len()
    }

    /// Whether the peer's END was reached and all data before it was read.
    pub fn is_eof(&self) -> bool {
        self.eof && self.recv_buf.is_empty()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if self.readable_pending {
            self.readable_pending = false;
            return Some(Event::Readable);
        }
        if self.writable_pending {
            self.writable_pending = false;
            return Some(Event::Writable);
        }
        None
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() < MAX_EVENTS || matches!(e, Event::Closed(_)) {
            self.events.push_back(e);
        } else {
            self.stats.messages_dropped += 1;
        }
    }

    fn close(&mut self, now: Instant, result: Result<(), StreamError>) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(result);
        self.closed_at = Some(now);
        // Keep acknowledging for as long as the peer may retransmit its END: its 6 RTO
        // retries span about 13 x RTO.
        self.linger_until = Some(now + self.cfg.linger.max(self.rtt.rto() * 13));
        self.rto_at = None;
        self.tlp_at = None;
        self.reorder_at = None;
        self.zwp_at = None;
        self.keepalive_at = None;
        self.retransmit.clear();
        self.messages.clear();
        if result.is_err() {
            self.ooo.clear();
            self.ooo_bytes = 0;
            self.inflight.clear();
            self.in_flight = 0;
        }
        self.readable_pending = true;
        self.writable_pending = true;
        self.push_event(Event::Closed(result));
    }

    fn adv_rwnd(&self) -> u32 {
        let used = u32::try_from(self.recv_buf.len()).unwrap_or(u32::MAX);
        self.cfg.recv_window.saturating_sub(used)
    }

    fn check_all_ended(&mut self, now: Instant) {
        if self.end_acked && self.eof && self.closed.is_none() {
            self.close(now, Ok(()));
        }
    }

    // ------------------------------------------------------------------ receive

    /// Processes one datagram addressed to this stream (the driver checked the stream id).
    /// Malformed input is ignored.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let Ok(pkt) = Packet::decode(datagram) else {
            return;
        };
        if pkt.header.stream_id != self.local_id {
            return;
        }
        let h = pkt.header;
        if let Some(Err(_)) = self.closed {
            return;
        }
        if self.closed.is_some() {
            // Lingering after a clean close: keep acknowledging retransmitted DATA/END.
            if h.flags & (flags::DATA_OR_END | flags::HEARTBEAT) != 0 {
                self.ack_needed = true;
            }
            return;
        }
        if h.flags & flags::HEARTBEAT != 0 {
            self.ack_needed = true;
            return;
        }
        let data_inflight = self.remote_acked != self.seq;
        if !seq_lt(h.seq, self.ack) {
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
            self.ack_needed = true;
        }
        self.on_ack(now, &pkt, data_inflight);
        self.check_all_ended(now);
    }

    fn on_data(&mut self, seq: u32, end: bool, payload: &[u8]) {
        let dist = seq.wrapping_sub(self.ack);
        let window = self.cfg.recv_window as usize;
        if self.remote_end_seq.is_some_and(|e| seq_lt(e, seq)) {
            return; // past the peer's END: bogus
        }
        if dist == 0 {
            // The next in-order packet is refused only when the application is not reading;
            // never because of the out-of-order buffer, which it drains (refusing it there
            // deadlocks a sender whose SACKed packets fill our buffer).
            if self.recv_buf.len() + payload.len() > window {
                self.stats.recv_dropped += 1;
                return;
            }
            self.deliver(seq, end, payload);
            // drain the out-of-order buffer
            while let Some(p) = self.ooo.remove(&self.ack) {
                self.ooo_bytes -= p.data.len();
                let s = self.ack;
                self.deliver(s, p.end, &p.data);
            }
            if self.ooo.is_empty() {
                self.ooo_max = 0;
            }
        } else if dist < MAX_OOO_DISTANCE {
            if self.ooo.contains_key(&seq) {
                self.stats.duplicates += 1;
                return;
            }
            if self.ooo_bytes + payload.len() > window {
                self.stats.recv_dropped += 1;
                return;
            }
            self.ooo_bytes += payload.len();
            self.ooo_max = self.ooo_max.max(dist);
            self.ooo.insert(
                seq,
                Ooo {
                    end,
                    data: payload.to_vec(),
                },
            );
        } else {
            self.stats.recv_dropped += 1;
        }
    }

    fn deliver(&mut self, seq: u32, end: bool, payload: &[u8]) {
        self.ack = seq.wrapping_add(1);
        if !payload.is_empty() && !self.eof {
            self.recv_buf.extend(payload);
            self.readable_pending = true;
        }
        if end && !self.eof {
            self.remote_end_seq = Some(seq);
            self.eof = true;
            self.readable_pending = true;
            self.ooo.clear();
            self.ooo_bytes = 0;
        }
    }

    fn on_ack(&mut self, now: Instant, pkt: &Packet<'_>, data_inflight: bool) {
        let h = pkt.header;
        let ack = h.ack;
        if seq_lt(self.seq, ack) {
            return; // acks something we never sent
        }
        if !seq_lt(ack, self.remote_acked)
            && (seq_lt(self.wl1, h.seq) || (self.wl1 == h.seq && !seq_lt(ack, self.wl2)))
        {
            if h.rwnd > 0 {
                self.zwp_at = None;
                self.zwp_count = 0;
            }
            self.peer_rwnd = h.rwnd;
            self.wl1 = h.seq;
            self.wl2 = ack;
        }
        if seq_lt(ack, self.remote_acked) {
            return; // old ack (libudx#255)
        }
        let mut newly = 0usize;
        let mut latest: Option<(Instant, u64, u32)> = None;
        let advanced = seq_diff(ack, self.remote_acked) > 0;
        while seq_lt(self.remote_acked, ack) {
            let Some(p) = self.inflight.pop_front() else {
                break;
            };
            let s = self.remote_acked;
            self.remote_acked = self.remote_acked.wrapping_add(1);
            if p.sacked {
                self.sacked_count = self.sacked_count.saturating_sub(1);
            } else {
                newly += 1;
                self.on_packet_delivered(now, &p, s, &mut latest);
            }
            if p.counted {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            let n = usize::from(p.len).min(self.send_buf.len());
            self.send_buf.drain(..n);
            self.buf_base += n as u64;
            if p.end {
                self.end_acked = true;
            }
        }
        if advanced {
            self.writable_pending = true;
        }
        for b in pkt.sacks() {
            if !self.sack_valid(b) {
                self.stats.dropped_sacks += 1;
                continue;
            }
            let from = b.start.wrapping_sub(self.remote_acked) as usize;
            let to = b.end.wrapping_sub(self.remote_acked) as usize;
            for i in from..to {
                let s = self.remote_acked.wrapping_add(i as u32);
                let Some(p) = self.inflight.get_mut(i) else {
                    break;
                };
                if p.sacked {
                    continue;
                }
                p.sacked = true;
                let p = p.clone();
                if p.counted {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if let Some(q) = self.inflight.get_mut(i) {
                        q.counted = false;
                    }
                }
                self.sacked_count += 1;
                newly += 1;
                self.on_packet_delivered(now, &p, s, &mut latest);
            }
        }
        if let Some(sent_at) = self.rtt_candidate.take() {
            let sample = now.saturating_duration_since(sent_at);
            self.rtt.on_sample(sample);
            self.cc.on_rtt_sample(sample);
        }
        if advanced && !seq_lt(self.remote_acked, self.round_end) {
            self.round_end = self.seq;
            self.cc.on_round_start();
        }
        if let Some(target) = self.remote_change_seq
            && !seq_lt(self.remote_acked, target)
        {
            self.remote_change_seq = None;
            self.push_event(Event::RemoteChanged);
        }
        if let Some((t, o, s)) = latest
            && self.rack_xmit.is_none_or(|x| (t, o) > (x, self.rack_order))
        {
            self.rack_order = o;
            // RACK.rtt belongs to the packet RACK.xmit_ts comes from (RFC 8985 6.2 step 2).
            self.rack_xmit = Some(t);
            self.rack_seq = s;
            self.rack_rtt = now.saturating_duration_since(t);
        }
        if self.ca != CaState::Open && seq_lt(self.high_seq, self.remote_acked) {
            self.ca = CaState::Open;
        }
        if newly > 0 {
            self.tlp_left = MAX_TLPS;
            if self.ca != CaState::Recovery {
                let app_limited = self.in_flight + newly < self.cc.window() / 2;
                self.cc.on_ack(now, newly, self.rtt.srtt(), app_limited);
            }
            self.detect_loss(now);
            if self.inflight.is_empty() {
                self.rto_at = None;
                self.tlp_at = None;
                self.rack_xmit = None;
            } else {
                self.rto_at = Some(now + self.rtt.rto());
                self.arm_tlp(now);
            }
        } else if data_inflight && advanced {
            self.rto_at = Some(now + self.rtt.rto());
        }
        if self.inflight.is_empty()
            && self.peer_rwnd == 0
            && self.has_unsent()
            && self.zwp_at.is_none()
        {
            self.zwp_at = Some(now + self.rtt.rto());
        }
    }

    fn sack_valid(&self, b: SackBlock) -> bool {
        // remote_acked <= start < end <= seq
        !seq_lt(b.start, self.remote_acked) && seq_lt(b.start, b.end) && !seq_lt(self.seq, b.end)
    }

    fn on_packet_delivered(
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
            if self.rtt_candidate.is_none_or(|t| p.sent_at > t) {
                self.rtt_candidate = Some(p.sent_at);
            }
        } else if now.saturating_duration_since(p.sent_at) < self.rtt.min_rtt() {
            // acked faster than possible for the retransmission: the original arrived
            self.stats.spurious += 1;
            self.reorder_seen = true;
            self.reo_mult = (self.reo_mult + 1).min(16);
        }
        if p.probe {
            self.mtu.on_probe_acked();
        }
        self.mtu.on_ack();
        if seq_lt(seq, self.rack_seq) && p.transmits == 1 && self.rack_xmit.is_some() {
            self.reorder_seen = true;
        }
        if latest.is_none_or(|(t, o, _)| (p.sent_at, p.order) > (t, o)) {
            *latest = Some((p.sent_at, p.order, seq));
        }
    }

    fn reo_wnd(&self) -> Duration {
        if !self.reorder_seen && (self.ca != CaState::Open || self.sacked_count >= 3) {
            return Duration::ZERO;
        }
        let base = (self.rtt.min_rtt() / 4).max(Duration::from_micros(500));
        (base * self.reo_mult).min(self.rtt.srtt().max(Duration::from_millis(1)))
    }

    /// RACK (RFC 8985 6.2): a packet sent before the most recently delivered one and older
    /// than `rack_rtt + reo_wnd` is lost.
    fn detect_loss(&mut self, now: Instant) {
        let Some(rack_xmit) = self.rack_xmit else {
            return;
        };
        let rack_order = self.rack_order;
        let reo = self.reo_wnd();
        let horizon = self.rack_rtt + reo;
        let mut next_timer: Option<Instant> = None;
        let mut lost_any = false;
        let limit = self.rack_seq.wrapping_sub(self.remote_acked) as usize;
        for i in 0..limit.min(self.inflight.len()) {
            let Some(p) = self.inflight.get_mut(i) else {
                break;
            };
            // sent at or after the RACK packet (transmission order breaks ties within a burst)
            if p.sacked || p.lost || (p.sent_at, p.order) >= (rack_xmit, rack_order) {
                continue;
            }
            let deadline = p.sent_at + horizon;
            if now >= deadline {
                p.lost = true;
                if std::mem::take(&mut p.probe) {
                    self.mtu.on_probe_lost();
                }
                if p.counted {
                    p.counted = false;
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                if !p.queued {
                    p.queued = true;
                    self.retransmit
                        .push_back(self.remote_acked.wrapping_add(i as u32));
                }
                lost_any = true;
            } else {
                next_timer = Some(next_timer.map_or(deadline, |t: Instant| t.min(deadline)));
            }
        }
        self.reorder_at = next_timer;
        if lost_any && self.ca == CaState::Open {
            self.ca = CaState::Recovery;
            self.high_seq = self.seq.wrapping_sub(1);
            let min = self.rtt.min_rtt();
            let queue_empty =
                !min.is_zero() && self.rtt.latest() <= min + min / 4 + Duration::from_millis(1);
            self.cc.on_loss(queue_empty);
            self.stats.loss_events += 1;
        }
    }

    fn arm_tlp(&mut self, now: Instant) {
        if !self.rtt.has_sample() || self.tlp_left == 0 {
            self.tlp_at = None;
            return;
        }
        let mut pto = self.rtt.srtt() * 2;
        if self.in_flight == 1 {
            pto += Duration::from_millis(2);
        }
        let pto = pto.max(Duration::from_millis(2));
        let at = now + pto;
        self.tlp_at = Some(match self.rto_at {
            Some(r) => at.min(r),
            None => at,
        });
    }

    // ------------------------------------------------------------------ timers

    /// The earliest instant at which [`Stream::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(Ok(())) = self.closed {
            return self.linger_until;
        }
        if self.closed.is_some() {
            return None;
        }
        [
            self.rto_at,
            self.tlp_at,
            self.reorder_at,
            self.zwp_at,
            self.keepalive_at,
            self.pace_until,
            self.dup_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            if self.linger_until.is_some_and(|t| now >= t) {
                self.linger_until = None;
            }
            return;
        }
        if self.pace_until.is_some_and(|t| now >= t) {
            self.pace_until = None;
        }
        if self.reorder_at.is_some_and(|t| now >= t) {
            self.reorder_at = None;
            self.detect_loss(now);
        }
        if self.rto_at.is_some_and(|t| now >= t) {
            self.on_rto(now);
            if self.closed.is_some() {
                return;
            }
        }
        if self.tlp_at.is_some_and(|t| now >= t) {
            self.tlp_at = None;
            self.on_tlp(now);
        }
        if self.zwp_at.is_some_and(|t| now >= t) {
            self.probe_needed = true;
            self.zwp_count += 1;
            self.zwp_at = Some(now + self.rtt.rto() * 2);
        }
        if self.keepalive_at.is_some_and(|t| now >= t) {
            self.probe_needed = true;
            self.keepalive_at = None;
        }
    }

    fn on_rto(&mut self, now: Instant) {
        self.stats.rto_expiries += 1;
        let max = self.cfg.max_rto_timeouts;
        if self.inflight.iter().all(|p| p.sacked) {
            // Everything SACKed yet never cumulatively acknowledged: the SACKs were wrong (a
            // reneging or spoofing peer). Forget them, as TCP does on RTO (RFC 2018 8).
            for p in self.inflight.iter_mut() {
                p.sacked = false;
            }
            self.sacked_count = 0;
        }
        let Some(front) = self.inflight.iter_mut().find(|p| !p.sacked) else {
            self.rto_at = None;
            return;
        };
        if front.rto_expiries >= max {
            self.close(now, Err(StreamError::TimedOut));
            return;
        }
        front.rto_expiries = front.rto_expiries.saturating_add(1);
        let repeated = front.rto_expiries >= 2;
        let front_seq = self
            .inflight
            .iter()
            .position(|p| !p.sacked)
            .map(|i| self.remote_acked.wrapping_add(i as u32));
        // Everything not SACKed is presumed lost (RFC 6298 5.4-5.6 / Linux tcp_enter_loss).
        let base = self.remote_acked;
        for (i, p) in self.inflight.iter_mut().enumerate() {
            if p.sacked {
                continue;
            }
            p.lost = true;
            p.counted = false;
            if std::mem::take(&mut p.probe) {
                self.mtu.on_probe_lost();
            }
            if !p.queued {
                p.queued = true;
                self.retransmit.push_back(base.wrapping_add(i as u32));
            }
        }
        self.in_flight = 0;
        if let Some(f) = front_seq {
            // The oldest packet goes first; after a repeated RTO it goes out twice, so one
            // lost copy or ACK does not cost another (doubling) timeout.
            self.retransmit.push_front(f);
            self.rto_dup = repeated.then_some(f);
        }
        if self.ca != CaState::Loss {
            self.cc.on_rto();
        }
        self.ca = CaState::Loss;
        self.high_seq = self.seq.wrapping_sub(1);
        self.tlp_at = None;
        self.tlp_left = 0;
        self.rack_xmit = None;
        self.rto_at = Some(now + self.rtt.rto() * 2);
    }

    fn on_tlp(&mut self, now: Instant) {
        if self.tlp_left == 0 || self.inflight.is_empty() {
            return;
        }
        self.tlp_left -= 1;
        self.arm_tlp(now);
        self.stats.tlp += 1;
        // New data if any is allowed, else re-send the last packet.
        if self.has_unsent() && self.peer_rwnd > 0 {
            self.force_one = true;
            return;
        }
        let base = self.remote_acked;
        if let Some((i, p)) = self
            .inflight
            .iter_mut()
            .enumerate()
            .rev()
            .find(|(_, p)| !p.sacked)
            && !p.queued
        {
            p.queued = true;
            self.retransmit.push_front(base.wrapping_add(i as u32));
            self.force_one = true;
        }
    }
}
