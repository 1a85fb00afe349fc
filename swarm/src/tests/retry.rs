//! Retry timers and priorities (JS `hyperswarm/lib/retry-timer.js`, `lib/bulk-timer.js`,
//! `lib/peer-info.js`, `shuffled-priority-queue`): which timer a peer goes to, the periods'
//! jitter, the real delays, and how priorities order the queue.

use std::time::{Duration, Instant};

use super::{
    actions, client_only, core, core_with, dials, key, lookup_of, record, run_until, topic,
};
use crate::peer::{
    BACKOFF_L_MS, BACKOFF_M_MS, BACKOFF_S_MS, BACKOFF_X_MS, HIGH_PRIORITY, LOW_PRIORITY,
    NORMAL_PRIORITY, PeerQueue, VERY_HIGH_PRIORITY, VERY_LOW_PRIORITY,
};
use crate::types::Rng;
use crate::*;

#[test]
fn retry_timer_choice_matches_js_select_retry_timer() {
    let mut p = PeerInfo::new(key(1), Vec::new());
    let table = [
        // attempts, proven, explicit -> timer
        (0, false, false, Some(Backoff::S)),
        (1, false, false, Some(Backoff::M)),
        (2, false, false, Some(Backoff::L)),
        (3, false, false, Some(Backoff::L)),
        (4, false, false, None),
        (0, true, false, Some(Backoff::S)),
        (1, true, false, Some(Backoff::S)),
        (2, true, false, Some(Backoff::M)),
        (3, true, false, Some(Backoff::L)),
        (4, true, true, Some(Backoff::X)),
        (9, false, true, Some(Backoff::X)),
    ];
    for (attempts, proven, explicit, want) in table {
        p.attempts = attempts;
        p.proven = proven;
        p.explicit = explicit;
        assert_eq!(select_backoff(&p), want, "{attempts} {proven} {explicit}");
    }
    p.attempts = 1;
    p.banned = true;
    assert_eq!(select_backoff(&p), None);
    p.banned = false;
    p.reconnecting = false;
    assert_eq!(select_backoff(&p), None);
}

#[test]
fn priorities_match_js_get_priority_and_queue_takes_highest_first() {
    let mut p = PeerInfo::new(key(1), Vec::new());
    let want = [
        NORMAL_PRIORITY,
        VERY_HIGH_PRIORITY,
        HIGH_PRIORITY,
        LOW_PRIORITY,
        VERY_LOW_PRIORITY,
    ];
    for (attempts, want) in want.into_iter().enumerate() {
        p.attempts = attempts as u32;
        assert_eq!(p.compute_priority(), want);
    }
    p.attempts = 0;
    p.tried = true;
    assert_eq!(
        p.compute_priority(),
        VERY_LOW_PRIORITY,
        "tried, never proven"
    );

    // Highest bucket first; random among equals: over many seeds both equals come first.
    let mut firsts = std::collections::HashSet::new();
    for seed in 0..64 {
        let mut rng = Rng::new(seed);
        let mut q = PeerQueue::default();
        q.add(key(1), LOW_PRIORITY);
        q.add(key(2), VERY_HIGH_PRIORITY);
        q.add(key(3), NORMAL_PRIORITY);
        q.add(key(4), VERY_HIGH_PRIORITY);
        let first = q.shift(&mut rng);
        firsts.insert(first);
        let second = q.shift(&mut rng);
        assert!(matches!(first, Some(k) if k == key(2) || k == key(4)));
        assert!(matches!(second, Some(k) if k == key(2) || k == key(4)));
        assert_eq!(q.shift(&mut rng), Some(key(3)));
        assert_eq!(q.shift(&mut rng), Some(key(1)));
        assert_eq!(q.shift(&mut rng), None);
    }
    assert_eq!(firsts.len(), 2, "equal priorities are shuffled");
}

#[test]
fn retry_periods_carry_js_jitter_fixed_per_core() {
    for seed in 0..32 {
        let c = core_with(1, |o| o.seed = seed);
        for (b, base, extra) in [
            (Backoff::S, BACKOFF_S_MS, 1000),
            (Backoff::M, BACKOFF_M_MS, 1500),
            (Backoff::L, BACKOFF_L_MS, 2500),
            (Backoff::X, BACKOFF_X_MS, 120_500),
        ] {
            let i = c.retry_tick_interval(b).as_millis() as u64;
            assert!(
                i >= base * 66 / 100 && i <= (base + extra) * 66 / 100,
                "{b:?} {i}"
            );
        }
    }
}

#[test]
fn failed_dials_back_off_m_l_l_then_stop_for_a_discovered_peer() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = core(1);
    let s = c
        .join(now, topic(9), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(9), r, &[record(2)]);
    let d = dials(&actions(&mut c));
    assert_eq!(d.len(), 1);
    let mut conn = d[0].0;
    let mut delays = Vec::new();
    for expected in [Backoff::M, Backoff::L, Backoff::L] {
        let failed_at = now;
        c.handle_closed(now, conn, Some(ConnError::Other));
        assert!(dials(&actions(&mut c)).is_empty(), "no immediate redial");
        let got = run_until(&mut c, &mut now, failed_at + Duration::from_secs(60));
        assert_eq!(got.len(), 1, "one redial per failure");
        let delay = got[0].0 - failed_at;
        let tick = c.retry_tick_interval(expected);
        assert!(
            delay >= tick && delay <= tick * 2,
            "{expected:?}: {delay:?} vs {tick:?}"
        );
        delays.push(delay);
        now = got[0].0;
        conn = got[0].1;
    }
    // Fourth failure: attempts > 3 and not explicit, dropped (JS `_selectRetryTimer` null).
    c.handle_closed(now, conn, Some(ConnError::Other));
    let until = now + Duration::from_secs(3600);
    assert!(run_until(&mut c, &mut now, until).is_empty());
    assert!(delays[0] >= Duration::from_millis(3300) && delays[0] <= Duration::from_millis(8580));
    assert!(delays[1] >= Duration::from_millis(9900) && delays[1] <= Duration::from_millis(22_440));
    let _ = s;
}

#[test]
fn explicit_peer_goes_to_the_x_timer_after_four_failures() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = core(1);
    c.join_peer(now, key(2)).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = dials(&actions(&mut c))[0].0;
    let mut attempts = 1;
    // Failures 1-3 come back within a minute (explicit peers also retry from the
    // `_attemptClientConnections` loop once `attempts` seconds have passed).
    for _ in 0..3 {
        c.handle_closed(now, conn, None);
        let until = now + Duration::from_secs(60);
        let got = run_until(&mut c, &mut now, until);
        assert!(!got.is_empty());
        conn = got[0].1;
        now = got[0].0;
        attempts += 1;
    }
    assert_eq!(attempts, 4);
    c.handle_closed(now, conn, None);
    let failed_at = now;
    let got = run_until(&mut c, &mut now, failed_at + Duration::from_secs(30 * 60));
    assert!(!got.is_empty(), "explicit peers keep being retried");
    let delay = got[0].0 - failed_at;
    assert!(delay >= c.retry_tick_interval(Backoff::X), "{delay:?}");
}

#[test]
fn a_connection_that_lived_fifteen_seconds_retries_fast() {
    let t0 = Instant::now();
    for (lived, want) in [
        (Duration::from_secs(20), Backoff::S),
        (Duration::from_secs(1), Backoff::M),
    ] {
        let mut now = t0;
        let mut c = core(1);
        c.join(now, topic(1), client_only())
            .unwrap_or_else(|e| panic!("{e}"));
        let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
        c.handle_lookup_peers(now, topic(1), r, &[record(2)]);
        let mut conn = dials(&actions(&mut c))[0].0;
        // Two connections, each living `lived`: short ones climb to attempts 2 (proven: M).
        for round in 0..2 {
            c.handle_opened(now, conn);
            now += lived;
            c.handle_closed(now, conn, None);
            let p = c.peer(&key(2)).unwrap_or_else(|| panic!("peer gone"));
            let expect = if lived >= Duration::from_secs(15) {
                1
            } else {
                round + 1
            };
            assert_eq!(p.attempts, expect);
            let closed_at = now;
            let until = now + Duration::from_secs(60);
            let got = run_until(&mut c, &mut now, until);
            assert_eq!(got.len(), 1);
            if round == 1 {
                let tick = c.retry_tick_interval(want);
                let delay = got[0].0 - closed_at;
                assert!(delay >= tick && delay <= tick * 2, "{want:?} {delay:?}");
            }
            now = got[0].0;
            conn = got[0].1;
        }
    }
}

#[test]
fn a_dropped_peer_found_again_is_reset_and_dialled() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = core(1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2)]);
    let mut conn = dials(&actions(&mut c))[0].0;
    for _ in 0..3 {
        c.handle_closed(now, conn, None);
        let until = now + Duration::from_secs(60);
        conn = run_until(&mut c, &mut now, until)[0].1;
    }
    c.handle_closed(now, conn, None);
    let until = now + Duration::from_secs(3600);
    assert!(
        run_until(&mut c, &mut now, until).is_empty(),
        "dropped after 4 failures"
    );
    // JS `_handlePeer`: a rediscovered low-priority peer is reset and queued again.
    c.handle_refresh_done(now, topic(1), r);
    c.handle_network_change(now);
    let r2 = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r2, &[record(2)]);
    assert_eq!(dials(&actions(&mut c)).len(), 1);
    assert_eq!(c.peer(&key(2)).map(|p| p.attempts), Some(0));
}

#[test]
fn backoffs_and_jitter_options_replace_js_defaults() {
    let c = core_with(1, |o| {
        o.backoffs_ms = Some([100, 200, 300, 400]);
        o.backoff_jitter_ms = 0;
    });
    for (b, ms) in [
        (Backoff::S, 66),
        (Backoff::M, 132),
        (Backoff::L, 198),
        (Backoff::X, 264),
    ] {
        assert_eq!(c.retry_tick_interval(b), Duration::from_millis(ms));
    }
    let c = core_with(1, |o| {
        o.backoffs_ms = Some([100, 200, 300, 400]);
        o.backoff_jitter_ms = 50;
    });
    let s = c.retry_tick_interval(Backoff::S).as_millis();
    assert!((66..=99).contains(&s), "{s}");
}

#[test]
fn stats_count_like_js() {
    let now = Instant::now();
    let mut c = core(1);
    c.join_peer(now, key(2)).unwrap_or_else(|e| panic!("{e}"));
    let d = dials(&actions(&mut c));
    c.handle_opened(now, d[0].0);
    c.handle_closed(now, d[0].0, None);
    let inc = c.handle_incoming(now, key(3));
    c.handle_closed(now, inc, None);
    c.handle_inbound_firewall(key(4), true);
    let st = c.stats();
    assert_eq!(
        (st.client_attempted, st.client_opened, st.client_closed),
        (1, 1, 1)
    );
    assert_eq!(
        (st.server_opened, st.server_closed, st.banned_peers),
        (1, 1, 1)
    );
}

#[test]
fn a_retried_peer_is_dialled_before_fresh_ones() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = core_with(1, |o| o.max_parallel = 1);
    c.join(now, topic(1), client_only())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lookup_of(&actions(&mut c)).unwrap_or_else(|| panic!("no lookup"));
    c.handle_lookup_peers(now, topic(1), r, &[record(2), record(3), record(4)]);
    let first = dials(&actions(&mut c));
    assert_eq!(first.len(), 1);
    let (x_conn, x) = first[0];
    // X fails: it waits in the M timer while the next fresh peer Y is dialled and hangs.
    c.handle_closed(now, x_conn, None);
    let second = dials(&actions(&mut c));
    assert_eq!(second.len(), 1);
    let (y_conn, y) = second[0];
    assert_ne!(y, x);
    let until = now + Duration::from_secs(30);
    assert!(
        run_until(&mut c, &mut now, until).is_empty(),
        "the slot is taken"
    );
    assert_eq!(c.queued(), 2, "X (very high) and Z (normal) queued");
    // Y opens: the freed slot goes to X, attempts 1 = VERY_HIGH, before the fresh Z.
    c.handle_opened(now, y_conn);
    let third = dials(&actions(&mut c));
    assert_eq!(third.iter().map(|d| d.1).collect::<Vec<_>>(), vec![x]);
    assert_eq!(c.peer(&x).map(|p| p.priority), Some(VERY_HIGH_PRIORITY));
}
