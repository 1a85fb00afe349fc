//! Live Rust HyperDHT networks over real UDP on 127.0.0.1, for the tokio tests.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::hyperdht::HyperDhtConfig;
use dht::rpc::Config;
use dht::runtime::HyperDhtNode;

/// How long one node may take to bootstrap or become persistent.
const READY: Duration = Duration::from_secs(30);

/// 127.0.0.1, any port.
pub fn local() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
}

/// A bootstrap node and `n` nodes bootstrapped from it, each waited on until it is persistent
/// (so every node stores records and relays).
pub async fn network(n: usize) -> (HyperDhtNode, Vec<HyperDhtNode>) {
    let boot = HyperDhtNode::bootstrapper(local(), local(), HyperDhtConfig::default())
        .await
        .unwrap();
    boot.ready().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..n {
        let config = HyperDhtConfig {
            rpc: Config {
                bootstrap: vec![boot.local_addr()],
                ephemeral: Some(false),
                ..Config::default()
            },
            ..HyperDhtConfig::default()
        };
        let d = HyperDhtNode::bind(local(), config).await.unwrap();
        tokio::time::timeout(READY, d.ready())
            .await
            .unwrap()
            .unwrap();
        nodes.push(d);
    }
    for d in &nodes {
        let mut w = d.watch();
        tokio::time::timeout(READY, w.wait_for(|s| s.id.is_some()))
            .await
            .unwrap()
            .unwrap();
    }
    (boot, nodes)
}
