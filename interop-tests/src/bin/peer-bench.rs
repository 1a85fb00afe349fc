//! Measures pairs of peer-interface implementations (server impl × client impl) on a JS HyperDHT
//! testnet on 127.0.0.1, and prints one Markdown table with a column per pair:
//!
//! - one connection's throughput, `--bytes` (256 MiB) in 64 KiB writes, MB/s and CPU s/GiB of
//!   each side (median of `--rounds` connections);
//! - `join(topic)` as a client → first open connection, p50/p99;
//! - `connect(public key)` warm p50 (and cold p50);
//! - connections per second with 1 and 8 in flight;
//! - 100-byte echo round trip p50/p99, beside a TCP loopback echo measured here the same way;
//! - RSS of the idle server with one topic joined (from `/proc`, after `--settle` seconds), and of
//!   an idle bootstrapped DHT node (`node` command).
//!
//! ```text
//! cargo run -p interop-tests --bin peer-bench -- [--pairs js/js,rust/js,...]
//!     [--impl NAME=COMMAND...] [--bytes N] [--rounds N] [--quick]
//! ```
//!
//! `js` is the project's JS peer (`node js/swarm-peer.js`); `--impl rust=target/release/swarm-peer`
//! names another. `--quick` shrinks every size (a smoke run, not figures).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use interop_tests::Testnet;
use interop_tests::peer_driver::{
    ClientResult, ClientTest, DriverError, PeerImpl, Server, Via, percentile, random_hex32,
    run_client, run_node,
};

const GIB: f64 = (1u64 << 30) as f64;

struct Sizes {
    bytes: u64,
    rounds: usize,
    join_iterations: u32,
    warm_iterations: u32,
    cold_iterations: u32,
    rate1: u32,
    rate8: u32,
    rtt_rounds: u32,
    settle: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("peer-bench: {msg}");
    eprintln!(
        "usage: peer-bench [--pairs S/C,...] [--impl NAME=COMMAND]... [--bytes N] [--rounds N] [--quick]"
    );
    std::process::exit(2)
}

fn main() {
    let mut impls: BTreeMap<String, String> = BTreeMap::new();
    impls.insert("js".into(), "js".into());
    let mut pairs = "js/js".to_owned();
    let mut sizes = Sizes {
        bytes: 256 << 20,
        rounds: 3,
        join_iterations: 100,
        warm_iterations: 100,
        cold_iterations: 20,
        rate1: 200,
        rate8: 400,
        rtt_rounds: 2000,
        settle: Duration::from_secs(5),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--pairs" => pairs = value(),
            "--impl" => {
                let v = value();
                let (name, cmd) = v
                    .split_once('=')
                    .unwrap_or_else(|| usage("--impl takes NAME=COMMAND"));
                impls.insert(name.into(), cmd.into());
            }
            "--bytes" => sizes.bytes = value().parse().unwrap_or_else(|_| usage("bad --bytes")),
            "--rounds" => sizes.rounds = value().parse().unwrap_or_else(|_| usage("bad --rounds")),
            "--quick" => {
                sizes = Sizes {
                    bytes: 8 << 20,
                    rounds: 1,
                    join_iterations: 5,
                    warm_iterations: 5,
                    cold_iterations: 2,
                    rate1: 10,
                    rate8: 16,
                    rtt_rounds: 50,
                    settle: Duration::from_secs(1),
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let resolve = |name: &str| -> PeerImpl {
        let cmd = impls
            .get(name)
            .unwrap_or_else(|| usage(&format!("no --impl named {name}")));
        PeerImpl::parse(name, cmd).unwrap_or_else(|e| usage(&e.to_string()))
    };
    let pairs: Vec<(PeerImpl, PeerImpl)> = pairs
        .split(',')
        .map(|p| {
            let (s, c) = p
                .split_once('/')
                .unwrap_or_else(|| usage("--pairs takes SERVER/CLIENT,..."));
            (resolve(s), resolve(c))
        })
        .collect();

    let net = Testnet::start(8).unwrap_or_else(|e| usage(&format!("JS testnet: {e}")));
    let tcp = tcp_rtt(sizes.rtt_rounds as usize, 50, 100);
    let mut columns = Vec::new();
    for (server, client) in &pairs {
        eprintln!(
            "peer-bench: {} server × {} client",
            server.name, client.name
        );
        match measure(net.bootstrap, server, client, &sizes) {
            Ok(rows) => columns.push((
                format!("{} server × {} client", server.name, client.name),
                rows,
            )),
            Err(e) => {
                eprintln!("peer-bench: {} × {} failed: {e}", server.name, client.name);
                std::process::exit(1)
            }
        }
    }

    let mut header = "| measurement |".to_owned();
    let mut rule = "|---|".to_owned();
    for (name, _) in &columns {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    let Some((_, first)) = columns.first() else {
        return;
    };
    for (i, (label, _)) in first.iter().enumerate() {
        let mut line = format!("| {label} |");
        for (_, rows) in &columns {
            line.push_str(&format!(" {} |", rows.get(i).map_or("", |r| r.1.as_str())));
        }
        println!("{line}");
    }
    let (p50, p99) = tcp;
    println!(
        "| TCP loopback echo RTT p50 / p99 (this process, 100 B, Nagle off) | {} |",
        vec![format!("{:.1} / {:.1} µs", p50 * 1e3, p99 * 1e3); columns.len()].join(" | ")
    );
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2} ms"))
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{:.0} µs", x * 1e3))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure(
    bootstrap: SocketAddrV4,
    server_impl: &PeerImpl,
    client_impl: &PeerImpl,
    s: &Sizes,
) -> Result<Vec<(String, String)>, DriverError> {
    let max = 600;
    let server = Server::start(
        server_impl,
        bootstrap,
        &random_hex32(),
        None,
        3600,
        Duration::from_secs(60),
    )?;
    let mut rows = Vec::new();

    // Idle first, before any connection has touched the server.
    std::thread::sleep(s.settle);
    let idle_rss = server.process.rss_bytes().unwrap_or(0);

    let mut mbps = Vec::new();
    let mut ccpu = Vec::new();
    let mut scpu = Vec::new();
    for _ in 0..s.rounds {
        let t = ClientTest::Throughput {
            bytes: s.bytes,
            write_size: 65536,
            via: Via::Swarm,
        };
        if let ClientResult::Throughput(r) = run_client(client_impl, bootstrap, &server, &t, max)? {
            for run in r.runs {
                let gib = run.bytes as f64 / GIB;
                mbps.push(run.mb_per_sec);
                ccpu.push((run.client_cpu_user_us + run.client_cpu_sys_us) / 1e6 / gib);
                if let (Some(u), Some(sy)) = (run.server.cpu_user_us, run.server.cpu_sys_us) {
                    scpu.push((u + sy) / 1e6 / gib);
                }
            }
        }
    }
    rows.push((
        format!(
            "throughput, {} MiB in 64 KiB writes (median of {})",
            s.bytes >> 20,
            s.rounds
        ),
        format!("{:.1} MB/s", median(mbps)),
    ));
    rows.push((
        "CPU per GiB: client / server".into(),
        format!(
            "{:.2} / {} s",
            median(ccpu),
            if scpu.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", median(scpu))
            }
        ),
    ));

    let t = ClientTest::ConnectSwarm {
        iterations: s.join_iterations,
    };
    if let ClientResult::ConnectSwarm(r) = run_client(client_impl, bootstrap, &server, &t, max)? {
        rows.push((
            format!(
                "join(topic) → first connection p50 / p99 ({} runs, {} errors)",
                s.join_iterations, r.errors
            ),
            format!(
                "{} / {}",
                ms(percentile(&r.samples_ms, 50.0)),
                ms(percentile(&r.samples_ms, 99.0))
            ),
        ));
    }
    for (fresh, n) in [(false, s.warm_iterations), (true, s.cold_iterations)] {
        let t = ClientTest::ConnectDht {
            iterations: n,
            fresh,
        };
        let samples = match run_client(client_impl, bootstrap, &server, &t, max)? {
            ClientResult::ConnectDhtWarm(r) | ClientResult::ConnectDhtCold(r) => r,
            _ => continue,
        };
        rows.push((
            format!(
                "connect(public key) {} p50 ({n} runs, {} errors)",
                if fresh { "cold" } else { "warm" },
                samples.errors
            ),
            ms(percentile(&samples.samples_ms, 50.0)),
        ));
    }
    for (concurrency, iterations) in [(1, s.rate1), (8, s.rate8)] {
        let t = ClientTest::ConnectRate {
            iterations,
            concurrency,
        };
        if let ClientResult::ConnectRate(r) = run_client(client_impl, bootstrap, &server, &t, max)?
        {
            rows.push((
                format!(
                    "connections/s, {concurrency} in flight ({} opened, {} errors)",
                    r.opened, r.errors
                ),
                format!("{:.0}/s", r.per_sec),
            ));
        }
    }
    let t = ClientTest::Rtt {
        rounds: s.rtt_rounds,
        msg_size: 100,
        warmup: 50,
    };
    if let ClientResult::Rtt(r) = run_client(client_impl, bootstrap, &server, &t, max)? {
        rows.push((
            format!("100-byte echo RTT p50 / p99 ({} rounds)", r.rounds),
            format!(
                "{} / {}",
                us(percentile(&r.samples_ms, 50.0)),
                us(percentile(&r.samples_ms, 99.0))
            ),
        ));
    }
    rows.push((
        format!(
            "idle RSS, server with one topic joined ({} s after announce)",
            s.settle.as_secs()
        ),
        format!("{:.1} MiB", idle_rss as f64 / (1u64 << 20) as f64),
    ));
    let node = run_node(
        server_impl,
        bootstrap,
        s.settle.as_millis() as u64,
        false,
        max,
    )?;
    rows.push((
        "idle RSS, one bootstrapped DHT node (`node`)".into(),
        format!("{:.1} MiB", node.rss_bytes as f64 / (1u64 << 20) as f64),
    ));
    let exit = server.stop(Duration::from_secs(30))?;
    eprintln!(
        "peer-bench: server exit: {} connections, {} sink bytes",
        exit.connections, exit.sink_bytes
    );
    Ok(rows)
}

/// Echo round trips of `size`-byte lines over one TCP loopback connection (Nagle off), echoed by
/// a thread of this process; returns p50 and p99 in ms.
fn tcp_rtt(rounds: usize, warmup: usize, size: usize) -> (f64, f64) {
    let listener =
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind TCP loopback");
    let addr = listener.local_addr().expect("local address");
    let echo = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        sock.set_nodelay(true).expect("nodelay");
        let mut w = sock.try_clone().expect("clone");
        let mut r = BufReader::new(sock);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if w.write_all(&line).is_err() {
                break;
            }
            line.clear();
        }
    });
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let mut w = sock.try_clone().expect("clone");
    let mut r = BufReader::new(sock);
    let mut msg = vec![b'x'; size];
    if let Some(last) = msg.last_mut() {
        *last = b'\n';
    }
    let mut back = Vec::with_capacity(size);
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        let t0 = Instant::now();
        w.write_all(&msg).expect("write");
        back.clear();
        r.read_until(b'\n', &mut back).expect("read");
        let dt = t0.elapsed().as_secs_f64() * 1e3;
        assert_eq!(back, msg, "TCP echo differs");
        if i >= warmup {
            samples.push(dt);
        }
    }
    drop((w, r));
    let _ = echo.join();
    (
        percentile(&samples, 50.0).unwrap_or(f64::NAN),
        percentile(&samples, 99.0).unwrap_or(f64::NAN),
    )
}
