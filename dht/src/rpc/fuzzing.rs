//! The check behind the `dht_node` fuzz target, shared with the corpus replay in `cargo test`.
//!
//! Input: a sequence of operations on one node (seeded, with a bootstrap node configured):
//! raw datagrams from arbitrary loopback addresses, well-formed responses to requests the node
//! really sent (with fuzzer-chosen ids, tokens, closer nodes and errors, so the query engine and
//! the table run), time advancing, and local commands. Oracle: nothing panics and the node's
//! tables, queues and in-flight set stay within their documented bounds. This module may panic:
//! it is the oracle.

// The fuzz oracle may assert and index: it runs on inputs it builds itself.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::wire::{Message, Response};
use super::{Config, Node};
use crate::codec::{Decode, Encode};
use crate::crypto::node_id;

/// Requests remembered so the fuzzer can answer them.
const MAX_SEEN_REQUESTS: usize = 256;

fn addr(ip: u8, port: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, ip), 10_000 + u16::from(port))
}

/// Runs one fuzz input against a node.
pub fn dht_node(data: &[u8]) {
    let start = Instant::now();
    let config = Config {
        bootstrap: vec![addr(1, 1)],
        ..Config::default()
    };
    let limits = config.limits.clone();
    let mut node = Node::new(config, 10_000, start, [9; 32]);
    let me = addr(1, 0);
    let mut now = start;
    let mut sent: Vec<(SocketAddrV4, u16)> = Vec::new();
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 4 {
            0 => {
                let [ip, port, len, tail @ ..] = rest else {
                    break;
                };
                let n = usize::from(*len).min(tail.len());
                let (dgram, after) = tail.split_at(n);
                node.handle_datagram(now, addr(*ip, *port), dgram);
                rest = after;
            }
            1 => {
                let [sel, flags, ncloser, tail @ ..] = rest else {
                    break;
                };
                let n = usize::from(*ncloser % 24).min(tail.len() / 2);
                let (closer, after) = tail.split_at(n * 2);
                rest = after;
                if sent.is_empty() {
                    continue;
                }
                let (from, tid) = sent.swap_remove(usize::from(*sel) % sent.len());
                let res = Response {
                    tid,
                    to: me,
                    id: match flags & 3 {
                        0 => None,
                        1 => Some([*sel; 32]),
                        _ => Some(node_id(&from)),
                    },
                    token: (flags & 4 != 0).then_some([*flags; 32]),
                    closer_nodes: closer.chunks(2).map(|c| addr(c[0], c[1])).collect(),
                    error: u64::from(flags >> 5),
                    value: (flags & 8 != 0).then(|| vec![*sel; usize::from(*ncloser)]),
                };
                node.handle_datagram(now, from, &res.to_bytes());
            }
            2 => {
                let [d, after @ ..] = rest else { break };
                rest = after;
                now += Duration::from_millis(u64::from(*d) * 40);
                node.handle_timeout(now);
            }
            _ => {
                let [c, after @ ..] = rest else { break };
                rest = after;
                match c % 4 {
                    0 => {
                        node.find_node(now, [*c; 32]);
                    }
                    1 => {
                        node.ping(now, addr(*c, *c));
                    }
                    2 => node.register_command(u64::from(*c % 16)),
                    _ => node.add_node(now, addr(*c, c.wrapping_mul(7))),
                }
            }
        }
        while let Some(t) = node.poll_transmit() {
            if let Ok(Message::Request(r)) = Message::from_bytes(&t.payload)
                && sent.len() < MAX_SEEN_REQUESTS
            {
                sent.push((t.to, r.tid));
            }
        }
        while node.poll_event().is_some() {}
        assert!(node.inflight() <= limits.max_inflight);
        assert!(node.running_queries() <= limits.max_queries);
        assert!(node.table().len() <= 256 * node.table().k());
    }
}
