//! tokio handle of a [`HyperDht`] node (`new HyperDHT(opts)` and its client methods), on the
//! same driver loop as [`super::Dht`].
//!
//! [`HyperDhtNode::bind`] binds a udx socket (DHT datagrams and UDX streams share its port;
//! [`HyperDhtNode::udx_socket`] hands it out), starts the driver task and returns a cloneable
//! handle. Every method queues one call to the task and waits for the operation's end; a
//! lookup returns a [`Lookup`] receiver that yields the replies as they arrive. Dropping a
//! [`Lookup`] cancels its walk. [`HyperDhtNode::destroy`] ends every running operation with
//! [`OpError::Destroyed`] and stops the task.

// The driver is where the clock and the OS RNG live.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::connect::{Attempt, Connection, PendingConnect};
use super::{
    Core, DATAGRAM_QUEUE, DhtError, Driver, Status, UdxDatagrams, bind_udx, seed, wait_ready,
};
use crate::crypto::KeyPair;
use crate::hyperdht::persistent::StoreStats;
use crate::hyperdht::router::RouterStats;
use crate::hyperdht::{
    Committed, FindPeerReply, HyperDht, HyperDhtConfig, HyperEvent, HyperStats, ImmutableValue,
    LookupReply, MutableValue, OpError, OpId, OpOutcome,
};
use crate::rpc::wire::InternalCommand;
use crate::rpc::{Event, Node, Reply, RequestError, RequestId, RequestOpts, Transmit};

/// Replies a [`Lookup`] buffers before the walk's further replies are dropped (counted in
/// [`HyperStatus::dropped_replies`]).
pub const LOOKUP_QUEUE: usize = 256;

type Done = oneshot::Sender<Result<OpOutcome, OpError>>;

/// Who waits for an operation.
enum Waiter {
    /// The outcome.
    Once(Done),
    /// A lookup's replies, then its error if it fails.
    Stream(mpsc::Sender<Result<LookupReply, OpError>>),
    /// The first peer found.
    FirstPeer(oneshot::Sender<Result<FindPeerReply, OpError>>),
    /// Every node that routes for the key, as found (a connect tries them in turn).
    Peers(mpsc::Sender<FindPeerReply>),
}

/// [`HyperDht`] with the handle's waiters.
pub struct HyperCore {
    dht: HyperDht,
    waiters: BTreeMap<OpId, Waiter>,
    requests: BTreeMap<RequestId, oneshot::Sender<Result<Reply, RequestError>>>,
    dropped_replies: u64,
    pub(super) udx: udx::socket::Socket,
    /// Accepted connections go to their server's queue, by public key.
    pub(super) listeners: BTreeMap<[u8; 32], mpsc::Sender<Connection>>,
    /// Client handshakes waiting for their reply (each also holds one rpc request, so the
    /// rpc layer's request bound applies).
    pub(super) connects: BTreeMap<u64, PendingConnect>,
    /// Each relay attempt of a connect: one rpc request.
    pub(super) attempts: BTreeMap<RequestId, Attempt>,
    pub(super) next_connect: u64,
}

impl HyperCore {
    pub(super) fn dht_mut(&mut self) -> &mut HyperDht {
        &mut self.dht
    }
}

impl std::fmt::Debug for HyperCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperCore")
            .field("dht", &self.dht)
            .finish_non_exhaustive()
    }
}

impl Core for HyperCore {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        self.dht.handle_datagram(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.dht.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.dht.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.dht.poll_timeout()
    }
    fn node(&self) -> &Node {
        self.dht.rpc()
    }
    fn dispatch(&mut self) {
        while let Some(e) = self.dht.poll_event() {
            match e {
                HyperEvent::LookupReply { op, reply } => {
                    if let Some(Waiter::Stream(tx)) = self.waiters.get(&op) {
                        match tx.try_send(Ok(reply)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => self.dropped_replies += 1,
                            // The receiver is gone: nobody wants the rest.
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                self.waiters.remove(&op);
                                self.dht.cancel(op);
                            }
                        }
                    }
                }
                HyperEvent::PeerFound { op, reply } => match self.waiters.get(&op) {
                    Some(Waiter::FirstPeer(_)) => {
                        if let Some(Waiter::FirstPeer(tx)) = self.waiters.remove(&op) {
                            let _ = tx.send(Ok(reply));
                        }
                        self.dht.cancel(op);
                    }
                    Some(Waiter::Peers(tx)) => {
                        // A full queue drops the reply: the connect has enough to try.
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(reply) {
                            self.waiters.remove(&op);
                            self.dht.cancel(op);
                        }
                    }
                    _ => {}
                },
                HyperEvent::Done { op, result } => match self.waiters.remove(&op) {
                    Some(Waiter::Once(tx)) => {
                        let _ = tx.send(result);
                    }
                    Some(Waiter::Stream(tx)) => {
                        if let Err(e) = result {
                            let _ = tx.try_send(Err(e));
                        }
                    }
                    Some(Waiter::FirstPeer(tx)) => {
                        let _ = tx.send(Err(result.err().unwrap_or(OpError::NotFound)));
                    }
                    // Dropping the sender ends the receiver's stream.
                    Some(Waiter::Peers(_)) => {}
                    None => {}
                },
                HyperEvent::Connection(acc) => self.on_accepted(&acc),
                HyperEvent::Rpc(Event::Response { request, result }) => {
                    if let Some(tx) = self.requests.remove(&request) {
                        let _ = tx.send(result);
                    } else {
                        self.on_handshake_response(request, &result);
                    }
                }
                other => tracing::debug!("{other:?}"),
            }
        }
    }
}

/// A lookup in progress: its replies as they arrive (`dht.lookup(topic)` as a stream).
/// Dropping it before the end cancels the walk (`query.destroy()`).
#[derive(Debug)]
pub struct Lookup {
    rx: mpsc::Receiver<Result<LookupReply, OpError>>,
    op: OpId,
    driver: Driver<HyperCore>,
}

impl Drop for Lookup {
    fn drop(&mut self) {
        let op = self.op;
        // Best effort: when the command queue is full, the walk ends on its own and its
        // replies find the receiver gone.
        self.driver.try_call(move |c, _| {
            if c.waiters.remove(&op).is_some() {
                c.dht.cancel(op);
            }
        });
    }
}

impl Lookup {
    /// The next reply; `None` once the walk is over. An `Err` is the walk's failure.
    pub async fn next(&mut self) -> Option<Result<LookupReply, OpError>> {
        self.rx.recv().await
    }

    /// Every remaining reply, or the walk's failure.
    pub async fn collect(mut self) -> Result<Vec<LookupReply>, OpError> {
        let mut out = Vec::new();
        while let Some(r) = self.next().await {
            out.push(r?);
        }
        Ok(out)
    }
}

/// What `mutable_put` stored (`{ publicKey, closestNodes, seq, signature }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutablePutDone {
    /// The signer.
    pub public_key: [u8; 32],
    /// The sequence number.
    pub seq: u64,
    /// The signature.
    pub signature: [u8; 64],
    /// The commits, including refusals (16 SEQ_REUSED, 17 SEQ_TOO_LOW).
    pub committed: Committed,
}

/// Counters of a running node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperStatus {
    /// The rpc status.
    pub status: Status,
    /// The layer's counters.
    pub stats: HyperStats,
    /// The store's counters, once the node is a storage node.
    pub store: Option<StoreStats>,
    /// The store's entry counts `(records, refreshes, bumps, mutables, immutables)`.
    pub store_sizes: Option<(usize, usize, usize, usize, usize)>,
    /// The router's counters.
    pub router: RouterStats,
    /// Router forwards held.
    pub forwards: usize,
    /// Lookup replies dropped because a [`Lookup`] was not read fast enough.
    pub dropped_replies: u64,
}

/// Handle to a running HyperDHT node.
#[derive(Debug, Clone)]
pub struct HyperDhtNode {
    driver: Driver<HyperCore>,
    udx: udx::socket::Socket,
    /// `dht.defaultKeyPair`: drawn at bind, used by [`HyperDhtNode::connect`].
    key_pair: KeyPair,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn unexpected(o: &OpOutcome) -> DhtError {
    DhtError::Unexpected(format!("{o:?}"))
}

impl HyperDhtNode {
    /// Binds a udx socket on `addr` (port 0 = any) and starts a HyperDHT node on it
    /// (`new HyperDHT({ port, host, bootstrap, ... })`).
    pub async fn bind(addr: SocketAddrV4, config: HyperDhtConfig) -> Result<Self, DhtError> {
        Self::start(addr, |local, now, seed| {
            HyperDht::new(config, local.port(), now, unix_ms(), seed)
        })
    }

    /// Binds `bind` and starts a bootstrap node reachable at `public`
    /// (`HyperDHT.bootstrapper(port, host)`); it stores records like any persistent node.
    pub async fn bootstrapper(
        bind: SocketAddrV4,
        public: SocketAddrV4,
        config: HyperDhtConfig,
    ) -> Result<Self, DhtError> {
        Self::start(bind, |local, now, seed| {
            let public = SocketAddrV4::new(*public.ip(), local.port());
            HyperDht::bootstrapper(config, public, now, unix_ms(), seed)
        })
    }

    fn start(
        addr: SocketAddrV4,
        build: impl FnOnce(SocketAddrV4, Instant, [u8; 32]) -> HyperDht,
    ) -> Result<Self, DhtError> {
        let (socket, local) = bind_udx(addr)?;
        let now = tokio::time::Instant::now().into_std();
        let core = HyperCore {
            dht: build(local, now, seed()),
            waiters: BTreeMap::new(),
            requests: BTreeMap::new(),
            dropped_replies: 0,
            udx: socket.clone(),
            listeners: BTreeMap::new(),
            connects: BTreeMap::new(),
            attempts: BTreeMap::new(),
            next_connect: 0,
        };
        let driver = Driver::spawn(
            UdxDatagrams::new(socket.clone(), DATAGRAM_QUEUE),
            local,
            core,
        );
        Ok(Self {
            driver,
            udx: socket,
            key_pair: KeyPair::from_seed(&seed()),
        })
    }

    pub(super) fn driver(&self) -> &Driver<HyperCore> {
        &self.driver
    }

    /// The key pair [`HyperDhtNode::connect`] uses (`dht.defaultKeyPair`).
    pub fn default_key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// The udx socket the node runs on, for UDX streams on the DHT's port.
    pub fn udx_socket(&self) -> &udx::socket::Socket {
        &self.udx
    }

    /// The latest rpc status.
    pub fn status(&self) -> Status {
        self.driver.status().borrow().clone()
    }

    /// A receiver of status updates.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.driver.status().clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.driver.status().borrow().local_addr
    }

    /// Waits until the bootstrap finished (`await dht.ready()`).
    pub async fn ready(&self) -> Result<Status, DhtError> {
        wait_ready(self.driver.status()).await
    }

    /// Counters of the node, its store and its router.
    pub async fn stats(&self) -> Result<HyperStatus, DhtError> {
        let status = self.status();
        self.driver
            .ask(move |c, _, tx| {
                let _ = tx.send(HyperStatus {
                    status,
                    stats: c.dht.stats().clone(),
                    store: c.dht.store_stats(),
                    store_sizes: c.dht.store_sizes(),
                    router: c.dht.router_stats().clone(),
                    forwards: c.dht.router().len(),
                    dropped_replies: c.dropped_replies,
                });
            })
            .await
    }

    /// Runs `f` on the node's [`HyperDht`] in the driver task and returns what it returns
    /// (for what the handle does not wrap; the events of operations started this way are
    /// not delivered anywhere).
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut HyperDht, Instant) -> T + Send + 'static,
    ) -> Result<T, DhtError> {
        self.driver
            .ask(move |c, now, tx| {
                let _ = tx.send(f(&mut c.dht, now));
            })
            .await
    }

    /// Sends one request to `to` through the node (`dht.request(...)`), for commands the
    /// handle does not wrap.
    pub async fn request(&self, to: SocketAddrV4, opts: RequestOpts) -> Result<Reply, DhtError> {
        let r = self
            .driver
            .ask(move |c, now, tx| {
                let id = c.dht.rpc_mut().request(now, to, opts);
                c.requests.insert(id, tx);
            })
            .await?;
        Ok(r?)
    }

    /// PING (`dht.ping`).
    pub async fn ping(&self, to: SocketAddrV4) -> Result<Reply, DhtError> {
        self.request(to, RequestOpts::internal(InternalCommand::Ping))
            .await
    }

    /// Starts an operation and waits for its outcome.
    async fn run(
        &self,
        start: impl FnOnce(&mut HyperDht, Instant) -> OpId + Send + 'static,
    ) -> Result<OpOutcome, DhtError> {
        let r = self
            .driver
            .ask(move |c, now, tx: Done| {
                let op = start(&mut c.dht, now);
                c.waiters.insert(op, Waiter::Once(tx));
            })
            .await?;
        Ok(r?)
    }

    /// `dht.lookup(topic)`: the replies (peer records) as they arrive.
    pub async fn lookup(&self, topic: [u8; 32]) -> Result<Lookup, DhtError> {
        let (tx, rx) = mpsc::channel(LOOKUP_QUEUE);
        let op = self
            .driver
            .ask(move |c, now, done| {
                let op = c.dht.lookup(now, topic);
                c.waiters.insert(op, Waiter::Stream(tx));
                let _ = done.send(op);
            })
            .await?;
        Ok(Lookup {
            rx,
            op,
            driver: self.driver.clone(),
        })
    }

    /// `dht.announce(topic, keyPair, relayAddresses).finished()`.
    pub async fn announce(
        &self,
        topic: [u8; 32],
        key_pair: &KeyPair,
        relays: &[SocketAddrV4],
    ) -> Result<Committed, DhtError> {
        let (kp, relays) = (key_pair.clone(), relays.to_vec());
        match self
            .run(move |d, now| d.announce(now, topic, &kp, &relays))
            .await?
        {
            OpOutcome::Announce(c) => Ok(c),
            o => Err(unexpected(&o)),
        }
    }

    /// `dht.unannounce(topic, keyPair)`.
    pub async fn unannounce(
        &self,
        topic: [u8; 32],
        key_pair: &KeyPair,
    ) -> Result<Committed, DhtError> {
        let kp = key_pair.clone();
        match self
            .run(move |d, now| d.unannounce(now, topic, &kp))
            .await?
        {
            OpOutcome::Unannounce(c) => Ok(c),
            o => Err(unexpected(&o)),
        }
    }

    /// `dht.findPeer(publicKey)`: the first node that routes for the key.
    pub async fn find_peer(&self, public_key: [u8; 32]) -> Result<FindPeerReply, DhtError> {
        let r = self
            .driver
            .ask(move |c, now, tx| {
                let op = c.dht.find_peer(now, &public_key);
                c.waiters.insert(op, Waiter::FirstPeer(tx));
            })
            .await?;
        Ok(r?)
    }

    /// `dht.findPeer(publicKey)` as a stream: every node that routes for the key, as found
    /// (at most `max` buffered). Dropping the receiver cancels the walk at its next reply.
    pub(super) async fn find_peers(
        &self,
        public_key: [u8; 32],
        max: usize,
    ) -> Result<mpsc::Receiver<FindPeerReply>, DhtError> {
        let (tx, rx) = mpsc::channel(max.max(1));
        self.driver
            .ask(move |c, now, done| {
                let op = c.dht.find_peer(now, &public_key);
                c.waiters.insert(op, Waiter::Peers(tx));
                let _ = done.send(());
            })
            .await?;
        Ok(rx)
    }

    /// `dht.immutablePut(value)`: the value's hash and the commits.
    pub async fn immutable_put(&self, value: &[u8]) -> Result<([u8; 32], Committed), DhtError> {
        let value = value.to_vec();
        match self.run(move |d, now| d.immutable_put(now, &value)).await? {
            OpOutcome::ImmutablePut { hash, committed } => Ok((hash, committed)),
            o => Err(unexpected(&o)),
        }
    }

    /// `dht.immutableGet(hash)`.
    pub async fn immutable_get(&self, hash: [u8; 32]) -> Result<ImmutableValue, DhtError> {
        match self.run(move |d, now| d.immutable_get(now, hash)).await? {
            OpOutcome::ImmutableGet(v) => Ok(v),
            o => Err(unexpected(&o)),
        }
    }

    /// `dht.mutablePut(keyPair, value, { seq })`.
    pub async fn mutable_put(
        &self,
        key_pair: &KeyPair,
        value: &[u8],
        seq: u64,
    ) -> Result<MutablePutDone, DhtError> {
        let (kp, value) = (key_pair.clone(), value.to_vec());
        match self
            .run(move |d, now| d.mutable_put(now, &kp, &value, seq))
            .await?
        {
            OpOutcome::MutablePut {
                public_key,
                seq,
                signature,
                committed,
            } => Ok(MutablePutDone {
                public_key,
                seq,
                signature,
                committed,
            }),
            o => Err(unexpected(&o)),
        }
    }

    /// `dht.mutableGet(publicKey, { seq, latest })`.
    pub async fn mutable_get(
        &self,
        public_key: [u8; 32],
        seq: u64,
        latest: bool,
    ) -> Result<MutableValue, DhtError> {
        match self
            .run(move |d, now| d.mutable_get(now, &public_key, seq, latest))
            .await?
        {
            OpOutcome::MutableGet(v) => Ok(v),
            o => Err(unexpected(&o)),
        }
    }

    /// `dht.destroy()`: running operations end with [`OpError::Destroyed`], the task stops.
    pub async fn destroy(&self) {
        let _ = self.driver.call(|c, now| c.dht.destroy(now)).await;
        self.driver.shutdown().await;
    }
}
