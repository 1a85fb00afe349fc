//! JS probes a network made only of Rust nodes: dht-rpc's own firewall check (PING_NAT to the
//! five most recent nodes) passes against Rust nodes, DELAYED_PING is answered after the delay,
//! and an unknown user command gets UNKNOWN_COMMAND with closer nodes and no token.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::rpc::Config;
use dht::runtime::Dht;
use interop_tests::JsProcess;
use serde_json::{Value, json};

fn ask(js: &mut JsProcess, id: u64, mut cmd: Value) -> Value {
    cmd["id"] = json!(id);
    js.send_json(&cmd).expect("send to JS");
    loop {
        let v = js.next_json(Duration::from_secs(60)).expect("JS answer");
        if v["id"] == json!(id) {
            return v;
        }
    }
}

#[test]
fn js_probes_answered_by_rust_nodes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let (boot, nodes) = rt.block_on(async {
        let boot = Dht::bootstrapper(local, local, Config::default())
            .await
            .expect("bind");
        boot.ready().await.expect("ready");
        let nodes =
            common::persistent_rust_nodes(6, boot.local_addr(), Duration::from_secs(60)).await;
        (boot, nodes)
    });
    let mut js =
        JsProcess::spawn("dht-probe.js", &[&boot.local_addr().to_string()]).expect("probe");
    let ready = js.next_json(Duration::from_secs(60)).expect("probe ready");
    let table = ready["table"].as_array().map_or(0, |t| t.len());
    assert!(table >= 5, "the JS node learnt the Rust network: {ready}");

    let r = ask(&mut js, 1, json!({"cmd": "checkFirewall"}));
    assert_eq!(
        r["firewalled"],
        json!(false),
        "Rust nodes answered PING_NAT on the JS port: {r}"
    );

    let target = nodes[2].local_addr();
    let r = ask(
        &mut js,
        2,
        json!({"cmd": "delayedPing", "host": "127.0.0.1", "port": target.port(), "ms": 600}),
    );
    assert_eq!(r["ok"], json!(true), "{r}");
    assert!(r["elapsed"].as_u64().unwrap_or(0) >= 590, "{r}");

    let r = ask(
        &mut js,
        3,
        json!({"cmd": "request", "host": "127.0.0.1", "port": target.port(), "command": 99, "target": hex::encode([3u8; 32])}),
    );
    assert_eq!(r["error"], json!(1), "UNKNOWN_COMMAND: {r}");
    assert!(r["closer"].as_u64().unwrap_or(0) >= 5, "{r}");
    assert_eq!(r["token"], json!(false));

    js.finish(Duration::from_secs(10));
    rt.block_on(async {
        for d in nodes.iter().chain([&boot]) {
            d.shutdown().await;
        }
    });
}
