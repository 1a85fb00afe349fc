//! Secret-stream encrypt+decrypt throughput in one process, Rust beside JS in the same run.
//!
//! `cargo bench -p noise --bench secret_stream_throughput` (release build). For each message
//! size, one [`noise::SecretStream`] frames and encrypts messages and its peer parses and
//! decrypts them (sans-IO core, no sockets; frames are handed over without a copy, as the JS
//! bench passes its Buffers along); `interop-tests/js/secret-stream-bench.js` does the same
//! with two `@hyperswarm/secret-stream` instances joined in memory. Rust runs twice: both ends
//! on one thread (like for like with Node's single event loop) and each end on its own thread
//! (as a multi-threaded runtime runs a connection's writer and reader). Rust and JS alternate
//! per size and round; medians and the ratios are printed as a Markdown table. The JS side
//! needs `npm ci` in `interop-tests/js` (skipped with a note otherwise).
//! Environment: `NOISE_BENCH_MB` (default 128) plaintext MiB per measurement,
//! `NOISE_BENCH_ROUNDS` (default 3), `NOISE_BENCH_SIZES` (comma-separated message sizes in
//! bytes; default 64 B to 1 MiB).

#![allow(clippy::disallowed_methods)] // tests and benchmarks take real time as their origin

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
    b.recv().feed(a.send_ref().outgoing());
    let n = a.send_ref().outgoing().len();
    a.send().consume_outgoing(n);
    a.recv().feed(b.send_ref().outgoing());
    let n = b.send_ref().outgoing().len();
    b.send().consume_outgoing(n);
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
    let mut spare = Vec::new();
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        for _ in 0..batch.min(count - sent) {
            a.write(&msg).unwrap();
            sent += 1;
        }
        // hand the frames over without a copy, as the JS bench passes its Buffers along
        let wire = a.send().swap_outgoing(std::mem::take(&mut spare));
        spare = b.recv().feed_vec(wire);
        while let Some(m) = b.poll_message().unwrap() {
            received += m.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(received, count * size);
    received as f64 / secs / 1e6
}

/// As [`rust_run`], but the sending stream and the receiving stream each run on their own
/// thread (as a multi-threaded runtime runs a connection's writer and reader), handing frames
/// over through a bounded channel; buffers travel back for reuse. MB/s of plaintext received.
fn rust_run_threaded(size: usize, total: usize) -> f64 {
    use std::sync::mpsc::{channel, sync_channel};
    let (mut a, mut b) = pair();
    let count = total.div_ceil(size);
    let batch = (256 * 1024 / size).max(1);
    let (tx, rx) = sync_channel::<Vec<u8>>(4);
    let (back_tx, back_rx) = channel::<Vec<u8>>();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let msg = vec![0xaau8; size];
        let mut sent = 0;
        while sent < count {
            for _ in 0..batch.min(count - sent) {
                a.write(&msg).unwrap();
                sent += 1;
            }
            let spare = back_rx.try_recv().unwrap_or_default();
            tx.send(a.send().swap_outgoing(spare)).unwrap();
        }
    });
    let mut received = 0usize;
    while let Ok(wire) = rx.recv() {
        let old = b.recv().feed_vec(wire);
        let _ = back_tx.send(old);
        while let Some(m) = b.poll_message().unwrap() {
            received += m.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    sender.join().unwrap();
    assert_eq!(received, count * size);
    received as f64 / secs / 1e6
}

/// One JS measurement of `size` (the script warms up first); `None` when node or the
/// packages are missing.
fn js_run(script: &str, size: usize, total: usize) -> Option<f64> {
    let script = format!(
        "{}/../interop-tests/js/{script}",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("node")
        .args([&script, &size.to_string(), &total.to_string()])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next()?;
            serde_json::from_str::<serde_json::Value>(line).ok()?["mbPerSec"].as_f64()
        }
        Ok(out) => {
            eprintln!(
                "JS bench failed (run `npm ci` in interop-tests/js): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run node: {e}");
            None
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    // `cargo bench` passes `--bench`; arguments are ignored
    let mib: usize = std::env::var("NOISE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let rounds: usize = std::env::var("NOISE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let total = mib * 1024 * 1024;
    let sizes: Vec<usize> = std::env::var("NOISE_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 256, 1024, 4 * 1024, 16 * 1024, 64 * 1024, 1024 * 1024]);
    rust_run(16 * 1024, 16 * 1024 * 1024); // warm-up

    // Rust and JS alternate per size and round, so load changes on a shared machine hit both.
    println!(
        "secret-stream encrypt+decrypt, one process, {mib} MiB plaintext per measurement, \
         median of {rounds} alternating Rust/JS rounds (MB/s of plaintext)"
    );
    println!(
        "| message size | Rust, 1 thread | JS, 1 thread | **Rust / JS** \
         | Rust, 2 threads | JS, 2 workers | **Rust / JS** |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut all_rounds = Vec::new();
    for size in sizes {
        let [mut r, mut j, mut t, mut w] = [(); 4].map(|_| Vec::new());
        for _ in 0..rounds {
            r.push(rust_run(size, total));
            j.extend(js_run("secret-stream-bench.js", size, total));
            t.push(rust_run_threaded(size, total));
            w.extend(js_run("secret-stream-bench-workers.js", size, total));
        }
        let label = if size >= 1024 * 1024 {
            format!("{} MiB", size / (1024 * 1024))
        } else if size >= 1024 {
            format!("{} KiB", size / 1024)
        } else {
            format!("{size} B")
        };
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        all_rounds.push(format!(
            "| {label} | {} | {} | {} | {} |",
            list(&r),
            list(&j),
            list(&t),
            list(&w)
        ));
        let cell = |v: &mut Vec<f64>| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.0}", median(v))
            }
        };
        let ratio = |a: &mut Vec<f64>, b: &mut Vec<f64>| {
            if b.is_empty() {
                "n/a".to_string()
            } else {
                format!("**{:.2}x**", median(a) / median(b))
            }
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} |",
            cell(&mut r),
            cell(&mut j),
            ratio(&mut r, &mut j),
            cell(&mut t),
            cell(&mut w),
            ratio(&mut t, &mut w)
        );
    }
    println!();
    println!("Rounds, in order:");
    println!();
    println!("| message size | Rust, 1 thread | JS, 1 thread | Rust, 2 threads | JS, 2 workers |");
    println!("|---:|---|---|---|---|");
    for line in all_rounds {
        println!("{line}");
    }
}
