//! One test per rule of `hyperdht/lib/persistent.js`, on a virtual clock: ANNOUNCE, refresh
//! and UNANNOUNCE here, the reads, values, expiry and bounds in `persistent_reads_tests.rs`.

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::*;
use crate::crypto::{KeyPair, hash, sign_announce, sign_mutable, sign_unannounce};
use crate::hyperdht::messages::{LookupRawReply, Peer};

pub(super) const NODE_ID: [u8; 32] = [7; 32];
pub(super) const TOKEN: [u8; 32] = [0xbb; 32];
pub(super) const TOPIC: [u8; 32] = [0xaa; 32];
pub(super) const UNIX_MS: u64 = 1_700_000_000_000;

pub(super) fn addr(i: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), port)
}

pub(super) struct World {
    t0: Instant,
    now: Instant,
    store: Persistent,
}

impl World {
    pub(super) fn new() -> Self {
        Self::with(StoreConfig::default())
    }

    pub(super) fn with(config: StoreConfig) -> Self {
        let t0 = Instant::now();
        Self {
            t0,
            now: t0,
            store: Persistent::new(&config, t0, [9; 32]),
        }
    }

    pub(super) fn ctx(&self) -> Context {
        Context {
            now: self.now,
            unix_ms: UNIX_MS + self.now.duration_since(self.t0).as_millis() as u64,
            node_id: NODE_ID,
        }
    }

    pub(super) fn at(&mut self, since_start: Duration) {
        self.now = self.t0 + since_start;
    }

    pub(super) fn run(&mut self, req: &StoreRequest<'_>) -> Outcome {
        let ctx = self.ctx();
        self.store.handle(&ctx, req)
    }

    pub(super) fn lookup(
        &mut self,
        topic: &[u8; 32],
        router: Option<&[u8]>,
    ) -> Option<LookupRawReply> {
        let o = self.run(&StoreRequest {
            router_record: router,
            ..get(StoreCommand::Lookup, topic)
        });
        match o.response {
            Response::Reply { value, .. } => {
                value.map(|v| LookupRawReply::from_bytes(&v).expect("lookup reply decodes"))
            }
            other => panic!("lookup answered {other:?}"),
        }
    }
}

pub(super) fn get(command: StoreCommand, target: &[u8; 32]) -> StoreRequest<'_> {
    StoreRequest {
        command,
        from: addr(1, 1000),
        target: Some(target),
        token: None,
        value: None,
        router_record: None,
    }
}

pub(super) fn write<'a>(
    command: StoreCommand,
    target: &'a [u8; 32],
    value: &'a [u8],
) -> StoreRequest<'a> {
    StoreRequest {
        command,
        from: addr(1, 1000),
        target: Some(target),
        token: Some(&TOKEN),
        value: Some(value),
        router_record: None,
    }
}

pub(super) fn kp(i: u8) -> KeyPair {
    KeyPair::from_seed(&[i; 32])
}

pub(super) fn peer(kp: &KeyPair, relays: usize) -> Peer {
    Peer {
        public_key: kp.public_key,
        relay_addresses: (0..relays).map(|i| addr(100 + i as u8, 49_737)).collect(),
    }
}

/// A signed ANNOUNCE value for our node.
pub(super) fn announce(
    kp: &KeyPair,
    target: &[u8; 32],
    relays: usize,
    refresh: Option<[u8; 32]>,
    bump: u64,
) -> Vec<u8> {
    let p = peer(kp, relays);
    let signature = sign_announce(kp, target, &NODE_ID, &TOKEN, &p, refresh.as_ref());
    Announce {
        peer: Some(p),
        refresh,
        signature: Some(signature),
        bump,
    }
    .to_bytes()
}

pub(super) fn unannounce_value(kp: &KeyPair, target: &[u8; 32]) -> Vec<u8> {
    let p = peer(kp, 0);
    let signature = sign_unannounce(kp, target, &NODE_ID, &TOKEN, &p, None);
    Announce {
        peer: Some(p),
        refresh: None,
        signature: Some(signature),
        bump: 0,
    }
    .to_bytes()
}

pub(super) fn mutable_put(kp: &KeyPair, seq: u64, value: &[u8]) -> Vec<u8> {
    MutablePutRequest {
        public_key: kp.public_key,
        seq,
        value: value.to_vec(),
        signature: sign_mutable(kp, seq, value),
    }
    .to_bytes()
}

pub(super) fn seq_bytes(seq: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_uint(seq);
    v
}

pub(super) fn value_of(o: &Outcome) -> Option<Vec<u8>> {
    match &o.response {
        Response::Reply { value, .. } => value.clone(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

pub(super) fn record_keys(r: &LookupRawReply) -> BTreeSet<[u8; 32]> {
    r.peers.iter().map(|p| p.public_key).collect()
}

pub(super) const BARE: Response = Response::Reply {
    value: None,
    token: false,
    closer_nodes: false,
};

#[path = "persistent_reads_tests.rs"]
mod reads;

// ---- ANNOUNCE ----

#[test]
fn announce_stores_the_record_and_replies_without_token_or_closer_nodes() {
    let mut w = World::new();
    let a = kp(1);
    let v = announce(&a, &TOPIC, 1, None, 0);
    let o = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(o.response, BARE);
    assert_eq!(o.router, None);
    let r = w.lookup(&TOPIC, None).expect("a record");
    assert_eq!(r.peers, vec![peer(&a, 1)]);
}

#[test]
fn announce_without_token_is_silent_and_counted() {
    let mut w = World::new();
    let v = announce(&kp(1), &TOPIC, 0, None, 0);
    let mut req = write(StoreCommand::Announce, &TOPIC, &v);
    req.token = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoToken));
    assert_eq!(w.store.stats().dropped_no_token, 1);
    assert_eq!(w.lookup(&TOPIC, None), None);
}

#[test]
fn announce_without_target_is_silent() {
    let mut w = World::new();
    let v = announce(&kp(1), &TOPIC, 0, None, 0);
    let mut req = write(StoreCommand::Announce, &TOPIC, &v);
    req.target = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoTarget));
    assert_eq!(w.store.stats().dropped_no_target, 1);
}

#[test]
fn announce_without_value_is_silent() {
    let mut w = World::new();
    let mut req = write(StoreCommand::Announce, &TOPIC, &[]);
    req.value = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoValue));
}

#[test]
fn announce_with_undecodable_value_is_silent() {
    let mut w = World::new();
    // flags say "peer" but the key is cut short; an empty value has no flags at all
    for v in [&[1u8, 2, 3][..], &[]] {
        let o = w.run(&write(StoreCommand::Announce, &TOPIC, v));
        assert!(
            matches!(o.response, Response::Silent(Dropped::Malformed(_))),
            "{o:?}"
        );
    }
    assert_eq!(w.store.stats().dropped_malformed, 2);
}

#[test]
fn announce_with_a_bad_signature_is_silent_and_counted() {
    let mut w = World::new();
    let mut v = announce(&kp(1), &TOPIC, 0, None, 0);
    let last = v.len() - 1;
    v[last] ^= 1;
    let o = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::BadSignature));
    assert_eq!(w.store.stats().dropped_bad_signature, 1);
    assert_eq!(w.lookup(&TOPIC, None), None);
}

#[test]
fn announce_without_signature_is_silent() {
    let mut w = World::new();
    let v = Announce {
        peer: Some(peer(&kp(1), 0)),
        refresh: None,
        signature: None,
        bump: 0,
    }
    .to_bytes();
    let o = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::NoSignature));
}

#[test]
fn announce_signed_for_another_storage_node_is_silent() {
    let mut w = World::new();
    let a = kp(1);
    let p = peer(&a, 0);
    let signature = sign_announce(&a, &TOPIC, &[8; 32], &TOKEN, &p, None);
    let v = Announce {
        peer: Some(p),
        refresh: None,
        signature: Some(signature),
        bump: 0,
    }
    .to_bytes();
    let o = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::BadSignature));
}

#[test]
fn announce_signed_with_the_unannounce_namespace_is_silent() {
    let mut w = World::new();
    let v = unannounce_value(&kp(1), &TOPIC);
    let o = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::BadSignature));
}

#[test]
fn announce_with_more_than_three_relay_addresses_keeps_the_first_three() {
    let mut w = World::new();
    let a = kp(1);
    // the signature covers all five addresses; the store keeps three
    let v = announce(&a, &TOPIC, 5, None, 0);
    assert_eq!(
        w.run(&write(StoreCommand::Announce, &TOPIC, &v)).response,
        BARE
    );
    let r = w.lookup(&TOPIC, None).expect("a record");
    assert_eq!(r.peers, vec![peer(&a, 3)]);
    assert_eq!(w.store.stats().relay_addresses_cut, 2);
}

#[test]
fn announce_of_the_own_key_is_a_router_forward_not_a_topic_record() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    // a topic record under that target first, which the self-announce removes
    w.store.records.add(
        target,
        PeerRecord::new(&peer(&a, 0).to_bytes()).expect("fits"),
    );
    let v = announce(&a, &target, 2, None, 0);
    let mut req = write(StoreCommand::Announce, &target, &v);
    req.from = addr(5, 4242);
    let o = w.run(&req);
    assert_eq!(o.response, BARE);
    assert_eq!(
        o.router,
        Some(RouterAction::Set {
            target,
            relay: addr(5, 4242),
            record: peer(&a, 2).to_bytes(),
        })
    );
    assert_eq!(w.lookup(&target, None), None);
}

#[test]
fn announce_again_in_the_same_generation_keeps_the_first_record() {
    // record-cache `RecordSet.add` returns early for a key it holds: the new relays are not stored
    let mut w = World::new();
    let a = kp(1);
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 1, None, 0),
    ));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 2, None, 0),
    ));
    let r = w.lookup(&TOPIC, None).expect("a record");
    assert_eq!(r.peers, vec![peer(&a, 1)]);
}

#[test]
fn announce_again_after_a_collection_stores_the_new_record() {
    // a stale record is removed before the fresh one is added
    let mut w = World::new();
    let a = kp(1);
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 1, None, 0),
    ));
    w.at(Duration::from_secs(800));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 2, None, 0),
    ));
    let r = w.lookup(&TOPIC, None).expect("a record");
    assert_eq!(r.peers, vec![peer(&a, 2)]);
}

#[test]
fn announce_bump_above_the_current_and_within_the_drift_is_kept() {
    let mut w = World::new();
    let bump = UNIX_MS + MAX_BUMP_DRIFT_MS;
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(1), &TOPIC, 0, None, bump),
    ));
    assert_eq!(w.lookup(&TOPIC, None).expect("a record").bump, bump);
}

#[test]
fn announce_bump_beyond_the_drift_is_ignored() {
    let mut w = World::new();
    let bump = UNIX_MS + MAX_BUMP_DRIFT_MS + 1;
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(1), &TOPIC, 0, None, bump),
    ));
    assert_eq!(w.lookup(&TOPIC, None).expect("a record").bump, 0);
}

#[test]
fn announce_bump_not_above_the_current_is_ignored() {
    let mut w = World::new();
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(1), &TOPIC, 0, None, 500),
    ));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(2), &TOPIC, 0, None, 400),
    ));
    assert_eq!(w.lookup(&TOPIC, None).expect("records").bump, 500);
}

#[test]
fn announce_of_the_own_key_leaves_the_bump_alone() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    w.run(&write(
        StoreCommand::Announce,
        &target,
        &announce(&a, &target, 0, None, 5),
    ));
    let r = w
        .lookup(&target, Some(&peer(&a, 0).to_bytes()))
        .expect("router record");
    assert_eq!(r.bump, 0);
}

#[test]
fn announce_with_neither_peer_nor_refresh_is_silent() {
    let mut w = World::new();
    let v = Announce {
        peer: None,
        refresh: None,
        signature: None,
        bump: 0,
    }
    .to_bytes();
    let o = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::NoPeer));
}

// ---- refresh ----

fn refresh_only(token: [u8; 32]) -> Vec<u8> {
    Announce {
        peer: None,
        refresh: Some(token),
        signature: None,
        bump: 0,
    }
    .to_bytes()
}

#[test]
fn refresh_stores_the_record_again_under_its_own_target_and_moves_the_entry() {
    let mut w = World::new();
    let a = kp(1);
    let secret = [0x11; 32];
    let chained = hash(&secret);
    // announce with refresh = H(secret); later "refresh" with the secret itself
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 1, Some(chained), 0),
    ));
    // at 1000 s the record and the refresh entry are stale (first tick at 800 s)
    w.at(Duration::from_secs(1000));
    let other = [0xcc; 32];
    let v = refresh_only(secret);
    let o = w.run(&write(StoreCommand::Announce, &other, &v));
    assert_eq!(o.response, BARE);
    assert_eq!(
        w.lookup(&other, None),
        None,
        "stored under the announce's target"
    );
    // at 1600 s (second tick) an unrefreshed record would be gone; this one is fresh again
    w.at(Duration::from_secs(1600));
    assert_eq!(
        w.lookup(&TOPIC, None).expect("re-stored").peers,
        vec![peer(&a, 1)]
    );
    // the entry moved from H(secret) to secret: the same secret no longer works, and the
    // next link of the chain (any x with H(x) = secret) would find it under `secret`
    let again = w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    assert_eq!(again.response, Response::Silent(Dropped::UnknownRefresh));
    assert!(w.store.refreshes.has(&secret));
    assert!(!w.store.refreshes.has(&chained));
}

#[test]
fn refresh_with_an_unknown_token_is_silent_and_counted() {
    let mut w = World::new();
    let o = w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &refresh_only([3; 32]),
    ));
    assert_eq!(o.response, Response::Silent(Dropped::UnknownRefresh));
    assert_eq!(w.store.stats().dropped_unknown_refresh, 1);
}

#[test]
fn refresh_of_a_self_announce_is_a_router_forward_to_the_new_source() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let secret = [0x22; 32];
    w.run(&write(
        StoreCommand::Announce,
        &target,
        &announce(&a, &target, 0, Some(hash(&secret)), 0),
    ));
    let v = refresh_only(secret);
    let mut req = write(StoreCommand::Announce, &TOPIC, &v);
    req.from = addr(9, 9999);
    let o = w.run(&req);
    assert_eq!(
        o.router,
        Some(RouterAction::Set {
            target,
            relay: addr(9, 9999),
            record: peer(&a, 0).to_bytes(),
        })
    );
}

#[test]
fn refresh_needs_a_token_like_any_announce() {
    let mut w = World::new();
    let v = refresh_only([3; 32]);
    let mut req = write(StoreCommand::Announce, &TOPIC, &v);
    req.token = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoToken));
}

// ---- UNANNOUNCE ----

#[test]
fn unannounce_removes_the_record_and_replies_bare() {
    let mut w = World::new();
    let (a, b) = (kp(1), kp(2));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 0, None, 0),
    ));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&b, &TOPIC, 0, None, 0),
    ));
    let o = w.run(&write(
        StoreCommand::Unannounce,
        &TOPIC,
        &unannounce_value(&a, &TOPIC),
    ));
    assert_eq!(o.response, BARE);
    assert_eq!(o.router, None);
    assert_eq!(
        w.lookup(&TOPIC, None).expect("b left").peers,
        vec![peer(&b, 0)]
    );
}

#[test]
fn unannounce_signed_with_the_announce_namespace_is_silent() {
    let mut w = World::new();
    let a = kp(1);
    let v = announce(&a, &TOPIC, 0, None, 0);
    w.run(&write(StoreCommand::Announce, &TOPIC, &v));
    let o = w.run(&write(StoreCommand::Unannounce, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::BadSignature));
    assert!(w.lookup(&TOPIC, None).is_some());
}

#[test]
fn unannounce_without_token_is_silent() {
    let mut w = World::new();
    let v = unannounce_value(&kp(1), &TOPIC);
    let mut req = write(StoreCommand::Unannounce, &TOPIC, &v);
    req.token = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoToken));
}

#[test]
fn unannounce_without_peer_is_silent() {
    let mut w = World::new();
    let o = w.run(&write(
        StoreCommand::Unannounce,
        &TOPIC,
        &refresh_only([1; 32]),
    ));
    assert_eq!(o.response, Response::Silent(Dropped::NoPeer));
}

#[test]
fn unannounce_of_the_own_key_deletes_the_router_forward() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let o = w.run(&write(
        StoreCommand::Unannounce,
        &target,
        &unannounce_value(&a, &target),
    ));
    assert_eq!(o.router, Some(RouterAction::Delete { target }));
}

#[test]
fn local_unannounce_removes_the_record_without_a_signature() {
    let mut w = World::new();
    let a = kp(1);
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 0, None, 0),
    ));
    assert_eq!(w.store.unannounce(&TOPIC, &a.public_key), None);
    assert_eq!(w.lookup(&TOPIC, None), None);
}
