//! The check behind the `hyperdht_node` fuzz target, shared with the corpus replay in
//! `cargo test` (`tests/hyperdht_fuzz_replay.rs`).
//!
//! Input: a script run against two [`HyperDht`] nodes, a client whose only contact is a peer
//! the fuzzer plays, and a storage node (a bootstrapper). Steps: start any client operation
//! (lookup, announce, unannounce, findPeer, mutable and immutable put/get); answer one of the
//! client's real requests with fuzzer bytes (tid, id, token, error and value chosen by the
//! input) or with a well-formed value for its command (lookup records, a mutable value signed
//! by the right or the wrong key, an immutable value that does or does not hash to the
//! target); raw datagrams to either node; requests of every hyperdht command to the storage
//! node with a valid token or none (the storage node also listens on one key, so handshakes
//! for it reach the server path); cancel; destroy; time advancing.
//! Oracle: nothing panics; every `Done` belongs to a started operation and comes once; a
//! mutable value returned verifies against its key; an immutable value hashes to its target;
//! after ten quiet minutes every operation not cancelled has ended and none is left running.
//! This module may panic: it is the oracle.

// The fuzz oracle may assert and index: it runs on inputs it builds itself.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::messages::{LookupRawReply, MutableGetResponse, Peer};
use super::{Command, HyperDht, HyperDhtConfig, HyperEvent, OpId, OpOutcome};
use crate::codec::{Decode, Encode};
use crate::crypto::{self, KeyPair, node_id};
use crate::rpc::Config;
use crate::rpc::wire::{Message, Request, Response};

const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 20_000);
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 20_001);
const STORE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 4), 20_002);
/// Requests of the client remembered so the fuzzer can answer them.
const MAX_PENDING: usize = 256;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

struct Run {
    now: Instant,
    client: HyperDht,
    store: HyperDht,
    keys: Vec<KeyPair>,
    pending: Vec<Request>,
    started: BTreeMap<OpId, Option<[u8; 32]>>,
    cancelled: BTreeSet<OpId>,
    done: BTreeSet<OpId>,
}

impl Run {
    fn drain(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            if let Ok(Message::Request(r)) = Message::from_bytes(&t.payload)
                && self.pending.len() < MAX_PENDING
            {
                self.pending.push(r);
            }
        }
        while self.store.poll_transmit().is_some() {}
        while self.store.poll_event().is_some() {}
        while let Some(e) = self.client.poll_event() {
            let HyperEvent::Done { op, result } = e else {
                continue;
            };
            let key = self
                .started
                .get(&op)
                .unwrap_or_else(|| panic!("{op:?} never started"));
            assert!(
                !self.cancelled.contains(&op),
                "{op:?} reported after cancel"
            );
            assert!(self.done.insert(op), "{op:?} ended twice");
            match result {
                Ok(OpOutcome::MutableGet(v)) => {
                    let pk = key.expect("a mutable get has a key");
                    assert!(crypto::verify_mutable(&pk, v.seq, &v.value, &v.signature));
                }
                Ok(OpOutcome::ImmutableGet(v)) => {
                    assert_eq!(Some(crypto::hash(&v.value)), *key);
                }
                _ => {}
            }
        }
    }

    fn start(&mut self, b: &mut Bytes<'_>) {
        let (Some(kind), Some(k)) = (b.u8(), b.u8()) else {
            return;
        };
        let kp = self.keys[usize::from(k) % self.keys.len()].clone();
        let topic = [k % 3; 32];
        let now = self.now;
        let c = &mut self.client;
        let (op, key) = match kind % 8 {
            0 => (c.lookup(now, topic), None),
            1 => (
                c.announce(now, topic, &kp, &[PEER, STORE, CLIENT, PEER]),
                None,
            ),
            2 => (c.unannounce(now, topic, &kp), None),
            3 => (c.find_peer(now, &kp.public_key), None),
            4 => (c.immutable_put(now, &[k % 3]), None),
            5 => {
                let target = crypto::hash(&[k % 3]);
                (c.immutable_get(now, target), Some(target))
            }
            6 => (c.mutable_put(now, &kp, &[k], u64::from(k % 4)), None),
            _ => {
                let op = c.mutable_get(now, &kp.public_key, u64::from(k % 3), k % 2 == 0);
                (op, Some(kp.public_key))
            }
        };
        self.started.insert(op, key);
    }

    /// Answers a pending request: fuzzer bytes, or a well-formed value for its command.
    fn answer(&mut self, b: &mut Bytes<'_>, shaped: bool) {
        let (Some(i), Some(flags), Some(len)) = (b.u8(), b.u8(), b.u8()) else {
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        let req = self
            .pending
            .swap_remove(usize::from(i) % self.pending.len());
        let value = if shaped {
            self.shaped_value(&req, flags)
        } else {
            Some(b.take(usize::from(len))).filter(|v| !v.is_empty())
        };
        let res = Response {
            tid: if flags & 1 == 0 { req.tid } else { req.tid ^ 1 },
            to: CLIENT,
            id: (flags & 2 == 0).then(|| node_id(&PEER)),
            token: (flags & 4 == 0).then_some([flags; 32]),
            closer_nodes: if flags & 8 == 0 {
                Vec::new()
            } else {
                vec![STORE]
            },
            error: if flags & 16 == 0 { 0 } else { u64::from(len) },
            value,
        };
        self.client.handle_datagram(self.now, PEER, &res.to_bytes());
    }

    fn shaped_value(&self, req: &Request, flags: u8) -> Option<Vec<u8>> {
        let kp = &self.keys[usize::from(flags >> 5) % self.keys.len()];
        match Command::from_u64(req.command)? {
            Command::Lookup => Some(
                LookupRawReply {
                    peers: vec![Peer {
                        public_key: kp.public_key,
                        relay_addresses: vec![PEER],
                    }],
                    bump: u64::from(flags),
                }
                .to_bytes(),
            ),
            Command::FindPeer => Some(
                Peer {
                    public_key: kp.public_key,
                    relay_addresses: vec![],
                }
                .to_bytes(),
            ),
            Command::MutableGet => {
                let seq = u64::from(flags % 5);
                Some(
                    MutableGetResponse {
                        seq,
                        value: vec![flags],
                        signature: crypto::sign_mutable(kp, seq, &[flags]),
                    }
                    .to_bytes(),
                )
            }
            Command::ImmutableGet => Some(vec![flags % 4]),
            _ => None,
        }
    }

    /// A request of any hyperdht command to the storage node.
    fn ask_store(&mut self, b: &mut Bytes<'_>) {
        let (Some(cmd), Some(flags), Some(len)) = (b.u8(), b.u8(), b.u8()) else {
            return;
        };
        let token = (flags & 1 == 0).then(|| self.store.rpc().token_for(*CLIENT.ip()));
        let req = Request {
            tid: u16::from(flags),
            to: STORE,
            id: None,
            token,
            internal: false,
            command: u64::from(cmd % 12),
            // flags bits 1 and 2 both set: the key the storage node listens on (its server).
            target: if flags & 2 == 0 {
                Some([flags >> 2; 32])
            } else if flags & 4 != 0 {
                Some(crate::crypto::hash(&listening_key().public_key))
            } else {
                None
            },
            value: Some(b.take(usize::from(len))),
        };
        self.store
            .handle_datagram(self.now, CLIENT, &req.to_bytes());
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        self.store.handle_timeout(self.now);
    }
}

fn listening_key() -> KeyPair {
    KeyPair::from_seed(&[9; 32])
}

/// Runs one fuzz input.
pub fn hyperdht_node(data: &[u8]) {
    let now = Instant::now();
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![PEER],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let mut run = Run {
        now,
        client: HyperDht::new(config, CLIENT.port(), now, 1_700_000_000_000, [3; 32]),
        store: HyperDht::bootstrapper(
            HyperDhtConfig::default(),
            STORE,
            now,
            1_700_000_000_000,
            [4; 32],
        ),
        keys: (1..=3u8).map(|i| KeyPair::from_seed(&[i; 32])).collect(),
        pending: Vec::new(),
        started: BTreeMap::new(),
        cancelled: BTreeSet::new(),
        done: BTreeSet::new(),
    };
    // The storage node also listens, so handshakes for its key reach the server path.
    let _ = run.store.servers_mut().listen(listening_key(), None);
    let mut b = Bytes(data);
    run.drain();
    while let Some(step) = b.u8() {
        match step % 8 {
            0 => run.start(&mut b),
            1 => run.answer(&mut b, false),
            2 => run.answer(&mut b, true),
            3 => {
                let n = b.u8().unwrap_or(0);
                let bytes = b.take(usize::from(n));
                run.client.handle_datagram(run.now, PEER, &bytes);
                run.store.handle_datagram(run.now, CLIENT, &bytes);
            }
            4 => run.ask_store(&mut b),
            5 => {
                let n = b.u8().unwrap_or(0);
                run.advance(Duration::from_millis(u64::from(n) * 50));
            }
            6 => {
                let i = b.u8().unwrap_or(0);
                let live: Vec<OpId> = run
                    .started
                    .keys()
                    .filter(|o| !run.done.contains(o) && !run.cancelled.contains(o))
                    .copied()
                    .collect();
                if let Some(op) = live.get(usize::from(i) % live.len().max(1)) {
                    run.client.cancel(*op);
                    run.cancelled.insert(*op);
                }
            }
            _ => {
                if b.u8().unwrap_or(0) == 0xde {
                    let now = run.now;
                    run.client.destroy(now);
                }
            }
        }
        run.drain();
    }
    // Ten quiet minutes: every operation ends (its requests time out).
    for _ in 0..120 {
        run.advance(Duration::from_secs(5));
        run.pending.clear();
        run.drain();
    }
    for op in run.started.keys() {
        assert!(
            run.done.contains(op) || run.cancelled.contains(op),
            "{op:?} never ended"
        );
    }
    assert_eq!(run.client.running_ops(), 0);
}
