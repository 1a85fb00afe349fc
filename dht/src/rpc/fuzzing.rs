//! The check behind the `dht_node` fuzz target, shared with the corpus replay in `cargo test`.
//!
//! Input: a sequence of datagrams fed to one node (bootstrapped on a fixed seed), with time
//! advancing between them. Oracle: nothing panics, and the node's tables, queues and in-flight
//! set stay within their documented bounds. This module may panic (it is the oracle).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{Config, Node};

/// Feeds `data` to a node: each chunk is `[src_ip_last_byte, src_port_lo, len, bytes...]`.
pub fn dht_node(data: &[u8]) {
    let start = Instant::now();
    let config = Config {
        bootstrap: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10_001)],
        ..Config::default()
    };
    let limits = config.limits.clone();
    let mut node = Node::new(config, 10_000, start, [9; 32]);
    let mut now = start;
    let mut rest = data;
    while let [ip, port, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (dgram, after) = tail.split_at(n);
        let from = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, *ip), 10_000 + u16::from(*port));
        node.handle_datagram(now, from, dgram);
        now += Duration::from_millis(u64::from(*port) * 7);
        node.handle_timeout(now);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        rest = after;
    }
    assert!(node.inflight() <= limits.max_inflight);
    assert!(node.running_queries() <= limits.max_queries);
    assert!(node.table().len() <= 256 * node.table().k());
}
