//! tokio driver for the sans-IO [`Node`] (feature `tokio`).
//!
//! I/O contract: [`Dht::bind`] binds one UDP socket, spawns one task that owns the socket and
//! the node, and returns a cloneable handle. The task feeds received datagrams and timers to
//! the node with tokio's clock, sends what the node emits, and serves the handle's commands
//! through a bounded channel ([`COMMAND_QUEUE`]). Dropping every handle (or calling
//! [`Dht::shutdown`]) stops the task. The node's randomness is seeded once from the OS RNG.
//!
//! The socket is behind the small [`DatagramSocket`] trait. [`Dht::bind`] uses the `udx`
//! crate's socket ([`UdxDatagrams`]): UDX stream packets go to their streams, every other
//! datagram comes to the node through a bounded channel ([`DATAGRAM_QUEUE`]), so DHT traffic
//! and streams share one UDP port; [`Dht::udx_socket`] hands out that socket for streams. A
//! plain `tokio::net::UdpSocket` also implements the trait (see [`Dht::spawn`]).

// The driver is where the clock, the OS RNG and the socket live.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use rand_core::{OsRng, RngCore};
use tokio::sync::{mpsc, oneshot, watch};

use crate::rpc::wire::InternalCommand;
use crate::rpc::{
    Config, Event, IncomingRequest, Node, NodeId, QueryError, QueryId, QueryOpts, QueryOutcome,
    Reply, ReplyOpts, RequestError, RequestId, RequestOpts, Transmit,
};

mod connect;
mod hyper;
pub use connect::{
    ACCEPT_QUEUE, Connection, EncryptedStream, HANDSHAKE_INITIAL_TIMEOUT, How, KEEP_ALIVE,
    ListenError, MAX_CONNECT_ATTEMPTS, PARALLEL_ATTEMPTS, REFRESH_INTERVAL, Server,
};
pub use hyper::{HyperCore, HyperDhtNode, HyperStatus, LOOKUP_QUEUE, Lookup, MutablePutDone};

/// Commands the handle may queue before `send` waits (bounded channel).
pub const COMMAND_QUEUE: usize = 1024;
/// User requests waiting for the application (bounded; beyond it they get no answer).
pub const REQUEST_QUEUE: usize = 1024;
/// Non-stream datagrams queued between the udx driver and the node (dropped beyond it).
pub const DATAGRAM_QUEUE: usize = 4096;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;

/// A UDP socket the driver can own. Implemented for `tokio::net::UdpSocket` and
/// [`UdxDatagrams`].
pub trait DatagramSocket: Send + 'static {
    /// The bound local address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// Receives one datagram.
    fn recv_from<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a;
    /// Sends one datagram.
    fn send_to<'a>(
        &'a self,
        buf: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
}

impl DatagramSocket for tokio::net::UdpSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
    fn recv_from<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a {
        tokio::net::UdpSocket::recv_from(self, buf)
    }
    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        tokio::net::UdpSocket::send_to(self, buf, to)
            .await
            .map(|_| ())
    }
}

/// The non-stream side of a `udx` socket: datagrams that are not packets of a live UDX stream.
#[derive(Debug)]
pub struct UdxDatagrams {
    socket: udx::socket::Socket,
    rx: mpsc::Receiver<(Vec<u8>, SocketAddr)>,
}

impl UdxDatagrams {
    /// Takes over `socket`'s message handler (queue of `capacity` datagrams).
    pub fn new(socket: udx::socket::Socket, capacity: usize) -> Self {
        let rx = socket.datagram_channel(capacity);
        Self { socket, rx }
    }
}

impl DatagramSocket for UdxDatagrams {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.socket.local_addr())
    }
    async fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let Some((d, from)) = self.rx.recv().await else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "udx socket closed",
            ));
        };
        let n = d.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), d.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok((n, from))
    }
    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(buf, to).await.map_err(io::Error::other)
    }
}

/// Errors of the handle's commands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The driver task is gone.
    #[error("the DHT node is shut down")]
    Shutdown,
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Binding failed.
    #[error("bind failed: {0}")]
    Bind(#[from] io::Error),
    /// Only IPv4 is supported by dht-rpc.
    #[error("not an IPv4 address: {0}")]
    NotIpv4(SocketAddr),
    /// A HyperDHT operation failed.
    #[error(transparent)]
    Op(#[from] crate::hyperdht::OpError),
    /// An operation ended with another outcome than its own (a bug, reported, not panicked).
    #[error("unexpected outcome: {0}")]
    Unexpected(String),
}

/// A snapshot of the node's state, published after every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The bound address.
    pub local_addr: SocketAddrV4,
    /// The node id once persistent.
    pub id: Option<NodeId>,
    /// Bootstrap finished.
    pub bootstrapped: bool,
    /// Firewalled.
    pub firewalled: bool,
    /// Routing-table size.
    pub table_len: usize,
}

/// A closure the driver runs on its core with the current time; `None` stops the driver.
type Call<C> = Option<Box<dyn FnOnce(&mut C, Instant) + Send>>;

/// A sans-IO core the driver runs ([`Node`] through [`RpcCore`], and
/// [`crate::hyperdht::HyperDht`] through `hyper::HyperCore`): the I/O contract every core
/// here shares, plus `dispatch`, which hands the core's events to whoever waits for them.
pub trait Core: Send + 'static {
    /// A received datagram.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]);
    /// Timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When `handle_timeout` is next due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Delivers the events the last step produced.
    fn dispatch(&mut self);
    /// The rpc node, for the status snapshot.
    fn node(&self) -> &Node;
}

/// The driver's handle to its task: a bounded queue of calls and the status it publishes.
pub(crate) struct Driver<C> {
    tx: mpsc::Sender<Call<C>>,
    status: watch::Receiver<Status>,
}

impl<C> Clone for Driver<C> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }
}

impl<C> std::fmt::Debug for Driver<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl<C: Core> Driver<C> {
    /// Drives `core` over `socket` in a new task.
    pub(crate) fn spawn<S: DatagramSocket>(socket: S, local: SocketAddrV4, core: C) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (status_tx, status_rx) = watch::channel(status_of(local, core.node()));
        tokio::spawn(drive(socket, core, rx, status_tx));
        Self {
            tx,
            status: status_rx,
        }
    }

    /// Runs `f` on the core in the driver task.
    pub(crate) async fn call(
        &self,
        f: impl FnOnce(&mut C, Instant) + Send + 'static,
    ) -> Result<(), DhtError> {
        self.tx
            .send(Some(Box::new(f)))
            .await
            .map_err(|_| DhtError::Shutdown)
    }

    /// Queues `f` without waiting; dropped when the queue is full or the task is gone.
    pub(crate) fn try_call(&self, f: impl FnOnce(&mut C, Instant) + Send + 'static) {
        let _ = self.tx.try_send(Some(Box::new(f)));
    }

    /// Runs `f` on the core and waits for the answer it sends on the channel it is given.
    pub(crate) async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut C, Instant, oneshot::Sender<T>) + Send + 'static,
    ) -> Result<T, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.call(move |c, now| f(c, now, tx)).await?;
        rx.await.map_err(|_| DhtError::Shutdown)
    }

    /// Stops the task.
    pub(crate) async fn shutdown(&self) {
        let _ = self.tx.send(None).await;
    }

    pub(crate) fn status(&self) -> &watch::Receiver<Status> {
        &self.status
    }
}

fn status_of(local: SocketAddrV4, node: &Node) -> Status {
    Status {
        local_addr: local,
        id: node.id(),
        bootstrapped: node.is_bootstrapped(),
        firewalled: node.is_firewalled(),
        table_len: node.table().len(),
    }
}

/// [`Node`] with the waiters of the [`Dht`] handle's queries and requests.
#[derive(Debug)]
pub struct RpcCore {
    node: Node,
    queries: BTreeMap<QueryId, oneshot::Sender<Result<QueryOutcome, QueryError>>>,
    reqs: BTreeMap<RequestId, oneshot::Sender<Result<Reply, RequestError>>>,
    requests: mpsc::Sender<IncomingRequest>,
}

impl Core for RpcCore {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        self.node.handle_datagram(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }
    fn node(&self) -> &Node {
        &self.node
    }
    fn dispatch(&mut self) {
        while let Some(e) = self.node.poll_event() {
            match e {
                Event::QueryDone { query, result } => {
                    if let Some(tx) = self.queries.remove(&query) {
                        let _ = tx.send(result);
                    }
                }
                Event::Response { request, result } => {
                    if let Some(tx) = self.reqs.remove(&request) {
                        let _ = tx.send(result);
                    }
                }
                Event::Request(r) => {
                    let _ = self.requests.try_send(r);
                }
                other => tracing::debug!("{other:?}"),
            }
        }
    }
}

/// Handle to a running node.
#[derive(Debug, Clone)]
pub struct Dht {
    driver: Driver<RpcCore>,
    requests: Arc<tokio::sync::Mutex<mpsc::Receiver<IncomingRequest>>>,
    udx: Option<udx::socket::Socket>,
}

/// The IPv4 form of `a`: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack
/// socket reports) becomes `a.b.c.d`, so the node sees one form of each peer's address and
/// matches replies to requests by it.
fn as_v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(a) => a
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, a.port())),
    }
}

fn v4(a: SocketAddr) -> Result<SocketAddrV4, DhtError> {
    as_v4(a).ok_or(DhtError::NotIpv4(a))
}

fn bind_udx(addr: SocketAddrV4) -> Result<(udx::socket::Socket, SocketAddrV4), DhtError> {
    let socket = udx::socket::Socket::bind(SocketAddr::V4(addr))
        .map_err(|e| DhtError::Bind(io::Error::other(e)))?;
    let local = v4(socket.local_addr())?;
    Ok((socket, local))
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    OsRng.fill_bytes(&mut s);
    s
}

impl Dht {
    /// Binds a udx socket on `addr` (port 0 = any) and starts a node with `config` on it.
    pub async fn bind(addr: SocketAddrV4, config: Config) -> Result<Self, DhtError> {
        Self::bind_udx_node(addr, |local, now, seed| {
            Node::new(config, local.port(), now, seed)
        })
    }

    /// The one path of [`Dht::bind`] and [`Dht::bootstrapper`]: bind a udx socket, build the
    /// node for the bound address with tokio's clock and an OS seed, drive it on the socket.
    fn bind_udx_node(
        addr: SocketAddrV4,
        node: impl FnOnce(SocketAddrV4, std::time::Instant, [u8; 32]) -> Node,
    ) -> Result<Self, DhtError> {
        let (socket, local) = bind_udx(addr)?;
        let now = tokio::time::Instant::now().into_std();
        let node = node(local, now, seed());
        let mut dht = Self::spawn(
            UdxDatagrams::new(socket.clone(), DATAGRAM_QUEUE),
            local,
            node,
        );
        dht.udx = Some(socket);
        Ok(dht)
    }

    /// The udx socket the node runs on (for UDX streams on the DHT's port), when bound with
    /// [`Dht::bind`] or [`Dht::bootstrapper`].
    pub fn udx_socket(&self) -> Option<&udx::socket::Socket> {
        self.udx.as_ref()
    }

    /// Binds `bind` and starts a bootstrap node reachable at `public`
    /// (`DHT.bootstrapper(port, host)`).
    pub async fn bootstrapper(
        bind: SocketAddrV4,
        public: SocketAddrV4,
        config: Config,
    ) -> Result<Self, DhtError> {
        Self::bind_udx_node(bind, |local, now, seed| {
            let public = SocketAddrV4::new(*public.ip(), local.port());
            Node::bootstrapper(config, public, now, seed)
        })
    }

    /// Drives `node` over `socket` in a new task.
    pub fn spawn<S: DatagramSocket>(socket: S, local: SocketAddrV4, node: Node) -> Self {
        let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
        let core = RpcCore {
            node,
            queries: BTreeMap::new(),
            reqs: BTreeMap::new(),
            requests: req_tx,
        };
        Self {
            driver: Driver::spawn(socket, local, core),
            requests: Arc::new(tokio::sync::Mutex::new(req_rx)),
            udx: None,
        }
    }

    /// The latest status.
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

    /// Waits until the bootstrap finished.
    pub async fn ready(&self) -> Result<Status, DhtError> {
        wait_ready(self.driver.status()).await
    }

    /// Runs a query.
    pub async fn query(&self, opts: QueryOpts) -> Result<QueryOutcome, DhtError> {
        let r = self
            .driver
            .ask(move |c, now, tx| {
                let q = c.node.query(now, opts);
                c.queries.insert(q, tx);
            })
            .await?;
        Ok(r?)
    }

    /// FIND_NODE for `target`.
    pub async fn find_node(&self, target: NodeId) -> Result<QueryOutcome, DhtError> {
        self.query(QueryOpts::new(target)).await
    }

    /// Sends one request to `to`.
    pub async fn request(&self, to: SocketAddrV4, opts: RequestOpts) -> Result<Reply, DhtError> {
        let r = self
            .driver
            .ask(move |c, now, tx| {
                let r = c.node.request(now, to, opts);
                c.reqs.insert(r, tx);
            })
            .await?;
        Ok(r?)
    }

    /// PING.
    pub async fn ping(&self, to: SocketAddrV4) -> Result<Reply, DhtError> {
        self.request(to, RequestOpts::internal(InternalCommand::Ping))
            .await
    }

    /// Table members, most recently seen first.
    pub async fn to_array(&self) -> Result<Vec<SocketAddrV4>, DhtError> {
        self.driver
            .ask(|c, _, tx| {
                let _ = tx.send(c.node.to_array());
            })
            .await
    }

    /// Declares that this application handles user command `command`; its requests then come
    /// from [`Dht::next_request`].
    pub async fn register_command(&self, command: u64) -> Result<(), DhtError> {
        self.driver
            .call(move |c, _| c.node.register_command(command))
            .await
    }

    /// The next request for a registered command.
    pub async fn next_request(&self) -> Option<IncomingRequest> {
        self.requests.lock().await.recv().await
    }

    /// Answers a user request ([`Node::reply`]).
    pub async fn reply(&self, req: IncomingRequest, opts: ReplyOpts) -> Result<(), DhtError> {
        self.driver.call(move |c, _| c.node.reply(&req, opts)).await
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        self.driver.shutdown().await;
    }
}

/// Waits until the status says the bootstrap finished.
pub(crate) async fn wait_ready(status: &watch::Receiver<Status>) -> Result<Status, DhtError> {
    let mut w = status.clone();
    let s = w
        .wait_for(|s| s.bootstrapped)
        .await
        .map_err(|_| DhtError::Shutdown)?;
    Ok(s.clone())
}

async fn drive<S: DatagramSocket, C: Core>(
    mut socket: S,
    mut core: C,
    mut rx: mpsc::Receiver<Call<C>>,
    status: watch::Sender<Status>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let local = status.borrow().local_addr;
    loop {
        while let Some(t) = core.poll_transmit() {
            if let Err(e) = socket.send_to(&t.payload, SocketAddr::V4(t.to)).await {
                tracing::debug!("send to {} failed: {e}", t.to);
            }
        }
        core.dispatch();
        let s = status_of(local, core.node());
        status.send_if_modified(|old| {
            if *old != s {
                *old = s;
                true
            } else {
                false
            }
        });
        let deadline = core
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let now = tokio::time::Instant::now().into_std();
                match r {
                    Ok((n, from)) => {
                        if let (Some(from), Some(d)) = (as_v4(from), buf.get(..n)) {
                            core.handle_datagram(now, from, d);
                        }
                    }
                    // The udx socket was closed under us: nothing more will arrive.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(e) => tracing::debug!("recv failed: {e}"),
                }
            }
            c = rx.recv() => {
                let now = tokio::time::Instant::now().into_std();
                match c {
                    None | Some(None) => break,
                    Some(Some(f)) => f(&mut core, now),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                core.handle_timeout(tokio::time::Instant::now().into_std());
            }
        }
    }
    // Whatever the core still has to say (a destroy's last events) goes out before the end.
    core.dispatch();
}
