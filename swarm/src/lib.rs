//! Hyperswarm: join topics, discover peers through HyperDHT and keep encrypted connections to
//! them, with the policy of the JS package `hyperswarm` 4.17.2 (retry timers, priorities,
//! duplicate-connection rule).
//!
//! Contract (planned): a sans-IO swarm core driven by the `dht` crate, plus a tokio runtime
//! behind a feature. Nothing is implemented yet.
