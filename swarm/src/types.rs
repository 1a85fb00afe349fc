//! Values that go in and out of [`crate::SwarmCore`]: keys, identifiers, options, the actions
//! the driver performs and the events the application sees.

use std::fmt;
use std::net::SocketAddr;

/// A 32-byte Ed25519 public key (JS: `keyPair.publicKey`, `conn.remotePublicKey`). Ordering is
/// byte-wise, as `b4a.compare` orders keys in `hyperswarm/index.js _handleServerConnection`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..")
    }
}

/// A 32-byte topic (JS `join(topic)`: "Topic is required and must be a 32-byte buffer").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(pub [u8; 32]);

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("topic:")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One connection (outgoing attempt or incoming stream), numbered by the core. JS keeps the
/// `NoiseSecretStream` object itself in `ConnectionSet`; the driver maps this id to its stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId(pub u64);

/// One refresh (announce or lookup walk) of one topic; JS's `PeerDiscovery._refreshes` clock.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RefreshId(pub u64);

/// One pending `flush()` or `discovery.flushed()`; answered by [`Event::Flushed`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct FlushId(pub u64);

/// One `join` session (JS `PeerDiscoverySession`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SessionId(pub u64);

/// A peer record from a LOOKUP reply (JS `data.peers[i]`: `{ publicKey, relayAddresses }`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerRecord {
    /// The announcing peer's key.
    pub public_key: PublicKey,
    /// Where it can be reached through relays (hyperdht announces at most 3).
    pub relay_addresses: Vec<SocketAddr>,
}

/// Swarm options (JS `new Hyperswarm(opts)`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Our key (JS `keyPair.publicKey`).
    pub public_key: PublicKey,
    /// JS `maxPeers`, default [`crate::MAX_PEERS`].
    pub max_peers: usize,
    /// JS `maxParallel`, default [`crate::MAX_PARALLEL`].
    pub max_parallel: usize,
    /// JS `maxClientConnections` (JS default Infinity; here [`crate::MAX_CONNECTIONS`]).
    pub max_client_connections: usize,
    /// JS `maxServerConnections` (JS default Infinity and never enforced; here enforced, default
    /// [`crate::MAX_CONNECTIONS`]).
    pub max_server_connections: usize,
    /// JS `relayThrough` given as a key: used when a peer is forced to relaying or our NAT is
    /// randomized (`hyperswarm/index.js toRelayFunction`).
    pub relay_through: Option<PublicKey>,
    /// When true, each outgoing attempt first asks the application's firewall
    /// ([`Action::CheckFirewall`]); when false every outgoing peer is allowed (JS `allowAll`).
    pub firewall_outgoing: bool,
    /// Seed of the core's randomness (jitter, queue shuffling). JS uses `Math.random`.
    pub seed: u64,
    /// JS `opts.backoffs`: the S, M, L, X retry periods in ms. `None`: JS's defaults, each
    /// with its random addition (see [`crate::peer::RetryTimer`]). Tests shorten them.
    pub backoffs_ms: Option<[u64; 4]>,
    /// JS `opts.jitter`: up to this many ms added to each period once, at construction.
    pub backoff_jitter_ms: u64,
}

impl Options {
    /// JS's defaults for the given key.
    pub fn new(public_key: PublicKey) -> Self {
        Options {
            public_key,
            max_peers: crate::MAX_PEERS,
            max_parallel: crate::MAX_PARALLEL,
            max_client_connections: crate::MAX_CONNECTIONS,
            max_server_connections: crate::MAX_CONNECTIONS,
            relay_through: None,
            firewall_outgoing: false,
            seed: 0,
            backoffs_ms: None,
            backoff_jitter_ms: crate::peer::BACKOFF_JITTER_MS,
        }
    }
}

/// JS `join(topic, { server = true, client = true, limit = Infinity })`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinOptions {
    /// Announce ourselves under the topic.
    pub server: bool,
    /// Look the topic up and dial the peers found.
    pub client: bool,
    /// Most peers to hand to the swarm per refresh (`None`: JS's Infinity).
    pub limit: Option<usize>,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            server: true,
            client: true,
            limit: None,
        }
    }
}

/// The error a failed or closed connection carries, by the JS error code the swarm acts on
/// (`hyperswarm/index.js shouldForceRelaying`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// hyperdht `HOLEPUNCH_ABORTED`.
    HolepunchAborted,
    /// hyperdht `HOLEPUNCH_DOUBLE_RANDOMIZED_NATS`.
    HolepunchDoubleRandomizedNats,
    /// hyperdht `CANNOT_HOLEPUNCH`.
    CannotHolepunch,
    /// hyperdht `REMOTE_NOT_HOLEPUNCHABLE`.
    RemoteNotHolepunchable,
    /// Anything else (timeouts, peer not found, stream errors): no policy attached.
    Other,
}

impl ConnError {
    /// JS `shouldForceRelaying(code)`: the holepunch failures after which the peer is retried
    /// through the relay at once.
    pub fn forces_relaying(self) -> bool {
        !matches!(self, ConnError::Other)
    }
}

/// Why the core asks the driver to close a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// JS `ERR_DUPLICATE`: the other of two connections to the same peer survives.
    #[error("Duplicate connection")]
    Duplicate,
    /// JS `ERR_DESTROYED`: the swarm is destroyed.
    #[error("Swarm has been destroyed")]
    Destroyed,
    /// JS `ERR_FIREWALL`: the firewall refused the peer.
    #[error("Peer is firewalled")]
    Firewalled,
    /// JS `suspend()` destroys every connection.
    #[error("Swarm is suspended")]
    Suspended,
    /// The connection would exceed a connection limit of this swarm.
    #[error("Connection limit reached")]
    Limit,
}

/// Work for the driver, polled with [`crate::SwarmCore::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start listening with the swarm key pair (JS `swarm.listen()`); answer with
    /// [`crate::SwarmCore::handle_listening`].
    Listen,
    /// JS `dht.announce(topic, keyPair, relayAddresses, { clear })`; report peers with
    /// `handle_lookup_peers` and the end with `handle_refresh_done`.
    Announce {
        /// The topic.
        topic: Topic,
        /// Identifies the walk in later inputs.
        refresh: RefreshId,
        /// First announce of this topic: unannounce stale records first.
        clear: bool,
    },
    /// JS `dht.lookup(topic)`, or `dht.lookupAndUnannounce` when `unannounce`.
    Lookup {
        /// The topic.
        topic: Topic,
        /// Identifies the walk in later inputs.
        refresh: RefreshId,
        /// The topic used to be announced: also unannounce on the way.
        unannounce: bool,
    },
    /// JS `activeQuery.destroy()`: stop a walk, its results are no longer wanted.
    CancelQuery {
        /// The topic.
        topic: Topic,
        /// The walk to stop.
        refresh: RefreshId,
    },
    /// JS `dht.unannounce(topic, keyPair, { closestNodes, onlyClosestNodes: true, force: true })`.
    Unannounce {
        /// The topic.
        topic: Topic,
    },
    /// Ask the application's firewall about an outgoing peer; answer with
    /// `handle_firewall_verdict` (only with [`Options::firewall_outgoing`]).
    CheckFirewall {
        /// The attempt waiting on the verdict.
        conn: ConnId,
        /// The peer.
        remote: PublicKey,
    },
    /// JS `dht.connect(publicKey, { relayAddresses, keyPair, relayThrough })`; answer with
    /// `handle_opened` or `handle_failed`, and later `handle_closed`.
    Dial {
        /// The id of this attempt.
        conn: ConnId,
        /// The peer.
        remote: PublicKey,
        /// Its latest relay addresses.
        relay_addresses: Vec<SocketAddr>,
        /// Relay through this node (JS `relayThrough`).
        relay_through: Option<PublicKey>,
    },
    /// JS `conn.sendKeepAlive()`.
    SendKeepAlive {
        /// The connection.
        conn: ConnId,
    },
    /// Destroy this connection (or abort this attempt); answer with `handle_closed`.
    Close {
        /// The connection.
        conn: ConnId,
        /// The error to destroy it with.
        reason: CloseReason,
    },
    /// JS `server.close()` in `destroy()`.
    CloseServer,
    /// JS `suspend()`: suspend the server and the DHT node (`server.suspend()`,
    /// `dht.suspend()`).
    Suspend,
    /// JS `resume()`: resume the DHT node and the server.
    Resume,
}

/// A copy of a peer's state as the application sees it (JS `PeerInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// JS `publicKey`.
    pub public_key: PublicKey,
    /// JS `topics`: topics it was discovered under (empty for inbound-only peers).
    pub topics: Vec<Topic>,
    /// JS `client`: we dialled it.
    pub client: bool,
    /// JS `priority` (0 very low .. 4 very high).
    pub priority: u8,
    /// JS `banned`.
    pub banned: bool,
    /// JS `explicit`: joined with `join_peer`.
    pub explicit: bool,
    /// JS `attempts`.
    pub attempts: u32,
}

/// What the application sees, polled with [`crate::SwarmCore::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// JS `emit('connection', conn, peerInfo)`.
    Connection {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: PeerSnapshot,
    },
    /// A connection handed out by [`Event::Connection`] is gone.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// The peer.
        remote: PublicKey,
    },
    /// JS `emit('ban', peerInfo, err)`.
    Ban {
        /// The peer.
        remote: PublicKey,
        /// Why.
        reason: CloseReason,
    },
    /// A `flush()` / `flushed()` settled; `ok` is false when the swarm was destroyed first.
    Flushed {
        /// The flush.
        flush: FlushId,
        /// JS's resolved value.
        ok: bool,
    },
}

/// Counters (JS `swarm.stats`, less `updates`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// JS `connects.client.attempted`: dials sent.
    pub client_attempted: u64,
    /// JS `connects.client.opened`.
    pub client_opened: u64,
    /// JS `connects.client.closed`: dials that closed, opened or not.
    pub client_closed: u64,
    /// JS `connects.server.opened`.
    pub server_opened: u64,
    /// JS `connects.server.closed`.
    pub server_closed: u64,
    /// JS `bannedPeers`: bans made.
    pub banned_peers: u64,
}

/// Calls the core refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwarmError {
    /// JS "Swarm destroyed".
    #[error("the swarm has been destroyed")]
    Destroyed,
    /// JS "Cannot refresh with neither client nor server option".
    #[error("a join needs the client or the server option")]
    NeitherClientNorServer,
    /// More topics than [`crate::MAX_TOPICS`].
    #[error("too many topics joined")]
    TooManyTopics,
    /// The session is unknown or already left.
    #[error("no such join session")]
    UnknownSession,
    /// More explicit peers than [`crate::MAX_EXPLICIT_PEERS`].
    #[error("too many explicitly joined peers")]
    TooManyExplicitPeers,
    /// More pending flushes than [`crate::MAX_PENDING_FLUSHES`].
    #[error("too many flushes pending")]
    TooManyFlushes,
}

/// The core's randomness: SplitMix64 over the injected seed (JS uses `Math.random`).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max` (JS `Math.round(max * Math.random())`, close enough in law).
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % max.saturating_add(1)
    }

    /// Uniform index in `0..len` (`len` > 0).
    pub(crate) fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % (len.max(1) as u64)) as usize
    }
}
