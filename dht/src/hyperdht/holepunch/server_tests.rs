#![allow(clippy::disallowed_methods)] // an origin for virtual time

use super::tests::{CLIENT, SERVER, node, sa, sampling};
use super::*;
use crate::hyperdht::{ErrorCode, Firewall};

fn server(now: Instant) -> ServerPunch {
    ServerPunch::new(
        now,
        ServerConfig {
            client_firewall: 0,
            local_secret: [5; 32],
            relay_through: false,
            sampling: sampling(),
            seed: [6; 32],
        },
    )
}

fn server_actions(s: &mut ServerPunch) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn request(id: u64, payload: HolepunchPayload) -> ServerRequest {
    ServerRequest {
        request: id,
        payload: Some(payload),
        peer_address: Some(sa(CLIENT, 5000)),
        from_server_relay: true,
        on_socket: None,
        to: sa(SERVER, 49737),
        from: node(1),
    }
}

/// A server whose NAT samples say `own`.
fn sampled_server(own: Firewall, t0: Instant, budget: &mut RandomPunches) -> ServerPunch {
    let mut s = server(t0);
    let acts = server_actions(&mut s);
    let mut i = 0;
    for a in acts {
        if let Action::Ping { socket, node } = a {
            let port = if own == Firewall::Random {
                7000 + i
            } else {
                7000
            };
            i += 1;
            s.on_pong(t0, socket, sa(SERVER, port), node, budget);
        }
    }
    s
}

fn client_payload(firewall: Firewall, punching: bool) -> HolepunchPayload {
    HolepunchPayload {
        error: 0,
        firewall: firewall.to_u64(),
        round: 0,
        connected: false,
        punching,
        addresses: Some(vec![sa(CLIENT, 5000)]),
        remote_address: Some(sa(SERVER, 7000)),
        token: Some([3; 32]),
        remote_token: None,
    }
}

#[test]
fn the_server_waits_for_its_analysis_then_fires_a_fast_mode_probe() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = server(t0);
    let pings: Vec<_> = server_actions(&mut s)
        .into_iter()
        .filter_map(|a| match a {
            Action::Ping { socket, node } => Some((socket, node)),
            _ => None,
        })
        .collect();
    s.on_request(
        t0,
        request(1, client_payload(Firewall::Unknown, false)),
        &mut budget,
    );
    assert!(
        server_actions(&mut s).is_empty(),
        "no answer before the analysis"
    );
    for (socket, n) in pings {
        s.on_pong(t0, socket, sa(SERVER, 7000), n, &mut budget);
    }
    let acts = server_actions(&mut s);
    assert_eq!(
        acts.first(),
        Some(&Action::Probe {
            socket: SocketId(0),
            to: sa(CLIENT, 5000),
            ttl: DEFAULT_TTL
        })
    );
    let Some(Action::Reply {
        request,
        socket,
        payload,
    }) = acts.get(1)
    else {
        panic!("no reply: {acts:?}");
    };
    assert_eq!((*request, *socket), (1, Some(SocketId(0))));
    assert_eq!(payload.firewall, Firewall::Consistent.to_u64());
    assert_eq!(payload.addresses, Some(vec![sa(SERVER, 7000)]));
    assert!(payload.token.is_some(), "a token through our own relay");
    assert_eq!(payload.remote_token, Some([3; 32]));
}

#[test]
fn the_server_answers_a_client_abort_with_an_abort_from_the_dht_socket() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = sampled_server(Firewall::Consistent, t0, &mut budget);
    let _ = server_actions(&mut s);
    let mut p = client_payload(Firewall::Unknown, false);
    p.error = ErrorCode::Aborted.to_u64();
    s.on_request(t0, request(4, p), &mut budget);
    let acts = server_actions(&mut s);
    assert!(acts.contains(&Action::Reply {
        request: 4,
        socket: None,
        payload: HolepunchPayload {
            error: ErrorCode::Aborted.to_u64(),
            firewall: 0,
            round: 0,
            connected: false,
            punching: false,
            addresses: None,
            remote_address: None,
            token: None,
            remote_token: None,
        }
    }));
    assert!(s.is_done());
    assert_eq!(s.poll_event(), Some(Event::Failed(HolepunchError::Aborted)));
}

#[test]
fn the_server_says_try_later_when_its_random_budget_is_spent() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = sampled_server(Firewall::Consistent, t0, &mut budget);
    let _ = server_actions(&mut s);
    budget.begin();
    let mut p = client_payload(Firewall::Random, true);
    p.addresses = Some(vec![sa(CLIENT, 0)]);
    s.on_request(t0, request(2, p), &mut budget);
    let acts = server_actions(&mut s);
    let error = acts.iter().find_map(|a| match a {
        Action::Reply {
            payload,
            socket: None,
            ..
        } => Some(payload.error),
        _ => None,
    });
    assert_eq!(error, Some(ErrorCode::TryLater.to_u64()));
}

#[test]
fn the_server_gives_up_when_the_client_never_punches() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = sampled_server(Firewall::Consistent, t0, &mut budget);
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + server::HANDSHAKE_INITIAL_TIMEOUT)
    );
    s.handle_timeout(t0 + server::HANDSHAKE_INITIAL_TIMEOUT, &mut budget);
    assert_eq!(s.poll_event(), Some(Event::Failed(HolepunchError::Aborted)));
    assert!(s.is_done());
}

#[test]
fn the_server_answers_probes_and_connects_on_the_stream_packet() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = sampled_server(Firewall::Consistent, t0, &mut budget);
    let _ = server_actions(&mut s);
    s.on_probe(t0, SocketId(0), sa(CLIENT, 5000), &mut budget);
    assert_eq!(
        server_actions(&mut s),
        vec![Action::Probe {
            socket: SocketId(0),
            to: sa(CLIENT, 5000),
            ttl: DEFAULT_TTL
        }]
    );
    // Probes on sockets it does not hold are ignored.
    s.on_probe(t0, SocketId(9), sa(CLIENT, 5000), &mut budget);
    assert!(server_actions(&mut s).is_empty());
    s.on_stream_packet(t0, SocketId(0), sa(CLIENT, 5000), &mut budget);
    assert_eq!(
        s.poll_event(),
        Some(Event::Connected {
            socket: SocketId(0),
            remote: sa(CLIENT, 5000),
            strategy: PunchStrategy::ProbeRound
        })
    );
    assert!(s.is_done());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn the_server_bounds_requests_waiting_for_its_analysis() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = server(t0);
    let _ = server_actions(&mut s);
    for id in 0..100 {
        s.on_request(
            t0,
            request(id, client_payload(Firewall::Unknown, false)),
            &mut budget,
        );
    }
    assert_eq!(s.pending_len(), server::MAX_PENDING);
}

#[test]
fn a_repeated_punching_round_is_answered_like_the_first() {
    let t0 = Instant::now();
    let mut budget = RandomPunches::default();
    let mut s = sampled_server(Firewall::Consistent, t0, &mut budget);
    let _ = server_actions(&mut s);
    // The client is random, echoes our token (verified) and punches.
    let echo = crate::crypto::keyed_hash(&[5; 32], b"20.2.0.1");
    let mut p = client_payload(Firewall::Random, true);
    p.addresses = Some(vec![sa(CLIENT, 0)]);
    p.remote_token = Some(echo);
    s.on_request(t0, request(1, p.clone()), &mut budget);
    let first = server_actions(&mut s);
    assert_eq!(budget.active(), 1, "our random punch runs");
    let punching = |acts: &[Action]| {
        acts.iter().find_map(|a| match a {
            Action::Reply { payload, .. } => Some((payload.error, payload.punching)),
            _ => None,
        })
    };
    assert_eq!(punching(&first), Some((0, true)));
    // The same round again (the client retried after losing our reply): no abort.
    s.on_request(t0, request(2, p), &mut budget);
    assert_eq!(punching(&server_actions(&mut s)), Some((0, true)));
    assert!(!s.is_done());
    assert_eq!(s.poll_event(), None);
}
