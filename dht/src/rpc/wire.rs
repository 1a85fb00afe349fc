//! dht-rpc datagrams: requests (`0x03`) and responses (`0x13`).
//!
//! JS: dht-rpc@6.27.0 `lib/io.js` (`Request._encodeRequest`, `Request.decode`, `_sendReply`,
//! `decodeReply`), which give the field order behind the flags. Flags are a `uint`; unknown flag bits are
//! ignored, and so are bytes after the last field, as in JS.

use std::net::SocketAddrV4;

use crate::codec::{Decode, DecodeError, DecodeErrorKind, Encode, Reader, Writer};

/// First byte of a request: type 0 in the high nibble, version 3 in the low nibble.
pub const REQUEST_ID: u8 = 0x03;
/// First byte of a response: type 1, version 3.
pub const RESPONSE_ID: u8 = 0x13;

/// Request flag bits (`_encodeRequest`).
pub mod request_flags {
    /// The sender's node id follows.
    pub const ID: u64 = 1;
    /// A round-trip token follows.
    pub const TOKEN: u64 = 2;
    /// The command is a dht-rpc internal command.
    pub const INTERNAL: u64 = 4;
    /// A 32-byte target follows the command.
    pub const TARGET: u64 = 8;
    /// A value buffer follows.
    pub const VALUE: u64 = 16;
}

/// Response flag bits (`_sendReply`).
pub mod response_flags {
    /// The responder's node id follows.
    pub const ID: u64 = 1;
    /// A token for the requester's IP follows.
    pub const TOKEN: u64 = 2;
    /// A list of closer nodes follows.
    pub const CLOSER_NODES: u64 = 4;
    /// An error code follows.
    pub const ERROR: u64 = 8;
    /// A value buffer follows.
    pub const VALUE: u64 = 16;
}

/// dht-rpc's internal commands (`lib/commands.js`), sent with the `internal` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InternalCommand {
    /// 0: liveness check.
    Ping,
    /// 1: "ping me back on this port" (firewall test).
    PingNat,
    /// 2: closest nodes to a target.
    FindNode,
    /// 3: "this node looks dead".
    DownHint,
    /// 4: ping answered after a delay.
    DelayedPing,
}

impl InternalCommand {
    /// The command number on the wire.
    pub fn to_u64(self) -> u64 {
        match self {
            Self::Ping => 0,
            Self::PingNat => 1,
            Self::FindNode => 2,
            Self::DownHint => 3,
            Self::DelayedPing => 4,
        }
    }

    /// The command for a wire number, `None` for numbers dht-rpc does not know.
    pub fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::Ping,
            1 => Self::PingNat,
            2 => Self::FindNode,
            3 => Self::DownHint,
            4 => Self::DelayedPing,
            _ => return None,
        })
    }
}

/// dht-rpc error codes (`lib/errors.js`); hyperdht adds its own above 15.
pub mod errors {
    /// The receiver does not handle this command.
    pub const UNKNOWN_COMMAND: u64 = 1;
    /// The token presented does not match the receiver's secrets.
    pub const INVALID_TOKEN: u64 = 2;
}

/// A dht-rpc request datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Request {
    /// Transaction id, echoed by the response.
    pub tid: u16,
    /// The destination address as the sender addresses it.
    pub to: SocketAddrV4,
    /// The sender's node id (persistent senders only).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub id: Option<[u8; 32]>,
    /// A token previously handed out by the receiver.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub token: Option<[u8; 32]>,
    /// Whether `command` is an internal (dht-rpc) command or a user (hyperdht) one.
    pub internal: bool,
    /// The command number.
    pub command: u64,
    /// The target key.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub target: Option<[u8; 32]>,
    /// The command's argument.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub value: Option<Vec<u8>>,
}

/// A dht-rpc response datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Response {
    /// The request's transaction id.
    pub tid: u16,
    /// The requester's address as the responder saw it.
    pub to: SocketAddrV4,
    /// The responder's node id (persistent responders only).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub id: Option<[u8; 32]>,
    /// A token bound to the requester's IP.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub token: Option<[u8; 32]>,
    /// Nodes closer to the request's target (flag set only when non-empty).
    pub closer_nodes: Vec<SocketAddrV4>,
    /// Error code; 0 = none (flag set only when non-zero).
    pub error: u64,
    /// The reply value.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
    pub value: Option<Vec<u8>>,
}

/// Any dht-rpc datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "type", rename_all = "snake_case")
)]
pub enum Message {
    /// `0x03 …`
    Request(Request),
    /// `0x13 …`
    Response(Response),
}

fn opt_fixed32(r: &mut Reader<'_>, present: bool) -> Result<Option<[u8; 32]>, DecodeError> {
    if present {
        r.fixed().map(Some)
    } else {
        Ok(None)
    }
}

fn opt_buffer(r: &mut Reader<'_>, present: bool) -> Result<Option<Vec<u8>>, DecodeError> {
    if present {
        r.buffer().map(|b| Some(b.to_vec()))
    } else {
        Ok(None)
    }
}

impl Request {
    fn encode_body(&self, out: &mut Vec<u8>) {
        use request_flags::*;
        let flags = (if self.id.is_some() { ID } else { 0 })
            | (if self.token.is_some() { TOKEN } else { 0 })
            | (if self.internal { INTERNAL } else { 0 })
            | (if self.target.is_some() { TARGET } else { 0 })
            | (if self.value.is_some() { VALUE } else { 0 });
        out.put_uint(flags);
        out.put_u16(self.tid);
        out.put_ipv4_addr(&self.to);
        if let Some(id) = &self.id {
            out.put_bytes(id);
        }
        if let Some(token) = &self.token {
            out.put_bytes(token);
        }
        out.put_uint(self.command);
        if let Some(target) = &self.target {
            out.put_bytes(target);
        }
        if let Some(value) = &self.value {
            out.put_buffer(value);
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use request_flags::*;
        let flags = r.uint()?;
        let tid = r.u16()?;
        let to = r.ipv4_addr()?;
        let id = opt_fixed32(r, flags & ID != 0)?;
        let token = opt_fixed32(r, flags & TOKEN != 0)?;
        let internal = flags & INTERNAL != 0;
        let command = r.uint()?;
        let target = opt_fixed32(r, flags & TARGET != 0)?;
        let value = opt_buffer(r, flags & VALUE != 0)?;
        Ok(Self {
            tid,
            to,
            id,
            token,
            internal,
            command,
            target,
            value,
        })
    }
}

impl Response {
    fn encode_body(&self, out: &mut Vec<u8>) {
        use response_flags::*;
        let flags = (if self.id.is_some() { ID } else { 0 })
            | (if self.token.is_some() { TOKEN } else { 0 })
            | (if self.closer_nodes.is_empty() {
                0
            } else {
                CLOSER_NODES
            })
            | (if self.error > 0 { ERROR } else { 0 })
            | (if self.value.is_some() { VALUE } else { 0 });
        out.put_uint(flags);
        out.put_u16(self.tid);
        out.put_ipv4_addr(&self.to);
        if let Some(id) = &self.id {
            out.put_bytes(id);
        }
        if let Some(token) = &self.token {
            out.put_bytes(token);
        }
        if !self.closer_nodes.is_empty() {
            out.put_ipv4_addr_array(&self.closer_nodes);
        }
        if self.error > 0 {
            out.put_uint(self.error);
        }
        if let Some(value) = &self.value {
            out.put_buffer(value);
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use response_flags::*;
        let flags = r.uint()?;
        let tid = r.u16()?;
        let to = r.ipv4_addr()?;
        let id = opt_fixed32(r, flags & ID != 0)?;
        let token = opt_fixed32(r, flags & TOKEN != 0)?;
        let closer_nodes = if flags & CLOSER_NODES != 0 {
            r.ipv4_addr_array()?
        } else {
            Vec::new()
        };
        let error = if flags & ERROR != 0 { r.uint()? } else { 0 };
        let value = opt_buffer(r, flags & VALUE != 0)?;
        Ok(Self {
            tid,
            to,
            id,
            token,
            closer_nodes,
            error,
            value,
        })
    }
}

impl Encode for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(REQUEST_ID);
        self.encode_body(out);
    }
}

impl Encode for Response {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(RESPONSE_ID);
        self.encode_body(out);
    }
}

impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Request(m) => m.encode(out),
            Self::Response(m) => m.encode(out),
        }
    }
}

impl Decode for Message {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8()? {
            REQUEST_ID => Request::decode_body(r).map(Self::Request),
            RESPONSE_ID => Response::decode_body(r).map(Self::Response),
            other => Err(r.error_at(at, DecodeErrorKind::UnknownType(other))),
        }
    }
}

impl Decode for Request {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8()? {
            REQUEST_ID => Self::decode_body(r),
            other => Err(r.error_at(at, DecodeErrorKind::UnknownType(other))),
        }
    }
}

impl Decode for Response {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8()? {
            RESPONSE_ID => Self::decode_body(r),
            other => Err(r.error_at(at, DecodeErrorKind::UnknownType(other))),
        }
    }
}
