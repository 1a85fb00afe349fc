#![allow(clippy::disallowed_methods)] // an origin for virtual time

use super::*;
use crate::hyperdht::messages::RelayInfo;
use crate::hyperdht::{ErrorCode, Firewall};

pub(super) fn sa(a: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(a), port)
}
pub(super) fn node(i: u8) -> SocketAddrV4 {
    sa([20, 0, 0, i], 49737)
}
pub(super) const SERVER: [u8; 4] = [20, 1, 0, 1];
pub(super) const CLIENT: [u8; 4] = [20, 2, 0, 1];

pub(super) fn sampling() -> Sampling {
    Sampling {
        newest_first: (1..=4).map(node).collect(),
        table_len: 4,
        firewalled: true,
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        server_address: sa(SERVER, 7000),
        relay_address: node(1),
        server_firewall: Firewall::Unknown.to_u64(),
        server_relays: vec![RelayInfo {
            relay_address: node(1),
            peer_address: sa(SERVER, 49737),
        }],
        fast_open: true,
        relay_through: false,
        local_secret: [1; 32],
        sampling: sampling(),
        seed: [2; 32],
    }
}

fn actions(c: &mut ClientPunch) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}
fn events(c: &mut ClientPunch) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Answers the pending pings: node `i` sees the socket at `port(i)`.
fn pong(
    c: &mut ClientPunch,
    now: Instant,
    acts: &[Action],
    port: impl Fn(usize) -> u16,
    budget: &mut RandomPunches,
) {
    let pings: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Ping { socket, node } => Some((*socket, *node)),
            _ => None,
        })
        .collect();
    for (i, (socket, n)) in pings.into_iter().enumerate() {
        c.on_pong(now, socket, sa(CLIENT, port(i)), n, budget);
    }
}

fn relayed(acts: &[Action]) -> Vec<HolepunchPayload> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Relay { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

fn server_payload(firewall: Firewall, punching: bool) -> HolepunchPayload {
    let addresses = match firewall {
        Firewall::Random => vec![sa(SERVER, 0)],
        _ => vec![sa(SERVER, 7000)],
    };
    HolepunchPayload {
        error: 0,
        firewall: firewall.to_u64(),
        round: 0,
        connected: false,
        punching,
        addresses: Some(addresses),
        remote_address: None,
        token: Some([9; 32]),
        remote_token: None,
    }
}

fn reply(payload: HolepunchPayload) -> ClientReply {
    ClientReply {
        payload: Some(payload),
        peer_address: Some(sa(SERVER, 7000)),
        to: sa(CLIENT, 5000),
        from: node(1),
    }
}

/// A client whose NAT samples say `own` and whose probe round the server answered with
/// `remote`; returns it with the actions since.
fn probed(
    own: Firewall,
    remote: Firewall,
    cfg: ClientConfig,
    t0: Instant,
    budget: &mut RandomPunches,
) -> (ClientPunch, Vec<Action>) {
    let mut c = ClientPunch::new(cfg).expect("relays given");
    let acts = actions(&mut c);
    let port = move |i: usize| {
        if own == Firewall::Random {
            5000 + i as u16
        } else {
            5000
        }
    };
    pong(&mut c, t0, &acts, port, budget);
    c.on_reply(t0, reply(server_payload(remote, false)), budget);
    let acts = actions(&mut c);
    (c, acts)
}

#[test]
fn no_server_relays_cannot_holepunch() {
    let mut cfg = config();
    cfg.server_relays.clear();
    let err = ClientPunch::new(cfg).expect_err("no relays");
    assert_eq!(err, HolepunchError::CannotHolepunch);
    assert_eq!(err.code(), "CANNOT_HOLEPUNCH");
}

#[test]
fn plan_follows_connect_js() {
    let server = sa(SERVER, 7000);
    let lan = sa([192, 168, 1, 2], 1);
    let public = sa([20, 9, 9, 9], 2);
    let open = Firewall::Open.to_u64();
    let unknown = Firewall::Unknown.to_u64();
    // An open server: its first non-bogon address, else where the relay saw it.
    assert_eq!(
        plan(open, &[lan, public], server, true, 1, Firewall::Unknown),
        Plan::Direct(public)
    );
    assert_eq!(
        plan(open, &[lan], server, true, 1, Firewall::Unknown),
        Plan::Direct(server)
    );
    // Relayed and no holepunch relays: direct as well.
    assert_eq!(
        plan(unknown, &[], server, true, 0, Firewall::Unknown),
        Plan::Direct(server)
    );
    assert_eq!(
        plan(unknown, &[], server, true, 1, Firewall::Open),
        Plan::AwaitServer
    );
    assert_eq!(
        plan(unknown, &[], server, false, 0, Firewall::Unknown),
        Plan::CannotHolepunch
    );
    assert_eq!(
        plan(unknown, &[], server, false, 1, Firewall::Unknown),
        Plan::Holepunch
    );
}

#[test]
fn bogons_match_the_bogon_package() {
    for ip in [
        "10.1.2.3",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "172.16.0.1",
        "192.168.0.1",
        "0.1.2.3",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.9",
        "224.0.0.1",
        "255.255.255.255",
    ] {
        assert!(is_bogon(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "20.0.0.1",
        "100.128.0.1",
        "172.32.0.1",
        "8.8.8.8",
        "192.0.1.1",
    ] {
        assert!(!is_bogon(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn the_probe_round_sends_a_low_ttl_probe_then_our_view() {
    let mut c = ClientPunch::new(config()).expect("relays");
    let acts = actions(&mut c);
    assert_eq!(acts.first(), Some(&Action::Bind(SocketId(0))));
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::Ping { .. }))
            .count(),
        4
    );
    assert!(acts.contains(&Action::Probe {
        socket: SocketId(0),
        to: sa(SERVER, 7000),
        ttl: HOLEPUNCH_TTL
    }));
    let Some(Action::Relay {
        relay,
        peer_address,
        payload,
        ..
    }) = acts.last()
    else {
        panic!("no relay message: {acts:?}");
    };
    assert_eq!((*relay, *peer_address), (node(1), sa(SERVER, 49737)));
    assert_eq!(payload.round, 0);
    assert!(!payload.punching);
    assert_eq!(payload.remote_address, Some(sa(SERVER, 7000)));
}

#[test]
fn double_random_reopens_three_times_then_aborts() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, mut acts) = probed(
        Firewall::Random,
        Firewall::Random,
        config(),
        t0,
        &mut budget,
    );
    // Each reopen binds a fresh socket and samples again; answer those as random too.
    for _ in 0..MAX_REOPENS {
        assert!(
            acts.iter().any(|a| matches!(a, Action::Bind(_))),
            "{acts:?}"
        );
        pong(&mut c, t0, &acts, |i| 6000 + i as u16, &mut budget);
        acts = actions(&mut c);
    }
    let sent = relayed(&acts);
    assert_eq!(
        sent.last().map(|p| p.error),
        Some(ErrorCode::Aborted.to_u64()),
        "the server is told"
    );
    let ev = events(&mut c);
    assert_eq!(
        ev,
        vec![Event::Failed(HolepunchError::DoubleRandomizedNats)]
    );
    assert!(c.is_done());
    assert_eq!(budget.active(), 0);
}

#[test]
fn a_remote_error_or_a_bad_reply_fails_the_punch() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut c = ClientPunch::new(config()).expect("relays");
    let mut p = server_payload(Firewall::Consistent, false);
    p.error = ErrorCode::Aborted.to_u64();
    c.on_reply(t0, reply(p), &mut budget);
    assert_eq!(
        events(&mut c),
        vec![Event::Failed(HolepunchError::RemoteAborted(1))]
    );

    let mut c = ClientPunch::new(config()).expect("relays");
    let mut r = reply(server_payload(Firewall::Consistent, false));
    r.payload = None;
    c.on_reply(t0, r, &mut budget);
    assert_eq!(events(&mut c), vec![Event::Failed(HolepunchError::Invalid)]);
    // Releases every socket.
    assert!(actions(&mut c).contains(&Action::Release(SocketId(0))));
}

/// Probes sent per socket with their TTLs, in order.
fn probes(acts: &[Action]) -> Vec<(SocketId, SocketAddrV4, u8)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Probe { socket, to, ttl } => Some((*socket, *to, *ttl)),
            _ => None,
        })
        .collect()
}

/// Runs the client's timers until it is done or `limit`; returns the actions and the time.
fn run(
    c: &mut ClientPunch,
    mut now: Instant,
    limit: Instant,
    budget: &mut RandomPunches,
) -> (Vec<Action>, Instant) {
    let mut all = Vec::new();
    while let Some(t) = c.poll_timeout() {
        if t > limit {
            break;
        }
        now = t;
        c.handle_timeout(now, budget);
        all.extend(actions(c));
    }
    (all, now)
}

#[test]
fn consistent_pairs_probe_ten_rounds_a_second_apart_then_give_up() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, acts) = probed(
        Firewall::Consistent,
        Firewall::Consistent,
        config(),
        t0,
        &mut budget,
    );
    let sent = relayed(&acts);
    let punch = sent.last().expect("the punch round");
    assert!(punch.punching);
    assert!(punch.token.is_some());
    assert_eq!(
        punch.remote_token,
        Some([9; 32]),
        "the server's token is echoed"
    );
    // The server starts punching and echoes our token: its address is verified.
    let mut p = server_payload(Firewall::Consistent, true);
    p.remote_token = punch.token;
    // One more, unverified address (another host) to see the every-fourth-round rule.
    p.addresses = Some(vec![sa(SERVER, 7000), sa([20, 1, 0, 9], 7001)]);
    c.on_reply(t0, reply(p), &mut budget);
    let mut all = actions(&mut c);
    let (more, end) = run(&mut c, t0, t0 + Duration::from_secs(60), &mut budget);
    all.extend(more);
    let pr = probes(&all);
    let verified = pr.iter().filter(|p| p.1 == sa(SERVER, 7000)).count();
    let unverified = pr.iter().filter(|p| p.1 == sa([20, 1, 0, 9], 7001)).count();
    assert_eq!(verified, CONSISTENT_TRIES as usize);
    assert_eq!(unverified, 2, "rounds 4 and 8");
    assert!(pr.iter().all(|p| p.2 == DEFAULT_TTL));
    assert_eq!(end - t0, CONSISTENT_INTERVAL * CONSISTENT_TRIES);
    assert_eq!(events(&mut c), vec![Event::Failed(HolepunchError::Aborted)]);
}

#[test]
fn a_probe_connects_the_client_and_frees_the_other_sockets() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, acts) = probed(
        Firewall::Random,
        Firewall::Consistent,
        config(),
        t0,
        &mut budget,
    );
    let punch = relayed(&acts).pop().expect("punch round");
    let mut p = server_payload(Firewall::Consistent, true);
    p.remote_token = punch.token;
    c.on_reply(t0, reply(p), &mut budget);
    let acts = actions(&mut c);
    // The birthday burst: 255 more sockets, one low-TTL probe each, to the verified address.
    let binds = acts.iter().filter(|a| matches!(a, Action::Bind(_))).count();
    assert_eq!(binds, BIRTHDAY_SOCKETS - 1);
    let burst = probes(&acts);
    assert_eq!(burst.len(), BIRTHDAY_SOCKETS - 1);
    assert!(
        burst
            .iter()
            .all(|p| p.1 == sa(SERVER, 7000) && p.2 == HOLEPUNCH_TTL)
    );
    assert_eq!(budget.active(), 1);
    // A probe from the server reaches socket 77.
    let t1 = t0 + Duration::from_millis(500);
    c.on_probe(t1, SocketId(77), sa(SERVER, 7000), &mut budget);
    let ev = events(&mut c);
    assert_eq!(
        ev,
        vec![Event::Connected {
            socket: SocketId(77),
            remote: sa(SERVER, 7000),
            strategy: PunchStrategy::Birthday
        }]
    );
    let released = actions(&mut c)
        .iter()
        .filter(|a| matches!(a, Action::Release(_)))
        .count();
    assert_eq!(released, BIRTHDAY_SOCKETS - 1);
    assert!(c.poll_timeout().is_none(), "the cycle stopped");
    // The random-punch budget: free again, but the next random punch waits 20 s.
    assert_eq!(budget.active(), 0);
    assert!(budget.blocked(t1 + RANDOM_PUNCH_INTERVAL - Duration::from_millis(1)));
    assert!(!budget.blocked(t1 + RANDOM_PUNCH_INTERVAL));
}

#[test]
fn birthday_cycles_every_socket_low_ttl_first_for_1750_probes() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, acts) = probed(
        Firewall::Random,
        Firewall::Consistent,
        config(),
        t0,
        &mut budget,
    );
    let punch = relayed(&acts).pop().expect("punch round");
    let mut p = server_payload(Firewall::Consistent, true);
    p.remote_token = punch.token;
    c.on_reply(t0, reply(p), &mut budget);
    let _burst = actions(&mut c);
    let (acts, end) = run(&mut c, t0, t0 + Duration::from_secs(60), &mut budget);
    let pr = probes(&acts);
    assert_eq!(pr.len(), RANDOM_PROBES as usize);
    assert!(pr[..BIRTHDAY_SOCKETS].iter().all(|p| p.2 == HOLEPUNCH_TTL));
    assert!(pr[BIRTHDAY_SOCKETS..].iter().all(|p| p.2 == DEFAULT_TTL));
    let first_cycle: std::collections::BTreeSet<_> =
        pr[..BIRTHDAY_SOCKETS].iter().map(|p| p.0).collect();
    assert_eq!(
        first_cycle.len(),
        BIRTHDAY_SOCKETS,
        "each socket once per cycle"
    );
    assert_eq!(end - t0, BIRTHDAY_SETTLE + PROBE_INTERVAL * RANDOM_PROBES);
    assert_eq!(events(&mut c), vec![Event::Failed(HolepunchError::Aborted)]);
    assert_eq!(budget.active(), 0);
}

#[test]
fn random_probes_go_to_random_ports_of_the_verified_host() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, acts) = probed(
        Firewall::Consistent,
        Firewall::Random,
        config(),
        t0,
        &mut budget,
    );
    let punch = relayed(&acts).pop().expect("punch round");
    let mut p = server_payload(Firewall::Random, true);
    p.remote_token = punch.token;
    c.on_reply(t0, reply(p), &mut budget);
    let mut all = actions(&mut c);
    all.extend(run(&mut c, t0, t0 + Duration::from_secs(60), &mut budget).0);
    let pr = probes(&all);
    assert_eq!(pr.len(), RANDOM_PROBES as usize);
    assert!(
        pr.iter()
            .all(|p| *p.1.ip() == Ipv4Addr::from(SERVER) && p.1.port() >= RANDOM_PORT_MIN)
    );
    let ports: std::collections::BTreeSet<_> = pr.iter().map(|p| p.1.port()).collect();
    assert!(
        ports.len() > 1700,
        "ports are random: {} distinct",
        ports.len()
    );
}

#[test]
fn without_a_verified_address_random_punching_is_refused() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, _) = probed(
        Firewall::Consistent,
        Firewall::Random,
        config(),
        t0,
        &mut budget,
    );
    // The server does not echo our token.
    c.on_reply(
        t0,
        reply(server_payload(Firewall::Random, true)),
        &mut budget,
    );
    assert_eq!(
        events(&mut c),
        vec![Event::Failed(HolepunchError::RemoteNotHolepunchable)]
    );
    assert_eq!(budget.active(), 0);
}

#[test]
fn a_server_that_does_not_punch_fails_the_round() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, _) = probed(
        Firewall::Consistent,
        Firewall::Consistent,
        config(),
        t0,
        &mut budget,
    );
    c.on_reply(
        t0,
        reply(server_payload(Firewall::Consistent, false)),
        &mut budget,
    );
    assert_eq!(
        events(&mut c),
        vec![Event::Failed(HolepunchError::RemoteNotHolepunching)]
    );
}

#[test]
fn a_rate_limited_random_punch_aborts_without_a_relay() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    budget.begin(); // another random punch runs
    let (mut c, _) = probed(
        Firewall::Consistent,
        Firewall::Random,
        config(),
        t0,
        &mut budget,
    );
    let ev = events(&mut c);
    assert_eq!(ev, vec![Event::Failed(HolepunchError::Aborted)]);
    assert_eq!(
        ev.first().map(|e| match e {
            Event::Failed(e) => e.code(),
            Event::Connected { .. } => "",
        }),
        Some("HOLEPUNCH_ABORTED")
    );
}

#[test]
fn a_rate_limited_random_punch_with_a_relay_tells_the_server_and_tries_later() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    budget.begin();
    let mut cfg = config();
    cfg.relay_through = true;
    let (mut c, acts) = probed(Firewall::Consistent, Firewall::Random, cfg, t0, &mut budget);
    let delayed = relayed(&acts).pop().expect("the non-punching update");
    assert!(!delayed.punching);
    assert!(delayed.token.is_some());
    c.on_reply(
        t0,
        reply(server_payload(Firewall::Random, false)),
        &mut budget,
    );
    assert!(actions(&mut c).is_empty());
    let wake = c.poll_timeout().expect("sleeping");
    assert!(wake >= t0 + Duration::from_secs(10) && wake <= t0 + Duration::from_secs(20));
    // Still blocked at the wake-up: sleeps again without another message.
    c.handle_timeout(wake, &mut budget);
    assert!(relayed(&actions(&mut c)).is_empty());
    // Free now: the punch round goes through the server's relay, without a token.
    budget.cancel();
    let wake = c.poll_timeout().expect("sleeping");
    c.handle_timeout(wake, &mut budget);
    let acts = actions(&mut c);
    let Some(Action::Relay {
        relay,
        peer_address,
        payload,
        ..
    }) = acts.last()
    else {
        panic!("no punch round: {acts:?}");
    };
    assert_eq!((*relay, *peer_address), (node(1), sa(SERVER, 49737)));
    assert!(payload.punching);
    assert_eq!(payload.token, None);
    assert_eq!(budget.active(), 1, "committed while the round is in flight");
}

#[test]
fn connecting_while_a_random_round_is_in_flight_gives_the_budget_back() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let (mut c, _) = probed(
        Firewall::Consistent,
        Firewall::Random,
        config(),
        t0,
        &mut budget,
    );
    assert_eq!(budget.active(), 1, "the punch round committed");
    c.on_probe(t0, SocketId(0), sa(SERVER, 7000), &mut budget);
    assert!(matches!(
        events(&mut c).as_slice(),
        [Event::Connected { .. }]
    ));
    assert_eq!(budget.active(), 0);
    // The late reply changes nothing.
    c.on_reply(
        t0,
        reply(server_payload(Firewall::Random, true)),
        &mut budget,
    );
    assert_eq!(budget.active(), 0);
    assert!(events(&mut c).is_empty());
}

#[test]
fn match_address_prefers_the_longest_prefix_as_js() {
    let me = [sa([192, 168, 122, 238], 1)];
    let (a, b, c) = (
        sa([192, 10, 0, 23], 2),
        sa([192, 168, 0, 23], 3),
        sa([192, 168, 122, 1], 4),
    );
    assert_eq!(match_address(&me, &[a, b, c]), Some(c));
    assert_eq!(match_address(&me, &[a, b]), Some(b));
    assert_eq!(match_address(&me, &[a]), Some(a));
    assert_eq!(match_address(&me, &[sa([10, 0, 0, 1], 5)]), None);
    assert_eq!(match_address(&me, &[]), None);
}

#[test]
fn the_lan_shortcut_needs_one_public_host_and_skips_reserved_addresses() {
    let public = [20, 1, 0, 1];
    let (client, server) = (sa(public, 1000), sa(public, 2000));
    let me = [sa([192, 168, 1, 5], 49737)];
    let listed = [
        sa([0, 0, 0, 1], 9),
        sa([10, 0, 0, 7], 49737),
        sa([192, 168, 1, 9], 49737),
    ];
    assert_eq!(
        lan_candidate(client, server, true, &listed, &me),
        Some(listed[2])
    );
    // No prefix match: the first non-reserved one.
    assert_eq!(
        lan_candidate(client, server, true, &listed[..2], &me),
        Some(listed[1])
    );
    assert_eq!(
        lan_candidate(client, sa([20, 9, 0, 1], 1), true, &listed, &me),
        None
    );
    assert_eq!(lan_candidate(client, server, false, &listed, &me), None);
    assert_eq!(lan_candidate(client, server, true, &listed[..1], &me), None);
}
