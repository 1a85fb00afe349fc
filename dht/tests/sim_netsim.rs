//! dht-rpc nodes on `netsim` links with jitter, 5 % random loss and 1 % duplication: the network
//! forms and FIND_NODE still finds the true closest node.

mod common;

use std::time::Duration;

use common::{Net, addr_of};
use netsim::{LinkConfig, Loss};

#[test]
fn lossy_jittery_network_still_finds_the_closest_nodes() {
    let mut net = Net::new(21);
    net.wire.set_default_link(LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(30),
        loss: Loss::Random(0.05),
        duplicate: 0.01,
        ..LinkConfig::default()
    });
    let boot = addr_of(0);
    net.add_bootstrapper(boot);
    let n = 120u32;
    for i in 1..=n {
        net.add_node(addr_of(i), vec![boot], true);
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(60));
    let persistent = net.nodes.values().filter(|x| x.id().is_some()).count();
    assert!(persistent >= n as usize, "{persistent} persistent");

    let mut exact = 0;
    let queries = 30;
    for q in 0..queries {
        let at = addr_of(1 + (q * 37) % n);
        let target = dht::crypto::hash(format!("netsim-{q}").as_bytes());
        let id = net.find_node(at, target).expect("node exists");
        let out = net
            .wait_query(at, id, Duration::from_secs(60))
            .expect("query finished")
            .expect("query succeeded");
        let truth = net.true_closest(&target, 2);
        let best = truth.into_iter().find(|a| *a != at);
        if out.closest_replies.first().map(|r| r.from) == best {
            exact += 1;
        }
    }
    let t = net.wire.totals();
    println!(
        "netsim, {n} nodes, 5 % loss, 1 % duplication: true closest found {exact}/{queries}; \
         {} datagrams sent, {} lost, {} duplicated",
        t.sent, t.lost, t.duplicated
    );
    assert!(
        t.lost > 0 && t.duplicated > 0,
        "the impairments did not apply"
    );
    assert!(exact * 10 >= queries * 9, "only {exact}/{queries}");
}
