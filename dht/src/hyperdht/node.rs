//! The sans-IO HyperDHT node (`hyperdht/index.js` `HyperDHT`): a dht-rpc [`Node`] it owns,
//! the record store ([`Persistent`]) once the node is persistent, the router's forward table
//! ([`Router`]) and the client operations (`super::ops`).
//!
//! I/O contract, the same as every core here: feed received datagrams to
//! [`HyperDht::handle_datagram`]`(now, from, bytes)`, call [`HyperDht::handle_timeout`]`(now)`
//! when [`HyperDht::poll_timeout`] says so, send what [`HyperDht::poll_transmit`] returns from
//! the node's one UDP socket, and read [`HyperDht::poll_event`] until it is empty. No clock,
//! no RNG, no I/O: time and the seed come in as arguments, and the wall clock the store needs
//! for announce bumps is the `unix_ms` given at construction advanced by the monotonic `now`.
//!
//! Requests (`index.js` `onrequest`): PEER_HANDSHAKE and PEER_HOLEPUNCH go to the router on
//! every node; the eight record commands are answered by the store only while the node is
//! persistent and has an id, and get UNKNOWN_COMMAND otherwise, as JS's `onrequest` returning
//! `false` does; PLUGIN is dropped while persistent (no plugins are registered here) and gets
//! UNKNOWN_COMMAND otherwise. The store is created the first time the node becomes
//! persistent (JS creates it on the first `persistent` event) and kept after that.
//!
//! Composition: only the public API of [`Node`] is used (`register_command`,
//! `Event::Request`, `reply`, `relay`, `query`, `request`, `cancel_query`); [`HyperDht::rpc`]
//! and [`HyperDht::rpc_mut`] hand the node out for what this type does not wrap. Events of
//! queries and requests this type did not start pass through as [`HyperEvent::Rpc`].

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::Command;
use super::Mode;
use super::messages::Handshake;
use super::ops::{HyperEvent, Ops};
use super::persistent::{
    Context, DEFAULT_MAX_AGE, DEFAULT_MAX_SIZE, Persistent, StoreCommand, StoreConfig,
    StoreRequest, StoreStats,
};
use super::router::{Router, RouterStats};
use super::server::{HandshakeOutcome, LocalInfo, Servers};
use crate::codec::{Decode, Encode};
use crate::rpc::wire::errors::UNKNOWN_COMMAND;
use crate::rpc::{Config, Event, IncomingRequest, Node, NodeId, ReplyOpts, Transmit};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Configuration of a [`HyperDht`] (`new HyperDHT(opts)`).
#[derive(Debug, Clone, Default)]
pub struct HyperDhtConfig {
    /// The dht-rpc node's options.
    pub rpc: Config,
    /// The store's cache sizes (`opts.maxSize`, `opts.maxAge`); the router's forward table
    /// uses the same `maxSize` and `maxAge` (`defaultCacheOpts` `router.forwards`).
    pub store: StoreConfig,
}

/// Counters of the HyperDHT layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HyperStats {
    /// Record requests answered with UNKNOWN_COMMAND because the node is not persistent.
    pub not_persistent: u64,
    /// PLUGIN requests dropped (no plugin registered).
    pub plugin_dropped: u64,
    /// LOOKUP or FIND_PEER replies whose value did not decode (dropped).
    pub bad_replies: u64,
    /// MUTABLE_GET replies whose signature did not verify (dropped).
    pub bad_signatures: u64,
    /// IMMUTABLE_GET replies whose value is not the target's preimage (dropped).
    pub bad_values: u64,
}

/// The HyperDHT node. See the module docs for the I/O contract.
#[derive(Debug)]
pub struct HyperDht {
    pub(super) node: Node,
    pub(super) store: Option<Persistent>,
    store_config: StoreConfig,
    store_seed: [u8; 32],
    pub(super) router: Router,
    origin: Instant,
    origin_unix_ms: u64,
    pub(super) ops: Ops,
    pub(super) events: VecDeque<HyperEvent>,
    pub(super) stats: HyperStats,
    pub(super) destroyed: bool,
    pub(super) servers: Servers,
    /// Ephemeral Noise keys and UDX stream ids (seeded, so runs replay).
    pub(super) rng: ChaCha20Rng,
    pub(super) next_stream_id: u32,
    /// Relay addresses our servers announce (`announcer.relayAddresses`).
    pub(super) relay_addresses: Vec<SocketAddrV4>,
}

impl HyperDht {
    /// A node bound to local port `local_port`, starting at `now`, when the wall clock reads
    /// `unix_ms` (milliseconds since the Unix epoch), drawing randomness from `seed`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use dht::hyperdht::{HyperDht, HyperDhtConfig, HyperEvent};
    /// let now = Instant::now();
    /// let mut dht = HyperDht::new(HyperDhtConfig::default(), 49737, now, 1_700_000_000_000, [7; 32]);
    /// let op = dht.lookup(now, [1; 32]);
    /// while let Some(t) = dht.poll_transmit() { let _ = t; /* send t.payload to t.to */ }
    /// while let Some(e) = dht.poll_event() {
    ///     if let HyperEvent::LookupReply { op: o, reply } = e { assert_eq!(o, op); let _ = reply.peers; }
    /// }
    /// ```
    pub fn new(
        config: HyperDhtConfig,
        local_port: u16,
        now: Instant,
        unix_ms: u64,
        seed: [u8; 32],
    ) -> Self {
        let (node_seed, store_seed) = split_seed(seed);
        let node = Node::new(config.rpc, local_port, now, node_seed);
        Self::wrap(node, config.store, now, unix_ms, store_seed)
    }

    /// A bootstrap node reachable at `public` (`HyperDHT.bootstrapper(port, host)`):
    /// persistent at once, so it stores records as JS's bootstrappers do.
    pub fn bootstrapper(
        config: HyperDhtConfig,
        public: SocketAddrV4,
        now: Instant,
        unix_ms: u64,
        seed: [u8; 32],
    ) -> Self {
        let (node_seed, store_seed) = split_seed(seed);
        let node = Node::bootstrapper(config.rpc, public, now, node_seed);
        Self::wrap(node, config.store, now, unix_ms, store_seed)
    }

    fn wrap(
        mut node: Node,
        store_config: StoreConfig,
        now: Instant,
        unix_ms: u64,
        store_seed: [u8; 32],
    ) -> Self {
        for c in Command::ALL {
            node.register_command(c.to_u64());
        }
        let max_size = if store_config.max_size == 0 {
            DEFAULT_MAX_SIZE
        } else {
            store_config.max_size
        };
        let max_age = store_config
            .max_age
            .filter(|a| !a.is_zero())
            .unwrap_or(DEFAULT_MAX_AGE);
        let mut rng =
            ChaCha20Rng::from_seed(crate::crypto::hash_batch(&[b"hyperdht-conn", &store_seed]));
        let next_stream_id = rng.next_u32();
        let mut dht = Self {
            servers: Servers::default(),
            rng,
            next_stream_id,
            relay_addresses: Vec::new(),
            node,
            store: None,
            store_config,
            store_seed,
            router: Router::new(max_size, max_age, now),
            origin: now,
            origin_unix_ms: unix_ms,
            ops: Ops::default(),
            events: VecDeque::new(),
            stats: HyperStats::default(),
            destroyed: false,
        };
        dht.pump(now);
        dht
    }

    // ---- accessors -------------------------------------------------------------------

    /// The dht-rpc node (ids, table, NAT, counters).
    pub fn rpc(&self) -> &Node {
        &self.node
    }

    /// The dht-rpc node, for requests and queries this type does not wrap; their events come
    /// out as [`HyperEvent::Rpc`].
    pub fn rpc_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// The node id while persistent (`dht.id`).
    pub fn id(&self) -> Option<NodeId> {
        self.node.id()
    }

    /// Whether the record store exists (the node became persistent at least once).
    pub fn is_storage_node(&self) -> bool {
        self.store.is_some()
    }

    /// The store's counters, once it exists.
    pub fn store_stats(&self) -> Option<StoreStats> {
        self.store.as_ref().map(Persistent::stats)
    }

    /// The store's entry counts `(records, refreshes, bumps, mutables, immutables)`.
    pub fn store_sizes(&self) -> Option<(usize, usize, usize, usize, usize)> {
        self.store.as_ref().map(Persistent::sizes)
    }

    /// The router (forward table and its counters).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The router's counters.
    pub fn router_stats(&self) -> &RouterStats {
        self.router.stats()
    }

    /// The layer's counters.
    pub fn stats(&self) -> &HyperStats {
        &self.stats
    }

    /// Operations running.
    pub fn running_ops(&self) -> usize {
        self.ops.len()
    }

    /// Whether [`HyperDht::destroy`] was called.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// Wall-clock milliseconds at `now`.
    pub(super) fn unix_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        self.origin_unix_ms.saturating_add(millis(elapsed))
    }

    // ---- sans-IO plumbing ------------------------------------------------------------

    /// Handles one received UDP datagram (ignored once destroyed: JS closes its socket).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        if self.destroyed {
            return;
        }
        self.node.handle_datagram(now, from, bytes);
        self.pump(now);
    }

    /// Processes timers due at `now`: the node's, the store's and the router's expiry (none
    /// once destroyed).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.destroyed {
            return;
        }
        self.node.handle_timeout(now);
        if let Some(s) = &mut self.store {
            s.advance(now);
        }
        self.router.advance(now);
        self.servers.advance(now);
        self.pump(now);
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }

    /// When [`HyperDht::handle_timeout`] must next be called (never once destroyed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.destroyed {
            return None;
        }
        [
            self.node.poll_timeout(),
            self.store.as_ref().and_then(Persistent::next_deadline),
            self.router.next_deadline(),
            self.servers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<HyperEvent> {
        self.events.pop_front()
    }

    /// Drains the node's events: requests are answered here, the events of our operations
    /// move them on, the rest go out as [`HyperEvent::Rpc`].
    pub(super) fn pump(&mut self, now: Instant) {
        while let Some(e) = self.node.poll_event() {
            match e {
                Event::Request(req) => self.on_request(now, &req),
                Event::Persistent { id } => {
                    if self.store.is_none() {
                        self.store =
                            Some(Persistent::new(&self.store_config, now, self.store_seed));
                    }
                    self.events
                        .push_back(HyperEvent::Rpc(Event::Persistent { id }));
                }
                other => {
                    if let Some(unclaimed) = self.on_rpc_event(now, other) {
                        self.events.push_back(HyperEvent::Rpc(unclaimed));
                    }
                }
            }
        }
    }

    /// `index.js` `onrequest`.
    fn on_request(&mut self, now: Instant, req: &IncomingRequest) {
        let Some(command) = Command::from_u64(req.command) else {
            // Only hyperdht's numbers are registered; a caller's own registrations pass on.
            self.events
                .push_back(HyperEvent::Rpc(Event::Request(req.clone())));
            return;
        };
        match command {
            Command::PeerHandshake if self.is_local_target(req) => {
                return self.on_server_handshake(now, req);
            }
            // Holepunching is not offered by our servers (no `holepunch` block in the reply),
            // so a holepunch for one of our keys has no slot to land in.
            Command::PeerHolepunch if self.is_local_target(req) => return,
            Command::PeerHandshake => return self.router.on_handshake(&mut self.node, req),
            Command::PeerHolepunch => return self.router.on_holepunch(&mut self.node, req),
            _ => {}
        }
        let unix_ms = self.unix_ms(now);
        let (Some(node_id), Some(store)) = (self.node.id(), self.store.as_mut()) else {
            self.stats.not_persistent += 1;
            self.node.reply(req, ReplyOpts::error(UNKNOWN_COMMAND));
            return;
        };
        let Some(store_command) = StoreCommand::from_command(command) else {
            // PLUGIN: `onplugin` finds no plugin and stays silent.
            self.stats.plugin_dropped += 1;
            return;
        };
        let record = if store_command.reads_router() {
            req.target
                .as_ref()
                .and_then(|t| self.router.get(t))
                .map(|f| f.record.clone())
        } else {
            None
        };
        let Some(store_req) = StoreRequest::from_incoming(req, record.as_deref()) else {
            return;
        };
        let ctx = Context {
            now,
            unix_ms,
            node_id,
        };
        let out = store.handle(&ctx, &store_req);
        if let Some(action) = out.router {
            self.router.apply(action);
        }
        if let Some(opts) = out.response.reply_opts() {
            self.node.reply(req, opts);
        }
    }
}

impl HyperDht {
    fn is_local_target(&self, req: &IncomingRequest) -> bool {
        req.target
            .as_ref()
            .is_some_and(|t| self.servers.is_local(t))
    }

    /// A fresh UDX stream id for a connection of this node (unique among the ids this node
    /// handed out until the counter wraps at 2^32).
    pub fn alloc_stream_id(&mut self) -> u32 {
        self.next_stream_id = self.next_stream_id.wrapping_add(1);
        self.next_stream_id
    }

    /// A fresh ephemeral Noise key pair from the node's seeded RNG.
    pub fn ephemeral_key_pair(&mut self) -> noise::KeyPair {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        noise::KeyPair::from_seed(seed)
    }

    /// The servers this node listens with.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    /// The servers, to listen or close.
    pub fn servers_mut(&mut self) -> &mut Servers {
        &mut self.servers
    }

    /// Sets the relay addresses our servers name in their replies (at most 3).
    pub fn set_relay_addresses(&mut self, relays: &[SocketAddrV4]) {
        self.relay_addresses = relays.iter().take(3).copied().collect();
    }

    /// `router.js onpeerhandshake`, server branch: the handshake is answered by our server
    /// and the reply goes back the way the request came (straight to a direct client, to
    /// the relay that forwarded it, or through the first relay a second relay names).
    fn on_server_handshake(&mut self, now: Instant, req: &IncomingRequest) {
        let (Some(target), Some(hs)) = (
            req.target,
            req.value
                .as_deref()
                .and_then(|v| Handshake::from_bytes(v).ok()),
        ) else {
            return;
        };
        let mode = Mode::from_u64(hs.mode);
        if !matches!(
            mode,
            Some(Mode::FromClient | Mode::FromRelay | Mode::FromSecondRelay)
        ) {
            return;
        }
        let local = LocalInfo {
            remote_address: self.node.remote_address(),
            relay_addresses: self.relay_addresses.clone(),
        };
        let ephemeral = self.ephemeral_key_pair();
        let stream_id = self.alloc_stream_id();
        let out = self.servers.on_handshake(
            now,
            &target,
            &hs.noise,
            hs.peer_address,
            req.from,
            &local,
            ephemeral,
            stream_id,
        );
        let HandshakeOutcome::Reply { noise, accepted } = out else {
            return;
        };
        match mode {
            Some(Mode::FromClient) => {
                let v = Handshake {
                    mode: Mode::Reply.to_u64(),
                    noise,
                    peer_address: None,
                    relay_address: None,
                };
                self.node.reply(
                    req,
                    ReplyOpts {
                        token: false,
                        closer_nodes: false,
                        ..ReplyOpts::value(Some(v.to_bytes()))
                    },
                );
            }
            Some(Mode::FromRelay) | Some(Mode::FromSecondRelay) => {
                let to = if mode == Some(Mode::FromRelay) {
                    Some(req.from)
                } else {
                    hs.relay_address
                };
                let Some(to) = to else { return };
                let v = Handshake {
                    mode: Mode::FromServer.to_u64(),
                    noise,
                    peer_address: hs.peer_address,
                    relay_address: None,
                };
                self.node.relay(req, Some(v.to_bytes()), to);
            }
            _ => return,
        }
        if let Some(a) = accepted {
            self.events.push_back(HyperEvent::Connection(a));
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Two independent seeds from one: the node's and the store's (BLAKE2b of a label and the
/// seed, so neither stream repeats the other).
fn split_seed(seed: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    let a = crate::crypto::hash_batch(&[b"hyperdht-node", &seed]);
    let b = crate::crypto::hash_batch(&[b"hyperdht-store", &seed]);
    (a, b)
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
