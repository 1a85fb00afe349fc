//! The request table on its own: ids, timers, the congestion queue.

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::net::Ipv4Addr;

use rand_core::SeedableRng;

use super::*;

fn addr(i: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 10_000 + i)
}

fn table(max_window: u32) -> Requests {
    Requests::new(ChaCha20Rng::from_seed([5; 32]), max_window, 8192)
}

fn ping(owner: Owner) -> NewRequest {
    NewRequest {
        req: Request {
            tid: 0,
            to: addr(0),
            id: None,
            token: None,
            internal: true,
            command: 0,
            target: None,
            value: None,
        },
        to_id: None,
        retries: 1,
        timeout: Duration::from_secs(1),
        owner,
    }
}

#[test]
fn next_deadline_skips_finished_requests() {
    let t0 = Instant::now();
    let mut r = table(80);
    let mut out = Outbox::new(100);
    let a = r.create(t0, addr(1), ping(Owner::QuickFirewall)).unwrap();
    r.send(t0, a, false, None, &mut out);
    let t1 = t0 + Duration::from_millis(100);
    let b = r.create(t1, addr(2), ping(Owner::QuickFirewall)).unwrap();
    r.send(t1, b, false, None, &mut out);
    assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert!(r.finish(a).is_some());
    assert_eq!(r.next_deadline(), Some(t1 + Duration::from_secs(1)));
    assert!(r.finish(b).is_some());
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn an_expired_request_is_retried_then_exhausted_and_a_query_visit_is_slow_once() {
    let t0 = Instant::now();
    let mut r = table(80);
    let mut out = Outbox::new(100);
    let q = QueryId(4);
    let tid = r.create(t0, addr(1), ping(Owner::Query(q))).unwrap();
    r.send(t0, tid, false, None, &mut out);
    assert!(r.pop_expired(t0 + Duration::from_millis(999)).is_none());
    let t1 = t0 + Duration::from_secs(1);
    let e = r.pop_expired(t1).unwrap();
    assert_eq!((e.tid, e.exhausted, e.slow_query), (tid, false, Some(q)));
    assert!(r.pop_expired(t1).is_none(), "taken off its timer");
    r.retry(t1, &e, None, &mut out);
    let e = r.pop_expired(t1 + Duration::from_secs(1)).unwrap();
    assert_eq!((e.exhausted, e.slow_query), (true, None));
    let done = r.finish_expired(&e).unwrap();
    assert!(done.cycled);
    assert_eq!(done.to, addr(1));
    assert_eq!(r.len(), 0);
    assert_eq!(std::iter::from_fn(|| out.pop()).count(), 2);
}

#[test]
fn a_queued_request_is_queued_once_and_a_cancelled_one_is_never_sent() {
    let t0 = Instant::now();
    let mut r = table(1);
    let mut out = Outbox::new(100);
    let tids: Vec<u16> = (0..3)
        .map(|i| {
            let t = r.create(t0, addr(i), ping(Owner::QuickFirewall)).unwrap();
            r.send(t0, t, false, None, &mut out);
            t
        })
        .collect();
    assert_eq!(std::iter::from_fn(|| out.pop()).count(), 1, "window of one");
    r.send(t0, tids[1], false, None, &mut out);
    assert_eq!(r.queue.len(), 2, "queued once");
    r.finish(tids[1]);
    r.finish(tids[0]);
    r.drain(t0, &mut out);
    r.drain(t0, &mut out);
    let sent: Vec<_> = std::iter::from_fn(|| out.pop()).map(|t| t.to).collect();
    assert_eq!(sent, vec![addr(2)]);
}

#[test]
fn answers_only_from_the_destination_and_tids_stay_unique() {
    let t0 = Instant::now();
    let mut r = table(10_000);
    let mut out = Outbox::new(10_000);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..5_000 {
        let t = r.create(t0, addr(i), ping(Owner::QuickFirewall)).unwrap();
        assert!(seen.insert(t), "tid {t} reused while in flight");
        r.send(t0, t, false, None, &mut out);
    }
    let t = *seen.iter().next().unwrap();
    let Some(to) = r.inflight.get(&t).map(|x| x.req.to) else {
        panic!()
    };
    let other = SocketAddrV4::new(*to.ip(), to.port().wrapping_add(1));
    assert!(matches!(r.answer(t, other), Match::WrongSource));
    assert!(matches!(r.answer(t, to), Match::Answer(_)));
    assert!(matches!(r.answer(t, to), Match::Unknown));
}

#[test]
fn timers_and_queue_stay_bounded_under_churn() {
    let t0 = Instant::now();
    let mut r = table(4);
    let mut out = Outbox::new(100);
    for i in 0..100_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i));
        let t = r.create(now, addr(1), ping(Owner::QuickFirewall)).unwrap();
        r.send(now, t, false, None, &mut out);
        if i % 3 != 0 {
            r.finish(t);
        }
        while out.pop().is_some() {}
        assert!(
            r.timers.len() <= 2 * r.len() + 65,
            "timers {}",
            r.timers.len()
        );
        assert!(r.queue.len() <= 2 * r.len() + 65, "queue {}", r.queue.len());
        if r.len() > 1_000 {
            for t in r.inflight.keys().copied().collect::<Vec<_>>() {
                r.finish(t);
            }
        }
    }
}

#[test]
fn a_querys_requests_are_found_by_owner() {
    let t0 = Instant::now();
    let mut r = table(80);
    let (q, other) = (QueryId(1), QueryId(2));
    let visit = r.create(t0, addr(1), ping(Owner::Query(q))).unwrap();
    let hint = r.create(t0, addr(2), ping(Owner::DownHint(q))).unwrap();
    let commit = r.create(t0, addr(3), ping(Owner::Commit(q))).unwrap();
    r.create(t0, addr(4), ping(Owner::Query(other))).unwrap();
    let user = r
        .create(t0, addr(5), ping(Owner::User(RequestId(1))))
        .unwrap();
    let sorted = |mut v: Vec<u16>| {
        v.sort();
        v
    };
    assert_eq!(sorted(r.of_query(q, false)), sorted(vec![visit, hint]));
    assert_eq!(
        sorted(r.of_query(q, true)),
        sorted(vec![visit, hint, commit])
    );
    assert_eq!(r.of_user(RequestId(1)), vec![user]);
    r.finish(hint);
    assert_eq!(r.of_query(q, false), vec![visit]);
}
