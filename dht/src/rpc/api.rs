//! The node's public vocabulary: ids, replies, errors, events, counters, and the option
//! structs of [`Node::request`](super::Node::request) and [`Node::reply`](super::Node::reply).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::routing::NodeId;
use super::wire::InternalCommand;

/// Id of a caller's request ([`Node::request`](super::Node::request), [`Node::ping`](super::Node::ping)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Id of a query ([`Node::find_node`](super::Node::find_node), [`Node::query`](super::Node::query)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// A response as the node hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The responder's address.
    pub from: SocketAddrV4,
    /// The responder's id, only when it sent one that matches `from` (JS `validateId`).
    pub from_id: Option<NodeId>,
    /// Our address as the responder saw it.
    pub to: SocketAddrV4,
    /// A token for our IP, to present on a later write.
    pub token: Option<[u8; 32]>,
    /// Nodes closer to the target.
    pub closer_nodes: Vec<SocketAddrV4>,
    /// Error code, 0 = none.
    pub error: u64,
    /// Reply value.
    pub value: Option<Vec<u8>>,
    /// Time from the request's creation to this reply.
    pub rtt: Duration,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No reply after all retries (JS `REQUEST_TIMEOUT`).
    #[error("request timed out")]
    TimedOut,
    /// The in-flight table is full (bound `Limits::max_inflight`).
    #[error("too many requests in flight")]
    TooManyRequests,
    /// The request was cancelled (JS `REQUEST_DESTROYED`).
    #[error("request cancelled")]
    Cancelled,
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The commit phase had no closest node to commit to (JS "Too few nodes responded").
    #[error("too few nodes responded")]
    TooFewNodes,
    /// Every commit request failed.
    #[error("all {0} commit requests failed")]
    CommitFailed(usize),
    /// Too many queries running (bound `Limits::max_queries`).
    #[error("too many queries running")]
    TooManyQueries,
}

/// Result of a finished query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryOutcome {
    /// Up to k replies from persistent nodes with no error, closest to the target first
    /// (`query.closestReplies`; their `closer_nodes` are left empty).
    pub closest_replies: Vec<Reply>,
    /// Replies with error 0.
    pub successes: usize,
    /// Replies with an error plus failed requests.
    pub errors: usize,
    /// Referral depth of the closest reply: 1 when it was a seed, +1 per closer-nodes hop.
    pub hops: u8,
}

/// A request for a registered user command, to answer with [`Node::reply`](super::Node::reply). Carries everything needed to answer, so the node keeps no state
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// Sender address.
    pub from: SocketAddrV4,
    /// Sender id when valid.
    pub from_id: Option<NodeId>,
    /// Our address as the sender addressed us.
    pub to: SocketAddrV4,
    /// Transaction id.
    pub tid: u16,
    /// The token the sender presented (already checked: it is valid when present).
    pub token: Option<[u8; 32]>,
    /// Internal flag.
    pub internal: bool,
    /// Command number.
    pub command: u64,
    /// Target.
    pub target: Option<NodeId>,
    /// Value.
    pub value: Option<Vec<u8>>,
}

/// What the node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The bootstrap finished (JS `ready`).
    Ready,
    /// The node became persistent: it now has an id and enters other nodes' tables.
    Persistent {
        /// Its id.
        id: NodeId,
    },
    /// An adaptive node went back to ephemeral after a sleep (JS `ephemeral`).
    Ephemeral,
    /// The sampled external address changed (JS `nat-update`).
    NatUpdate {
        /// Host, if consistent.
        host: Option<Ipv4Addr>,
        /// Port, 0 when unknown.
        port: u16,
    },
    /// The network health changed (JS `network-update` with `online` / `degraded`).
    NetworkUpdate(super::health::NetworkState),
    /// A request for a registered user command.
    Request(IncomingRequest),
    /// A caller's request finished.
    Response {
        /// Its id.
        request: RequestId,
        /// The reply or why none came.
        result: Result<Reply, RequestError>,
    },
    /// A reply with error 0 seen by a query started with `stream: true` (JS query `data`).
    QueryReply {
        /// The query.
        query: QueryId,
        /// The reply.
        reply: Reply,
    },
    /// A query finished.
    QueryDone {
        /// The query.
        query: QueryId,
        /// Outcome.
        result: Result<QueryOutcome, QueryError>,
    },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams: u64,
    /// Datagrams dropped as undecodable or too short.
    pub malformed: u64,
    /// Requests received.
    pub requests_in: u64,
    /// Responses matched to an in-flight request.
    pub responses: u64,
    /// Responses with an unknown tid.
    pub unmatched_responses: u64,
    /// Responses whose tid is in flight but that came from another address than the one the
    /// request went to; dropped (JS accepts them).
    pub wrong_source_responses: u64,
    /// Requests created.
    pub requests_out: u64,
    /// Request transmissions that timed out and were retried.
    pub retries: u64,
    /// Requests that timed out for good.
    pub timeouts: u64,
    /// Events dropped because the event queue was full (remote-driven events only).
    pub dropped_events: u64,
    /// DELAYED_PINGs refused because the delayed-reply list was full.
    pub dropped_delayed_pings: u64,
}

/// What [`Node::request`](super::Node::request) sends (`dht.request({ token, command, target, value }, to, opts)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOpts {
    /// Internal (dht-rpc) command when true, user (hyperdht) command when false.
    pub internal: bool,
    /// Command number.
    pub command: u64,
    /// Target key.
    pub target: Option<NodeId>,
    /// Request value.
    pub value: Option<Vec<u8>>,
    /// A token the destination handed us, for writes.
    pub token: Option<[u8; 32]>,
    /// Retransmissions after the first send (JS default 3).
    pub retries: u32,
}

impl RequestOpts {
    /// An internal dht-rpc command, no target, value or token.
    pub fn internal(command: InternalCommand) -> Self {
        Self {
            internal: true,
            command: command.to_u64(),
            target: None,
            value: None,
            token: None,
            retries: 3,
        }
    }

    /// A user (hyperdht) command, no target, value or token.
    pub fn user(command: u64) -> Self {
        Self {
            internal: false,
            command,
            target: None,
            value: None,
            token: None,
            retries: 3,
        }
    }
}

/// How [`Node::reply`](super::Node::reply) answers an [`IncomingRequest`] (`req.reply(value, opts)` /
/// `req.error(code, opts)`). Build it with [`ReplyOpts::value`] or [`ReplyOpts::error`], which
/// carry JS's defaults, then adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyOpts {
    /// Error code, 0 = success.
    pub error: u64,
    /// Reply value (JS sends none with an error).
    pub value: Option<Vec<u8>>,
    /// Include a token for the destination's IP (`opts.token`).
    pub token: bool,
    /// Include the nodes closest to the request's target (`opts.closerNodes`).
    pub closer_nodes: bool,
    /// Send the reply here instead of to the requester (`opts.to`; hyperdht's relays answer a
    /// client on behalf of a server this way).
    pub to: Option<SocketAddrV4>,
}

impl ReplyOpts {
    /// A success with `value`: token and closer nodes included (`req.reply` defaults).
    pub fn value(value: Option<Vec<u8>>) -> Self {
        Self {
            error: 0,
            value,
            token: true,
            closer_nodes: true,
            to: None,
        }
    }

    /// Success with nothing but the id and the reflexive address (the internal PING family).
    pub(crate) fn empty() -> Self {
        Self {
            error: 0,
            value: None,
            token: false,
            closer_nodes: false,
            to: None,
        }
    }

    /// An error `code`: closer nodes but no token (`req.error` defaults).
    pub fn error(code: u64) -> Self {
        Self {
            error: code,
            value: None,
            token: false,
            closer_nodes: true,
            to: None,
        }
    }
}
