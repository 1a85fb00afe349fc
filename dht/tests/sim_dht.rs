//! Whole-network simulation of sans-IO nodes under a virtual clock (on `netsim`, see `common/`).
//!
//! Reports, per FIND_NODE: referral hops to the closest reply, requests sent, the fraction of
//! queries whose first closest reply is the true closest live node (exhaustive XOR sort), the
//! mean top-20 overlap, and live heap per node; then the same while 10 % of the nodes are
//! replaced. The default run uses 300 nodes; `sim_10k_nodes` (ignored; run with
//! `cargo test --release -p dht --test sim_dht -- --ignored --nocapture`) uses 10,000.

#![allow(clippy::disallowed_methods)] // tests and benchmarks take real time as their origin

// Heap is measured with the counting allocator in common/counting_alloc.rs.
mod common;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use common::{Net, addr_of};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live_bytes;

#[derive(Debug, Default)]
struct Report {
    queries: usize,
    finished: usize,
    exact: usize,
    overlap: usize,
    hops: usize,
    requests: u64,
}

impl Report {
    fn print(&self, label: &str) {
        let q = self.finished.max(1) as f64;
        println!(
            "{label}: {} queries, {} finished; true closest found {:.1}%; mean top-20 overlap {:.1}; \
             mean hops {:.2}; mean requests sent {:.1}",
            self.queries,
            self.finished,
            100.0 * self.exact as f64 / q,
            self.overlap as f64 / q,
            self.hops as f64 / q,
            self.requests as f64 / q,
        );
    }
}

fn build(n: u32, seed: u64) -> (Net, Vec<SocketAddrV4>) {
    let mut net = Net::new(seed);
    let boot = addr_of(0);
    net.add_bootstrapper(boot);
    let mut addrs = Vec::new();
    for i in 1..=n {
        let a = addr_of(i);
        net.add_node(a, vec![boot], true);
        addrs.push(a);
        if i % 20 == 0 {
            net.run_for(Duration::from_millis(100));
        }
    }
    net.run_for(Duration::from_secs(60));
    (net, addrs)
}

/// Runs `count` queries in batches of `batch`, from random live nodes; `churn` replaces that many
/// nodes per batch while the batch runs.
fn run_queries(
    net: &mut Net,
    addrs: &mut Vec<SocketAddrV4>,
    count: usize,
    batch: usize,
    churn: usize,
    next_addr: &mut u32,
) -> Report {
    let mut rep = Report::default();
    let boot = addr_of(0);
    let mut left = count;
    while left > 0 {
        let b = batch.min(left);
        left -= b;
        let mut running = Vec::new();
        for _ in 0..b {
            let at = addrs[net.rng.below(addrs.len() as u64) as usize];
            let target = net.rng.bytes32();
            let before = net
                .nodes
                .get(&at)
                .map(|n| n.stats().requests_out + n.stats().retries)
                .unwrap_or(0);
            if let Some(q) = net.find_node(at, target) {
                running.push((at, q, target, before));
                rep.queries += 1;
            }
        }
        // churn while the batch runs
        for _ in 0..churn {
            let i = net.rng.below(addrs.len() as u64) as usize;
            // The querying nodes stay up so that every query can report.
            if running.iter().any(|(a, _, _, _)| *a == addrs[i]) {
                continue;
            }
            let victim = addrs.swap_remove(i);
            net.kill(victim);
            let a = addr_of(*next_addr);
            *next_addr += 1;
            net.add_node(a, vec![boot], true);
            addrs.push(a);
            net.run_for(Duration::from_millis(20));
        }
        let deadline = net.now + Duration::from_secs(60);
        while net.now < deadline
            && running
                .iter()
                .any(|(a, q, _, _)| !net.done.contains_key(&(*a, *q)))
        {
            let step = net.now + Duration::from_millis(50);
            net.run_until(step);
        }
        for (at, q, target, before) in running {
            let Some(Ok(out)) = net.done.remove(&(at, q)) else {
                continue;
            };
            rep.finished += 1;
            let after = net
                .nodes
                .get(&at)
                .map(|n| n.stats().requests_out + n.stats().retries)
                .unwrap_or(before);
            rep.requests += after - before;
            rep.hops += usize::from(out.hops);
            let truth: Vec<SocketAddrV4> = net
                .true_closest(&target, 21)
                .into_iter()
                .filter(|a| *a != at)
                .take(20)
                .collect();
            if out.closest_replies.first().map(|r| r.from) == truth.first().copied() {
                rep.exact += 1;
            }
            rep.overlap += out
                .closest_replies
                .iter()
                .filter(|r| truth.contains(&r.from))
                .count();
        }
    }
    rep
}

fn simulate(n: u32, queries: usize, seed: u64) -> (Report, Report) {
    let heap0 = live_bytes();
    let wall = Instant::now();
    let (mut net, mut addrs) = build(n, seed);
    let persistent = net.nodes.values().filter(|x| x.id().is_some()).count();
    let heap = live_bytes() - heap0;
    let tables: usize = net.nodes.values().map(|x| x.table().len()).sum();
    // Table fill: every table fills well beyond its seed (the bootstrap node).
    let smallest = net
        .nodes
        .values()
        .map(|x| x.table().len())
        .min()
        .unwrap_or(0);
    assert!(
        smallest >= 20,
        "a routing table holds only {smallest} nodes"
    );
    println!(
        "{n} nodes built in {:?} wall ({:?} virtual), {persistent} persistent; mean table {:.1} nodes; \
         live heap {:.1} MiB = {:.1} KiB per node (datagrams in flight included); {} datagrams delivered",
        wall.elapsed(),
        net.now - net.start,
        tables as f64 / net.nodes.len() as f64,
        heap as f64 / (1 << 20) as f64,
        heap as f64 / 1024.0 / net.nodes.len() as f64,
        net.delivered,
    );
    let mut next = n + 1;
    let stable = run_queries(&mut net, &mut addrs, queries, 20, 0, &mut next);
    stable.print(&format!("{n} nodes, stable"));
    let churn_total = (n / 10) as usize;
    let batches = queries.div_ceil(20);
    let per_batch = churn_total.div_ceil(batches);
    let churn = run_queries(&mut net, &mut addrs, queries, 20, per_batch, &mut next);
    churn.print(&format!(
        "{n} nodes, {} replaced while querying",
        per_batch * batches
    ));
    let before = live_bytes();
    let count = net.nodes.len();
    net.nodes.clear();
    let freed = before - live_bytes();
    println!(
        "heap held by the {count} nodes themselves (freed when dropped): {:.1} MiB = {:.1} KiB per node",
        freed as f64 / (1 << 20) as f64,
        freed as f64 / 1024.0 / count as f64
    );
    println!("total wall {:?}", wall.elapsed());
    (stable, churn)
}

#[test]
fn sim_300_nodes() {
    let (stable, churn) = simulate(300, 60, 11);
    assert_eq!(stable.finished, stable.queries);
    assert!(stable.exact * 100 >= stable.finished * 90, "{stable:?}");
    assert_eq!(churn.finished, churn.queries, "{churn:?}");
    assert!(churn.exact * 100 >= churn.finished * 70, "{churn:?}");
}

#[test]
#[ignore = "10,000 nodes: a few minutes in release mode"]
fn sim_10k_nodes() {
    let (stable, churn) = simulate(10_000, 200, 12);
    assert!(stable.exact * 100 >= stable.finished * 80, "{stable:?}");
    assert!(churn.finished * 10 >= churn.queries * 8, "{churn:?}");
}
