//! Client operations of [`HyperDht`] (`hyperdht/index.js`: `lookup`, `announce`,
//! `unannounce`, `findPeer`, `immutablePut/Get`, `mutablePut/Get`), sans-IO.
//!
//! Each operation is a dht-rpc query (`Node::query` with `stream: true`) whose replies are
//! mapped as JS's `map*` functions map them, plus, for the writes, a commit phase run here
//! rather than by the rpc layer, because every commit is its own request: an ANNOUNCE signed
//! for the storage node's id and token, a MUTABLE_PUT or IMMUTABLE_PUT with that node's token
//! (`dht-rpc/lib/query.js` `_flush` / `_endAfterCommit`: no closest reply is "too few
//! nodes"; the writes succeed when at least one commit request got an answer, whatever its
//! error code, and fail with the last request error when none did).
//!
//! Results come out as events: [`HyperEvent::LookupReply`] and [`HyperEvent::PeerFound`]
//! stream the records as replies arrive, and [`HyperEvent::Done`] ends every operation once,
//! with an [`OpOutcome`] or an [`OpError`]. Replies that do not decode, mutable values whose
//! signature does not verify and immutable values that do not hash to the target are dropped
//! and counted ([`super::node::HyperStats`]); nothing a remote sends can panic here.
//!
//! Bounded: at most [`MAX_OPS`] operations run at once (JS has no such bound); each holds one
//! query of the rpc node (bounded by its `Limits::max_queries`) and at most k commit requests.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Instant;

use super::Command;
pub use super::events::{
    Committed, FindPeerReply, HyperEvent, ImmutableValue, LookupReply, MutableValue, OpError, OpId,
    OpOutcome, QuerySummary,
};
use super::messages::{Announce, LookupRawReply, MutableGetResponse, MutablePutRequest, Peer};
use super::node::HyperDht;
use super::persistent::MAX_RELAY_ADDRESSES;
use crate::codec::{Decode, Encode, Writer};
use crate::crypto::{self, KeyPair};
use crate::rpc::{
    Event, QueryError, QueryId, QueryOpts, QueryOutcome, Reply, RequestError, RequestId,
    RequestOpts,
};

/// Operations running at once; more fail at once with [`OpError::TooManyOps`].
pub const MAX_OPS: usize = 4096;

#[derive(Debug)]
enum Kind {
    Lookup,
    FindPeer,
    Announce {
        topic: [u8; 32],
        key_pair: KeyPair,
        relays: Vec<SocketAddrV4>,
    },
    Unannounce {
        topic: [u8; 32],
        key_pair: KeyPair,
    },
    ImmutablePut {
        target: [u8; 32],
        value: Vec<u8>,
    },
    ImmutableGet {
        target: [u8; 32],
    },
    MutablePut {
        public_key: [u8; 32],
        target: [u8; 32],
        signed: Vec<u8>,
        seq: u64,
        signature: [u8; 64],
    },
    MutableGet {
        public_key: [u8; 32],
        seq: u64,
        latest: bool,
        best: Option<MutableValue>,
    },
}

/// What a reply leads to.
enum Next {
    Lookup(LookupReply, Option<([u8; 32], KeyPair)>),
    Peer(FindPeerReply),
    Finish(OpOutcome),
}

#[derive(Debug)]
struct Op {
    kind: Kind,
    query: Option<QueryId>,
    /// The query ended; the op ends when its commits have settled.
    query_done: bool,
    found: usize,
    refused: usize,
    pending: usize,
    committed: Committed,
    last_error: Option<RequestError>,
}

/// The operations in flight.
#[derive(Debug, Default)]
pub(super) struct Ops {
    next: u64,
    ops: BTreeMap<OpId, Op>,
    by_query: BTreeMap<QueryId, OpId>,
    by_request: BTreeMap<RequestId, OpId>,
}

impl Ops {
    pub(super) fn len(&self) -> usize {
        self.ops.len()
    }
}

impl HyperDht {
    /// `lookup(topic)`: the peer records stored under `topic`, streamed as
    /// [`HyperEvent::LookupReply`], then [`OpOutcome::Lookup`].
    pub fn lookup(&mut self, now: Instant, topic: [u8; 32]) -> OpId {
        self.start(now, Kind::Lookup, Command::Lookup, topic, None)
    }

    /// `findPeer(publicKey)`: the record of the server with `public_key` (target
    /// `hash(public_key)`), streamed as [`HyperEvent::PeerFound`]; [`OpError::NotFound`] when
    /// no node routes for it.
    pub fn find_peer(&mut self, now: Instant, public_key: &[u8; 32]) -> OpId {
        let target = crypto::hash(public_key);
        self.start(now, Kind::FindPeer, Command::FindPeer, target, None)
    }

    /// `announce(topic, keyPair, relayAddresses)`: a LOOKUP walk, then an ANNOUNCE to each of
    /// the closest nodes, signed for that node's id and token. Relay addresses beyond the
    /// third are left out (storage nodes keep three). Lookup replies stream as in
    /// [`HyperDht::lookup`].
    pub fn announce(
        &mut self,
        now: Instant,
        topic: [u8; 32],
        key_pair: &KeyPair,
        relays: &[SocketAddrV4],
    ) -> OpId {
        let relays = relays.iter().take(MAX_RELAY_ADDRESSES).copied().collect();
        let kind = Kind::Announce {
            topic,
            key_pair: key_pair.clone(),
            relays,
        };
        self.start(now, kind, Command::Lookup, topic, None)
    }

    /// `unannounce(topic, keyPair)` (`lookupAndUnannounce`): removes the record from this
    /// node's own store, walks the topic, and sends a signed UNANNOUNCE to every node whose
    /// reply holds the key (or is full, 20 records).
    pub fn unannounce(&mut self, now: Instant, topic: [u8; 32], key_pair: &KeyPair) -> OpId {
        if let Some(store) = &mut self.store
            && let Some(action) = store.unannounce(&topic, &key_pair.public_key)
        {
            self.router.apply(action);
        }
        let kind = Kind::Unannounce {
            topic,
            key_pair: key_pair.clone(),
        };
        self.start(now, kind, Command::Lookup, topic, None)
    }

    /// `immutablePut(value)`: stored under `hash(value)` on the closest nodes.
    pub fn immutable_put(&mut self, now: Instant, value: &[u8]) -> OpId {
        let target = crypto::hash(value);
        let kind = Kind::ImmutablePut {
            target,
            value: value.to_vec(),
        };
        self.start(now, kind, Command::ImmutableGet, target, None)
    }

    /// `immutableGet(target)`: the first value found whose hash is `target`; the walk stops
    /// there.
    pub fn immutable_get(&mut self, now: Instant, target: [u8; 32]) -> OpId {
        self.start(
            now,
            Kind::ImmutableGet { target },
            Command::ImmutableGet,
            target,
            None,
        )
    }

    /// `mutablePut(keyPair, value, { seq })`: the signed value stored under
    /// `hash(public_key)` on the closest nodes. Nodes holding a higher or the same seq with
    /// another value refuse it (errors 17 and 16, in [`Committed::refused`]); as in JS that
    /// does not fail the put.
    pub fn mutable_put(
        &mut self,
        now: Instant,
        key_pair: &KeyPair,
        value: &[u8],
        seq: u64,
    ) -> OpId {
        let target = crypto::hash(&key_pair.public_key);
        let signature = crypto::sign_mutable(key_pair, seq, value);
        let signed = MutablePutRequest {
            public_key: key_pair.public_key,
            seq,
            value: value.to_vec(),
            signature,
        }
        .to_bytes();
        let kind = Kind::MutablePut {
            public_key: key_pair.public_key,
            target,
            signed,
            seq,
            signature,
        };
        // The query asks for seq 0: it only gathers nodes and tokens.
        self.start(now, kind, Command::MutableGet, target, Some(uint(0)))
    }

    /// `mutableGet(publicKey, { seq, latest })`: a value signed by `public_key` with a seq of
    /// at least `seq`; with `latest` the highest seq any node returned, otherwise the first
    /// valid one (the walk stops there).
    pub fn mutable_get(
        &mut self,
        now: Instant,
        public_key: &[u8; 32],
        seq: u64,
        latest: bool,
    ) -> OpId {
        let target = crypto::hash(public_key);
        let kind = Kind::MutableGet {
            public_key: *public_key,
            seq,
            latest,
            best: None,
        };
        self.start(now, kind, Command::MutableGet, target, Some(uint(seq)))
    }

    /// Stops an operation; no event follows for it.
    pub fn cancel(&mut self, op: OpId) {
        if let Some(o) = self.ops.ops.remove(&op) {
            self.forget(op, &o);
        }
    }

    /// `destroy()`: every running operation ends with [`OpError::Destroyed`], new ones fail
    /// with it at once, and the node takes no more datagrams or timers.
    pub fn destroy(&mut self, now: Instant) {
        self.destroyed = true;
        let ids: Vec<OpId> = self.ops.ops.keys().copied().collect();
        for op in ids {
            self.finish(op, Err(OpError::Destroyed));
        }
        self.pump(now);
    }

    fn alloc_op(&mut self) -> OpId {
        self.ops.next += 1;
        OpId(self.ops.next)
    }

    fn start(
        &mut self,
        now: Instant,
        kind: Kind,
        command: Command,
        target: [u8; 32],
        value: Option<Vec<u8>>,
    ) -> OpId {
        let id = self.alloc_op();
        let refuse = if self.destroyed {
            Some(OpError::Destroyed)
        } else if self.ops.len() >= MAX_OPS {
            Some(OpError::TooManyOps)
        } else {
            None
        };
        if let Some(e) = refuse {
            self.events.push_back(HyperEvent::Done {
                op: id,
                result: Err(e),
            });
            return id;
        }
        let opts = QueryOpts {
            internal: false,
            command: command.to_u64(),
            value,
            stream: true,
            ..QueryOpts::new(target)
        };
        let q = self.node.query(now, opts);
        self.ops.by_query.insert(q, id);
        self.ops.ops.insert(
            id,
            Op {
                kind,
                query: Some(q),
                query_done: false,
                found: 0,
                refused: 0,
                pending: 0,
                committed: Committed::default(),
                last_error: None,
            },
        );
        self.pump(now);
        id
    }

    fn forget(&mut self, op: OpId, o: &Op) {
        if let Some(q) = o.query {
            self.ops.by_query.remove(&q);
            self.node.cancel_query(q);
        }
        let reqs: Vec<RequestId> = self
            .ops
            .by_request
            .iter()
            .filter(|(_, v)| **v == op)
            .map(|(k, _)| *k)
            .collect();
        for r in reqs {
            self.ops.by_request.remove(&r);
            self.node.cancel_request(r);
        }
    }

    fn finish(&mut self, op: OpId, result: Result<OpOutcome, OpError>) {
        if let Some(o) = self.ops.ops.remove(&op) {
            self.forget(op, &o);
            self.events.push_back(HyperEvent::Done { op, result });
        }
    }

    /// Moves an operation on with an rpc event; returns the event when it is nobody's.
    pub(super) fn on_rpc_event(&mut self, now: Instant, e: Event) -> Option<Event> {
        match e {
            Event::QueryReply { query, reply } => match self.ops.by_query.get(&query) {
                Some(op) => self.on_reply(now, *op, reply),
                None => return Some(Event::QueryReply { query, reply }),
            },
            Event::QueryDone { query, result } => match self.ops.by_query.remove(&query) {
                Some(op) => self.on_query_done(now, op, result),
                None => return Some(Event::QueryDone { query, result }),
            },
            Event::Response { request, result } => match self.ops.by_request.remove(&request) {
                Some(op) => self.on_commit(op, result),
                None => return Some(Event::Response { request, result }),
            },
            other => return Some(other),
        }
        None
    }

    fn on_reply(&mut self, now: Instant, op: OpId, reply: Reply) {
        let Some(o) = self.ops.ops.get_mut(&op) else {
            return;
        };
        // JS's `map*` functions: a reply without a value carries no record.
        let Some(value) = reply.value.as_deref() else {
            return;
        };
        let next = match &mut o.kind {
            Kind::Lookup | Kind::Announce { .. } | Kind::Unannounce { .. } => {
                let Ok(l) = LookupRawReply::from_bytes(value) else {
                    self.stats.bad_replies += 1;
                    return;
                };
                o.found += 1;
                let out = LookupReply {
                    from: reply.from,
                    from_id: reply.from_id,
                    to: reply.to,
                    token: reply.token,
                    peers: l.peers,
                    bump: l.bump,
                };
                let unannounce = match &o.kind {
                    Kind::Unannounce { topic, key_pair } => Some((*topic, key_pair.clone())),
                    _ => None,
                };
                Next::Lookup(out, unannounce)
            }
            Kind::FindPeer => {
                let Ok(peer) = Peer::from_bytes(value) else {
                    self.stats.bad_replies += 1;
                    return;
                };
                o.found += 1;
                Next::Peer(FindPeerReply {
                    from: reply.from,
                    from_id: reply.from_id,
                    to: reply.to,
                    token: reply.token,
                    peer,
                })
            }
            Kind::ImmutableGet { target } => {
                if crypto::hash(value) != *target {
                    o.refused += 1;
                    self.stats.bad_values += 1;
                    return;
                }
                Next::Finish(OpOutcome::ImmutableGet(ImmutableValue {
                    value: value.to_vec(),
                    from: reply.from,
                }))
            }
            Kind::MutableGet {
                public_key,
                seq,
                latest,
                best,
            } => {
                let Ok(m) = MutableGetResponse::from_bytes(value) else {
                    self.stats.bad_replies += 1;
                    return;
                };
                if best.as_ref().is_some_and(|b| m.seq <= b.seq) || m.seq < *seq {
                    return;
                }
                if !crypto::verify_mutable(public_key, m.seq, &m.value, &m.signature) {
                    o.refused += 1;
                    self.stats.bad_signatures += 1;
                    return;
                }
                let v = MutableValue {
                    seq: m.seq,
                    value: m.value,
                    signature: m.signature,
                    from: reply.from,
                };
                if *latest {
                    *best = Some(v);
                    return;
                }
                Next::Finish(OpOutcome::MutableGet(v))
            }
            Kind::ImmutablePut { .. } | Kind::MutablePut { .. } => return,
        };
        match next {
            Next::Lookup(out, unannounce) => {
                if let Some((topic, key_pair)) = unannounce {
                    self.unannounce_at(now, op, &out, topic, &key_pair);
                }
                self.events
                    .push_back(HyperEvent::LookupReply { op, reply: out });
            }
            Next::Peer(reply) => self.events.push_back(HyperEvent::PeerFound { op, reply }),
            Next::Finish(outcome) => self.finish(op, Ok(outcome)),
        }
    }

    /// `lookupAndUnannounce`'s `map`: a node that holds our record (or a full reply) and gave
    /// a token and a valid id gets a signed UNANNOUNCE at once.
    fn unannounce_at(
        &mut self,
        now: Instant,
        op: OpId,
        reply: &LookupReply,
        topic: [u8; 32],
        key_pair: &KeyPair,
    ) {
        let (Some(token), Some(node_id)) = (reply.token, reply.from_id) else {
            return;
        };
        let holds = reply.peers.len() >= super::persistent::LOOKUP_MAX_RECORDS
            || reply
                .peers
                .iter()
                .any(|p| p.public_key == key_pair.public_key);
        if !holds {
            return;
        }
        let peer = Peer {
            public_key: key_pair.public_key,
            relay_addresses: Vec::new(),
        };
        let signature = crypto::sign_unannounce(key_pair, &topic, &node_id, &token, &peer, None);
        let value = Announce {
            peer: Some(peer),
            refresh: None,
            signature: Some(signature),
            bump: 0,
        };
        self.commit_request(
            now,
            op,
            Command::Unannounce,
            topic,
            token,
            reply.from,
            value.to_bytes(),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_request(
        &mut self,
        now: Instant,
        op: OpId,
        command: Command,
        target: [u8; 32],
        token: [u8; 32],
        to: SocketAddrV4,
        value: Vec<u8>,
    ) {
        let opts = RequestOpts {
            target: Some(target),
            value: Some(value),
            token: Some(token),
            ..RequestOpts::user(command.to_u64())
        };
        let r = self.node.request(now, to, opts);
        self.ops.by_request.insert(r, op);
        if let Some(o) = self.ops.ops.get_mut(&op) {
            o.pending += 1;
        }
    }

    fn on_query_done(&mut self, now: Instant, op: OpId, result: Result<QueryOutcome, QueryError>) {
        let Some(o) = self.ops.ops.get_mut(&op) else {
            return;
        };
        o.query = None;
        o.query_done = true;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(QueryError::TooManyQueries) => {
                return self.finish(op, Err(OpError::TooManyQueries));
            }
            Err(_) => return self.finish(op, Err(OpError::TooFewNodes)),
        };
        let closest: Vec<SocketAddrV4> = outcome.closest_replies.iter().map(|r| r.from).collect();
        o.committed.closest_nodes.clone_from(&closest);
        let summary = QuerySummary {
            found: o.found,
            closest_nodes: closest,
            hops: outcome.hops,
        };
        let result = match &o.kind {
            Kind::Lookup => Ok(OpOutcome::Lookup(summary)),
            Kind::FindPeer if o.found == 0 => Err(OpError::NotFound),
            Kind::FindPeer => Ok(OpOutcome::FindPeer(summary)),
            Kind::ImmutableGet { .. } if o.refused > 0 => {
                Err(OpError::BadValue { refused: o.refused })
            }
            Kind::ImmutableGet { .. } => Err(OpError::NotFound),
            Kind::MutableGet { best: Some(v), .. } => Ok(OpOutcome::MutableGet(v.clone())),
            Kind::MutableGet { .. } if o.refused > 0 => {
                Err(OpError::BadSignature { refused: o.refused })
            }
            Kind::MutableGet { .. } => Err(OpError::NotFound),
            Kind::Unannounce { .. } if outcome.closest_replies.is_empty() => {
                Err(OpError::TooFewNodes)
            }
            Kind::Unannounce { .. } => return self.settle(op),
            Kind::Announce { .. } | Kind::ImmutablePut { .. } | Kind::MutablePut { .. } => {
                return self.commit(now, op, &outcome.closest_replies);
            }
        };
        self.finish(op, result);
    }

    /// The commit phase of the writes: one request per closest reply.
    fn commit(&mut self, now: Instant, op: OpId, closest: &[Reply]) {
        if closest.is_empty() {
            return self.finish(op, Err(OpError::TooFewNodes));
        }
        for r in closest {
            let Some(o) = self.ops.ops.get_mut(&op) else {
                return;
            };
            // JS sends the request anyway and the storage node, finding no token, stays
            // silent until it times out; the outcome is the same failure, decided now.
            let (Some(token), Some(node_id)) = (r.token, r.from_id) else {
                o.committed.failed += 1;
                o.last_error = Some(RequestError::TimedOut);
                continue;
            };
            let (command, target, value) = match &o.kind {
                Kind::Announce {
                    topic,
                    key_pair,
                    relays,
                } => {
                    let peer = Peer {
                        public_key: key_pair.public_key,
                        relay_addresses: relays.clone(),
                    };
                    let signature =
                        crypto::sign_announce(key_pair, topic, &node_id, &token, &peer, None);
                    let ann = Announce {
                        peer: Some(peer),
                        refresh: None,
                        signature: Some(signature),
                        bump: 0,
                    };
                    (Command::Announce, *topic, ann.to_bytes())
                }
                Kind::ImmutablePut { target, value } => {
                    (Command::ImmutablePut, *target, value.clone())
                }
                Kind::MutablePut { target, signed, .. } => {
                    (Command::MutablePut, *target, signed.clone())
                }
                _ => return,
            };
            self.commit_request(now, op, command, target, token, r.from, value);
        }
        self.settle(op);
    }

    fn on_commit(&mut self, op: OpId, result: Result<Reply, RequestError>) {
        let Some(o) = self.ops.ops.get_mut(&op) else {
            return;
        };
        o.pending = o.pending.saturating_sub(1);
        match result {
            Ok(r) => {
                o.committed.answered += 1;
                if r.error != 0 {
                    o.committed.refused.push((r.from, r.error));
                }
            }
            Err(e) => {
                o.committed.failed += 1;
                o.last_error = Some(e);
            }
        }
        self.settle(op);
    }

    /// Ends a write whose query is over and whose commits have all settled.
    fn settle(&mut self, op: OpId) {
        let Some(o) = self.ops.ops.get(&op) else {
            return;
        };
        if !o.query_done || o.pending > 0 {
            return;
        }
        let committed = o.committed.clone();
        let failed = committed.answered == 0 && !matches!(o.kind, Kind::Unannounce { .. });
        let result = if failed {
            Err(match o.last_error.clone() {
                Some(RequestError::TimedOut) | None => OpError::Timeout,
                Some(e) => OpError::Request(e),
            })
        } else {
            Ok(match &o.kind {
                Kind::Unannounce { .. } => OpOutcome::Unannounce(committed),
                Kind::ImmutablePut { target, .. } => OpOutcome::ImmutablePut {
                    hash: *target,
                    committed,
                },
                Kind::MutablePut {
                    public_key,
                    seq,
                    signature,
                    ..
                } => OpOutcome::MutablePut {
                    public_key: *public_key,
                    seq: *seq,
                    signature: *signature,
                    committed,
                },
                _ => OpOutcome::Announce(committed),
            })
        };
        self.finish(op, result);
    }
}

/// `c.encode(c.uint, n)`.
fn uint(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_uint(n);
    v
}
