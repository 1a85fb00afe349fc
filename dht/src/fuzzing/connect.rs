//! The stateful checks behind the connect-layer fuzz targets: sealed holepunch payloads,
//! hyperdht's Noise handshake, two protomux muxes driven against each other, and the
//! blind-relay pairing tables. The assertions are the oracle, so this module may panic.

// Opt-out of the crate's no-panic lints: this is the oracle, and failing loudly is its job.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use noise::{Handshake, KeyPair, Pattern, Role};

use crate::blind_relay::client::RelayClient;
use crate::blind_relay::server::{MAX_PENDING_PAIRINGS, RelayServer, SessionId, Unpaired};
use crate::blind_relay::{Pair, Unpair};
use crate::codec::{Decode, Encode, Reader};
use crate::crypto::NS;
use crate::hyperdht::messages::{HolepunchPayload, NoisePayload};
use crate::hyperdht::noise_wrap::{NoiseWrap, NoiseWrapError};
use crate::hyperdht::secure_payload::{NONCE_LEN, SecurePayload, SecurePayloadError};
use crate::protomux::{ChannelId, Event, Frame, Limits, Mux, MuxError};

/// Arbitrary bytes opened as a sealed payload under a fixed key, and arbitrary bytes read as a
/// payload, sealed and opened by both sides.
pub fn secure_payload(data: &[u8]) {
    let a = SecurePayload::new(&[0x61; 32], &[0x62; 32]);
    let b = SecurePayload::new(&[0x61; 32], &[0x63; 32]);
    match a.decrypt(data) {
        Ok(p) => {
            // Only a forgery of Poly1305 gets here; what opens must reseal and reopen.
            let again = a.encrypt_with_nonce(&p, &[0; NONCE_LEN]);
            assert_eq!(b.decrypt(&again), Ok(p));
        }
        Err(SecurePayloadError::TooShort { len }) => assert!(len <= 40 && len == data.len()),
        Err(_) => assert!(data.len() > 40),
    }
    if let Ok(p) = HolepunchPayload::from_bytes(data) {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.iter_mut().zip(data).for_each(|(n, d)| *n = *d);
        let sealed = a.encrypt_with_nonce(&p, &nonce);
        assert_eq!(b.decrypt(&sealed), Ok(p.clone()), "the other side opens it");
        let mut bad = sealed.clone();
        let i = usize::from(data.first().copied().unwrap_or(0)) % bad.len();
        bad[i] ^= 1;
        assert!(
            b.decrypt(&bad).is_err(),
            "a flipped bit at {i} still opened"
        );
    }
    // the token covers the host only
    let host = std::net::Ipv4Addr::from(u32::from_le_bytes(core::array::from_fn(|i| {
        data.get(i).copied().unwrap_or(0)
    })));
    assert_eq!(
        a.token(host),
        SecurePayload::new(&[9; 32], &[0x62; 32]).token(host)
    );
}

fn server() -> NoiseWrap {
    NoiseWrap::responder(KeyPair::from_seed([2; 32]), KeyPair::from_seed([4; 32])).unwrap()
}

fn client() -> NoiseWrap {
    let server_pk = *KeyPair::from_seed([2; 32]).public_key();
    NoiseWrap::initiator(
        KeyPair::from_seed([1; 32]),
        KeyPair::from_seed([3; 32]),
        server_pk,
    )
    .unwrap()
}

/// First byte: 0 arbitrary message 1 to a server; 1 a genuine message 1 carrying arbitrary
/// payload bytes, answered and finished when it decodes; 2 arbitrary message 2 to a client.
pub fn noise_wrap(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let mut s = server();
            if s.recv(rest).is_ok() {
                // only a real client's key and ephemeral get through
                assert!(s.remote_public_key().is_some());
            } else {
                assert_eq!(
                    s.send(&NoisePayload::default()),
                    Err(NoiseWrapError::Failed)
                );
            }
        }
        1 => {
            let mut raw = Handshake::new(
                Pattern::IK,
                Role::Initiator,
                KeyPair::from_seed([1; 32]),
                KeyPair::from_seed([3; 32]),
                &NS.peer_handshake,
                Some(*KeyPair::from_seed([2; 32]).public_key()),
            )
            .unwrap();
            let Ok(msg1) = raw.write_message(rest) else {
                return;
            };
            let mut s = server();
            match (s.recv(&msg1), NoisePayload::from_bytes(rest)) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want);
                    let msg2 = s.send(&got).unwrap();
                    let plain = raw.read_message(&msg2).unwrap();
                    assert_eq!(NoisePayload::from_bytes(&plain), Ok(got));
                    let secret = s.finish().unwrap().holepunch_secret;
                    let hash = raw.result().unwrap().hash;
                    assert_eq!(secret, crate::crypto::keyed_hash(&hash, &NS.peer_holepunch));
                }
                (Err(NoiseWrapError::Payload(_)), Err(_)) => {}
                (got, want) => panic!("server read {got:?}, the codec says {want:?}"),
            }
        }
        _ => {
            let mut c = client();
            c.send(&NoisePayload::default()).unwrap();
            if c.recv(rest).is_err() {
                assert_eq!(c.finish(), Err(NoiseWrapError::Failed));
            }
        }
    }
}

/// A fuzz-driven side of the protomux pair.
struct Side {
    mux: Mux,
    channels: Vec<ChannelId>,
    corked: bool,
    limits: Limits,
}

impl Side {
    fn new(limits: Limits) -> Self {
        Self {
            mux: Mux::new(limits),
            channels: Vec::new(),
            corked: false,
            limits,
        }
    }

    fn check(&self) {
        let (local, remote, infos, held) = self.mux.table_sizes();
        assert!(local <= self.limits.max_local_channels);
        assert!(remote <= self.limits.max_remote_channels);
        assert!(held <= self.limits.max_buffered_bytes);
        assert!(
            infos <= local + remote,
            "protocol entries leak: {infos} > {local} + {remote}"
        );
    }

    /// Reads events; a `Pair` is accepted or left to be rejected by the next input byte.
    fn events(&mut self, r: &mut Reader<'_>) {
        while let Some(e) = self.mux.poll_event() {
            match e {
                Event::Pair { protocol, id } => {
                    if r.u8().unwrap_or(0) & 1 == 1
                        && let Ok(c) = self.mux.open(&protocol, id.as_deref(), b"acc")
                    {
                        self.channels.push(c);
                    }
                    self.mux.finish_pairing(&protocol, id.as_deref());
                }
                Event::Opened { channel, .. } | Event::Message { channel, .. } => {
                    assert!(
                        self.channels.contains(&channel),
                        "event for an unknown channel"
                    );
                }
                Event::Closed { channel } | Event::Rejected { channel } => {
                    assert!(self.channels.contains(&channel));
                    self.channels.retain(|c| *c != channel);
                }
            }
        }
    }
}

const PROTOCOLS: [&str; 3] = ["blind-relay", "p", "q"];

/// Two muxes exchanging what the input says. Frames one Rust mux writes must always be
/// accepted by the other (unless raw bytes were injected or a bound was reached), and every
/// table stays within its bounds.
pub fn protomux_ops(data: &[u8]) {
    let small = Limits {
        max_local_channels: 6,
        max_remote_channels: 6,
        max_buffered_bytes: 16 * 1024,
    };
    let mut sides = [Side::new(small), Side::new(small)];
    let mut wires: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut tainted = false;
    let mut racy = false;
    let mut r = Reader::new(data);
    while let Ok(op) = r.u8() {
        let me = usize::from(op & 1);
        let arg = r.u8().unwrap_or(0);
        let s = &mut sides[me];
        match (op >> 1) % 8 {
            0 => {
                let protocol = PROTOCOLS[usize::from(arg) % 3];
                let id = [arg >> 4];
                let id = (arg & 8 != 0).then_some(&id[..]);
                match s.mux.open(protocol, id, &[arg]) {
                    Ok(c) => s.channels.push(c),
                    Err(MuxError::AlreadyOpen | MuxError::TooManyLocalChannels { .. }) => {}
                    Err(e) => panic!("open: {e}"),
                }
            }
            1 | 2 => {
                if let Some(&c) = s.channels.get(usize::from(arg) % s.channels.len().max(1)) {
                    let len = usize::from(r.u8().unwrap_or(0));
                    s.mux.send(c, u64::from(arg % 4), &vec![arg; len]).unwrap();
                }
            }
            3 => {
                if !s.channels.is_empty() {
                    let c = s.channels.remove(usize::from(arg) % s.channels.len());
                    // Closing before the peer answered races as in JS (see `Mux`): the peer
                    // may still accept the dead channel and later refuse the reused id.
                    racy |= !s.mux.is_opened(c);
                    s.mux.close(c).unwrap();
                }
            }
            4 => {
                if s.corked {
                    s.mux.uncork();
                } else {
                    s.mux.cork();
                }
                s.corked = !s.corked;
            }
            5 => s.mux.pair(PROTOCOLS[usize::from(arg) % 3], None),
            6 => {
                // deliver what the other side wrote
                let other = 1 - me;
                while let Some(f) = sides[other].mux.poll_transmit() {
                    wires[other].push(f);
                }
                for f in std::mem::take(&mut wires[other]) {
                    assert!(
                        Frame::from_bytes(&f).is_ok(),
                        "a Rust frame does not decode"
                    );
                    match sides[me].mux.handle_frame(&f) {
                        Ok(()) => {}
                        Err(MuxError::BufferOverflow { .. }) => return,
                        Err(MuxError::InvalidOpen { .. } | MuxError::InvalidReject { .. })
                            if racy =>
                        {
                            return;
                        }
                        Err(e) if tainted => {
                            let _ = e;
                            return;
                        }
                        Err(e) => panic!("a frame from a Rust mux was refused: {e}"),
                    }
                    sides[me].events(&mut r);
                    sides[me].check();
                }
            }
            _ => {
                // raw bytes from the input, as a hostile peer would send
                let len = usize::from(arg % 64);
                let Ok(raw) = r.bytes(len as u64) else { return };
                match s.mux.handle_frame(raw) {
                    Ok(()) => tainted = true,
                    Err(_) => return, // JS destroys the stream here
                }
            }
        }
        for s in &mut sides {
            s.events(&mut r);
            s.check();
        }
    }
    for s in &mut sides {
        s.mux.shutdown();
        s.events(&mut r);
        assert!(s.channels.is_empty(), "shutdown left channels open");
    }
}

/// The relay's pairing table and clients under arbitrary pair/unpair/close sequences: bounds
/// hold, every match joins the two halves that were sent, and the clients accept only the
/// answers meant for them.
pub fn blind_relay_ops(data: &[u8]) {
    let mut relay = RelayServer::new();
    let mut sessions: Vec<SessionId> = (0..3).map(|_| relay.accept()).collect();
    let mut clients: Vec<RelayClient> = (0..3).map(|_| RelayClient::new()).collect();
    // (token, half) -> (session, id) of the latest pending half sent
    let mut sent: BTreeMap<([u8; 32], bool), (SessionId, u64)> = BTreeMap::new();
    let mut r = Reader::new(data);
    while let Ok(op) = r.u8() {
        let arg = r.u8().unwrap_or(0);
        let who = usize::from(arg) % 3;
        let token = [arg >> 4; 32];
        let is_initiator = arg & 8 != 0;
        match op % 6 {
            0 | 1 => {
                let msg = Pair {
                    is_initiator,
                    token,
                    id: u64::from(op),
                    seq: 0,
                };
                let s = sessions[who];
                match relay.on_pair(s, &msg) {
                    Ok(Some(m)) => {
                        let want_i = sent.remove(&(token, true));
                        let want_r = sent.remove(&(token, false));
                        let me = (s, msg.id);
                        let (i, r) = if is_initiator {
                            (Some(me), want_r)
                        } else {
                            (want_i, Some(me))
                        };
                        assert_eq!(Some((m.initiator.session, m.initiator.remote_id)), i);
                        assert_eq!(Some((m.responder.session, m.responder.remote_id)), r);
                        let c = &mut clients[who];
                        if c.pair(is_initiator, token, msg.id).is_ok() {
                            let got = c.on_pair(&m.answer(is_initiator, 77)).unwrap();
                            assert_eq!(got.remote_id, 77);
                        }
                    }
                    Ok(None) => {
                        sent.entry((token, is_initiator)).or_insert((s, msg.id));
                    }
                    Err(_) => {}
                }
            }
            2 => {
                let before = relay.pending();
                match relay.on_unpair(sessions[who], &Unpair { token }) {
                    Unpaired::Pending => {
                        assert_eq!(relay.pending() + 1, before);
                        sent.remove(&(token, true));
                        sent.remove(&(token, false));
                    }
                    Unpaired::Link { .. } | Unpaired::Nothing => {
                        assert_eq!(relay.pending(), before)
                    }
                }
                let _ = clients[who].unpair(token);
            }
            3 => {
                let s = sessions[who];
                relay.close_session(s);
                // the relay drops both halves of every pairing this session had pending
                let gone: Vec<[u8; 32]> = sent
                    .iter()
                    .filter(|(_, (session, _))| *session == s)
                    .map(|((t, _), _)| *t)
                    .collect();
                sent.retain(|(t, _), _| !gone.contains(t));
                sessions[who] = relay.accept();
                clients[who].destroy();
                clients[who] = RelayClient::new();
            }
            4 => relay.link_closed(sessions[who], &token),
            _ => {
                let c = &mut clients[who];
                if c.pair(is_initiator, token, 1).is_ok() {
                    // an answer for the other half is ignored
                    let stray = Pair {
                        is_initiator: !is_initiator,
                        token,
                        id: 5,
                        seq: 0,
                    };
                    assert_eq!(c.on_pair(&stray), None);
                }
            }
        }
        assert!(relay.pending() <= MAX_PENDING_PAIRINGS);
        assert!(
            relay.pending() <= sent.len(),
            "pending pairings nobody sent"
        );
    }
    // Everything the clients would send decodes back.
    let p = Pair {
        is_initiator: true,
        token: [1; 32],
        id: 2,
        seq: 0,
    };
    assert_eq!(Pair::from_bytes(&p.to_bytes()), Ok(p));
}
