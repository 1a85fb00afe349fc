//! `hyperdht`: a drop-in for the JS package's `hyperdht` binary (hyperdht@6.34.0 `bin.js`).
//!
//! - `hyperdht --bootstrap --host HOST [--port PORT]` runs a bootstrap node
//!   (`DHT.bootstrapper(port, host)`; port defaults to 49737).
//! - `hyperdht [--bootstrap HOST:PORT[,HOST:PORT]] [--nodes N] [--port P] [--host H]` runs N DHT
//!   nodes, printing a line per node with its bound address and when it becomes persistent.
//! - `--persistent` (ours): nodes become persistent as soon as their address checks out
//!   (`ephemeral: false` in JS) instead of after JS's 20 stable minutes.

// The binary keeps the library's no-panic rule (bad flags and addresses are reported, not
// unwrapped); it is its own crate root, so the rule is repeated here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use clap::Parser;
use dht::rpc::Config;
use dht::runtime::Dht;

#[derive(Debug, Parser)]
#[command(name = "hyperdht", about = "Run HyperDHT bootstrap or DHT nodes")]
struct Args {
    /// Bootstrap mode when given without a value; otherwise a comma-separated list of
    /// bootstrap nodes (`host:port` or `suggestedIP@host:port`).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    bootstrap: Option<String>,
    /// Host to bind (and, for a bootstrap node, its public IPv4 address).
    #[arg(long)]
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
}

fn addr_js(a: SocketAddrV4) -> String {
    format!("{{ host: '{}', family: 4, port: {} }}", a.ip(), a.port())
}

async fn resolve(list: &str) -> anyhow_lite::Result<Vec<SocketAddrV4>> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // `suggestedIP@hostname:port`: try the suggested IP (JS pings it first).
        let (host, port) = entry.rsplit_once(':').ok_or_else(|| {
            anyhow_lite::err(format!("bootstrap node format is host:port: {entry}"))
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow_lite::err(format!("bad port in {entry}")))?;
        let host = host.split('@').next().unwrap_or(host);
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            out.push(SocketAddrV4::new(ip, port));
            continue;
        }
        let found = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| anyhow_lite::err(format!("cannot resolve {host}: {e}")))?
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

mod anyhow_lite {
    pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
    pub(crate) fn err(s: String) -> Box<dyn std::error::Error + Send + Sync> {
        s.into()
    }
}

fn parse_host(h: Option<&str>, default: Ipv4Addr) -> anyhow_lite::Result<Ipv4Addr> {
    match h {
        None => Ok(default),
        Some(h) => h
            .parse()
            .map_err(|_| anyhow_lite::err(format!("host must be an IPv4 address: {h}"))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow_lite::Result<()> {
    let args = Args::parse();
    let is_bootstrap = matches!(args.bootstrap.as_deref(), Some(""));
    if is_bootstrap {
        let port = args.port.filter(|p| *p != 0).unwrap_or(49_737);
        let Some(host) = args.host.as_deref() else {
            return Err(anyhow_lite::err(
                "You need to specify --host <node ip>".into(),
            ));
        };
        let ip = parse_host(Some(host), Ipv4Addr::UNSPECIFIED)?;
        if ip.is_unspecified() {
            return Err(anyhow_lite::err("Invalid host".into()));
        }
        println!("Starting DHT bootstrap node...");
        let addr = SocketAddrV4::new(ip, port);
        let dht = Dht::bootstrapper(addr, addr, Config::default()).await?;
        dht.ready().await?;
        println!("Bootstrap node bound to {}", addr_js(dht.local_addr()));
        println!("Fully started Hyperswarm DHT bootstrap node");
        let _ = tokio::signal::ctrl_c().await;
        dht.shutdown().await;
        println!("Bootstrap node closed");
        return Ok(());
    }

    let count = if args.node {
        1
    } else {
        args.nodes.unwrap_or(1).max(1)
    };
    let port = args.port.unwrap_or(0);
    if port != 0 && count != 1 {
        return Err(anyhow_lite::err(
            "--port is only valid when running a single node".into(),
        ));
    }
    let host = parse_host(args.host.as_deref(), Ipv4Addr::UNSPECIFIED)?;
    let bootstrap = match args.bootstrap.as_deref() {
        Some(list) => resolve(list).await?,
        None => resolve("88.99.3.86:49737,142.93.90.113:49737,138.68.147.8:49737").await?,
    };
    println!("Booting DHT nodes...");
    let mut all = Vec::new();
    for i in 0..count {
        let config = Config {
            bootstrap: bootstrap.clone(),
            ephemeral: if args.persistent { Some(false) } else { None },
            ..Config::default()
        };
        let dht = Dht::bind(SocketAddrV4::new(host, port), config).await?;
        dht.ready().await?;
        let bound = dht.local_addr();
        println!("Node #{i} bound to {}", addr_js(bound));
        let mut w = dht.watch();
        tokio::spawn(async move {
            let mut persistent = w.borrow().id.is_some();
            if persistent {
                println!(
                    "Node #{i} is persistent, joining remote routing tables {}",
                    addr_js(bound)
                );
            }
            while w.changed().await.is_ok() {
                let now = w.borrow().id.is_some();
                if now && !persistent {
                    println!(
                        "Node #{i} is persistent, joining remote routing tables {}",
                        addr_js(bound)
                    );
                } else if !now && persistent {
                    println!("Node #{i} is ephemeral {}", addr_js(bound));
                }
                persistent = now;
            }
        });
        all.push(dht);
    }
    println!(
        "Fully started {count} Hyperswarm DHT node{}",
        if count == 1 { "" } else { "s" }
    );
    let _ = tokio::signal::ctrl_c().await;
    println!("Shutting down nodes...");
    for d in &all {
        d.shutdown().await;
    }
    Ok(())
}
