//! The result lines of the peer interface as types, and the checks that make a result
//! well-formed: counts that add up, one sample per success, bytes acknowledged as sent.
//! Extra fields an implementation adds are ignored.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{AnnounceVia, ClientTest, DriverError, Via};

/// Parses a line into `T`, naming the peer and the line when it does not fit.
pub(crate) fn parse<T: DeserializeOwned>(
    peer: &str,
    what: &str,
    line: Value,
) -> Result<T, DriverError> {
    serde_json::from_value(line).map_err(|e| DriverError::Malformed {
        peer: peer.to_owned(),
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

fn bad(peer: &str, reason: String) -> DriverError {
    DriverError::Malformed {
        peer: peer.to_owned(),
        what: "result line".to_owned(),
        reason,
    }
}

fn finite_non_negative(peer: &str, field: &str, v: &[f64]) -> Result<(), DriverError> {
    match v.iter().find(|x| !x.is_finite() || **x < 0.0) {
        Some(x) => Err(bad(peer, format!("{field} holds {x}"))),
        None => Ok(()),
    }
}

/// The `exit` line of a server.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerExit {
    /// Why it stopped (`SIGTERM`, `max-seconds`, `stdin-closed`).
    pub why: String,
    /// Connections it accepted.
    pub connections: u64,
    /// Payload bytes its sinks read.
    pub sink_bytes: u64,
    /// Its RSS when it stopped, when reported.
    pub rss_bytes: Option<u64>,
}

/// Timings of the connect tests (`connect-swarm`, `connect-dht-cold`, `connect-dht-warm`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Samples {
    /// One time per successful iteration.
    pub samples_ms: Vec<f64>,
    /// Failed iterations.
    pub errors: u64,
    /// `connect-swarm`: bootstrap time of each iteration's node (untimed part).
    #[serde(default)]
    pub bootstrap_ms: Vec<f64>,
    /// `connect-swarm`: ping round trip on each first connection.
    #[serde(default)]
    pub first_rtt_ms: Vec<f64>,
    /// Messages of the first failures, when reported.
    #[serde(default)]
    pub error_messages: Vec<String>,
}

/// The result of `connect-rate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRate {
    /// Connections in flight.
    pub concurrency: u32,
    /// Connections started.
    pub attempted: u64,
    /// Connections that opened.
    pub opened: u64,
    /// Connections that failed.
    pub errors: u64,
    /// Wall time of the whole run.
    pub elapsed_ms: f64,
    /// `opened` per second of `elapsed_ms`.
    pub per_sec: f64,
    /// Open latency of each opened connection.
    pub samples_ms: Vec<f64>,
}

/// The server's acknowledgement of a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkAck {
    /// Always `sink`.
    pub op: String,
    /// Payload bytes it read.
    pub bytes: u64,
    /// Its wall time from header to last byte.
    pub ms: Option<f64>,
    /// Its process user CPU over that time, µs.
    pub cpu_user_us: Option<f64>,
    /// Its process system CPU over that time, µs.
    pub cpu_sys_us: Option<f64>,
}

/// One throughput run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputRun {
    /// Payload bytes sent.
    pub bytes: u64,
    /// Bytes per write.
    pub write_size: u64,
    /// From header write to the acknowledgement.
    pub ms: f64,
    /// `bytes` / 10^6 per second.
    pub mb_per_sec: f64,
    /// Client process user CPU, µs.
    pub client_cpu_user_us: f64,
    /// Client process system CPU, µs.
    pub client_cpu_sys_us: f64,
    /// The server's acknowledgement.
    pub server: SinkAck,
}

/// The result of `throughput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    /// One entry per run.
    pub runs: Vec<ThroughputRun>,
    /// Time to open the connection, when reported.
    pub connect_ms: Option<f64>,
    /// `swarm` or `dht`, when reported.
    pub via: Option<String>,
}

/// The result of `rtt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rtt {
    /// One round trip per recorded round.
    pub samples_ms: Vec<f64>,
    /// Recorded rounds.
    pub rounds: u64,
    /// Bytes per line.
    pub size: u64,
    /// Unrecorded rounds.
    pub warmup: u64,
    /// Client process user CPU over the recorded rounds, µs.
    pub client_cpu_user_us: f64,
    /// Client process system CPU over the recorded rounds, µs.
    pub client_cpu_sys_us: f64,
}

/// A checked `client` result.
#[derive(Debug, Clone)]
pub enum ClientResult {
    /// `connect-swarm`.
    ConnectSwarm(Samples),
    /// `connect-dht-cold`.
    ConnectDhtCold(Samples),
    /// `connect-dht-warm`.
    ConnectDhtWarm(Samples),
    /// `connect-rate`.
    ConnectRate(ConnectRate),
    /// `throughput`.
    Throughput(Throughput),
    /// `rtt`.
    Rtt(Rtt),
}

impl ClientResult {
    /// Parses and checks the result line of `test`.
    pub fn from_line(peer: &str, test: &ClientTest, line: Value) -> Result<Self, DriverError> {
        let name = line["test"].as_str().unwrap_or("").to_owned();
        let expected = match test {
            ClientTest::ConnectDht { fresh: true, .. } => "connect-dht-cold",
            ClientTest::ConnectDht { fresh: false, .. } => "connect-dht-warm",
            t => t.name(),
        };
        if name != expected {
            return Err(bad(
                peer,
                format!("test is {name:?}, expected {expected:?}"),
            ));
        }
        let what = "result line";
        match test {
            ClientTest::ConnectSwarm { iterations } | ClientTest::ConnectDht { iterations, .. } => {
                let s: Samples = parse(peer, what, line)?;
                if s.samples_ms.len() as u64 + s.errors != u64::from(*iterations) {
                    return Err(bad(
                        peer,
                        format!(
                            "{} samples and {} errors for {iterations} iterations",
                            s.samples_ms.len(),
                            s.errors
                        ),
                    ));
                }
                finite_non_negative(peer, "samplesMs", &s.samples_ms)?;
                Ok(match test {
                    ClientTest::ConnectSwarm { .. } => Self::ConnectSwarm(s),
                    ClientTest::ConnectDht { fresh: true, .. } => Self::ConnectDhtCold(s),
                    _ => Self::ConnectDhtWarm(s),
                })
            }
            ClientTest::ConnectRate {
                iterations,
                concurrency,
            } => {
                let r: ConnectRate = parse(peer, what, line)?;
                if r.concurrency != *concurrency
                    || r.attempted != u64::from(*iterations)
                    || r.opened + r.errors != r.attempted
                    || r.samples_ms.len() as u64 != r.opened
                {
                    return Err(bad(
                        peer,
                        format!(
                            "concurrency {}, attempted {}, opened {}, errors {}, {} samples for \
                             {iterations} iterations at concurrency {concurrency}",
                            r.concurrency,
                            r.attempted,
                            r.opened,
                            r.errors,
                            r.samples_ms.len()
                        ),
                    ));
                }
                finite_non_negative(peer, "samplesMs", &r.samples_ms)?;
                let expect = r.opened as f64 / (r.elapsed_ms / 1000.0);
                if r.elapsed_ms.is_nan()
                    || r.elapsed_ms <= 0.0
                    || r.per_sec.is_nan()
                    || (r.per_sec - expect).abs() > 0.01 * expect.max(1.0)
                {
                    return Err(bad(
                        peer,
                        format!("perSec {} is not opened / elapsed ({expect})", r.per_sec),
                    ));
                }
                Ok(Self::ConnectRate(r))
            }
            ClientTest::Throughput {
                bytes, write_size, ..
            } => {
                let t: Throughput = parse(peer, what, line)?;
                if t.runs.is_empty() {
                    return Err(bad(peer, "no runs".to_owned()));
                }
                for r in &t.runs {
                    if r.bytes != *bytes
                        || r.write_size != u64::from(*write_size)
                        || r.server.op != "sink"
                        || r.server.bytes != *bytes
                    {
                        return Err(bad(
                            peer,
                            format!(
                                "a run of {} bytes in {}-byte writes acknowledged as {} {} \
                                 bytes, expected {bytes} in {write_size}",
                                r.bytes, r.write_size, r.server.op, r.server.bytes
                            ),
                        ));
                    }
                    if r.ms.is_nan() || r.ms <= 0.0 || !r.mb_per_sec.is_finite() {
                        return Err(bad(peer, format!("a run took {} ms", r.ms)));
                    }
                }
                if let (ClientTest::Throughput { via, .. }, Some(v)) = (test, t.via.as_deref()) {
                    let expect = match via {
                        Via::Swarm => "swarm",
                        Via::Dht => "dht",
                    };
                    if v != expect {
                        return Err(bad(peer, format!("via {v}, expected {expect}")));
                    }
                }
                Ok(Self::Throughput(t))
            }
            ClientTest::Rtt {
                rounds,
                msg_size,
                warmup,
            } => {
                let r: Rtt = parse(peer, what, line)?;
                if r.rounds != u64::from(*rounds)
                    || r.samples_ms.len() as u64 != r.rounds
                    || r.warmup != u64::from(*warmup)
                    || r.size != u64::from(*msg_size)
                {
                    return Err(bad(
                        peer,
                        format!(
                            "{} samples, rounds {}, warmup {}, size {} for {rounds} rounds of \
                             {msg_size} bytes after {warmup}",
                            r.samples_ms.len(),
                            r.rounds,
                            r.warmup,
                            r.size
                        ),
                    ));
                }
                finite_non_negative(peer, "samplesMs", &r.samples_ms)?;
                Ok(Self::Rtt(r))
            }
        }
    }
}

/// The swarm part of `announce`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwarmAnnounce {
    /// Time of `listen()`.
    pub listen_ms: f64,
    /// Time of each `join(topic, server).flushed()`.
    pub samples_ms: Vec<f64>,
}

/// The DHT part of `announce`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhtAnnounce {
    /// Time of each `announce` to completion.
    pub samples_ms: Vec<f64>,
    /// Time of each `unannounce`.
    pub unannounce_ms: Vec<f64>,
}

/// The result of `announce`.
#[derive(Debug, Clone, Deserialize)]
pub struct AnnounceResult {
    /// Present unless `--via dht`.
    pub swarm: Option<SwarmAnnounce>,
    /// Present unless `--via swarm`.
    pub dht: Option<DhtAnnounce>,
}

impl AnnounceResult {
    /// Parses and checks an `announce` result line.
    pub fn from_line(
        peer: &str,
        iterations: u32,
        via: AnnounceVia,
        line: Value,
    ) -> Result<Self, DriverError> {
        if line["test"] != "announce" {
            return Err(bad(
                peer,
                format!("test is {}, expected announce", line["test"]),
            ));
        }
        let r: Self = parse(peer, "result line", line)?;
        let n = iterations as usize;
        let want_swarm = via != AnnounceVia::Dht;
        let want_dht = via != AnnounceVia::Swarm;
        match (&r.swarm, want_swarm) {
            (Some(s), true) if s.samples_ms.len() == n => {
                finite_non_negative(peer, "swarm.samplesMs", &s.samples_ms)?;
            }
            (None, false) => {}
            _ => return Err(bad(peer, format!("swarm part does not hold {n} samples"))),
        }
        match (&r.dht, want_dht) {
            (Some(d), true) if d.samples_ms.len() == n && d.unannounce_ms.len() == n => {
                finite_non_negative(peer, "dht.samplesMs", &d.samples_ms)?;
            }
            (None, false) => {}
            _ => return Err(bad(peer, format!("dht part does not hold {n} samples"))),
        }
        Ok(r)
    }
}

/// The result of `lookup`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupResult {
    /// Time to bootstrap the node.
    pub bootstrap_ms: f64,
    /// Per lookup: time to the first reply carrying a peer (`None`: no reply did).
    pub first_ms: Vec<Option<f64>>,
    /// Per lookup: time to the end of the query.
    pub done_ms: Vec<f64>,
    /// Per lookup: nodes that replied.
    pub replies: Vec<u64>,
    /// Lookups that found no peer.
    pub misses: u64,
}

impl LookupResult {
    /// Parses and checks a `lookup` result line.
    pub fn from_line(peer: &str, iterations: u32, line: Value) -> Result<Self, DriverError> {
        if line["test"] != "lookup" {
            return Err(bad(
                peer,
                format!("test is {}, expected lookup", line["test"]),
            ));
        }
        let r: Self = parse(peer, "result line", line)?;
        let n = iterations as usize;
        let misses = r.first_ms.iter().filter(|f| f.is_none()).count() as u64;
        if r.first_ms.len() != n || r.done_ms.len() != n || r.replies.len() != n {
            return Err(bad(peer, format!("not {n} entries per field")));
        }
        if misses != r.misses {
            return Err(bad(
                peer,
                format!(
                    "misses {} but {misses} lookups without a first reply",
                    r.misses
                ),
            ));
        }
        let firsts: Vec<f64> = r.first_ms.iter().flatten().copied().collect();
        finite_non_negative(peer, "firstMs", &firsts)?;
        finite_non_negative(peer, "doneMs", &r.done_ms)?;
        Ok(r)
    }
}

/// The result of `node`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMemory {
    /// Whether a DHT node ran.
    pub dht: bool,
    /// Process RSS after the settle time.
    pub rss_bytes: u64,
    /// Heap in use, when the runtime has such a figure.
    pub heap_used_bytes: Option<u64>,
    /// Time to bootstrap the node, when one ran.
    pub bootstrap_ms: Option<f64>,
}

impl NodeMemory {
    pub(crate) fn check(&self, peer: &str, dht: bool) -> Result<(), DriverError> {
        if self.dht != dht || self.rss_bytes == 0 || (dht && self.bootstrap_ms.is_none()) {
            return Err(bad(
                peer,
                format!(
                    "dht {} (expected {dht}), rssBytes {}, bootstrapMs {:?}",
                    self.dht, self.rss_bytes, self.bootstrap_ms
                ),
            ));
        }
        Ok(())
    }
}
