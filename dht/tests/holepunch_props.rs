//! The holepunch machines under arbitrary remote input: any sequence of relayed payloads (any
//! error code, firewall number, round, address list, token), probes on any socket from
//! anywhere, ping outcomes and time. Neither side panics, sockets and queues stay bounded, the
//! random-punch budget is given back, each machine reports at most one outcome, and every
//! machine finishes once time runs on.

#![allow(clippy::disallowed_methods)] // an origin for virtual time

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::hyperdht::holepunch::{
    Action, BIRTHDAY_SOCKETS, ClientConfig, ClientPunch, ClientReply, Event, MAX_QUEUED_ACTIONS,
    RandomPunches, Sampling, ServerConfig, ServerPunch, ServerRequest, SocketId,
};
use dht::hyperdht::messages::{HolepunchPayload, RelayInfo};
use proptest::prelude::*;

fn addr(host: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(20, 0, host % 4, host), port)
}

fn token() -> impl Strategy<Value = Option<[u8; 32]>> {
    prop_oneof![Just(None), (0u8..3).prop_map(|b| Some([b; 32]))]
}

fn payload() -> impl Strategy<Value = HolepunchPayload> {
    (
        (0u64..5, 0u64..6, 0u64..8, any::<bool>(), any::<bool>()),
        proptest::option::of(proptest::collection::vec((0u8..6, 0u16..4), 0..40)),
        proptest::option::of((0u8..6, 0u16..4)),
        token(),
        token(),
    )
        .prop_map(
            |((error, firewall, round, connected, punching), a, ra, t, rt)| HolepunchPayload {
                error,
                firewall,
                round,
                connected,
                punching,
                addresses: a.map(|v| v.into_iter().map(|(h, p)| addr(h, p)).collect()),
                remote_address: ra.map(|(h, p)| addr(h, p)),
                token: t,
                remote_token: rt,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Pong {
        socket: u16,
        seen: (u8, u16),
        node: u8,
    },
    PingFailed {
        socket: u16,
    },
    Probe {
        socket: u16,
        from: (u8, u16),
    },
    Payload {
        payload: Option<HolepunchPayload>,
        peer: Option<(u8, u16)>,
        relay: bool,
        on_socket: Option<u16>,
    },
    RelayError,
    StreamPacket {
        socket: u16,
    },
    Wait {
        ms: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..4, (0u8..6, 0u16..4), 1u8..6).prop_map(|(socket, seen, node)| Op::Pong { socket, seen, node }),
        1 => (0u16..4).prop_map(|socket| Op::PingFailed { socket }),
        2 => (0u16..300, (0u8..6, 0u16..4)).prop_map(|(socket, from)| Op::Probe { socket, from }),
        3 => (proptest::option::weighted(0.9, payload()), proptest::option::weighted(0.9, (0u8..6, 0u16..4)), any::<bool>(), proptest::option::of(0u16..3))
            .prop_map(|(payload, peer, relay, on_socket)| Op::Payload { payload, peer, relay, on_socket }),
        1 => Just(Op::RelayError),
        1 => (0u16..300).prop_map(|socket| Op::StreamPacket { socket }),
        2 => (0u32..40_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

fn sampling() -> Sampling {
    Sampling {
        newest_first: (1..=6).map(|i| addr(i, 49737)).collect(),
        table_len: 6,
        firewalled: true,
    }
}

/// Sockets held, checked against every Bind and Release, and the pings asked for.
#[derive(Default)]
struct Held(BTreeSet<SocketId>, Vec<SocketId>);

impl Held {
    fn apply(&mut self, acts: &[Action]) -> Result<(), TestCaseError> {
        prop_assert!(
            acts.len() <= MAX_QUEUED_ACTIONS + 2 * BIRTHDAY_SOCKETS,
            "{} actions",
            acts.len()
        );
        for a in acts {
            match a {
                Action::Bind(s) => prop_assert!(self.0.insert(*s), "bound twice"),
                Action::Release(s) => prop_assert!(self.0.remove(s), "released a socket not held"),
                Action::Ping { socket, .. } => self.1.push(*socket),
                _ => {}
            }
        }
        prop_assert!(self.0.len() <= BIRTHDAY_SOCKETS);
        Ok(())
    }
}

fn terminal(events: &[Event]) -> usize {
    events.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_client_survives_any_input(ops in proptest::collection::vec(op(), 0..60), relay_through in any::<bool>()) {
        let mut now = Instant::now();
        let mut budget = RandomPunches::default();
        let mut c = ClientPunch::new(ClientConfig {
            server_address: addr(1, 7000),
            relay_address: addr(1, 49737),
            server_firewall: 0,
            server_relays: vec![RelayInfo { relay_address: addr(1, 49737), peer_address: addr(1, 1) }],
            fast_open: true,
            relay_through,
            local_secret: [7; 32],
            sampling: sampling(),
            seed: [8; 32],
        }).expect("a relay is given");
        let mut held = Held::default();
        let mut events = Vec::new();
        let drain = |c: &mut ClientPunch, held: &mut Held, events: &mut Vec<Event>| -> Result<(), TestCaseError> {
            let acts: Vec<_> = std::iter::from_fn(|| c.poll_action()).collect();
            held.apply(&acts)?;
            events.extend(std::iter::from_fn(|| c.poll_event()));
            Ok(())
        };
        drain(&mut c, &mut held, &mut events)?;
        for op in ops {
            match op {
                Op::Pong { socket, seen, node } => c.on_pong(now, SocketId(socket.into()), addr(seen.0, seen.1), addr(node, 49737), &mut budget),
                Op::PingFailed { socket } => c.on_ping_failed(now, SocketId(socket.into()), &mut budget),
                Op::Probe { socket, from } => c.on_probe(now, SocketId(socket.into()), addr(from.0, from.1), &mut budget),
                Op::Payload { payload, peer, .. } => c.on_reply(now, ClientReply {
                    payload,
                    peer_address: peer.map(|(h, p)| addr(h, p)),
                    to: addr(5, 5000),
                    from: addr(1, 49737),
                }, &mut budget),
                Op::RelayError => c.on_relay_error(now, &mut budget),
                Op::StreamPacket { .. } => {}
                Op::Wait { ms } => {
                    let until = now + Duration::from_millis(ms.into());
                    while let Some(t) = c.poll_timeout().filter(|t| *t <= until) {
                        now = now.max(t);
                        c.handle_timeout(now, &mut budget);
                        drain(&mut c, &mut held, &mut events)?;
                    }
                    now = until;
                }
            }
            drain(&mut c, &mut held, &mut events)?;
            prop_assert!(budget.active() <= 1);
            prop_assert!(terminal(&events) <= 1, "{events:?}");
        }
        // Time runs on and the caller reports its pings and requests as timed out: every
        // strategy ends, and the budget is given back once done.
        for _ in 0..20 {
            for socket in std::mem::take(&mut held.1) {
                c.on_ping_failed(now, socket, &mut budget);
            }
            c.on_relay_error(now, &mut budget);
            drain(&mut c, &mut held, &mut events)?;
            for _ in 0..10_000 {
                let Some(t) = c.poll_timeout() else { break };
                now = now.max(t);
                c.handle_timeout(now, &mut budget);
                drain(&mut c, &mut held, &mut events)?;
            }
        }
        prop_assert!(c.poll_timeout().is_none(), "timers never stop");
        prop_assert!(c.is_done());
        prop_assert_eq!(budget.active(), 0);
        prop_assert_eq!(terminal(&events), 1, "{:?}", events);
    }

    #[test]
    fn the_server_survives_any_input(ops in proptest::collection::vec(op(), 0..60), relay_through in any::<bool>()) {
        let mut now = Instant::now();
        let mut budget = RandomPunches::default();
        let mut s = ServerPunch::new(now, ServerConfig {
            client_firewall: 0,
            local_secret: [7; 32],
            relay_through,
            sampling: sampling(),
            seed: [9; 32],
        });
        let mut held = Held::default();
        let mut events = Vec::new();
        let mut request = 0;
        let drain = |s: &mut ServerPunch, held: &mut Held, events: &mut Vec<Event>| -> Result<(), TestCaseError> {
            let acts: Vec<_> = std::iter::from_fn(|| s.poll_action()).collect();
            held.apply(&acts)?;
            events.extend(std::iter::from_fn(|| s.poll_event()));
            Ok(())
        };
        drain(&mut s, &mut held, &mut events)?;
        for op in ops {
            match op {
                Op::Pong { socket, seen, node } => s.on_pong(now, SocketId(socket.into()), addr(seen.0, seen.1), addr(node, 49737), &mut budget),
                Op::PingFailed { socket } => s.on_ping_failed(now, SocketId(socket.into()), &mut budget),
                Op::Probe { socket, from } => s.on_probe(now, SocketId(socket.into()), addr(from.0, from.1), &mut budget),
                Op::Payload { payload, peer, relay, on_socket } => {
                    request += 1;
                    s.on_request(now, ServerRequest {
                        request,
                        payload,
                        peer_address: peer.map(|(h, p)| addr(h, p)),
                        from_server_relay: relay,
                        on_socket: on_socket.map(|x| SocketId(x.into())),
                        to: addr(5, 5000),
                        from: addr(1, 49737),
                    }, &mut budget);
                }
                Op::RelayError => {}
                Op::StreamPacket { socket } => s.on_stream_packet(now, SocketId(socket.into()), addr(2, 2), &mut budget),
                Op::Wait { ms } => {
                    let until = now + Duration::from_millis(ms.into());
                    while let Some(t) = s.poll_timeout().filter(|t| *t <= until) {
                        now = now.max(t);
                        s.handle_timeout(now, &mut budget);
                        drain(&mut s, &mut held, &mut events)?;
                    }
                    now = until;
                }
            }
            drain(&mut s, &mut held, &mut events)?;
            prop_assert!(budget.active() <= 1);
            prop_assert!(terminal(&events) <= 1, "{events:?}");
            prop_assert!(s.pending_len() <= dht::hyperdht::holepunch::server::MAX_PENDING);
        }
        for _ in 0..20 {
            for socket in std::mem::take(&mut held.1) {
                s.on_ping_failed(now, socket, &mut budget);
            }
            drain(&mut s, &mut held, &mut events)?;
            for _ in 0..10_000 {
                let Some(t) = s.poll_timeout() else { break };
                now = now.max(t);
                s.handle_timeout(now, &mut budget);
                drain(&mut s, &mut held, &mut events)?;
            }
        }
        prop_assert!(s.poll_timeout().is_none(), "timers never stop");
        prop_assert!(s.is_done());
        prop_assert_eq!(budget.active(), 0);
        prop_assert_eq!(terminal(&events), 1, "{:?}", events);
    }
}
