//! The two bounded caches a HyperDHT storage node keeps its records in, both with the same
//! two-generation expiry: entries live in a "fresh" generation; a garbage collection makes the
//! fresh generation the "stale" one and drops the previous stale one.
//!
//! - [`Xache`] mirrors `xache@1.3.0` (`index.js` `MaxCache`): a key/value map. A collection
//!   runs when `set` brings the fresh generation to `max_size`, and on a timer every
//!   `ceil(2/3 * max_age)`; `get` moves a stale entry back into the fresh generation; `retain`
//!   keeps an entry out of both generations (it never expires).
//! - [`RecordCache`] mirrors `record-cache@1.2.0` (`index.js`): per name (a topic) a set of
//!   peer records keyed by their public key. A collection runs when `add` brings the fresh
//!   generation above `max_size` records, and on the same timer; `get(name, n)` picks `n`
//!   records at random (and does not move stale records).
//!
//! The timer: JS starts a `setInterval` of `ceil(2/3 * max_age)` ms when the cache is built. A
//! tick collects unless a size-triggered collection already ran since the previous tick
//! (`_gcAuto`). Here the cache is built at an [`Instant`] and every call takes `now`; the ticks
//! that fell due since the last call run first, in order (at most two matter: two collections
//! in a row empty both generations). An entry therefore lives between `2/3` and `4/3` of
//! `max_age` unless it is set again.
//!
//! Bounds: both caches hold at most `max_size` fresh entries and `max_size + 1` stale ones
//! (the entry whose insertion triggers a collection goes along into the stale generation), so
//! `2 * max_size + 1` in all; a [`Xache`] also holds its retained entries, which only the
//! owner's own calls create.
//!
//! One deliberate difference from xache: JS's `get` moves a stale entry into the fresh
//! generation without a size check, so a requester who reads every entry once per tick keeps
//! them all alive while new ones keep arriving, and the cache grows without bound. Here `get`
//! moves an entry only while the fresh generation has room (fewer than `max_size` entries);
//! otherwise the entry is still returned but stays stale. Below `max_size` entries per tick,
//! which is every case but a flood, the two behave the same.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand_core::RngCore;

/// What a cache dropped, for the store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries dropped because the cache filled up (a collection run by `set`/`add`).
    pub evicted: u64,
    /// Entries dropped by the timer (expired).
    pub expired: u64,
}

/// The `setInterval` of `_gcAuto`, as a deadline the caller's clock is compared with.
#[derive(Debug, Clone)]
struct Ticker {
    /// `ceil(2/3 * max_age)`; `None` when `max_age` is zero (no timer in JS).
    period: Option<Duration>,
    next: Instant,
}

impl Ticker {
    fn new(max_age: Duration, now: Instant) -> Self {
        let ms = max_age.as_millis();
        // `Math.ceil(2 / 3 * maxAge)`
        let period = (ms > 0).then(|| {
            let p = (2 * ms).div_ceil(3);
            Duration::from_millis(u64::try_from(p).unwrap_or(u64::MAX))
        });
        let next = period.and_then(|p| now.checked_add(p)).unwrap_or(now);
        Self { period, next }
    }

    /// How many ticks fell due up to `now` (capped at 2: a third one finds nothing to drop).
    fn due(&mut self, now: Instant) -> u32 {
        let Some(period) = self.period else {
            return 0;
        };
        if now < self.next {
            return 0;
        }
        let late = now.saturating_duration_since(self.next).as_millis();
        let n = 1 + late / period.as_millis().max(1);
        let step = period.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        self.next = self.next.checked_add(step).unwrap_or(now);
        u32::try_from(n.min(2)).unwrap_or(2)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.period.map(|_| self.next)
    }
}

/// `xache` `MaxCache`: a bounded map with two-generation expiry.
#[derive(Debug, Clone)]
pub struct Xache<K, V> {
    max_size: usize,
    latest: BTreeMap<K, V>,
    oldest: BTreeMap<K, V>,
    retained: BTreeMap<K, V>,
    gced: bool,
    ticker: Ticker,
    stats: CacheStats,
}

impl<K: Ord + Clone, V> Xache<K, V> {
    /// A cache of `max_size` per generation and `max_age` (zero: no timer), built at `now`.
    pub fn new(max_size: usize, max_age: Duration, now: Instant) -> Self {
        Self {
            max_size,
            latest: BTreeMap::new(),
            oldest: BTreeMap::new(),
            retained: BTreeMap::new(),
            gced: false,
            ticker: Ticker::new(max_age, now),
            stats: CacheStats::default(),
        }
    }

    /// Runs the timer ticks due at `now` (`_gcAuto`).
    pub fn advance(&mut self, now: Instant) {
        for _ in 0..self.ticker.due(now) {
            if !self.gced {
                self.stats.expired += self.oldest.len() as u64;
                self.gc();
            }
            self.gced = false;
        }
    }

    /// When the next timer tick falls due, if the cache has a timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ticker.next_deadline()
    }

    /// `set(k, v)`: a no-op for a retained key; otherwise into the fresh generation, and a
    /// collection once the fresh generation reaches `max_size`.
    pub fn set(&mut self, k: K, v: V) {
        if self.retained.contains_key(&k) {
            return;
        }
        self.oldest.remove(&k);
        self.latest.insert(k, v);
        if self.latest.len() >= self.max_size {
            self.stats.evicted += self.oldest.len() as u64;
            self.gc();
        }
    }

    /// `retain(k, v)`: kept until deleted, never collected.
    pub fn retain(&mut self, k: K, v: V) {
        if self.latest.remove(&k).is_none() {
            self.oldest.remove(&k);
        }
        self.retained.insert(k, v);
    }

    /// `delete(k)`: the removed value, if any.
    pub fn delete(&mut self, k: &K) -> Option<V> {
        self.latest
            .remove(k)
            .or_else(|| self.oldest.remove(k))
            .or_else(|| self.retained.remove(k))
    }

    /// `has(k)`.
    pub fn has(&self, k: &K) -> bool {
        self.latest.contains_key(k) || self.oldest.contains_key(k) || self.retained.contains_key(k)
    }

    /// `get(k)`: a stale entry moves back into the fresh generation when that has room (JS
    /// moves it always; see the module docs for why not here).
    pub fn get(&mut self, k: &K) -> Option<&V> {
        if !self.latest.contains_key(k)
            && self.latest.len() < self.max_size
            && let Some(v) = self.oldest.remove(k)
        {
            self.latest.insert(k.clone(), v);
        }
        self.latest
            .get(k)
            .or_else(|| self.oldest.get(k))
            .or_else(|| self.retained.get(k))
    }

    /// Entries in all generations (`size`).
    pub fn len(&self) -> usize {
        self.latest.len() + self.oldest.len() + self.retained.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(fresh, stale, retained)` sizes.
    pub fn generation_sizes(&self) -> (usize, usize, usize) {
        (self.latest.len(), self.oldest.len(), self.retained.len())
    }

    /// What the cache dropped so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The per-generation bound.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    fn gc(&mut self) {
        self.gced = true;
        self.oldest = std::mem::take(&mut self.latest);
    }
}

/// Longest peer record: key (32) + array length (1) + 3 relay addresses of 6 bytes. The store
/// cuts relay lists to 3 before encoding (`hyperdht/lib/persistent.js` `onannounce`).
pub const MAX_PEER_RECORD: usize = 32 + 1 + 3 * 6;

/// An encoded `peer` record (`hyperdht/lib/messages.js` `peer`) of at most
/// [`MAX_PEER_RECORD`] bytes, held inline so a stored record costs no allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord {
    len: u8,
    bytes: [u8; MAX_PEER_RECORD],
}

impl std::fmt::Debug for PeerRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PeerRecord").field(&self.as_bytes()).finish()
    }
}

impl PeerRecord {
    /// The record for `encoded` bytes that start with the 32-byte public key; `None` when they
    /// are shorter than a key or longer than [`MAX_PEER_RECORD`].
    pub fn new(encoded: &[u8]) -> Option<Self> {
        if encoded.len() < 32 || encoded.len() > MAX_PEER_RECORD {
            return None;
        }
        let mut bytes = [0u8; MAX_PEER_RECORD];
        bytes.get_mut(..encoded.len())?.copy_from_slice(encoded);
        Some(Self {
            len: u8::try_from(encoded.len()).ok()?,
            bytes,
        })
    }

    /// The encoded record.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Its public key (the first 32 bytes; `record.subarray(0, 32)` in JS).
    pub fn public_key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        if let Some(src) = self.bytes.get(..32) {
            k.copy_from_slice(src);
        }
        k
    }
}

/// Below this many records a topic finds a key by scanning its list; above, it keeps an index
/// (JS keeps a `Map` per topic always; the result is the same, the small case costs less memory).
const INDEX_FROM: usize = 8;

/// `RecordSet`: a topic's records in a list (order matters: `get` draws from it and swaps),
/// with a key → position index once the list is long.
#[derive(Debug, Clone, Default)]
struct RecordSet {
    list: Vec<PeerRecord>,
    /// Boxed so the many one-record topics carry one pointer, not an empty map's three words.
    #[allow(clippy::box_collection)] // the box is the point: a smaller `RecordSet`
    index: Option<Box<BTreeMap<[u8; 32], usize>>>,
}

impl RecordSet {
    fn position(&self, key: &[u8; 32]) -> Option<usize> {
        match &self.index {
            None => self.list.iter().position(|r| r.public_key() == *key),
            Some(index) => index.get(key).copied(),
        }
    }

    /// `RecordSet.add`: false (and the stored record kept as it is) when the key is present.
    fn add(&mut self, record: PeerRecord) -> bool {
        let key = record.public_key();
        if self.position(&key).is_some() {
            return false;
        }
        if self.list.is_empty() {
            self.list.reserve_exact(1);
        }
        self.list.push(record);
        if let Some(index) = &mut self.index {
            index.insert(key, self.list.len() - 1);
        } else if self.list.len() > INDEX_FROM {
            self.index = Some(Box::new(
                self.list
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.public_key(), i))
                    .collect(),
            ));
        }
        true
    }

    /// `RecordSet.remove`: swap with the last record, pop.
    fn remove(&mut self, key: &[u8; 32]) -> bool {
        let Some(i) = self.position(key) else {
            return false;
        };
        let last = self.list.len() - 1;
        self.swap(i, last);
        self.list.pop();
        if let Some(index) = &mut self.index {
            index.remove(key);
        }
        true
    }

    /// `swap(list, a, b)`, keeping the index in step.
    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.list.swap(a, b);
        if let Some(index) = &mut self.index {
            for i in [a, b] {
                if let Some(r) = self.list.get(i) {
                    index.insert(r.public_key(), i);
                }
            }
        }
    }
}

/// `RecordStore`: one generation.
#[derive(Debug, Clone, Default)]
struct RecordStore {
    sets: BTreeMap<[u8; 32], RecordSet>,
    size: usize,
}

impl RecordStore {
    fn add(&mut self, name: [u8; 32], record: PeerRecord) -> bool {
        let added = self.sets.entry(name).or_default().add(record);
        if added {
            self.size += 1;
        }
        added
    }

    fn remove(&mut self, name: &[u8; 32], key: &[u8; 32]) -> bool {
        let Some(set) = self.sets.get_mut(name) else {
            return false;
        };
        if !set.remove(key) {
            return false;
        }
        self.size -= 1;
        if set.list.is_empty() {
            self.sets.remove(name);
        }
        true
    }

    fn len_of(&self, name: &[u8; 32]) -> usize {
        self.sets.get(name).map_or(0, |s| s.list.len())
    }
}

/// `record-cache` `RecordCache`: per topic, a set of peer records keyed by public key, with
/// two-generation expiry.
#[derive(Debug, Clone)]
pub struct RecordCache {
    max_size: usize,
    fresh: RecordStore,
    stale: RecordStore,
    gced: bool,
    ticker: Ticker,
    stats: CacheStats,
}

impl RecordCache {
    /// A cache of `max_size` records per generation and `max_age` (zero: no timer), built at
    /// `now`.
    pub fn new(max_size: usize, max_age: Duration, now: Instant) -> Self {
        Self {
            max_size,
            fresh: RecordStore::default(),
            stale: RecordStore::default(),
            gced: false,
            ticker: Ticker::new(max_age, now),
            stats: CacheStats::default(),
        }
    }

    /// Runs the timer ticks due at `now` (`_gcAuto`).
    pub fn advance(&mut self, now: Instant) {
        for _ in 0..self.ticker.due(now) {
            if !self.gced {
                self.stats.expired += self.stale.size as u64;
                self.gc();
            }
            self.gced = false;
        }
    }

    /// When the next timer tick falls due, if the cache has a timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ticker.next_deadline()
    }

    /// `add(name, publicKey, record)`: out of the stale generation, into the fresh one (a
    /// record already fresh under that key stays as it was); a collection once the fresh
    /// generation holds more than `max_size` records.
    pub fn add(&mut self, name: [u8; 32], record: PeerRecord) {
        self.stale.remove(&name, &record.public_key());
        if self.fresh.add(name, record) && self.fresh.size > self.max_size {
            self.stats.evicted += self.stale.size as u64;
            self.gc();
        }
    }

    /// `remove(name, publicKey)` from both generations.
    pub fn remove(&mut self, name: &[u8; 32], key: &[u8; 32]) {
        self.fresh.remove(name, key);
        self.stale.remove(name, key);
    }

    /// `get(name, n)`: `n` records of `name` drawn at random without repetition (all of them,
    /// in random order, when `n` is 0 or above the count). Like JS, each draw swaps the drawn
    /// record to the end of the undrawn part of its list, so the lists' order changes.
    pub fn get(&mut self, name: &[u8; 32], n: usize, rng: &mut impl RngCore) -> Vec<PeerRecord> {
        let mut a_len = self.fresh.len_of(name);
        let mut b_len = self.stale.len_of(name);
        let len = a_len + b_len;
        let n = if n == 0 || n > len { len } else { n };
        let mut out = Vec::with_capacity(n);
        let mut fresh = self.fresh.sets.get_mut(name);
        let mut stale = self.stale.sets.get_mut(name);
        for _ in 0..n {
            // `Math.floor(Math.random() * (aLen + bLen))`
            let j = pick(rng, a_len + b_len);
            if j < a_len {
                if let Some(set) = fresh.as_deref_mut() {
                    out.extend(set.list.get(j).copied());
                    a_len -= 1;
                    set.swap(j, a_len);
                }
            } else if let Some(set) = stale.as_deref_mut() {
                let j = j - a_len;
                out.extend(set.list.get(j).copied());
                b_len -= 1;
                set.swap(j, b_len);
            }
        }
        out
    }

    /// Records in both generations (`size`).
    pub fn len(&self) -> usize {
        self.fresh.size + self.stale.size
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(fresh, stale)` record counts.
    pub fn generation_sizes(&self) -> (usize, usize) {
        (self.fresh.size, self.stale.size)
    }

    /// Topics with at least one record, over both generations (a topic in both counts twice).
    pub fn topic_entries(&self) -> usize {
        self.fresh.sets.len() + self.stale.sets.len()
    }

    /// Whether `name` holds a record for `key`.
    pub fn contains(&self, name: &[u8; 32], key: &[u8; 32]) -> bool {
        let has = |s: &RecordStore| s.sets.get(name).is_some_and(|r| r.position(key).is_some());
        has(&self.fresh) || has(&self.stale)
    }

    /// What the cache dropped so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The per-generation bound.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    fn gc(&mut self) {
        self.stale = std::mem::take(&mut self.fresh);
        self.gced = true;
    }
}

/// A uniform index below `n` (`n > 0`) from 32 random bits, by multiply-and-shift.
fn pick(rng: &mut impl RngCore, n: usize) -> usize {
    let r = u64::from(rng.next_u32());
    usize::try_from((r * n as u64) >> 32).unwrap_or(0)
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
