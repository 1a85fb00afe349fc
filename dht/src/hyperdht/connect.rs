//! The client side of a connect (`hyperdht/lib/connect.js`), sans-IO: the Noise initiator's
//! PEER_HANDSHAKE through a relay, the checks JS makes on the reply, and the choice of path.
//!
//! [`ClientHandshake::new`] builds msg1 with our payload (`connectThroughNode`: firewall OPEN
//! when our node knows its reachable address, that address, our UDX stream id, secret-stream
//! version 1) and the request value (`router.js peerHandshake`, mode FROM_CLIENT).
//! [`ClientHandshake::on_reply`] checks the reply as `peerHandshake` does (mode REPLY, from
//! the node we asked), reads msg2, answers the server's error codes with JS's errors and
//! decides where the UDX stream goes (`connect.js holepunch`):
//!
//! - the server is open, or the reply was relayed and the server offers no holepunch: its
//!   first public address, else the address the relay saw it at ([`Path::Direct`]);
//! - otherwise, when both ends look alike to the relay (same host: a LAN or loopback), the
//!   server's address as the relay saw it ([`Path::Lan`], the LAN shortcut);
//! - when we are open, the server connects to us ([`Path::Direct`] to the relay-seen
//!   address too, so both ends send; the server binds to our first packet).
//! - else holepunching would be needed, which this client does not run yet:
//!   [`ConnectError::CannotHolepunch`].

use std::net::SocketAddrV4;

use super::holepunch::{is_bogon, is_reserved};
use super::messages::{Handshake, NoisePayload, SecretStreamInfo, UdxInfo};
use super::noise_wrap::{NoiseWrap, NoiseWrapResult, noise_key_pair};
use super::{ErrorCode, Firewall, Mode};
use crate::codec::{Decode, Encode};
use crate::crypto::KeyPair;
use crate::rpc::Reply;

/// JS's connect errors (`lib/errors.js`), by the name JS gives them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No node knows a route to the key (`PEER_NOT_FOUND`).
    #[error("PEER_NOT_FOUND: no node routes handshakes for this key")]
    PeerNotFound,
    /// Nodes were found but no handshake went through (`PEER_CONNECTION_FAILED`).
    #[error("PEER_CONNECTION_FAILED: no handshake went through")]
    PeerConnectionFailed,
    /// The reply is not a handshake reply from the node asked (`BAD_HANDSHAKE_REPLY`).
    #[error("BAD_HANDSHAKE_REPLY: the relay's answer is not a handshake reply")]
    BadHandshakeReply,
    /// msg2 did not read (`HANDSHAKE_INVALID`).
    #[error("HANDSHAKE_INVALID: the server's handshake message did not verify")]
    HandshakeInvalid,
    /// The server speaks another payload version (`SERVER_INCOMPATIBLE`).
    #[error("SERVER_INCOMPATIBLE: the server speaks another payload version")]
    ServerIncompatible,
    /// The server answered with an error code (`SERVER_ERROR`).
    #[error("SERVER_ERROR: the server refused the connection (code {0})")]
    ServerError(u64),
    /// The server sent no UDX stream id (`SERVER_ERROR` "Server did not send UDX data").
    #[error("SERVER_ERROR: the server did not send UDX data")]
    NoUdx,
    /// Neither end is reachable and holepunching is not run by this client
    /// (`CANNOT_HOLEPUNCH`).
    #[error(
        "CANNOT_HOLEPUNCH: neither end is reachable directly and holepunching is not available"
    )]
    CannotHolepunch,
    /// The direct path opened no stream in time (`HOLEPUNCH_ABORTED`).
    #[error("HOLEPUNCH_ABORTED: the connection did not open in time")]
    HolepunchAborted,
    /// The node was destroyed (`NODE_DESTROYED`).
    #[error("NODE_DESTROYED: the node is shut down")]
    NodeDestroyed,
}

/// How the stream reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Straight to an address the server is reachable at.
    Direct(SocketAddrV4),
    /// The LAN shortcut: both ends share a host as the relay sees them.
    Lan(SocketAddrV4),
}

impl Path {
    /// The address the stream connects to.
    pub fn addr(&self) -> SocketAddrV4 {
        match self {
            Self::Direct(a) | Self::Lan(a) => *a,
        }
    }
}

/// A handshake that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// Keys and hashes for the secret stream.
    pub handshake: NoiseWrapResult,
    /// The server's UDX stream id.
    pub remote_stream_id: u32,
    /// Where our stream goes.
    pub path: Path,
    /// Whether the reply came through a relay.
    pub relayed: bool,
    /// The server's payload.
    pub payload: NoisePayload,
}

/// One client handshake (`connect.js` `c.handshake` and `connectThroughNode`).
#[derive(Debug)]
pub struct ClientHandshake {
    server_public_key: [u8; 32],
    wrap: NoiseWrap,
    request: Vec<u8>,
    firewall: Firewall,
}

impl ClientHandshake {
    /// msg1 to `server_public_key` from `key_pair`, with `ephemeral`, announcing our stream
    /// `local_stream_id`; `our_address` is our node's reachable address, when it knows one.
    pub fn new(
        key_pair: &KeyPair,
        ephemeral: noise::KeyPair,
        server_public_key: [u8; 32],
        local_stream_id: u32,
        our_address: Option<SocketAddrV4>,
    ) -> Result<Self, ConnectError> {
        let mut wrap = NoiseWrap::initiator(noise_key_pair(key_pair), ephemeral, server_public_key)
            .map_err(|_| ConnectError::HandshakeInvalid)?;
        let firewall = if our_address.is_some() {
            Firewall::Open
        } else {
            Firewall::Unknown
        };
        let payload = NoisePayload {
            firewall: firewall.to_u64(),
            addresses4: our_address.into_iter().collect(),
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: u64::from(local_stream_id),
                seq: 0,
            }),
            secret_stream: Some(SecretStreamInfo { version: 1 }),
            ..NoisePayload::default()
        };
        let noise = wrap
            .send(&payload)
            .map_err(|_| ConnectError::HandshakeInvalid)?;
        let request = Handshake {
            mode: Mode::FromClient.to_u64(),
            noise,
            peer_address: None,
            relay_address: None,
        }
        .to_bytes();
        Ok(Self {
            server_public_key,
            wrap,
            request,
            firewall,
        })
    }

    /// The key connected to.
    pub fn server_public_key(&self) -> &[u8; 32] {
        &self.server_public_key
    }

    /// The PEER_HANDSHAKE request value (the same for every relay tried).
    pub fn request_value(&self) -> &[u8] {
        &self.request
    }

    /// Reads the reply of the node `relay` we sent the request to.
    pub fn on_reply(
        &mut self,
        relay: SocketAddrV4,
        reply: &Reply,
    ) -> Result<Connected, ConnectError> {
        let hs = reply
            .value
            .as_deref()
            .and_then(|v| Handshake::from_bytes(v).ok())
            .ok_or(ConnectError::BadHandshakeReply)?;
        if hs.mode != Mode::Reply.to_u64() || reply.from != relay || hs.noise.is_empty() {
            return Err(ConnectError::BadHandshakeReply);
        }
        let relayed = hs.peer_address.is_some();
        let server_address = hs.peer_address.unwrap_or(relay);
        let client_address = reply.to;
        let payload = self
            .wrap
            .recv(&hs.noise)
            .map_err(|_| ConnectError::HandshakeInvalid)?;
        if payload.version != 1 {
            return Err(ConnectError::ServerIncompatible);
        }
        if payload.error != ErrorCode::None.to_u64() {
            return Err(ConnectError::ServerError(payload.error));
        }
        let remote_stream_id = payload
            .udx
            .as_ref()
            .and_then(|u| u32::try_from(u.id).ok())
            .ok_or(ConnectError::NoUdx)?;
        let handshake = self
            .wrap
            .finish()
            .map_err(|_| ConnectError::HandshakeInvalid)?;
        let path = choose_path(
            &payload,
            relayed,
            server_address,
            client_address,
            self.firewall,
        )?;
        Ok(Connected {
            handshake,
            remote_stream_id,
            path,
            relayed,
            payload,
        })
    }
}

/// `connect.js holepunch`, the paths that need no punching.
fn choose_path(
    payload: &NoisePayload,
    relayed: bool,
    server_address: SocketAddrV4,
    client_address: SocketAddrV4,
    our_firewall: Firewall,
) -> Result<Path, ConnectError> {
    let holepunchable = payload
        .holepunch
        .as_ref()
        .is_some_and(|h| !h.relays.is_empty());
    if !relayed {
        // `connectThroughNode`: the node we asked is the server itself.
        return Ok(Path::Direct(server_address));
    }
    if payload.firewall == Firewall::Open.to_u64() || !holepunchable {
        // `getFirstRemoteAddress`: the first non-bogon address, else where the relay saw it.
        let addr = payload
            .addresses4
            .iter()
            .find(|a| !is_bogon(*a.ip()))
            .copied()
            .unwrap_or(server_address);
        return Ok(Path::Direct(addr));
    }
    if client_address.ip() == server_address.ip() {
        // The LAN shortcut: a private address of the server, else where the relay saw it
        // (on one host that is the server's own socket).
        let addr = payload
            .addresses4
            .iter()
            .find(|a| !is_reserved(*a.ip()))
            .copied()
            .unwrap_or(server_address);
        return Ok(Path::Lan(addr));
    }
    if our_firewall == Firewall::Open {
        return Ok(Path::Direct(server_address));
    }
    Err(ConnectError::CannotHolepunch)
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
