//! The tokio driver over real UDP on 127.0.0.1: a bootstrap node and three persistent nodes,
//! FIND_NODE, PING, and the user-command hook answered by the application.
#![cfg(feature = "tokio")]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::crypto::node_id;
use dht::rpc::wire::errors::UNKNOWN_COMMAND;
use dht::rpc::{Config, ReplyOpts, RequestOpts};
use dht::runtime::Dht;

fn local() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
}

#[tokio::test]
async fn nodes_over_udp_find_each_other_and_serve_user_commands() {
    let boot = Dht::bootstrapper(local(), local(), Config::default())
        .await
        .unwrap();
    boot.ready().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let c = Config {
            bootstrap: vec![boot.local_addr()],
            ephemeral: Some(false),
            ..Config::default()
        };
        let d = Dht::bind(local(), c).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), d.ready())
            .await
            .unwrap()
            .unwrap();
        nodes.push(d);
    }
    for d in &nodes {
        assert_eq!(d.status().id, Some(node_id(&d.local_addr())));
    }
    let target = node_id(&nodes[2].local_addr());
    let out = nodes[0].find_node(target).await.unwrap();
    assert_eq!(
        out.closest_replies.first().map(|r| r.from),
        Some(nodes[2].local_addr())
    );

    let pong = nodes[1].ping(boot.local_addr()).await.unwrap();
    assert_eq!(pong.from_id, Some(node_id(&boot.local_addr())));
    assert_eq!(pong.to, nodes[1].local_addr());

    // user command 42: unknown until registered, then answered by the application
    let user_42 = RequestOpts {
        target: Some([7; 32]),
        value: Some(b"q".to_vec()),
        ..RequestOpts::user(42)
    };
    let r = nodes[0]
        .request(nodes[1].local_addr(), user_42.clone())
        .await
        .unwrap();
    assert_eq!(r.error, UNKNOWN_COMMAND);
    assert!(!r.closer_nodes.is_empty());
    nodes[1].register_command(42).await.unwrap();
    let server = nodes[1].clone();
    let handler = tokio::spawn(async move {
        let req = server.next_request().await.unwrap();
        assert_eq!(req.value.as_deref(), Some(&b"q"[..]));
        server
            .reply(
                req,
                ReplyOpts {
                    closer_nodes: false,
                    ..ReplyOpts::value(Some(b"a".to_vec()))
                },
            )
            .await
            .unwrap();
    });
    let r = nodes[0]
        .request(nodes[1].local_addr(), user_42.clone())
        .await
        .unwrap();
    handler.await.unwrap();
    assert_eq!((r.error, r.value.as_deref()), (0, Some(&b"a"[..])));
    assert!(r.token.is_some());
    for d in nodes.iter().chain([&boot]) {
        d.shutdown().await;
    }
}

#[tokio::test]
async fn udx_streams_share_the_dht_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let boot = Dht::bootstrapper(local(), local(), Config::default())
        .await
        .unwrap();
    boot.ready().await.unwrap();
    let c = Config {
        bootstrap: vec![boot.local_addr()],
        ephemeral: Some(false),
        ..Config::default()
    };
    let node = Dht::bind(local(), c).await.unwrap();
    node.ready().await.unwrap();
    let (a, b) = (boot.udx_socket().unwrap(), node.udx_socket().unwrap());
    let sa = a.create_stream(1).unwrap();
    let sb = b.create_stream(2).unwrap();
    sa.connect(2, std::net::SocketAddr::V4(node.local_addr()))
        .unwrap();
    sb.connect(1, std::net::SocketAddr::V4(boot.local_addr()))
        .unwrap();
    let mut sa = sa;
    let mut sb = sb;
    sa.write_all(b"stream bytes on the DHT port").await.unwrap();
    let mut buf = [0u8; 28];
    sb.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"stream bytes on the DHT port");
    // and the DHT still answers on the same port
    let pong = node.ping(boot.local_addr()).await.unwrap();
    assert_eq!(pong.from_id, Some(node_id(&boot.local_addr())));
    node.shutdown().await;
    boot.shutdown().await;
}
