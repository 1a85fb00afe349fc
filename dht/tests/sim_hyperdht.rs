//! HyperDHT records at scale on a simulated network of sans-IO `HyperDht` nodes (netsim,
//! virtual clock, 5-40 ms links; see `common/hyper.rs`): topics announced from random nodes,
//! then 10 % of the nodes replaced (killed, and as many new ones joined), then each topic
//! looked up from another random node. At least 99 % of the lookups must find the announcer's
//! key. Prints announce and lookup requests and hops per operation.
//!
//! Default run: 500 nodes, 100 topics, two seeds. `sim_2000_nodes` (ignored; run with
//! `cargo nextest run -p dht --test sim_hyperdht --run-ignored only --no-capture`) runs 2,000
//! nodes and 500 topics.

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use common::addr_of;
use common::hyper::HyperNet;
use dht::crypto::KeyPair;
use dht::hyperdht::{HyperEvent, OpId, OpOutcome};

/// Operations started together (each from a node of its own, so its request counter is its).
const BATCH: usize = 25;
/// Virtual time one operation may take.
const OP_TIME: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Report {
    announces: usize,
    announce_acks: usize,
    announce_requests: u64,
    announce_hops: u64,
    lookups: usize,
    found: usize,
    lookup_requests: u64,
    lookup_hops: u64,
}

fn requests_out(net: &HyperNet, at: SocketAddrV4) -> u64 {
    net.nodes
        .get(&at)
        .map(|d| d.rpc().stats().requests_out)
        .unwrap_or(0)
}

/// `n` distinct live non-bootstrap nodes, drawn at random, none of them in `avoid`.
fn pick(net: &mut HyperNet, n: usize, avoid: &BTreeSet<SocketAddrV4>) -> Vec<SocketAddrV4> {
    let live: Vec<SocketAddrV4> = net
        .nodes
        .keys()
        .filter(|a| **a != addr_of(0) && !avoid.contains(a))
        .copied()
        .collect();
    let mut out = BTreeSet::new();
    while out.len() < n.min(live.len()) {
        let i = net.rng.below(live.len() as u64) as usize;
        out.insert(live[i]);
    }
    out.into_iter().collect()
}

/// Runs until every op of `ops` ended (or `OP_TIME` passed for the last).
fn settle(net: &mut HyperNet, ops: &[(SocketAddrV4, OpId)]) {
    let deadline = net.now + OP_TIME;
    while net.now < deadline && ops.iter().any(|k| !net.done.contains_key(k)) {
        let step = net.now + Duration::from_millis(20);
        net.run_until(step);
    }
}

fn run(seed: u64, nodes: u32, topics: usize) -> Report {
    let t0 = Instant::now();
    let (mut net, _) = HyperNet::network(seed, nodes);
    let built = t0.elapsed();
    let mut r = Report::default();
    let keys: Vec<KeyPair> = (0..topics)
        .map(|i| KeyPair::from_seed(&dht::crypto::hash(format!("key {seed} {i}").as_bytes())))
        .collect();
    let topic = |i: usize| dht::crypto::hash(format!("topic {seed} {i}").as_bytes());

    // announces, BATCH at a time, each from a node of its own
    let mut announcers = Vec::with_capacity(topics);
    for chunk in (0..topics).collect::<Vec<_>>().chunks(BATCH) {
        let at = pick(&mut net, chunk.len(), &BTreeSet::new());
        let mut ops = Vec::new();
        for (&i, &a) in chunk.iter().zip(&at) {
            let before = requests_out(&net, a);
            let kp = keys[i].clone();
            let op = net.with(a, |d, now| d.announce(now, topic(i), &kp, &[a]));
            ops.push((a, op, before));
            announcers.push(a);
        }
        settle(
            &mut net,
            &ops.iter().map(|(a, o, _)| (*a, *o)).collect::<Vec<_>>(),
        );
        for (a, op, before) in ops {
            r.announces += 1;
            r.announce_requests += requests_out(&net, a) - before;
            if let Some(Ok(OpOutcome::Announce(c))) = net.done.remove(&(a, op))
                && c.answered > 0
            {
                r.announce_acks += 1;
                r.announce_hops += u64::from(c.hops);
            }
            net.take_events(a, op);
        }
    }

    // 10 % churn: that many random nodes leave (announcers included), as many new ones join
    let leave = pick(&mut net, nodes as usize / 10, &BTreeSet::new());
    for a in &leave {
        net.kill(*a);
    }
    for i in 0..leave.len() as u32 {
        net.add_node(addr_of(nodes + 1 + i), vec![addr_of(0)], true);
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(30));

    // lookups, each from a node that did not announce that topic
    for chunk in (0..topics).collect::<Vec<_>>().chunks(BATCH) {
        let avoid: BTreeSet<SocketAddrV4> = chunk.iter().map(|&i| announcers[i]).collect();
        let at = pick(&mut net, chunk.len(), &avoid);
        let mut ops = Vec::new();
        for (&i, &a) in chunk.iter().zip(&at) {
            let before = requests_out(&net, a);
            let op = net.with(a, |d, now| d.lookup(now, topic(i)));
            ops.push((i, a, op, before));
        }
        settle(
            &mut net,
            &ops.iter().map(|(_, a, o, _)| (*a, *o)).collect::<Vec<_>>(),
        );
        for (i, a, op, before) in ops {
            r.lookups += 1;
            r.lookup_requests += requests_out(&net, a) - before;
            if let Some(Ok(OpOutcome::Lookup(s))) = net.done.remove(&(a, op)) {
                r.lookup_hops += u64::from(s.hops);
            }
            let found = net.take_events(a, op).iter().any(|e| {
                matches!(e, HyperEvent::LookupReply { reply, .. }
                    if reply.peers.iter().any(|p| p.public_key == keys[i].public_key))
            });
            if found {
                r.found += 1;
            }
        }
    }
    let per = |x: u64, n: usize| x as f64 / n.max(1) as f64;
    println!(
        "seed {seed}: {nodes} nodes, {topics} topics, 10% churn between announce and lookup: \
         found {}/{} ({:.1}%); announce: {}/{} acknowledged, {:.1} requests, {:.2} hops each; \
         lookup: {:.1} requests, {:.2} hops each; network built in {:.1?}, total {:.1?}",
        r.found,
        r.lookups,
        100.0 * r.found as f64 / r.lookups.max(1) as f64,
        r.announce_acks,
        r.announces,
        per(r.announce_requests, r.announces),
        per(r.announce_hops, r.announce_acks),
        per(r.lookup_requests, r.lookups),
        per(r.lookup_hops, r.lookups),
        built,
        t0.elapsed(),
    );
    r
}

fn check(r: &Report) {
    assert_eq!(
        r.announce_acks, r.announces,
        "every announce was acknowledged"
    );
    assert!(
        r.found * 100 >= r.lookups * 99,
        "lookups found the announcer for only {}/{} topics",
        r.found,
        r.lookups
    );
    // a lookup that found something sent requests and walked at least one hop
    assert!(r.lookup_requests >= r.lookups as u64 && r.lookup_hops >= r.lookups as u64);
    // an acknowledged announce walked at least one hop before it committed
    assert!(r.announce_hops >= r.announce_acks as u64);
}

#[test]
fn lookups_find_announced_topics_after_churn() {
    for seed in [1, 2] {
        check(&run(seed, 500, 100));
    }
}

#[test]
#[ignore = "2,000 nodes, 500 topics (see the module docs)"]
fn sim_2000_nodes() {
    check(&run(7, 2000, 500));
}
