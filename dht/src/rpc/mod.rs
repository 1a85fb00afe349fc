//! dht-rpc: the Kademlia RPC layer — datagram format and a sans-IO node.
//!
//! JS: dht-rpc@6.27.0 with kademlia-routing-table@1.0.6 and nat-sampler@1.0.1.
//!
//! I/O contract: [`Node`] is a state machine with no socket, no clock and no RNG of its own.
//! Feed it datagrams with [`Node::handle_datagram`] and timers with [`Node::handle_timeout`];
//! send what [`Node::poll_transmit`] returns; read [`Node::poll_event`]. Every table, queue and
//! cache is bounded ([`Limits`]). A tokio driver is in `crate::runtime` (feature `tokio`).
//!
//! Flood bound: a remote can make the node hold at most `Limits::max_events` queued events
//! (user requests it registered for, NAT updates), `Limits::max_delayed_pings` delayed replies,
//! `Limits::max_transmits` outgoing datagrams, 10 DOWN_HINT-triggered checks and 3 full-row
//! re-pings, and one routing-table entry per address whose id it can prove (at most 256 × k
//! entries in all). Every other request is answered at once and leaves no state. The bound is
//! on memory, not CPU: like JS, the node answers every well-formed request (`tests/rpc_flood.rs`
//! measures the heap staying flat under 350,000 requests from one address).
//!
//! Layout: [`wire`] (datagrams), [`routing`] (k-buckets), [`tokens`], [`congestion`],
//! [`nat_sampler`], `api` (the public ids, replies, events and option structs), `requests`
//! (the request table: transaction ids, timer heap, congestion queue, outbox), `query` (the
//! iterative walk as a state machine, no I/O), `queries` (the node running its walks),
//! [`maintenance`] (the tick schedule and counters; bootstrap, liveness checks, ephemeral →
//! persistent), `table_feed` (the routing table fed from the network), `handlers` (inbound
//! requests and responses), [`node`] (the node and its API).

mod api;
pub mod config;
pub mod congestion;
pub mod fuzzing;
mod handlers;
pub mod health;
pub mod maintenance;
pub mod nat_sampler;
pub mod node;
mod queries;
mod query;
mod requests;
pub mod routing;
mod table_feed;
pub mod tokens;
pub mod wire;

#[cfg(test)]
mod tests;

pub use api::{
    Event, IncomingRequest, QueryError, QueryId, QueryOutcome, Reply, ReplyOpts, RequestError,
    RequestId, RequestOpts, Stats,
};
pub use config::{Config, Limits};
pub use node::Node;
pub use query::QueryOpts;
pub use requests::Transmit;
pub use routing::NodeId;
