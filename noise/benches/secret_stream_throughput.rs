//! Secret-stream encrypt+decrypt throughput in one process, Rust beside JS in the same run.
//!
//! `cargo bench -p noise --bench secret_stream_throughput` (release build). For each message
//! size, one [`noise::SecretStream`] frames and encrypts messages and its peer parses and
//! decrypts them (sans-IO core, no sockets); then `interop-tests/js/secret-stream-bench.js`
//! does the same with two `@hyperswarm/secret-stream` instances joined in memory, and the
//! ratio is printed. The JS side needs `npm ci` in `interop-tests/js` (skipped with a note
//! otherwise). Environment: `NOISE_BENCH_MB` (default 256) plaintext MiB per size.

use std::process::Command;
use std::time::Instant;

use noise::{Config, HandshakeResult, Randomness, SecretStream};

fn pair() -> (SecretStream, SecretStream) {
    // the same fixed keys as the JS bench
    let res = |init: bool| HandshakeResult {
        is_initiator: init,
        tx: if init { [2; 32] } else { [3; 32] },
        rx: if init { [3; 32] } else { [2; 32] },
        hash: [1; 64],
        local_public_key: if init { [4; 32] } else { [5; 32] },
        remote_public_key: if init { [5; 32] } else { [4; 32] },
    };
    let rand = |b: u8| Randomness {
        ephemeral_seed: [b; 32],
        header: [b; 24],
        send_counter: [b; 8],
    };
    let mut a = SecretStream::from_handshake(&res(true), rand(7), Config::default());
    let mut b = SecretStream::from_handshake(&res(false), rand(8), Config::default());
    b.feed(a.outgoing());
    let n = a.outgoing().len();
    a.consume_outgoing(n);
    a.feed(b.outgoing());
    let n = b.outgoing().len();
    b.consume_outgoing(n);
    assert!(a.poll_message().unwrap().is_none() && b.poll_message().unwrap().is_none());
    (a, b)
}

/// Returns MB/s (10^6 bytes) of plaintext through write + feed + poll_message.
fn rust_run(size: usize, total: usize) -> f64 {
    let (mut a, mut b) = pair();
    let msg = vec![0xaau8; size];
    let count = total.div_ceil(size);
    // batch a few frames per feed, as a socket read would deliver them
    let batch = (256 * 1024 / size).max(1);
    let mut received = 0usize;
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        for _ in 0..batch.min(count - sent) {
            a.write(&msg).unwrap();
            sent += 1;
        }
        let out = a.outgoing();
        let dst = b.input_buffer(out.len());
        dst.copy_from_slice(out);
        let n = out.len();
        b.input_filled(n);
        a.consume_outgoing(n);
        while let Some(m) = b.poll_message().unwrap() {
            received += m.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(received, count * size);
    received as f64 / secs / 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments
    let mib: usize = std::env::var("NOISE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let total = mib * 1024 * 1024;
    let sizes = [
        64usize,
        256,
        1024,
        4 * 1024,
        16 * 1024,
        64 * 1024,
        1024 * 1024,
    ];
    rust_run(16 * 1024, 16 * 1024 * 1024); // warm-up
    let rust: Vec<f64> = sizes.iter().map(|&s| rust_run(s, total)).collect();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../interop-tests/js/secret-stream-bench.js"
    );
    let mut args = vec![script.to_string()];
    for s in sizes {
        args.push(s.to_string());
        args.push(total.to_string());
    }
    let js: Vec<Option<f64>> = match Command::new("node").args(&args).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut v: Vec<Option<f64>> = text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|j| j["mbPerSec"].as_f64())
                })
                .collect();
            v.resize(sizes.len(), None);
            v
        }
        Ok(out) => {
            eprintln!(
                "JS bench failed (run `npm ci` in interop-tests/js): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            vec![None; sizes.len()]
        }
        Err(e) => {
            eprintln!("cannot run node: {e}");
            vec![None; sizes.len()]
        }
    };

    println!("secret-stream encrypt+decrypt, one process, {mib} MiB plaintext per size");
    println!("| message size | Rust MB/s | JS MB/s | Rust / JS |");
    println!("|---:|---:|---:|---:|");
    for ((size, r), j) in sizes.iter().zip(&rust).zip(&js) {
        let label = if *size >= 1024 * 1024 {
            format!("{} MiB", size / (1024 * 1024))
        } else if *size >= 1024 {
            format!("{} KiB", size / 1024)
        } else {
            format!("{size} B")
        };
        match j {
            Some(j) => println!("| {label} | {r:.0} | {j:.0} | {:.2}x |", r / j),
            None => println!("| {label} | {r:.0} | n/a | n/a |"),
        }
    }
}
