//! Deterministic scenarios for the swarm core, mirroring the behaviour of JS
//! `hyperswarm/index.js` and `lib/*` (the package ships no tests; the expectations are read
//! from its source). Retry timers and priorities are in `tests/retry.rs`, the duplicate rule
//! in `tests/dedup.rs`, random event sequences in `tests/prop.rs`.

use std::time::{Duration, Instant};

use crate::connect::State;
use crate::*;

mod dedup;
mod prop;
mod retry;

pub(crate) fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

pub(crate) fn topic(n: u8) -> Topic {
    Topic([n; 32])
}

pub(crate) fn core_with(n: u8, f: impl FnOnce(&mut Options)) -> SwarmCore {
    let mut o = Options::new(key(n));
    o.seed = u64::from(n) * 7919;
    f(&mut o);
    SwarmCore::new(o)
}

pub(crate) fn core(n: u8) -> SwarmCore {
    core_with(n, |_| {})
}

pub(crate) fn actions(c: &mut SwarmCore) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

pub(crate) fn events(c: &mut SwarmCore) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

pub(crate) fn dials(acts: &[Action]) -> Vec<(ConnId, PublicKey)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Dial { conn, remote, .. } => Some((*conn, *remote)),
            _ => None,
        })
        .collect()
}

pub(crate) fn lookup_of(acts: &[Action]) -> Option<RefreshId> {
    acts.iter().find_map(|a| match a {
        Action::Lookup { refresh, .. } | Action::Announce { refresh, .. } => Some(*refresh),
        _ => None,
    })
}

pub(crate) fn record(n: u8) -> PeerRecord {
    PeerRecord {
        public_key: key(n),
        relay_addresses: Vec::new(),
    }
}

pub(crate) fn client_only() -> JoinOptions {
    JoinOptions {
        server: false,
        client: true,
        limit: None,
    }
}

/// The core's own consistency, checked after every step of the random sequences.
pub(crate) fn check_invariants(c: &SwarmCore) -> Result<(), String> {
    let dialing = c
        .conns
        .values()
        .filter(|x| x.client && matches!(x.state, State::Checking | State::Dialing))
        .count();
    let pending_client = c
        .conns
        .values()
        .filter(|x| x.client && matches!(x.state, State::Checking | State::Dialing))
        .count()
        + c.conns
            .values()
            .filter(|x| x.client && x.state == (State::Closing { was_open: false }))
            .count();
    if dialing > c.opts.max_parallel || c.connecting > c.opts.max_parallel {
        return Err(format!("{dialing} dials, connecting {}", c.connecting));
    }
    if c.connecting != pending_client {
        return Err(format!("connecting {} != {pending_client}", c.connecting));
    }
    let mut open_per_key = std::collections::HashMap::new();
    for x in c.conns.values().filter(|x| x.state == State::Open) {
        *open_per_key.entry(x.remote).or_insert(0) += 1;
    }
    if let Some((k, n)) = open_per_key.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{n} open connections to {k:?}"));
    }
    let open = c
        .conns
        .values()
        .filter(|x| matches!(x.state, State::Open | State::Closing { was_open: true }))
        .count();
    if open != c.open {
        return Err(format!("open {} != {open}", c.open));
    }
    for (k, id) in &c.by_key {
        match c.conns.get(id) {
            Some(x) if x.remote == *k => {}
            _ => return Err(format!("by_key {k:?} -> {id:?} dangling")),
        }
    }
    if c.peers.contains_key(&c.opts.public_key) {
        return Err("own key in peers".into());
    }
    if c.peers.len() > MAX_KNOWN_PEERS || c.queue.len() > c.peers.len() {
        return Err("peer tables over bounds".into());
    }
    if c.timer.len() > c.peers.len() + c.by_key.len() {
        return Err(format!("retry timers hold {}", c.timer.len()));
    }
    if c.discoveries.len() > MAX_TOPICS {
        return Err("too many topics".into());
    }
    Ok(())
}

/// Runs the core's timers up to `until`, returning the dials it made and when.
pub(crate) fn run_until(
    c: &mut SwarmCore,
    now: &mut Instant,
    until: Instant,
) -> Vec<(Instant, ConnId)> {
    let mut out = Vec::new();
    while let Some(t) = c.poll_timeout() {
        if t > until {
            break;
        }
        *now = (*now).max(t);
        c.handle_timeout(*now);
        for (id, _) in dials(&actions(c)) {
            out.push((*now, id));
        }
    }
    *now = until;
    out
}

#[test]
fn at_most_max_parallel_dials_and_the_rest_follow_as_dials_end() {
    let now = Instant::now();
    let mut c = core(1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    let recs: Vec<PeerRecord> = (10..20).map(record).collect();
    c.handle_lookup_peers(now, topic(1), r, &recs);
    let first = dials(&actions(&mut c));
    assert_eq!(first.len(), MAX_PARALLEL);
    assert_eq!(c.queued(), 10 - MAX_PARALLEL);
    c.handle_opened(now, first[0].0);
    let next = dials(&actions(&mut c));
    assert_eq!(next.len(), 1, "one slot freed, one dial");
    assert!(matches!(events(&mut c).as_slice(), [Event::Connection { peer, .. }] if peer.client));
}

#[test]
fn own_key_is_never_dialled_and_refused_inbound() {
    let now = Instant::now();
    let mut c = core(1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(1)]);
    c.join_peer(now, key(1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(dials(&actions(&mut c)).is_empty());
    assert!(c.handle_inbound_firewall(key(1), false));
    let id = c.handle_incoming(now, key(1));
    assert!(actions(&mut c).contains(&Action::Close {
        conn: id,
        reason: CloseReason::Firewalled
    }));
    assert_eq!(c.connection_count(), 0);
}

#[test]
fn firewall_refusal_bans_and_the_peer_is_never_dialled_again() {
    let now = Instant::now();
    let mut c = core_with(1, |o| o.firewall_outgoing = true);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2), record(3)]);
    let acts = actions(&mut c);
    assert!(dials(&acts).is_empty(), "no dial before the verdict");
    let checks: Vec<(ConnId, PublicKey)> = acts
        .iter()
        .filter_map(|a| match a {
            Action::CheckFirewall { conn, remote } => Some((*conn, *remote)),
            _ => None,
        })
        .collect();
    assert_eq!(checks.len(), 2);
    let (refused, refused_key) = checks[0];
    c.handle_firewall_verdict(now, refused, true);
    c.handle_firewall_verdict(now, checks[1].0, false);
    let d = dials(&actions(&mut c));
    assert_eq!(d.len(), 1);
    assert_ne!(d[0].1, refused_key);
    assert!(events(&mut c).contains(&Event::Ban {
        remote: refused_key,
        reason: CloseReason::Firewalled
    }));
    assert!(c.peer(&refused_key).is_some_and(|p| p.banned));
    // Found again by the next refresh: still never dialled; inbound refused.
    c.handle_refresh_done(now, topic(1), r);
    c.handle_network_change(now);
    let r2 = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(
        now,
        topic(1),
        r2,
        &[PeerRecord {
            public_key: refused_key,
            relay_addresses: Vec::new(),
        }],
    );
    assert!(
        actions(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::CheckFirewall { .. }))
    );
    assert!(c.handle_inbound_firewall(refused_key, false));
}

#[test]
fn inbound_firewall_refusal_bans() {
    let now = Instant::now();
    let mut c = core(1);
    assert!(!c.handle_inbound_firewall(key(5), false));
    assert!(c.handle_inbound_firewall(key(5), true));
    assert!(c.peer(&key(5)).is_some_and(|p| p.banned));
    c.join_peer(now, key(5)).unwrap_or_else(|e| panic!("{e}"));
    assert!(dials(&actions(&mut c)).is_empty());
}

#[test]
fn holepunch_failures_force_the_relay_and_keep_attempts_low() {
    let t0 = Instant::now();
    let mut now = t0;
    let relay = key(77);
    let mut c = core_with(1, |o| o.relay_through = Some(relay));
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2)]);
    let acts = actions(&mut c);
    assert!(matches!(
        &acts[..],
        [Action::Dial {
            relay_through: None,
            ..
        }]
    ));
    let mut conn = dials(&acts)[0].0;
    for _ in 0..3 {
        // JS `onerror`: `forceRelaying = true; attempts = 0`, then the close counts one.
        c.handle_closed(now, conn, Some(ConnError::HolepunchDoubleRandomizedNats));
        assert_eq!(c.peer(&key(2)).map(|p| p.attempts), Some(1));
        let failed_at = now;
        let redial = loop {
            let t = c.poll_timeout().unwrap_or_else(|| panic!("no retry"));
            now = t;
            c.handle_timeout(now);
            let acts = actions(&mut c);
            if let Some(a) = acts.into_iter().find(|a| matches!(a, Action::Dial { .. })) {
                break a;
            }
        };
        // Attempts stay at 1, so the M timer every time (a plain failure climbs to L).
        assert!(now - failed_at <= c.retry_tick_interval(Backoff::M) * 2);
        match redial {
            Action::Dial {
                conn: id,
                relay_through,
                ..
            } => {
                assert_eq!(
                    relay_through,
                    Some(relay),
                    "the redial goes through the relay"
                );
                conn = id;
            }
            other => panic!("{other:?}"),
        }
    }
    // Without a relay configured the same errors change nothing.
    let mut plain = core(1);
    plain
        .join_peer(now, key(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = dials(&actions(&mut plain))[0].0;
    plain.handle_closed(now, id, Some(ConnError::CannotHolepunch));
    let until = now + Duration::from_secs(60);
    let got = run_until(&mut plain, &mut now, until);
    assert_eq!(got.len(), 1);
    plain.handle_closed(now, got[0].1, Some(ConnError::CannotHolepunch));
    assert_eq!(plain.peer(&key(2)).map(|p| p.attempts), Some(2));
}

#[test]
fn relay_is_used_on_forced_peers_and_randomized_nats_only() {
    let now = Instant::now();
    let relay = key(77);
    let mut c = core_with(1, |o| o.relay_through = Some(relay));
    c.set_randomized_nat(true);
    c.join_peer(now, key(2)).unwrap_or_else(|e| panic!("{e}"));
    let acts = actions(&mut c);
    assert!(matches!(&acts[..], [Action::Dial { relay_through: Some(k), .. }] if *k == relay));
    let mut plain = core(1);
    plain.set_randomized_nat(true);
    plain
        .join_peer(now, key(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let acts = actions(&mut plain);
    assert!(matches!(
        &acts[..],
        [Action::Dial {
            relay_through: None,
            ..
        }]
    ));
}

#[test]
fn flush_waits_for_the_walk_then_for_the_dials_it_queued() {
    let now = Instant::now();
    let mut c = core(1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    let f = c.flush(now).unwrap_or_else(|e| panic!("{e}"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2), record(3)]);
    let d = dials(&actions(&mut c));
    assert!(events(&mut c).is_empty(), "walk still running");
    c.handle_refresh_done(now, topic(1), r);
    assert!(events(&mut c).is_empty(), "dials still pending");
    c.handle_opened(now, d[0].0);
    assert!(
        !events(&mut c)
            .iter()
            .any(|e| matches!(e, Event::Flushed { .. }))
    );
    c.handle_closed(now, d[1].0, Some(ConnError::Other));
    assert!(events(&mut c).contains(&Event::Flushed { flush: f, ok: true }));
    // Nothing to wait for: a flush settles at once.
    let f2 = c.flush(now).unwrap_or_else(|e| panic!("{e}"));
    assert!(events(&mut c).contains(&Event::Flushed {
        flush: f2,
        ok: true
    }));
}

#[test]
fn destroy_settles_pending_flushes_with_false_and_closes_everything() {
    let now = Instant::now();
    let mut c = core(1);
    c.join(now, topic(1), JoinOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(actions(&mut c), vec![Action::Listen]);
    c.handle_listening(now);
    let acts = actions(&mut c);
    let r = match acts.as_slice() {
        [
            Action::Announce {
                refresh,
                clear: true,
                ..
            },
        ] => *refresh,
        other => panic!("{other:?}"),
    };
    let inc = c.handle_incoming(now, key(4));
    let f = c.flush(now).unwrap_or_else(|e| panic!("{e}"));
    c.destroy(now);
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::CancelQuery {
        topic: topic(1),
        refresh: r
    }));
    assert!(acts.contains(&Action::Unannounce { topic: topic(1) }));
    assert!(acts.contains(&Action::CloseServer));
    assert!(acts.contains(&Action::Close {
        conn: inc,
        reason: CloseReason::Destroyed
    }));
    assert!(events(&mut c).contains(&Event::Flushed {
        flush: f,
        ok: false
    }));
    assert_eq!(
        c.join(now, topic(1), JoinOptions::default()),
        Err(SwarmError::Destroyed)
    );
}

#[test]
fn leave_stops_dialling_and_unannounces() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = core(1);
    let s = c
        .join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2)]);
    let conn = dials(&actions(&mut c))[0].0;
    c.leave_session(now, s).unwrap_or_else(|e| panic!("{e}"));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::CancelQuery {
        topic: topic(1),
        refresh: r
    }));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Unannounce { .. })),
        "never announced"
    );
    c.handle_closed(now, conn, Some(ConnError::Other));
    assert!(run_until(&mut c, &mut now, t0 + Duration::from_secs(3600)).is_empty());
    assert_eq!(c.peer_count(), 0, "the peer is forgotten");
    assert!(c.poll_timeout().is_none());

    // A server topic left sends the unannounce.
    let mut c = core(1);
    c.join(now, topic(1), JoinOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    c.handle_listening(now);
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no announce"));
    c.handle_refresh_done(now, topic(1), r);
    c.leave(now, topic(1));
    assert_eq!(
        actions(&mut c),
        vec![Action::Unannounce { topic: topic(1) }]
    );
}

#[test]
fn refresh_every_ten_minutes_plus_jitter_and_on_network_change() {
    let t0 = Instant::now();
    let mut c = core(1);
    c.join(t0, topic(1), JoinOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    c.handle_listening(t0);
    let acts = actions(&mut c);
    assert!(matches!(
        acts.as_slice(),
        [Action::Listen, Action::Announce { clear: true, .. }]
    ));
    let r = lookup_of(&acts).unwrap_or_else(|| panic!("no announce"));
    c.handle_refresh_done(t0, topic(1), r);
    let next = c
        .poll_timeout()
        .unwrap_or_else(|| panic!("no refresh scheduled"));
    assert!(next - t0 >= Duration::from_secs(600) && next - t0 <= Duration::from_secs(720));
    c.handle_timeout(next);
    let acts = actions(&mut c);
    assert!(
        matches!(acts.as_slice(), [Action::Announce { clear: false, .. }]),
        "{acts:?}"
    );
    // Overslept by more than the grace period: reschedule with jitter only.
    let r = lookup_of(&acts).unwrap_or_else(|| panic!("no announce"));
    c.handle_refresh_done(next, topic(1), r);
    let due = c
        .poll_timeout()
        .unwrap_or_else(|| panic!("no refresh scheduled"));
    let late = due + Duration::from_secs(3600);
    c.handle_timeout(late);
    assert!(actions(&mut c).is_empty());
    let again = c
        .poll_timeout()
        .unwrap_or_else(|| panic!("no refresh scheduled"));
    assert!(again - late <= Duration::from_secs(120));
    // Network change: keepalives and a refresh now.
    let inc = c.handle_incoming(late, key(9));
    c.handle_network_change(late);
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::SendKeepAlive { conn: inc }));
    assert!(acts.iter().any(|a| matches!(a, Action::Announce { .. })));
}

#[test]
fn switching_a_topic_to_client_only_looks_up_and_unannounces() {
    let now = Instant::now();
    let mut c = core(1);
    let server = c
        .join(
            now,
            topic(1),
            JoinOptions {
                server: true,
                client: false,
                limit: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    c.handle_listening(now);
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no announce"));
    c.handle_refresh_done(now, topic(1), r);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r2 = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no walk"));
    c.handle_refresh_done(now, topic(1), r2);
    c.leave_session(now, server)
        .unwrap_or_else(|e| panic!("{e}"));
    let acts = actions(&mut c);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Lookup {
                unannounce: true,
                ..
            }]
        ),
        "{acts:?}"
    );
}

#[test]
fn limit_caps_the_peers_one_walk_hands_over() {
    let now = Instant::now();
    let mut c = core_with(1, |o| o.max_parallel = 100);
    c.join(
        now,
        topic(1),
        JoinOptions {
            server: false,
            client: true,
            limit: Some(2),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    let recs: Vec<PeerRecord> = (10..20).map(record).collect();
    c.handle_lookup_peers(now, topic(1), r, &recs);
    assert_eq!(dials(&actions(&mut c)).len(), 2);
}

#[test]
fn explicit_peers_shrink_the_connection_budget() {
    let now = Instant::now();
    let mut c = core_with(1, |o| {
        o.max_peers = 4;
        o.max_parallel = 100;
    });
    for n in 10..14 {
        c.join_peer(now, key(n)).unwrap_or_else(|e| panic!("{e}"));
    }
    // 4 explicit peers: factor 4, so the queue stops once 1 connection exists; the explicit
    // loop itself ignores maxPeers (JS `_shouldConnectExplicit`).
    assert_eq!(dials(&actions(&mut c)).len(), 4);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(50)]);
    assert!(dials(&actions(&mut c)).is_empty());
}

#[test]
fn flush_settles_at_once_when_the_swarm_is_at_its_limits() {
    let now = Instant::now();
    let mut c = core_with(1, |o| o.max_peers = 1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2), record(3)]);
    let d = dials(&actions(&mut c));
    assert_eq!(d.len(), 1, "max_peers 1: one connection at a time");
    c.handle_opened(now, d[0].0);
    c.handle_refresh_done(now, topic(1), r);
    let f = c.flush(now).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.queued(), 1, "a peer still queued");
    assert!(events(&mut c).contains(&Event::Flushed { flush: f, ok: true }));
}

#[test]
fn a_session_flush_waits_for_listening_and_its_topic_walk_only() {
    let now = Instant::now();
    let mut c = core(1);
    let busy = c
        .join(now, topic(2), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let s = c
        .join(now, topic(1), JoinOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let busy_walk = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    let f = c.session_flushed(now, s).unwrap_or_else(|e| panic!("{e}"));
    assert!(events(&mut c).is_empty(), "not listening yet");
    c.handle_listening(now);
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no announce"));
    assert!(events(&mut c).is_empty(), "announce running");
    c.handle_refresh_done(now, topic(1), r);
    assert_eq!(events(&mut c), vec![Event::Flushed { flush: f, ok: true }]);
    // The other topic's walk is still running: its own flush waits.
    let g = c
        .session_flushed(now, busy)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(events(&mut c).is_empty());
    c.handle_refresh_done(now, topic(2), busy_walk);
    assert_eq!(events(&mut c), vec![Event::Flushed { flush: g, ok: true }]);
}

#[test]
fn update_session_switches_the_mode() {
    let now = Instant::now();
    let mut c = core(1);
    let s = c
        .join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    let both = JoinOptions::default();
    c.update_session(now, s, both)
        .unwrap_or_else(|e| panic!("{e}"));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::CancelQuery {
        topic: topic(1),
        refresh: r
    }));
    assert!(acts.contains(&Action::Listen));
    let neither = JoinOptions {
        server: false,
        client: false,
        limit: None,
    };
    assert_eq!(
        c.update_session(now, s, neither),
        Err(SwarmError::NeitherClientNorServer)
    );
    assert_eq!(
        c.update_session(now, SessionId(9999), both),
        Err(SwarmError::UnknownSession)
    );
}

#[test]
fn a_failed_lookup_still_owes_its_unannounce() {
    let now = Instant::now();
    let mut c = core(1);
    let server = c
        .join(
            now,
            topic(1),
            JoinOptions {
                server: true,
                client: false,
                limit: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    c.handle_listening(now);
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no announce"));
    c.handle_refresh_done(now, topic(1), r);
    c.leave_session(now, server)
        .unwrap_or_else(|e| panic!("{e}"));
    let acts = actions(&mut c);
    assert!(matches!(
        acts.as_slice(),
        [Action::Lookup {
            unannounce: true,
            ..
        }]
    ));
    let r = lookup_of(&acts).unwrap_or_else(|| panic!("no lookup"));
    c.handle_refresh_failed(now, topic(1), r);
    let due = c
        .poll_timeout()
        .unwrap_or_else(|| panic!("no refresh scheduled"));
    c.handle_timeout(due);
    let acts = actions(&mut c);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Lookup {
                unannounce: true,
                ..
            }]
        ),
        "{acts:?}"
    );
    let r = lookup_of(&acts).unwrap_or_else(|| panic!("no lookup"));
    c.handle_refresh_done(due, topic(1), r);
    c.handle_network_change(due);
    let acts = actions(&mut c);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Lookup {
                unannounce: false,
                ..
            }]
        ),
        "{acts:?}"
    );
}

#[test]
fn suspend_closes_everything_and_resume_walks_and_dials_again() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = core(1);
    c.join(now, topic(1), JoinOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    c.handle_listening(now);
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no announce"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2)]);
    let d = dials(&actions(&mut c));
    c.handle_opened(now, d[0].0);
    let inc = c.handle_incoming(now, key(3));
    c.suspend(now);
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::Suspend));
    assert!(acts.contains(&Action::CancelQuery {
        topic: topic(1),
        refresh: r
    }));
    assert!(acts.contains(&Action::Unannounce { topic: topic(1) }));
    for conn in [d[0].0, inc] {
        assert!(acts.contains(&Action::Close {
            conn,
            reason: CloseReason::Suspended
        }));
        c.handle_closed(now, conn, None);
    }
    // Suspended: no retries, no walks, incoming refused.
    let until = now + Duration::from_secs(3600);
    assert!(run_until(&mut c, &mut now, until).is_empty());
    let late = c.handle_incoming(now, key(4));
    assert!(actions(&mut c).contains(&Action::Close {
        conn: late,
        reason: CloseReason::Suspended
    }));
    c.handle_closed(now, late, None);
    c.resume(now);
    let acts = actions(&mut c);
    assert_eq!(acts.first(), Some(&Action::Resume));
    let r2 = lookup_of(&acts).unwrap_or_else(|| panic!("no walk after resume"));
    c.handle_lookup_peers(now, topic(1), r2, &[record(2)]);
    assert_eq!(
        dials(&actions(&mut c)).len(),
        1,
        "found again, dialled again"
    );
    check_invariants(&c).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_flush_waiting_on_a_walk_settles_when_the_topic_is_left_or_the_walk_replaced() {
    let now = Instant::now();
    let mut c = core(1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = actions(&mut c);
    let f = c.flush(now).unwrap_or_else(|e| panic!("{e}"));
    assert!(events(&mut c).is_empty());
    c.leave(now, topic(1));
    assert!(events(&mut c).contains(&Event::Flushed { flush: f, ok: true }));

    // A change of mode cancels the walk the flush waited on (JS: the destroyed query ends).
    let s = c
        .join(now, topic(2), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = actions(&mut c);
    let g = c.session_flushed(now, s).unwrap_or_else(|e| panic!("{e}"));
    c.handle_listening(now);
    c.update_session(now, s, JoinOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(events(&mut c).contains(&Event::Flushed { flush: g, ok: true }));
}
