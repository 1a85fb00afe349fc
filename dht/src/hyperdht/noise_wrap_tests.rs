use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;

fn pair() -> (NoiseWrap, NoiseWrap, [u8; 32]) {
    let server = KeyPair::from_seed([2; 32]);
    let server_pk = *server.public_key();
    let client = NoiseWrap::initiator(
        KeyPair::from_seed([1; 32]),
        KeyPair::from_seed([3; 32]),
        server_pk,
    )
    .unwrap();
    let srv = NoiseWrap::responder(server, KeyPair::from_seed([4; 32])).unwrap();
    (client, srv, server_pk)
}

#[test]
fn server_learns_the_client_key_from_message_one() {
    let (mut client, mut srv, server_pk) = pair();
    assert!(client.is_initiator() && !srv.is_initiator());
    assert_eq!(client.remote_public_key(), Some(server_pk));
    assert_eq!(srv.remote_public_key(), None);
    let p = NoisePayload {
        firewall: 1,
        addresses4: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10001)],
        ..NoisePayload::default()
    };
    let msg1 = client.send(&p).unwrap();
    assert_eq!(srv.recv(&msg1).unwrap(), p);
    assert_eq!(
        srv.remote_public_key(),
        Some(*KeyPair::from_seed([1; 32]).public_key())
    );
    assert_eq!(srv.finish(), Err(NoiseWrapError::Unfinished));
    let msg2 = srv.send(&NoisePayload::default()).unwrap();
    assert_eq!(client.recv(&msg2).unwrap(), NoisePayload::default());
    let (c, s) = (client.finish().unwrap(), srv.finish().unwrap());
    assert_eq!(c.holepunch_secret, s.holepunch_secret);
    assert_eq!(c.handshake.hash, s.handshake.hash);
    assert_eq!(c.remote_id, noise::stream_id(&s.handshake.hash, false));
    assert_eq!(s.remote_id, noise::stream_id(&c.handshake.hash, true));
}

#[test]
fn a_payload_that_is_not_a_noise_payload_is_a_typed_error() {
    let (mut client, mut srv, _) = pair();
    // version 1 with flags saying a holepunch block follows, and nothing after
    let mut raw = Handshake::new(
        Pattern::IK,
        Role::Initiator,
        KeyPair::from_seed([1; 32]),
        KeyPair::from_seed([3; 32]),
        &NS.peer_handshake,
        Some(*KeyPair::from_seed([2; 32]).public_key()),
    )
    .unwrap();
    let msg1 = raw.write_message(&[1, 1, 0, 0]).unwrap();
    assert!(matches!(srv.recv(&msg1), Err(NoiseWrapError::Payload(_))));
    // a dead handshake refuses further steps
    assert_eq!(
        srv.send(&NoisePayload::default()),
        Err(NoiseWrapError::Failed)
    );
    assert_eq!(srv.finish(), Err(NoiseWrapError::Failed));
    // garbage as message 2
    client.send(&NoisePayload::default()).unwrap();
    assert!(matches!(
        client.recv(&[0; 10]),
        Err(NoiseWrapError::Handshake(HandshakeError::TooShort { .. }))
    ));
}

#[test]
fn another_version_decodes_to_its_version_only() {
    let (_, mut srv, _) = pair();
    let mut raw = Handshake::new(
        Pattern::IK,
        Role::Initiator,
        KeyPair::from_seed([1; 32]),
        KeyPair::from_seed([3; 32]),
        &NS.peer_handshake,
        Some(*KeyPair::from_seed([2; 32]).public_key()),
    )
    .unwrap();
    let msg1 = raw.write_message(&[2, 0xff, 0xff]).unwrap();
    let p = srv.recv(&msg1).unwrap();
    assert_eq!(p.version, 2);
    assert_eq!(p.udx, None);
}

#[test]
fn a_node_key_pair_converts_to_the_same_noise_key() {
    let node = crate::crypto::KeyPair::from_seed(&[5; 32]);
    assert_eq!(noise_key_pair(&node).public_key(), &node.public_key);
}
