//! The tokio HyperDHT handle over real UDP on 127.0.0.1: Rust storage nodes, announce → lookup
//! finds the record, unannounce removes it, mutable and immutable put/get, and tampered
//! replies from a forging node refused.
#![cfg(feature = "tokio")]
// A forging node needs a plain UDP socket of its own.
#![allow(clippy::disallowed_types)]

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use dht::codec::{Decode, Encode};
use dht::crypto::{KeyPair, hash, node_id, sign_mutable};
use dht::hyperdht::messages::MutableGetResponse;
use dht::hyperdht::{Command, HyperDhtConfig, OpError};
use dht::rpc::Config;
use dht::rpc::wire::{Message, Response};
use dht::runtime::{DhtError, HyperDhtNode};

mod common;
use common::live::{local, network};

const T: Duration = Duration::from_secs(30);

async fn keys_found(d: &HyperDhtNode, topic: [u8; 32]) -> Vec<[u8; 32]> {
    let replies = tokio::time::timeout(T, d.lookup(topic).await.unwrap().collect())
        .await
        .unwrap()
        .unwrap();
    let mut keys: Vec<[u8; 32]> = replies
        .iter()
        .flat_map(|r| r.peers.iter().map(|p| p.public_key))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_lookup_unannounce_and_values_over_udp() {
    let (boot, nodes) = network(6).await;
    let topic = hash(b"a topic");
    let kp = KeyPair::from_seed(&[1; 32]);
    let relay = nodes[0].local_addr();
    let c = nodes[0].announce(topic, &kp, &[relay]).await.unwrap();
    assert!(c.answered >= 5, "{c:?}");
    assert_eq!(keys_found(&nodes[4], topic).await, vec![kp.public_key]);

    let c = nodes[0].unannounce(topic, &kp).await.unwrap();
    assert!(c.answered >= 5, "{c:?}");
    assert!(keys_found(&nodes[5], topic).await.is_empty());

    // mutable: put, get, a refused lower seq, a higher seq wins
    let mk = KeyPair::from_seed(&[2; 32]);
    let put = nodes[1].mutable_put(&mk, b"v1", 1).await.unwrap();
    assert!(put.committed.answered >= 5 && put.committed.refused.is_empty());
    let got = nodes[3].mutable_get(mk.public_key, 0, true).await.unwrap();
    assert_eq!((got.seq, got.value.as_slice()), (1, &b"v1"[..]));
    let low = nodes[1].mutable_put(&mk, b"v0", 0).await.unwrap();
    assert!(
        low.committed.refused.iter().all(|(_, e)| *e == 17) && !low.committed.refused.is_empty()
    );
    nodes[1].mutable_put(&mk, b"v2", 2).await.unwrap();
    let got = nodes[2].mutable_get(mk.public_key, 0, true).await.unwrap();
    assert_eq!((got.seq, got.value.as_slice()), (2, &b"v2"[..]));

    // immutable
    let (h, c) = nodes[2].immutable_put(b"frozen").await.unwrap();
    assert_eq!(h, hash(b"frozen"));
    assert!(c.answered >= 5);
    let got = nodes[5].immutable_get(h).await.unwrap();
    assert_eq!(got.value, b"frozen");
    assert!(matches!(
        nodes[5].immutable_get([3; 32]).await,
        Err(DhtError::Op(OpError::NotFound))
    ));

    // find_peer of a key announced under its own hash
    let server = KeyPair::from_seed(&[4; 32]);
    nodes[3]
        .announce(hash(&server.public_key), &server, &[nodes[3].local_addr()])
        .await
        .unwrap();
    let p = nodes[4].find_peer(server.public_key).await.unwrap();
    assert_eq!(p.peer.public_key, server.public_key);
    assert_eq!(p.peer.relay_addresses, vec![nodes[3].local_addr()]);

    let pong = nodes[2].ping(boot.local_addr()).await.unwrap();
    assert_eq!(pong.from_id, Some(node_id(&boot.local_addr())));

    let st = boot.stats().await.unwrap();
    assert!(st.store.is_some(), "the bootstrapper is a storage node");

    // destroy: further operations fail with Destroyed or Shutdown, never hang
    nodes[0].destroy().await;
    let r = nodes[0].immutable_get(h).await;
    assert!(
        matches!(
            r,
            Err(DhtError::Shutdown | DhtError::Op(OpError::Destroyed))
        ),
        "{r:?}"
    );
}

/// A node that answers every request as a persistent storage node would, except that
/// MUTABLE_GET and IMMUTABLE_GET get forged values.
async fn forger() -> SocketAddrV4 {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(me) = sock.local_addr().unwrap() else {
        unreachable!()
    };
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let wrong = KeyPair::from_seed(&[66; 32]);
        loop {
            let Ok((n, SocketAddr::V4(from))) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(Message::Request(req)) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            let value = match (req.internal, Command::from_u64(req.command)) {
                (false, Some(Command::MutableGet)) => Some(
                    MutableGetResponse {
                        seq: 9,
                        value: b"forged".to_vec(),
                        // signed by another key than the one asked for
                        signature: sign_mutable(&wrong, 9, b"forged"),
                    }
                    .to_bytes(),
                ),
                (false, Some(Command::ImmutableGet)) => Some(b"not the preimage".to_vec()),
                _ => None,
            };
            let res = Response {
                tid: req.tid,
                to: from,
                id: Some(node_id(&me)),
                token: Some([5; 32]),
                closer_nodes: Vec::new(),
                error: 0,
                value,
            };
            let _ = sock.send_to(&res.to_bytes(), from).await;
        }
    });
    me
}

#[tokio::test]
async fn tampered_values_in_replies_are_refused_and_counted() {
    let fake = forger().await;
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![fake],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let d = HyperDhtNode::bind(local(), config).await.unwrap();
    tokio::time::timeout(T, d.ready()).await.unwrap().unwrap();
    let kp = KeyPair::from_seed(&[7; 32]);
    let r = tokio::time::timeout(T, d.mutable_get(kp.public_key, 0, true))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(DhtError::Op(OpError::BadSignature { refused: 1 }))),
        "{r:?}"
    );
    let r = tokio::time::timeout(T, d.immutable_get(hash(b"x")))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(DhtError::Op(OpError::BadValue { refused: 1 }))),
        "{r:?}"
    );
    let st = d.stats().await.unwrap();
    assert_eq!((st.stats.bad_signatures, st.stats.bad_values), (1, 1));
}

#[tokio::test]
async fn dropping_a_lookup_cancels_its_walk() {
    // a node whose only contact never answers: its walk would run for seconds
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(silent_addr) = silent.local_addr().unwrap() else {
        unreachable!()
    };
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![silent_addr],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let d = HyperDhtNode::bind(local(), config).await.unwrap();
    let l = d.lookup(hash(b"dropped")).await.unwrap();
    assert_eq!(d.with(|dht, _| dht.running_ops()).await.unwrap(), 1);
    drop(l);
    // the cancel was queued before this call, and calls run in order
    assert_eq!(d.with(|dht, _| dht.running_ops()).await.unwrap(), 0);
}
