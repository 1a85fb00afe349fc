//! HyperDHT records on the Rust stack for the live tests and benchmarks: a storage node (the
//! sans-IO `dht::hyperdht::HyperDht` on a tokio UDP socket) and the client operations (lookup, announce,
//! unannounce, mutable and immutable put/get) as hyperdht 6.34.0 `index.js` runs them: a query
//! of the closest nodes, then one write to each of them with the token it handed out.
//!
//! This composes the public API of `dht` only, so the tests can drive Rust storage nodes and
//! Rust clients against JS ones.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dht::codec::{Decode, Encode, Writer};
use dht::crypto::{KeyPair, hash, sign_announce, sign_mutable, sign_unannounce, verify_mutable};
use dht::hyperdht::messages::{
    Announce, LookupRawReply, MutableGetResponse, MutablePutRequest, Peer,
};
use dht::hyperdht::persistent::StoreStats;
use dht::hyperdht::{Command, HyperDht, HyperDhtConfig};
use dht::rpc::{Config, QueryOpts, Reply, RequestOpts};
use dht::runtime::{Dht, DhtError};
use tokio::net::UdpSocket;
use tokio::sync::watch;
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

/// What a [`StorageNode`] publishes after each step.
#[derive(Debug, Clone, Default)]
pub struct NodeSnapshot {
    /// Its id while persistent.
    pub id: Option<[u8; 32]>,
    /// Bootstrap finished.
    pub bootstrapped: bool,
    /// Routing-table size.
    pub table_len: usize,
    /// The record store's counters, once the node is a storage node.
    pub store: Option<StoreStats>,
    /// Entries in the store `(records, refreshes, bumps, mutables, immutables)`.
    pub sizes: Option<(usize, usize, usize, usize, usize)>,
}

/// A Rust HyperDHT storage node: the sans-IO `dht::hyperdht::HyperDht` (record store, router
/// forwards for PEER_HANDSHAKE and PEER_HOLEPUNCH) driven over a tokio UDP socket on
/// 127.0.0.1 in a task of its own. Dropping it stops the task.
#[derive(Debug)]
pub struct StorageNode {
    addr: SocketAddrV4,
    snapshot: watch::Receiver<NodeSnapshot>,
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

/// A seed from the OS.
pub fn rand_seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut s);
    s
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl StorageNode {
    /// Binds 127.0.0.1:`port` (0 = any) as a persistent node (`ephemeral: false`,
    /// `firewalled: false`, as `hyperdht/testnet` makes its nodes) that bootstraps from
    /// `bootstrap`, and waits until it is bootstrapped and has its id.
    pub async fn bind(bootstrap: &[SocketAddrV4], port: u16) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).await?;
        let addr = local_v4(&sock)?;
        let config = HyperDhtConfig {
            rpc: Config {
                bootstrap: bootstrap.to_vec(),
                ephemeral: Some(false),
                firewalled: false,
                ..Config::default()
            },
            ..HyperDhtConfig::default()
        };
        let node = HyperDht::new(config, addr.port(), now(), unix_ms(), rand_seed());
        Self::start(sock, addr, node).await
    }

    /// A bootstrap node on 127.0.0.1:`port` (0 = any), persistent at once, storing records
    /// as JS's bootstrappers do (`HyperDHT.bootstrapper(port, host)`).
    pub async fn bootstrapper(port: u16) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).await?;
        let addr = local_v4(&sock)?;
        let node = HyperDht::bootstrapper(
            HyperDhtConfig::default(),
            addr,
            now(),
            unix_ms(),
            rand_seed(),
        );
        Self::start(sock, addr, node).await
    }

    async fn start(sock: UdpSocket, addr: SocketAddrV4, node: HyperDht) -> std::io::Result<Self> {
        let (tx, mut snapshot) = watch::channel(NodeSnapshot::default());
        let task = tokio::spawn(drive(sock, node, tx));
        let ready = snapshot
            .wait_for(|s| s.bootstrapped && s.id.is_some() && s.store.is_some())
            .await
            .is_ok();
        if !ready {
            return Err(std::io::Error::other("the storage node stopped"));
        }
        Ok(Self {
            addr,
            snapshot,
            task,
        })
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> NodeSnapshot {
        self.snapshot.borrow().clone()
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        self.snapshot().store.unwrap_or_default()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        self.task.abort();
    }
}

fn local_v4(sock: &UdpSocket) -> std::io::Result<SocketAddrV4> {
    match sock.local_addr()? {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(std::io::Error::other("bound an IPv6 address")),
    }
}

/// The node's loop: datagrams in, timers, datagrams out, a snapshot after each step.
async fn drive(sock: UdpSocket, mut node: HyperDht, tx: watch::Sender<NodeSnapshot>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some(t) = node.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.to).await;
        }
        while node.poll_event().is_some() {}
        let snap = NodeSnapshot {
            id: node.id(),
            bootstrapped: node.rpc().is_bootstrapped(),
            table_len: node.rpc().table().len(),
            store: node.store_stats(),
            sizes: node.store_sizes(),
        };
        tx.send_replace(snap);
        let deadline = node
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, SocketAddr::V4(from))) = r
                    && let Some(d) = buf.get(..n)
                {
                    node.handle_datagram(now(), from, d);
                }
            }
            _ = tokio::time::sleep_until(deadline) => node.handle_timeout(now()),
        }
    }
}

/// Starts `n` Rust storage nodes on 127.0.0.1 bootstrapping from `bootstrap`.
pub async fn storage_nodes(n: usize, bootstrap: SocketAddrV4) -> std::io::Result<Vec<StorageNode>> {
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
