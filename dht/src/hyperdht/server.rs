//! The servers a HyperDHT node listens with (`hyperdht/lib/server.js` `Server`), sans-IO: the
//! Noise responder of each PEER_HANDSHAKE that targets one of our keys, msg1 dedup across
//! relays, the firewall callback and the admission caps.
//!
//! `server.js _onpeerhandshake` keys every attempt by its msg1 so that the same handshake
//! reaching us through several relays is answered once, with the same reply each time; the
//! entry stays for `HANDSHAKE_CLEAR_WAIT` (10 s) after the attempt settled (`_clearLater`).
//! `_addHandshake` reads msg1, asks the firewall (which sees the client's key, its payload and
//! the client's address as the relay reported it, or the datagram's source when the client came
//! straight to us), answers VERSION_MISMATCH / ABORTED / NONE as JS does and, on NONE, hands
//! the caller an [`Accepted`] connection: the keys, the client's UDX stream id and where to
//! reach it.
//!
//! Holepunching is not offered yet: the reply never carries a `holepunch` block, so a JS
//! client goes straight to the address the relay saw us at (`connect.js holepunch`: "relayed
//! and the remote is not holepunchable"), which is the direct path of an open server and the
//! LAN path of a loopback or same-network one. PEER_HOLEPUNCH for our keys is dropped.
//!
//! Bounded (JS has no bound here; its `_connects` map grows with every distinct msg1): at most
//! [`MAX_PENDING_PER_SERVER`] attempts per key and [`MAX_PENDING_PER_SOURCE`] per source IP
//! are held; more are dropped unanswered, as a refused attempt is.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::messages::{NoisePayload, SecretStreamInfo, UdxInfo};
use super::noise_wrap::{NoiseWrap, NoiseWrapResult, noise_key_pair};
use super::{ErrorCode, Firewall};
use crate::crypto::{self, KeyPair};

/// `server.js HANDSHAKE_CLEAR_WAIT`: how long a settled attempt stays to dedup its msg1.
pub const HANDSHAKE_CLEAR_WAIT: Duration = Duration::from_secs(10);
/// Attempts held per listening key (our bound; JS's `_connects` is unbounded).
pub const MAX_PENDING_PER_SERVER: usize = 1024;
/// Attempts held per source IP (the relay-reported client address, our bound).
pub const MAX_PENDING_PER_SOURCE: usize = 16;
/// Keys one node listens on at once (our bound).
pub const MAX_SERVERS: usize = 64;

/// The firewall callback (`opts.firewall(remotePublicKey, remotePayload, clientAddress)`):
/// `true` refuses the connection.
pub type FirewallFn = Box<dyn FnMut(&[u8; 32], &NoisePayload, SocketAddrV4) -> bool + Send>;

/// Why `listen` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Another server of this node listens on the key (JS `KEYPAIR_ALREADY_USED`).
    #[error("a server of this node already listens on this key pair")]
    KeyPairAlreadyUsed,
    /// [`MAX_SERVERS`] servers listen already.
    #[error("this node already runs the most servers it allows")]
    TooManyServers,
}

/// A handshake the server accepted: what the connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The server's public key.
    pub server: [u8; 32],
    /// Keys, hashes and the client's public key.
    pub handshake: NoiseWrapResult,
    /// Our UDX stream id, announced in the reply.
    pub local_stream_id: u32,
    /// The client's UDX stream id.
    pub remote_stream_id: u32,
    /// The client as the relay saw it, or the datagram's source for a direct request.
    pub client_address: SocketAddrV4,
    /// The client said it is open, or came straight to us (`remotePayload.firewall === OPEN
    /// || direct`): JS connects to `client_address` at once. Otherwise the stream binds to the
    /// source of the client's first packet.
    pub connect_now: bool,
}

/// What the node tells the server about itself for the reply payload.
#[derive(Debug, Clone, Default)]
pub struct LocalInfo {
    /// `dht.remoteAddress()`: our address when the node is known to be reachable.
    pub remote_address: Option<SocketAddrV4>,
    /// Relay addresses of our announce (`relayAddresses`), at most 3.
    pub relay_addresses: Vec<SocketAddrV4>,
}

/// The server's answer to one handshake.
#[derive(Debug)]
pub enum HandshakeOutcome {
    /// Send this Noise message back the way the request came; `accepted` is set the first time
    /// an attempt is answered with error NONE.
    Reply {
        /// The Noise message 2.
        noise: Vec<u8>,
        /// The new connection.
        accepted: Option<Box<Accepted>>,
    },
    /// Stay silent (refused, undecodable, over a cap, or not our key).
    Drop,
}

#[derive(Debug)]
struct Pending {
    reply: Option<Vec<u8>>,
    source: Ipv4Addr,
    expires: Instant,
}

struct Listener {
    key_pair: KeyPair,
    firewall: Option<FirewallFn>,
    pending: BTreeMap<Vec<u8>, Pending>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("public_key", &self.key_pair.public_key)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Counters of the servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Handshakes answered with error NONE (new connections).
    pub accepted: u64,
    /// Handshakes the firewall refused.
    pub firewalled: u64,
    /// Handshakes dropped: msg1 did not read, or a cap was reached.
    pub dropped: u64,
    /// Repeats of a msg1 already answered (the same reply again).
    pub deduped: u64,
}

/// Every key this node listens on.
#[derive(Debug, Default)]
pub struct Servers {
    by_target: BTreeMap<[u8; 32], Listener>,
    stats: ServerStats,
}

impl Servers {
    /// `server.listen(keyPair)`: handshakes for `hash(public_key)` are ours from now on.
    /// Returns the target.
    pub fn listen(
        &mut self,
        key_pair: KeyPair,
        firewall: Option<FirewallFn>,
    ) -> Result<[u8; 32], ServerError> {
        let target = crypto::hash(&key_pair.public_key);
        if self.by_target.contains_key(&target) {
            return Err(ServerError::KeyPairAlreadyUsed);
        }
        if self.by_target.len() >= MAX_SERVERS {
            return Err(ServerError::TooManyServers);
        }
        self.by_target.insert(
            target,
            Listener {
                key_pair,
                firewall,
                pending: BTreeMap::new(),
            },
        );
        Ok(target)
    }

    /// `server.close()`: the key is no longer ours. True when it was.
    pub fn close(&mut self, public_key: &[u8; 32]) -> bool {
        self.by_target.remove(&crypto::hash(public_key)).is_some()
    }

    /// Whether `target` is one of our keys (the router then hands its handshakes here).
    pub fn is_local(&self, target: &[u8; 32]) -> bool {
        self.by_target.contains_key(target)
    }

    /// Keys listened on.
    pub fn len(&self) -> usize {
        self.by_target.len()
    }

    /// True when no key is listened on.
    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// Attempts held for dedup, all keys together.
    pub fn pending(&self) -> usize {
        self.by_target.values().map(|l| l.pending.len()).sum()
    }

    /// Counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Drops dedup entries whose clear-wait ended.
    pub fn advance(&mut self, now: Instant) {
        for l in self.by_target.values_mut() {
            l.pending.retain(|_, p| p.expires > now);
        }
    }

    /// When the next dedup entry expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_target
            .values()
            .flat_map(|l| l.pending.values().map(|p| p.expires))
            .min()
    }

    /// `_onpeerhandshake` + `_addHandshake` for a msg1 `noise` targeting `target`.
    /// `peer_address` is the client address a relay reported (`None` when the client sent the
    /// request straight to us from `from`). `ephemeral` is the responder's ephemeral key pair
    /// and `local_stream_id` the UDX stream id the connection will use if accepted.
    #[allow(clippy::too_many_arguments)]
    pub fn on_handshake(
        &mut self,
        now: Instant,
        target: &[u8; 32],
        noise: &[u8],
        peer_address: Option<SocketAddrV4>,
        from: SocketAddrV4,
        local: &LocalInfo,
        ephemeral: noise::KeyPair,
        local_stream_id: u32,
    ) -> HandshakeOutcome {
        let Some(l) = self.by_target.get_mut(target) else {
            return HandshakeOutcome::Drop;
        };
        if let Some(p) = l.pending.get(noise) {
            return match &p.reply {
                Some(r) => {
                    self.stats.deduped += 1;
                    HandshakeOutcome::Reply {
                        noise: r.clone(),
                        accepted: None,
                    }
                }
                None => HandshakeOutcome::Drop,
            };
        }
        let client_address = peer_address.unwrap_or(from);
        let source = *client_address.ip();
        let from_source = l.pending.values().filter(|p| p.source == source).count();
        if l.pending.len() >= MAX_PENDING_PER_SERVER || from_source >= MAX_PENDING_PER_SOURCE {
            self.stats.dropped += 1;
            return HandshakeOutcome::Drop;
        }
        let direct = peer_address.is_none();
        let expires = now + HANDSHAKE_CLEAR_WAIT;
        // From here on the attempt is held (answered or not) until the clear-wait ends, so a
        // repeat of the same msg1 gets the same treatment.
        let mut pending = Pending {
            reply: None,
            source,
            expires,
        };
        let outcome = answer(
            l,
            noise,
            client_address,
            direct,
            local,
            ephemeral,
            local_stream_id,
        );
        let result = match outcome {
            Answer::Refused => {
                self.stats.firewalled += 1;
                HandshakeOutcome::Drop
            }
            Answer::Bad => {
                self.stats.dropped += 1;
                HandshakeOutcome::Drop
            }
            Answer::Reply(reply, accepted) => {
                pending.reply = Some(reply.clone());
                if accepted.is_some() {
                    self.stats.accepted += 1;
                }
                HandshakeOutcome::Reply {
                    noise: reply,
                    accepted,
                }
            }
        };
        l.pending.insert(noise.to_vec(), pending);
        result
    }
}

enum Answer {
    Refused,
    Bad,
    Reply(Vec<u8>, Option<Box<Accepted>>),
}

fn answer(
    l: &mut Listener,
    noise: &[u8],
    client_address: SocketAddrV4,
    direct: bool,
    local: &LocalInfo,
    ephemeral: noise::KeyPair,
    local_stream_id: u32,
) -> Answer {
    let Ok(mut hs) = NoiseWrap::responder(noise_key_pair(&l.key_pair), ephemeral) else {
        return Answer::Bad;
    };
    let Ok(remote) = hs.recv(noise) else {
        return Answer::Bad;
    };
    let Some(remote_key) = hs.remote_public_key() else {
        return Answer::Bad;
    };
    if let Some(fw) = l.firewall.as_mut()
        && fw(&remote_key, &remote, client_address)
    {
        return Answer::Refused;
    }
    let error = match (remote.version, &remote.udx) {
        (1, Some(_)) => ErrorCode::None,
        (1, None) => ErrorCode::Aborted,
        _ => ErrorCode::VersionMismatch,
    };
    let ok = error == ErrorCode::None;
    let firewall = if local.remote_address.is_some() {
        Firewall::Open
    } else {
        Firewall::Unknown
    };
    let reply = NoisePayload {
        error: error.to_u64(),
        firewall: firewall.to_u64(),
        holepunch: None,
        addresses4: local.remote_address.into_iter().collect(),
        udx: Some(UdxInfo {
            version: 1,
            reusable_socket: false,
            id: if ok { u64::from(local_stream_id) } else { 0 },
            seq: 0,
        }),
        secret_stream: Some(SecretStreamInfo { version: 1 }),
        relay_addresses: (!local.relay_addresses.is_empty()).then(|| local.relay_addresses.clone()),
        ..NoisePayload::default()
    };
    let Ok(msg2) = hs.send(&reply) else {
        return Answer::Bad;
    };
    let Ok(result) = hs.finish() else {
        return Answer::Bad;
    };
    let accepted = match (&remote.udx, ok) {
        (Some(udx), true) => u32::try_from(udx.id).ok().map(|remote_stream_id| {
            Box::new(Accepted {
                server: l.key_pair.public_key,
                handshake: result,
                local_stream_id,
                remote_stream_id,
                client_address,
                connect_now: remote.firewall == Firewall::Open.to_u64() || direct,
            })
        }),
        _ => None,
    };
    Answer::Reply(msg2, accepted)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
