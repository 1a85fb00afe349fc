//! The HyperDHT layer on a simulated network of `HyperDht` nodes (netsim, virtual time): the
//! storage commands answered as `hyperdht/index.js` answers them, and every client operation
//! (`lookup`, `announce`, `unannounce`, `findPeer`, `mutablePut/Get`, `immutablePut/Get`).

mod common;

use std::net::SocketAddrV4;
use std::time::Duration;

use common::addr_of;
use common::hyper::HyperNet;
use dht::crypto::{KeyPair, hash};
use dht::hyperdht::{Command, HyperEvent, OpError, OpOutcome};
use dht::rpc::{Event, RequestOpts};

const T: Duration = Duration::from_secs(60);

fn peers_of(events: &[HyperEvent]) -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = events
        .iter()
        .filter_map(|e| match e {
            HyperEvent::LookupReply { reply, .. } => Some(reply.peers.iter().map(|p| p.public_key)),
            _ => None,
        })
        .flatten()
        .collect();
    v.sort();
    v.dedup();
    v
}

fn lookup(net: &mut HyperNet, at: SocketAddrV4, topic: [u8; 32]) -> Vec<[u8; 32]> {
    let op = net.with(at, |d, now| d.lookup(now, topic));
    let r = net.wait(at, op, T);
    assert!(matches!(r, Ok(OpOutcome::Lookup(_))), "{r:?}");
    peers_of(&net.take_events(at, op))
}

#[test]
fn persistent_nodes_become_storage_nodes_and_ephemeral_ones_answer_unknown_command() {
    let (mut net, addrs) = HyperNet::network(1, 12);
    for a in &addrs {
        assert!(net.nodes[a].is_storage_node(), "{a} has no store");
    }
    let boot = addr_of(0);
    assert!(
        net.nodes[&boot].is_storage_node(),
        "a bootstrapper stores too"
    );
    let eph = addr_of(100);
    net.add_node(eph, vec![boot], false);
    net.run_for(Duration::from_secs(10));
    assert!(!net.nodes[&eph].is_storage_node());
    // a LOOKUP to the ephemeral node: UNKNOWN_COMMAND (1), as JS's `onrequest` returning false
    let from = addrs[0];
    let opts = RequestOpts {
        target: Some([7; 32]),
        ..RequestOpts::user(Command::Lookup.to_u64())
    };
    let req = net.with(from, |d, now| d.rpc_mut().request(now, eph, opts));
    net.run_for(Duration::from_secs(2));
    let reply = net
        .events
        .iter()
        .find_map(|(a, e)| match e {
            HyperEvent::Rpc(Event::Response { request, result })
                if *a == from && *request == req =>
            {
                Some(result.clone())
            }
            _ => None,
        })
        .expect("a response")
        .expect("answered");
    assert_eq!(reply.error, 1);
    assert_eq!(net.nodes[&eph].stats().not_persistent, 1);
}

#[test]
fn announce_then_lookup_finds_the_record_and_unannounce_removes_it() {
    let (mut net, addrs) = HyperNet::network(2, 30);
    let topic = [0x42; 32];
    let kp = KeyPair::from_seed(&[5; 32]);
    let announcer = addrs[3];
    let op = net.with(announcer, |d, now| {
        d.announce(now, topic, &kp, &[announcer])
    });
    let Ok(OpOutcome::Announce(c)) = net.wait(announcer, op, T) else {
        panic!("announce failed");
    };
    assert!(c.answered >= 10, "{c:?}");
    assert_eq!(c.answered, c.closest_nodes.len());
    assert!(c.refused.is_empty());

    for at in [addrs[10], addrs[20], addr_of(0)] {
        assert_eq!(
            lookup(&mut net, at, topic),
            vec![kp.public_key],
            "lookup from {at}"
        );
    }
    // the records carry the relay address the announcer gave
    let op = net.with(addrs[7], |d, now| d.lookup(now, topic));
    net.wait(addrs[7], op, T).expect("lookup");
    let ev = net.take_events(addrs[7], op);
    assert!(ev.iter().any(|e| matches!(e,
        HyperEvent::LookupReply { reply, .. }
            if reply.peers.iter().any(|p| p.relay_addresses == vec![announcer]))));

    let op = net.with(announcer, |d, now| d.unannounce(now, topic, &kp));
    let Ok(OpOutcome::Unannounce(c)) = net.wait(announcer, op, T) else {
        panic!("unannounce failed");
    };
    assert!(c.answered >= 10, "{c:?}");
    assert!(lookup(&mut net, addrs[12], topic).is_empty());
}

#[test]
fn announcing_a_key_under_its_own_hash_makes_a_router_forward_found_by_find_peer() {
    let (mut net, addrs) = HyperNet::network(3, 25);
    let kp = KeyPair::from_seed(&[9; 32]);
    let server = addrs[5];
    let relay_hint = addrs[6];
    let target = hash(&kp.public_key);
    let op = net.with(server, |d, now| d.announce(now, target, &kp, &[relay_hint]));
    net.wait(server, op, T).expect("announce");
    let forwards: usize = net.nodes.values().map(|d| d.router().len()).sum();
    assert!(forwards >= 10, "{forwards} forwards");

    let client = addrs[15];
    let op = net.with(client, |d, now| d.find_peer(now, &kp.public_key));
    assert!(matches!(net.wait(client, op, T), Ok(OpOutcome::FindPeer(s)) if s.found >= 10));
    let ev = net.take_events(client, op);
    for e in &ev {
        let HyperEvent::PeerFound { reply, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(reply.peer.public_key, kp.public_key);
        assert_eq!(reply.peer.relay_addresses, vec![relay_hint]);
    }
    // a lookup of the key's hash returns the router's record too
    assert_eq!(lookup(&mut net, client, target), vec![kp.public_key]);

    // an unknown key: not found
    let op = net.with(client, |d, now| d.find_peer(now, &[1; 32]));
    assert_eq!(net.wait(client, op, T), Err(OpError::NotFound));
}

#[test]
fn mutable_put_and_get_follow_the_seq_rules() {
    let (mut net, addrs) = HyperNet::network(4, 25);
    let kp = KeyPair::from_seed(&[3; 32]);
    let (w, r) = (addrs[2], addrs[17]);
    let put = |net: &mut HyperNet, v: &'static [u8], seq| {
        let op = net.with(w, |d, now| d.mutable_put(now, &kp, v, seq));
        match net.wait(w, op, T) {
            Ok(OpOutcome::MutablePut {
                committed, seq: s, ..
            }) => {
                assert_eq!(s, seq);
                committed
            }
            other => panic!("{other:?}"),
        }
    };
    let c = put(&mut net, b"one", 1);
    assert!(c.answered >= 10 && c.refused.is_empty(), "{c:?}");
    let get = |net: &mut HyperNet, seq, latest| {
        let op = net.with(r, |d, now| d.mutable_get(now, &kp.public_key, seq, latest));
        net.wait(r, op, T)
    };
    let Ok(OpOutcome::MutableGet(v)) = get(&mut net, 0, true) else {
        panic!("not found")
    };
    assert_eq!((v.seq, v.value.as_slice()), (1, &b"one"[..]));

    // same seq, other value: SEQ_REUSED (16) from every node holding it
    let c = put(&mut net, b"uno", 1);
    assert!(
        !c.refused.is_empty() && c.refused.iter().all(|(_, e)| *e == 16),
        "{c:?}"
    );
    // lower seq: SEQ_TOO_LOW (17)
    let c = put(&mut net, b"zero", 0);
    assert!(
        !c.refused.is_empty() && c.refused.iter().all(|(_, e)| *e == 17),
        "{c:?}"
    );
    // a higher seq replaces it
    let c = put(&mut net, b"two", 2);
    assert!(c.refused.is_empty(), "{c:?}");
    let Ok(OpOutcome::MutableGet(v)) = get(&mut net, 0, true) else {
        panic!("not found")
    };
    assert_eq!((v.seq, v.value.as_slice()), (2, &b"two"[..]));
    // asking for a seq above the stored one finds nothing
    assert_eq!(get(&mut net, 3, true), Err(OpError::NotFound));
    // `latest: false` stops at the first valid value
    assert!(matches!(get(&mut net, 0, false), Ok(OpOutcome::MutableGet(v)) if v.seq == 2));
    // an unknown key
    let op = net.with(r, |d, now| d.mutable_get(now, &[8; 32], 0, true));
    assert_eq!(net.wait(r, op, T), Err(OpError::NotFound));
}

#[test]
fn immutable_put_and_get_by_hash() {
    let (mut net, addrs) = HyperNet::network(5, 25);
    let value = b"an immutable value".to_vec();
    let op = net.with(addrs[1], |d, now| d.immutable_put(now, &value));
    let Ok(OpOutcome::ImmutablePut { hash: h, committed }) = net.wait(addrs[1], op, T) else {
        panic!("put failed")
    };
    assert_eq!(h, hash(&value));
    assert!(committed.answered >= 10);
    let op = net.with(addrs[20], |d, now| d.immutable_get(now, h));
    let Ok(OpOutcome::ImmutableGet(v)) = net.wait(addrs[20], op, T) else {
        panic!("get failed")
    };
    assert_eq!(v.value, value);
    let op = net.with(addrs[20], |d, now| d.immutable_get(now, [0xee; 32]));
    assert_eq!(net.wait(addrs[20], op, T), Err(OpError::NotFound));
}

#[test]
fn destroy_ends_running_operations_and_refuses_new_ones() {
    let (mut net, addrs) = HyperNet::network(6, 10);
    let at = addrs[0];
    let op = net.with(at, |d, now| d.lookup(now, [1; 32]));
    net.with(at, |d, now| d.destroy(now));
    assert_eq!(net.wait(at, op, T), Err(OpError::Destroyed));
    let op = net.with(at, |d, now| d.immutable_get(now, [1; 32]));
    assert_eq!(net.wait(at, op, T), Err(OpError::Destroyed));
    assert_eq!(net.nodes[&at].running_ops(), 0);
}

#[test]
fn unannounce_reaches_only_the_nodes_that_hold_the_record() {
    let (mut net, addrs) = HyperNet::network(7, 30);
    let topic = [0x17; 32];
    let (kp, other) = (KeyPair::from_seed(&[1; 32]), KeyPair::from_seed(&[2; 32]));
    let op = net.with(addrs[1], |d, now| d.announce(now, topic, &other, &[]));
    net.wait(addrs[1], op, T).expect("announce");
    // our key was never announced: no node holds it, so no UNANNOUNCE is sent
    let op = net.with(addrs[2], |d, now| d.unannounce(now, topic, &kp));
    let Ok(OpOutcome::Unannounce(c)) = net.wait(addrs[2], op, T) else {
        panic!("unannounce failed");
    };
    assert_eq!((c.answered, c.failed), (0, 0), "{c:?}");
    assert!(!c.closest_nodes.is_empty());
    // and the other key's record stays
    assert_eq!(lookup(&mut net, addrs[9], topic), vec![other.public_key]);
}

#[test]
fn topics_announced_from_random_nodes_are_found_from_other_random_nodes() {
    let (mut net, addrs) = HyperNet::network(8, 150);
    let topics = 40;
    let mut announced = Vec::new();
    for i in 0..topics {
        let topic = net.rng.bytes32();
        let kp = KeyPair::from_seed(&net.rng.bytes32());
        let at = addrs[net.rng.below(addrs.len() as u64) as usize];
        let op = net.with(at, |d, now| d.announce(now, topic, &kp, &[at]));
        assert!(net.wait(at, op, T).is_ok(), "announce {i}");
        announced.push((topic, kp.public_key));
    }
    let mut found = 0;
    for (topic, key) in &announced {
        let at = addrs[net.rng.below(addrs.len() as u64) as usize];
        if lookup(&mut net, at, *topic).contains(key) {
            found += 1;
        }
    }
    assert_eq!(
        found, topics,
        "lookups found {found} of {topics} announcers"
    );
}
