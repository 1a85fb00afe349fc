//! Rust dht-rpc nodes join a JS hyperdht testnet on 127.0.0.1: they become persistent, appear in
//! the JS nodes' routing tables, answer JS's PING and FIND_NODE, and JS queries routed through
//! them complete with the Rust nodes counted among the closest replies.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dht::crypto::node_id;
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

fn ports(v: &Value) -> Vec<u16> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn rust_nodes_join_a_js_testnet_and_serve_js_queries() {
    let mut js = JsProcess::spawn("dht-net.js", &["5"]).expect("start JS testnet");
    let ready = js
        .next_json(Duration::from_secs(60))
        .expect("testnet ready");
    let bport = ready["bootstrap"]["port"].as_u64().expect("bootstrap port") as u16;
    let bootstrap = SocketAddrV4::new(Ipv4Addr::LOCALHOST, bport);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rust: Vec<Dht> = rt.block_on(common::persistent_rust_nodes(
        3,
        bootstrap,
        Duration::from_secs(30),
    ));
    for d in &rust {
        let s = d.status();
        assert_eq!(
            s.id,
            Some(node_id(&s.local_addr)),
            "Rust node {} is persistent",
            s.local_addr
        );
        assert!(!s.firewalled);
        assert!(s.table_len >= 3, "Rust node knows the JS nodes");
    }
    let rust_addrs: Vec<SocketAddrV4> = rust.iter().map(|d| d.local_addr()).collect();

    // 1. Rust nodes are in the JS nodes' routing tables (all but the ephemeral bootstrap node).
    //    JS adds a node to its table when it hears from it, which happens while the tables
    //    refresh: poll the tables until every Rust node is in at least 3 of them, or give up at
    //    the deadline and report what the tables held.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut round = 0u64;
    let holders = loop {
        round += 1;
        let tables = ask(&mut js, 1000 + round, json!({"cmd": "tables"}));
        let tables = tables["tables"].as_array().expect("tables").clone();
        let holders: Vec<(SocketAddrV4, usize, usize)> = rust_addrs
            .iter()
            .map(|a| {
                let n = tables
                    .iter()
                    .filter(|t| ports(&t["table"]).contains(&a.port()))
                    .count();
                (*a, n, tables.len())
            })
            .collect();
        if holders.iter().all(|(_, n, _)| *n >= 3) || std::time::Instant::now() >= deadline {
            break holders;
        }
        std::thread::sleep(Duration::from_millis(100)); // poll interval, not synchronisation
    };
    for (a, n, total) in &holders {
        eprintln!("Rust node {a} is in {n} of {total} JS routing tables");
        assert!(*n >= 3, "Rust node {a} is in only {n} JS tables after 30 s");
    }

    // 2. JS pings a Rust node and gets its id back.
    for (i, a) in rust_addrs.iter().enumerate() {
        let r = ask(
            &mut js,
            10 + i as u64,
            json!({"cmd": "ping", "from": 1, "host": "127.0.0.1", "port": a.port()}),
        );
        assert_eq!(r["ok"], json!(true), "ping {a}: {r}");
        assert_eq!(r["nodeId"], json!(hex::encode(node_id(a))));
    }

    // 3. JS FIND_NODE for each Rust node's id: the walk goes through our nodes and the Rust
    //    node itself is the closest reply.
    for (i, a) in rust_addrs.iter().enumerate() {
        let r = ask(
            &mut js,
            20 + i as u64,
            json!({"cmd": "findNode", "from": 2, "target": hex::encode(node_id(a))}),
        );
        let closest = r["closest"].as_array().expect("closest");
        assert!(!closest.is_empty(), "{r}");
        assert_eq!(
            closest[0]["port"].as_u64(),
            Some(u64::from(a.port())),
            "{r}"
        );
        let rust_in = closest
            .iter()
            .filter(|c| {
                rust_addrs
                    .iter()
                    .any(|a| Some(u64::from(a.port())) == c["port"].as_u64())
            })
            .count();
        assert_eq!(
            rust_in,
            rust_addrs.len(),
            "all Rust nodes among JS's closest replies"
        );
    }

    // 4. A JS query for a random target completes, with replies from Rust and JS nodes.
    let r = ask(
        &mut js,
        30,
        json!({"cmd": "findNode", "from": 3, "target": hex::encode([0x5a; 32])}),
    );
    assert!(r["closest"].as_array().is_some_and(|c| c.len() >= 6), "{r}");

    // 5. And the other way: a Rust FIND_NODE for a JS node's id finds it.
    let info = ask(&mut js, 40, json!({"cmd": "info"}));
    let js_node = &info["nodes"][2];
    let js_addr = SocketAddrV4::new(
        Ipv4Addr::LOCALHOST,
        js_node["port"].as_u64().unwrap() as u16,
    );
    let out = rt
        .block_on(rust[0].find_node(node_id(&js_addr)))
        .expect("Rust query");
    assert_eq!(out.closest_replies.first().map(|r| r.from), Some(js_addr));

    rt.block_on(async {
        for d in &rust {
            d.shutdown().await;
        }
    });
    assert!(js.finish(Duration::from_secs(10)));
}
