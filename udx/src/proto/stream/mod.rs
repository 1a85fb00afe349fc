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
//! - SACK blocks per ACK <= [`MAX_SACKS`](super::packet::MAX_SACKS) (`UDX_MAX_SACKS` 50);
//! - queued outgoing messages <= [`MAX_QUEUED_MESSAGES`], queued events <= [`MAX_EVENTS`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod recovery;
mod recv;
mod send;
#[cfg(test)]
mod tests;
mod transmit;

pub use transmit::MAX_DATAGRAM;

use super::error::StreamError;
use super::mtu::MtuProber;
use super::rtt::{MAX_RTO, MIN_RTO};
use recovery::Recovery;
use recv::RecvState;
use send::SendState;

/// Out-of-order packets are buffered only this far past `ack` (libudx scans 65,536 ahead for
/// SACKs; we bound the buffer much tighter since the window bounds what a sane peer sends).
pub const MAX_OOO_DISTANCE: u32 = 32_768;
/// Outgoing unreliable messages queued at most (beyond: [`WriteError::QueueFull`](super::WriteError::QueueFull)).
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

/// One UDX stream's state machine. See the module docs for the contract.
#[derive(Debug)]
pub struct Stream {
    cfg: Config,
    local_id: u32,
    remote_id: Option<u32>,
    /// Peer id from the handshake, connected once its first packet passes the driver's
    /// firewall.
    pending_remote: Option<u32>,
    /// Write queue, packetisation, flow control and probes (`send.rs`).
    send: SendState,
    /// Packets in flight, loss detection and congestion control (`recovery.rs`).
    recovery: Recovery,
    /// Receive buffers and ACK generation (`recv.rs`).
    recv: RecvState,
    /// Path MTU search (RFC 8899 style, libudx `mtu_state`).
    mtu: MtuProber,
    /// [`Event::RemoteChanged`] fires once `remote_acked` reaches it (libudx
    /// `seq_on_remote_changed`).
    remote_change_seq: Option<u32>,
    // ---- lifecycle
    /// The terminal result once the stream closed.
    closed: Option<Result<(), StreamError>>,
    /// When it closed.
    closed_at: Option<Instant>,
    /// How long a cleanly closed stream keeps acknowledging retransmitted DATA/END.
    linger_until: Option<Instant>,
    /// Events not yet polled (<= [`MAX_EVENTS`], plus the final `Closed`).
    events: VecDeque<Event>,
    /// An [`Event::Readable`] is owed.
    readable_pending: bool,
    /// An [`Event::Writable`] is owed.
    writable_pending: bool,
    /// Counters.
    stats: Stats,
}

fn mss_for(mtu: usize, ipv6: bool) -> usize {
    mtu.saturating_sub(if ipv6 { 68 } else { 48 }).max(1)
}

impl Stream {
    /// A new, unconnected stream with local id `local_id`.
    pub fn new(local_id: u32, cfg: Config) -> Self {
        let mtu = MtuProber::new(cfg.base_mtu, cfg.max_mtu);
        Stream {
            local_id,
            remote_id: None,
            pending_remote: None,
            send: SendState::new(),
            recovery: Recovery::new(&cfg),
            recv: RecvState::new(&cfg),
            mtu,
            remote_change_seq: None,
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
        if self.recovery.inflight.is_empty() && self.send.unsent == 0 {
            self.send.seq = seq;
            self.recovery.remote_acked = seq;
            self.recovery.high_seq = seq;
            self.recovery.rack_seq = seq;
            self.send.wl1 = 0;
        }
        if self.recv.ooo.is_empty() && self.recv.recv_buf.is_empty() {
            self.recv.ack = ack;
        }
    }

    /// Moves the stream to a new remote id (the driver moves the address). Completes with
    /// [`Event::RemoteChanged`] once everything sent so far is acknowledged; the MTU search
    /// restarts.
    pub fn change_remote(&mut self, remote_id: u32) {
        self.remote_id = Some(remote_id);
        self.remote_change_seq = Some(self.send.seq);
        self.mtu = MtuProber::new(self.cfg.base_mtu, self.cfg.max_mtu);
        if self.recovery.remote_acked == self.send.seq {
            self.remote_change_seq = None;
            self.push_event(Event::RemoteChanged);
        }
    }

    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        format!(
            "seq={} remote_acked={} ack={} inflight={} in_flight={} cwnd={} rwnd={} ca={:?} rtx_q={} rto_at={:?} tlp_at={:?} reo_at={:?} pace={:?} srtt={:?} rto={:?} sacked={} ooo={} front={:?}",
            self.send.seq,
            self.recovery.remote_acked,
            self.recv.ack,
            self.recovery.inflight.len(),
            self.recovery.in_flight,
            self.recovery.cc.window(),
            self.send.peer_rwnd,
            self.recovery.ca,
            self.recovery.retransmit.len(),
            self.recovery.rto_at,
            self.recovery.tlp_at,
            self.recovery.reorder_at,
            self.send.pace_until,
            self.recovery.rtt.srtt(),
            self.recovery.rtt.rto(),
            self.recovery.sacked_count,
            self.recv.ooo.len(),
            self.recovery.inflight.front(),
        )
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Current congestion window in packets.
    pub fn cwnd(&self) -> usize {
        self.recovery.cc.window()
    }

    /// Smoothed RTT.
    pub fn srtt(&self) -> Duration {
        self.recovery.rtt.srtt()
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.recovery.rtt.rto()
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

    /// Destroys the stream: sends DESTROY once (if connected) and closes with
    /// [`StreamError::LocallyClosed`].
    pub fn destroy(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.remote_id.is_some() {
            self.send.destroy_pending = true;
        }
        self.close(now, Err(StreamError::LocallyClosed));
    }

    /// Whether our END was acknowledged (everything we wrote arrived).
    pub fn is_end_acked(&self) -> bool {
        self.send.end_acked
    }

    /// Whether `end()` was called.
    pub fn is_ending(&self) -> bool {
        self.send.end_requested
    }

    /// Whether a datagram is waiting to go out right now (an ACK, a message, DESTROY, ...);
    /// drivers use it to skip idle streams.
    pub fn wants_transmit(&self) -> bool {
        self.remote_id.is_some()
            && (self.recv.ack_needed
                || self.send.destroy_pending
                || !self.send.messages.is_empty()
                || !self.recovery.retransmit.is_empty()
                || self.send.probe_needed
                || self.recovery.dup_pending.is_some()
                || (self.closed.is_none() && self.has_unsent()))
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
        self.linger_until = Some(now + self.cfg.linger.max(self.recovery.rtt.rto() * 13));
        self.recovery.rto_at = None;
        self.recovery.tlp_at = None;
        self.recovery.reorder_at = None;
        self.send.zwp_at = None;
        self.send.keepalive_at = None;
        self.recovery.retransmit.clear();
        self.send.messages.clear();
        if result.is_err() {
            self.recv.clear_ooo();
            self.recovery.clear();
        }
        self.readable_pending = true;
        self.writable_pending = true;
        self.push_event(Event::Closed(result));
    }

    fn check_all_ended(&mut self, now: Instant) {
        if self.send.end_acked && self.recv.eof && self.closed.is_none() {
            self.close(now, Ok(()));
        }
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
            self.recovery.rto_at,
            self.recovery.tlp_at,
            self.recovery.reorder_at,
            self.send.zwp_at,
            self.send.keepalive_at,
            self.send.pace_until,
            self.recovery.dup_at,
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
        if self.send.pace_until.is_some_and(|t| now >= t) {
            self.send.pace_until = None;
        }
        if self.recovery.reorder_at.is_some_and(|t| now >= t) {
            self.recovery.reorder_at = None;
            self.detect_loss(now);
        }
        if self.recovery.rto_at.is_some_and(|t| now >= t) {
            self.on_rto(now);
            if self.closed.is_some() {
                return;
            }
        }
        if self.recovery.tlp_at.is_some_and(|t| now >= t) {
            self.recovery.tlp_at = None;
            self.on_tlp(now);
        }
        if self.send.zwp_at.is_some_and(|t| now >= t) {
            self.send.probe_needed = true;
            self.send.zwp_count += 1;
            self.send.zwp_at = Some(now + self.recovery.rtt.rto() * 2);
        }
        if self.send.keepalive_at.is_some_and(|t| now >= t) {
            self.send.probe_needed = true;
            self.send.keepalive_at = None;
        }
    }
}
