//! `hyperdht`: a drop-in for the JS package's `hyperdht` binary (hyperdht@6.34.0 `bin.js`),
//! whose nodes are full HyperDHT storage nodes, plus operator commands that use any HyperDHT
//! network (JS or Rust) from a shell.
//!
//! Node modes (JS's flags):
//! - `hyperdht --bootstrap --host HOST [--port PORT]` runs a bootstrap node
//!   (`HyperDHT.bootstrapper(port, host)`; port defaults to 49737).
//! - `hyperdht [--bootstrap HOST:PORT[,HOST:PORT]] [--nodes N] [--port P] [--host H]` runs N
//!   DHT nodes, printing a line per node with its bound address and when it becomes
//!   persistent (and so a storage node).
//! - `--persistent` (ours): nodes become persistent as soon as their address checks out
//!   (`ephemeral: false` in JS) instead of after JS's 20 stable minutes.
//!
//! Operator commands (ours), each on an ephemeral client node, with `--bootstrap HOST:PORT`
//! and `--host`, printing JSON on stdout (one object per line) and, on failure, one sentence
//! on stderr with exit code 1:
//! - `lookup TOPIC`: a line per reply (`dht.lookup`), then a summary line.
//! - `announce TOPIC [--seed HEX]`: announces (`dht.announce`), re-announces every 10 minutes
//!   (records live 20), and unannounces on Ctrl-C or SIGTERM.
//! - `listen [--seed HEX] [--echo]` and `connect PUBLIC_KEY`: an encrypted connection to a
//!   key, piped to stdin/stdout or echoed (module `conn`).
//! - `immutable-put VALUE`, `immutable-get HASH`, `mutable-put --seed HEX [--seq N] VALUE`,
//!   `mutable-get PUBLIC_KEY [--seq N] [--first]`.
//!
//! A TOPIC of 64 hex digits is the 32-byte topic itself; any other string is hashed
//! (BLAKE2b-256 of its UTF-8 bytes, `hash(Buffer.from(TOPIC))`).

// The binary keeps the library's no-panic rule (bad flags and addresses are reported, not
// unwrapped); it is its own crate root, so the rule is repeated here. It owns the clock and
// the OS RNG (a fresh key pair when no seed is given).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

/// Writes one line to stdout. `println!` panics when stdout is closed (`hyperdht lookup T |
/// head -1`); a closed pipe ends the process quietly instead, and another write error is said
/// in one sentence with exit code 1.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($arg)*).and_then(|()| o.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("cannot write to stdout: {e}");
                std::process::exit(1);
            }
            std::process::exit(0);
        }
    }};
}

use clap::{Parser, Subcommand};
use dht::crypto::{KeyPair, hash};
use dht::hyperdht::{Committed, HyperDhtConfig};
use dht::rpc::Config;
use dht::runtime::HyperDhtNode;

#[path = "hyperdht/conn.rs"]
mod conn;

/// Public bootstrap nodes (`lib/constants.js` `BOOTSTRAP_NODES`).
const PUBLIC_BOOTSTRAP: &str = "88.99.3.86:49737,142.93.90.113:49737,138.68.147.8:49737";
/// How often `announce` renews its records (they expire after 20 minutes).
const REANNOUNCE: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Parser)]
#[command(
    name = "hyperdht",
    about = "Run HyperDHT nodes, or use a HyperDHT network"
)]
struct Args {
    /// Bootstrap mode when given without a value; otherwise a comma-separated list of
    /// bootstrap nodes (`host:port` or `suggestedIP@host:port`).
    #[arg(long, num_args = 0..=1, default_missing_value = "", global = true)]
    bootstrap: Option<String>,
    /// Host to bind (and, for a bootstrap node, its public IPv4 address).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Port to bind.
    #[arg(long)]
    port: Option<u16>,
    /// Number of DHT nodes to run.
    #[arg(long)]
    nodes: Option<usize>,
    /// Run one node (JS's `--node`).
    #[arg(long)]
    node: bool,
    /// Become persistent as soon as the address checks out (`ephemeral: false`).
    #[arg(long)]
    persistent: bool,
    #[command(subcommand)]
    command: Option<Op>,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// Listen on a key pair: print {"publicKey": HEX} on stderr, then pipe the first
    /// connection to stdout/stdin, or echo every connection back.
    Listen {
        /// 32-byte key-pair seed in hex (random when absent).
        #[arg(long)]
        seed: Option<String>,
        /// Echo every connection back instead of piping the first one.
        #[arg(long)]
        echo: bool,
    },
    /// Connect to PUBLIC_KEY and pipe stdin/stdout over the connection.
    Connect {
        /// 64 hex digits.
        public_key: String,
    },
    /// Print the peer records announced under TOPIC.
    Lookup {
        /// 64 hex digits, or a string to hash.
        topic: String,
    },
    /// Announce a key pair under TOPIC until Ctrl-C or SIGTERM, then unannounce.
    Announce {
        /// 64 hex digits, or a string to hash.
        topic: String,
        /// 32-byte key-pair seed in hex (random when absent).
        #[arg(long)]
        seed: Option<String>,
    },
    /// Store VALUE under its hash.
    ImmutablePut {
        /// The value (UTF-8).
        value: String,
    },
    /// Fetch the value whose hash is HASH.
    ImmutableGet {
        /// 64 hex digits.
        hash: String,
    },
    /// Store VALUE signed by the key pair of SEED.
    MutablePut {
        /// 32-byte key-pair seed in hex.
        #[arg(long)]
        seed: String,
        /// Sequence number (must grow with each new value).
        #[arg(long, default_value_t = 0)]
        seq: u64,
        /// The value (UTF-8).
        value: String,
    },
    /// Fetch the latest value signed by PUBLIC_KEY.
    MutableGet {
        /// 64 hex digits.
        public_key: String,
        /// Lowest sequence number wanted.
        #[arg(long, default_value_t = 0)]
        seq: u64,
        /// Stop at the first valid value instead of the highest seq (`latest: false`).
        #[arg(long)]
        first: bool,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

fn err(s: impl Into<String>) -> Error {
    s.into().into()
}

fn addr_js(a: SocketAddrV4) -> String {
    format!("{{ host: '{}', family: 4, port: {} }}", a.ip(), a.port())
}

async fn resolve(list: &str) -> Result<Vec<SocketAddrV4>> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // `suggestedIP@hostname:port`: try the suggested IP (JS pings it first).
        let (host, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| err(format!("bootstrap node format is host:port: {entry}")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err(format!("bad port in {entry}")))?;
        let host = host.split('@').next().unwrap_or(host);
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            out.push(SocketAddrV4::new(ip, port));
            continue;
        }
        let found = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| err(format!("cannot resolve {host}: {e}")))?
            .find_map(|a| match a {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            });
        match found {
            Some(a) => out.push(a),
            None => eprintln!("no IPv4 address for {host}, skipped"),
        }
    }
    Ok(out)
}

fn parse_host(h: Option<&str>, default: Ipv4Addr) -> Result<Ipv4Addr> {
    match h {
        None => Ok(default),
        Some(h) => h
            .parse()
            .map_err(|_| err(format!("host must be an IPv4 address: {h}"))),
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    let bytes = s.as_bytes();
    let mut out = [0u8; 32];
    if bytes.len() != 64 {
        return Err(err(format!("{what} must be 64 hex digits")));
    }
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| err(format!("{what} is not hex")))?;
        *o = u8::from_str_radix(s, 16).map_err(|_| err(format!("{what} is not hex")))?;
    }
    Ok(out)
}

fn topic_of(s: &str) -> [u8; 32] {
    from_hex32(s, "topic").unwrap_or_else(|_| hash(s.as_bytes()))
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn addrs(list: &[SocketAddrV4]) -> String {
    let v: Vec<String> = list.iter().map(|a| js(&a.to_string())).collect();
    format!("[{}]", v.join(","))
}

/// `"value"` (UTF-8 or null) and `"valueHex"`.
fn value_fields(v: &[u8]) -> String {
    let text = std::str::from_utf8(v).map_or_else(|_| "null".to_string(), js);
    format!("\"value\":{text},\"valueHex\":{}", js(&to_hex(v)))
}

fn committed(c: &Committed) -> String {
    let refused: Vec<String> = c
        .refused
        .iter()
        .map(|(a, e)| format!("{{\"node\":{},\"error\":{e}}}", js(&a.to_string())))
        .collect();
    format!(
        "\"closestNodes\":{},\"answered\":{},\"failed\":{},\"refused\":[{}]",
        addrs(&c.closest_nodes),
        c.answered,
        c.failed,
        refused.join(",")
    )
}

fn key_pair(seed: Option<&str>) -> Result<KeyPair> {
    let seed = match seed {
        Some(s) => from_hex32(s, "seed")?,
        None => {
            let mut s = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut s);
            s
        }
    };
    Ok(KeyPair::from_seed(&seed))
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn operator(args: &Args, op: &Op) -> Result<()> {
    let host = parse_host(args.host.as_deref(), Ipv4Addr::UNSPECIFIED)?;
    let bootstrap = match args.bootstrap.as_deref() {
        Some("") => return Err(err("--bootstrap needs HOST:PORT with a command")),
        Some(list) => resolve(list).await?,
        None => resolve(PUBLIC_BOOTSTRAP).await?,
    };
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap,
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let dht = HyperDhtNode::bind(SocketAddrV4::new(host, args.port.unwrap_or(0)), config).await?;
    dht.ready().await?;
    let out = run_op(&dht, op).await;
    dht.destroy().await;
    out
}

async fn run_op(dht: &HyperDhtNode, op: &Op) -> Result<()> {
    match op {
        Op::Listen { seed, echo } => conn::listen(dht, seed.as_deref(), *echo).await?,
        Op::Connect { public_key } => conn::connect(dht, public_key).await?,
        Op::Lookup { topic } => {
            let topic = topic_of(topic);
            let mut l = dht.lookup(topic).await?;
            let (mut replies, mut keys) = (0usize, std::collections::BTreeSet::new());
            while let Some(r) = l.next().await {
                let r = r?;
                replies += 1;
                let peers: Vec<String> = r
                    .peers
                    .iter()
                    .map(|p| {
                        keys.insert(p.public_key);
                        format!(
                            "{{\"publicKey\":{},\"relayAddresses\":{}}}",
                            js(&to_hex(&p.public_key)),
                            addrs(&p.relay_addresses)
                        )
                    })
                    .collect();
                out!(
                    "{{\"type\":\"reply\",\"from\":{},\"peers\":[{}],\"bump\":{}}}",
                    js(&r.from.to_string()),
                    peers.join(","),
                    r.bump
                );
            }
            let keys: Vec<String> = keys.iter().map(|k| js(&to_hex(k))).collect();
            out!(
                "{{\"type\":\"done\",\"topic\":{},\"replies\":{replies},\"publicKeys\":[{}]}}",
                js(&to_hex(&topic)),
                keys.join(",")
            );
        }
        Op::Announce { topic, seed } => {
            let topic = topic_of(topic);
            let kp = key_pair(seed.as_deref())?;
            let head = format!(
                "\"topic\":{},\"publicKey\":{}",
                js(&to_hex(&topic)),
                js(&to_hex(&kp.public_key))
            );
            let c = dht.announce(topic, &kp, &[]).await?;
            out!("{{\"type\":\"announced\",{head},{}}}", committed(&c));
            let stop = stopped();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(REANNOUNCE) => {
                        let c = dht.announce(topic, &kp, &[]).await?;
                        out!("{{\"type\":\"announced\",{head},{}}}", committed(&c));
                    }
                }
            }
            let c = dht.unannounce(topic, &kp).await?;
            out!("{{\"type\":\"unannounced\",{head},{}}}", committed(&c));
        }
        Op::ImmutablePut { value } => {
            let (h, c) = dht.immutable_put(value.as_bytes()).await?;
            out!("{{\"hash\":{},{}}}", js(&to_hex(&h)), committed(&c));
        }
        Op::ImmutableGet { hash } => {
            let h = from_hex32(hash, "hash")?;
            let v = dht.immutable_get(h).await?;
            out!(
                "{{\"hash\":{},{},\"from\":{}}}",
                js(&to_hex(&h)),
                value_fields(&v.value),
                js(&v.from.to_string())
            );
        }
        Op::MutablePut { seed, seq, value } => {
            let kp = key_pair(Some(seed))?;
            let d = dht.mutable_put(&kp, value.as_bytes(), *seq).await?;
            out!(
                "{{\"publicKey\":{},\"seq\":{},\"signature\":{},{}}}",
                js(&to_hex(&d.public_key)),
                d.seq,
                js(&to_hex(&d.signature)),
                committed(&d.committed)
            );
        }
        Op::MutableGet {
            public_key,
            seq,
            first,
        } => {
            let pk = from_hex32(public_key, "public key")?;
            let v = dht.mutable_get(pk, *seq, !first).await?;
            out!(
                "{{\"publicKey\":{},\"seq\":{},{},\"signature\":{},\"from\":{}}}",
                js(&to_hex(&pk)),
                v.seq,
                value_fields(&v.value),
                js(&to_hex(&v.signature)),
                js(&v.from.to_string())
            );
        }
    }
    Ok(())
}

async fn bootstrap_node(args: &Args) -> Result<()> {
    let port = args.port.filter(|p| *p != 0).unwrap_or(49_737);
    let Some(host) = args.host.as_deref() else {
        return Err(err("You need to specify --host <node ip>"));
    };
    let ip = parse_host(Some(host), Ipv4Addr::UNSPECIFIED)?;
    if ip.is_unspecified() {
        return Err(err("Invalid host"));
    }
    out!("Starting DHT bootstrap node...");
    let addr = SocketAddrV4::new(ip, port);
    let dht = HyperDhtNode::bootstrapper(addr, addr, HyperDhtConfig::default()).await?;
    dht.ready().await?;
    out!("Bootstrap node bound to {}", addr_js(dht.local_addr()));
    out!("Fully started Hyperswarm DHT bootstrap node");
    stopped().await;
    dht.destroy().await;
    out!("Bootstrap node closed");
    Ok(())
}

async fn nodes(args: &Args) -> Result<()> {
    let count = if args.node {
        1
    } else {
        args.nodes.unwrap_or(1).max(1)
    };
    let port = args.port.unwrap_or(0);
    if port != 0 && count != 1 {
        return Err(err("--port is only valid when running a single node"));
    }
    let host = parse_host(args.host.as_deref(), Ipv4Addr::UNSPECIFIED)?;
    let bootstrap = resolve(args.bootstrap.as_deref().unwrap_or(PUBLIC_BOOTSTRAP)).await?;
    out!("Booting DHT nodes...");
    let mut all = Vec::new();
    for i in 0..count {
        let config = HyperDhtConfig {
            rpc: Config {
                bootstrap: bootstrap.clone(),
                ephemeral: if args.persistent { Some(false) } else { None },
                ..Config::default()
            },
            ..HyperDhtConfig::default()
        };
        let dht = HyperDhtNode::bind(SocketAddrV4::new(host, port), config).await?;
        dht.ready().await?;
        let bound = dht.local_addr();
        out!("Node #{i} bound to {}", addr_js(bound));
        let mut w = dht.watch();
        tokio::spawn(async move {
            let mut persistent = false;
            loop {
                let now = w.borrow_and_update().id.is_some();
                if now && !persistent {
                    out!(
                        "Node #{i} is persistent, joining remote routing tables {}",
                        addr_js(bound)
                    );
                } else if !now && persistent {
                    out!("Node #{i} is ephemeral {}", addr_js(bound));
                }
                persistent = now;
                if w.changed().await.is_err() {
                    break;
                }
            }
        });
        all.push(dht);
    }
    out!(
        "Fully started {count} Hyperswarm DHT node{}",
        if count == 1 { "" } else { "s" }
    );
    stopped().await;
    out!("Shutting down nodes...");
    for d in &all {
        d.destroy().await;
    }
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    if let Some(op) = &args.command {
        return operator(&args, op).await;
    }
    if matches!(args.bootstrap.as_deref(), Some("")) {
        return bootstrap_node(&args).await;
    }
    nodes(&args).await
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
