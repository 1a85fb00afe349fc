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
    SetBanned(u8, bool),
    SetReconnecting(u8, bool),
    UpdateSession(u8, bool, bool),
    Suspend,
    Resume,
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
        1 => Just(Op::Suspend),
        2 => Just(Op::Resume),
        1 => (1u8..9, proptest::bool::weighted(0.3)).prop_map(|(k, b)| Op::SetBanned(k, b)),
        1 => (1u8..9, any::<bool>()).prop_map(|(k, b)| Op::SetReconnecting(k, b)),
        1 => (any::<u8>(), any::<bool>(), any::<bool>())
            .prop_map(|(i, s, c)| Op::UpdateSession(i, s, c)),
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
        // Checks the core dropped (duplicate, destroy) stay listed here; count dials only.
        prop_assert!(self.dials.len() <= MAX_PARALLEL);
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
                if i % 3 == 2 {
                    c.handle_refresh_failed(n, t, r);
                } else {
                    c.handle_refresh_done(n, t, r);
                }
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
        Op::SetBanned(k, b) => c.set_banned(key(k), b),
        Op::SetReconnecting(k, b) => c.set_reconnecting(key(k), b),
        Op::UpdateSession(i, server, client) => {
            if let Some((_, s)) = pick(&d.sessions, i) {
                let opts = JoinOptions {
                    server,
                    client,
                    limit: None,
                };
                let _ = c.update_session(n, s, opts);
            }
        }
        Op::Suspend => c.suspend(n),
        Op::Resume => c.resume(n),
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
        for id in std::mem::take(&mut d.live) {
            c.handle_closed(now, id, None);
        }
        for id in std::mem::take(&mut d.checks) {
            c.handle_closed(now, id, None);
        }
        d.absorb(&mut c)?;
        for id in std::mem::take(&mut d.closes) {
            c.handle_closed(now, id, None);
        }
        prop_assert_eq!(c.connection_count(), 0);
        prop_assert_eq!(c.connecting(), 0);
        prop_assert!(c.conns.is_empty(), "connections left: {:?}", c.conns);
        prop_assert!(c.by_key.is_empty());
        prop_assert_eq!(c.queued(), 0);
        prop_assert_eq!(c.retry_waiting(), 0);
        prop_assert!(c.poll_timeout().is_none());
        prop_assert!(c.peers.values().all(|p| p.banned), "only bans outlive destroy");
        let st = c.stats();
        prop_assert_eq!(st.client_closed, st.client_attempted, "every dial closed once");
        prop_assert!(st.client_opened <= st.client_attempted);
        prop_assert_eq!(st.server_closed, st.server_opened);
        if let Err(e) = check_invariants(&c) {
            return Err(TestCaseError::fail(e));
        }
    }
}

/// Messages between two cores wired back to back, delivered in a random order.
#[derive(Clone, Copy, Debug)]
enum Msg {
    /// `side` dialled: the other side sees an incoming connection.
    Arrive(usize, ConnId),
    /// `side`'s dial reports open (if its link still exists).
    Opened(usize, ConnId),
    /// `side` closed `conn`: both ends learn it.
    Closed(usize, ConnId),
}

struct Wire {
    cores: [SwarmCore; 2],
    links: Vec<((usize, ConnId), (usize, ConnId))>,
    inflight: Vec<Msg>,
    dead: Vec<(usize, ConnId)>,
}

impl Wire {
    fn other_end(&self, side: usize, conn: ConnId) -> Option<(usize, ConnId)> {
        self.links.iter().find_map(|(a, b)| {
            if *a == (side, conn) {
                Some(*b)
            } else if *b == (side, conn) {
                Some(*a)
            } else {
                None
            }
        })
    }

    fn collect(&mut self) {
        for side in 0..2 {
            let c = self.cores.get_mut(side).map(actions).unwrap_or_default();
            for a in c {
                match a {
                    Action::Dial { conn, .. } => self.inflight.push(Msg::Arrive(side, conn)),
                    Action::Close { conn, .. } => self.inflight.push(Msg::Closed(side, conn)),
                    _ => {}
                }
            }
            if let Some(c) = self.cores.get_mut(side) {
                let _ = events(c);
            }
        }
    }

    fn deliver(&mut self, now: Instant, i: usize) {
        if i >= self.inflight.len() {
            return;
        }
        let msg = self.inflight.remove(i);
        match msg {
            Msg::Arrive(side, conn) => {
                let me = self.cores[side].public_key();
                let other = 1 - side;
                if self.dead.contains(&(side, conn)) {
                    return; // aborted before it arrived
                }
                let inc = self.cores[other].handle_incoming(now, me);
                self.links.push(((side, conn), (other, inc)));
                self.inflight.push(Msg::Opened(side, conn));
            }
            Msg::Opened(side, conn) => {
                if self.other_end(side, conn).is_some() && !self.dead.contains(&(side, conn)) {
                    self.cores[side].handle_opened(now, conn);
                }
            }
            Msg::Closed(side, conn) => {
                if !self.dead.contains(&(side, conn)) {
                    self.dead.push((side, conn));
                    self.cores[side].handle_closed(now, conn, None);
                }
                if let Some((o, oc)) = self.other_end(side, conn)
                    && !self.dead.contains(&(o, oc))
                {
                    self.dead.push((o, oc));
                    self.cores[o].handle_closed(now, oc, None);
                }
                self.links
                    .retain(|(a, b)| *a != (side, conn) && *b != (side, conn));
            }
        }
        self.collect();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Both sides dial each other (explicit peers) and every message arrives in a random
    /// order: once everything is delivered each side holds at most one open connection to the
    /// other, both hold the same one, and it is open on both ends.
    #[test]
    fn two_cores_agree_on_the_survivor_in_any_delivery_order(
        a in 1u8..255,
        b in 1u8..255,
        order in proptest::collection::vec(any::<u16>(), 0..60),
        drops in proptest::collection::vec(any::<u16>(), 0..3),
    ) {
        prop_assume!(a != b);
        let mut now = Instant::now();
        let mut w = Wire {
            cores: [core_with(a, |_| {}), core_with(b, |_| {})],
            links: Vec::new(),
            inflight: Vec::new(),
            dead: Vec::new(),
        };
        let _ = w.cores[0].join_peer(now, key(b));
        let _ = w.cores[1].join_peer(now, key(a));
        w.collect();
        for (step, o) in order.iter().enumerate() {
            if !w.inflight.is_empty() {
                let i = usize::from(*o) % w.inflight.len();
                w.deliver(now, i);
            }
            // Now and then one side drops its open connection (a network failure).
            if drops.iter().any(|d| usize::from(*d) % 60 == step) {
                let side = usize::from(*o) % 2;
                let open: Vec<ConnId> = w.cores[side]
                    .conns
                    .iter()
                    .filter(|(_, c)| c.is_open())
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(id) = open.first() {
                    w.inflight.push(Msg::Closed(side, *id));
                }
            }
            for c in &w.cores {
                if let Err(e) = check_invariants(c) {
                    return Err(TestCaseError::fail(e));
                }
            }
        }
        // Deliver the rest in order, running timers until nothing is left to do.
        for _ in 0..200 {
            while !w.inflight.is_empty() {
                w.deliver(now, 0);
            }
            let next = w.cores.iter().filter_map(SwarmCore::poll_timeout).min();
            let Some(t) = next else { break };
            if t > now + Duration::from_secs(3600) {
                break;
            }
            now = now.max(t);
            for c in &mut w.cores {
                c.handle_timeout(now);
            }
            w.collect();
        }
        prop_assert!(w.inflight.is_empty());
        let open = |side: usize| -> Vec<ConnId> {
            w.cores[side]
                .conns
                .iter()
                .filter(|(_, c)| c.is_open())
                .map(|(id, _)| *id)
                .collect()
        };
        let (oa, ob) = (open(0), open(1));
        prop_assert!(oa.len() <= 1 && ob.len() <= 1, "{oa:?} {ob:?}");
        prop_assert_eq!(oa.len(), ob.len(), "one side holds a connection the other lost");
        if let (Some(x), Some(y)) = (oa.first(), ob.first()) {
            prop_assert_eq!(w.other_end(0, *x), Some((1, *y)), "different survivors");
            // Without drops the two first dials crossed: the larger key's dial survives.
            let dialler = if w.cores[0].conns.get(x).is_some_and(|c| c.client) { a } else { b };
            if drops.is_empty() {
                prop_assert_eq!(dialler, a.max(b), "the smaller key's dial survived");
            }
        }
        // Explicit peers keep retrying: they end up connected.
        prop_assert_eq!(oa.len(), 1, "explicit peers reconnect");
    }
}
