//! Inbound datagrams: request handlers for the internal commands, the user-command hook, and
//! response matching (`dht-rpc/index.js` `_onrequest`, `lib/io.js` `onmessage`, `_sendReply`).
//!
//! Contract: methods of the sans-IO [`Node`]; replies go to the transmit queue, nothing here
//! does I/O or panics on remote input.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::api::{Event, IncomingRequest, Reply, ReplyOpts};
use super::node::{Node, addr6};
use super::requests::{Match, Transmit};
use super::routing::NodeId;
use super::wire::{self, InternalCommand, Request, Response};
use crate::codec::Encode;
use crate::crypto::node_id;

impl Node {
    pub(crate) fn validate_id(id: Option<NodeId>, from: &SocketAddrV4) -> Option<NodeId> {
        let id = id?;
        let expected = node_id(from);
        (expected == id).then_some(expected)
    }

    pub(crate) fn on_response(&mut self, now: Instant, from: SocketAddrV4, res: Response) {
        let r = match self.requests.answer(res.tid, from) {
            Match::Answer(r) => r,
            Match::Unknown => {
                self.stats.unmatched_responses += 1;
                return;
            }
            Match::WrongSource => {
                self.stats.wrong_source_responses += 1;
                return;
            }
        };
        self.stats.responses += 1;
        let from_id = Self::validate_id(res.id, &from);
        self.add_node_from_network(now, true, from, from_id, res.to);
        let reply = Reply {
            from,
            from_id,
            to: res.to,
            token: res.token,
            closer_nodes: res.closer_nodes,
            error: res.error,
            value: res.value,
            rtt: now.saturating_duration_since(r.started),
        };
        self.on_request_done(now, r.owner, r.to, reply, r.cycled);
    }

    pub(crate) fn on_request(&mut self, now: Instant, from: SocketAddrV4, req: Request) {
        self.stats.requests_in += 1;
        let from_id = Self::validate_id(req.id, &from);
        if let Some(t) = &req.token
            && !self.tokens.is_valid(*from.ip(), t)
        {
            // A fresh token comes with the refusal, so the sender can retry.
            let opts = ReplyOpts {
                token: true,
                ..ReplyOpts::error(wire::errors::INVALID_TOKEN)
            };
            self.send_reply(from, req.tid, req.target.as_ref(), opts);
            return;
        }
        if from_id.is_some() {
            self.add_node_from_network(now, true, from, from_id, req.to);
        }
        let target = req.target;
        if req.internal {
            match InternalCommand::from_u64(req.command) {
                Some(InternalCommand::Ping) => {
                    self.send_reply(from, req.tid, None, ReplyOpts::empty());
                }
                Some(InternalCommand::DelayedPing) => {
                    let Some(delay) = req.value.as_deref().and_then(le_u32) else {
                        return;
                    };
                    if delay > self.config.max_ping_delay_ms {
                        return;
                    }
                    if !self.delayed.has_room() {
                        self.stats.dropped_delayed_pings += 1;
                        return;
                    }
                    let payload = self.reply_bytes(from, req.tid, None, ReplyOpts::empty());
                    let at = now + Duration::from_millis(u64::from(delay));
                    self.delayed.push(at, Transmit { to: from, payload });
                }
                Some(InternalCommand::PingNat) => {
                    let Some(port) = req.value.as_deref().and_then(le_u16) else {
                        return;
                    };
                    if port == 0 {
                        return;
                    }
                    let to = SocketAddrV4::new(*from.ip(), port);
                    self.send_reply(to, req.tid, None, ReplyOpts::empty());
                }
                Some(InternalCommand::FindNode) => {
                    if target.is_none() {
                        return;
                    }
                    let opts = ReplyOpts {
                        closer_nodes: true,
                        ..ReplyOpts::empty()
                    };
                    self.send_reply(from, req.tid, target.as_ref(), opts);
                }
                Some(InternalCommand::DownHint) => {
                    let Some(v) = req.value.as_deref().filter(|v| v.len() >= 6) else {
                        return;
                    };
                    if self.maintenance.can_check()
                        && let Some(addr) = v.get(..6).and_then(addr6)
                    {
                        let id = node_id(&addr);
                        let tick = self.maintenance.tick();
                        if let Some(n) = self.table.get_mut(&id)
                            && (n.pinged < tick || n.down_hints == 0)
                        {
                            n.down_hints += 1;
                            self.check(now, id);
                        }
                    }
                    self.send_reply(from, req.tid, None, ReplyOpts::empty());
                }
                None => self.reply_unknown_command(from, req.tid, target.as_ref()),
            }
            return;
        }
        if self.registered.contains(&req.command) {
            self.emit_remote(Event::Request(IncomingRequest {
                from,
                from_id,
                to: req.to,
                tid: req.tid,
                token: req.token,
                internal: req.internal,
                command: req.command,
                target: req.target,
                value: req.value,
            }));
        } else {
            self.reply_unknown_command(from, req.tid, target.as_ref());
        }
    }

    /// A response to request `tid` (`_sendReply`), addressed to `to` (`opts.to` is the
    /// caller's business). Closer nodes need the request's `target`.
    pub(crate) fn reply_bytes(
        &self,
        to: SocketAddrV4,
        tid: u16,
        target: Option<&NodeId>,
        opts: ReplyOpts,
    ) -> Vec<u8> {
        let closer = match (target, opts.closer_nodes) {
            (Some(t), true) => self
                .table
                .closest(t, self.table.k())
                .iter()
                .map(|n| n.addr)
                .collect(),
            _ => Vec::new(),
        };
        Response {
            tid,
            to,
            id: self.id(),
            token: opts.token.then(|| self.tokens.token(*to.ip())),
            closer_nodes: closer,
            error: opts.error,
            value: opts.value,
        }
        .to_bytes()
    }

    /// JS's answer to a command nobody handles: UNKNOWN_COMMAND, no token, closer nodes when
    /// the request had a target (`req.error`'s defaults).
    fn reply_unknown_command(&mut self, to: SocketAddrV4, tid: u16, target: Option<&NodeId>) {
        let opts = ReplyOpts::error(wire::errors::UNKNOWN_COMMAND);
        self.send_reply(to, tid, target, opts);
    }

    /// Queues [`Node::reply_bytes`] for `to`.
    pub(crate) fn send_reply(
        &mut self,
        to: SocketAddrV4,
        tid: u16,
        target: Option<&NodeId>,
        opts: ReplyOpts,
    ) {
        let b = self.reply_bytes(to, tid, target, opts);
        self.outbox.push(to, b);
    }

    /// Answers a user request (`req.reply(value, opts)` / `req.error(code, opts)`), to the
    /// requester or to `opts.to`.
    ///
    /// ```
    /// # use dht::rpc::{IncomingRequest, Node, ReplyOpts};
    /// # fn answer(node: &mut Node, req: &IncomingRequest) {
    /// node.reply(req, ReplyOpts::value(Some(b"record".to_vec())));
    /// node.reply(req, ReplyOpts { closer_nodes: false, ..ReplyOpts::error(2) });
    /// # }
    /// ```
    pub fn reply(&mut self, req: &IncomingRequest, opts: ReplyOpts) {
        let to = opts.to.unwrap_or(req.from);
        self.send_reply(to, req.tid, req.target.as_ref(), opts);
    }

    /// Re-sends the incoming request, with a new value, as a request to `to` (`req.relay`).
    pub fn relay(&mut self, req: &IncomingRequest, value: Option<Vec<u8>>, to: SocketAddrV4) {
        let r = Request {
            tid: req.tid,
            to,
            id: self.id(),
            token: None,
            internal: req.internal,
            command: req.command,
            target: req.target,
            value,
        };
        self.outbox.push(to, r.to_bytes());
    }
}

fn le_u16(v: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes([*v.first()?, *v.get(1)?]))
}

fn le_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes([
        *v.first()?,
        *v.get(1)?,
        *v.get(2)?,
        *v.get(3)?,
    ]))
}
