//! The storage node's record store: what a persistent HyperDHT node does with FIND_PEER,
//! LOOKUP, ANNOUNCE, UNANNOUNCE, MUTABLE_PUT, MUTABLE_GET, IMMUTABLE_PUT and IMMUTABLE_GET.
//!
//! JS: hyperdht@6.34.0 `lib/persistent.js` (`Persistent`, one handler per command), the cache
//! sizes of `index.js` `defaultCacheOpts`, and the dispatch of `index.js` `onrequest`.
//!
//! Sans-IO: [`Persistent::handle`] takes a decoded request ([`StoreRequest`]) and a
//! [`Context`] (the caller's clock, wall-clock milliseconds, the node's id) and returns an
//! [`Outcome`]: the [`Response`] JS would send (a value, an error code, or silence with the
//! reason) and, for announces of a server's own key, a [`RouterAction`] for the caller's
//! router (JS writes `dht._router` directly). It does no I/O, reads no clock and draws its
//! randomness (which records a LOOKUP returns) from the seed it was built with.
//!
//! How a HyperDHT layer that owns an `rpc::Node` uses it ([`super::HyperDht`] does exactly
//! this): register the eight commands
//! ([`StoreCommand::ALL`]) with `Node::register_command` once the node is persistent; for each
//! `Event::Request` whose command is one of them, build a [`StoreRequest`] with
//! [`StoreRequest::from_incoming`] (for LOOKUP and FIND_PEER also pass the router's record for
//! the target), call [`Persistent::handle`], apply the [`RouterAction`] to the router, and
//! answer with `Node::reply(req, opts)` when [`Response::reply_opts`] gives options. Tokens
//! are the rpc layer's job: it answers a request with a bad token itself, so the `token` the
//! store sees is either absent or valid.
//!
//! Bounds (`index.js` `defaultCacheOpts` with `defaultMaxSize = 65536`, `defaultMaxAge = 20 min`):
//! peer records, refresh entries and bumps 65,536 fresh and 65,537 stale each (131,073 in
//! all), mutable and immutable values 32,768 fresh and 32,769 stale each (48 h).
//! Entries live 2/3 to 4/3 of their age (see [`super::cache`], which also explains the one
//! place the caches bound what JS leaves unbounded: reads that keep stale entries alive). The
//! heap of the announce stores at those sizes is at most [`ANNOUNCE_HEAP_BOUND`]
//! (`tests/persistent_flood.rs` measures it); mutable and immutable values are counted, not
//! sized, as in JS, so their heap is at most 2 × 65,537 values of one datagram each.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::cache::{CacheStats, PeerRecord, RecordCache, Xache};
use super::{Command, ErrorCode};
use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::{self, NS};
use crate::hyperdht::messages::{Announce, MutableGetResponse, MutablePutRequest};
use crate::rpc::{IncomingRequest, NodeId, ReplyOpts};

/// `index.js` `defaultMaxSize`: records, refreshes and bumps per generation.
pub const DEFAULT_MAX_SIZE: usize = 65_536;
/// `index.js` `defaultMaxAge` (20 minutes): records, refreshes and bumps.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(20 * 60);
/// `index.js` `defaultCacheOpts`: mutable and immutable values live 48 hours.
pub const VALUE_MAX_AGE: Duration = Duration::from_secs(48 * 60 * 60);
/// `persistent.js` `MAX_BUMP_DRIFT`: a bump at most this far (ms) in the future is accepted.
pub const MAX_BUMP_DRIFT_MS: u64 = 60_000;
/// `persistent.js` `onlookup`: `this.records.get(k, 20)`.
pub const LOOKUP_MAX_RECORDS: usize = 20;
/// `persistent.js` `onannounce`: relay addresses beyond the third are cut.
pub const MAX_RELAY_ADDRESSES: usize = 3;
/// Heap per stored announce when every announce fills a record, a refresh entry and a bump,
/// each under its own topic (the costliest shape): `tests/persistent_flood.rs` measures about
/// 460 bytes of live allocations (B-tree nodes and the inline record; the allocator's own
/// overhead is not counted); the bound leaves some headroom.
pub const ANNOUNCE_HEAP_PER_ENTRY: usize = 512;
/// Heap of a store whose announce caches are full at the default sizes (two generations of
/// 65,536): 131,072 × [`ANNOUNCE_HEAP_PER_ENTRY`] = 64 MiB (measured: 57.9 MiB).
pub const ANNOUNCE_HEAP_BOUND: usize = 2 * DEFAULT_MAX_SIZE * ANNOUNCE_HEAP_PER_ENTRY;

/// Cache sizes (`index.js` `defaultCacheOpts(opts)`; `opts.maxSize`, `opts.maxAge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `maxSize`: records, refreshes and bumps per generation; mutables and immutables get
    /// half. Zero means the default, as `opts.maxSize || defaultMaxSize` does.
    pub max_size: usize,
    /// `maxAge`: for every cache when set (zero means unset, as `||` does); unset means 20 min
    /// for records, refreshes and bumps and 48 h for mutables and immutables.
    pub max_age: Option<Duration>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_SIZE,
            max_age: None,
        }
    }
}

/// The commands the store answers (`index.js` `onrequest`, persistent part, without PLUGIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreCommand {
    /// FIND_PEER (2): the router record of a key.
    FindPeer,
    /// LOOKUP (3): the peer records of a topic.
    Lookup,
    /// ANNOUNCE (4).
    Announce,
    /// UNANNOUNCE (5).
    Unannounce,
    /// MUTABLE_PUT (6).
    MutablePut,
    /// MUTABLE_GET (7).
    MutableGet,
    /// IMMUTABLE_PUT (8).
    ImmutablePut,
    /// IMMUTABLE_GET (9).
    ImmutableGet,
}

impl StoreCommand {
    /// Every store command.
    pub const ALL: [Self; 8] = [
        Self::FindPeer,
        Self::Lookup,
        Self::Announce,
        Self::Unannounce,
        Self::MutablePut,
        Self::MutableGet,
        Self::ImmutablePut,
        Self::ImmutableGet,
    ];

    /// The hyperdht command.
    pub fn command(self) -> Command {
        match self {
            Self::FindPeer => Command::FindPeer,
            Self::Lookup => Command::Lookup,
            Self::Announce => Command::Announce,
            Self::Unannounce => Command::Unannounce,
            Self::MutablePut => Command::MutablePut,
            Self::MutableGet => Command::MutableGet,
            Self::ImmutablePut => Command::ImmutablePut,
            Self::ImmutableGet => Command::ImmutableGet,
        }
    }

    /// The store command for a hyperdht command; `None` for the router's and PLUGIN.
    pub fn from_command(c: Command) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.command() == c)
    }

    /// Whether the handler reads the router's record for the target (LOOKUP, FIND_PEER); the
    /// caller fetches it only then, as JS's `_router.get` also refreshes the entry.
    pub fn reads_router(self) -> bool {
        matches!(self, Self::FindPeer | Self::Lookup)
    }
}

/// A decoded request, as the rpc layer hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRequest<'a> {
    /// The command.
    pub command: StoreCommand,
    /// The requester's address (`req.from`; the relay of a self-announce).
    pub from: SocketAddrV4,
    /// `req.target`.
    pub target: Option<&'a [u8; 32]>,
    /// `req.token`: the token the requester presented, already checked by the rpc layer
    /// (absent when none was sent; a request with a bad token never reaches the store).
    pub token: Option<&'a [u8; 32]>,
    /// `req.value`.
    pub value: Option<&'a [u8]>,
    /// For LOOKUP and FIND_PEER: the record the router holds for the target
    /// (`this.dht._router.get(target).record`), if any. Ignored by the other commands.
    pub router_record: Option<&'a [u8]>,
}

impl<'a> StoreRequest<'a> {
    /// The store request for an rpc request; `None` for internal commands and for commands
    /// the store does not answer. `router_record` as in [`StoreRequest::router_record`].
    pub fn from_incoming(
        req: &'a IncomingRequest,
        router_record: Option<&'a [u8]>,
    ) -> Option<Self> {
        if req.internal {
            return None;
        }
        let command = StoreCommand::from_command(Command::from_u64(req.command)?)?;
        Some(Self {
            command,
            from: req.from,
            target: req.target.as_ref(),
            token: req.token.as_ref(),
            value: req.value.as_deref(),
            router_record,
        })
    }
}

/// The caller's view of time and identity for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Monotonic time; drives the caches' expiry timers.
    pub now: Instant,
    /// Wall-clock milliseconds since the Unix epoch (`Date.now()`); bounds ANNOUNCE bumps.
    pub unix_ms: u64,
    /// This node's id (`this.dht.id`); announce signatures cover it.
    pub node_id: NodeId,
}

/// Why the store sent nothing: JS returns from the handler without a reply, so the requester
/// times out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// The request had no target.
    #[error("the request has no target")]
    NoTarget,
    /// A write came without a token.
    #[error("the write has no token")]
    NoToken,
    /// The request had no value.
    #[error("the request has no value")]
    NoValue,
    /// The value does not decode.
    #[error("the value does not decode: {0}")]
    Malformed(DecodeError),
    /// An ANNOUNCE with neither a peer record nor a refresh token, or an UNANNOUNCE without a
    /// peer record.
    #[error("the announce has no peer record")]
    NoPeer,
    /// An announce or unannounce without a signature.
    #[error("the announce has no signature")]
    NoSignature,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// MUTABLE_PUT: target is not the hash of the key; IMMUTABLE_PUT: not the hash of the value.
    #[error("the target is not the hash of the key or value")]
    TargetMismatch,
    /// A refresh token the store holds no record for.
    #[error("no record for this refresh token")]
    UnknownRefresh,
}

/// The answer JS gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `req.reply(value, { token, closerNodes })`.
    Reply {
        /// The reply value.
        value: Option<Vec<u8>>,
        /// Include a token.
        token: bool,
        /// Include closer nodes.
        closer_nodes: bool,
    },
    /// `req.error(code)`: no value, no token, closer nodes.
    Error(ErrorCode),
    /// No reply.
    Silent(Dropped),
}

impl Response {
    /// `req.reply(value)` with JS's defaults (token and closer nodes).
    fn value(value: Option<Vec<u8>>) -> Self {
        Self::Reply {
            value,
            token: true,
            closer_nodes: true,
        }
    }

    /// `req.reply(null, { token: false, closerNodes: false })`, the ANNOUNCE acknowledgement.
    fn bare() -> Self {
        Self::Reply {
            value: None,
            token: false,
            closer_nodes: false,
        }
    }

    /// The options to answer with through `rpc::Node::reply`; `None` for silence.
    pub fn reply_opts(&self) -> Option<ReplyOpts> {
        match self {
            Self::Reply {
                value,
                token,
                closer_nodes,
            } => {
                let mut o = ReplyOpts::value(value.clone());
                o.token = *token;
                o.closer_nodes = *closer_nodes;
                Some(o)
            }
            Self::Error(code) => Some(ReplyOpts::error(code.to_u64())),
            Self::Silent(_) => None,
        }
    }
}

/// A change to the router's forward table (`this.dht._router.set/delete` in JS), for the
/// caller to apply. As `lib/router.js` `Router.set` does, a `Set` leaves an entry of a server
/// this node runs itself (kept with xache `retain`) as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterAction {
    /// A server announced itself (target = H(its key)): forward handshakes for `target` to
    /// `relay`, and answer FIND_PEER with `record` (`_router.set(k, { relay, record })`).
    Set {
        /// H(public key).
        target: [u8; 32],
        /// Where the announce came from.
        relay: SocketAddrV4,
        /// The encoded `peer` record.
        record: Vec<u8>,
    },
    /// The server unannounced itself (`_router.delete(k)`).
    Delete {
        /// H(public key).
        target: [u8; 32],
    },
}

/// What one request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The answer.
    pub response: Response,
    /// A change for the router, if any.
    pub router: Option<RouterAction>,
}

impl Outcome {
    fn reply(response: Response) -> Self {
        Self {
            response,
            router: None,
        }
    }
}

/// Counters: requests by result, and what the caches dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Requests handled.
    pub requests: u64,
    /// Silent drops: no target.
    pub dropped_no_target: u64,
    /// Silent drops: a write without a token.
    pub dropped_no_token: u64,
    /// Silent drops: no value, an undecodable value, or a missing peer record or signature.
    pub dropped_malformed: u64,
    /// Silent drops: a signature that does not verify.
    pub dropped_bad_signature: u64,
    /// Silent drops: a MUTABLE_PUT/IMMUTABLE_PUT target that is not the right hash.
    pub dropped_target_mismatch: u64,
    /// Silent drops: an unknown refresh token.
    pub dropped_unknown_refresh: u64,
    /// MUTABLE_PUTs refused with SEQ_REUSED.
    pub seq_reused: u64,
    /// MUTABLE_PUTs refused with SEQ_TOO_LOW.
    pub seq_too_low: u64,
    /// Relay addresses cut from announces (beyond [`MAX_RELAY_ADDRESSES`]).
    pub relay_addresses_cut: u64,
    /// Peer records.
    pub records: CacheStats,
    /// Refresh entries.
    pub refreshes: CacheStats,
    /// Topic bumps.
    pub bumps: CacheStats,
    /// Mutable values.
    pub mutables: CacheStats,
    /// Immutable values.
    pub immutables: CacheStats,
}

/// A refresh entry (`{ k, record, announceSelf }` in `_onrefresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refresh {
    target: [u8; 32],
    record: PeerRecord,
    announce_self: bool,
}

/// The storage node's record store (`lib/persistent.js` `Persistent`).
#[derive(Debug)]
pub struct Persistent {
    records: RecordCache,
    bumps: Xache<[u8; 32], u64>,
    refreshes: Xache<[u8; 32], Refresh>,
    mutables: Xache<[u8; 32], Vec<u8>>,
    immutables: Xache<[u8; 32], Vec<u8>>,
    rng: ChaCha20Rng,
    stats: StoreStats,
}

impl Persistent {
    /// A store with `config`'s sizes, built at `now` (the caches' timers start here), drawing
    /// LOOKUP's random picks from `seed`.
    pub fn new(config: &StoreConfig, now: Instant, seed: [u8; 32]) -> Self {
        let max_size = if config.max_size == 0 {
            DEFAULT_MAX_SIZE
        } else {
            config.max_size
        };
        let age = config.max_age.filter(|a| !a.is_zero());
        let short = age.unwrap_or(DEFAULT_MAX_AGE);
        let long = age.unwrap_or(VALUE_MAX_AGE);
        // `(maxSize / 2) | 0`
        let half = max_size / 2;
        Self {
            records: RecordCache::new(max_size, short, now),
            bumps: Xache::new(max_size, short, now),
            refreshes: Xache::new(max_size, short, now),
            mutables: Xache::new(half, long, now),
            immutables: Xache::new(half, long, now),
            rng: ChaCha20Rng::from_seed(seed),
            stats: StoreStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> StoreStats {
        let mut s = self.stats.clone();
        s.records = self.records.stats();
        s.refreshes = self.refreshes.stats();
        s.bumps = self.bumps.stats();
        s.mutables = self.mutables.stats();
        s.immutables = self.immutables.stats();
        s
    }

    /// Entries held: `(records, refreshes, bumps, mutables, immutables)`.
    pub fn sizes(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.records.len(),
            self.refreshes.len(),
            self.bumps.len(),
            self.mutables.len(),
            self.immutables.len(),
        )
    }

    /// Runs the caches' expiry timers due at `now`. [`Persistent::handle`] does this first;
    /// call it on its own to free expired entries while no requests come.
    pub fn advance(&mut self, now: Instant) {
        self.records.advance(now);
        self.bumps.advance(now);
        self.refreshes.advance(now);
        self.mutables.advance(now);
        self.immutables.advance(now);
    }

    /// The earliest expiry tick, for a driver that wants to call [`Persistent::advance`] on time.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.records.next_deadline(),
            self.bumps.next_deadline(),
            self.refreshes.next_deadline(),
            self.mutables.next_deadline(),
            self.immutables.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Answers one request as `lib/persistent.js` does.
    pub fn handle(&mut self, ctx: &Context, req: &StoreRequest<'_>) -> Outcome {
        self.advance(ctx.now);
        self.stats.requests += 1;
        let out = match req.command {
            StoreCommand::FindPeer => Outcome::reply(self.on_find_peer(req)),
            StoreCommand::Lookup => Outcome::reply(self.on_lookup(req)),
            StoreCommand::Announce => self.on_announce(ctx, req),
            StoreCommand::Unannounce => self.on_unannounce(ctx, req),
            StoreCommand::MutablePut => Outcome::reply(self.on_mutable_put(req)),
            StoreCommand::MutableGet => Outcome::reply(self.on_mutable_get(req)),
            StoreCommand::ImmutablePut => Outcome::reply(self.on_immutable_put(req)),
            StoreCommand::ImmutableGet => Outcome::reply(self.on_immutable_get(req)),
        };
        if let Response::Silent(why) = &out.response {
            self.count_drop(why);
        }
        out
    }

    /// `unannounce(target, publicKey)`: the local removal `index.js` `unannounce` also does.
    /// Returns the router change when the target is the key's own.
    pub fn unannounce(&mut self, target: &[u8; 32], public_key: &[u8; 32]) -> Option<RouterAction> {
        self.records.remove(target, public_key);
        (crypto::hash(public_key) == *target).then_some(RouterAction::Delete { target: *target })
    }

    fn count_drop(&mut self, why: &Dropped) {
        let s = &mut self.stats;
        match why {
            Dropped::NoTarget => s.dropped_no_target += 1,
            Dropped::NoToken => s.dropped_no_token += 1,
            Dropped::NoValue | Dropped::Malformed(_) | Dropped::NoPeer | Dropped::NoSignature => {
                s.dropped_malformed += 1;
            }
            Dropped::BadSignature => s.dropped_bad_signature += 1,
            Dropped::TargetMismatch => s.dropped_target_mismatch += 1,
            Dropped::UnknownRefresh => s.dropped_unknown_refresh += 1,
        }
    }

    /// `onlookup`: up to 20 random records of the topic, plus the router's record when there
    /// is room, with the topic's bump.
    fn on_lookup(&mut self, req: &StoreRequest<'_>) -> Response {
        let Some(target) = req.target else {
            return Response::Silent(Dropped::NoTarget);
        };
        let records = self.records.get(target, LOOKUP_MAX_RECORDS, &mut self.rng);
        let bump = self.bumps.get(target).copied().unwrap_or(0);
        let extra = req
            .router_record
            .filter(|_| records.len() < LOOKUP_MAX_RECORDS);
        let count = records.len() + usize::from(extra.is_some());
        if count == 0 {
            return Response::value(None);
        }
        // `lookupRawReply`: array of already-encoded records, then the bump.
        let mut out = Vec::new();
        out.put_uint(count as u64);
        for r in &records {
            out.put_bytes(r.as_bytes());
        }
        if let Some(r) = extra {
            out.put_bytes(r);
        }
        out.put_uint(bump);
        Response::value(Some(out))
    }

    /// `onfindpeer`: the router's record for the target.
    fn on_find_peer(&mut self, req: &StoreRequest<'_>) -> Response {
        if req.target.is_none() {
            return Response::Silent(Dropped::NoTarget);
        }
        Response::value(req.router_record.map(<[u8]>::to_vec))
    }

    /// The checks `onannounce` and `onunannounce` share: target, token, a decodable value.
    fn announce_value(req: &StoreRequest<'_>) -> Result<([u8; 32], [u8; 32], Announce), Dropped> {
        let target = req.target.ok_or(Dropped::NoTarget)?;
        let token = req.token.ok_or(Dropped::NoToken)?;
        let value = req.value.ok_or(Dropped::NoValue)?;
        let ann = Announce::from_bytes(value).map_err(Dropped::Malformed)?;
        Ok((*target, *token, ann))
    }

    /// `onannounce`.
    fn on_announce(&mut self, ctx: &Context, req: &StoreRequest<'_>) -> Outcome {
        let (target, token, ann) = match Self::announce_value(req) {
            Ok(v) => v,
            Err(why) => return Outcome::reply(Response::Silent(why)),
        };
        let Some(mut peer) = ann.peer.clone() else {
            return match ann.refresh {
                Some(refresh) => self.on_refresh(&refresh, req.from),
                None => Outcome::reply(Response::Silent(Dropped::NoPeer)),
            };
        };
        let Some(signature) = ann.signature else {
            return Outcome::reply(Response::Silent(Dropped::NoSignature));
        };
        let signable = crypto::announce_signable(
            &NS.announce,
            &target,
            &ctx.node_id,
            &token,
            &peer,
            ann.refresh.as_ref(),
        );
        if !crypto::verify(&peer.public_key, &signable, &signature) {
            return Outcome::reply(Response::Silent(Dropped::BadSignature));
        }
        if peer.relay_addresses.len() > MAX_RELAY_ADDRESSES {
            self.stats.relay_addresses_cut +=
                (peer.relay_addresses.len() - MAX_RELAY_ADDRESSES) as u64;
            peer.relay_addresses.truncate(MAX_RELAY_ADDRESSES);
        }
        let Some(record) = PeerRecord::new(&peer.to_bytes()) else {
            // Unreachable: a key and at most three addresses fit MAX_PEER_RECORD.
            return Outcome::reply(Response::Silent(Dropped::NoPeer));
        };
        let announce_self = crypto::hash(&peer.public_key) == target;
        let router = self.store_announce(target, record, announce_self, req.from);
        if !announce_self {
            let current = self.bumps.get(&target).copied().unwrap_or(0);
            if ann.bump > current && ann.bump <= ctx.unix_ms.saturating_add(MAX_BUMP_DRIFT_MS) {
                self.bumps.set(target, ann.bump);
            }
        }
        if let Some(refresh) = ann.refresh {
            self.refreshes.set(
                refresh,
                Refresh {
                    target,
                    record,
                    announce_self,
                },
            );
        }
        Outcome {
            response: Response::bare(),
            router,
        }
    }

    /// Stores a record: a self-announce goes to the router (and out of the topic's records),
    /// any other into the topic's records.
    fn store_announce(
        &mut self,
        target: [u8; 32],
        record: PeerRecord,
        announce_self: bool,
        from: SocketAddrV4,
    ) -> Option<RouterAction> {
        if announce_self {
            self.records.remove(&target, &record.public_key());
            Some(RouterAction::Set {
                target,
                relay: from,
                record: record.as_bytes().to_vec(),
            })
        } else {
            self.records.add(target, record);
            None
        }
    }

    /// `_onrefresh`: the record stored under `H(refresh)` is stored again (under its own
    /// target, whatever the request's), and its entry moves to `refresh`.
    fn on_refresh(&mut self, refresh: &[u8; 32], from: SocketAddrV4) -> Outcome {
        let active = crypto::hash(refresh);
        let Some(entry) = self.refreshes.get(&active).copied() else {
            return Outcome::reply(Response::Silent(Dropped::UnknownRefresh));
        };
        let router = self.store_announce(entry.target, entry.record, entry.announce_self, from);
        self.refreshes.delete(&active);
        self.refreshes.set(*refresh, entry);
        Outcome {
            response: Response::bare(),
            router,
        }
    }

    /// `onunannounce`.
    fn on_unannounce(&mut self, ctx: &Context, req: &StoreRequest<'_>) -> Outcome {
        let (target, token, ann) = match Self::announce_value(req) {
            Ok(v) => v,
            Err(why) => return Outcome::reply(Response::Silent(why)),
        };
        let Some(peer) = &ann.peer else {
            return Outcome::reply(Response::Silent(Dropped::NoPeer));
        };
        let Some(signature) = ann.signature else {
            return Outcome::reply(Response::Silent(Dropped::NoSignature));
        };
        let signable = crypto::announce_signable(
            &NS.unannounce,
            &target,
            &ctx.node_id,
            &token,
            peer,
            ann.refresh.as_ref(),
        );
        if !crypto::verify(&peer.public_key, &signable, &signature) {
            return Outcome::reply(Response::Silent(Dropped::BadSignature));
        }
        let router = self.unannounce(&target, &peer.public_key);
        Outcome {
            response: Response::bare(),
            router,
        }
    }

    /// `onmutableget`: the stored record when its seq is at least the requested one.
    fn on_mutable_get(&mut self, req: &StoreRequest<'_>) -> Response {
        let Some(target) = req.target else {
            return Response::Silent(Dropped::NoTarget);
        };
        let Some(value) = req.value else {
            return Response::Silent(Dropped::NoValue);
        };
        let seq = match Reader::new(value).uint() {
            Ok(s) => s,
            Err(e) => return Response::Silent(Dropped::Malformed(e)),
        };
        let Some(stored) = self.mutables.get(target) else {
            return Response::value(None);
        };
        // The stored value is our own encoding, whose first field is the seq.
        let local = Reader::new(stored).uint().unwrap_or(0);
        Response::value((local >= seq).then(|| stored.clone()))
    }

    /// `onmutableput`.
    fn on_mutable_put(&mut self, req: &StoreRequest<'_>) -> Response {
        let Some(target) = req.target else {
            return Response::Silent(Dropped::NoTarget);
        };
        if req.token.is_none() {
            return Response::Silent(Dropped::NoToken);
        }
        let Some(value) = req.value else {
            return Response::Silent(Dropped::NoValue);
        };
        let put = match MutablePutRequest::from_bytes(value) {
            Ok(p) => p,
            Err(e) => return Response::Silent(Dropped::Malformed(e)),
        };
        if crypto::hash(&put.public_key) != *target {
            return Response::Silent(Dropped::TargetMismatch);
        }
        if !crypto::verify_mutable(&put.public_key, put.seq, &put.value, &put.signature) {
            return Response::Silent(Dropped::BadSignature);
        }
        if let Some(existing) = self
            .mutables
            .get(target)
            .and_then(|b| MutableGetResponse::from_bytes(b).ok())
        {
            if existing.seq == put.seq && existing.value != put.value {
                self.stats.seq_reused += 1;
                return Response::Error(ErrorCode::SeqReused);
            }
            if put.seq < existing.seq {
                self.stats.seq_too_low += 1;
                return Response::Error(ErrorCode::SeqTooLow);
            }
        }
        let stored = MutableGetResponse {
            seq: put.seq,
            value: put.value,
            signature: put.signature,
        };
        self.mutables.set(*target, stored.to_bytes());
        Response::value(None)
    }

    /// `onimmutableget`: the stored bytes.
    fn on_immutable_get(&mut self, req: &StoreRequest<'_>) -> Response {
        let Some(target) = req.target else {
            return Response::Silent(Dropped::NoTarget);
        };
        Response::value(self.immutables.get(target).cloned())
    }

    /// `onimmutableput`: stored under its hash, which must be the target.
    fn on_immutable_put(&mut self, req: &StoreRequest<'_>) -> Response {
        let Some(target) = req.target else {
            return Response::Silent(Dropped::NoTarget);
        };
        if req.token.is_none() {
            return Response::Silent(Dropped::NoToken);
        }
        let Some(value) = req.value else {
            return Response::Silent(Dropped::NoValue);
        };
        if crypto::hash(value) != *target {
            return Response::Silent(Dropped::TargetMismatch);
        }
        self.immutables.set(*target, value.to_vec());
        Response::value(None)
    }
}

#[cfg(test)]
#[path = "persistent_tests.rs"]
mod tests;
