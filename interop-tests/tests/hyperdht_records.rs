//! HyperDHT records across languages, live on 127.0.0.1: JS announces and Rust looks up; Rust
//! announces and JS finds it with `dht.lookup` and with hyperswarm's peer discovery; mutable
//! and immutable values put from one language are got from the other with the same bytes and
//! signatures; a tampered announce (signed by JS) and a tampered mutable put (signed by Rust)
//! are refused by every storage node, JS or Rust.
//!
//! The same scenario runs on three networks: a JS testnet (`hyperdht/testnet`), a network
//! whose storage nodes are all Rust (`HyperDht` nodes, a Rust bootstrapper), where two JS
//! hyperswarm peers also find each other by topic and exchange a message, and a network of
//! 20 JS and 20 Rust storage nodes (100 and 100 in an `#[ignore]`d variant:
//! `cargo nextest run -p interop-tests --test hyperdht_records --run-ignored only`).
//!
//! JS runs in `js/dht-ops.js` (an ephemeral client node), Rust in an ephemeral
//! `dht::runtime::HyperDhtNode`; the tampered mutable put is sent by the second Rust client of
//! `interop_tests::records`, as the real one only signs correctly.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use dht::crypto::{KeyPair, hash, sign_mutable};
use dht::hyperdht::persistent::StoreStats;
use dht::runtime::HyperDhtNode;
use interop_tests::records;
use interop_tests::{JsProcess, Testnet};
use serde_json::{Value, json};

const JS_TIMEOUT: Duration = Duration::from_secs(60);

/// The JS ops peer (`js/dht-ops.js`).
struct JsOps {
    p: JsProcess,
    next: u64,
}

impl JsOps {
    fn start(bootstrap: SocketAddrV4) -> Self {
        let mut p = JsProcess::spawn("dht-ops.js", &[&bootstrap.to_string()]).expect("dht-ops");
        let ready = p.next_json(JS_TIMEOUT).expect("ready");
        assert_eq!(ready["ready"], json!(true), "{ready}");
        Self { p, next: 0 }
    }

    /// Sends `cmd` and returns its answer, which must not be a failure.
    fn call(&mut self, cmd: Value) -> Value {
        let v = self.call_raw(cmd.clone());
        assert!(v.get("failed").is_none(), "{cmd}: {v}");
        v
    }

    /// Sends `cmd` and returns its answer (lines of other commands and events are skipped).
    fn call_raw(&mut self, mut cmd: Value) -> Value {
        self.next += 1;
        cmd["id"] = json!(self.next);
        self.p.send_json(&cmd).expect("send");
        loop {
            let v = self.p.next_json(JS_TIMEOUT).expect("JS answer");
            if v["id"] == json!(self.next) {
                return v;
            }
        }
    }
}

fn keys_of(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|p| p["publicKey"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn seed(label: &str) -> [u8; 32] {
    hash(label.as_bytes())
}

/// Every cross-language check on the network that `bootstrap` leads to.
fn records_both_ways(rt: &tokio::runtime::Runtime, bootstrap: SocketAddrV4, label: &str) {
    let mut js = JsOps::start(bootstrap);
    let rust = rt
        .block_on(records::hyper_client(bootstrap))
        .expect("Rust client");
    // the second client, for the tampered write
    let raw = Arc::new(
        rt.block_on(records::client(bootstrap))
            .expect("dht-rpc client"),
    );
    let t = |name: &str| hash(format!("{label} {name}").as_bytes());

    // JS announces, Rust looks up
    let js_seed = seed(&format!("{label} js announcer"));
    let js_key = KeyPair::from_seed(&js_seed);
    let r = js.call(json!({"cmd": "announce", "topic": hex::encode(t("js topic")), "seed": hex::encode(js_seed)}));
    assert!(r["closest"].as_u64().unwrap_or(0) > 0, "{r}");
    let found = rt
        .block_on(records::lookup_timed(&rust, t("js topic")))
        .expect("lookup");
    assert!(
        found.keys.contains(&js_key.public_key),
        "{label}: Rust lookup did not find JS's announce ({found:?})"
    );
    // ... and JS's own lookup finds it too
    let r = js.call(json!({"cmd": "lookup", "topic": hex::encode(t("js topic"))}));
    assert!(
        keys_of(&r["peers"]).contains(&hex::encode(js_key.public_key)),
        "{label}: {r}"
    );
    println!(
        "{label}: JS announce found by Rust in {} replies and by JS",
        found.replies
    );

    // Rust announces, JS finds it with dht.lookup and with hyperswarm's discovery
    let rust_key = KeyPair::from_seed(&seed(&format!("{label} rust announcer")));
    let c = rt
        .block_on(rust.announce(t("rust topic"), &rust_key, &[]))
        .expect("Rust announce");
    assert!(c.answered > 0 && c.refused.is_empty(), "{label}: {c:?}");
    let acks = c.answered;
    let pk = hex::encode(rust_key.public_key);
    let r = js.call(json!({"cmd": "lookup", "topic": hex::encode(t("rust topic"))}));
    assert!(
        keys_of(&r["peers"]).contains(&pk),
        "{label}: JS lookup missed Rust's announce: {r}"
    );
    let r = js.call(
        json!({"cmd": "join", "topic": hex::encode(t("rust topic")), "client": true, "server": false}),
    );
    assert!(
        r["discovered"]
            .as_array()
            .expect("discovered")
            .contains(&json!(pk)),
        "{label}: hyperswarm discovery missed Rust's announce: {r}"
    );
    println!("{label}: Rust announce acknowledged by {acks}, found by JS lookup and hyperswarm");

    // mutable: JS puts, Rust gets; Rust puts, JS gets (same bytes and signatures)
    let m_seed = seed(&format!("{label} js mutable"));
    let r = js.call(json!({"cmd": "mutablePut", "seed": hex::encode(m_seed), "value": hex::encode(b"from js"), "seq": 1}));
    let js_pk: [u8; 32] = KeyPair::from_seed(&m_seed).public_key;
    let got = rt
        .block_on(rust.mutable_get(js_pk, 0, true))
        .expect("Rust got JS's mutable value");
    assert_eq!((got.seq, got.value.as_slice()), (1, &b"from js"[..]));
    assert_eq!(hex::encode(got.signature), r["signature"].as_str().unwrap());

    let mk = KeyPair::from_seed(&seed(&format!("{label} rust mutable")));
    let put = rt
        .block_on(rust.mutable_put(&mk, b"from rust", 3))
        .expect("Rust mutable_put");
    assert!(
        put.committed.answered > 0 && put.committed.refused.is_empty(),
        "{put:?}"
    );
    let r = js.call(json!({"cmd": "mutableGet", "publicKey": hex::encode(mk.public_key)}));
    assert_eq!(r["value"], json!(hex::encode(b"from rust")), "{r}");
    assert_eq!(r["seq"], json!(3));
    assert_eq!(
        r["signature"],
        json!(hex::encode(sign_mutable(&mk, 3, b"from rust")))
    );

    // immutable both ways
    let value = format!("{label} immutable from js");
    let r = js.call(json!({"cmd": "immutablePut", "value": hex::encode(&value)}));
    let h = hash(value.as_bytes());
    assert_eq!(r["hash"], json!(hex::encode(h)));
    let got = rt.block_on(rust.immutable_get(h)).expect("immutable_get");
    assert_eq!(got.value, value.as_bytes());
    let value = format!("{label} immutable from rust");
    let (h, _) = rt
        .block_on(rust.immutable_put(value.as_bytes()))
        .expect("Rust immutable_put");
    let r = js.call(json!({"cmd": "immutableGet", "hash": hex::encode(h)}));
    assert_eq!(r["value"], json!(hex::encode(&value)), "{r}");

    // tampered: a JS announce with a flipped signature and a Rust mutable put with one are
    // refused by every storage node
    let bad_seed = seed(&format!("{label} tampered announcer"));
    // every commit goes unanswered, so JS's announce fails (REQUEST_TIMEOUT)
    let r = js.call_raw(json!({"cmd": "announce", "topic": hex::encode(t("tampered")), "seed": hex::encode(bad_seed), "tamper": true}));
    assert!(
        r["failed"].is_string(),
        "{label}: a tampered announce was acknowledged: {r}"
    );
    let found = rt
        .block_on(records::lookup_timed(&rust, t("tampered")))
        .expect("lookup");
    assert!(
        found.keys.is_empty(),
        "{label}: a tampered announce was stored"
    );
    let r = js.call(json!({"cmd": "lookup", "topic": hex::encode(t("tampered"))}));
    assert_eq!(r["peers"], json!([]), "{label}: {r}");
    let tk = KeyPair::from_seed(&seed(&format!("{label} tampered mutable")));
    let put = rt.block_on(records::mutable_put(&raw, &tk, b"forged", 1, true));
    assert!(
        put.is_err(),
        "{label}: a tampered mutable put was acknowledged"
    );
    let r = js.call(json!({"cmd": "mutableGet", "publicKey": hex::encode(tk.public_key)}));
    assert_eq!(r["value"], Value::Null, "{label}: {r}");
    println!("{label}: mutable and immutable values both ways, tampered records refused");

    assert!(
        rt.block_on(rust.mutable_get(tk.public_key, 0, true))
            .is_err(),
        "{label}: Rust got a tampered value"
    );
    assert!(
        js.p.finish(Duration::from_secs(10)),
        "dht-ops exits cleanly"
    );
    rt.block_on(rust.destroy());
    rt.block_on(raw.shutdown());
}

#[test]
fn records_cross_languages_on_a_js_testnet() {
    let net = Testnet::start(6).expect("JS testnet");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    records_both_ways(&rt, net.bootstrap, "JS testnet");
}

/// A Rust bootstrapper and `n` Rust storage nodes.
fn rust_network(rt: &tokio::runtime::Runtime, n: usize) -> (HyperDhtNode, Vec<HyperDhtNode>) {
    rt.block_on(async {
        let boot = records::bootstrapper().await.expect("bootstrapper");
        let nodes = records::storage_nodes(n, boot.local_addr())
            .await
            .expect("storage nodes");
        (boot, nodes)
    })
}

/// A store's entry counts `(records, refreshes, bumps, mutables, immutables)`.
type Sizes = (usize, usize, usize, usize, usize);

/// Store counters and sizes of `nodes`.
fn stores(rt: &tokio::runtime::Runtime, nodes: &[&HyperDhtNode]) -> Vec<(StoreStats, Sizes)> {
    nodes
        .iter()
        .map(|n| {
            let s = rt.block_on(n.stats()).expect("stats");
            (
                s.store.unwrap_or_default(),
                s.store_sizes.unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn records_cross_languages_on_an_all_rust_network() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (boot, nodes) = rust_network(&rt, 8);
    records_both_ways(&rt, boot.local_addr(), "all-Rust network");
    let all: Vec<&HyperDhtNode> = nodes.iter().chain([&boot]).collect();
    let s = stores(&rt, &all);
    let stored: usize = s.iter().map(|(_, z)| z.0 + z.3 + z.4).sum();
    let refused: u64 = s.iter().map(|(st, _)| st.dropped_bad_signature).sum();
    println!("all-Rust network: {stored} entries stored, {refused} bad signatures refused");
    assert!(
        refused > 0,
        "the Rust storage nodes saw the tampered writes"
    );

    // two JS hyperswarm peers find each other by topic through the Rust storage nodes and
    // exchange one message each way (js/dht-swarm.js)
    let mut swarm =
        JsProcess::spawn("dht-swarm.js", &[&boot.local_addr().to_string()]).expect("dht-swarm");
    let first = swarm.next_json(JS_TIMEOUT).expect("announced");
    assert_eq!(first["announced"], json!(true), "{first}");
    let done = swarm.next_json(Duration::from_secs(90)).expect("result");
    assert_eq!(done["ok"], json!(true), "{done}");
    assert_eq!(
        (done["a"].as_str(), done["b"].as_str()),
        (Some("from-b"), Some("from-a"))
    );
}

/// `js_n` persistent JS nodes (plus `js_ephemeral` ephemeral ones) and `rust_n` Rust storage
/// nodes on one network.
fn mixed(js_n: usize, js_ephemeral: usize, rust_n: usize) {
    let label = format!("{js_n} JS + {rust_n} Rust");
    let mut js = JsProcess::spawn(
        "dht-net.js",
        &[&js_n.to_string(), "-", &js_ephemeral.to_string()],
    )
    .expect("JS network");
    let ready = js.next_json(Duration::from_secs(300)).expect("ready");
    let port = ready["bootstrap"]["port"].as_u64().expect("port") as u16;
    let bootstrap = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rust = rt
        .block_on(records::storage_nodes(rust_n, bootstrap))
        .expect("Rust storage nodes");
    records_both_ways(&rt, bootstrap, &label);
    let s = stores(&rt, &rust.iter().collect::<Vec<_>>());
    let served: u64 = s.iter().map(|(st, _)| st.requests).sum();
    let records: usize = s.iter().map(|(_, z)| z.0).sum();
    println!(
        "{label}: the Rust storage nodes answered {served} record requests and hold {records} \
         announce records"
    );
    assert!(
        served > 0 && records > 0,
        "the Rust storage nodes took part"
    );
}

#[test]
fn records_cross_languages_on_20_js_and_20_rust_nodes() {
    mixed(20, 0, 20);
}

#[test]
#[ignore = "bigger network (~15 s): 100 JS nodes (and 20 ephemeral) beside 100 Rust storage nodes"]
fn records_cross_languages_on_100_js_and_100_rust_nodes() {
    mixed(100, 20, 100);
}
