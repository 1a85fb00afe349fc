//! A flood of requests from one address is bounded: the node's memory stops growing once its
//! documented caps are reached (`Limits`: events 4096, delayed pings 1024, outgoing datagrams
//! 8192; the routing table holds at most one entry per address).

#![allow(clippy::disallowed_methods)] // tests and benchmarks take real time as their origin

// Heap is measured with the counting allocator in common/counting_alloc.rs.
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::codec::Encode;
use dht::crypto::node_id;
use dht::rpc::wire::Request;
use dht::rpc::{Config, Node};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live_bytes;

fn live() -> isize {
    live_bytes()
}

fn flood_datagram(i: u32, from: SocketAddrV4, me: SocketAddrV4) -> Vec<u8> {
    let mut r = Request {
        tid: i as u16,
        to: me,
        id: Some(node_id(&from)),
        token: None,
        internal: true,
        command: 0,
        target: None,
        value: None,
    };
    match i % 8 {
        0 => {}
        1 => {
            r.command = 2;
            r.target = Some(dht::crypto::hash(&i.to_le_bytes()));
        }
        2 => {
            r.command = 4; // DELAYED_PING, 10 s
            r.value = Some(10_000u32.to_le_bytes().to_vec());
        }
        3 => {
            r.command = 3; // DOWN_HINT about a random node
            r.value = Some(vec![10, 0, (i >> 8) as u8, i as u8, 1, 2]);
        }
        4 => {
            r.internal = false; // registered user command: becomes an event
            r.command = 7;
            r.value = Some(vec![0; 64]);
        }
        5 => {
            r.internal = false;
            r.token = Some([i as u8; 32]); // invalid token
            r.command = 7;
        }
        6 => {
            r.command = 1; // PING_NAT to another port
            r.value = Some(((i % 60_000) as u16 + 1).to_le_bytes().to_vec());
        }
        _ => {
            r.internal = false; // unknown user command with a target
            r.command = 99;
            r.target = Some([i as u8; 32]);
        }
    }
    r.to_bytes()
}

#[test]
fn flood_from_one_address_does_not_grow_memory_past_the_caps() {
    let start = Instant::now();
    let me = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30_000);
    let attacker = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 31_000);
    let config = Config::default();
    let limits = config.limits.clone();
    let mut node = Node::bootstrapper(config, me, start, [3; 32]);
    node.register_command(7);
    for p in 0..200u16 {
        node.add_node(
            start,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1000 + p),
        );
    }
    let mut now = start;
    let sample = |node: &mut Node, n: u32, now: &mut Instant, drain: bool| {
        for i in 0..n {
            node.handle_datagram(*now, attacker, &flood_datagram(i, attacker, me));
            if i % 64 == 0 {
                *now += Duration::from_millis(1);
                node.handle_timeout(*now);
            }
            if drain {
                while node.poll_transmit().is_some() {}
            }
        }
    };
    // Warm up until every cap is reached (the application never reads events).
    sample(&mut node, 50_000, &mut now, true);
    let after_warmup = live();
    sample(&mut node, 200_000, &mut now, true);
    let after_flood = live();
    // And a flood while the driver does not send at all (transmit queue full).
    sample(&mut node, 100_000, &mut now, false);
    let after_stall = live();
    println!(
        "live heap: after warm-up {} KiB, after 200k more {} KiB, after 100k with a stalled socket {} KiB; \
         table {} nodes, stats {:?}",
        after_warmup / 1024,
        after_flood / 1024,
        after_stall / 1024,
        node.table().len(),
        node.stats()
    );
    assert!(
        after_flood - after_warmup < 256 * 1024,
        "grew {} bytes",
        after_flood - after_warmup
    );
    // the stalled transmit queue is capped at max_transmits datagrams of <= ~200 bytes
    assert!(
        after_stall - after_flood < (limits.max_transmits as isize) * 256,
        "grew {} bytes",
        after_stall - after_flood
    );
    assert!(
        node.stats().dropped_events > 0,
        "the event cap was exercised"
    );
    assert!(
        node.stats().dropped_delayed_pings > 0,
        "the delayed-ping cap was exercised"
    );
    assert!(node.table().len() <= 201);
}
