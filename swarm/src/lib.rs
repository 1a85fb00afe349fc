//! Hyperswarm: join topics, discover peers through HyperDHT and keep encrypted connections to
//! them, with the policy of the JS package `hyperswarm` 4.17.2 (retry timers, priorities,
//! duplicate-connection rule).
//!
//! Contract: [`SwarmCore`] is the sans-IO policy core (JS `hyperswarm/index.js` and
//! `hyperswarm/lib/*`). It does no I/O and reads no clock or OS randomness: every input carries
//! `now`, randomness comes from [`Options::seed`]. A driver (the tokio runtime, not written
//! yet) performs the [`Action`]s it polls (start a lookup or announce, dial a key, close a
//! connection, send a keepalive) and feeds back what happened (lookup replies, walks ending,
//! connections opened, failed, closed, incoming); the application polls [`Event`]s
//! (connections with their peer, bans, flushes settled). Every table is bounded; the bounds
//! are below, beside the JS constants they stand for. No input sequence panics.
//!
//! A driver's loop, with the DHT's answers made up:
//!
//! ```
//! use std::time::Instant;
//! use swarm::{Action, Event, JoinOptions, Options, PeerRecord, PublicKey, SwarmCore, Topic};
//!
//! let now = Instant::now();
//! let mut core = SwarmCore::new(Options::new(PublicKey([1; 32])));
//! let client = JoinOptions { server: false, client: true, limit: None };
//! core.join(now, Topic([7; 32]), client).unwrap();
//! let Some(Action::Lookup { topic, refresh, .. }) = core.poll_action() else { panic!() };
//! // The lookup's replies name one peer: the core dials it.
//! let peer = PeerRecord { public_key: PublicKey([2; 32]), relay_addresses: vec![] };
//! core.handle_lookup_peers(now, topic, refresh, &[peer]);
//! core.handle_refresh_done(now, topic, refresh);
//! let Some(Action::Dial { conn, remote, .. }) = core.poll_action() else { panic!() };
//! assert_eq!(remote, PublicKey([2; 32]));
//! core.handle_opened(now, conn);
//! assert!(matches!(core.poll_event(), Some(Event::Connection { peer, .. }) if peer.client));
//! // Sleep until `core.poll_timeout()`, then `core.handle_timeout(now)`, and so on.
//! ```
//!
//! Where the core differs from JS, on purpose:
//! - with [`Options::firewall_outgoing`] the firewall answers outgoing peers asynchronously
//!   ([`Action::CheckFirewall`]; JS calls it synchronously and marks async as a TODO); the
//!   attempt counts against `max_parallel` while it waits;
//! - `max_server_connections` is enforced and every table has a hard bound (JS: Infinity);
//! - a peer already waiting in a retry timer is not added twice, a peer released by a timer
//!   that will not be queued again is forgotten, and `destroy`/`suspend` forget every peer but
//!   the banned and the connected (JS keeps them until garbage collected by other paths);
//! - `suspend` clears the peers' `queued` flags along with the queue (JS leaves them set,
//!   which keeps those peers out of the queue after `resume`).
//!
//! Files: `core.rs` (topics, timers, API), `flush.rs` (flushes), `connect.rs` (dials, incoming, duplicate
//! rule), `discovery.rs` (per-topic state), `peer.rs` (peer state, queue, retry timers),
//! `types.rs` (inputs and outputs).

// Remote input never panics: no unwrap/expect/panic!/slice indexing outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod connect;
mod core;
pub mod discovery;
mod flush;
pub mod peer;
mod types;

#[cfg(test)]
mod tests;

pub use crate::core::SwarmCore;
pub use crate::peer::{Backoff, PeerInfo, select_backoff};
pub use crate::types::{
    Action, CloseReason, ConnError, ConnId, Event, FlushId, JoinOptions, Options, PeerRecord,
    PeerSnapshot, PublicKey, RefreshId, SessionId, Stats, SwarmError, Topic,
};

/// JS `MAX_PEERS`: connections (open or pending) the swarm aims for, divided by the explicit
/// peer factor.
pub const MAX_PEERS: usize = 64;
/// JS `MAX_PARALLEL`: outgoing attempts at once.
pub const MAX_PARALLEL: usize = 3;
/// Hard cap on connections of all kinds (JS `MAX_CLIENT_CONNECTIONS` and
/// `MAX_SERVER_CONNECTIONS` are Infinity); also the default of both options.
pub const MAX_CONNECTIONS: usize = 4096;
/// Peers remembered (JS `swarm.peers`, unbounded there); lookups past it add no new peer.
pub const MAX_KNOWN_PEERS: usize = 16_384;
/// Topics joined at once (JS `_discovery`, unbounded there).
pub const MAX_TOPICS: usize = 1024;
/// Explicit peers (JS `explicitPeers`, unbounded there).
pub const MAX_EXPLICIT_PEERS: usize = 1024;
/// Flushes pending at once (JS `_pendingFlushes`, unbounded there).
pub const MAX_PENDING_FLUSHES: usize = 1024;
