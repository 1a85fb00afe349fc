//! Random event sequences against the swarm core: no panic, and after every step at most
//! `max_parallel` dials, at most one open connection per peer, banned peers and our own key
//! never dialled, every table within its bound.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{actions, check_invariants, core_with, events, key, topic};
use crate::*;

#[derive(Clone, Debug)]
enum Op {
    Join(u8, bool, bool, Option<u8>),
    LeaveSession(u8),
    Leave(u8),
    Peers(u8, Vec<u8>),
    RefreshDone(u8),
    Listening,
    Open(u8),
    Fail(u8, u8),
    Close(u8, u8),
    Incoming(u8),
    InboundFirewall(u8, bool),
    Verdict(u8, bool),
    Traffic(u8),
    Tick(u32),
    NetworkChange,
    JoinPeer(u8),
    LeavePeer(u8),
    Flush,
    DeliverCloses,
    Randomized(bool),
    Destroy,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 1u8..9;
    prop_oneof![
        3 => (0u8..3, any::<bool>(), any::<bool>(), proptest::option::of(0u8..4))
            .prop_map(|(t, s, c, l)| Op::Join(t, s, c, l)),
        1 => any::<u8>().prop_map(Op::LeaveSession),
        1 => (0u8..3).prop_map(Op::Leave),
        4 => (any::<u8>(), proptest::collection::vec(k.clone(), 0..6))
            .prop_map(|(i, v)| Op::Peers(i, v)),
        2 => any::<u8>().prop_map(Op::RefreshDone),
        1 => Just(Op::Listening),
        4 => any::<u8>().prop_map(Op::Open),
        3 => (any::<u8>(), 0u8..5).prop_map(|(i, e)| Op::Fail(i, e)),
        2 => (any::<u8>(), 0u8..5).prop_map(|(i, e)| Op::Close(i, e)),
        3 => k.clone().prop_map(Op::Incoming),
        1 => (k.clone(), proptest::bool::weighted(0.2)).prop_map(|(k, r)| Op::InboundFirewall(k, r)),
        2 => (any::<u8>(), proptest::bool::weighted(0.2)).prop_map(|(i, r)| Op::Verdict(i, r)),
        1 => any::<u8>().prop_map(Op::Traffic),
        4 => (0u32..700_000).prop_map(Op::Tick),
        1 => Just(Op::NetworkChange),
        1 => k.clone().prop_map(Op::JoinPeer),
        1 => k.prop_map(Op::LeavePeer),
        1 => Just(Op::Flush),
        3 => Just(Op::DeliverCloses),
        1 => any::<bool>().prop_map(Op::Randomized),
        1 => proptest::bool::weighted(0.1).prop_map(|d| if d { Op::Destroy } else { Op::Flush }),
    ]
}

fn err(e: u8) -> Option<ConnError> {
    match e {
        0 => None,
        1 => Some(ConnError::HolepunchAborted),
        2 => Some(ConnError::CannotHolepunch),
        3 => Some(ConnError::RemoteNotHolepunchable),
        _ => Some(ConnError::Other),
    }
}

fn pick<T: Copy>(v: &[T], i: u8) -> Option<(usize, T)> {
    if v.is_empty() {
        return None;
    }
    let i = usize::from(i) % v.len();
    v.get(i).map(|x| (i, *x))
}

/// What the fake driver knows.
#[derive(Default)]
struct Driver {
    dials: Vec<ConnId>,
    checks: Vec<ConnId>,
    live: Vec<ConnId>,
    closes: Vec<ConnId>,
    refreshes: Vec<(Topic, RefreshId)>,
    sessions: Vec<SessionId>,
}

impl Driver {
    fn absorb(&mut self, c: &mut SwarmCore) -> Result<(), TestCaseError> {
        for a in actions(c) {
            match a {
                Action::Dial { conn, remote, .. } => {
                    prop_assert_ne!(remote, c.public_key(), "dialled our own key");
                    prop_assert!(
                        !c.peer(&remote).is_some_and(|p| p.banned),
                        "dialled a banned peer"
                    );
                    self.checks.retain(|x| *x != conn);
                    self.dials.push(conn);
                }
                Action::CheckFirewall { conn, remote } => {
                    prop_assert_ne!(remote, c.public_key());
                    self.checks.push(conn);
                }
                Action::Close { conn, .. } => {
                    self.dials.retain(|x| *x != conn);
                    self.checks.retain(|x| *x != conn);
                    self.live.retain(|x| *x != conn);
                    if !self.closes.contains(&conn) {
                        self.closes.push(conn);
                    }
                }
                Action::Announce { topic, refresh, .. } | Action::Lookup { topic, refresh, .. } => {
                    self.refreshes.push((topic, refresh));
                }
                Action::CancelQuery { refresh, .. } => {
                    self.refreshes.retain(|(_, r)| *r != refresh);
                }
                _ => {}
            }
        }
        prop_assert!(self.dials.len() + self.checks.len() <= MAX_PARALLEL);
        let _ = events(c);
        Ok(())
    }
}

fn step(c: &mut SwarmCore, d: &mut Driver, now: &mut Instant, op: Op) {
    let n = *now;
    match op {
        Op::Join(t, server, client, limit) => {
            let opts = JoinOptions {
                server,
                client,
                limit: limit.map(usize::from),
            };
            if let Ok(s) = c.join(n, topic(t), opts) {
                d.sessions.push(s);
            }
        }
        Op::LeaveSession(i) => {
            if let Some((i, s)) = pick(&d.sessions, i) {
                let _ = c.leave_session(n, s);
                d.sessions.remove(i);
            }
        }
        Op::Leave(t) => c.leave(n, topic(t)),
        Op::Peers(i, keys) => {
            if let Some((_, (t, r))) = pick(&d.refreshes, i) {
                let recs: Vec<PeerRecord> = keys
                    .into_iter()
                    .map(|k| PeerRecord {
                        public_key: key(k),
                        relay_addresses: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 9)); 5],
                    })
                    .collect();
                c.handle_lookup_peers(n, t, r, &recs);
            }
        }
        Op::RefreshDone(i) => {
            if let Some((i, (t, r))) = pick(&d.refreshes, i) {
                d.refreshes.remove(i);
                c.handle_refresh_done(n, t, r);
            }
        }
        Op::Listening => c.handle_listening(n),
        Op::Open(i) => {
            if let Some((i, id)) = pick(&d.dials, i) {
                d.dials.remove(i);
                d.live.push(id);
                c.handle_opened(n, id);
            }
        }
        Op::Fail(i, e) => {
            if let Some((i, id)) = pick(&d.dials, i) {
                d.dials.remove(i);
                c.handle_closed(n, id, err(e));
            }
        }
        Op::Close(i, e) => {
            if let Some((i, id)) = pick(&d.live, i) {
                d.live.remove(i);
                c.handle_closed(n, id, err(e));
            }
        }
        Op::Incoming(k) => {
            if !c.handle_inbound_firewall(key(k), false) {
                let id = c.handle_incoming(n, key(k));
                d.live.push(id);
            }
        }
        Op::InboundFirewall(k, refuse) => {
            c.handle_inbound_firewall(key(k), refuse);
        }
        Op::Verdict(i, refuse) => {
            if let Some((i, id)) = pick(&d.checks, i) {
                d.checks.remove(i);
                c.handle_firewall_verdict(n, id, refuse);
            }
        }
        Op::Traffic(i) => {
            if let Some((_, id)) = pick(&d.live, i) {
                c.note_traffic(id, true, true);
            }
        }
        Op::Tick(ms) => {
            *now += Duration::from_millis(u64::from(ms));
            c.handle_timeout(*now);
        }
        Op::NetworkChange => c.handle_network_change(n),
        Op::JoinPeer(k) => {
            let _ = c.join_peer(n, key(k));
        }
        Op::LeavePeer(k) => c.leave_peer(n, key(k)),
        Op::Flush => {
            let _ = c.flush(n);
        }
        Op::DeliverCloses => {
            for id in std::mem::take(&mut d.closes) {
                c.handle_closed(n, id, None);
            }
        }
        Op::Randomized(r) => c.set_randomized_nat(r),
        Op::Destroy => c.destroy(n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_event_sequences_keep_the_invariants(
        seed in any::<u64>(),
        firewall in any::<bool>(),
        relay in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut c = core_with(1, |o| {
            o.seed = seed;
            o.firewall_outgoing = firewall;
            o.relay_through = relay.then(|| key(99));
            o.max_peers = 8;
        });
        let mut d = Driver::default();
        let mut now = Instant::now();
        for op in ops {
            step(&mut c, &mut d, &mut now, op);
            d.absorb(&mut c)?;
            if let Err(e) = check_invariants(&c) {
                return Err(TestCaseError::fail(e));
            }
        }
        // Settle: deliver every close, end every dial; nothing is left open after destroy.
        c.destroy(now);
        d.absorb(&mut c)?;
        for id in std::mem::take(&mut d.closes) {
            c.handle_closed(now, id, None);
        }
        for id in std::mem::take(&mut d.dials) {
            c.handle_closed(now, id, None);
        }
        d.absorb(&mut c)?;
        for id in std::mem::take(&mut d.closes) {
            c.handle_closed(now, id, None);
        }
        prop_assert_eq!(c.connection_count(), 0);
        prop_assert_eq!(c.connecting(), 0);
        if let Err(e) = check_invariants(&c) {
            return Err(TestCaseError::fail(e));
        }
    }
}
