//! `dht.connect(publicKey)` and `dht.createServer().listen(keyPair)` on the tokio handle: the
//! thin driver around [`crate::hyperdht::server`] and [`crate::hyperdht::connect`].
//!
//! A connection is a UDX stream on the node's own socket (the id the handshake announced)
//! carrying a secret stream keyed by the handshake ([`Connection::stream`], `AsyncRead +
//! AsyncWrite`, message boundaries through `recv_message`/`send_message`, `into_split`).
//! The server side binds its stream at once when the client is open or came straight to us,
//! else to the source of the client's first packet (`server.js _addHandshake` raw-stream
//! firewall). The announcer (`lib/announcer.js`) announces the key to the closest nodes, names
//! the first three of them as relays in handshake replies (JS names the first three whose
//! ANNOUNCE succeeded; the commit counts here do not say which), re-announces every
//! [`REFRESH_INTERVAL`] and
//! unannounces on [`Server::close`].

// The driver is where the clock lives.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use noise::io::SecretStreamIo;
use tokio::sync::{mpsc, oneshot};
use udx::socket::UdxStream;

use super::DhtError;
use super::hyper::{HyperCore, HyperDhtNode};
use crate::crypto::{self, KeyPair};
use crate::hyperdht::Command;
use crate::hyperdht::connect::{ClientHandshake, ConnectError, Path};
use crate::hyperdht::noise_wrap::NoiseWrapResult;
use crate::hyperdht::server::{Accepted, FirewallFn, ServerError};
use crate::rpc::{Reply, RequestError, RequestId, RequestOpts};

/// The encrypted stream of a connection.
pub type EncryptedStream = SecretStreamIo<UdxStream>;

/// `announcer.js _background`: about five minutes between announces (100 rounds of 3 s).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Accepted connections a [`Server`] buffers before it drops new ones (our bound).
pub const ACCEPT_QUEUE: usize = 64;
/// `server.js HANDSHAKE_INITIAL_TIMEOUT`: how long an accepted handshake waits for the
/// client's first UDX packet.
pub const HANDSHAKE_INITIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a server side waiting for the client's first packet looks whether it came.
const BIND_POLL: Duration = Duration::from_millis(5);
/// Relays a connect tries before it gives up (our bound; JS tries every FIND_PEER reply).
pub const MAX_CONNECT_ATTEMPTS: usize = 8;
/// Relay hints a connect tries before the FIND_PEER walk (hyperdht records hold 3).
const MAX_RELAY_HINTS: usize = 3;
/// Handshakes a connect runs at once (`connect.js findAndConnect`: a semaphore of 2).
pub const PARALLEL_ATTEMPTS: usize = 2;
/// hyperdht's `connectionKeepAlive` default (5 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How a connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The client reached the server directly (open server, or straight to its address).
    Direct,
    /// The LAN shortcut (both ends on one network as the relay sees them).
    Lan,
    /// The server side of a connection.
    Accepted,
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Lan => "lan",
            Self::Accepted => "accepted",
        })
    }
}

/// One open connection.
#[derive(Debug)]
pub struct Connection {
    /// The encrypted stream.
    pub stream: EncryptedStream,
    /// The peer's public key.
    pub remote_public_key: [u8; 32],
    /// The Noise handshake hash.
    pub handshake_hash: [u8; 64],
    /// How it was made.
    pub how: How,
    /// The peer's address the UDX stream is bound to (for a server side bound on the first
    /// packet, `None` until it arrives).
    pub remote_addr: Option<SocketAddr>,
}

fn open(stream: UdxStream, hs: &NoiseWrapResult, how: How) -> Connection {
    let remote_addr = stream.remote_addr();
    let mut io = SecretStreamIo::from_handshake(stream, &hs.handshake);
    io.set_keep_alive(Some(KEEP_ALIVE));
    Connection {
        stream: io,
        remote_public_key: hs.handshake.remote_public_key,
        handshake_hash: hs.handshake.hash,
        how,
        remote_addr,
    }
}

/// A connect in progress: one msg1 (sent through every relay tried, so the server's msg1
/// dedup answers it once, as JS's `c.request` is built once), the stream it announced, and
/// who waits for the connection.
pub(super) struct PendingConnect {
    hs: ClientHandshake,
    stream: Option<UdxStream>,
    done: Option<oneshot::Sender<Result<Connection, ConnectError>>>,
}

/// One relay tried by a connect.
pub(super) struct Attempt {
    connect: u64,
    relay: SocketAddrV4,
    done: oneshot::Sender<Result<(), ConnectError>>,
}

impl HyperCore {
    /// `HyperEvent::Connection`: open the accepted connection and hand it to its server.
    pub(super) fn on_accepted(&mut self, acc: &Accepted) {
        let Some(tx) = self.listeners.get(&acc.server) else {
            return;
        };
        let Ok(stream) = self.udx.create_stream(acc.local_stream_id) else {
            tracing::debug!(
                "stream id {} in use; connection dropped",
                acc.local_stream_id
            );
            return;
        };
        if acc.connect_now {
            if stream
                .connect(acc.remote_stream_id, SocketAddr::V4(acc.client_address))
                .is_err()
            {
                return;
            }
            let conn = open(stream, &acc.handshake, How::Accepted);
            if tx.try_send(conn).is_err() {
                tracing::debug!("accept queue full or server gone; connection dropped");
            }
            return;
        }
        // JS's raw-stream firewall accepts the first packet from anywhere; the connection is
        // handed out once it is bound, and dropped (the stream destroyed) when no packet came
        // within `HANDSHAKE_INITIAL_TIMEOUT`, as JS's `prepunching` timer does.
        if stream
            .connect_on_first_packet(acc.remote_stream_id, |_| true)
            .is_err()
        {
            return;
        }
        let (tx, hs) = (tx.clone(), acc.handshake.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + HANDSHAKE_INITIAL_TIMEOUT;
            while stream.remote_addr().is_none() {
                if tokio::time::Instant::now() >= deadline {
                    tracing::debug!("no packet from the client in time; connection dropped");
                    return;
                }
                tokio::time::sleep(BIND_POLL).await;
            }
            if tx.try_send(open(stream, &hs, How::Accepted)).is_err() {
                tracing::debug!("accept queue full or server gone; connection dropped");
            }
        });
    }

    /// A reply (or failure) of a PEER_HANDSHAKE we sent; `false` when it is not ours.
    pub(super) fn on_handshake_response(
        &mut self,
        request: RequestId,
        result: &Result<Reply, RequestError>,
    ) -> bool {
        let Some(a) = self.attempts.remove(&request) else {
            return false;
        };
        let Some(p) = self.connects.get_mut(&a.connect) else {
            let _ = a.done.send(Err(ConnectError::PeerConnectionFailed));
            return true;
        };
        if p.done.is_none() {
            // Another relay's reply opened the connection already.
            let _ = a.done.send(Ok(()));
            return true;
        }
        let r = match result {
            Err(_) => Err(ConnectError::PeerConnectionFailed),
            Ok(reply) => p.hs.on_reply(a.relay, reply),
        };
        let c = match r {
            Ok(c) => c,
            Err(e) => {
                let _ = a.done.send(Err(e));
                return true;
            }
        };
        let how = match c.path {
            Path::Direct(_) => How::Direct,
            Path::Lan(_) => How::Lan,
        };
        let (Some(stream), Some(done)) = (p.stream.take(), p.done.take()) else {
            let _ = a.done.send(Err(ConnectError::PeerConnectionFailed));
            return true;
        };
        // A JS server may answer from its other dht-rpc socket (see
        // `UdxStream::connect_rebinding`); the secret stream authenticates whoever answers.
        let r = stream
            .connect_rebinding(c.remote_stream_id, SocketAddr::V4(c.path.addr()))
            .map_err(|_| ConnectError::PeerConnectionFailed)
            .map(|()| open(stream, &c.handshake, how));
        let ok = r.is_ok();
        let _ = done.send(r);
        let _ = a.done.send(if ok {
            Ok(())
        } else {
            Err(ConnectError::PeerConnectionFailed)
        });
        true
    }
}

/// A listening server (`dht.createServer()` after `listen(keyPair)`).
#[derive(Debug)]
pub struct Server {
    node: HyperDhtNode,
    key_pair: KeyPair,
    rx: mpsc::Receiver<Connection>,
    announcer: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The key clients connect to.
    pub fn public_key(&self) -> [u8; 32] {
        self.key_pair.public_key
    }

    /// The next connection; `None` once the node is gone.
    pub async fn accept(&mut self) -> Option<Connection> {
        self.rx.recv().await
    }

    /// `server.close()`: stop answering, stop announcing, unannounce.
    pub async fn close(self) {
        self.announcer.abort();
        let pk = self.key_pair.public_key;
        let _ = self
            .node
            .driver()
            .call(move |c, _| {
                c.listeners.remove(&pk);
                c.dht_mut().servers_mut().close(&pk);
            })
            .await;
        let _ = self
            .node
            .unannounce(crypto::hash(&self.key_pair.public_key), &self.key_pair)
            .await;
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::close`] stops answering and announcing at once
    /// (best effort when the command queue is full); its record expires on the stores.
    fn drop(&mut self) {
        self.announcer.abort();
        let pk = self.key_pair.public_key;
        self.node.driver().try_call(move |c, _| {
            c.listeners.remove(&pk);
            c.dht_mut().servers_mut().close(&pk);
        });
    }
}

/// Why `listen` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The server refused the key pair.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The node is gone.
    #[error(transparent)]
    Dht(#[from] DhtError),
}

impl HyperDhtNode {
    /// `dht.createServer({ firewall }).listen(keyPair)`: handshakes for the key are answered
    /// from now on; the first announce has run when this returns (an announce that reached
    /// no node is not an error: clients holding a relay hint still get through, and the
    /// refresh tries again).
    pub async fn listen(
        &self,
        key_pair: &KeyPair,
        firewall: Option<FirewallFn>,
    ) -> Result<Server, ListenError> {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let kp = key_pair.clone();
        self.driver()
            .ask(move |c, _, done| {
                let r = c.dht_mut().servers_mut().listen(kp.clone(), firewall);
                if r.is_ok() {
                    c.listeners.insert(kp.public_key, tx);
                }
                let _ = done.send(r);
            })
            .await??;
        let target = crypto::hash(&key_pair.public_key);
        let first = self.announce(target, key_pair, &[]).await;
        self.note_relays(first.as_ref().ok()).await;
        let node = self.clone();
        let kp = key_pair.clone();
        let announcer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_INTERVAL).await;
                let r = node.announce(target, &kp, &[]).await;
                node.note_relays(r.as_ref().ok()).await;
            }
        });
        Ok(Server {
            node: self.clone(),
            key_pair: key_pair.clone(),
            rx,
            announcer,
        })
    }

    async fn note_relays(&self, committed: Option<&crate::hyperdht::Committed>) {
        let Some(c) = committed else { return };
        let relays: Vec<SocketAddrV4> = c.closest_nodes.iter().take(3).copied().collect();
        let _ = self
            .driver()
            .call(move |c, _| c.dht_mut().set_relay_addresses(&relays))
            .await;
    }

    /// `dht.connect(publicKey)` with this node's key pair.
    pub async fn connect(&self, public_key: [u8; 32]) -> Result<Connection, ConnectError> {
        let kp = self.default_key_pair().clone();
        self.connect_with(&kp, public_key, &[]).await
    }

    /// `dht.connect(publicKey, { keyPair, relayAddresses })`: the relay hints are tried first,
    /// then every node the FIND_PEER walk finds routing for the key, [`PARALLEL_ATTEMPTS`] at
    /// once as in JS (`findAndConnect`), up to [`MAX_CONNECT_ATTEMPTS`]. One msg1 goes through
    /// every relay.
    pub async fn connect_with(
        &self,
        key_pair: &KeyPair,
        public_key: [u8; 32],
        relay_hints: &[SocketAddrV4],
    ) -> Result<Connection, ConnectError> {
        let (id, conn_rx) = self.start_connect(key_pair, public_key).await?;
        let r = self.run_attempts(id, public_key, relay_hints).await;
        let _ = self
            .driver()
            .call(move |c, _| {
                c.connects.remove(&id);
            })
            .await;
        r?;
        conn_rx
            .await
            .map_err(|_| ConnectError::PeerConnectionFailed)?
    }

    /// Tries relays until one attempt opens the connection.
    async fn run_attempts(
        &self,
        id: u64,
        public_key: [u8; 32],
        relay_hints: &[SocketAddrV4],
    ) -> Result<(), ConnectError> {
        let mut tried = 0usize;
        let mut last = None;
        for relay in relay_hints.iter().take(MAX_RELAY_HINTS) {
            tried += 1;
            match self.attempt(id, *relay).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        let mut found = self
            .find_peers(public_key, MAX_CONNECT_ATTEMPTS)
            .await
            .map_err(|_| ConnectError::NodeDestroyed)?;
        let mut running = tokio::task::JoinSet::new();
        let mut walk_done = false;
        loop {
            while !walk_done && running.len() < PARALLEL_ATTEMPTS && tried < MAX_CONNECT_ATTEMPTS {
                match found.recv().await {
                    Some(f) if relay_hints.contains(&f.from) => {}
                    Some(f) => {
                        tried += 1;
                        let node = self.clone();
                        running.spawn(async move { node.attempt(id, f.from).await });
                    }
                    None => walk_done = true,
                }
            }
            let Some(r) = running.join_next().await else {
                break;
            };
            match r {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {}
            }
        }
        Err(match last {
            // A refusal from the server itself says more than "failed".
            Some(e @ (ConnectError::ServerError(_) | ConnectError::ServerIncompatible)) => e,
            Some(ConnectError::NodeDestroyed) => ConnectError::NodeDestroyed,
            _ if tried > 0 => ConnectError::PeerConnectionFailed,
            _ => ConnectError::PeerNotFound,
        })
    }

    /// Builds msg1 and the stream it announces.
    async fn start_connect(
        &self,
        key_pair: &KeyPair,
        public_key: [u8; 32],
    ) -> Result<(u64, ConnReceiver), ConnectError> {
        let kp = key_pair.clone();
        self.driver()
            .ask(move |c, _, tx| {
                let udx = c.udx.clone();
                let dht = c.dht_mut();
                let id = loop {
                    let id = dht.alloc_stream_id();
                    if !udx.id_in_use(id) {
                        break id;
                    }
                };
                let our = dht.rpc().remote_address();
                let eph = dht.ephemeral_key_pair();
                let r = ClientHandshake::new(&kp, eph, public_key, id, our).and_then(|hs| {
                    udx.create_stream(id)
                        .map(|s| (hs, s))
                        .map_err(|_| ConnectError::PeerConnectionFailed)
                });
                let r = r.map(|(hs, stream)| {
                    let (done, rx) = oneshot::channel();
                    c.next_connect += 1;
                    let cid = c.next_connect;
                    c.connects.insert(
                        cid,
                        PendingConnect {
                            hs,
                            stream: Some(stream),
                            done: Some(done),
                        },
                    );
                    (cid, rx)
                });
                let _ = tx.send(r);
            })
            .await
            .map_err(|_| ConnectError::NodeDestroyed)?
    }

    /// Sends the connect's msg1 through `relay` and waits for that relay's outcome.
    async fn attempt(&self, id: u64, relay: SocketAddrV4) -> Result<(), ConnectError> {
        let rx = self
            .driver()
            .ask(move |c, now, tx| {
                let (done, rx) = oneshot::channel();
                let Some(p) = c.connects.get(&id) else {
                    let _ = done.send(Err(ConnectError::PeerConnectionFailed));
                    let _ = tx.send(rx);
                    return;
                };
                let opts = RequestOpts {
                    target: Some(crypto::hash(p.hs.server_public_key())),
                    value: Some(p.hs.request_value().to_vec()),
                    ..RequestOpts::user(Command::PeerHandshake.to_u64())
                };
                let req = c.dht_mut().rpc_mut().request(now, relay, opts);
                c.attempts.insert(
                    req,
                    Attempt {
                        connect: id,
                        relay,
                        done,
                    },
                );
                let _ = tx.send(rx);
            })
            .await
            .map_err(|_| ConnectError::NodeDestroyed)?;
        rx.await.map_err(|_| ConnectError::NodeDestroyed)?
    }
}

type ConnReceiver = oneshot::Receiver<Result<Connection, ConnectError>>;
