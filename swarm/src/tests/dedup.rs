//! The duplicate rule (JS `hyperswarm/index.js _handleServerConnection`): two cores dialling
//! each other at once keep one connection, the one the larger key dialled, on both sides.

use std::time::Instant;

use super::{actions, check_invariants, core, events, key};
use crate::connect::State;
use crate::*;

/// Two cores wired back to back: every dial becomes an incoming connection on the other side,
/// every close closes both ends.
struct Pair {
    cores: [SwarmCore; 2],
    /// (side, conn) <-> (side, conn)
    links: Vec<((usize, ConnId), (usize, ConnId))>,
}

impl Pair {
    fn peer_of(&self, side: usize, conn: ConnId) -> Option<(usize, ConnId)> {
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

    /// Delivers actions until quiet; `dials` collected first so both sides' dials cross.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut work = Vec::new();
            for side in 0..2 {
                for a in actions(&mut self.cores[side]) {
                    work.push((side, a));
                }
            }
            if work.is_empty() {
                return;
            }
            let mut opened = Vec::new();
            for (side, a) in work {
                match a {
                    Action::Dial { conn, remote, .. } => {
                        let other = 1 - side;
                        assert_eq!(self.cores[other].public_key(), remote);
                        let me = self.cores[side].public_key();
                        let inc = self.cores[other].handle_incoming(now, me);
                        self.links.push(((side, conn), (other, inc)));
                        opened.push((side, conn));
                    }
                    Action::Close { conn, .. } => {
                        self.cores[side].handle_closed(now, conn, None);
                        if let Some((o, oc)) = self.peer_of(side, conn) {
                            self.cores[o].handle_closed(now, oc, None);
                        }
                        self.links
                            .retain(|(a, b)| *a != (side, conn) && *b != (side, conn));
                    }
                    _ => {}
                }
            }
            for (side, conn) in opened {
                if self.peer_of(side, conn).is_some() {
                    self.cores[side].handle_opened(now, conn);
                }
            }
        }
    }

    fn open_links(&self) -> Vec<((usize, ConnId), (usize, ConnId))> {
        self.links
            .iter()
            .filter(|(a, b)| {
                let open = |(s, c): (usize, ConnId)| {
                    self.cores[s]
                        .conns
                        .get(&c)
                        .is_some_and(|x| x.state == State::Open)
                };
                open(*a) && open(*b)
            })
            .copied()
            .collect()
    }
}

#[test]
fn simultaneous_dials_leave_one_connection_dialled_by_the_larger_key() {
    for (small, large) in [(3u8, 200u8), (200, 3)] {
        let now = Instant::now();
        let mut p = Pair {
            cores: [core(small), core(large)],
            links: Vec::new(),
        };
        // Both dial at once (explicit peers: no DHT needed).
        p.cores[0]
            .join_peer(now, key(large))
            .unwrap_or_else(|e| panic!("{e}"));
        p.cores[1]
            .join_peer(now, key(small))
            .unwrap_or_else(|e| panic!("{e}"));
        p.settle(now);
        for c in &p.cores {
            check_invariants(c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.connection_count(), 1, "one connection on each side");
        }
        let links = p.open_links();
        assert_eq!(links.len(), 1, "both sides kept the same connection");
        let ((dialler, _), _) = links[0];
        assert_eq!(
            p.cores[dialler].public_key(),
            key(small.max(large)),
            "the survivor was dialled by the larger key"
        );
    }
}

#[test]
fn a_reconnect_replaces_a_connection_that_carried_traffic() {
    let now = Instant::now();
    let mut c = core(200); // larger key: an inbound from a smaller key would normally lose
    let first = c.handle_incoming(now, key(3));
    assert_eq!(c.connection_count(), 1);
    let second = c.handle_incoming(now, key(3));
    assert!(actions(&mut c).contains(&Action::Close {
        conn: second,
        reason: CloseReason::Duplicate
    }));
    c.handle_closed(now, second, None);
    c.note_traffic(first, true, true);
    let third = c.handle_incoming(now, key(3));
    assert!(actions(&mut c).contains(&Action::Close {
        conn: first,
        reason: CloseReason::Duplicate
    }));
    assert!(
        !events(&mut c)
            .iter()
            .any(|e| matches!(e, Event::Connection { conn, .. } if *conn == third))
    );
    c.handle_closed(now, first, None);
    let ev = events(&mut c);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Connection { conn, .. } if *conn == third))
    );
    assert_eq!(c.connection_count(), 1);
    check_invariants(&c).unwrap_or_else(|e| panic!("{e}"));
}
