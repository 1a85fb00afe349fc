//! The router every HyperDHT node runs (`hyperdht/lib/router.js` `Router`): the forward table
//! that self-announces fill, and the forwarding of PEER_HANDSHAKE and PEER_HOLEPUNCH between a
//! client, up to two relays and a server.
//!
//! Sans-IO: [`Router::on_handshake`] and [`Router::on_holepunch`] take the request as the rpc
//! layer handed it out and answer or relay it through the public `rpc::Node` API
//! (`Node::reply`, `Node::relay`), keeping the request's transaction id on every hop as JS's
//! `req.relay` does. The server branches of `onpeerhandshake` / `onpeerholepunch` (a target
//! this node listens on) never reach the router: [`super::HyperDht`] hands those to its
//! [`super::server::Servers`] first. A request that reaches the router in a server's role is
//! dropped, as JS drops it when the forward is not one of its own servers.
//!
//! Bounded: the forward table is an [`Xache`] of `index.js` `defaultCacheOpts` `router.forwards`
//! (65,536 per generation, 20 minutes).

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::Mode;
use super::cache::Xache;
use super::messages::{Handshake, Holepunch};
use super::persistent::RouterAction;
use crate::codec::{Decode, Encode};
use crate::rpc::{IncomingRequest, Node, ReplyOpts};

/// One forward (`{ relay, record }` in `Router.set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where handshakes for the key go: the address the server announced itself from.
    pub relay: SocketAddrV4,
    /// The server's encoded `peer` record, returned by FIND_PEER and appended to LOOKUPs.
    pub record: Vec<u8>,
}

/// Counters of the router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Handshakes and holepunches relayed to the next hop.
    pub relayed: u64,
    /// Handshakes and holepunches answered (to the requester or, for a server's reply, to the
    /// client).
    pub replied: u64,
    /// Requests dropped: undecodable value, unknown mode, no route, or a server role.
    pub dropped: u64,
}

/// The forward table and the relaying of handshakes (`lib/router.js`).
#[derive(Debug)]
pub struct Router {
    forwards: Xache<[u8; 32], Forward>,
    stats: RouterStats,
}

impl Router {
    /// A table of `max_size` forwards per generation living `max_age` (`opts.forwards`).
    pub fn new(max_size: usize, max_age: Duration, now: Instant) -> Self {
        Self {
            forwards: Xache::new(max_size, max_age, now),
            stats: RouterStats::default(),
        }
    }

    /// `Router.get(target)`: a read also keeps the entry fresh, as xache's `get` does.
    pub fn get(&mut self, target: &[u8; 32]) -> Option<&Forward> {
        self.forwards.get(target)
    }

    /// `Router.set(target, { relay, record })` for a remote server.
    pub fn set(&mut self, target: [u8; 32], forward: Forward) {
        self.forwards.set(target, forward);
    }

    /// `Router.delete(target)`.
    pub fn delete(&mut self, target: &[u8; 32]) {
        self.forwards.delete(target);
    }

    /// Applies a change the record store asked for.
    pub fn apply(&mut self, action: RouterAction) {
        match action {
            RouterAction::Set {
                target,
                relay,
                record,
            } => self.set(target, Forward { relay, record }),
            RouterAction::Delete { target } => self.delete(&target),
        }
    }

    /// Forwards held.
    pub fn len(&self) -> usize {
        self.forwards.len()
    }

    /// True when no forward is held.
    pub fn is_empty(&self) -> bool {
        self.forwards.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// Runs the table's expiry ticks due at `now`.
    pub fn advance(&mut self, now: Instant) {
        self.forwards.advance(now);
    }

    /// The next expiry tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.forwards.next_deadline()
    }

    fn relay_of(&mut self, req: &IncomingRequest) -> Option<SocketAddrV4> {
        let target = req.target.as_ref()?;
        self.forwards.get(target).map(|f| f.relay)
    }

    /// `onpeerhandshake`, relay branches: a client's handshake goes to the server's relay (or
    /// the relay the client named), a relay's to the server, a server's reply back to the
    /// client through the first relay.
    pub fn on_handshake(&mut self, node: &mut Node, req: &IncomingRequest) {
        let Some(hs) = req
            .value
            .as_deref()
            .and_then(|v| Handshake::from_bytes(v).ok())
        else {
            self.stats.dropped += 1;
            return;
        };
        let relay = self.relay_of(req);
        // JS checks `!noise` too, but a decoded buffer is never null there, so it never drops.
        match Mode::from_u64(hs.mode) {
            Some(Mode::FromClient) => {
                let Some(next) = hs.relay_address.or(relay) else {
                    // No route: "help the user route" with closer nodes.
                    node.reply(
                        req,
                        ReplyOpts {
                            token: false,
                            ..ReplyOpts::value(None)
                        },
                    );
                    self.stats.replied += 1;
                    return;
                };
                let v = Handshake {
                    mode: Mode::FromRelay.to_u64(),
                    noise: hs.noise,
                    peer_address: Some(req.from),
                    relay_address: None,
                };
                node.relay(req, Some(v.to_bytes()), next);
                self.stats.relayed += 1;
            }
            Some(Mode::FromRelay) => {
                let Some(relay) = relay else {
                    self.stats.dropped += 1;
                    return;
                };
                let v = Handshake {
                    mode: Mode::FromSecondRelay.to_u64(),
                    noise: hs.noise,
                    peer_address: hs.peer_address,
                    relay_address: Some(req.from),
                };
                node.relay(req, Some(v.to_bytes()), relay);
                self.stats.relayed += 1;
            }
            Some(Mode::FromServer) => {
                let Some(client) = hs.peer_address else {
                    self.stats.dropped += 1;
                    return;
                };
                let v = Handshake {
                    mode: Mode::Reply.to_u64(),
                    noise: hs.noise,
                    peer_address: Some(req.from),
                    relay_address: None,
                };
                node.reply(req, server_reply(v.to_bytes(), Some(client)));
                self.stats.replied += 1;
            }
            // FROM_SECOND_RELAY is for a server; REPLY and unknown modes are not requests.
            _ => self.stats.dropped += 1,
        }
    }

    /// `onpeerholepunch`, relay branches: a client's holepunch goes to the server (through
    /// the address it named or the forward), the server's answer back to the client.
    pub fn on_holepunch(&mut self, node: &mut Node, req: &IncomingRequest) {
        let Some(hp) = req
            .value
            .as_deref()
            .and_then(|v| Holepunch::from_bytes(v).ok())
        else {
            self.stats.dropped += 1;
            return;
        };
        let relay = self.relay_of(req);
        match Mode::from_u64(hp.mode) {
            Some(Mode::FromClient) => {
                let Some(next) = hp.peer_address.or(relay) else {
                    self.stats.dropped += 1;
                    return;
                };
                let v = Holepunch {
                    mode: Mode::FromRelay.to_u64(),
                    id: hp.id,
                    payload: hp.payload,
                    peer_address: Some(req.from),
                };
                node.relay(req, Some(v.to_bytes()), next);
                self.stats.relayed += 1;
            }
            Some(Mode::FromServer) => {
                let v = Holepunch {
                    mode: Mode::Reply.to_u64(),
                    id: hp.id,
                    payload: hp.payload,
                    peer_address: Some(req.from),
                };
                // `to: peerAddress`, which falls back to the requester when absent.
                node.reply(req, server_reply(v.to_bytes(), hp.peer_address));
                self.stats.replied += 1;
            }
            // FROM_RELAY is for a server; the rest are not requests.
            _ => self.stats.dropped += 1,
        }
    }
}

/// `req.reply(value, { to, closerNodes: false, token: false })`.
fn server_reply(value: Vec<u8>, to: Option<SocketAddrV4>) -> ReplyOpts {
    ReplyOpts {
        token: false,
        closer_nodes: false,
        to,
        ..ReplyOpts::value(Some(value))
    }
}
