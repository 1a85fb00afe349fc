//! `udxcat`: send or receive one UDX stream over UDP, like netcat.
//!
//! ```text
//! udxcat send --bind HOST:PORT --id N --peer HOST:PORT --peer-id M [--bytes COUNT] [--no-hash]
//! udxcat recv --bind HOST:PORT --id N --peer HOST:PORT --peer-id M [--sink] [--no-hash]
//! ```
//!
//! `send` writes COUNT bytes of deterministic pseudo-random data (or stdin when `--bytes` is
//! absent), ends the stream and exits once the peer acknowledged the END. `recv` writes what
//! arrives to stdout (or discards it with `--sink`) until the peer's END, then ends its own
//! direction. Both print `{"bytes":B,"sha256":"HEX","secs":S}` on stderr at the end and exit 0
//! only on a clean end. `--no-hash` (benchmarks) skips SHA-256 and prints an empty hash.

#![allow(clippy::disallowed_methods)] // a CLI times itself

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use udx::socket::Socket;

#[derive(Debug)]
struct Args {
    send: bool,
    bind: SocketAddr,
    id: u32,
    peer: SocketAddr,
    peer_id: u32,
    bytes: Option<u64>,
    sink: bool,
    hash: bool,
}

fn usage() -> String {
    "usage: udxcat send|recv --bind HOST:PORT --id N --peer HOST:PORT --peer-id M [--bytes COUNT] [--sink] [--no-hash]".into()
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or_else(usage)?;
    let send = match mode.as_str() {
        "send" => true,
        "recv" => false,
        _ => return Err(usage()),
    };
    let (mut bind, mut id, mut peer, mut peer_id) = (None, None, None, None);
    let (mut bytes, mut sink, mut hash) = (None, false, true);
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
            _ => return Err(format!("unknown argument {a}\n{}", usage())),
        }
    }
    Ok(Args {
        send,
        bind: bind.ok_or("--bind is required")?,
        id: id.ok_or("--id is required")?,
        peer: peer.ok_or("--peer is required")?,
        peer_id: peer_id.ok_or("--peer-id is required")?,
        bytes,
        sink,
        hash,
    })
}

/// Deterministic pseudo-random bytes (SplitMix64 over the 8-byte block index).
fn fill(buf: &mut [u8], offset: u64) {
    debug_assert!(offset.is_multiple_of(8));
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut z = (offset / 8 + i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let b = z.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
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
    let socket = Socket::bind(args.bind).map_err(|e| format!("bind {}: {e}", args.bind))?;
    let mut stream = socket
        .create_stream(args.id)
        .map_err(|e| format!("create stream: {e}"))?;
    stream
        .connect(args.peer_id, args.peer)
        .map_err(|e| format!("connect: {e}"))?;
    let mut sha = args.hash.then(Sha256::new);
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut start = Instant::now();
    if args.send {
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
        if std::env::var_os("UDXCAT_STATS").is_some() {
            eprintln!("stats: {:?} mtu {:?}", stream.stats(), stream.mtu());
        }
        res.map_err(|e| format!("end: {e}"))?;
        // Our END is acknowledged: every byte arrived. Give the peer a moment to end too.
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.closed()).await;
        Ok(())
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
        // The peer ended first, so it may close as soon as it has acknowledged our END; if that
        // one ACK is lost, our retransmissions reach a stream that is gone (the last-ACK problem
        // TCP's TIME_WAIT exists for). Every byte up to the peer's END has arrived, so that is
        // still a clean end of what we were asked to receive; an error is not.
        match tokio::time::timeout(Duration::from_secs(10), stream.shutdown()).await {
            Ok(res) => res.map_err(|e| format!("end: {e}"))?,
            Err(_) => eprintln!(
                "udxcat: warning: our END was not acknowledged within 10 s \
                 (the peer had already ended and may have closed)"
            ),
        }
        Ok(())
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
