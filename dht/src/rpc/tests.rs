//! Handler-level tests: one node, datagrams crafted by hand, replies decoded.

#![allow(clippy::disallowed_methods)] // tests and benchmarks take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::wire::{self, Message, Request, Response};
use super::*;
use crate::codec::{Decode, Encode};
use crate::crypto::node_id;

fn addr(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

fn persistent_node(now: Instant) -> Node {
    let mut n = Node::bootstrapper(Config::default(), addr(30_000), now, [1; 32]);
    while n.poll_transmit().is_some() {}
    while n.poll_event().is_some() {}
    n
}

fn req(tid: u16, internal: bool, command: u64) -> Request {
    Request {
        tid,
        to: addr(30_000),
        id: None,
        token: None,
        internal,
        command,
        target: None,
        value: None,
    }
}

fn send(
    n: &mut Node,
    now: Instant,
    from: SocketAddrV4,
    r: &Request,
) -> Vec<(SocketAddrV4, Response)> {
    n.handle_datagram(now, from, &r.to_bytes());
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        if let Ok(Message::Response(res)) = Message::from_bytes(&t.payload) {
            out.push((t.to, res));
        }
    }
    out
}

#[test]
fn bootstrapper_is_persistent_with_id_of_its_address() {
    let now = Instant::now();
    let n = persistent_node(now);
    assert_eq!(n.id(), Some(node_id(&addr(30_000))));
    assert!(n.is_bootstrapped());
    assert!(!n.is_firewalled());
}

#[test]
fn ping_gets_empty_reply_with_id_and_reflexive_address() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    let out = send(&mut n, now, addr(40_000), &req(7, true, 0));
    assert_eq!(out.len(), 1);
    let (to, res) = &out[0];
    assert_eq!(*to, addr(40_000));
    assert_eq!(res.tid, 7);
    assert_eq!(res.to, addr(40_000));
    assert_eq!(res.id, Some(node_id(&addr(30_000))));
    assert_eq!((res.token, res.error, res.value.as_ref()), (None, 0, None));
    assert!(res.closer_nodes.is_empty());
}

#[test]
fn ping_nat_replies_to_the_port_in_the_value() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    let mut r = req(1, true, 1);
    r.value = Some(41_000u16.to_le_bytes().to_vec());
    let out = send(&mut n, now, addr(40_000), &r);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(41_000));
    assert_eq!(out[0].1.to, addr(41_000));
    // port 0 and a short value get no reply
    r.value = Some(vec![0, 0]);
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
    r.value = Some(vec![5]);
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
}

#[test]
fn find_node_without_target_is_ignored_and_with_target_returns_closer_nodes() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    for p in 31_000..31_050 {
        n.add_node(now, addr(p));
    }
    let r = req(3, true, 2);
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
    let mut r = req(3, true, 2);
    r.target = Some([0x55; 32]);
    let out = send(&mut n, now, addr(40_000), &r);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.closer_nodes.len(), 20);
    assert_eq!(out[0].1.token, None);
}

#[test]
fn unknown_commands_get_unknown_command_with_closer_nodes() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    n.add_node(now, addr(31_000));
    for (internal, cmd) in [(true, 9u64), (false, 0), (false, 1 << 40)] {
        let mut r = req(4, internal, cmd);
        r.target = Some([1; 32]);
        let out = send(&mut n, now, addr(40_000), &r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.error, wire::errors::UNKNOWN_COMMAND);
        assert_eq!(out[0].1.closer_nodes, vec![addr(31_000)]);
        assert_eq!(out[0].1.token, None);
    }
}

#[test]
fn registered_user_command_is_handed_out_and_answered_with_token() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    n.register_command(4);
    let mut r = req(9, false, 4);
    r.target = Some([2; 32]);
    r.value = Some(b"hi".to_vec());
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
    let Some(Event::Request(incoming)) = n.poll_event() else {
        panic!("expected a request event")
    };
    assert_eq!(incoming.value.as_deref(), Some(&b"hi"[..]));
    n.reply(
        &incoming,
        ReplyOpts {
            closer_nodes: false,
            ..ReplyOpts::value(Some(b"ok".to_vec()))
        },
    );
    let t = n.poll_transmit().unwrap();
    let Ok(Message::Response(res)) = Message::from_bytes(&t.payload) else {
        panic!()
    };
    assert_eq!(res.tid, 9);
    assert_eq!(res.token, Some(n.token_for(Ipv4Addr::LOCALHOST)));
    assert_eq!(res.value.as_deref(), Some(&b"ok"[..]));
}

#[test]
fn reply_goes_to_opts_to_with_a_token_for_that_address() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    n.register_command(4);
    let r = req(9, false, 4);
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
    let Some(Event::Request(incoming)) = n.poll_event() else {
        panic!("expected a request event")
    };
    let client = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 41_000);
    n.reply(
        &incoming,
        ReplyOpts {
            to: Some(client),
            ..ReplyOpts::error(3)
        },
    );
    let t = n.poll_transmit().unwrap();
    assert_eq!(t.to, client);
    let Ok(Message::Response(res)) = Message::from_bytes(&t.payload) else {
        panic!()
    };
    assert_eq!(
        (res.tid, res.to, res.error, res.token),
        (9, client, 3, None)
    );
}

#[test]
fn invalid_token_is_refused_with_a_fresh_token_and_valid_one_passes() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    n.register_command(4);
    let mut r = req(10, false, 4);
    r.token = Some([0xaa; 32]);
    let out = send(&mut n, now, addr(40_000), &r);
    assert_eq!(out[0].1.error, wire::errors::INVALID_TOKEN);
    let fresh = out[0].1.token.unwrap();
    assert!(n.poll_event().is_none());
    r.token = Some(fresh);
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
    assert!(matches!(n.poll_event(), Some(Event::Request(_))));
}

#[test]
fn forged_ids_are_ignored_and_valid_ids_enter_the_table() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    let mut r = req(1, true, 0);
    r.id = Some([0x11; 32]);
    send(&mut n, now, addr(40_000), &r);
    assert_eq!(n.table().len(), 0);
    r.id = Some(node_id(&addr(40_000)));
    send(&mut n, now, addr(40_000), &r);
    assert_eq!(n.to_array(), vec![addr(40_000)]);
}

#[test]
fn delayed_ping_answers_after_the_delay_and_refuses_long_delays() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    let mut r = req(5, true, 4);
    r.value = Some(300u32.to_le_bytes().to_vec());
    assert!(send(&mut n, now, addr(40_000), &r).is_empty());
    n.handle_timeout(now + Duration::from_millis(299));
    assert!(std::iter::from_fn(|| n.poll_transmit()).all(|t| t.to != addr(40_000)));
    n.handle_timeout(now + Duration::from_millis(300));
    assert!(std::iter::from_fn(|| n.poll_transmit()).any(|t| t.to == addr(40_000)));
    r.value = Some(10_001u32.to_le_bytes().to_vec());
    send(&mut n, now, addr(40_000), &r);
    n.handle_timeout(now + Duration::from_secs(20));
    assert!(std::iter::from_fn(|| n.poll_transmit()).all(|t| t.to != addr(40_000)));
}

#[test]
fn request_is_sent_four_times_then_times_out() {
    let start = Instant::now();
    let mut n = persistent_node(start);
    let id = n.ping(start, addr(45_000));
    let mut sent = 0;
    let mut now = start;
    let mut result = None;
    while now < start + Duration::from_secs(10) && result.is_none() {
        n.handle_timeout(now);
        sent += std::iter::from_fn(|| n.poll_transmit())
            .filter(|t| t.to == addr(45_000))
            .count();
        while let Some(e) = n.poll_event() {
            if let Event::Response { request, result: r } = e {
                assert_eq!(request, id);
                result = Some(r);
            }
        }
        now += Duration::from_millis(50);
    }
    assert_eq!(sent, 4);
    assert_eq!(result, Some(Err(RequestError::TimedOut)));
    assert!(now - start >= Duration::from_millis(4000));
}

/// The tid of the request `n` sent to `to` (drains the transmit queue).
fn sent_tid(n: &mut Node, to: SocketAddrV4) -> u16 {
    let mut tid = None;
    while let Some(t) = n.poll_transmit() {
        if t.to == to
            && let Ok(Message::Request(r)) = Message::from_bytes(&t.payload)
        {
            tid = Some(r.tid);
        }
    }
    tid.expect("a request was sent")
}

fn response(tid: u16, to: SocketAddrV4) -> Vec<u8> {
    Message::Response(Response {
        tid,
        to,
        id: None,
        token: None,
        closer_nodes: Vec::new(),
        error: 0,
        value: None,
    })
    .to_bytes()
}

#[test]
fn reply_with_the_right_tid_from_another_address_is_dropped_and_counted() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    let dest = addr(45_000);
    let id = n.ping(now, dest);
    let tid = sent_tid(&mut n, dest);
    // Same IP, other port; then other IP, same port.
    let spoofers = [
        addr(45_001),
        SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 45_000),
    ];
    for (i, spoof) in spoofers.into_iter().enumerate() {
        n.handle_datagram(now, spoof, &response(tid, addr(30_000)));
        assert_eq!(n.stats().wrong_source_responses, i as u64 + 1);
        assert_eq!(n.poll_event(), None, "a spoofed reply completes nothing");
        assert_eq!(n.inflight(), 1);
    }
    assert_eq!(n.stats().responses, 0);
    n.handle_datagram(
        now + Duration::from_millis(5),
        dest,
        &response(tid, addr(30_000)),
    );
    let Some(Event::Response { request, result }) = n.poll_event() else {
        panic!("the real reply completes the request")
    };
    assert_eq!(request, id);
    let reply = result.expect("a reply");
    assert_eq!(reply.from, dest);
    assert_eq!(reply.rtt, Duration::from_millis(5));
    assert_eq!(n.inflight(), 0);
    assert_eq!(
        (n.stats().responses, n.stats().wrong_source_responses),
        (1, 2)
    );
}

#[test]
fn transaction_ids_are_random_and_unique_among_requests_in_flight() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    let mut tids = Vec::new();
    for p in 0..64u16 {
        n.ping(now, addr(50_000 + p));
        tids.push(sent_tid(&mut n, addr(50_000 + p)));
    }
    let distinct: std::collections::BTreeSet<u16> = tids.iter().copied().collect();
    assert_eq!(distinct.len(), tids.len(), "unique while in flight");
    let sequential = tids
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    assert!(sequential < 4, "not counted up: {tids:?}");
    // The same seed gives the same ids (the core stays deterministic).
    let mut m = persistent_node(now);
    m.ping(now, addr(50_000));
    assert_eq!(sent_tid(&mut m, addr(50_000)), tids[0]);
}

#[test]
fn congestion_window_queues_beyond_80_sends() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    for p in 0..200u16 {
        n.ping(now, addr(50_000 + p));
    }
    let first: usize = std::iter::from_fn(|| n.poll_transmit()).count();
    assert_eq!(first, 80);
    n.handle_timeout(now + Duration::from_millis(750));
    let second: usize = std::iter::from_fn(|| n.poll_transmit()).count();
    assert_eq!(second, 80, "next slot opens after a drain");
}

#[test]
fn garbage_and_short_datagrams_are_dropped() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    for d in [
        &[][..],
        &[3][..],
        &[0xff, 1, 2, 3][..],
        &[3, 0xff, 0xff, 0xff][..],
    ] {
        n.handle_datagram(now, addr(40_000), d);
    }
    n.handle_datagram(
        now,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        &req(1, true, 0).to_bytes(),
    );
    assert!(n.poll_transmit().is_none());
    assert_eq!(n.stats().malformed, 5);
}

#[test]
fn delayed_ping_round_trip_between_two_nodes() {
    let start = Instant::now();
    let mut a = persistent_node(start);
    let mut b = Node::bootstrapper(Config::default(), addr(30_001), start, [2; 32]);
    while b.poll_transmit().is_some() {}
    assert!(
        a.delayed_ping(start, addr(30_001), 20_000).is_none(),
        "above maxPingDelay"
    );
    let id = a.delayed_ping(start, addr(30_001), 1500).unwrap();
    let mut now = start;
    let mut got = None;
    while got.is_none() && now < start + Duration::from_secs(5) {
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, addr(30_000), &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, addr(30_001), &t.payload);
        }
        while let Some(e) = a.poll_event() {
            if let Event::Response { request, result } = e {
                assert_eq!(request, id);
                got = Some((now, result));
            }
        }
        now += Duration::from_millis(100);
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    let (at, result) = got.unwrap();
    assert!(result.is_ok());
    assert!(
        at >= start + Duration::from_millis(1500),
        "answered after the delay, without a retry"
    );
    assert_eq!(a.stats().retries, 0);
}

/// Addresses whose ids fall in row 0 of `n`'s table.
fn row0_addrs(n: &Node, count: usize, base: u16) -> Vec<SocketAddrV4> {
    let me = n.id().unwrap();
    (base..u16::MAX)
        .map(addr)
        .filter(|a| routing::row_of(&me, &node_id(a)) == 0)
        .take(count)
        .collect()
}

fn full_row_setup() -> (Node, Instant, Vec<SocketAddrV4>, SocketAddrV4) {
    let start = Instant::now();
    let mut n = persistent_node(start);
    let members = row0_addrs(&n, 21, 31_000);
    let (members, newcomer) = (members[..20].to_vec(), members[20]);
    for a in &members {
        n.add_node(start, *a);
    }
    assert_eq!(n.table().row_nodes(&node_id(&members[0])).len(), 20);
    (n, start, members, newcomer)
}

fn ping_from(n: &mut Node, now: Instant, from: SocketAddrV4) {
    let mut r = req(77, true, 0);
    r.id = Some(node_id(&from));
    n.handle_datagram(now, from, &r.to_bytes());
}

#[test]
fn full_row_replaces_a_silent_oldest_member_with_the_newcomer() {
    let (mut n, start, members, newcomer) = full_row_setup();
    let now = start + Duration::from_secs(10);
    n.handle_timeout(now);
    while n.poll_transmit().is_some() {}
    ping_from(&mut n, now, newcomer);
    let pinged: Vec<SocketAddrV4> = std::iter::from_fn(|| n.poll_transmit())
        .filter(|t| matches!(Message::from_bytes(&t.payload), Ok(Message::Request(_))))
        .map(|t| t.to)
        .collect();
    assert_eq!(pinged.len(), 1, "one re-ping of the oldest member");
    assert!(members.contains(&pinged[0]));
    assert!(!n.to_array().contains(&newcomer));
    // the oldest never answers: after 4 transmissions it is swapped for the newcomer
    for ms in (250..=4500).step_by(250) {
        n.handle_timeout(now + Duration::from_millis(ms));
    }
    let t = n.to_array();
    assert!(t.contains(&newcomer));
    assert!(!t.contains(&pinged[0]));
    // (periodic liveness checks may drop other silent members meanwhile)
    assert!(n.table().len() <= 20);
}

#[test]
fn full_row_keeps_an_oldest_member_that_answers() {
    let (mut n, start, _members, newcomer) = full_row_setup();
    let now = start + Duration::from_secs(10);
    n.handle_timeout(now);
    while n.poll_transmit().is_some() {}
    ping_from(&mut n, now, newcomer);
    let t = n.poll_transmit().unwrap();
    let Ok(Message::Request(ping)) = Message::from_bytes(&t.payload) else {
        panic!("expected the re-ping")
    };
    let res = Response {
        tid: ping.tid,
        to: addr(30_000),
        id: Some(node_id(&t.to)),
        token: None,
        closer_nodes: vec![],
        error: 0,
        value: None,
    };
    n.handle_datagram(now, t.to, &res.to_bytes());
    let table = n.to_array();
    assert!(table.contains(&t.to), "the member that answered stays");
    assert!(!table.contains(&newcomer));
}

#[test]
fn cancelled_query_sends_nothing_more_and_reports_nothing() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    for p in 31_000..31_030 {
        n.add_node(now, addr(p));
    }
    let q = n.find_node(now, [9; 32]);
    assert!(n.poll_transmit().is_some());
    while n.poll_transmit().is_some() {}
    n.cancel_query(q);
    assert_eq!(n.running_queries(), 0);
    assert_eq!(n.inflight(), 0);
    for s in 1..10 {
        n.handle_timeout(now + Duration::from_millis(300 * s));
    }
    assert!(std::iter::from_fn(|| n.poll_event()).all(|e| !matches!(e, Event::QueryDone { .. })));
}

/// Command space (`dht-rpc/index.js` `_onrequest`): every command 0..=255, internal or not, with and without a target and
/// value, gets at most one reply, and that reply is a success (known internal commands) or
/// UNKNOWN_COMMAND; nothing panics.
#[test]
fn every_command_number_gets_js_s_answer_or_silence() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    n.add_node(now, addr(31_000));
    for command in 0..=255u64 {
        for internal in [true, false] {
            for (target, value) in [
                (None, None),
                (Some([5u8; 32]), Some(vec![1u8, 2, 3, 4, 5, 6])),
            ] {
                let mut r = req(command as u16, internal, command);
                r.target = target;
                r.value = value;
                let out = send(&mut n, now, addr(40_000), &r);
                assert!(
                    out.len() <= 1,
                    "cmd {command} internal {internal}: {} replies",
                    out.len()
                );
                if let Some((_, res)) = out.first() {
                    let known = internal && command <= 4;
                    let expected = if known {
                        0
                    } else {
                        wire::errors::UNKNOWN_COMMAND
                    };
                    assert_eq!(res.error, expected, "cmd {command} internal {internal}");
                } else {
                    // silence only for known internal commands missing their argument
                    assert!(
                        internal && command <= 4,
                        "cmd {command} internal {internal} unanswered"
                    );
                }
            }
        }
    }
}

/// Amplification (`dht-rpc/lib/io.js` `_sendReply` sizes): one reply datagram per request, and the reply/request size ratio of
/// the documented table (an ephemeral requester, a persistent responder with a full table):
/// PING 11 B -> 42 B, FIND_NODE 43 B -> 163 B.
#[test]
fn reply_amplification_matches_the_documented_table() {
    let now = Instant::now();
    let mut n = persistent_node(now);
    for p in 31_000..31_100 {
        n.add_node(now, addr(p));
    }
    let ping = req(1, true, 0);
    let mut find = req(2, true, 2);
    find.target = Some([0x42; 32]);
    for (r, req_len, reply_len) in [(ping, 11usize, 42usize), (find, 43, 163)] {
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), req_len);
        n.handle_datagram(now, addr(40_000), &bytes);
        let replies: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].payload.len(), reply_len);
    }
}
