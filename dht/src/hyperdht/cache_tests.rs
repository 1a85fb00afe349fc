//! The caches on their own, against `xache/index.js` and `record-cache/index.js`.

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

const AGE: Duration = Duration::from_millis(3000); // tick = ceil(2/3 * 3000) = 2000 ms

fn ms(t0: Instant, n: u64) -> Instant {
    t0 + Duration::from_millis(n)
}

fn rec(i: u8) -> PeerRecord {
    let mut b = vec![i; 32];
    b.push(0);
    PeerRecord::new(&b).expect("fits")
}

#[test]
fn xache_tick_is_two_thirds_of_max_age_rounded_up() {
    let t0 = Instant::now();
    let c: Xache<u8, u8> = Xache::new(4, Duration::from_millis(1000), t0);
    assert_eq!(c.next_deadline(), Some(ms(t0, 667)));
    let none: Xache<u8, u8> = Xache::new(4, Duration::ZERO, t0);
    assert_eq!(none.next_deadline(), None);
}

#[test]
fn xache_set_collects_when_the_fresh_generation_reaches_max_size() {
    let t0 = Instant::now();
    let mut c = Xache::new(3, AGE, t0);
    c.set(1, 'a');
    c.set(2, 'b');
    assert_eq!(c.generation_sizes(), (2, 0, 0));
    c.set(3, 'c'); // latest.size >= 3
    assert_eq!(c.generation_sizes(), (0, 3, 0));
    for k in 4..=6 {
        c.set(k, 'x');
    }
    assert_eq!(c.generation_sizes(), (0, 3, 0));
    assert_eq!(c.stats().evicted, 3);
    assert!(!c.has(&1));
}

#[test]
fn xache_get_moves_a_stale_entry_back_to_fresh() {
    let t0 = Instant::now();
    let mut c = Xache::new(10, AGE, t0);
    c.set(1, 'a');
    c.set(2, 'b');
    c.advance(ms(t0, 2000));
    assert_eq!(c.generation_sizes(), (0, 2, 0));
    assert_eq!(c.get(&1), Some(&'a'));
    assert_eq!(c.generation_sizes(), (1, 1, 0));
    c.advance(ms(t0, 4000));
    assert!(c.has(&1));
    assert!(!c.has(&2));
    assert_eq!(c.stats().expired, 1);
}

#[test]
fn xache_reads_of_every_stale_entry_do_not_grow_the_cache_past_two_generations() {
    // In JS a reader who touches every stale entry before each tick keeps them all, and the
    // writes of each tick come on top: the cache grows without bound. Here it stays within
    // max fresh and max + 1 stale.
    let t0 = Instant::now();
    let max = 4;
    let mut c = Xache::new(max, AGE, t0);
    let mut next = 0u32;
    for tick in 1..=20u64 {
        let keys: Vec<u32> = (0..next).collect();
        for k in &keys {
            c.get(k);
        }
        for _ in 0..max - 1 {
            c.set(next, ());
            next += 1;
        }
        c.advance(ms(t0, 2000 * tick));
        let (fresh, stale, _) = c.generation_sizes();
        assert!(
            fresh <= max && stale <= max + 1,
            "tick {tick}: {fresh} + {stale}"
        );
    }
    assert_eq!(next, 60);
}

#[test]
fn xache_get_of_a_stale_entry_when_the_fresh_generation_is_full_still_returns_it() {
    let t0 = Instant::now();
    let mut c = Xache::new(3, AGE, t0);
    c.set(1, 'a');
    c.advance(ms(t0, 2000)); // 1 stale
    c.set(2, 'b');
    c.set(3, 'c');
    c.latest.insert(4, 'd'); // a full fresh generation without the collection `set` would run
    assert_eq!(c.get(&1), Some(&'a'));
    assert_eq!(c.generation_sizes(), (3, 1, 0));
}

#[test]
fn xache_tick_after_a_size_collection_is_skipped() {
    // `_gcAuto`: if `_gc` ran since the last tick, this tick does nothing
    let t0 = Instant::now();
    let mut c = Xache::new(2, AGE, t0);
    c.set(1, 'a');
    c.set(2, 'b'); // collects: both stale
    c.advance(ms(t0, 2000)); // skipped
    assert_eq!(c.len(), 2);
    c.advance(ms(t0, 4000)); // runs: stale dropped
    assert_eq!(c.len(), 0);
    assert_eq!(c.stats().expired, 2);
}

#[test]
fn xache_long_idle_gap_empties_the_cache_once() {
    let t0 = Instant::now();
    let mut c = Xache::new(10, AGE, t0);
    c.set(1, 'a');
    c.advance(ms(t0, 1_000_000));
    assert!(c.is_empty());
    // the schedule stays on the original grid
    assert_eq!(c.next_deadline(), Some(ms(t0, 1_002_000)));
}

#[test]
fn xache_retained_entries_never_expire_and_ignore_set() {
    let t0 = Instant::now();
    let mut c = Xache::new(10, AGE, t0);
    c.set(1, 'a');
    c.retain(1, 'r');
    c.set(1, 'z');
    c.advance(ms(t0, 10_000));
    assert_eq!(c.get(&1), Some(&'r'));
    assert_eq!(c.delete(&1), Some('r'));
    assert!(c.is_empty());
}

#[test]
fn record_cache_collects_when_fresh_exceeds_max_size() {
    let t0 = Instant::now();
    let mut c = RecordCache::new(2, AGE, t0);
    let t = [1; 32];
    c.add(t, rec(1));
    c.add(t, rec(2));
    assert_eq!(c.generation_sizes(), (2, 0));
    c.add(t, rec(3)); // 3 > 2
    assert_eq!(c.generation_sizes(), (0, 3));
    c.add(t, rec(1)); // moves out of stale
    assert_eq!(c.generation_sizes(), (1, 2));
}

#[test]
fn record_cache_add_of_a_present_key_keeps_the_old_record() {
    let t0 = Instant::now();
    let mut c = RecordCache::new(10, AGE, t0);
    let t = [1; 32];
    c.add(t, rec(1));
    let mut other = vec![1; 32];
    other.extend([1, 127, 0, 0, 1, 1, 0]);
    c.add(t, PeerRecord::new(&other).expect("fits"));
    let mut rng = ChaCha20Rng::from_seed([0; 32]);
    assert_eq!(c.get(&t, 0, &mut rng), vec![rec(1)]);
}

#[test]
fn record_cache_get_draws_without_repetition_from_both_generations() {
    let t0 = Instant::now();
    let mut c = RecordCache::new(100, AGE, t0);
    let t = [1; 32];
    for i in 0..12 {
        c.add(t, rec(i));
    }
    c.advance(ms(t0, 2000));
    for i in 12..30 {
        c.add(t, rec(i));
    }
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let mut union = BTreeSet::new();
    for _ in 0..30 {
        let got = c.get(&t, 20, &mut rng);
        let keys: BTreeSet<_> = got.iter().map(PeerRecord::public_key).collect();
        assert_eq!(keys.len(), 20);
        union.extend(keys);
    }
    assert_eq!(union.len(), 30);
    assert_eq!(c.get(&t, 0, &mut rng).len(), 30);
    assert_eq!(c.get(&[2; 32], 20, &mut rng), vec![]);
}

#[test]
fn record_cache_index_stays_right_through_swaps_and_removals() {
    let t0 = Instant::now();
    let mut c = RecordCache::new(1000, AGE, t0);
    let t = [1; 32];
    for i in 0..40 {
        c.add(t, rec(i));
    }
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    for round in 0..40u8 {
        c.get(&t, 20, &mut rng);
        c.remove(&t, &[round; 32]);
        for i in 0..40u8 {
            assert_eq!(c.contains(&t, &[i; 32]), i > round, "round {round} key {i}");
        }
    }
    assert!(c.is_empty());
    assert_eq!(c.topic_entries(), 0);
}

#[test]
fn peer_record_refuses_short_and_long_encodings() {
    assert!(PeerRecord::new(&[0; 31]).is_none());
    assert!(PeerRecord::new(&[0; MAX_PEER_RECORD + 1]).is_none());
    let r = PeerRecord::new(&[7; MAX_PEER_RECORD]).expect("fits");
    assert_eq!(r.as_bytes(), &[7; MAX_PEER_RECORD][..]);
    assert_eq!(r.public_key(), [7; 32]);
}
