//! HyperDHT record benchmarks (figures, no timed asserts), Rust beside JS in the same run on
//! 127.0.0.1:
//!
//! 1. Two 200-node loopback networks, each in one process: JS (`hyperdht/testnet` via
//!    `interop-tests/js/dht-net.js 200`) and Rust (`hyperdht --bootstrap` plus
//!    `hyperdht --nodes 199 --persistent`). On each, a JS client (`dht-ops.js`) and a Rust
//!    client (`HyperDhtNode`) take turns: announce a fresh topic to completion, then look it up,
//!    timing the first reply holding a record and the end of the walk. Medians and p90 per
//!    network and client.
//! 2. Memory per stored record: one bootstrap node of each (`HyperDHT.bootstrapper` in
//!    `dht-bench-node.js`, `hyperdht --bootstrap`) receives 100,000 signed ANNOUNCEs, each under
//!    its own topic and key with three relay addresses; VmRSS before and after.
//!
//! Run: `cargo bench -p dht --features cli --bench hyperdht_records` (needs Node.js and the
//! pinned packages in `interop-tests/js/node_modules`). `HYPERDHT_BENCH_ROUNDS` (default 30),
//! `HYPERDHT_BENCH_NODES` (default 200) and `HYPERDHT_BENCH_RECORDS` (default 100000) change
//! the sizes; `HYPERDHT_BENCH_PARTS=memory` runs the memory part alone.

// A benchmark over real sockets and processes: real time, std UDP sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use dht::codec::{Decode, Encode};
use dht::crypto::{KeyPair, hash, sign_announce};
use dht::hyperdht::messages::{Announce, Peer};
use dht::hyperdht::{Command as HCommand, HyperDhtConfig};
use dht::rpc::Config;
use dht::rpc::wire::{Message, Request};
use dht::runtime::HyperDhtNode;
use serde_json::{Value, json};

fn js_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop-tests/js")
}

/// A child process printing lines on stdout, killed on drop.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines: rx,
        }
    }

    fn node(script: &str, args: &[&str]) -> Self {
        Self::spawn(
            Command::new("node")
                .arg(js_dir().join(script))
                .args(args)
                .current_dir(js_dir()),
        )
    }

    fn line(&self, timeout: Duration) -> String {
        self.lines.recv_timeout(timeout).expect("a line in time")
    }

    fn json(&self, timeout: Duration) -> Value {
        loop {
            if let Ok(v) = serde_json::from_str(&self.line(timeout)) {
                return v;
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dht-ops.js` as a client.
struct JsClient {
    p: Proc,
    next: u64,
}

impl JsClient {
    fn start(bootstrap: SocketAddrV4) -> Self {
        let p = Proc::node("dht-ops.js", &[&bootstrap.to_string()]);
        let _ready = p.json(Duration::from_secs(60));
        Self { p, next: 0 }
    }

    fn call(&mut self, mut cmd: Value) -> Value {
        self.next += 1;
        cmd["id"] = json!(self.next);
        let stdin = self.p.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}").expect("write");
        loop {
            let v = self.p.json(Duration::from_secs(60));
            if v["id"] == json!(self.next) {
                assert!(v.get("failed").is_none(), "{cmd}: {v}");
                return v;
            }
        }
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn vm_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn localhost(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

/// `hyperdht --bootstrap` on a free port; waits until it serves.
fn rust_bootstrap() -> (Proc, SocketAddrV4) {
    let port = free_port();
    let p = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_hyperdht")).args([
        "--bootstrap",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]));
    while !p.line(Duration::from_secs(30)).contains("Fully started") {}
    (p, localhost(port))
}

/// The JS and Rust 200-node networks.
fn networks(n: usize) -> Vec<(&'static str, SocketAddrV4, Vec<Proc>)> {
    let t = Instant::now();
    let js = Proc::node("dht-net.js", &[&n.to_string()]);
    let ready = js.json(Duration::from_secs(600));
    let port = ready["bootstrap"]["port"].as_u64().expect("port") as u16;
    eprintln!("JS network of {n} up in {:.1?}", t.elapsed());

    let t = Instant::now();
    let (boot, baddr) = rust_bootstrap();
    let nodes = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_hyperdht")).args([
        "--bootstrap",
        &baddr.to_string(),
        "--nodes",
        &(n - 1).to_string(),
        "--host",
        "127.0.0.1",
        "--persistent",
    ]));
    let mut persistent = 0;
    while persistent < n - 1 {
        if nodes
            .line(Duration::from_secs(120))
            .contains("is persistent")
        {
            persistent += 1;
        }
    }
    eprintln!(
        "Rust network of {n} up (all persistent) in {:.1?}",
        t.elapsed()
    );
    vec![
        ("JS", localhost(port), vec![js]),
        ("Rust", baddr, vec![boot, nodes]),
    ]
}

#[derive(Default)]
struct Samples {
    announce: Vec<f64>,
    first: Vec<f64>,
    total: Vec<f64>,
    misses: usize,
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn lookups(nodes: usize, rounds: usize) -> Vec<(String, Samples)> {
    let nets = networks(nodes);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut out = Vec::new();
    let mut clients = Vec::new();
    for (name, boot, _) in &nets {
        let js = JsClient::start(*boot);
        let config = HyperDhtConfig {
            rpc: Config {
                bootstrap: vec![*boot],
                ..Config::default()
            },
            ..HyperDhtConfig::default()
        };
        let rust = rt
            .block_on(async {
                let d = HyperDhtNode::bind(localhost(0), config).await?;
                d.ready().await?;
                Ok::<_, dht::runtime::DhtError>(d)
            })
            .expect("Rust client");
        clients.push((*name, js, rust));
        out.push((format!("{name} network, JS client"), Samples::default()));
        out.push((format!("{name} network, Rust client"), Samples::default()));
    }
    let warmup = 3;
    for round in 0..warmup + rounds {
        for (ni, (net, js, rust)) in clients.iter_mut().enumerate() {
            // alternate which client goes first
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let topic = hash(format!("bench {net} {which} {round}").as_bytes());
                let seed = hash(format!("bench key {net} {which} {round}").as_bytes());
                let kp = KeyPair::from_seed(&seed);
                let (ann, first, total, found) = if which == 0 {
                    let r = js.call(json!({"cmd": "announce", "topic": hex::encode(topic), "seed": hex::encode(seed)}));
                    let ann = r["ms"].as_f64().unwrap_or(f64::NAN);
                    let l = js.call(json!({"cmd": "lookup", "topic": hex::encode(topic)}));
                    let found = l["peers"].as_array().is_some_and(|a| {
                        a.iter()
                            .any(|p| p["publicKey"] == json!(hex::encode(kp.public_key)))
                    });
                    (
                        ann,
                        l["firstMs"].as_f64().unwrap_or(f64::NAN),
                        l["totalMs"].as_f64().unwrap_or(f64::NAN),
                        found,
                    )
                } else {
                    rt.block_on(async {
                        let t = Instant::now();
                        rust.announce(topic, &kp, &[]).await.expect("announce");
                        let ann = t.elapsed().as_secs_f64() * 1e3;
                        let t = Instant::now();
                        let mut l = rust.lookup(topic).await.expect("lookup");
                        let mut first = f64::NAN;
                        let mut found = false;
                        while let Some(r) = l.next().await {
                            let Ok(r) = r else { break };
                            if !r.peers.is_empty() && first.is_nan() {
                                first = t.elapsed().as_secs_f64() * 1e3;
                            }
                            found |= r.peers.iter().any(|p| p.public_key == kp.public_key);
                        }
                        (ann, first, t.elapsed().as_secs_f64() * 1e3, found)
                    })
                };
                if round < warmup {
                    continue;
                }
                let s = &mut out[ni * 2 + which].1;
                s.announce.push(ann);
                s.first.push(first);
                s.total.push(total);
                if !found {
                    s.misses += 1;
                }
            }
        }
    }
    for (_, _, rust) in &clients {
        rt.block_on(rust.destroy());
    }
    out
}

/// Sends `n` signed ANNOUNCEs (own topic and key each, three relays) to the node at `to`,
/// keeping `window` in flight and fetching a fresh token every 5,000; returns the acks.
fn flood(to: SocketAddrV4, n: u32) -> u32 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let mut tid: u16 = 0;
    let token_and_id = |sock: &UdpSocket, tid: &mut u16| -> ([u8; 32], [u8; 32]) {
        let mut buf = [0u8; 2048];
        loop {
            *tid = tid.wrapping_add(1);
            let req = Request {
                tid: *tid,
                to,
                id: None,
                token: None,
                internal: false,
                command: HCommand::Lookup.to_u64(),
                target: Some([0; 32]),
                value: None,
            };
            sock.send_to(&req.to_bytes(), to).expect("send");
            while let Ok((len, _)) = sock.recv_from(&mut buf) {
                if let Ok(Message::Response(r)) = Message::from_bytes(&buf[..len])
                    && r.tid == *tid
                    && let (Some(t), Some(id)) = (r.token, r.id)
                {
                    return (t, id);
                }
            }
        }
    };
    let (mut token, id) = token_and_id(&sock, &mut tid);
    let window = 64;
    let mut acks = 0;
    let mut unanswered = 0;
    let mut errors = std::collections::BTreeMap::new();
    let mut i = 0;
    while i < n {
        if i % 5000 == 0 {
            token = token_and_id(&sock, &mut tid).0;
        }
        let batch = window.min(n - i);
        for j in 0..batch {
            let k = i + j;
            let kp = KeyPair::from_seed(&hash(&k.to_le_bytes()));
            let topic = hash(format!("record {k}").as_bytes());
            let peer = Peer {
                public_key: kp.public_key,
                relay_addresses: (0..3)
                    .map(|r| {
                        SocketAddrV4::new(Ipv4Addr::new(10, 1, (k >> 8) as u8, k as u8), 1000 + r)
                    })
                    .collect(),
            };
            let value = Announce {
                signature: Some(sign_announce(&kp, &topic, &id, &token, &peer, None)),
                peer: Some(peer),
                refresh: None,
                bump: 0,
            }
            .to_bytes();
            tid = tid.wrapping_add(1);
            let req = Request {
                tid,
                to,
                id: None,
                token: Some(token),
                internal: false,
                command: HCommand::Announce.to_u64(),
                target: Some(topic),
                value: Some(value),
            };
            sock.send_to(&req.to_bytes(), to).expect("send");
        }
        let mut got = 0;
        while got < batch {
            match sock.recv_from(&mut buf) {
                Ok((len, _)) => {
                    if let Ok(Message::Response(r)) = Message::from_bytes(&buf[..len]) {
                        got += 1;
                        if r.error == 0 {
                            acks += 1;
                        } else {
                            *errors.entry(r.error).or_insert(0u32) += 1;
                        }
                    }
                }
                Err(_) => break,
            }
        }
        unanswered += batch - got;
        i += batch;
    }
    if acks < n {
        eprintln!(
            "{to}: {acks} acknowledged, {unanswered} unanswered within 500 ms, errors {errors:?}"
        );
    }
    acks
}

fn memory(records: u32) -> Vec<(&'static str, u64, u64, u32)> {
    let mut out = Vec::new();
    // JS: HyperDHT.bootstrapper
    let port = free_port();
    let js = Proc::node("dht-bench-node.js", &["hyperdht", &port.to_string()]);
    let _ = js.json(Duration::from_secs(30));
    // Rust: hyperdht --bootstrap
    let (rust, raddr) = rust_bootstrap();
    std::thread::sleep(Duration::from_secs(3)); // let both settle before the baseline
    for (name, p, addr) in [("JS", &js, localhost(port)), ("Rust", &rust, raddr)] {
        let before = vm_rss_kib(p.pid());
        let acks = flood(addr, records);
        std::thread::sleep(Duration::from_secs(3)); // settle (JS: let the GC run)
        let after = vm_rss_kib(p.pid());
        out.push((name, before, after, acks));
    }
    out
}

fn main() {
    let rounds: usize = std::env::var("HYPERDHT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let nodes: usize = std::env::var("HYPERDHT_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let records: u32 = std::env::var("HYPERDHT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if !js_dir().join("node_modules/hyperdht").exists() {
        eprintln!("run `npm ci` in interop-tests/js first");
        std::process::exit(1);
    }

    let parts = std::env::var("HYPERDHT_BENCH_PARTS").unwrap_or_default();
    if parts == "memory" {
        return print_memory(records);
    }
    let res = lookups(nodes, rounds);
    println!("\n{nodes}-node loopback networks, {rounds} rounds (after 3 warm-up), ms:\n");
    println!(
        "| network, client | announce p50 | announce p90 | first peer p50 | first peer p90 | lookup end p50 | lookup end p90 | misses |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, s) in &res {
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            pct(&s.announce, 0.5),
            pct(&s.announce, 0.9),
            pct(&s.first, 0.5),
            pct(&s.first, 0.9),
            pct(&s.total, 0.5),
            pct(&s.total, 0.9),
            s.misses
        );
    }
    let p50 = |i: usize, f: fn(&Samples) -> &Vec<f64>| pct(f(&res[i].1), 0.5);
    // res: 0 JS net/JS, 1 JS net/Rust, 2 Rust net/JS, 3 Rust net/Rust
    println!(
        "\nRust stack (Rust client, Rust network) / JS stack (JS client, JS network), p50: \
         announce {:.2}x, first peer {:.2}x, lookup end {:.2}x (below 1 = Rust faster)",
        p50(3, |s| &s.announce) / p50(0, |s| &s.announce),
        p50(3, |s| &s.first) / p50(0, |s| &s.first),
        p50(3, |s| &s.total) / p50(0, |s| &s.total),
    );
    println!(
        "Rust client / JS client on the JS network, p50: announce {:.2}x, first peer {:.2}x, lookup end {:.2}x",
        p50(1, |s| &s.announce) / p50(0, |s| &s.announce),
        p50(1, |s| &s.first) / p50(0, |s| &s.first),
        p50(1, |s| &s.total) / p50(0, |s| &s.total),
    );
    println!(
        "Rust client / JS client on the Rust network, p50: announce {:.2}x, first peer {:.2}x, lookup end {:.2}x",
        p50(3, |s| &s.announce) / p50(2, |s| &s.announce),
        p50(3, |s| &s.first) / p50(2, |s| &s.first),
        p50(3, |s| &s.total) / p50(2, |s| &s.total),
    );

    print_memory(records);
}

fn print_memory(records: u32) {
    let mem = memory(records);
    println!("\nMemory per stored record, {records} signed ANNOUNCEs into one bootstrap node:\n");
    println!("| node | VmRSS before | VmRSS after | acknowledged | bytes per record |");
    println!("|---|---:|---:|---:|---:|");
    for (name, before, after, acks) in &mem {
        println!(
            "| {name} | {before} KiB | {after} KiB | {acks} | {:.0} |",
            (after.saturating_sub(*before) * 1024) as f64 / f64::from((*acks).max(1))
        );
    }
    if let [(_, jb, ja, jn), (_, rb, ra, rn)] = mem.as_slice() {
        let js = (ja.saturating_sub(*jb)) as f64 / f64::from((*jn).max(1));
        let rust = (ra.saturating_sub(*rb)) as f64 / f64::from((*rn).max(1));
        println!("\nRust / JS memory per record: {:.2}x", rust / js);
    }
}
