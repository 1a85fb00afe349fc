use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::hyperdht::messages::HolepunchInfo;
use crate::hyperdht::messages::RelayInfo;

fn a(ip: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), port)
}

fn payload(firewall: Firewall, addrs: Vec<SocketAddrV4>, punch: bool) -> NoisePayload {
    NoisePayload {
        firewall: firewall.to_u64(),
        addresses4: addrs,
        holepunch: punch.then(|| HolepunchInfo {
            id: 0,
            relays: vec![RelayInfo {
                relay_address: a([1, 1, 1, 1], 1),
                peer_address: a([2, 2, 2, 2], 2),
            }],
        }),
        ..NoisePayload::default()
    }
}

#[test]
fn open_server_goes_to_its_first_public_address() {
    let p = payload(
        Firewall::Open,
        vec![a([127, 0, 0, 1], 9), a([8, 8, 8, 8], 10)],
        false,
    );
    let got = choose_path(
        &p,
        true,
        a([9, 9, 9, 9], 1),
        a([5, 5, 5, 5], 1),
        Firewall::Unknown,
    );
    assert_eq!(got, Ok(Path::Direct(a([8, 8, 8, 8], 10))));
}

#[test]
fn relayed_server_without_holepunch_goes_where_the_relay_saw_it() {
    let p = payload(Firewall::Unknown, vec![a([127, 0, 0, 1], 9)], false);
    let got = choose_path(
        &p,
        true,
        a([9, 9, 9, 9], 1),
        a([5, 5, 5, 5], 1),
        Firewall::Unknown,
    );
    assert_eq!(got, Ok(Path::Direct(a([9, 9, 9, 9], 1))));
}

#[test]
fn holepunchable_server_on_the_same_host_takes_the_lan_shortcut() {
    let p = payload(Firewall::Consistent, vec![], true);
    let got = choose_path(
        &p,
        true,
        a([127, 0, 0, 1], 7),
        a([127, 0, 0, 1], 8),
        Firewall::Unknown,
    );
    assert_eq!(got, Ok(Path::Lan(a([127, 0, 0, 1], 7))));
}

#[test]
fn two_firewalled_ends_on_different_hosts_need_a_holepunch() {
    let p = payload(Firewall::Consistent, vec![], true);
    let got = choose_path(
        &p,
        true,
        a([9, 9, 9, 9], 7),
        a([5, 5, 5, 5], 8),
        Firewall::Unknown,
    );
    assert_eq!(got, Err(ConnectError::CannotHolepunch));
    let got = choose_path(
        &p,
        true,
        a([9, 9, 9, 9], 7),
        a([5, 5, 5, 5], 8),
        Firewall::Open,
    );
    assert_eq!(got, Ok(Path::Direct(a([9, 9, 9, 9], 7))));
}

#[test]
fn a_reply_from_another_node_is_refused() {
    let server = KeyPair::from_seed(&[1; 32]);
    let mut c = ClientHandshake::new(
        &KeyPair::from_seed(&[2; 32]),
        noise::KeyPair::from_seed([3; 32]),
        server.public_key,
        1,
        None,
    )
    .unwrap();
    let r = Reply {
        from: a([1, 2, 3, 4], 5),
        from_id: None,
        to: a([1, 2, 3, 4], 6),
        token: None,
        closer_nodes: vec![],
        error: 0,
        value: Some(vec![0, 4, 1, 0]),
        rtt: std::time::Duration::ZERO,
    };
    assert_eq!(
        c.on_reply(a([9, 9, 9, 9], 9), &r),
        Err(ConnectError::BadHandshakeReply)
    );
    assert_eq!(
        c.on_reply(a([1, 2, 3, 4], 5), &r),
        Err(ConnectError::HandshakeInvalid)
    );
}
