//! A driver for the peer interface: one command line that every Hyperswarm peer implementation of
//! this project speaks (the JS peer `js/swarm-peer.js` over the pinned `hyperswarm`/`hyperdht`,
//! and the Rust `swarm-peer`), so a test or benchmark can put any implementation in the server
//! seat, the client seat or both and measure them side by side in one run.
//!
//! # The interface
//!
//! A peer is a program started as `PROGRAM [ARGS…] COMMAND --name value … --max-seconds S
//! --exit-on-stdin-close`. Flags without a value are booleans and unknown flags are ignored.
//! `--bootstrap` is `127.0.0.1:PORT[,…]` of a HyperDHT network on loopback (the JS
//! `hyperdht/testnet` of [`crate::Testnet`]); `--topic`, `--public-key` and `--seed` are 64 hex
//! characters. The peer binds and sends only on 127.0.0.1. Stdout carries one JSON object per
//! line (anything else is ignored), stderr is free-form. A fatal problem is the line
//! `{"event":"error","error":"…"}` and a non-zero exit code; the last line is
//! `{"event":"exit",…}`. The peer exits by itself within `--max-seconds`, on SIGTERM, and (with
//! `--exit-on-stdin-close`) when its stdin closes; the driver kills its process group
//! [`KILL_AFTER`] after `--max-seconds`.
//!
//! Commands:
//!
//! - `serve --topic T [--seed S]`: bootstrap a DHT node, listen with the key pair (from the seed
//!   when given), join the topic as server only; print `{"event":"ready","role":"server",
//!   "publicKey","bootstrapMs"}`, `{"event":"listening","publicKey","ms"}`,
//!   `{"event":"announced","topic","ms"}`, serve every connection with the application protocol
//!   until stopped, then `{"event":"exit","why","connections","sinkBytes","rssBytes",…}`.
//! - `client --test T …`: one `{"event":"result","test":T,…}` line, then `exit`. Tests:
//!   `connect-swarm` (per iteration a fresh DHT node, bootstrapped untimed, then the time from
//!   `join(topic, client)` to the first open connection; one ping), `connect-dht` (time of
//!   `connect(publicKey)` with a new key pair until the encrypted stream is open; `--fresh`: a new
//!   DHT node per iteration, reported as `connect-dht-cold`, else `connect-dht-warm`),
//!   `connect-rate` (`--concurrency` connections in flight, each opened and closed, until
//!   `--iterations` started), `throughput` (one connection, a `sink` header and `--bytes` in
//!   `--write-size` writes honouring backpressure, timed to the server's acknowledgement),
//!   `rtt` (one connection in `echo` mode, `--warmup` unrecorded then `--rounds` recorded
//!   round trips of one `--msg-size`-byte line `{"id":i,"pad":"x…"}`, each echo checked).
//! - `announce --iterations N --via both|swarm|dht`, `lookup --topic T --iterations N`,
//!   `node --settle-ms MS [--no-dht]`: DHT operation timings and idle memory.
//!
//! The application protocol on every connection: the client writes one JSON header line (at most
//! 64 KiB). `{"op":"ping"}` is answered `{"op":"pong"}`; `{"op":"sink","bytes":N}` makes the
//! server read exactly N bytes and answer `{"op":"sink","bytes":N,"ms","cpuUserUs","cpuSysUs"}`
//! (its wall time and process CPU over that span); `{"op":"echo"}` makes it write back every
//! later byte until the stream closes. Anything else closes the stream; connections that close
//! without a header are normal.
//!
//! Times are milliseconds from a monotonic clock. The typed results and their consistency checks
//! are in [`results`].

mod process;
pub mod results;

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use process::{PeerProcess, proc_status_kib};
pub use results::{
    AnnounceResult, ClientResult, ConnectRate, DhtAnnounce, LookupResult, NodeMemory, Rtt, Samples,
    ServerExit, SinkAck, SwarmAnnounce, Throughput, ThroughputRun,
};

/// How long after `--max-seconds` the driver kills a peer's process group.
pub const KILL_AFTER: Duration = Duration::from_secs(10);

/// What went wrong while driving a peer.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The program could not be started.
    #[error("cannot start {peer} ({program}): {source}")]
    Spawn {
        /// The peer's label.
        peer: String,
        /// The program that failed to start.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The JS packages could not be installed.
    #[error("the JS peer is not available: {0}")]
    JsSetup(String),
    /// No awaited line came before the deadline.
    #[error("{peer}: no {what} within {secs:.1} s; stderr ends with:\n{stderr}")]
    Timeout {
        /// The peer's label.
        peer: String,
        /// What was awaited.
        what: String,
        /// How long the driver waited.
        secs: f64,
        /// The last lines the peer wrote on stderr.
        stderr: String,
    },
    /// The peer closed stdout (exited) before printing what was awaited.
    #[error("{peer} ended before {what} (exit status {status}); stderr ends with:\n{stderr}")]
    Ended {
        /// The peer's label.
        peer: String,
        /// What was awaited.
        what: String,
        /// Its exit status, when known.
        status: String,
        /// The last lines the peer wrote on stderr.
        stderr: String,
    },
    /// The peer reported a fatal problem with an `error` event.
    #[error("{peer} reported an error: {message}")]
    Peer {
        /// The peer's label.
        peer: String,
        /// The `error` field of its `error` event.
        message: String,
    },
    /// The peer printed a line that breaks the interface.
    #[error("{peer} printed a malformed {what}: {reason}")]
    Malformed {
        /// The peer's label.
        peer: String,
        /// Which line.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The peer exited with a failure status after its result.
    #[error("{peer} exited with status {status} after its result")]
    ExitStatus {
        /// The peer's label.
        peer: String,
        /// Its exit status.
        status: ExitStatus,
    },
}

/// One implementation of the peer interface: a program and the arguments that come before the
/// command (`node js/swarm-peer.js`, or the path of a `swarm-peer` binary).
#[derive(Debug, Clone)]
pub struct PeerImpl {
    /// A short label for tables and error messages (`js`, `rust`).
    pub name: String,
    /// The program to start.
    pub program: PathBuf,
    /// Arguments placed before the command.
    pub args: Vec<String>,
}

impl PeerImpl {
    /// An implementation from its parts.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args,
        }
    }

    /// The project's own JS peer (`node js/swarm-peer.js`), installing the pinned packages first
    /// when needed.
    pub fn js() -> Result<Self, DriverError> {
        let dir = crate::ensure_js_installed().map_err(|e| DriverError::JsSetup(e.to_string()))?;
        Ok(Self::new(
            "js",
            "node",
            vec![dir.join("swarm-peer.js").display().to_string()],
        ))
    }

    /// An implementation from a command line split on whitespace (`js` names the JS peer).
    pub fn parse(name: &str, command_line: &str) -> Result<Self, DriverError> {
        if command_line.trim() == "js" {
            return Self::js();
        }
        let mut words = command_line.split_whitespace().map(str::to_owned);
        let program = words.next().ok_or_else(|| DriverError::Malformed {
            peer: name.to_owned(),
            what: "command line".to_owned(),
            reason: "it is empty".to_owned(),
        })?;
        Ok(Self::new(name, program, words.collect()))
    }
}

/// A random 32-byte value as 64 hex characters (topics and seeds of tests and benchmarks).
pub fn random_hex32() -> String {
    use std::hash::{BuildHasher, Hasher};
    // std's `RandomState` keys come from the OS (once per thread, then advanced per instance),
    // so four of them give 32 bytes no other run repeats, which is all a fresh topic needs.
    (0..4)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// A server peer that is announced on its topic and ready for clients.
#[derive(Debug)]
pub struct Server {
    /// The running process.
    pub process: PeerProcess,
    /// Its public key (hex), from its `ready` line.
    pub public_key: String,
    /// The topic it announced (hex).
    pub topic: String,
    /// `bootstrapMs` of its `ready` line.
    pub bootstrap_ms: f64,
    /// `ms` of its `listening` line.
    pub listening_ms: f64,
    /// `ms` of its `announced` line.
    pub announced_ms: f64,
}

impl Server {
    /// Starts `serve` and waits (up to `timeout`) until it has announced `topic`.
    pub fn start(
        imp: &PeerImpl,
        bootstrap: SocketAddrV4,
        topic: &str,
        seed: Option<&str>,
        max_seconds: u64,
        timeout: Duration,
    ) -> Result<Self, DriverError> {
        let mut args = vec![
            "--bootstrap".to_owned(),
            bootstrap.to_string(),
            "--topic".to_owned(),
            topic.to_owned(),
        ];
        if let Some(seed) = seed {
            args.extend(["--seed".to_owned(), seed.to_owned()]);
        }
        let mut process = PeerProcess::spawn(imp, "serve", &args, max_seconds)?;
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let ready = process.expect_event("ready", left())?;
        let listening = process.expect_event("listening", left())?;
        let announced = process.expect_event("announced", left())?;
        let label = process.label().to_owned();
        let public_key = hex_field(&label, "ready", &ready, "publicKey")?;
        let ms = |v: &Value, line: &str, field: &str| -> Result<f64, DriverError> {
            v[field].as_f64().ok_or_else(|| DriverError::Malformed {
                peer: label.clone(),
                what: format!("{line} line"),
                reason: format!("no number \"{field}\""),
            })
        };
        let bootstrap_ms = ms(&ready, "ready", "bootstrapMs")?;
        let listening_ms = ms(&listening, "listening", "ms")?;
        let announced_ms = ms(&announced, "announced", "ms")?;
        let announced_topic = hex_field(&label, "announced", &announced, "topic")?;
        if announced_topic != topic.to_ascii_lowercase() {
            return Err(DriverError::Malformed {
                peer: label,
                what: "announced line".to_owned(),
                reason: format!("topic {announced_topic} is not {topic}"),
            });
        }
        if hex_field(&label, "listening", &listening, "publicKey")? != public_key {
            return Err(DriverError::Malformed {
                peer: label,
                what: "listening line".to_owned(),
                reason: "its publicKey differs from the ready line's".to_owned(),
            });
        }
        Ok(Self {
            process,
            public_key,
            topic: topic.to_owned(),
            bootstrap_ms,
            listening_ms,
            announced_ms,
        })
    }

    /// Stops the server (SIGTERM) and returns its parsed `exit` line.
    pub fn stop(mut self, timeout: Duration) -> Result<ServerExit, DriverError> {
        let label = self.process.label().to_owned();
        let exit = self
            .process
            .stop(timeout)?
            .ok_or_else(|| DriverError::Ended {
                peer: label.clone(),
                what: "exit line".to_owned(),
                status: "unknown".to_owned(),
                stderr: self.process.stderr_tail(),
            })?;
        results::parse(&label, "exit line", exit)
    }
}

fn hex_field(peer: &str, line: &str, v: &Value, field: &str) -> Result<String, DriverError> {
    match v[field].as_str() {
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(s.to_ascii_lowercase())
        }
        _ => Err(DriverError::Malformed {
            peer: peer.to_owned(),
            what: format!("{line} line"),
            reason: format!("\"{field}\" is not 64 hex characters"),
        }),
    }
}

/// How a client reaches the server for the one-connection tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Hyperswarm `join(topic)` as a client.
    Swarm,
    /// HyperDHT `connect(publicKey)`.
    Dht,
}

/// One `client --test` run with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientTest {
    /// `connect-swarm`: join → first open connection, per iteration a fresh node.
    ConnectSwarm {
        /// `--iterations`.
        iterations: u32,
    },
    /// `connect-dht`: `connect(publicKey)` until open, warm (one node) or cold (`fresh`).
    ConnectDht {
        /// `--iterations`.
        iterations: u32,
        /// `--fresh`: a new bootstrapped node per iteration.
        fresh: bool,
    },
    /// `connect-rate`: connections opened and closed per second.
    ConnectRate {
        /// `--iterations`: connections started in all.
        iterations: u32,
        /// `--concurrency`: connections in flight.
        concurrency: u32,
    },
    /// `throughput`: `bytes` in `write_size` writes to the server's sink.
    Throughput {
        /// `--bytes`.
        bytes: u64,
        /// `--write-size`.
        write_size: u32,
        /// `--via`.
        via: Via,
    },
    /// `rtt`: echo round trips of one line of `msg_size` bytes.
    Rtt {
        /// `--rounds` (recorded).
        rounds: u32,
        /// `--msg-size`.
        msg_size: u32,
        /// `--warmup` (unrecorded rounds before them).
        warmup: u32,
    },
}

impl ClientTest {
    /// The value of `--test`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ConnectSwarm { .. } => "connect-swarm",
            Self::ConnectDht { .. } => "connect-dht",
            Self::ConnectRate { .. } => "connect-rate",
            Self::Throughput { .. } => "throughput",
            Self::Rtt { .. } => "rtt",
        }
    }

    /// The command-line options for a run against `server`.
    pub fn args(&self, bootstrap: SocketAddrV4, server: &Server) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--bootstrap".into(),
            bootstrap.to_string(),
            "--test".into(),
            self.name().into(),
        ];
        let mut opt = |k: &str, v: String| {
            a.push(format!("--{k}"));
            a.push(v);
        };
        match self {
            Self::ConnectSwarm { iterations } => {
                opt("topic", server.topic.clone());
                opt("iterations", iterations.to_string());
            }
            Self::ConnectDht { iterations, fresh } => {
                opt("public-key", server.public_key.clone());
                opt("iterations", iterations.to_string());
                if *fresh {
                    a.push("--fresh".into());
                }
            }
            Self::ConnectRate {
                iterations,
                concurrency,
            } => {
                opt("public-key", server.public_key.clone());
                opt("iterations", iterations.to_string());
                opt("concurrency", concurrency.to_string());
            }
            Self::Throughput {
                bytes,
                write_size,
                via,
            } => {
                match via {
                    Via::Swarm => opt("topic", server.topic.clone()),
                    Via::Dht => {
                        opt("public-key", server.public_key.clone());
                        opt("via", "dht".into());
                    }
                }
                opt("bytes", bytes.to_string());
                opt("write-size", write_size.to_string());
            }
            Self::Rtt {
                rounds,
                msg_size,
                warmup,
            } => {
                opt("topic", server.topic.clone());
                opt("rounds", rounds.to_string());
                opt("msg-size", msg_size.to_string());
                opt("warmup", warmup.to_string());
            }
        }
        a
    }
}

/// Starts a peer, waits for its `result` line and its clean exit, and returns the line.
pub fn run_for_result(
    imp: &PeerImpl,
    command: &str,
    args: &[String],
    max_seconds: u64,
) -> Result<Value, DriverError> {
    let mut p = PeerProcess::spawn(imp, command, args, max_seconds)?;
    let result = p.expect_event("result", Duration::from_secs(max_seconds) + KILL_AFTER)?;
    let status = p.wait(Duration::from_secs(15))?;
    if !status.success() {
        return Err(DriverError::ExitStatus {
            peer: p.label().to_owned(),
            status,
        });
    }
    Ok(result)
}

/// Runs one client test against `server` and returns its checked result.
pub fn run_client(
    imp: &PeerImpl,
    bootstrap: SocketAddrV4,
    server: &Server,
    test: &ClientTest,
    max_seconds: u64,
) -> Result<ClientResult, DriverError> {
    let line = run_for_result(imp, "client", &test.args(bootstrap, server), max_seconds)?;
    ClientResult::from_line(&format!("{} client", imp.name), test, line)
}

/// Which announce timings to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceVia {
    /// Hyperswarm join/flushed and HyperDHT announce/unannounce.
    Both,
    /// Hyperswarm only.
    Swarm,
    /// HyperDHT only.
    Dht,
}

/// Runs `announce` and returns its checked result.
pub fn run_announce(
    imp: &PeerImpl,
    bootstrap: SocketAddrV4,
    iterations: u32,
    via: AnnounceVia,
    max_seconds: u64,
) -> Result<AnnounceResult, DriverError> {
    let via_s = match via {
        AnnounceVia::Both => "both",
        AnnounceVia::Swarm => "swarm",
        AnnounceVia::Dht => "dht",
    };
    let args = [
        "--bootstrap".to_owned(),
        bootstrap.to_string(),
        "--iterations".to_owned(),
        iterations.to_string(),
        "--via".to_owned(),
        via_s.to_owned(),
    ];
    let line = run_for_result(imp, "announce", &args, max_seconds)?;
    AnnounceResult::from_line(&format!("{} announce", imp.name), iterations, via, line)
}

/// Runs `lookup` of `topic` and returns its checked result.
pub fn run_lookup(
    imp: &PeerImpl,
    bootstrap: SocketAddrV4,
    topic: &str,
    iterations: u32,
    max_seconds: u64,
) -> Result<LookupResult, DriverError> {
    let args = [
        "--bootstrap".to_owned(),
        bootstrap.to_string(),
        "--topic".to_owned(),
        topic.to_owned(),
        "--iterations".to_owned(),
        iterations.to_string(),
    ];
    let line = run_for_result(imp, "lookup", &args, max_seconds)?;
    LookupResult::from_line(&format!("{} lookup", imp.name), iterations, line)
}

/// Runs `node` (one idle DHT node, or with `no_dht` the bare runtime) and returns its result.
pub fn run_node(
    imp: &PeerImpl,
    bootstrap: SocketAddrV4,
    settle_ms: u64,
    no_dht: bool,
    max_seconds: u64,
) -> Result<NodeMemory, DriverError> {
    let mut args = vec![
        "--bootstrap".to_owned(),
        bootstrap.to_string(),
        "--settle-ms".to_owned(),
        settle_ms.to_string(),
    ];
    if no_dht {
        args.push("--no-dht".to_owned());
    }
    let line = run_for_result(imp, "node", &args, max_seconds)?;
    let label = format!("{} node", imp.name);
    if line["test"] != "node-memory" {
        return Err(DriverError::Malformed {
            peer: label,
            what: "result line".to_owned(),
            reason: format!("test is {}, expected node-memory", line["test"]),
        });
    }
    let m: NodeMemory = results::parse(&label, "result line", line)?;
    m.check(&label, !no_dht)?;
    Ok(m)
}

/// The `p`-th percentile (0..=100) of `samples` by nearest rank; `None` when there are none.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}
