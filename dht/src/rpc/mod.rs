//! dht-rpc: the Kademlia RPC layer — datagram format and a sans-IO node.
//!
//! JS: dht-rpc@6.27.0 with kademlia-routing-table@1.0.6 and nat-sampler@1.0.1.
//!
//! I/O contract: [`Node`] is a state machine with no socket, no clock and no RNG of its own.
//! Feed it datagrams with [`Node::handle_datagram`] and timers with [`Node::handle_timeout`];
//! send what [`Node::poll_transmit`] returns; read [`Node::poll_event`]. Every table, queue and
//! cache is bounded ([`Limits`]). A tokio driver is in `crate::runtime` (feature `tokio`).
//!
//! Layout: [`wire`] (datagrams), [`routing`] (k-buckets), [`tokens`], [`congestion`],
//! [`nat_sampler`], `io` (in-flight requests), `query` (iterative walk), `maintenance`
//! (bootstrap, ticks, ephemeral → persistent), [`node`] (handlers and API).

pub mod config;
pub mod congestion;
pub mod fuzzing;
mod handlers;
pub mod health;
mod io;
pub mod maintenance;
pub mod nat_sampler;
pub mod node;
mod query;
pub mod routing;
mod table_feed;
pub mod tokens;
pub mod wire;

#[cfg(test)]
mod tests;

pub use config::{Config, Limits};
pub use io::Transmit;
pub use node::{
    Event, IncomingRequest, Node, QueryError, QueryId, QueryOutcome, Reply, RequestError,
    RequestId, Stats,
};
pub use query::QueryOpts;
pub use routing::NodeId;
