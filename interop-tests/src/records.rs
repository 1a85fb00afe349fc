//! HyperDHT records on the Rust stack for the live tests: storage, bootstrap and client nodes
//! of the tokio handle `dht::runtime::HyperDhtNode` on 127.0.0.1, a timed lookup, and a
//! mutable put written on the dht-rpc handle `dht::runtime::Dht` (a query of the closest
//! nodes, then one write to each with the token it handed out, as hyperdht 6.34.0 `index.js`
//! `mutablePut` does) that can send what the real client never sends: a tampered signature.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use dht::codec::{Encode, Writer};
use dht::crypto::{KeyPair, hash, sign_mutable};
use dht::hyperdht::messages::MutablePutRequest;
use dht::hyperdht::{Command, HyperDhtConfig};
use dht::rpc::{Config, QueryOpts, Reply, RequestOpts};
use dht::runtime::{Dht, DhtError, HyperDhtNode};
use tokio::task::JoinSet;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The DHT node failed the query or request.
    #[error("dht: {0}")]
    Dht(#[from] DhtError),
    /// No storage node acknowledged the write.
    #[error("no storage node acknowledged the write ({0} closest nodes)")]
    NoAck(usize),
}

fn local() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
}

/// A Rust HyperDHT storage node (`dht::runtime::HyperDhtNode`) on 127.0.0.1:`port` (0 = any):
/// persistent at once (`ephemeral: false`, `firewalled: false`, as `hyperdht/testnet` makes
/// its nodes), bootstrapped from `bootstrap`; returns once it has its id and its store.
pub async fn storage_node(bootstrap: &[SocketAddrV4], port: u16) -> Result<HyperDhtNode, DhtError> {
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: bootstrap.to_vec(),
            ephemeral: Some(false),
            firewalled: false,
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let node = HyperDhtNode::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), config).await?;
    node.ready().await?;
    let mut w = node.watch();
    w.wait_for(|s| s.id.is_some())
        .await
        .map_err(|_| DhtError::Shutdown)?;
    Ok(node)
}

/// A Rust bootstrap node on 127.0.0.1 (`HyperDHT.bootstrapper(port, host)`), which stores
/// records as JS's bootstrappers do.
pub async fn bootstrapper() -> Result<HyperDhtNode, DhtError> {
    let node = HyperDhtNode::bootstrapper(local(), local(), HyperDhtConfig::default()).await?;
    node.ready().await?;
    Ok(node)
}

/// Starts `n` Rust storage nodes on 127.0.0.1 bootstrapping from `bootstrap`.
pub async fn storage_nodes(
    n: usize,
    bootstrap: SocketAddrV4,
) -> Result<Vec<HyperDhtNode>, DhtError> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(storage_node(&[bootstrap], 0).await?);
    }
    Ok(v)
}

/// A Rust HyperDHT client node: ephemeral, bootstrapped from `bootstrap`.
pub async fn hyper_client(bootstrap: SocketAddrV4) -> Result<HyperDhtNode, DhtError> {
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![bootstrap],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let node = HyperDhtNode::bind(local(), config).await?;
    node.ready().await?;
    Ok(node)
}

/// What [`lookup_timed`] saw.
#[derive(Debug, Clone, Default)]
pub struct TimedLookup {
    /// Distinct public keys found.
    pub keys: Vec<[u8; 32]>,
    /// Replies with records.
    pub replies: usize,
    /// From the call to the first reply holding a record.
    pub first: Option<Duration>,
    /// From the call to the end of the walk.
    pub total: Duration,
}

/// `dht.lookup(topic)` on a [`HyperDhtNode`], read to its end, timed.
pub async fn lookup_timed(node: &HyperDhtNode, topic: [u8; 32]) -> Result<TimedLookup, DhtError> {
    let t = tokio::time::Instant::now();
    let mut l = node.lookup(topic).await?;
    let mut out = TimedLookup::default();
    while let Some(r) = l.next().await {
        let r = r?;
        if !r.peers.is_empty() {
            out.replies += 1;
            out.first.get_or_insert_with(|| t.elapsed());
        }
        for p in r.peers {
            if !out.keys.contains(&p.public_key) {
                out.keys.push(p.public_key);
            }
        }
    }
    out.total = t.elapsed();
    Ok(out)
}

/// A dht-rpc client node for the second client: ephemeral, bootstrapped from `bootstrap`.
pub async fn client(bootstrap: SocketAddrV4) -> Result<Dht, DhtError> {
    let config = Config {
        bootstrap: vec![bootstrap],
        ..Config::default()
    };
    let dht = Dht::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), config).await?;
    dht.ready().await?;
    Ok(dht)
}

fn query(target: [u8; 32], command: Command, value: Option<Vec<u8>>) -> QueryOpts {
    QueryOpts {
        internal: false,
        command: command.to_u64(),
        value,
        ..QueryOpts::new(target)
    }
}

fn write(command: Command, target: [u8; 32], token: [u8; 32], value: Vec<u8>) -> RequestOpts {
    RequestOpts {
        target: Some(target),
        value: Some(value),
        token: Some(token),
        ..RequestOpts::user(command.to_u64())
    }
}

/// Sends one write per closest reply (built by `value_for` from the reply's id and token) and
/// counts the acknowledgements (error 0).
async fn commit(
    dht: &Arc<Dht>,
    closest: &[Reply],
    command: Command,
    target: [u8; 32],
    value_for: impl Fn(&[u8; 32], &[u8; 32]) -> Vec<u8>,
) -> Result<usize, OpError> {
    let mut set = JoinSet::new();
    for r in closest {
        let (Some(id), Some(token)) = (r.from_id, r.token) else {
            continue;
        };
        let opts = write(command, target, token, value_for(&id, &token));
        let d = dht.clone();
        let to = r.from;
        set.spawn(async move { d.request(to, opts).await });
    }
    let mut acks = 0;
    while let Some(r) = set.join_next().await {
        if let Ok(Ok(reply)) = r
            && reply.error == 0
        {
            acks += 1;
        }
    }
    if acks == 0 {
        return Err(OpError::NoAck(closest.len()));
    }
    Ok(acks)
}

fn seq_value(seq: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_uint(seq);
    v
}

/// `dht.mutablePut(keyPair, value, { seq })`; a `tamper`ed put flips a signature bit.
pub async fn mutable_put(
    dht: &Arc<Dht>,
    kp: &KeyPair,
    value: &[u8],
    seq: u64,
    tamper: bool,
) -> Result<usize, OpError> {
    let target = hash(&kp.public_key);
    let out = dht
        .query(query(target, Command::MutableGet, Some(seq_value(seq))))
        .await?;
    let mut signature = sign_mutable(kp, seq, value);
    if tamper {
        signature[0] ^= 0xff;
    }
    let put = MutablePutRequest {
        public_key: kp.public_key,
        seq,
        value: value.to_vec(),
        signature,
    }
    .to_bytes();
    commit(
        dht,
        &out.closest_replies,
        Command::MutablePut,
        target,
        |_, _| put.clone(),
    )
    .await
}
