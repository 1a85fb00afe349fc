//! A JS network whose only bootstrap node is a Rust bootstrap node forms, and two JS
//! hyperswarm peers on it find each other by topic and exchange data.
//!
//! The Rust bootstrap node is persistent (as `DHT.bootstrapper` is in JS), so JS nodes put it
//! in their tables and may pick it as a closest node for hyperdht storage commands, which it
//! answers with UNKNOWN_COMMAND (it implements dht-rpc only). JS excludes error replies from
//! `closestReplies`, so announces and lookups are stored on the JS nodes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::rpc::Config;
use dht::runtime::Dht;
use interop_tests::JsProcess;
use serde_json::json;

#[test]
fn js_testnet_and_hyperswarm_peers_on_a_rust_bootstrap_node() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let boot = rt.block_on(async {
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let d = Dht::bootstrapper(a, a, Config::default())
            .await
            .expect("bind");
        d.ready().await.expect("ready");
        d
    });
    let baddr = boot.local_addr();
    assert!(
        boot.status().id.is_some(),
        "a bootstrapper is persistent at once"
    );

    // createTestnet(6, { bootstrap: [rust] }): every JS node is persistent and uses only us.
    let mut net = JsProcess::spawn("dht-net.js", &["6", &baddr.to_string()]).expect("testnet");
    let ready = net
        .next_json(Duration::from_secs(90))
        .expect("testnet formed");
    let nodes = ready["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 6);
    assert!(
        nodes.iter().all(|n| n["id"].is_string()),
        "all JS nodes became persistent through the Rust bootstrap node: {ready}"
    );
    let table = rt.block_on(boot.to_array()).expect("table");
    assert_eq!(
        table.len(),
        6,
        "the Rust bootstrap node knows every JS node"
    );

    // The JS nodes found each other through us.
    net.send_json(&json!({"id": 1, "cmd": "tables"}))
        .expect("ask");
    let t = net.next_json(Duration::from_secs(30)).expect("tables");
    for n in t["tables"].as_array().expect("tables") {
        let len = n["table"].as_array().map_or(0, |a| a.len());
        assert!(len >= 5, "JS node {} knows only {len} nodes", n["port"]);
    }

    let mut swarm = JsProcess::spawn("dht-swarm.js", &[&baddr.to_string()]).expect("swarm");
    let mut last = json!(null);
    for _ in 0..3 {
        last = swarm
            .next_json(Duration::from_secs(90))
            .expect("swarm output");
        if last.get("ok").is_some() {
            break;
        }
    }
    eprintln!("hyperswarm result: {last}");
    assert_eq!(last["ok"], json!(true), "{last}");
    assert_eq!(last["a"], json!("from-b"));
    assert_eq!(last["b"], json!("from-a"));

    swarm.finish(Duration::from_secs(10));
    net.finish(Duration::from_secs(10));
    rt.block_on(boot.shutdown());
}
