//! Helpers shared by the DHT interop tests.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::rpc::Config;
use dht::runtime::Dht;

/// Binds `n` Rust DHT nodes on 127.0.0.1 that bootstrap from `bootstrap` and become persistent
/// at once (`ephemeral: false`), then waits up to `timeout` for each to finish bootstrapping.
pub(crate) async fn persistent_rust_nodes(
    n: usize,
    bootstrap: SocketAddrV4,
    timeout: Duration,
) -> Vec<Dht> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let config = Config {
            bootstrap: vec![bootstrap],
            ephemeral: Some(false),
            ..Config::default()
        };
        let d = Dht::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), config)
            .await
            .expect("bind");
        nodes.push(d);
    }
    for d in &nodes {
        tokio::time::timeout(timeout, d.ready())
            .await
            .expect("bootstrapped in time")
            .expect("ready");
    }
    nodes
}
