//! HyperDHT records on the Rust stack for the live tests and benchmarks: a storage node (the
//! sans-IO record store `dht::hyperdht::persistent::Persistent` answering the registered
//! hyperdht commands of a `dht::runtime::Dht`) and the client operations (lookup, announce,
//! unannounce, mutable and immutable put/get) as hyperdht 6.34.0 `index.js` runs them: a query
//! of the closest nodes, then one write to each of them with the token it handed out.
//!
//! This composes the public API of `dht` only, so the tests can drive Rust storage nodes and
//! Rust clients against JS ones.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht::codec::{Decode, Encode, Writer};
use dht::crypto::{KeyPair, hash, sign_announce, sign_mutable, sign_unannounce, verify_mutable};
use dht::hyperdht::Command;
use dht::hyperdht::messages::{
    Announce, LookupRawReply, MutableGetResponse, MutablePutRequest, Peer,
};
use dht::hyperdht::persistent::{
    Context, DEFAULT_MAX_SIZE, Persistent, RouterAction, StoreCommand, StoreConfig, StoreRequest,
    StoreStats,
};
use dht::rpc::{Config, QueryOpts, Reply, RequestOpts};
use dht::runtime::{Dht, DhtError};
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

/// A Rust storage node: a persistent `Dht` whose hyperdht commands a [`Persistent`] store
/// answers, in a task of its own. Dropping it stops the task (the node stops with
/// [`StorageNode::shutdown`]).
#[derive(Debug)]
pub struct StorageNode {
    /// The node.
    pub dht: Arc<Dht>,
    stats: Arc<Mutex<StoreStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StorageNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_ms() -> u64 {
    // the store bounds ANNOUNCE bumps by the wall clock, as JS's Date.now()
    #[allow(clippy::disallowed_methods)] // a live node: the wall clock is its clock
    let now = SystemTime::now();
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl StorageNode {
    /// Binds 127.0.0.1:`port` (0 = any) as a persistent node (`ephemeral: false`) that
    /// bootstraps from `bootstrap`, and serves the store on it once it has its id.
    pub async fn bind(bootstrap: &[SocketAddrV4], port: u16) -> Result<Self, DhtError> {
        let config = Config {
            bootstrap: bootstrap.to_vec(),
            ephemeral: Some(false),
            ..Config::default()
        };
        let dht = Dht::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), config).await?;
        dht.ready().await?;
        Ok(Self::serve(dht).await)
    }

    /// Serves the store on `dht` (which must be persistent to be asked).
    pub async fn serve(dht: Dht) -> Self {
        let dht = Arc::new(dht);
        for c in StoreCommand::ALL {
            let _ = dht.register_command(c.command().to_u64()).await;
        }
        let stats = Arc::new(Mutex::new(StoreStats::default()));
        let task = tokio::spawn(serve(dht.clone(), stats.clone()));
        Self { dht, stats, task }
    }

    /// The store's counters as of its last request.
    pub fn stats(&self) -> StoreStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddrV4 {
        self.dht.local_addr()
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        self.task.abort();
        self.dht.shutdown().await;
    }
}

async fn serve(dht: Arc<Dht>, stats: Arc<Mutex<StoreStats>>) {
    let start = tokio::time::Instant::now().into_std();
    let mut store = Persistent::new(&StoreConfig::default(), start, rand_seed());
    // the router's records of servers that announced themselves (target = H(public key)),
    // which FIND_PEER and LOOKUP read (`lib/router.js`)
    let mut router: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
    while let Some(req) = dht.next_request().await {
        let Some(node_id) = dht.status().id else {
            continue;
        };
        let now = tokio::time::Instant::now().into_std();
        store.advance(now);
        let record = req
            .target
            .as_ref()
            .and_then(|t| router.get(t))
            .map(|r| r.as_slice());
        let Some(sreq) = StoreRequest::from_incoming(&req, record) else {
            continue;
        };
        let ctx = Context {
            now,
            unix_ms: unix_ms(),
            node_id,
        };
        let out = store.handle(&ctx, &sreq);
        match out.router {
            // `router.forwards` holds at most `maxSize` (65,536) in JS; this test node stops
            // taking new keys there (it serves tests, it never expires them)
            Some(RouterAction::Set { target, record, .. })
                if router.len() < DEFAULT_MAX_SIZE || router.contains_key(&target) =>
            {
                router.insert(target, record);
            }
            Some(RouterAction::Delete { target }) => {
                router.remove(&target);
            }
            _ => {}
        }
        if let Ok(mut s) = stats.lock() {
            *s = store.stats();
        }
        if let Some(opts) = out.response.reply_opts() {
            let _ = dht.reply(req, opts).await;
        }
    }
}

fn rand_seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut s);
    s
}

/// Starts `n` Rust storage nodes on 127.0.0.1 bootstrapping from `bootstrap`.
pub async fn storage_nodes(
    n: usize,
    bootstrap: SocketAddrV4,
) -> Result<Vec<StorageNode>, DhtError> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(StorageNode::bind(&[bootstrap], 0).await?);
    }
    Ok(v)
}

/// A Rust client node: ephemeral, bootstrapped from `bootstrap`.
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

/// What a lookup found.
#[derive(Debug, Clone, Default)]
pub struct LookupResult {
    /// Distinct peer records, in the order first seen.
    pub peers: Vec<Peer>,
    /// Replies that carried a record set.
    pub replies: usize,
    /// Referral depth of the closest reply.
    pub hops: u8,
}

/// `dht.lookup(topic)` collected: the peer records of the closest storage nodes' replies.
pub async fn lookup(dht: &Dht, topic: [u8; 32]) -> Result<LookupResult, OpError> {
    let out = dht.query(query(topic, Command::Lookup, None)).await?;
    let mut res = LookupResult {
        hops: out.hops,
        ..LookupResult::default()
    };
    for r in &out.closest_replies {
        let Some(v) = &r.value else { continue };
        let Ok(l) = LookupRawReply::from_bytes(v) else {
            continue;
        };
        res.replies += 1;
        for p in l.peers {
            if !res.peers.iter().any(|q| q.public_key == p.public_key) {
                res.peers.push(p);
            }
        }
    }
    Ok(res)
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

/// `dht.announce(topic, keyPair, relays)` to completion: returns the acknowledgements.
pub async fn announce(
    dht: &Arc<Dht>,
    topic: [u8; 32],
    kp: &KeyPair,
    relays: &[SocketAddrV4],
) -> Result<usize, OpError> {
    let out = dht.query(query(topic, Command::Lookup, None)).await?;
    let peer = Peer {
        public_key: kp.public_key,
        relay_addresses: relays.to_vec(),
    };
    commit(
        dht,
        &out.closest_replies,
        Command::Announce,
        topic,
        |id, token| {
            Announce {
                signature: Some(sign_announce(kp, &topic, id, token, &peer, None)),
                peer: Some(peer.clone()),
                refresh: None,
                bump: 0,
            }
            .to_bytes()
        },
    )
    .await
}

/// `dht.unannounce(topic, keyPair)`: an UNANNOUNCE to every closest node.
pub async fn unannounce(dht: &Arc<Dht>, topic: [u8; 32], kp: &KeyPair) -> Result<usize, OpError> {
    let out = dht.query(query(topic, Command::Lookup, None)).await?;
    let peer = Peer {
        public_key: kp.public_key,
        relay_addresses: Vec::new(),
    };
    commit(
        dht,
        &out.closest_replies,
        Command::Unannounce,
        topic,
        |id, token| {
            Announce {
                signature: Some(sign_unannounce(kp, &topic, id, token, &peer, None)),
                peer: Some(peer.clone()),
                refresh: None,
                bump: 0,
            }
            .to_bytes()
        },
    )
    .await
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

/// `dht.mutableGet(publicKey, { seq })`: the verified value with the highest seq.
pub async fn mutable_get(
    dht: &Dht,
    public_key: &[u8; 32],
    seq: u64,
) -> Result<Option<MutableGetResponse>, OpError> {
    let target = hash(public_key);
    let out = dht
        .query(query(target, Command::MutableGet, Some(seq_value(seq))))
        .await?;
    let mut best: Option<MutableGetResponse> = None;
    for r in &out.closest_replies {
        let Some(v) = r
            .value
            .as_deref()
            .and_then(|b| MutableGetResponse::from_bytes(b).ok())
        else {
            continue;
        };
        if !verify_mutable(public_key, v.seq, &v.value, &v.signature) {
            continue;
        }
        if best.as_ref().is_none_or(|b| v.seq > b.seq) {
            best = Some(v);
        }
    }
    Ok(best)
}

/// `dht.immutablePut(value)`: returns the hash and the acknowledgements.
pub async fn immutable_put(dht: &Arc<Dht>, value: &[u8]) -> Result<([u8; 32], usize), OpError> {
    let target = hash(value);
    let out = dht
        .query(query(target, Command::ImmutableGet, None))
        .await?;
    let acks = commit(
        dht,
        &out.closest_replies,
        Command::ImmutablePut,
        target,
        |_, _| value.to_vec(),
    )
    .await?;
    Ok((target, acks))
}

/// `dht.immutableGet(hash)`: the first value whose hash matches.
pub async fn immutable_get(dht: &Dht, target: [u8; 32]) -> Result<Option<Vec<u8>>, OpError> {
    let out = dht
        .query(query(target, Command::ImmutableGet, None))
        .await?;
    Ok(out
        .closest_replies
        .iter()
        .filter_map(|r| r.value.clone())
        .find(|v| hash(v) == target))
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}
