//! dht-rpc: the Kademlia RPC layer (datagram format, and later the node).
//!
//! JS: dht-rpc@6.27.0.

pub mod wire;
