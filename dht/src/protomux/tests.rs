use super::*;
use crate::codec::{Decode, Encode};

/// Moves every frame `from` wrote into `to`.
fn pump(from: &mut Mux, to: &mut Mux) {
    while let Some(f) = from.poll_transmit() {
        to.handle_frame(&f).unwrap();
    }
}

fn events(m: &mut Mux) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

#[test]
fn messages_for_a_channel_not_yet_accepted_are_held_then_delivered_in_order() {
    let (mut a, mut b) = (Mux::default(), Mux::default());
    b.pair("svc", None);
    let ca = a.open("svc", Some(b"k"), b"hs-a").unwrap();
    a.send(ca, 0, b"one").unwrap();
    a.send(ca, 1, b"two").unwrap();
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![Event::Pair {
            protocol: "svc".into(),
            id: Some(b"k".to_vec())
        }]
    );
    assert!(!b.is_paused());
    let cb = b.open("svc", Some(b"k"), b"hs-b").unwrap();
    b.finish_pairing("svc", Some(b"k"));
    assert_eq!(
        events(&mut b),
        vec![
            Event::Opened {
                channel: cb,
                handshake: b"hs-a".to_vec()
            },
            Event::Message {
                channel: cb,
                kind: 0,
                payload: b"one".to_vec()
            },
            Event::Message {
                channel: cb,
                kind: 1,
                payload: b"two".to_vec()
            },
        ]
    );
    pump(&mut b, &mut a);
    assert_eq!(
        events(&mut a),
        vec![Event::Opened {
            channel: ca,
            handshake: b"hs-b".to_vec()
        }]
    );
    assert!(a.is_opened(ca) && b.is_opened(cb));
}

#[test]
fn an_unaccepted_open_is_rejected_once_pairing_finishes() {
    let (mut a, mut b) = (Mux::default(), Mux::default());
    b.pair("svc", None);
    let ca = a.open("svc", None, b"").unwrap();
    pump(&mut a, &mut b);
    assert!(matches!(events(&mut b).as_slice(), [Event::Pair { .. }]));
    b.finish_pairing("svc", None);
    pump(&mut b, &mut a);
    assert_eq!(events(&mut a), vec![Event::Rejected { channel: ca }]);
    assert!(a.is_idle());
    // the id is free again and a new channel of the protocol may open
    let again = a.open("svc", None, b"").unwrap();
    assert_eq!(again.local_id(), ca.local_id());
    assert_ne!(again, ca, "a stale handle does not name the new channel");
    assert_eq!(a.send(ca, 0, b"x"), Err(MuxError::UnknownChannel));
}

#[test]
fn held_bytes_pause_at_the_js_threshold_and_fail_at_the_bound() {
    let limits = Limits {
        max_buffered_bytes: 100_000,
        ..Limits::default()
    };
    let (mut a, mut b) = (Mux::default(), Mux::new(limits));
    b.pair("svc", None);
    let ca = a.open("svc", None, b"").unwrap();
    pump(&mut a, &mut b);
    let chunk = vec![0u8; 4096];
    let mut sent = 0;
    let err = loop {
        a.send(ca, 0, &chunk).unwrap();
        let f = a.poll_transmit().unwrap();
        match b.handle_frame(&f) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        if sent == 9 {
            assert!(b.is_paused(), "above 32768 counted bytes");
        }
        assert!(sent < 100, "never refused");
    };
    assert!(!Mux::default().is_paused());
    assert_eq!(err, MuxError::BufferOverflow { max: 100_000 });
    // the open held beside them counts 512
    assert_eq!(sent, (100_000 - 512) / (4096 + 512));
}

#[test]
fn remote_ids_must_grow_by_one_and_stay_within_the_bound() {
    let mut m = Mux::new(Limits {
        max_remote_channels: 3,
        ..Limits::default()
    });
    let open = |id| {
        Frame::Open(Open {
            local_id: id,
            protocol: "p".into(),
            id: None,
            handshake: vec![],
        })
        .to_bytes()
    };
    assert_eq!(
        m.handle_frame(&open(2)),
        Err(MuxError::InvalidOpen { remote_id: 2 })
    );
    for id in 1..=3 {
        m.handle_frame(&open(id)).unwrap(); // rejected at once: nobody speaks "p"
    }
    assert_eq!(std::iter::from_fn(|| m.poll_transmit()).count(), 3);
    // rejected slots may be reused, in any order
    m.handle_frame(&open(2)).unwrap();
    assert_eq!(
        m.handle_frame(&open(4)),
        Err(MuxError::TooManyRemoteChannels { max: 3 })
    );
    assert_eq!(
        m.handle_frame(&open(0)),
        Err(MuxError::InvalidOpen { remote_id: 0 })
    );
}

#[test]
fn an_open_for_a_slot_in_use_is_an_error() {
    let (mut a, mut b) = (Mux::default(), Mux::default());
    b.pair("p", None);
    a.open("p", None, b"").unwrap();
    let f = a.poll_transmit().unwrap();
    b.handle_frame(&f).unwrap();
    assert_eq!(
        b.handle_frame(&f),
        Err(MuxError::InvalidOpen { remote_id: 1 })
    );
}

#[test]
fn local_channels_are_bounded_and_unique_per_protocol_and_id() {
    let mut m = Mux::new(Limits {
        max_local_channels: 2,
        ..Limits::default()
    });
    let c1 = m.open("p", None, b"").unwrap();
    assert_eq!(m.open("p", None, b""), Err(MuxError::AlreadyOpen));
    m.open("p", Some(b"x"), b"").unwrap();
    assert_eq!(
        m.open("q", None, b""),
        Err(MuxError::TooManyLocalChannels { max: 2 })
    );
    // closed before the peer answered: the id stays taken until the peer's open or reject
    m.close(c1).unwrap();
    assert_eq!(
        m.open("q", None, b""),
        Err(MuxError::TooManyLocalChannels { max: 2 })
    );
    m.handle_frame(
        &Frame::Reject {
            remote_id: c1.local_id(),
        }
        .to_bytes(),
    )
    .unwrap();
    assert!(m.open("q", None, b"").is_ok());
    assert_eq!(
        m.handle_frame(&Frame::Reject { remote_id: 9 }.to_bytes()),
        Err(MuxError::InvalidReject { local_id: 9 })
    );
}

#[test]
fn a_peer_open_after_our_close_frees_the_id_and_is_not_paired() {
    let (mut a, mut b) = (Mux::default(), Mux::default());
    let ca = a.open("p", None, b"").unwrap();
    a.close(ca).unwrap();
    b.open("p", None, b"").unwrap();
    pump(&mut b, &mut a);
    assert!(events(&mut a).is_empty());
    assert!(a.is_idle());
}

#[test]
fn corked_sends_leave_as_one_batch_that_decodes_to_the_same_frames() {
    let (mut a, mut b) = (Mux::default(), Mux::default());
    let ca = a.open("p", None, b"").unwrap();
    let cb = b.open("p", None, b"").unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    events(&mut a);
    events(&mut b);
    a.cork();
    a.cork();
    a.send(ca, 0, b"1").unwrap();
    a.uncork();
    assert!(a.poll_transmit().is_none(), "still corked once");
    a.send(ca, 1, b"2").unwrap();
    a.close(ca).unwrap();
    a.uncork();
    let batch = a.poll_transmit().unwrap();
    assert!(a.poll_transmit().is_none());
    assert!(matches!(Frame::from_bytes(&batch), Ok(Frame::Batch(e)) if e.len() == 3));
    b.handle_frame(&batch).unwrap();
    assert_eq!(
        events(&mut b),
        vec![
            Event::Message {
                channel: cb,
                kind: 0,
                payload: b"1".to_vec()
            },
            Event::Message {
                channel: cb,
                kind: 1,
                payload: b"2".to_vec()
            },
            Event::Closed { channel: cb },
        ]
    );
}

#[test]
fn nested_batches_are_bounded() {
    let mut f = Frame::Message(Message {
        channel: 1,
        kind: 0,
        payload: vec![],
    });
    for _ in 0..MAX_BATCH_DEPTH {
        f = Frame::Batch(vec![f]);
    }
    let ok = f.to_bytes();
    assert_eq!(Frame::from_bytes(&ok), Ok(f.clone()));
    let deep = Frame::Batch(vec![f]).to_bytes();
    assert!(matches!(
        Mux::default().handle_frame(&deep),
        Err(MuxError::Decode(_))
    ));
}

#[test]
fn shutdown_closes_every_channel() {
    let mut m = Mux::default();
    let c1 = m.open("p", None, b"").unwrap();
    let c2 = m.open("q", None, b"").unwrap();
    m.shutdown();
    assert_eq!(
        events(&mut m),
        vec![Event::Closed { channel: c1 }, Event::Closed { channel: c2 }]
    );
    assert_eq!(m.close(c1), Err(MuxError::UnknownChannel));
}
