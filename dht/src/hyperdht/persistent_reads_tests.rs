//! One test per rule of `hyperdht/lib/persistent.js`: LOOKUP, FIND_PEER, the mutable and
//! immutable values, expiry and bounds, and the bridge to the rpc layer.

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::crypto::{KeyPair, hash, sign_mutable};

// ---- LOOKUP / FIND_PEER ----

#[test]
fn lookup_without_target_is_silent() {
    let mut w = World::new();
    let mut req = get(StoreCommand::Lookup, &TOPIC);
    req.target = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoTarget));
}

#[test]
fn lookup_of_an_empty_topic_replies_no_value_with_token_and_closer_nodes() {
    let mut w = World::new();
    let o = w.run(&get(StoreCommand::Lookup, &TOPIC));
    assert_eq!(o.response, Response::value(None));
}

#[test]
fn lookup_returns_at_most_20_distinct_random_records() {
    let mut w = World::new();
    let keys: Vec<KeyPair> = (1..=30).map(kp).collect();
    for k in &keys {
        w.run(&write(
            StoreCommand::Announce,
            &TOPIC,
            &announce(k, &TOPIC, 0, None, 0),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut first = None;
    for _ in 0..20 {
        let r = w.lookup(&TOPIC, None).expect("records");
        assert_eq!(r.peers.len(), LOOKUP_MAX_RECORDS);
        let set = record_keys(&r);
        assert_eq!(set.len(), LOOKUP_MAX_RECORDS, "no record twice");
        if first.is_none() {
            first = Some(set.clone());
        }
        seen.extend(set);
    }
    assert_ne!(first, None);
    // random picks: over 20 lookups every one of the 30 records comes up
    assert_eq!(seen.len(), 30);
}

#[test]
fn lookup_picks_depend_only_on_the_seed() {
    let run = |seed: [u8; 32]| {
        let t0 = Instant::now();
        let mut s = Persistent::new(&StoreConfig::default(), t0, seed);
        let ctx = Context {
            now: t0,
            unix_ms: UNIX_MS,
            node_id: NODE_ID,
        };
        for i in 1..=25 {
            s.handle(
                &ctx,
                &write(
                    StoreCommand::Announce,
                    &TOPIC,
                    &announce(&kp(i), &TOPIC, 0, None, 0),
                ),
            );
        }
        (0..5)
            .map(|_| value_of(&s.handle(&ctx, &get(StoreCommand::Lookup, &TOPIC))))
            .collect::<Vec<_>>()
    };
    assert_eq!(run([1; 32]), run([1; 32]));
    assert_ne!(run([1; 32]), run([2; 32]));
}

#[test]
fn lookup_adds_the_router_record_when_there_is_room() {
    let mut w = World::new();
    let a = kp(1);
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 0, None, 0),
    ));
    let fwd = peer(&kp(2), 1).to_bytes();
    let r = w.lookup(&TOPIC, Some(&fwd)).expect("records");
    assert_eq!(r.peers, vec![peer(&a, 0), peer(&kp(2), 1)]);
}

#[test]
fn lookup_with_only_the_router_record_replies_it() {
    let mut w = World::new();
    let fwd = peer(&kp(2), 0).to_bytes();
    let r = w.lookup(&TOPIC, Some(&fwd)).expect("router record");
    assert_eq!(r.peers, vec![peer(&kp(2), 0)]);
}

#[test]
fn lookup_with_20_records_leaves_the_router_record_out() {
    let mut w = World::new();
    for i in 1..=20 {
        w.run(&write(
            StoreCommand::Announce,
            &TOPIC,
            &announce(&kp(i), &TOPIC, 0, None, 0),
        ));
    }
    let fwd = peer(&kp(99), 0).to_bytes();
    let r = w.lookup(&TOPIC, Some(&fwd)).expect("records");
    assert_eq!(r.peers.len(), 20);
    assert!(!record_keys(&r).contains(&kp(99).public_key));
}

#[test]
fn find_peer_replies_the_router_record_or_no_value() {
    let mut w = World::new();
    let fwd = peer(&kp(1), 2).to_bytes();
    let o = w.run(&StoreRequest {
        router_record: Some(&fwd),
        ..get(StoreCommand::FindPeer, &TOPIC)
    });
    assert_eq!(o.response, Response::value(Some(fwd.clone())));
    let o = w.run(&get(StoreCommand::FindPeer, &TOPIC));
    assert_eq!(o.response, Response::value(None));
    let mut req = get(StoreCommand::FindPeer, &TOPIC);
    req.target = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoTarget));
}

// ---- MUTABLE_PUT / MUTABLE_GET ----

#[test]
fn mutable_put_stores_and_replies_with_token_and_closer_nodes() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let o = w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 1, b"hello"),
    ));
    assert_eq!(o.response, Response::value(None));
    let want = MutableGetResponse {
        seq: 1,
        value: b"hello".to_vec(),
        signature: sign_mutable(&a, 1, b"hello"),
    }
    .to_bytes();
    let s = seq_bytes(0);
    let o = w.run(&StoreRequest {
        value: Some(&s),
        ..get(StoreCommand::MutableGet, &target)
    });
    assert_eq!(o.response, Response::value(Some(want)));
}

#[test]
fn mutable_put_without_token_is_silent() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let v = mutable_put(&a, 1, b"x");
    let mut req = write(StoreCommand::MutablePut, &target, &v);
    req.token = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoToken));
}

#[test]
fn mutable_put_to_a_target_other_than_the_key_hash_is_silent() {
    let mut w = World::new();
    let v = mutable_put(&kp(1), 1, b"x");
    let o = w.run(&write(StoreCommand::MutablePut, &TOPIC, &v));
    assert_eq!(o.response, Response::Silent(Dropped::TargetMismatch));
    assert_eq!(w.store.stats().dropped_target_mismatch, 1);
}

#[test]
fn mutable_put_with_a_bad_signature_is_silent() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let mut v = mutable_put(&a, 1, b"x");
    let last = v.len() - 1;
    v[last] ^= 0x80;
    let o = w.run(&write(StoreCommand::MutablePut, &target, &v));
    assert_eq!(o.response, Response::Silent(Dropped::BadSignature));
    assert_eq!(w.store.stats().dropped_bad_signature, 1);
}

#[test]
fn mutable_put_with_an_undecodable_value_is_silent() {
    let mut w = World::new();
    let o = w.run(&write(StoreCommand::MutablePut, &TOPIC, &[0; 10]));
    assert!(matches!(
        o.response,
        Response::Silent(Dropped::Malformed(_))
    ));
}

#[test]
fn mutable_put_with_same_seq_and_other_value_is_seq_reused() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 3, b"one"),
    ));
    let o = w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 3, b"two"),
    ));
    assert_eq!(o.response, Response::Error(ErrorCode::SeqReused));
    assert_eq!(
        o.response.reply_opts(),
        Some(ReplyOpts::error(16)),
        "error 16, closer nodes, no token"
    );
    assert_eq!(w.store.stats().seq_reused, 1);
}

#[test]
fn mutable_put_with_same_seq_and_same_value_is_accepted() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let v = mutable_put(&a, 3, b"one");
    w.run(&write(StoreCommand::MutablePut, &target, &v));
    let o = w.run(&write(StoreCommand::MutablePut, &target, &v));
    assert_eq!(o.response, Response::value(None));
}

#[test]
fn mutable_put_with_lower_seq_is_seq_too_low() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 5, b"five"),
    ));
    let o = w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 4, b"four"),
    ));
    assert_eq!(o.response, Response::Error(ErrorCode::SeqTooLow));
    assert_eq!(w.store.stats().seq_too_low, 1);
}

#[test]
fn mutable_put_with_higher_seq_replaces_the_value() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 1, b"old"),
    ));
    w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 2, b"new"),
    ));
    let s = seq_bytes(0);
    let got = value_of(&w.run(&StoreRequest {
        value: Some(&s),
        ..get(StoreCommand::MutableGet, &target)
    }))
    .expect("stored");
    let r = MutableGetResponse::from_bytes(&got).expect("decodes");
    assert_eq!((r.seq, r.value.as_slice()), (2, &b"new"[..]));
}

#[test]
fn mutable_put_with_empty_value_is_stored() {
    // `c.buffer` decodes a zero length as an empty (truthy) buffer in compact-encoding 3.5.2
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    let o = w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 0, b""),
    ));
    assert_eq!(o.response, Response::value(None));
}

#[test]
fn mutable_get_with_requested_seq_above_the_stored_one_replies_no_value() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 4, b"v"),
    ));
    for (want, present) in [(3, true), (4, true), (5, false)] {
        let s = seq_bytes(want);
        let o = w.run(&StoreRequest {
            value: Some(&s),
            ..get(StoreCommand::MutableGet, &target)
        });
        assert_eq!(value_of(&o).is_some(), present, "seq {want}");
    }
}

#[test]
fn mutable_get_of_an_unknown_target_replies_no_value() {
    let mut w = World::new();
    let s = seq_bytes(0);
    let o = w.run(&StoreRequest {
        value: Some(&s),
        ..get(StoreCommand::MutableGet, &TOPIC)
    });
    assert_eq!(o.response, Response::value(None));
}

#[test]
fn mutable_get_without_value_or_with_a_bad_seq_is_silent() {
    let mut w = World::new();
    assert_eq!(
        w.run(&get(StoreCommand::MutableGet, &TOPIC)).response,
        Response::Silent(Dropped::NoValue)
    );
    let o = w.run(&StoreRequest {
        value: Some(&[0xfd, 1]),
        ..get(StoreCommand::MutableGet, &TOPIC)
    });
    assert!(matches!(
        o.response,
        Response::Silent(Dropped::Malformed(_))
    ));
}

// ---- IMMUTABLE_PUT / IMMUTABLE_GET ----

#[test]
fn immutable_put_stores_under_the_hash_of_the_value() {
    let mut w = World::new();
    let v = b"immutable".to_vec();
    let target = hash(&v);
    assert_eq!(
        w.run(&write(StoreCommand::ImmutablePut, &target, &v))
            .response,
        Response::value(None)
    );
    let o = w.run(&get(StoreCommand::ImmutableGet, &target));
    assert_eq!(o.response, Response::value(Some(v)));
}

#[test]
fn immutable_put_to_a_target_other_than_the_value_hash_is_silent() {
    let mut w = World::new();
    let o = w.run(&write(StoreCommand::ImmutablePut, &TOPIC, b"x"));
    assert_eq!(o.response, Response::Silent(Dropped::TargetMismatch));
    assert_eq!(
        w.run(&get(StoreCommand::ImmutableGet, &TOPIC)).response,
        Response::value(None)
    );
}

#[test]
fn immutable_put_without_token_is_silent() {
    let mut w = World::new();
    let target = hash(b"x");
    let mut req = write(StoreCommand::ImmutablePut, &target, b"x");
    req.token = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoToken));
}

#[test]
fn immutable_get_without_target_is_silent() {
    let mut w = World::new();
    let mut req = get(StoreCommand::ImmutableGet, &TOPIC);
    req.target = None;
    assert_eq!(w.run(&req).response, Response::Silent(Dropped::NoTarget));
}

// ---- expiry and bounds ----

#[test]
fn records_expire_after_two_collections_of_800_seconds() {
    let mut w = World::new();
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(1), &TOPIC, 0, None, 0),
    ));
    // first tick at 800 s: stale but still served
    w.at(Duration::from_secs(800));
    assert!(w.lookup(&TOPIC, None).is_some());
    w.at(Duration::from_millis(1_599_999));
    assert!(w.lookup(&TOPIC, None).is_some());
    // second tick at 1600 s: gone
    w.at(Duration::from_secs(1600));
    assert_eq!(w.lookup(&TOPIC, None), None);
    assert_eq!(w.store.stats().records.expired, 1);
}

#[test]
fn a_record_announced_again_survives_the_second_collection() {
    let mut w = World::new();
    let a = kp(1);
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 0, None, 0),
    ));
    w.at(Duration::from_secs(1000));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&a, &TOPIC, 0, None, 0),
    ));
    w.at(Duration::from_secs(1700));
    assert!(w.lookup(&TOPIC, None).is_some());
    w.at(Duration::from_secs(2400));
    assert_eq!(w.lookup(&TOPIC, None), None);
}

#[test]
fn a_lookup_does_not_keep_a_record_alive() {
    // record-cache `get` does not move stale records (xache `get` does)
    let mut w = World::new();
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(1), &TOPIC, 0, None, 0),
    ));
    w.at(Duration::from_secs(1000));
    assert!(w.lookup(&TOPIC, None).is_some());
    w.at(Duration::from_secs(1600));
    assert_eq!(w.lookup(&TOPIC, None), None);
}

#[test]
fn a_mutable_get_keeps_the_value_alive() {
    let mut w = World::new();
    let a = kp(1);
    let target = hash(&a.public_key);
    w.run(&write(
        StoreCommand::MutablePut,
        &target,
        &mutable_put(&a, 1, b"v"),
    ));
    let tick = Duration::from_secs(32 * 3600); // ceil(2/3 * 48 h)
    let s = seq_bytes(0);
    let read = |w: &mut World| {
        value_of(&w.run(&StoreRequest {
            value: Some(&s),
            ..get(StoreCommand::MutableGet, &target)
        }))
    };
    w.at(tick);
    assert!(
        read(&mut w).is_some(),
        "stale, read back into the fresh generation"
    );
    w.at(tick * 2);
    assert!(read(&mut w).is_some());
    w.at(tick * 4);
    assert_eq!(read(&mut w), None);
    assert_eq!(w.store.stats().mutables.expired, 1);
}

#[test]
fn immutables_live_until_the_second_collection_of_32_hours() {
    let mut w = World::new();
    let v = b"v".to_vec();
    let target = hash(&v);
    w.run(&write(StoreCommand::ImmutablePut, &target, &v));
    w.at(Duration::from_secs(2 * 32 * 3600 - 1));
    w.store.advance(w.now);
    assert_eq!(w.store.sizes().4, 1);
    w.at(Duration::from_secs(2 * 32 * 3600));
    w.store.advance(w.now);
    assert_eq!(w.store.sizes().4, 0);
}

#[test]
fn a_full_record_cache_drops_its_stale_generation_and_counts_it() {
    let mut w = World::with(StoreConfig {
        max_size: 4,
        max_age: None,
    });
    let topics: Vec<[u8; 32]> = (0..10u8).map(|i| [i; 32]).collect();
    for (i, t) in topics.iter().enumerate() {
        let k = kp(i as u8 + 1);
        w.run(&write(
            StoreCommand::Announce,
            t,
            &announce(&k, t, 0, None, 0),
        ));
        let (fresh, stale) = w.store.records.generation_sizes();
        assert!(fresh <= 4 && stale <= 5, "{fresh} {stale}");
    }
    // 5th add: fresh 5 > 4 -> collect (nothing stale to drop); 10th: again, the first 5 dropped
    assert_eq!(w.store.stats().records.evicted, 5);
    assert_eq!(w.lookup(&topics[0], None), None);
    assert!(w.lookup(&topics[5], None).is_some());
}

#[test]
fn mutables_and_immutables_get_half_the_size() {
    let mut w = World::with(StoreConfig {
        max_size: 8,
        max_age: None,
    });
    for i in 0..20u32 {
        let v = i.to_le_bytes();
        let t = hash(&v);
        w.run(&write(StoreCommand::ImmutablePut, &t, &v));
        let (fresh, stale, _) = w.store.immutables.generation_sizes();
        assert!(fresh < 4 && stale <= 4, "{fresh} {stale}");
    }
    assert_eq!(w.store.immutables.max_size(), 4);
    assert!(w.store.stats().immutables.evicted > 0);
}

#[test]
fn a_configured_max_age_applies_to_every_cache() {
    let mut w = World::with(StoreConfig {
        max_size: 0,
        max_age: Some(Duration::from_secs(3)),
    });
    let v = b"v".to_vec();
    let t = hash(&v);
    w.run(&write(StoreCommand::ImmutablePut, &t, &v));
    w.run(&write(
        StoreCommand::Announce,
        &TOPIC,
        &announce(&kp(1), &TOPIC, 0, None, 0),
    ));
    w.at(Duration::from_secs(4));
    w.store.advance(w.now);
    assert_eq!(w.store.sizes(), (0, 0, 0, 0, 0));
    assert_eq!(w.store.records.max_size(), DEFAULT_MAX_SIZE);
}

// ---- the rpc bridge ----

#[test]
fn reply_opts_carry_the_js_reply_options() {
    assert_eq!(
        BARE.reply_opts().map(|o| (o.token, o.closer_nodes)),
        Some((false, false))
    );
    let o = Response::value(Some(vec![1])).reply_opts().expect("reply");
    assert_eq!(
        (o.error, o.value, o.token, o.closer_nodes),
        (0, Some(vec![1]), true, true)
    );
    assert_eq!(Response::Silent(Dropped::NoTarget).reply_opts(), None);
}

#[test]
fn from_incoming_takes_the_eight_store_commands_only() {
    let mut req = IncomingRequest {
        from: addr(1, 1),
        from_id: None,
        to: addr(2, 2),
        tid: 1,
        token: Some(TOKEN),
        internal: false,
        command: 4,
        target: Some(TOPIC),
        value: Some(vec![1, 2]),
    };
    let r = StoreRequest::from_incoming(&req, None).expect("ANNOUNCE");
    assert_eq!(r.command, StoreCommand::Announce);
    assert_eq!(
        (r.target, r.token, r.value),
        (Some(&TOPIC), Some(&TOKEN), Some(&[1u8, 2][..]))
    );
    for (cmd, internal, some) in [
        (0, false, false),
        (1, false, false),
        (10, false, false),
        (4, true, false),
        (99, false, false),
        (9, false, true),
    ] {
        req.command = cmd;
        req.internal = internal;
        assert_eq!(
            StoreRequest::from_incoming(&req, None).is_some(),
            some,
            "{cmd} {internal}"
        );
    }
}
