//! Networks of sans-IO nodes on the `netsim` fabric (see `common/`).

mod common;

use std::time::Duration;

use common::{Net, addr_of};

fn network(seed: u64, n: u32) -> (Net, Vec<std::net::SocketAddrV4>) {
    let mut net = Net::new(seed);
    let boot = addr_of(0);
    net.add_bootstrapper(boot);
    let mut addrs = Vec::new();
    for i in 1..=n {
        let a = addr_of(i);
        net.add_node(a, vec![boot], true);
        addrs.push(a);
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(20));
    (net, addrs)
}

#[test]
fn persistent_nodes_join_and_fill_each_others_tables() {
    let (net, addrs) = network(1, 30);
    for a in &addrs {
        assert!(net.persistent.contains(a), "{a} did not become persistent");
        assert!(net.ready.contains(a));
        let node = &net.nodes[a];
        assert_eq!(node.id(), Some(dht::crypto::node_id(a)));
        assert!(
            node.table().len() >= 10,
            "{a} knows only {} nodes",
            node.table().len()
        );
    }
    // the bootstrap node learnt about everyone who talked to it with an id
    assert!(net.nodes[&addr_of(0)].table().len() >= 25);
}

#[test]
fn find_node_finds_the_true_closest_node() {
    let (mut net, addrs) = network(2, 80);
    let mut hits = 0;
    let total = 40;
    for i in 0..total {
        let target = net.rng.bytes32();
        let at = addrs[(i * 7) % addrs.len()];
        let q = net.find_node(at, target).unwrap();
        let out = net
            .wait_query(at, q, Duration::from_secs(30))
            .expect("query finished")
            .expect("query ok");
        let best = net.true_closest(&target, 1)[0];
        if out.closest_replies.first().map(|r| r.from) == Some(best) || best == at {
            hits += 1;
        }
        assert!(out.closest_replies.len() >= 20);
    }
    assert!(
        hits >= total * 9 / 10,
        "only {hits}/{total} queries found the closest node"
    );
}

#[test]
fn ephemeral_nodes_stay_out_of_routing_tables() {
    let mut net = Net::new(3);
    let boot = addr_of(0);
    net.add_bootstrapper(boot);
    for i in 1..=10 {
        net.add_node(addr_of(i), vec![boot], true);
    }
    net.run_for(Duration::from_secs(10));
    let eph = addr_of(100);
    net.add_node(eph, vec![boot], false);
    net.run_for(Duration::from_secs(30));
    assert!(net.ready.contains(&eph));
    assert!(!net.persistent.contains(&eph));
    assert!(net.nodes[&eph].id().is_none());
    assert!(
        net.nodes[&eph].table().len() >= 5,
        "the ephemeral node still learns the network"
    );
    for (a, n) in &net.nodes {
        assert!(
            !n.to_array().contains(&eph),
            "{a} has the ephemeral node in its table"
        );
    }
}

#[test]
fn dead_nodes_leave_routing_tables() {
    let (mut net, addrs) = network(4, 20);
    let victim = addrs[3];
    assert!(net.nodes.values().any(|n| n.to_array().contains(&victim)));
    net.kill(victim);
    // queries touching it time out (and drop it); periodic checks drop the rest
    for i in 0..10 {
        let target = dht::crypto::node_id(&victim);
        let at = addrs[(i * 3 + 5) % addrs.len()];
        if let Some(q) = net.find_node(at, target) {
            net.wait_query(at, q, Duration::from_secs(30));
        }
    }
    net.run_for(Duration::from_secs(300));
    let still: Vec<_> = net
        .nodes
        .iter()
        .filter(|(_, n)| n.to_array().contains(&victim))
        .map(|(a, _)| *a)
        .collect();
    assert!(still.is_empty(), "still listed by {still:?}");
}

#[test]
fn adaptive_node_passes_the_firewall_check_then_turns_persistent_after_twenty_minutes() {
    let mut net = Net::new(5);
    let boot = addr_of(0);
    net.add_bootstrapper(boot);
    for i in 1..=8 {
        net.add_node(addr_of(i), vec![boot], true);
    }
    net.run_for(Duration::from_secs(10));
    let a = addr_of(50);
    net.add_node(a, vec![boot], false); // adaptive: ephemeral: None, firewalled: true
    net.run_for(Duration::from_secs(10));
    let n = &net.nodes[&a];
    assert!(n.is_bootstrapped());
    assert!(
        !n.is_firewalled(),
        "the quick PING_NAT check cleared the firewall flag"
    );
    assert!(n.id().is_none(), "still ephemeral");
    // STABLE_TICKS = 240 ticks of 5 s
    net.run_for(Duration::from_secs(19 * 60));
    assert!(net.nodes[&a].id().is_none(), "not before 20 minutes");
    net.run_for(Duration::from_secs(2 * 60));
    assert_eq!(net.nodes[&a].id(), Some(dht::crypto::node_id(&a)));
    assert!(net.persistent.contains(&a));
    assert!(
        net.nodes
            .values()
            .filter(|n| n.to_array().contains(&a))
            .count()
            >= 3
    );
}

#[test]
fn commit_phase_resends_the_command_with_each_closest_nodes_token() {
    let (mut net, addrs) = network(6, 30);
    for n in net.nodes.values_mut() {
        n.register_command(9);
    }
    let at = addrs[0];
    let target = net.rng.bytes32();
    let now = net.now;
    let q = net.nodes.get_mut(&at).unwrap().query(
        now,
        dht::rpc::QueryOpts {
            internal: false,
            command: 9,
            value: Some(b"put".to_vec()),
            commit: true,
            ..dht::rpc::QueryOpts::new(target)
        },
    );
    // kick the network so the first datagrams leave
    net.run_for(Duration::from_millis(1));
    let out = net
        .wait_query(at, q, Duration::from_secs(60))
        .expect("finished")
        .expect("ok");
    assert_eq!(out.closest_replies.len(), 20);
    let with_token: Vec<_> = net
        .user_requests
        .iter()
        .filter(|(_, r)| r.token.is_some())
        .collect();
    assert_eq!(
        with_token.len(),
        20,
        "one commit per closest reply, each with that node's token"
    );
    for (node, r) in &with_token {
        assert!(out.closest_replies.iter().any(|c| c.from == *node));
        assert_eq!(r.value.as_deref(), Some(&b"put"[..]));
        assert_eq!(r.target, Some(target));
    }
    // the walk itself used no tokens
    assert!(
        net.user_requests
            .iter()
            .filter(|(_, r)| r.token.is_none())
            .count()
            >= 20
    );
}

/// What a hyperdht layer does on top of `rpc::Node` with public API only: register its command,
/// answer requests with a value and a token, and walk the DHT with that command and a value,
/// reading each node's answer as it arrives.
#[test]
fn user_command_query_streams_each_nodes_reply_as_an_event() {
    let (mut net, addrs) = network(6, 30);
    for n in net.nodes.values_mut() {
        n.register_command(7);
    }
    let at = addrs[0];
    let target = net.rng.bytes32();
    let now = net.now;
    let q = net.nodes.get_mut(&at).unwrap().query(
        now,
        dht::rpc::QueryOpts {
            internal: false,
            command: 7,
            value: Some(b"lookup".to_vec()),
            stream: true,
            ..dht::rpc::QueryOpts::new(target)
        },
    );
    net.run_for(Duration::from_millis(1));
    let out = net
        .wait_query(at, q, Duration::from_secs(60))
        .expect("finished")
        .expect("ok");
    let streamed: Vec<_> = net
        .query_replies
        .iter()
        .filter(|(node, query, _)| *node == at && *query == q)
        .map(|(_, _, r)| r)
        .collect();
    assert_eq!(
        streamed.len(),
        out.successes,
        "one event per successful reply"
    );
    assert!(streamed.len() >= 20);
    for r in &streamed {
        assert_eq!(r.value.as_deref(), Some(&b"ok"[..]));
        assert!(r.token.is_some(), "the handler's reply carried a token");
    }
    let asked = net
        .user_requests
        .iter()
        .filter(|(_, r)| r.target == Some(target))
        .count();
    assert!(asked >= streamed.len());
    assert!(
        net.user_requests
            .iter()
            .filter(|(_, r)| r.target == Some(target))
            .all(|(_, r)| r.value.as_deref() == Some(&b"lookup"[..]) && r.command == 7)
    );
}
