use super::client::{MAX_REQUESTS, Paired, RelayClient};
use super::server::{LinkEnd, MAX_PENDING_PER_SESSION, Matched, RelayServer, Unpaired};
use super::*;

fn pair(is_initiator: bool, token: u8, id: u64) -> Pair {
    Pair {
        is_initiator,
        token: [token; 32],
        id,
        seq: 0,
    }
}

#[test]
fn two_clients_pair_through_the_relay() {
    let mut relay = RelayServer::new();
    let (s1, s2) = (relay.accept(), relay.accept());
    let (mut c1, mut c2) = (RelayClient::new(), RelayClient::new());
    let p1 = c1.pair(true, [7; 32], 11).unwrap();
    let p2 = c2.pair(false, [7; 32], 22).unwrap();
    assert_eq!(p1, pair(true, 7, 11));
    assert_eq!(relay.on_pair(s1, &p1), Ok(None));
    assert_eq!(relay.pending(), 1);
    // a repeated half is ignored, as in JS
    assert_eq!(relay.on_pair(s1, &p1), Ok(None));
    let m = relay.on_pair(s2, &p2).unwrap().unwrap();
    assert_eq!(
        m,
        Matched {
            token: [7; 32],
            initiator: LinkEnd {
                session: s1,
                remote_id: 11
            },
            responder: LinkEnd {
                session: s2,
                remote_id: 22
            },
        }
    );
    assert_eq!(relay.pending(), 0);
    // the relay answers each side with the stream it made for it
    let a1 = m.answer(true, 100);
    let a2 = m.answer(false, 200);
    assert_eq!(c2.on_pair(&a1), None, "the other half's answer is not ours");
    assert_eq!(
        c1.on_pair(&a1),
        Some(Paired {
            is_initiator: true,
            token: [7; 32],
            remote_id: 100
        })
    );
    assert_eq!(c2.on_pair(&a2).map(|p| p.remote_id), Some(200));
    assert!(c1.is_idle() && c2.is_idle());
    // the link can be unpaired by either side; both sessions forget it
    assert_eq!(
        relay.on_unpair(s2, &Unpair { token: [7; 32] }),
        Unpaired::Link { token: [7; 32] }
    );
    assert_eq!(
        relay.on_unpair(s1, &Unpair { token: [7; 32] }),
        Unpaired::Nothing
    );
}

#[test]
fn unpair_and_session_close_cancel_pending_pairings() {
    let mut relay = RelayServer::new();
    let (s1, s2) = (relay.accept(), relay.accept());
    relay.on_pair(s1, &pair(true, 1, 1)).unwrap();
    assert_eq!(
        relay.on_unpair(s2, &Unpair { token: [1; 32] }),
        Unpaired::Pending
    );
    assert_eq!(relay.pending(), 0);
    // the other half now starts a new pending pairing
    assert_eq!(relay.on_pair(s2, &pair(false, 1, 2)), Ok(None));
    relay.on_pair(s1, &pair(true, 3, 1)).unwrap();
    relay.on_pair(s2, &pair(false, 3, 2)).unwrap().unwrap();
    assert_eq!(relay.close_session(s2), vec![[3; 32]]);
    assert_eq!(relay.pending(), 0);
    assert_eq!(
        relay.on_pair(s2, &pair(true, 4, 1)),
        Err(RelayError::UnknownSession)
    );
}

#[test]
fn pending_pairings_are_bounded_per_session() {
    let mut relay = RelayServer::new();
    let s = relay.accept();
    for t in 0..MAX_PENDING_PER_SESSION {
        let mut token = [0; 32];
        token[..8].copy_from_slice(&(t as u64).to_le_bytes());
        relay
            .on_pair(
                s,
                &Pair {
                    is_initiator: true,
                    token,
                    id: 1,
                    seq: 0,
                },
            )
            .unwrap();
    }
    assert_eq!(
        relay.on_pair(s, &pair(true, 0xee, 1)),
        Err(RelayError::TooManyPairings {
            max: MAX_PENDING_PER_SESSION
        })
    );
    relay.close_session(s);
    assert_eq!(relay.pending(), 0);
}

#[test]
fn client_refuses_duplicates_after_destroy_and_beyond_its_bound() {
    let mut c = RelayClient::new();
    c.pair(true, [1; 32], 5).unwrap();
    assert_eq!(c.pair(false, [1; 32], 6), Err(RelayError::AlreadyPairing));
    assert_eq!(c.unpair([1; 32]), Ok(Unpair { token: [1; 32] }));
    assert!(c.pair(false, [1; 32], 6).is_ok());
    for t in 1..MAX_REQUESTS {
        let mut token = [2; 32];
        token[..8].copy_from_slice(&(t as u64).to_le_bytes());
        c.pair(true, token, 1).unwrap();
    }
    assert_eq!(
        c.pair(true, [3; 32], 1),
        Err(RelayError::TooManyPairings { max: MAX_REQUESTS })
    );
    assert_eq!(c.destroy().len(), MAX_REQUESTS);
    assert_eq!(c.pair(true, [3; 32], 1), Err(RelayError::ChannelDestroyed));
    assert_eq!(c.unpair([3; 32]), Err(RelayError::ChannelDestroyed));
}

#[test]
fn channel_messages_by_type() {
    let p = RelayMessage::Pair(pair(false, 9, 300));
    let (kind, bytes) = p.encode();
    assert_eq!(kind, MESSAGE_PAIR);
    assert_eq!(RelayMessage::decode(kind, &bytes), Ok(Some(p)));
    let u = RelayMessage::Unpair(Unpair { token: [9; 32] });
    let (kind, bytes) = u.encode();
    assert_eq!(RelayMessage::decode(kind, &bytes), Ok(Some(u)));
    assert_eq!(RelayMessage::decode(2, &bytes), Ok(None));
    assert!(RelayMessage::decode(MESSAGE_PAIR, &[]).is_err());
}
