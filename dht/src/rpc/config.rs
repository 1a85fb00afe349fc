//! Node configuration and limits, with the JS constant each default mirrors.

use std::net::SocketAddrV4;
use std::time::Duration;

/// Bounds on everything a node keeps. Remote input can fill these but never grow past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight or queued behind the congestion window (JS: unbounded `io.inflight`).
    /// A new request beyond it fails with `RequestError::TooManyRequests`.
    pub max_inflight: usize,
    /// Queries running at once (JS: unbounded).
    pub max_queries: usize,
    /// Events waiting in [`Node::poll_event`](super::Node::poll_event); remote-driven events
    /// (user requests, streamed query replies, NAT updates) are dropped beyond it (JS: event
    /// emitter, no queue). Completions of local commands are never dropped; they are bounded by
    /// `max_inflight` and `max_queries`.
    pub max_events: usize,
    /// Datagrams waiting in [`Node::poll_transmit`](super::Node::poll_transmit); dropped beyond
    /// it, like a full socket buffer (JS: the UDX send queue).
    pub max_transmits: usize,
    /// DELAYED_PING replies waiting for their delay (JS: unbounded `_pendingTimers`, each at
    /// most `maxPingDelay` = 10 s). Beyond it a DELAYED_PING gets no reply.
    pub max_delayed_pings: usize,
    /// Distinct addresses one query remembers (JS: unbounded `_seen`); beyond it new addresses
    /// are ignored.
    pub max_query_seen: usize,
    /// Referrers remembered per address in a query, for DOWN_HINTs (JS: unbounded).
    pub max_query_refs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inflight: 8192,
            max_queries: 256,
            max_events: 4096,
            max_transmits: 8192,
            max_delayed_pings: 1024,
            max_query_seen: 2048,
            max_query_refs: 20,
        }
    }
}

/// Node options (`new DHT(opts)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bootstrap nodes (`opts.bootstrap`), already resolved to IPv4 addresses.
    pub bootstrap: Vec<SocketAddrV4>,
    /// Nodes to add to the table at start (`opts.nodes`).
    pub nodes: Vec<SocketAddrV4>,
    /// `opts.ephemeral`: `Some(false)` forces persistence after the bootstrap's address check
    /// (the CLI's `--persistent`), `Some(true)` stays ephemeral, `None` is adaptive.
    pub ephemeral: Option<bool>,
    /// `opts.adaptive` (default true): with `ephemeral: None`, become persistent after
    /// `STABLE_TICKS` (20 min) of stable NAT samples.
    pub adaptive: bool,
    /// `opts.firewalled` (default true): assume firewalled until a PING_NAT check says not.
    pub firewalled: bool,
    /// `opts.quickFirewall` (default true): PING_NAT the first bootstrap replier.
    pub quick_firewall: bool,
    /// `opts.concurrency` (`DEFAULTS.concurrency` = 10).
    pub concurrency: usize,
    /// Bucket size (kademlia-routing-table `k` = 20).
    pub k: usize,
    /// `opts.maxWindow` (`MAX_WINDOW` = 80).
    pub max_window: u32,
    /// Per-transmission timeout (1000 ms in `_sendNow`).
    pub request_timeout: Duration,
    /// `opts.maxPingDelay` (10,000 ms).
    pub max_ping_delay_ms: u32,
    /// `opts.sendDownHints` (default true).
    pub send_down_hints: bool,
    /// `opts.downHintsRateLimit` per 5-s tick (default 50; `None` = unlimited, JS -1).
    pub down_hints_rate_limit: Option<u32>,
    /// Bounds.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            nodes: Vec::new(),
            ephemeral: None,
            adaptive: true,
            firewalled: true,
            quick_firewall: true,
            concurrency: 10,
            k: super::routing::K,
            max_window: super::congestion::MAX_WINDOW,
            request_timeout: Duration::from_millis(1000),
            max_ping_delay_ms: 10_000,
            send_down_hints: true,
            down_hints_rate_limit: Some(50),
            limits: Limits::default(),
        }
    }
}
