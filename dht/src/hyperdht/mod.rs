//! HyperDHT: the user commands, messages and crypto on top of dht-rpc.
//!
//! JS: hyperdht@6.34.0 (`index.js`, `lib/*.js`).
//!
//! - [`messages`]: the values of user-command requests and replies.
//! - [`address`]: the binary connect target (public key + relay hints, `hyperdht-address`).
//! - [`noise_wrap`]: the Noise IK handshake inside PEER_HANDSHAKE (`lib/noise-wrap.js`).
//! - [`secure_payload`]: the sealed holepunch payloads and address tokens
//!   (`lib/secure-payload.js`).
//! - [`persistent`]: the storage node's record store (`lib/persistent.js`), sans-IO.
//! - [`cache`]: the bounded two-generation caches it keeps records in (`xache`, `record-cache`).
//! - [`nat`]: NAT classification of a holepunch socket (`lib/nat.js`), sans-IO.
//! - [`holepunch`]: the holepunch state machines of both peers (`lib/holepuncher.js`, the punch
//!   rounds of `lib/connect.js` and `lib/server.js`), sans-IO.
//! - [`node`]: the sans-IO HyperDHT node ([`HyperDht`]): a dht-rpc node, the store, the
//!   [`router`], and the client operations of [`ops`] (lookup, announce, unannounce, findPeer,
//!   mutable and immutable put/get).

pub mod address;
pub mod cache;
pub mod connect;
pub mod events;
pub mod fuzzing;
pub mod holepunch;
pub mod messages;
pub mod nat;
pub mod node;
#[doc(hidden)]
pub mod node_fuzzing;
pub mod noise_wrap;
pub mod ops;
pub mod persistent;
pub mod router;
pub mod secure_payload;
pub mod server;

pub use node::{HyperDht, HyperDhtConfig, HyperStats};
pub use ops::{
    Committed, FindPeerReply, HyperEvent, ImmutableValue, LookupReply, MutableValue, OpError, OpId,
    OpOutcome, QuerySummary,
};

/// hyperdht user commands (`lib/constants.js` `COMMANDS`), sent without the `internal` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// 0: Noise handshake, relayed towards a server.
    PeerHandshake,
    /// 1: holepunch coordination, relayed like handshakes.
    PeerHolepunch,
    /// 2: the router record of a public key.
    FindPeer,
    /// 3: the peer records of a topic.
    Lookup,
    /// 4: store a peer record.
    Announce,
    /// 5: remove a peer record.
    Unannounce,
    /// 6: store a signed mutable record.
    MutablePut,
    /// 7: fetch a mutable record.
    MutableGet,
    /// 8: store an immutable value.
    ImmutablePut,
    /// 9: fetch an immutable value.
    ImmutableGet,
    /// 10: plugin call.
    Plugin,
}

impl Command {
    /// Every command, in wire order.
    pub const ALL: [Self; 11] = [
        Self::PeerHandshake,
        Self::PeerHolepunch,
        Self::FindPeer,
        Self::Lookup,
        Self::Announce,
        Self::Unannounce,
        Self::MutablePut,
        Self::MutableGet,
        Self::ImmutablePut,
        Self::ImmutableGet,
        Self::Plugin,
    ];

    /// The number on the wire.
    pub fn to_u64(self) -> u64 {
        self as u64
    }

    /// The command for a wire number; `None` for numbers hyperdht does not know.
    pub fn from_u64(n: u64) -> Option<Self> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }
}

/// Handshake / holepunch relay modes (`lib/router.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 0: sent by the client.
    FromClient,
    /// 1: sent by the server back to a relay.
    FromServer,
    /// 2: forwarded by the first relay.
    FromRelay,
    /// 3: forwarded by a second relay.
    FromSecondRelay,
    /// 4: the final reply to the client.
    Reply,
}

impl Mode {
    /// The number on the wire.
    pub fn to_u64(self) -> u64 {
        self as u64
    }

    /// The mode for a wire number.
    pub fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::FromClient,
            1 => Self::FromServer,
            2 => Self::FromRelay,
            3 => Self::FromSecondRelay,
            4 => Self::Reply,
            _ => return None,
        })
    }
}

/// NAT/firewall classification (`FIREWALL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Firewall {
    /// 0: not known yet.
    Unknown,
    /// 1: reachable directly.
    Open,
    /// 2: NAT with a consistent mapping.
    Consistent,
    /// 3: NAT with randomised ports.
    Random,
}

impl Firewall {
    /// The number on the wire.
    pub fn to_u64(self) -> u64 {
        self as u64
    }

    /// The classification for a wire number.
    pub fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::Unknown,
            1 => Self::Open,
            2 => Self::Consistent,
            3 => Self::Random,
            _ => return None,
        })
    }
}

/// Error codes in payloads and DHT replies (`ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0
    None,
    /// 1
    Aborted,
    /// 2
    VersionMismatch,
    /// 3
    TryLater,
    /// 16: MUTABLE_PUT with a used seq and another value.
    SeqReused,
    /// 17: MUTABLE_PUT with a lower seq than stored.
    SeqTooLow,
}

impl ErrorCode {
    /// The number on the wire.
    pub fn to_u64(self) -> u64 {
        match self {
            Self::None => 0,
            Self::Aborted => 1,
            Self::VersionMismatch => 2,
            Self::TryLater => 3,
            Self::SeqReused => 16,
            Self::SeqTooLow => 17,
        }
    }

    /// The code for a wire number.
    pub fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::None,
            1 => Self::Aborted,
            2 => Self::VersionMismatch,
            3 => Self::TryLater,
            16 => Self::SeqReused,
            17 => Self::SeqTooLow,
            _ => return None,
        })
    }
}
