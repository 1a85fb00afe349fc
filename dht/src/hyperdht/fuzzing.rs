//! The check behind the `persistent_ops` fuzz target, shared with the corpus replay in
//! `cargo test` (`tests/persistent_fuzz_replay.rs`).
//!
//! Input: a sequence of operations on one [`Persistent`] store with small caches (16 records
//! per generation, 8 values, a 3-second age so collections happen): validly signed announces,
//! unannounces, refreshes and mutable puts from a table signed once, corrupted ones, lookups
//! and gets, immutable puts of fuzzer bytes, raw requests with fuzzer-chosen target, token and
//! value, and time advancing. A stand-in router applies the store's [`RouterAction`]s.
//! Oracle: nothing panics; every cache stays within two generations of its bound; a validly
//! signed announce is always acknowledged; LOOKUP replies decode, hold at most 20 distinct
//! records; MUTABLE_GET replies carry a valid signature and a seq at least the one asked for;
//! IMMUTABLE_GET replies hash to their target. This module may panic: it is the oracle.

// The fuzz oracle may assert and index: it runs on inputs it builds itself.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::cache::Xache;
use super::messages::{Announce, LookupRawReply, MutableGetResponse, MutablePutRequest, Peer};
use super::persistent::{
    Context, LOOKUP_MAX_RECORDS, Persistent, Response, RouterAction, StoreCommand, StoreConfig,
    StoreRequest,
};
use crate::codec::{Decode, Encode, Writer};
use crate::crypto::{self, KeyPair};

const NODE_ID: [u8; 32] = [7; 32];
const TOKEN: [u8; 32] = [0xbb; 32];
const MAX_SIZE: usize = 16;
const MAX_AGE: Duration = Duration::from_secs(3);
const KEYS: usize = 4;
/// Topics 0..4 are shared; topic 4 stands for "the key's own target" (a self-announce).
const TOPICS: usize = 5;

struct Table {
    keys: Vec<KeyPair>,
    topics: Vec<[u8; 32]>,
    secrets: Vec<[u8; 32]>,
    /// [key][topic][refresh?][relays 0 or 5] -> (target, ANNOUNCE value)
    announces: Vec<([u8; 32], Vec<u8>)>,
    /// [key][topic] -> (target, UNANNOUNCE value)
    unannounces: Vec<([u8; 32], Vec<u8>)>,
    /// [key][seq 0..4][value 0..2] -> MUTABLE_PUT value
    mutables: Vec<Vec<u8>>,
}

fn target_of(t: &Table, key: usize, topic: usize) -> [u8; 32] {
    if topic == TOPICS - 1 {
        crypto::hash(&t.keys[key].public_key)
    } else {
        t.topics[topic]
    }
}

fn peer(kp: &KeyPair, relays: u8) -> Peer {
    Peer {
        public_key: kp.public_key,
        relay_addresses: (0..relays)
            .map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, i), 4000))
            .collect(),
    }
}

/// Everything signed once per process: signing in every run would dominate the fuzzer's time.
static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let keys: Vec<KeyPair> = (0..KEYS as u8)
        .map(|i| KeyPair::from_seed(&[i + 1; 32]))
        .collect();
    let topics = (0..TOPICS as u8).map(|i| [0xa0 + i; 32]).collect();
    let secrets: Vec<[u8; 32]> = (0..KEYS as u8).map(|i| [0x50 + i; 32]).collect();
    let mut t = Table {
        keys,
        topics,
        secrets,
        announces: Vec::new(),
        unannounces: Vec::new(),
        mutables: Vec::new(),
    };
    for k in 0..KEYS {
        for topic in 0..TOPICS {
            let target = target_of(&t, k, topic);
            for refresh in [false, true] {
                for relays in [0, 5] {
                    let p = peer(&t.keys[k], relays);
                    let r = refresh.then(|| crypto::hash(&t.secrets[k]));
                    let signature = crypto::sign_announce(
                        &t.keys[k],
                        &target,
                        &NODE_ID,
                        &TOKEN,
                        &p,
                        r.as_ref(),
                    );
                    let v = Announce {
                        peer: Some(p),
                        refresh: r,
                        signature: Some(signature),
                        bump: 0,
                    };
                    t.announces.push((target, v.to_bytes()));
                }
            }
            let p = peer(&t.keys[k], 0);
            let signature =
                crypto::sign_unannounce(&t.keys[k], &target, &NODE_ID, &TOKEN, &p, None);
            let v = Announce {
                peer: Some(p),
                refresh: None,
                signature: Some(signature),
                bump: 0,
            };
            t.unannounces.push((target, v.to_bytes()));
        }
        for seq in 0..4u64 {
            for val in [&b"a"[..], b"bb"] {
                t.mutables.push(
                    MutablePutRequest {
                        public_key: t.keys[k].public_key,
                        seq,
                        value: val.to_vec(),
                        signature: crypto::sign_mutable(&t.keys[k], seq, val),
                    }
                    .to_bytes(),
                );
            }
        }
    }
    t
});

/// Takes `n` bytes (fewer at the end of the input).
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(rest.len());
    let (a, b) = rest.split_at(n);
    *rest = b;
    a
}

fn byte(rest: &mut &[u8]) -> Option<u8> {
    take(rest, 1).first().copied()
}

/// 32 bytes (zero-padded at the end of the input) when `flag`.
fn opt32(rest: &mut &[u8], flag: bool) -> Option<[u8; 32]> {
    if !flag {
        return None;
    }
    let b = take(rest, 32);
    let mut out = [0u8; 32];
    out[..b.len()].copy_from_slice(b);
    Some(out)
}

/// Runs one fuzz input against a store.
pub fn persistent_ops(data: &[u8]) {
    let t = &*TABLE;
    let t0 = Instant::now();
    let mut now = t0;
    let config = StoreConfig {
        max_size: MAX_SIZE,
        max_age: Some(MAX_AGE),
    };
    let mut store = Persistent::new(&config, t0, [3; 32]);
    let mut router: Xache<[u8; 32], Vec<u8>> = Xache::new(MAX_SIZE, MAX_AGE, t0);
    let mut rest = data;
    while let Some(op) = byte(&mut rest) {
        let arg = byte(&mut rest).unwrap_or(0);
        let key = usize::from(arg) % KEYS;
        let topic = usize::from(arg >> 2) % TOPICS;
        // (command, target, token, value, must be acknowledged)
        let (command, target, token, value, must_ack) = match op % 10 {
            0 | 1 => {
                // a validly signed announce; op 1 flips a byte of its signature
                let i = ((key * TOPICS + topic) * 2 + usize::from(arg >> 5 & 1)) * 2
                    + usize::from(arg >> 6 & 1);
                let (tg, v) = &t.announces[i];
                let mut v = v.clone();
                if op % 10 == 1 {
                    let at = v.len() - 1 - usize::from(arg >> 7) * 40;
                    v[at] ^= 1;
                }
                (
                    StoreCommand::Announce,
                    Some(*tg),
                    true,
                    Some(v),
                    op % 10 == 0,
                )
            }
            2 => {
                let (tg, v) = &t.unannounces[key * TOPICS + topic];
                (
                    StoreCommand::Unannounce,
                    Some(*tg),
                    true,
                    Some(v.clone()),
                    true,
                )
            }
            3 => {
                // a refresh with a key's secret: found only after an announce with refresh
                let v = Announce {
                    peer: None,
                    refresh: Some(t.secrets[key]),
                    signature: None,
                    bump: 0,
                };
                let tg = t.topics[topic % (TOPICS - 1)];
                (
                    StoreCommand::Announce,
                    Some(tg),
                    true,
                    Some(v.to_bytes()),
                    false,
                )
            }
            4 => (
                StoreCommand::Lookup,
                Some(target_of(t, key, topic)),
                false,
                None,
                false,
            ),
            5 => (
                StoreCommand::FindPeer,
                Some(target_of(t, key, topic)),
                false,
                None,
                false,
            ),
            6 => {
                let v = t.mutables[key * 8 + usize::from(arg >> 2) % 8].clone();
                let tg = crypto::hash(&t.keys[key].public_key);
                (StoreCommand::MutablePut, Some(tg), true, Some(v), false)
            }
            7 => {
                let mut v = Vec::new();
                v.put_uint(u64::from(arg >> 2) % 5);
                let tg = crypto::hash(&t.keys[key].public_key);
                (StoreCommand::MutableGet, Some(tg), false, Some(v), false)
            }
            8 => {
                let v = take(&mut rest, usize::from(arg % 8)).to_vec();
                let tg = if arg & 0x80 == 0 {
                    crypto::hash(&v)
                } else {
                    [arg; 32]
                };
                let c = if arg & 0x40 == 0 {
                    StoreCommand::ImmutablePut
                } else {
                    StoreCommand::ImmutableGet
                };
                (c, Some(tg), true, Some(v), false)
            }
            _ if arg & 0x80 != 0 => {
                // the clock moves on by up to ~2 s
                now += Duration::from_millis(u64::from(arg & 0x7f) * 16);
                store.advance(now);
                continue;
            }
            _ => {
                // a raw request: flags (target, token, value present; value length), bytes
                let flags = byte(&mut rest).unwrap_or(0);
                let tg = opt32(&mut rest, flags & 1 != 0);
                let v = take(&mut rest, usize::from(flags >> 3)).to_vec();
                let c = StoreCommand::ALL[usize::from(arg) % 8];
                (c, tg, flags & 2 != 0, (flags & 4 != 0).then_some(v), false)
            }
        };
        router.advance(now);
        let fwd = match (command.reads_router(), &target) {
            (true, Some(tg)) => router.get(tg).cloned(),
            _ => None,
        };
        let ctx = Context {
            now,
            unix_ms: 1_700_000_000_000 + now.duration_since(t0).as_millis() as u64,
            node_id: NODE_ID,
        };
        let req = StoreRequest {
            command,
            from: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1000),
            target: target.as_ref(),
            token: token.then_some(&TOKEN),
            value: value.as_deref(),
            router_record: fwd.as_deref(),
        };
        let o = store.handle(&ctx, &req);
        match &o.router {
            Some(RouterAction::Set { target, record, .. }) => router.set(*target, record.clone()),
            Some(RouterAction::Delete { target }) => {
                router.delete(target);
            }
            None => {}
        }
        if must_ack {
            assert!(
                matches!(
                    o.response,
                    Response::Reply {
                        value: None,
                        token: false,
                        closer_nodes: false,
                    }
                ),
                "a valid {command:?} was not acknowledged: {o:?}"
            );
        }
        check_bounds(&store, &router);
        if let (Response::Reply { value: Some(v), .. }, Some(tg)) = (&o.response, &target) {
            check_reply(t, command, tg, value.as_deref(), v);
        }
    }
}

fn check_bounds(store: &Persistent, router: &Xache<[u8; 32], Vec<u8>>) {
    let (records, refreshes, bumps, mutables, immutables) = store.sizes();
    // max fresh + (max + 1) stale (mutables and immutables: max / 2)
    assert!(records <= 2 * MAX_SIZE + 1, "records {records}");
    assert!(refreshes <= 2 * MAX_SIZE + 1 && bumps <= 2 * MAX_SIZE + 1);
    assert!(mutables <= MAX_SIZE + 1 && immutables <= MAX_SIZE + 1);
    assert!(router.len() <= 2 * MAX_SIZE + 1);
}

fn check_reply(
    t: &Table,
    command: StoreCommand,
    target: &[u8; 32],
    asked: Option<&[u8]>,
    v: &[u8],
) {
    match command {
        StoreCommand::Lookup => {
            let r = LookupRawReply::from_bytes(v).expect("a LOOKUP reply decodes");
            assert_eq!(r.to_bytes(), v, "and is canonical");
            let keys: BTreeSet<_> = r.peers.iter().map(|p| p.public_key).collect();
            assert!(!r.peers.is_empty() && r.peers.len() <= LOOKUP_MAX_RECORDS);
            assert_eq!(keys.len(), r.peers.len(), "a record twice in one reply");
        }
        StoreCommand::FindPeer => {
            let p = Peer::from_bytes(v).expect("a router record decodes");
            assert_eq!(crypto::hash(&p.public_key), *target);
        }
        StoreCommand::MutableGet => {
            let r = MutableGetResponse::from_bytes(v).expect("a stored record decodes");
            let want = asked
                .and_then(|a| crate::codec::Reader::new(a).uint().ok())
                .unwrap_or(0);
            assert!(r.seq >= want);
            let kp = t
                .keys
                .iter()
                .find(|k| crypto::hash(&k.public_key) == *target)
                .expect("only table keys can store");
            assert!(crypto::verify_mutable(
                &kp.public_key,
                r.seq,
                &r.value,
                &r.signature
            ));
        }
        StoreCommand::ImmutableGet => assert_eq!(crypto::hash(v), *target),
        other => panic!("{other:?} replied with a value"),
    }
}
