//! A deterministic, in-process datagram network for tests: a virtual clock and links with
//! delay, jitter and reordering, random and bursty loss, duplication, MTU limits and blackhole
//! windows. Used as a dev-dependency by the sans-IO cores (`udx`, `dht`, `noise`, `swarm`).
//!
//! Nothing is implemented yet; see issue "udx".
