//! dht-rpc nodes on `netsim` links with jitter, 5 % random loss and 1 % duplication: the network
//! forms and FIND_NODE still finds the true closest node. (The 10,000-node run in `sim_dht.rs`
//! uses the lighter shuttle in `common/`: netsim keeps state per directed link, which is
//! O(pairs) for a DHT where every node talks to hundreds of others.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::rpc::routing::cmp_distance;
use dht::rpc::{Config, Event, Node, QueryId, QueryOutcome};
use netsim::{LinkConfig, Loss};

struct World {
    net: netsim::Net,
    nodes: HashMap<SocketAddrV4, Node>,
    timers: BinaryHeap<Reverse<(Instant, SocketAddrV4)>>,
    done: HashMap<(SocketAddrV4, QueryId), QueryOutcome>,
}

fn addr(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0x0a00_0001 + i), 49_737)
}

impl World {
    fn after(&mut self, a: SocketAddrV4) {
        let Some(n) = self.nodes.get_mut(&a) else {
            return;
        };
        while let Some(t) = n.poll_transmit() {
            self.net
                .send(SocketAddr::V4(a), SocketAddr::V4(t.to), &t.payload);
        }
        while let Some(e) = n.poll_event() {
            if let Event::QueryDone {
                query,
                result: Ok(out),
            } = e
            {
                self.done.insert((a, query), out);
            }
        }
        if let Some(t) = n.poll_timeout() {
            self.timers.push(Reverse((t, a)));
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            let d = self.net.next_delivery();
            let t = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = match (d, t) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.net.advance_to(next);
            let now = self.net.now();
            if d == Some(next) {
                while let Some(dg) = self.net.poll_deliver() {
                    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (dg.from, dg.to) else {
                        continue;
                    };
                    if let Some(n) = self.nodes.get_mut(&to) {
                        n.handle_datagram(now, from, &dg.data);
                        self.after(to);
                    }
                }
            } else if let Some(Reverse((_, a))) = self.timers.pop()
                && let Some(n) = self.nodes.get_mut(&a)
                && n.poll_timeout().is_some_and(|x| x <= now)
            {
                n.handle_timeout(now);
                self.after(a);
            }
        }
        self.net.advance_to(until);
    }
}

#[test]
fn lossy_jittery_network_still_finds_the_closest_nodes() {
    let start = Instant::now();
    let mut net = netsim::Net::new(start, 21);
    net.set_default_link(LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(30),
        loss: Loss::Random(0.05),
        duplicate: 0.01,
        ..LinkConfig::default()
    });
    let mut w = World {
        net,
        nodes: HashMap::new(),
        timers: BinaryHeap::new(),
        done: HashMap::new(),
    };
    let boot = addr(0);
    w.nodes.insert(
        boot,
        Node::bootstrapper(Config::default(), boot, start, [0; 32]),
    );
    w.after(boot);
    let n = 120u32;
    for i in 1..=n {
        let a = addr(i);
        let c = Config {
            bootstrap: vec![boot],
            ephemeral: Some(false),
            firewalled: false,
            ..Config::default()
        };
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        w.nodes.insert(a, Node::new(c, a.port(), w.net.now(), seed));
        w.after(a);
        let t = w.net.now() + Duration::from_millis(100);
        w.run_until(t);
    }
    let t = w.net.now() + Duration::from_secs(60);
    w.run_until(t);
    let persistent = w.nodes.values().filter(|x| x.id().is_some()).count();
    assert!(persistent >= n as usize, "{persistent} persistent");

    let mut exact = 0;
    let queries = 30;
    for q in 0..queries {
        let at = addr(1 + (q * 37) % n);
        let target = dht::crypto::hash(format!("netsim-{q}").as_bytes());
        let now = w.net.now();
        let id = w.nodes.get_mut(&at).unwrap().find_node(now, target);
        w.after(at);
        let deadline = now + Duration::from_secs(60);
        while !w.done.contains_key(&(at, id)) && w.net.now() < deadline {
            let t = w.net.now() + Duration::from_millis(50);
            w.run_until(t);
        }
        let out = w.done.remove(&(at, id)).expect("query finished");
        let mut ids: Vec<([u8; 32], SocketAddrV4)> = w
            .nodes
            .iter()
            .filter(|(a, _)| **a != at)
            .filter_map(|(a, n)| n.id().map(|i| (i, *a)))
            .collect();
        ids.sort_by(|x, y| cmp_distance(&target, &x.0, &y.0));
        if out.closest_replies.first().map(|r| r.from) == ids.first().map(|x| x.1) {
            exact += 1;
        }
    }
    let c = w
        .net
        .counters(SocketAddr::V4(addr(1)), SocketAddr::V4(boot));
    println!(
        "netsim, {n} nodes, 5 % loss: true closest found {exact}/{queries}; link 1->boot {c:?}"
    );
    assert!(exact * 10 >= queries * 9, "only {exact}/{queries}");
}
