//! `udxcat`: send or receive one UDX stream over UDP, like netcat.
//!
//! ```text
//! udxcat send --bind HOST:PORT --id N --peer HOST:PORT --peer-id M [--bytes COUNT] [--no-hash]
//! udxcat recv --bind HOST:PORT --id N --peer HOST:PORT --peer-id M [--sink] [--no-hash]
//! udxcat spray --bind HOST:PORT --peer HOST:PORT --peer-id M [--count N] [--seed S]
//! ```
//!
//! `send` writes COUNT bytes of deterministic pseudo-random data (or stdin when `--bytes` is
//! absent), ends the stream, waits for the peer's END and then lingers (the stream's
//! `finished`), so the ACK of the peer's END can be repeated if it was lost. `recv` writes what
//! arrives to stdout (or discards it with `--sink`) until the peer's END, then ends its own
//! direction and exits once that END is acknowledged. Both print
//! `{"bytes":B,"sha256":"HEX","secs":S}` on stderr at the end and exit 0 only on a clean end
//! in both directions. `--no-hash` (benchmarks) skips SHA-256 and prints an empty hash;
//! `--idle-timeout SECS` sets the stream's idle limit (0: none). Once bound, both print
//! `{"listening":"ADDR"}` on stderr. With `UDXCAT_STATS` set both
//! print the stream's counters, the drops of off-path and implausible packets included, as
//! `{"stats":...}`.
//!
//! `spray` is an attacker for tests: it sends N datagrams (default: until killed) from its own
//! port to the peer's stream `M` — random bytes, well-formed headers of every type, forged
//! DESTROY/END/ACK/DATA with the real stream id, and replays of a `udxcat send` transfer's
//! first packets — and prints what it sent as JSON.

#![allow(clippy::disallowed_methods)] // a CLI times itself

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use udx::socket::Socket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Send,
    Recv,
    Spray,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    bind: SocketAddr,
    id: u32,
    peer: SocketAddr,
    peer_id: u32,
    bytes: Option<u64>,
    sink: bool,
    hash: bool,
    idle: Option<Option<Duration>>,
    count: Option<u64>,
    seed: u64,
}

fn usage() -> String {
    "usage: udxcat send|recv|spray --bind HOST:PORT --id N --peer HOST:PORT --peer-id M [--bytes COUNT] [--sink] [--no-hash] [--idle-timeout SECS] [--count N] [--seed S]".into()
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or_else(usage)?;
    let mode = match mode.as_str() {
        "send" => Mode::Send,
        "recv" => Mode::Recv,
        "spray" => Mode::Spray,
        _ => return Err(usage()),
    };
    let (mut bind, mut id, mut peer, mut peer_id) = (None, None, None, None);
    let (mut bytes, mut sink, mut hash) = (None, false, true);
    let (mut idle, mut count, mut seed) = (None, None, 1u64);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--bind" => bind = Some(val()?.parse().map_err(|e| format!("--bind: {e}"))?),
            "--id" => id = Some(val()?.parse().map_err(|e| format!("--id: {e}"))?),
            "--peer" => peer = Some(val()?.parse().map_err(|e| format!("--peer: {e}"))?),
            "--peer-id" => peer_id = Some(val()?.parse().map_err(|e| format!("--peer-id: {e}"))?),
            "--bytes" => bytes = Some(val()?.parse().map_err(|e| format!("--bytes: {e}"))?),
            "--sink" => sink = true,
            "--no-hash" => hash = false,
            "--idle-timeout" => {
                let secs: f64 = val()?.parse().map_err(|e| format!("--idle-timeout: {e}"))?;
                idle = Some((secs > 0.0).then(|| Duration::from_secs_f64(secs)));
            }
            "--count" => count = Some(val()?.parse().map_err(|e| format!("--count: {e}"))?),
            "--seed" => seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            _ => return Err(format!("unknown argument {a}\n{}", usage())),
        }
    }
    Ok(Args {
        mode,
        bind: bind.ok_or("--bind is required")?,
        id: if mode == Mode::Spray {
            id.unwrap_or(0)
        } else {
            id.ok_or("--id is required")?
        },
        peer: peer.ok_or("--peer is required")?,
        peer_id: peer_id.ok_or("--peer-id is required")?,
        bytes,
        sink,
        hash,
        idle,
        count,
        seed,
    })
}

/// Deterministic pseudo-random bytes (SplitMix64 over the 8-byte block index).
fn fill(buf: &mut [u8], offset: u64) {
    debug_assert!(offset.is_multiple_of(8));
    udx::fuzzing::udxcat_pattern(buf, offset);
}

/// The stream's counters as one JSON line (for tests and the lead's notes).
fn print_stats(stream: &udx::socket::UdxStream) {
    if std::env::var_os("UDXCAT_STATS").is_none() {
        return;
    }
    if let Some(s) = stream.stats() {
        eprintln!(
            "{{\"stats\":{{\"packets_sent\":{},\"retransmits\":{},\"acks_sent\":{},\"duplicates\":{},\"dropped_off_path\":{},\"dropped_bad_ack\":{},\"dropped_bad_seq\":{},\"malformed\":{},\"mtu\":{}}}}}",
            s.packets_sent,
            s.retransmits,
            s.acks_sent,
            s.duplicates,
            s.dropped_off_path,
            s.dropped_bad_ack,
            s.dropped_bad_seq,
            s.malformed,
            stream.mtu().unwrap_or(0)
        );
    }
}

/// Sends hostile datagrams to `peer` from `bind` (see the module docs) until `count` (or
/// forever), in bursts of 64 with a 1 ms pause, and prints what it sent.
async fn spray(args: &Args) -> Result<(), String> {
    let sock = tokio::net::UdpSocket::bind(args.bind)
        .await
        .map_err(|e| format!("bind {}: {e}", args.bind))?;
    let mut counts = udx::fuzzing::HostileCounts::default();
    let mut i = 0u64;
    let mut errors = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let report = |c: &udx::fuzzing::HostileCounts, errors: u64| {
        eprintln!(
            "{{\"spray\":{{\"total\":{},\"garbage\":{},\"headers\":{},\"destroy\":{},\"end\":{},\"ack\":{},\"data\":{},\"replay\":{},\"send_errors\":{errors}}}}}",
            c.total(),
            c.garbage,
            c.headers,
            c.destroy,
            c.end,
            c.ack,
            c.data,
            c.replay
        );
    };
    while i < limit {
        for _ in 0..64 {
            if i >= limit {
                break;
            }
            let d = udx::fuzzing::hostile_datagram(args.seed, args.peer_id, i, &mut counts);
            if sock.send_to(&d, args.peer).await.is_err() {
                errors += 1;
            }
            i += 1;
        }
        if i.is_multiple_of(65_536) {
            report(&counts, errors);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    report(&counts, errors);
    Ok(())
}

fn report(bytes: u64, sha: Option<Sha256>, start: Instant) {
    let hex = sha
        .map(|s| {
            s.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        })
        .unwrap_or_default();
    eprintln!(
        "{{\"bytes\":{bytes},\"sha256\":\"{hex}\",\"secs\":{:.6}}}",
        start.elapsed().as_secs_f64()
    );
}

async fn run(args: Args) -> Result<(), String> {
    if args.mode == Mode::Spray {
        return spray(&args).await;
    }
    let socket = Socket::bind(args.bind).map_err(|e| format!("bind {}: {e}", args.bind))?;
    // Scripts and tests wait for this line instead of sleeping.
    eprintln!("{{\"listening\":\"{}\"}}", socket.local_addr());
    let mut cfg = udx::Config::default();
    if let Some(idle) = args.idle {
        cfg.idle_timeout = idle;
    }
    let mut stream = socket
        .create_stream_with(args.id, cfg)
        .map_err(|e| format!("create stream: {e}"))?;
    stream
        .connect(args.peer_id, args.peer)
        .map_err(|e| format!("connect: {e}"))?;
    let mut sha = args.hash.then(Sha256::new);
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut start = Instant::now();
    if args.mode == Mode::Send {
        match args.bytes {
            Some(count) => {
                while total < count {
                    let n = (count - total).min(buf.len() as u64) as usize;
                    fill(&mut buf[..n], total);
                    if let Some(s) = sha.as_mut() {
                        s.update(&buf[..n]);
                    }
                    stream
                        .write_all(&buf[..n])
                        .await
                        .map_err(|e| format!("write: {e}"))?;
                    total += n as u64;
                }
            }
            None => {
                let mut stdin = tokio::io::stdin();
                loop {
                    let n = stdin
                        .read(&mut buf)
                        .await
                        .map_err(|e| format!("stdin: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    if let Some(s) = sha.as_mut() {
                        s.update(&buf[..n]);
                    }
                    stream
                        .write_all(&buf[..n])
                        .await
                        .map_err(|e| format!("write: {e}"))?;
                    total += n as u64;
                }
            }
        }
        let res = stream.shutdown().await;
        report(total, sha, start);
        res.map_err(|e| format!("end: {e}"))?;
        // Our END is acknowledged: every byte arrived. Wait for the peer's END, then linger
        // so that a lost ACK of it can be repeated (the peer would fail otherwise).
        let res = stream.finished().await;
        print_stats(&stream);
        res.map_err(|e| format!("waiting for the peer's END: {e}"))
    } else {
        let mut stdout = tokio::io::stdout();
        let mut first = true;
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read after {total} bytes: {e}"));
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    report(total, sha, start);
                    return Err(e);
                }
            };
            if first {
                start = Instant::now();
                first = false;
            }
            if n == 0 {
                break;
            }
            if let Some(s) = sha.as_mut() {
                s.update(&buf[..n]);
            }
            if !args.sink {
                stdout
                    .write_all(&buf[..n])
                    .await
                    .map_err(|e| format!("stdout: {e}"))?;
            }
            total += n as u64;
        }
        stdout.flush().await.map_err(|e| format!("stdout: {e}"))?;
        report(total, sha, start);
        // The peer ended first and lingers until our END is acknowledged, so this succeeds
        // even when its first ACK of our END is lost; it fails only if the peer is gone
        // (the stream's RTO give-up or idle limit).
        let res = stream.shutdown().await;
        print_stats(&stream);
        res.map_err(|e| format!("end: {e}"))
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udxcat: {e}");
            ExitCode::FAILURE
        }
    }
}
