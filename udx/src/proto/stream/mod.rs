//! The sans-IO UDX stream.
//!
//! I/O contract: a [`Stream`] never touches a socket or a clock. Feed it datagrams addressed to
//! its local id, with their source address, through [`Stream::handle_datagram`] and expired
//! timers through [`Stream::handle_timeout`]; pull datagrams to send with
//! [`Stream::poll_transmit`] (they go to [`Stream::remote_addr`]), the next timer with
//! [`Stream::poll_timeout`] and events with [`Stream::poll_event`]. Application data goes in
//! with [`Stream::write`] / [`Stream::end`] and comes out with [`Stream::read`]. Every method
//! takes `now` where time matters.
//!
//! Off-path input (see [`Stream::handle_datagram`]): a connected stream accepts packets only
//! from its remote address. That address is set by [`Stream::connect`] or, on the server side,
//! by the first packet a firewall accepted ([`Stream::accept_pending_remote`]); it moves only
//! with [`Stream::change_remote`] (the previous address stays accepted until the change
//! completes, so ACKs still in flight on the old path count). libudx `process_packet` accepts
//! a connected stream's packets from any source; we drop them and count them in
//! [`Stats::dropped_off_path`]. Packets from the right address are checked for plausibility
//! before they change state (RFC 5961 style, the bounds follow from what libudx sends): an ACK
//! for more than we sent, a DESTROY whose seq lies outside `[ack, ack +`
//! [`MAX_OOO_DISTANCE`]`)`, DATA or END that far beyond `ack` or past the peer's END are
//! dropped and counted
//! ([`Stats::dropped_bad_ack`], [`Stats::dropped_bad_seq`]). A peer that goes silent ends the
//! stream with [`StreamError::TimedOut`] after [`Config::idle_timeout`].
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
use std::net::SocketAddr;
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
/// Default [`Config::idle_timeout`]. A live hyperdht peer sends at least every 5 s: hyperdht
/// (`index.js`, `DEFAULTS.connectionKeepAlive = 5000`) gives every connection's
/// @hyperswarm/secret-stream a keepalive (`index.js` `setKeepAlive`: an empty message after
/// 5 s without writes), and libudx acknowledges every packet. Six silent keepalive intervals
/// (one per `UDX_MAX_RTO_TIMEOUTS`) mean the peer is gone. JS itself has no idle limit: there a
/// dead peer shows only when the keepalive's retransmissions run out.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// dropped (TCP's TIME_WAIT: covers a lost final ACK); at least 13 x RTO (default 15 s).
    /// The socket driver bounds how many streams linger at once.
    pub linger: Duration,
    /// A connected stream that accepted no packet from its peer for this long ends with
    /// [`StreamError::TimedOut`] (default [`DEFAULT_IDLE_TIMEOUT`]; `None`: no limit, only
    /// the RTO give-up ends a stream, as in libudx). The clock starts with the first packet
    /// sent or accepted. Set [`Config::keepalive`] below it on a stream that may idle with
    /// a peer that does not send keepalives of its own.
    pub idle_timeout: Option<Duration>,
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
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
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
    /// Incoming DATA dropped because the receive buffer was full.
    pub recv_dropped: u64,
    /// Incoming messages dropped because the event queue was full.
    pub messages_dropped: u64,
    /// Invalid SACK blocks ignored.
    pub dropped_sacks: u64,
    /// Duplicate DATA/END received.
    pub duplicates: u64,
    /// Packets dropped because they came from an address other than the remote's.
    pub dropped_off_path: u64,
    /// Packets dropped because they acknowledge data we never sent.
    pub dropped_bad_ack: u64,
    /// DATA, END or DESTROY dropped because its seq is implausible: `ack + MAX_OOO_DISTANCE`
    /// or more (beyond the window), a DESTROY below `ack`, or DATA/END past the peer's END.
    pub dropped_bad_seq: u64,
    /// Datagrams for this stream that did not decode.
    pub malformed: u64,
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
    /// The only source we accept packets from once connected.
    remote_addr: Option<SocketAddr>,
    /// The address before [`Stream::change_remote`], accepted until the change completes.
    prev_remote_addr: Option<SocketAddr>,
    /// Set by [`Stream::connect_rebinding`]: the first packet from another address moves the
    /// remote there.
    rebind_on_first: bool,
    /// When the idle limit runs out (refreshed by every accepted packet).
    idle_at: Option<Instant>,
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
            remote_addr: None,
            prev_remote_addr: None,
            rebind_on_first: false,
            idle_at: None,
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

    /// Connects to the peer's stream `remote_id` at `addr` (libudx `udx_stream_connect`): from
    /// now on packets go to `addr` and only packets from `addr` are accepted.
    pub fn connect(&mut self, remote_id: u32, addr: SocketAddr) {
        self.remote_id = Some(remote_id);
        self.remote_addr = Some(addr);
        self.cfg.ipv6 = addr.is_ipv6();
    }

    /// [`Stream::connect`], except that the first packet received may come from another
    /// address, and the stream then moves its remote there. libudx streams take packets from
    /// any source, and a JS hyperdht peer bound to two sockets (dht-rpc's client and server
    /// sockets) can answer from the other one: a LAN connect sends to the server socket it
    /// advertised and hears back from the socket it announced from. Only the first packet
    /// rebinds; from then on the path is checked as after `connect`.
    pub fn connect_rebinding(&mut self, remote_id: u32, addr: SocketAddr) {
        self.connect(remote_id, addr);
        self.rebind_on_first = true;
    }

    /// The address packets go to and are accepted from, once connected.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Whether a packet from `from` may reach this stream: the remote address, or the
    /// previous one while [`Stream::change_remote`] is in progress. Counts a refusal in
    /// [`Stats::dropped_off_path`]. [`Stream::handle_datagram`] calls it; a driver that
    /// relays a stream's packets instead of handing them over calls it itself.
    pub fn accepts_source(&mut self, from: SocketAddr) -> bool {
        let ok = self.remote_addr == Some(from) || self.prev_remote_addr == Some(from);
        if self.rebind_on_first && self.remote_id.is_some() {
            self.rebind_on_first = false;
            if !ok {
                self.remote_addr = Some(from);
                return true;
            }
        }
        if !ok {
            self.stats.dropped_off_path += 1;
        }
        ok
    }

    /// Whether the path is IPv6 (68 bytes of IP+UDP+UDX overhead per packet instead of 48);
    /// the driver sets it from the peer's address.
    pub fn set_ipv6(&mut self, ipv6: bool) {
        self.cfg.ipv6 = ipv6;
    }

    /// Remembers the peer's id for [`Stream::accept_pending_remote`]: the driver connects the
    /// stream when the first packet passes its firewall (hyperdht's server side).
    pub fn set_pending_remote(&mut self, remote_id: u32) {
        self.pending_remote = Some(remote_id);
    }

    /// Connects to the id given to [`Stream::set_pending_remote`] at `from`, the source of
    /// the first packet the firewall accepted; false if there is none or the stream is
    /// already connected.
    pub fn accept_pending_remote(&mut self, from: SocketAddr) -> bool {
        if self.remote_id.is_some() {
            return false;
        }
        match self.pending_remote.take() {
            Some(id) => {
                self.connect(id, from);
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

    /// Moves the stream to a new remote id and address (libudx `udx_stream_change_remote`;
    /// hyperdht moves a relayed connection to the direct path with it). Completes with
    /// [`Event::RemoteChanged`] once everything sent so far is acknowledged; the MTU search
    /// restarts.
    pub fn change_remote(&mut self, remote_id: u32, addr: SocketAddr) {
        self.remote_id = Some(remote_id);
        if self.remote_addr != Some(addr) {
            self.prev_remote_addr = self.remote_addr;
        }
        self.remote_addr = Some(addr);
        self.cfg.ipv6 = addr.is_ipv6();
        self.remote_change_seq = Some(self.send.seq);
        self.mtu = MtuProber::new(self.cfg.base_mtu, self.cfg.max_mtu);
        if self.recovery.remote_acked == self.send.seq {
            self.remote_change_done();
        }
    }

    /// Everything sent before [`Stream::change_remote`] is acknowledged: the old path is
    /// drained and no longer accepted.
    pub(super) fn remote_change_done(&mut self) {
        self.remote_change_seq = None;
        self.prev_remote_addr = None;
        self.push_event(Event::RemoteChanged);
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

    /// Until when a cleanly closed stream lingers to re-acknowledge a retransmitted END
    /// (`None` while open, after a failure, or once the linger is over).
    pub fn linger_deadline(&self) -> Option<Instant> {
        match self.closed {
            Some(Ok(())) => self.linger_until,
            _ => None,
        }
    }

    /// Frees received bytes nobody will read (the driver calls it once the application
    /// dropped a finished stream that lingers).
    pub fn discard_unread(&mut self) {
        self.recv.recv_buf = VecDeque::new();
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
        self.idle_at = None;
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

    /// Restarts the idle limit: a packet was accepted from the peer.
    pub(super) fn heard_from_peer(&mut self, now: Instant) {
        if let Some(limit) = self.cfg.idle_timeout {
            self.idle_at = Some(now + limit);
        }
    }

    /// Starts the idle limit with the first packet we send, so a peer that never answers
    /// times out as well.
    pub(super) fn arm_idle(&mut self, now: Instant) {
        if self.idle_at.is_none()
            && self.closed.is_none()
            && let Some(limit) = self.cfg.idle_timeout
        {
            self.idle_at = Some(now + limit);
        }
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
            self.idle_at,
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
        if self.idle_at.is_some_and(|t| now >= t) {
            self.close(now, Err(StreamError::TimedOut));
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
