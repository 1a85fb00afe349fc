//! connect and listen between Rust nodes over real UDP on 127.0.0.1: a server announces its
//! key, a client finds it with FIND_PEER, the handshake goes through the relay, and the
//! encrypted UDX stream carries data both ways and closes cleanly; a firewall refuses one key.
#![cfg(feature = "tokio")]

use std::time::Duration;

use dht::crypto::KeyPair;
use dht::hyperdht::HyperDhtConfig;
use dht::hyperdht::connect::ConnectError;
use dht::rpc::Config;
use dht::runtime::HyperDhtNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::live::{local, network};

const T: Duration = Duration::from_secs(30);

async fn client(boot: &HyperDhtNode) -> HyperDhtNode {
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![boot.local_addr()],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let d = HyperDhtNode::bind(local(), config).await.unwrap();
    tokio::time::timeout(T, d.ready()).await.unwrap().unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_connects_to_rust_server_data_both_ways_and_clean_close() {
    let (boot, nodes) = network(4).await;
    let server_node = client(&boot).await;
    let server_kp = KeyPair::from_seed(&[7; 32]);
    let refused = KeyPair::from_seed(&[9; 32]).public_key;
    let mut server = tokio::time::timeout(
        T,
        server_node.listen(
            &server_kp,
            Some(Box::new(move |key, _payload, _from| *key == refused)),
        ),
    )
    .await
    .unwrap()
    .unwrap();

    let c = client(&boot).await;
    let mut conn = tokio::time::timeout(T, c.connect(server_kp.public_key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.remote_public_key, server_kp.public_key);
    let mut inbound = tokio::time::timeout(T, server.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbound.remote_public_key, c.default_key_pair().public_key);
    assert_eq!(inbound.handshake_hash, conn.handshake_hash);

    conn.stream.write_all(b"hello server").await.unwrap();
    conn.stream.flush().await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(T, inbound.stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello server");
    inbound.stream.write_all(b"hello client").await.unwrap();
    inbound.stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(T, conn.stream.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"hello client");
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(T, inbound.stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());

    // the firewalled key gets no answer: the request times out into PEER_CONNECTION_FAILED
    let bad = KeyPair::from_seed(&[9; 32]);
    let r = tokio::time::timeout(T, c.connect_with(&bad, server_kp.public_key, &[]))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(ConnectError::PeerConnectionFailed)),
        "{r:?}"
    );

    // an unknown key is not found
    let r = tokio::time::timeout(T, c.connect(KeyPair::from_seed(&[3; 32]).public_key))
        .await
        .unwrap();
    assert!(matches!(r, Err(ConnectError::PeerNotFound)), "{r:?}");

    server.close().await;
    for n in nodes.iter().chain([&boot, &c, &server_node]) {
        n.destroy().await;
    }
}
