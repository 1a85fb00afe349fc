//! Request-table timer cost (not a timed assert): the time one `poll_timeout` + `handle_timeout`
//! pair takes with N requests in flight and none due, from 100 up to the table's bound
//! (`Limits::max_inflight`). A flat row means the timer lookup does not scan the table.
//!
//! Run: `cargo bench -p dht --bench request_table`.

#![allow(clippy::disallowed_methods)] // benchmarks take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::rpc::{Config, Limits, Node};

fn node_with_inflight(n: usize, now: Instant) -> Node {
    let limits = Limits::default();
    let config = Config {
        // Every request is sent at once (none waits behind the congestion window), so each
        // one carries a retransmission deadline.
        max_window: u32::try_from(limits.max_inflight).unwrap_or(u32::MAX),
        limits,
        ..Config::default()
    };
    let mut node = Node::new(config, 49_737, now, [3; 32]);
    for i in 0..n {
        let addr = SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i as u32), 49_737);
        node.ping(now, addr);
        while node.poll_transmit().is_some() {}
    }
    while node.poll_event().is_some() {}
    node
}

fn main() {
    let max = Limits::default().max_inflight;
    println!("| requests in flight | ns per poll_timeout + handle_timeout |");
    println!("|---|---|");
    for n in [100, 1_000, 4_000, max] {
        let start = Instant::now();
        let mut node = node_with_inflight(n, start);
        assert_eq!(node.inflight(), n);
        // 1 ms later: no retransmission, drain or tick is due yet.
        let now = start + Duration::from_millis(1);
        let iters = 20_000u32;
        let t = Instant::now();
        let mut sink = 0u64;
        for _ in 0..iters {
            if let Some(d) = node.poll_timeout() {
                sink = sink.wrapping_add(d.saturating_duration_since(now).as_nanos() as u64);
            }
            node.handle_timeout(now);
        }
        let el = t.elapsed();
        assert_eq!(node.inflight(), n);
        println!(
            "| {n} | {:.0} |{}",
            el.as_nanos() as f64 / f64::from(iters),
            if sink == 0 { " " } else { "" }
        );
    }
}
