//! connect and listen against JS hyperdht 6.34.0 on a loopback JS testnet: a JS client
//! connects to a Rust server and a Rust client to a JS server, data goes both ways and both
//! ends close cleanly; a Rust client reaches a Rust server through the JS network; the Rust
//! server's firewall refuses one JS key.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::crypto::KeyPair;
use dht::hyperdht::HyperDhtConfig;
use dht::rpc::Config;
use dht::runtime::HyperDhtNode;
use interop_tests::{JsProcess, Testnet};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(30);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The next event named `name`, skipping others (they are checked by their own waits).
fn wait_event(js: &mut JsProcess, name: &str, pending: &mut Vec<Value>) -> Value {
    if let Some(i) = pending.iter().position(|v| v["event"] == name) {
        return pending.remove(i);
    }
    loop {
        let v = js.next_json(T).expect("a JS event in time");
        if v["event"] == name {
            return v;
        }
        assert_ne!(v["event"], "error", "JS peer failed: {v}");
        pending.push(v);
    }
}

async fn rust_node(bootstrap: SocketAddrV4) -> HyperDhtNode {
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![bootstrap],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let d = HyperDhtNode::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), config)
        .await
        .expect("bind");
    tokio::time::timeout(T, d.ready())
        .await
        .expect("bootstrapped in time")
        .expect("ready");
    d
}

#[test]
fn js_and_rust_connect_both_ways_on_a_js_testnet() {
    let net = Testnet::start(5).expect("JS testnet");
    let bport = net.bootstrap.port().to_string();
    let mut js = JsProcess::spawn("hyperdht-conn.js", &[&bport]).expect("JS peer");
    let mut pending = Vec::new();
    wait_event(&mut js, "ready", &mut pending);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server_kp = KeyPair::from_seed(&[0x11; 32]);
    let refused_seed = [0x22u8; 32];
    let refused = KeyPair::from_seed(&refused_seed).public_key;
    let (server_node, client_node) = rt.block_on(async {
        (
            rust_node(net.bootstrap).await,
            rust_node(net.bootstrap).await,
        )
    });
    let mut server = rt
        .block_on(async {
            tokio::time::timeout(
                T,
                server_node.listen(
                    &server_kp,
                    Some(Box::new(move |key, _payload, _from| *key == refused)),
                ),
            )
            .await
        })
        .expect("listen in time")
        .expect("listen");
    // The Rust server answers each connection with "rust got: " + what it read, then ends.
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    rt.spawn(async move {
        while let Some(mut conn) = server.accept().await {
            let tx = got_tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let r = conn.stream.read_to_end(&mut data).await;
                let mut reply = b"rust got: ".to_vec();
                reply.extend_from_slice(&data);
                let w = conn.stream.write_all(&reply).await;
                let s = conn.stream.shutdown().await;
                let _ = tx.send((
                    conn.remote_public_key,
                    data,
                    r.is_ok() && w.is_ok() && s.is_ok(),
                ));
            });
        }
    });

    // 1. JS client -> Rust server
    let js_client_seed = [0x33u8; 32];
    js.send_json(
        &json!({"cmd": "connect", "id": 1, "publicKey": hex(&server_kp.public_key),
        "seed": hex(&js_client_seed), "data": "hello from js"}),
    )
    .expect("send");
    let done = wait_event(&mut js, "client-done", &mut pending);
    assert_eq!(done["id"], 1);
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(done["received"], "rust got: hello from js");
    let (pk, data, clean) = rt
        .block_on(async { tokio::time::timeout(T, got_rx.recv()).await })
        .expect("server side in time")
        .expect("server side");
    assert_eq!(pk, KeyPair::from_seed(&js_client_seed).public_key);
    assert_eq!(data, b"hello from js");
    assert!(clean, "the Rust side read to the end and closed cleanly");

    // 2. Rust client -> JS server (echo)
    let js_server_seed = [0x44u8; 32];
    js.send_json(&json!({"cmd": "listen", "seed": hex(&js_server_seed)}))
        .expect("send");
    let l = wait_event(&mut js, "listening", &mut pending);
    let js_pk = KeyPair::from_seed(&js_server_seed).public_key;
    assert_eq!(l["publicKey"], hex(&js_pk));
    let echoed = rt.block_on(async {
        let mut conn = tokio::time::timeout(T, client_node.connect(js_pk))
            .await
            .expect("connect in time")
            .expect("connect to the JS server");
        assert_eq!(conn.remote_public_key, js_pk);
        conn.stream
            .write_all(b"hello from rust")
            .await
            .expect("write");
        conn.stream.shutdown().await.expect("end");
        let mut back = Vec::new();
        tokio::time::timeout(T, conn.stream.read_to_end(&mut back))
            .await
            .expect("echo in time")
            .expect("echo");
        back
    });
    assert_eq!(echoed, b"hello from rust");
    let closed = wait_event(&mut js, "server-closed", &mut pending);
    assert_eq!(closed["received"], "hello from rust");
    assert_eq!(
        closed["remotePublicKey"],
        hex(&client_node.default_key_pair().public_key)
    );

    // 3. Rust client -> Rust server through the JS network
    let (reply, (pk, data, clean)) = rt.block_on(async {
        let mut conn = tokio::time::timeout(T, client_node.connect(server_kp.public_key))
            .await
            .expect("connect in time")
            .expect("connect to the Rust server");
        conn.stream.write_all(b"rust to rust").await.expect("write");
        conn.stream.shutdown().await.expect("end");
        let mut back = Vec::new();
        conn.stream.read_to_end(&mut back).await.expect("reply");
        (back, got_rx.recv().await.expect("server side"))
    });
    assert_eq!(reply, b"rust got: rust to rust");
    assert_eq!(data, b"rust to rust");
    assert_eq!(pk, client_node.default_key_pair().public_key);
    assert!(clean);

    // 4. the Rust server's firewall refuses one JS key: no connection, the JS client fails
    js.send_json(
        &json!({"cmd": "connect", "id": 2, "publicKey": hex(&server_kp.public_key),
        "seed": hex(&refused_seed), "data": "let me in"}),
    )
    .expect("send");
    let done = wait_event(&mut js, "client-done", &mut pending);
    assert_eq!(done["id"], 2);
    assert_ne!(
        done["error"],
        Value::Null,
        "the refused key got an error: {done}"
    );
    let stats = rt
        .block_on(server_node.with(|d, _| d.servers().stats().clone()))
        .expect("stats");
    assert!(stats.firewalled >= 1, "{stats:?}");
    assert_eq!(stats.accepted, 2, "{stats:?}");
    assert!(
        got_rx.try_recv().is_err(),
        "no connection for the refused key"
    );

    rt.block_on(async {
        client_node.destroy().await;
        server_node.destroy().await;
    });
    drop(js);
    drop(net);
}

/// The same both ways on a Rust network (a Rust bootstrapper and Rust storage nodes): the JS
/// peer's handshakes are relayed by Rust routers and its server is announced to Rust stores.
#[test]
fn js_and_rust_connect_both_ways_on_a_rust_testnet() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (boot, storage, server_node, client_node) = rt.block_on(async {
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let boot = HyperDhtNode::bootstrapper(local, local, HyperDhtConfig::default())
            .await
            .expect("bootstrapper");
        boot.ready().await.expect("ready");
        let mut storage = Vec::new();
        for _ in 0..4 {
            let config = HyperDhtConfig {
                rpc: Config {
                    bootstrap: vec![boot.local_addr()],
                    ephemeral: Some(false),
                    ..Config::default()
                },
                ..HyperDhtConfig::default()
            };
            let d = HyperDhtNode::bind(local, config).await.expect("bind");
            tokio::time::timeout(T, d.ready())
                .await
                .expect("in time")
                .expect("ready");
            storage.push(d);
        }
        for d in &storage {
            let mut w = d.watch();
            tokio::time::timeout(T, w.wait_for(|s| s.id.is_some()))
                .await
                .expect("persistent in time")
                .expect("persistent");
        }
        let server_node = rust_node(boot.local_addr()).await;
        let client_node = rust_node(boot.local_addr()).await;
        (boot, storage, server_node, client_node)
    });
    let bport = boot.local_addr().port().to_string();
    let mut js = JsProcess::spawn("hyperdht-conn.js", &[&bport]).expect("JS peer");
    let mut pending = Vec::new();
    wait_event(&mut js, "ready", &mut pending);

    let server_kp = KeyPair::from_seed(&[0x55; 32]);
    let mut server = rt
        .block_on(async { tokio::time::timeout(T, server_node.listen(&server_kp, None)).await })
        .expect("listen in time")
        .expect("listen");
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    rt.spawn(async move {
        while let Some(mut conn) = server.accept().await {
            let tx = got_tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let r = conn.stream.read_to_end(&mut data).await;
                let w = conn.stream.write_all(&data).await;
                let s = conn.stream.shutdown().await;
                let _ = tx.send((data, r.is_ok() && w.is_ok() && s.is_ok()));
            });
        }
    });

    // JS client -> Rust server, relayed by Rust nodes
    js.send_json(
        &json!({"cmd": "connect", "id": 1, "publicKey": hex(&server_kp.public_key),
        "seed": hex(&[0x66u8; 32]), "data": "js over rust"}),
    )
    .expect("send");
    let done = wait_event(&mut js, "client-done", &mut pending);
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(done["received"], "js over rust");
    let (data, clean) = rt
        .block_on(async { tokio::time::timeout(T, got_rx.recv()).await })
        .expect("server side in time")
        .expect("server side");
    assert_eq!(data, b"js over rust");
    assert!(clean);

    // Rust client -> JS server, announced to Rust stores
    let js_seed = [0x77u8; 32];
    js.send_json(&json!({"cmd": "listen", "seed": hex(&js_seed)}))
        .expect("send");
    wait_event(&mut js, "listening", &mut pending);
    let js_pk = KeyPair::from_seed(&js_seed).public_key;
    let echoed = rt.block_on(async {
        let mut conn = tokio::time::timeout(T, client_node.connect(js_pk))
            .await
            .expect("connect in time")
            .expect("connect to the JS server");
        conn.stream
            .write_all(b"rust over rust")
            .await
            .expect("write");
        conn.stream.shutdown().await.expect("end");
        let mut back = Vec::new();
        tokio::time::timeout(T, conn.stream.read_to_end(&mut back))
            .await
            .expect("echo in time")
            .expect("echo");
        back
    });
    assert_eq!(echoed, b"rust over rust");
    let closed = wait_event(&mut js, "server-closed", &mut pending);
    assert_eq!(closed["received"], "rust over rust");

    drop(js);
    rt.block_on(async {
        for n in storage.iter().chain([&boot, &server_node, &client_node]) {
            n.destroy().await;
        }
    });
}
