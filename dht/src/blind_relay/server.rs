//! The relay's side of blind-relay pairing (JS `blind-relay/index.js` `Server`,
//! `BlindRelaySession`, `BlindRelayPair`, `BlindRelayLink`), sans-IO.
//!
//! The table matches the two halves of each token across sessions (one session per peer
//! connection). Creating the two UDX streams of a match, relaying them to each other, sending
//! each side its [`Pair`] answer and destroying streams are the caller's I/O, told by the
//! values returned here.

use std::collections::{BTreeMap, BTreeSet};

use super::{Pair, RelayError, Unpair};

/// Pending (half-matched) pairings across all sessions (JS: unbounded).
pub const MAX_PENDING_PAIRINGS: usize = 4096;
/// Pending pairings one session may hold (JS: unbounded).
pub const MAX_PENDING_PER_SESSION: usize = 64;
/// Active links one session may hold (JS: unbounded).
pub const MAX_LINKS_PER_SESSION: usize = 1024;

/// A session: one peer's blind-relay channel.
pub type SessionId = u64;

/// One side of a match: where to answer and which stream id the peer gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEnd {
    /// The peer's session.
    pub session: SessionId,
    /// The peer's own UDX stream id: connect the relay's stream for this side to it.
    pub remote_id: u64,
}

/// Both halves of a token arrived (JS `_onpair` when `pair.paired`). The caller creates one
/// UDX stream per side, relays each to the other, and sends each side
/// [`Matched::answer`] with the id of the stream created for it. JS creates the responder's
/// stream first and answers the responder first; doing the same keeps the bytes identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The token.
    pub token: [u8; 32],
    /// The initiator's side.
    pub initiator: LinkEnd,
    /// The responder's side.
    pub responder: LinkEnd,
}

impl Matched {
    /// The answer for one side: `stream_id` is the relay's stream for that side.
    pub fn answer(&self, is_initiator: bool, stream_id: u64) -> Pair {
        Pair {
            is_initiator,
            token: self.token,
            id: stream_id,
            seq: 0,
        }
    }
}

/// What an unpair undid (JS `_onunpair`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpaired {
    /// A half-matched pairing was dropped; no stream existed.
    Pending,
    /// An active link of the sender's session: destroy both streams of the token (both
    /// sessions forget it).
    Link {
        /// The token.
        token: [u8; 32],
    },
    /// Nothing was known under the token.
    Nothing,
}

#[derive(Debug, Default)]
struct PendingPair {
    /// Index 1: the initiator's half, 0: the responder's (JS `links[+isInitiator]`).
    links: [Option<LinkEnd>; 2],
}

#[derive(Debug, Default)]
struct Session {
    pairing: BTreeSet<[u8; 32]>,
    /// Active links: token -> the session of the other end.
    links: BTreeMap<[u8; 32], SessionId>,
}

/// The relay's pairing table (sans-IO). Sessions are created only by [`RelayServer::accept`],
/// one per connection the caller accepted, so the caller's connection limit bounds them; the
/// pairings and links inside are bounded here.
#[derive(Debug, Default)]
pub struct RelayServer {
    pairing: BTreeMap<[u8; 32], PendingPair>,
    sessions: BTreeMap<SessionId, Session>,
    next_session: SessionId,
}

impl RelayServer {
    /// An empty relay.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new peer channel (JS `accept`).
    pub fn accept(&mut self) -> SessionId {
        self.next_session += 1;
        self.sessions.insert(self.next_session, Session::default());
        self.next_session
    }

    /// Pending pairings (JS `stats.pairings.pending`).
    pub fn pending(&self) -> usize {
        self.pairing.len()
    }

    /// A `pair` from `session` (JS `_onpair`). `Ok(None)` while the other half is missing, and
    /// for a repeated half (JS ignores it).
    pub fn on_pair(
        &mut self,
        session: SessionId,
        msg: &Pair,
    ) -> Result<Option<Matched>, RelayError> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(RelayError::UnknownSession)?;
        let half = usize::from(msg.is_initiator);
        match self.pairing.get(&msg.token) {
            Some(p) if p.links.get(half).is_some_and(Option::is_some) => return Ok(None),
            Some(_) => {}
            None if self.pairing.len() >= MAX_PENDING_PAIRINGS => {
                return Err(RelayError::TooManyPairings {
                    max: MAX_PENDING_PAIRINGS,
                });
            }
            None => {}
        }
        if s.pairing.len() >= MAX_PENDING_PER_SESSION {
            return Err(RelayError::TooManyPairings {
                max: MAX_PENDING_PER_SESSION,
            });
        }
        if s.links.len() >= MAX_LINKS_PER_SESSION {
            return Err(RelayError::TooManyPairings {
                max: MAX_LINKS_PER_SESSION,
            });
        }
        let pair = self.pairing.entry(msg.token).or_default();
        if let Some(slot) = pair.links.get_mut(half) {
            *slot = Some(LinkEnd {
                session,
                remote_id: msg.id,
            });
        }
        let [Some(responder), Some(initiator)] = pair.links else {
            if let Some(s) = self.sessions.get_mut(&session) {
                s.pairing.insert(msg.token);
            }
            return Ok(None);
        };
        self.pairing.remove(&msg.token);
        for (end, other) in [(initiator, responder), (responder, initiator)] {
            if let Some(s) = self.sessions.get_mut(&end.session) {
                s.pairing.remove(&msg.token);
                s.links.insert(msg.token, other.session);
            }
        }
        Ok(Some(Matched {
            token: msg.token,
            initiator,
            responder,
        }))
    }

    /// An `unpair` from `session` (JS `_onunpair`).
    pub fn on_unpair(&mut self, session: SessionId, msg: &Unpair) -> Unpaired {
        if let Some(p) = self.pairing.remove(&msg.token) {
            for end in p.links.iter().flatten() {
                if let Some(s) = self.sessions.get_mut(&end.session) {
                    s.pairing.remove(&msg.token);
                }
            }
            return Unpaired::Pending;
        }
        // JS `destroyPair`: both links go, each from its own session.
        let Some(other) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.links.remove(&msg.token))
        else {
            return Unpaired::Nothing;
        };
        if let Some(o) = self.sessions.get_mut(&other) {
            o.links.remove(&msg.token);
        }
        Unpaired::Link { token: msg.token }
    }

    /// The relayed stream of `session` under `token` closed (JS link `_onclose`).
    pub fn link_closed(&mut self, session: SessionId, token: &[u8; 32]) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.links.remove(token);
        }
    }

    /// The session's channel closed (JS `_onclose`): its pending pairings are cancelled (the
    /// whole pending entry, as JS deletes it) and the tokens of its links are returned, for
    /// the caller to destroy this side's stream of each.
    pub fn close_session(&mut self, session: SessionId) -> Vec<[u8; 32]> {
        let Some(s) = self.sessions.remove(&session) else {
            return Vec::new();
        };
        for token in &s.pairing {
            if let Some(p) = self.pairing.remove(token) {
                for end in p.links.iter().flatten() {
                    if let Some(other) = self.sessions.get_mut(&end.session) {
                        other.pairing.remove(token);
                    }
                }
            }
        }
        s.links.into_keys().collect()
    }
}
