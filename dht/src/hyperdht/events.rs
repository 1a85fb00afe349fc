//! What the client operations of [`super::HyperDht`] report (`super::ops`): the ids, the
//! streamed replies, the outcomes and the typed errors, each named after the JS value it
//! mirrors (`hyperdht/index.js` `mapLookup`, `mapFindPeer`, `mapMutable`, `mapImmutable`, and
//! the results of `immutablePut` and `mutablePut`).

use std::net::SocketAddrV4;

use super::messages::Peer;
use crate::rpc::{Event, NodeId, RequestError};

/// Id of a client operation; its events echo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// A LOOKUP reply with its records (`mapLookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupReply {
    /// The storage node that answered.
    pub from: SocketAddrV4,
    /// Its id, when it sent a valid one.
    pub from_id: Option<NodeId>,
    /// Our address as it saw us.
    pub to: SocketAddrV4,
    /// Its token for our address.
    pub token: Option<[u8; 32]>,
    /// The peer records it holds for the topic (at most 20).
    pub peers: Vec<Peer>,
    /// The topic's bump counter.
    pub bump: u64,
}

/// A FIND_PEER reply (`mapFindPeer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindPeerReply {
    /// The node that answered (it routes handshakes for the key).
    pub from: SocketAddrV4,
    /// Its id, when valid.
    pub from_id: Option<NodeId>,
    /// Our address as it saw us.
    pub to: SocketAddrV4,
    /// Its token.
    pub token: Option<[u8; 32]>,
    /// The server's record.
    pub peer: Peer,
}

/// A verified mutable value (`mutableGet`'s result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableValue {
    /// Its sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
    /// The signature over `seq` and `value`, verified against the public key.
    pub signature: [u8; 64],
    /// The node it came from.
    pub from: SocketAddrV4,
}

/// A verified immutable value (`immutableGet`'s result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableValue {
    /// The value; its hash is the target.
    pub value: Vec<u8>,
    /// The node it came from.
    pub from: SocketAddrV4,
}

/// How a query went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuerySummary {
    /// Replies with a record (LOOKUP) or a peer (FIND_PEER).
    pub found: usize,
    /// The closest nodes that answered (`query.closestNodes`).
    pub closest_nodes: Vec<SocketAddrV4>,
    /// Referral depth of the closest reply.
    pub hops: u8,
}

/// How a write's commit phase went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Committed {
    /// The closest nodes the query found, the ones committed to.
    pub closest_nodes: Vec<SocketAddrV4>,
    /// Commit requests answered (with or without an error code).
    pub answered: usize,
    /// Commit requests that got no answer, or had no token to send.
    pub failed: usize,
    /// Answers with an error code (e.g. 16 SEQ_REUSED, 17 SEQ_TOO_LOW), by node.
    pub refused: Vec<(SocketAddrV4, u64)>,
    /// Referral depth of the closest reply of the query phase (as [`QuerySummary::hops`]).
    pub hops: u8,
}

/// What a finished operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpOutcome {
    /// `lookup`: the records came as [`HyperEvent::LookupReply`].
    Lookup(QuerySummary),
    /// `findPeer`: the records came as [`HyperEvent::PeerFound`].
    FindPeer(QuerySummary),
    /// `announce`.
    Announce(Committed),
    /// `unannounce`: `committed` counts the UNANNOUNCEs sent to nodes holding the record.
    Unannounce(Committed),
    /// `immutablePut`: `{ hash, closestNodes }`.
    ImmutablePut {
        /// The value's hash, the key to get it by.
        hash: [u8; 32],
        /// The commits.
        committed: Committed,
    },
    /// `immutableGet`.
    ImmutableGet(ImmutableValue),
    /// `mutablePut`: `{ publicKey, closestNodes, seq, signature }`.
    MutablePut {
        /// The signer.
        public_key: [u8; 32],
        /// The sequence number put.
        seq: u64,
        /// Its signature.
        signature: [u8; 64],
        /// The commits.
        committed: Committed,
    },
    /// `mutableGet`.
    MutableGet(MutableValue),
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// No node answered the query, so there was nobody to commit to (JS "Too few nodes
    /// responded").
    #[error("too few nodes responded")]
    TooFewNodes,
    /// Every commit request went unanswered (JS `REQUEST_TIMEOUT`).
    #[error("no node answered the write in time")]
    Timeout,
    /// Every commit request failed for another reason.
    #[error("the write failed: {0}")]
    Request(RequestError),
    /// No node had a record for the key.
    #[error("no record found")]
    NotFound,
    /// Values were found, but none had a valid signature.
    #[error("{refused} mutable value(s) found, none with a valid signature")]
    BadSignature {
        /// Replies refused.
        refused: usize,
    },
    /// Values were found, but none hashed to the key.
    #[error("{refused} immutable value(s) found, none matching the hash")]
    BadValue {
        /// Replies refused.
        refused: usize,
    },
    /// The node was destroyed while the operation ran (JS `REQUEST_DESTROYED`).
    #[error("the DHT node was destroyed")]
    Destroyed,
    /// The rpc node runs too many queries.
    #[error("too many queries running")]
    TooManyQueries,
    /// [`MAX_OPS`](super::ops::MAX_OPS) operations are running.
    #[error("too many operations running")]
    TooManyOps,
}

/// What the HyperDHT layer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HyperEvent {
    /// One of our servers accepted a handshake: open the UDX stream and the secret stream.
    Connection(Box<super::server::Accepted>),
    /// An event of the rpc node that is not one of our operations' (ready, persistent, NAT
    /// updates, and the events of queries and requests started through `rpc_mut`).
    Rpc(Event),
    /// A LOOKUP reply with records, for a `lookup`, `announce` or `unannounce`.
    LookupReply {
        /// The operation.
        op: OpId,
        /// The reply.
        reply: LookupReply,
    },
    /// A FIND_PEER reply with a record.
    PeerFound {
        /// The operation.
        op: OpId,
        /// The reply.
        reply: FindPeerReply,
    },
    /// An operation finished; nothing more comes for it.
    Done {
        /// The operation.
        op: OpId,
        /// Its outcome.
        result: Result<OpOutcome, OpError>,
    },
}
