//! The walk on its own: steps in, steps out, no node and no network.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::*;

fn addr(i: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 49_737)
}

fn reply(from: SocketAddrV4, closer: &[SocketAddrV4], token: Option<[u8; 32]>) -> Reply {
    Reply {
        from,
        from_id: Some(node_id(&from)),
        to: addr(200),
        token,
        closer_nodes: closer.to_vec(),
        error: 0,
        value: None,
        rtt: Duration::from_millis(10),
    }
}

fn walk(opts: QueryOpts) -> QueryWalk {
    let kind = QueryKind::User { stream: false };
    QueryWalk::new(&opts, 20, 10, None, kind, &Limits::default())
}

fn visited(step: Step) -> Vec<SocketAddrV4> {
    match step {
        Step::Visit(peers) => peers.iter().map(|p| p.addr).collect(),
        other => panic!("expected visits, got {other:?}"),
    }
}

const OWN: NodeId = [0xee; 32];

#[test]
fn referred_nodes_are_visited_a_silent_one_is_reported_to_its_referrer_and_the_walk_ends() {
    let mut w = walk(QueryOpts::new([1; 32]));
    w.add_seeds(&[addr(1)]);
    assert_eq!(visited(w.next()), vec![addr(1)]);
    assert_eq!(w.next(), Step::Wait, "one visit in flight");

    let effect = w.on_reply(
        addr(1),
        &reply(addr(1), &[addr(2), addr(3)], None),
        false,
        &OWN,
    );
    assert_eq!(effect, ReplyEffect::Data);
    let mut second = visited(w.next());
    second.sort();
    assert_eq!(second, vec![addr(2), addr(3)]);
    assert_eq!(w.next(), Step::Wait);

    w.on_slow();
    w.on_failure(addr(2), &RequestError::TimedOut, true);
    assert_eq!(
        w.pop_down_hint(),
        Some((addr(1), addr(2))),
        "DOWN_HINT to the referrer"
    );
    assert_eq!(w.pop_down_hint(), None);
    assert_eq!(w.next(), Step::Wait, "addr(3) still in flight");

    w.on_reply(addr(3), &reply(addr(3), &[addr(1)], None), false, &OWN);
    // Few successes and no table nodes yet: the walk asks for the table once.
    assert_eq!(w.next(), Step::TableNodes(20));
    w.add_table_nodes([]);
    assert_eq!(w.next(), Step::Flush);
    assert_eq!(w.flush(), Flush::End(None));
    assert_eq!(w.flush(), Flush::Again);

    let out = w.into_outcome();
    assert_eq!((out.successes, out.errors), (2, 1));
    let mut from: Vec<_> = out.closest_replies.iter().map(|r| r.from).collect();
    from.sort();
    assert_eq!(from, vec![addr(1), addr(3)]);
    assert!(
        out.closest_replies
            .iter()
            .all(|r| r.closer_nodes.is_empty())
    );
    let first = out.closest_replies[0].from;
    assert_eq!(out.hops, if first == addr(1) { 1 } else { 2 });
}

#[test]
fn visits_respect_concurrency_and_skip_our_own_id() {
    let mut w = walk(QueryOpts {
        concurrency: Some(2),
        ..QueryOpts::new([1; 32])
    });
    w.add_seeds(&[addr(1), addr(2), addr(3)]);
    assert_eq!(visited(w.next()).len(), 2);
    assert_eq!(w.next(), Step::Wait, "two in flight, one pending");
    let own = node_id(&addr(9));
    w.on_reply(addr(1), &reply(addr(1), &[addr(9)], None), false, &own);
    let next = visited(w.next());
    assert_eq!(next.len(), 1);
    assert!(!next.contains(&addr(9)), "our own address is never queued");
}

#[test]
fn commit_sends_to_each_closest_reply_with_a_token_and_ends_after_the_last() {
    let mut w = walk(QueryOpts {
        commit: true,
        internal: false,
        command: 9,
        value: Some(b"v".to_vec()),
        ..QueryOpts::new([1; 32])
    });
    w.add_seeds(&[addr(1), addr(2)]);
    visited(w.next());
    w.on_reply(addr(1), &reply(addr(1), &[], Some([7; 32])), false, &OWN);
    w.on_reply(addr(2), &reply(addr(2), &[], None), false, &OWN);
    assert_eq!(w.next(), Step::TableNodes(20));
    w.add_table_nodes([]);
    assert_eq!(w.next(), Step::Flush);
    let Flush::Commit { targets, total } = w.flush() else {
        panic!("commit expected")
    };
    assert_eq!((targets, total), (vec![(addr(1), [7; 32])], 2));
    let req = w.commit_request(addr(1), [7; 32]);
    assert_eq!(
        (req.internal, req.command, req.token, req.value.as_deref()),
        (false, 9, Some([7; 32]), Some(&b"v"[..]))
    );
    w.commits_sent(1);
    assert_eq!(w.next(), Step::Wait, "nothing more while committing");
    assert_eq!(w.on_commit(true), Some(None));
}

#[test]
fn a_visit_that_cannot_be_sent_counts_as_an_error() {
    let mut w = walk(QueryOpts::new([1; 32]));
    w.add_seeds(&[addr(1)]);
    let Step::Visit(peers) = w.next() else {
        panic!("visit expected")
    };
    w.visit_failed(&peers[0]);
    assert_eq!(w.next(), Step::TableNodes(20));
    w.add_table_nodes([]);
    assert_eq!(w.next(), Step::Flush);
    assert_eq!(w.into_outcome().errors, 1);
}
