//! A Rust node with default options (adaptive, firewalled until checked) joins a JS testnet:
//! its quick PING_NAT firewall check passes against JS, it stays ephemeral (so it never enters
//! JS routing tables, as a JS node would not in its first 20 minutes), and its queries work.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::crypto::node_id;
use dht::rpc::Config;
use dht::runtime::Dht;
use interop_tests::JsProcess;
use serde_json::json;

#[test]
fn default_rust_node_is_an_ephemeral_client_of_a_js_testnet() {
    let mut js = JsProcess::spawn("dht-net.js", &["5"]).expect("start JS testnet");
    let ready = js
        .next_json(Duration::from_secs(60))
        .expect("testnet ready");
    let bport = ready["bootstrap"]["port"].as_u64().expect("port") as u16;
    let nodes = ready["nodes"].as_array().expect("nodes").clone();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let d = rt.block_on(async {
        let config = Config {
            bootstrap: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, bport)],
            ..Config::default()
        };
        let d = Dht::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), config)
            .await
            .expect("bind");
        tokio::time::timeout(Duration::from_secs(30), d.ready())
            .await
            .expect("in time")
            .expect("ready");
        d
    });
    // the quick firewall check (PING_NAT to the first replier) and the follow-up check against
    // the 5 most recent nodes both ran against JS nodes
    let s = d.status();
    assert!(!s.firewalled, "JS nodes answered our PING_NAT on our port");
    assert_eq!(
        s.id, None,
        "adaptive nodes stay ephemeral until STABLE_TICKS"
    );
    assert!(
        s.table_len >= 4,
        "the ephemeral node still fills its own table"
    );

    js.send_json(&json!({"id": 1, "cmd": "tables"}))
        .expect("ask");
    let t = js.next_json(Duration::from_secs(30)).expect("tables");
    for n in t["tables"].as_array().expect("tables") {
        let ports: Vec<u64> = n["table"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_u64())
            .collect();
        assert!(
            !ports.contains(&u64::from(s.local_addr.port())),
            "ephemeral node in a JS table"
        );
    }

    let target_port = nodes[3]["port"].as_u64().unwrap() as u16;
    let target_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, target_port);
    let out = rt
        .block_on(d.find_node(node_id(&target_addr)))
        .expect("query");
    assert_eq!(
        out.closest_replies.first().map(|r| r.from),
        Some(target_addr)
    );
    assert!(
        out.closest_replies
            .iter()
            .all(|r| r.from_id == Some(node_id(&r.from)))
    );
    rt.block_on(d.shutdown());
    js.finish(Duration::from_secs(10));
}
