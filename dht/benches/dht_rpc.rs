//! dht-rpc benchmarks (not timed asserts): requests served per second per core and the RSS of
//! one idle node, Rust beside JS, measured in the same run on 127.0.0.1.
//!
//! Run: `cargo bench -p dht --features cli --bench dht_rpc` (needs Node.js and the pinned
//! packages in `interop-tests/js/node_modules`: `npm ci` there, or run the interop tests once).
//!
//! 1. In-process: the sans-IO node's `handle_datagram` + `poll_transmit` for PING and
//!    FIND_NODE (200-node table), one core.
//! 2. Over UDP: a bootstrap node (Rust `hyperdht --bootstrap`, JS `HyperDHT.bootstrapper` and
//!    plain `dht-rpc`) is flooded with FIND_NODE by a load generator keeping 128 requests in
//!    flight; replies per wall second and per CPU second of the server process (/proc stat).
//! 3. RSS (VmRSS) of each idle server process, before the load.

// A benchmark over real sockets: real time, a load thread and std UDP sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dht::codec::Encode;
use dht::rpc::wire::Request;
use dht::rpc::{Config, Node};

fn find_node_req(tid: u16, to: SocketAddrV4, t: u32) -> Vec<u8> {
    Request {
        tid,
        to,
        id: None,
        token: None,
        internal: true,
        command: 2,
        target: Some(dht::crypto::hash(&t.to_le_bytes())),
        value: None,
    }
    .to_bytes()
}

fn in_process() {
    let now = Instant::now();
    let me = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30_000);
    let mut node = Node::bootstrapper(Config::default(), me, now, [1; 32]);
    for i in 0..200u32 {
        node.add_node(
            now,
            SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 49_737),
        );
    }
    let from = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40_000);
    for (name, cmd) in [("PING", 0u64), ("FIND_NODE", 2)] {
        let reqs: Vec<Vec<u8>> = (0..10_000u32)
            .map(|i| {
                let mut r = Request::from_bytes_lossy(&find_node_req(i as u16, me, i));
                r.command = cmd;
                if cmd == 0 {
                    r.target = None;
                }
                r.to_bytes()
            })
            .collect();
        let n = 300_000;
        let t = Instant::now();
        let mut bytes = 0usize;
        for i in 0..n {
            node.handle_datagram(now, from, &reqs[i % reqs.len()]);
            while let Some(tx) = node.poll_transmit() {
                bytes += tx.payload.len();
            }
        }
        let el = t.elapsed();
        println!(
            "| sans-IO `handle_datagram` {name} (Rust, 1 core) | {:.0} req/s | {} B/reply |",
            n as f64 / el.as_secs_f64(),
            bytes / n
        );
    }
}

trait Lossy {
    fn from_bytes_lossy(b: &[u8]) -> Self;
}

impl Lossy for Request {
    fn from_bytes_lossy(b: &[u8]) -> Self {
        use dht::codec::Decode;
        Request::from_bytes(b).unwrap()
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn proc_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime in seconds (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (u + st) / 100.0
}

struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddrV4,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_line(child: &mut Child, pat: &str) {
    let out = child.stdout.take().unwrap();
    let mut r = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("server exited before printing {pat}");
        }
        if line.contains(pat) {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while r.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
}

fn rust_server() -> Server {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyperdht"))
        .args([
            "--bootstrap",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hyperdht");
    wait_line(&mut child, "Fully started");
    Server {
        name: "Rust `hyperdht --bootstrap`",
        child,
        addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
    }
}

fn js_server(kind: &'static str, name: &'static str) -> Option<Server> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop-tests/js");
    if !dir.join("node_modules/hyperdht").exists() {
        println!(
            "(JS packages not installed in {}; run `npm ci` there)",
            dir.display()
        );
        return None;
    }
    let port = free_port();
    let mut child = Command::new("node")
        .arg(dir.join("dht-bench-node.js"))
        .args([kind, &port.to_string()])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    wait_line(&mut child, "\"port\"");
    Some(Server {
        name,
        child,
        addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
    })
}

/// Floods `to` with FIND_NODE for `dur`, `window` requests in flight. Returns replies.
fn load(to: SocketAddrV4, dur: Duration, window: usize) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut tid: u16 = 0;
    let mut t: u32 = 0;
    let mut send = |sock: &UdpSocket| {
        tid = tid.wrapping_add(1);
        t += 1;
        let _ = sock.send_to(&find_node_req(tid, to, t), to);
    };
    for _ in 0..window {
        send(&sock);
    }
    let mut buf = [0u8; 2048];
    let mut replies = 0;
    let end = Instant::now() + dur;
    while Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok(_) => {
                replies += 1;
                send(&sock);
            }
            Err(_) => {
                for _ in 0..window {
                    send(&sock);
                }
            }
        }
    }
    replies
}

fn main() {
    println!("| measurement | value | note |");
    println!("|---|---|---|");
    in_process();

    let mut servers = vec![rust_server()];
    servers.extend(js_server(
        "hyperdht",
        "JS `HyperDHT.bootstrapper` (hyperdht 6.34.0)",
    ));
    servers.extend(js_server(
        "dht-rpc",
        "JS `DHT.bootstrapper` (dht-rpc 6.27.0)",
    ));
    std::thread::sleep(Duration::from_secs(3));
    for s in &servers {
        let pid = s.child.id();
        let rss = proc_field(pid, "VmRSS:").unwrap_or(0);
        println!(
            "| idle RSS, {} | {} KiB | VmRSS after 3 s idle |",
            s.name, rss
        );
    }
    for s in &servers {
        let pid = s.child.id();
        let c0 = cpu_secs(pid);
        let t0 = Instant::now();
        let replies = load(s.addr, Duration::from_secs(5), 128);
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid) - c0;
        let rss = proc_field(pid, "VmRSS:").unwrap_or(0);
        println!(
            "| FIND_NODE over UDP, {} | {:.0} replies/s wall, {:.0} per CPU-second | server CPU {:.2} s in {:.1} s; RSS after load {} KiB |",
            s.name,
            replies as f64 / wall,
            if cpu > 0.0 {
                replies as f64 / cpu
            } else {
                f64::NAN
            },
            cpu,
            wall,
            rss
        );
    }
}
