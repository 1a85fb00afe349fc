//! Property tests: decode(encode(x)) == x for every wire type, and the encoding is canonical
//! (re-encoding gives the same bytes). Also: no decoder panics on arbitrary bytes.

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use dht::codec::{Decode, Encode, MAX_SAFE_UINT, Reader, Writer};
use dht::hyperdht::messages::*;
use dht::rpc::wire::{Message, Request, Response};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=0xfc,
        0xfdu64..=0xffff,
        0x1_0000u64..=0xffff_ffff,
        0x1_0000_0000u64..=MAX_SAFE_UINT,
    ]
}

fn addr4() -> impl Strategy<Value = SocketAddrV4> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn addr6() -> impl Strategy<Value = SocketAddrV6> {
    (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..300)
}

fn peer() -> impl Strategy<Value = Peer> {
    (any::<[u8; 32]>(), vec(addr4(), 0..4)).prop_map(|(public_key, relay_addresses)| Peer {
        public_key,
        relay_addresses,
    })
}

fn request() -> impl Strategy<Value = Request> {
    (
        any::<u16>(),
        addr4(),
        of(any::<[u8; 32]>()),
        of(any::<[u8; 32]>()),
        any::<bool>(),
        uint(),
        of(any::<[u8; 32]>()),
        of(bytes()),
    )
        .prop_map(
            |(tid, to, id, token, internal, command, target, value)| Request {
                tid,
                to,
                id,
                token,
                internal,
                command,
                target,
                value,
            },
        )
}

fn response() -> impl Strategy<Value = Response> {
    (
        any::<u16>(),
        addr4(),
        of(any::<[u8; 32]>()),
        of(any::<[u8; 32]>()),
        vec(addr4(), 0..21),
        uint(),
        of(bytes()),
    )
        .prop_map(
            |(tid, to, id, token, closer_nodes, error, value)| Response {
                tid,
                to,
                id,
                token,
                closer_nodes,
                error,
                value,
            },
        )
}

fn noise_payload() -> impl Strategy<Value = NoisePayload> {
    let holepunch = (uint(), vec((addr4(), addr4()), 0..3)).prop_map(|(id, r)| HolepunchInfo {
        id,
        relays: r
            .into_iter()
            .map(|(relay_address, peer_address)| RelayInfo {
                relay_address,
                peer_address,
            })
            .collect(),
    });
    let udx =
        (uint(), any::<bool>(), uint(), uint()).prop_map(|(version, reusable_socket, id, seq)| {
            UdxInfo {
                version,
                reusable_socket,
                id,
                seq,
            }
        });
    let relay_through =
        (uint(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(version, public_key, token)| {
            RelayThroughInfo {
                version,
                public_key,
                token,
            }
        });
    (
        (
            uint(),
            uint(),
            of(holepunch),
            vec(addr4(), 0..3),
            vec(addr6(), 0..2),
        ),
        (
            of(udx),
            of(uint().prop_map(|version| SecretStreamInfo { version })),
            of(relay_through),
            of(vec(addr4(), 0..3)),
        ),
    )
        .prop_map(
            |(
                (error, firewall, holepunch, addresses4, addresses6),
                (udx, secret_stream, relay_through, relay_addresses),
            )| NoisePayload {
                version: 1,
                error,
                firewall,
                holepunch,
                addresses4,
                addresses6,
                udx,
                secret_stream,
                relay_through,
                relay_addresses,
            },
        )
}

fn holepunch_payload() -> impl Strategy<Value = HolepunchPayload> {
    (
        (uint(), uint(), uint(), any::<bool>(), any::<bool>()),
        (
            of(vec(addr4(), 0..3)),
            of(addr4()),
            of(any::<[u8; 32]>()),
            of(any::<[u8; 32]>()),
        ),
    )
        .prop_map(
            |(
                (error, firewall, round, connected, punching),
                (addresses, remote_address, token, remote_token),
            )| {
                HolepunchPayload {
                    error,
                    firewall,
                    round,
                    connected,
                    punching,
                    addresses,
                    remote_address,
                    token,
                    remote_token,
                }
            },
        )
}

fn check<T: Encode + Decode + PartialEq + Debug>(x: &T) -> Result<(), TestCaseError> {
    let enc = x.to_bytes();
    let back = T::from_bytes(&enc).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, x);
    prop_assert_eq!(back.to_bytes(), enc);
    Ok(())
}

proptest! {
    #[test]
    fn rpc_request(x in request()) { check(&Message::Request(x))? }

    #[test]
    fn rpc_response(x in response()) { check(&Message::Response(x))? }

    #[test]
    fn peer_record(x in peer()) { check(&x)? }

    #[test]
    fn lookup_raw_reply(peers in vec(peer(), 0..5), bump in uint()) {
        check(&LookupRawReply { peers, bump })?
    }

    #[test]
    fn announce(peer in of(peer()), refresh in of(any::<[u8; 32]>()), sig in of(any::<[u8; 32]>()), bump in uint()) {
        let signature = sig.map(|s| { let mut x = [0u8; 64]; x[..32].copy_from_slice(&s); x[32..].copy_from_slice(&s); x });
        check(&Announce { peer, refresh, signature, bump })?
    }

    #[test]
    fn handshake(mode in uint(), noise in bytes(), peer_address in of(addr4()), relay_address in of(addr4())) {
        check(&Handshake { mode, noise, peer_address, relay_address })?
    }

    #[test]
    fn holepunch(mode in uint(), id in uint(), payload in bytes(), peer_address in of(addr4())) {
        check(&Holepunch { mode, id, payload, peer_address })?
    }

    #[test]
    fn noise_payload_v1(x in noise_payload()) { check(&x)? }

    #[test]
    fn holepunch_payload_all_flags(x in holepunch_payload()) { check(&x)? }

    #[test]
    fn mutable_messages(seq in uint(), value in bytes(), pk in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&s);
        check(&MutableSignable { seq, value: value.clone() })?;
        check(&MutableGetResponse { seq, value: value.clone(), signature })?;
        check(&MutablePutRequest { public_key: pk, seq, value, signature })?;
    }

    #[test]
    fn plugin_request(plugin in ".{0,20}", version in uint(), command in uint(), value in of(bytes())) {
        check(&PluginRequest { plugin, version, command, value })?
    }

    #[test]
    fn primitives(n in uint(), i in -(1i64 << 52)..(1i64 << 52), b in bytes(), s in ".{0,30}") {
        let mut out = Vec::new();
        out.put_uint(n);
        out.put_int(i);
        out.put_buffer(&b);
        out.put_string(&s);
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.uint().unwrap(), n);
        prop_assert_eq!(r.int().unwrap(), i);
        prop_assert_eq!(r.buffer().unwrap(), &b[..]);
        prop_assert_eq!(r.string().unwrap(), &s[..]);
        prop_assert!(r.is_empty());
    }

    /// Arbitrary bytes through every decoder: errors are fine, panics are not, and whatever
    /// decodes re-encodes canonically (the fuzz oracle, run here on random inputs too).
    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..200)) {
        for (_, check) in dht::fuzzing::TARGETS {
            check(&data);
        }
    }

    /// Any strict prefix of a valid datagram fails to decode with an offset inside the input.
    #[test]
    fn truncated_datagrams_report_an_offset(x in response(), cut in any::<prop::sample::Index>()) {
        let enc = Message::Response(x).to_bytes();
        let cut = cut.index(enc.len());
        if let Err(e) = Message::from_bytes(&enc[..cut]) {
            prop_assert!(e.offset <= cut);
        } else {
            // Only possible when the cut removed nothing the flags announce — never for a
            // strict prefix, since every field the flags name is written.
            prop_assert!(false, "prefix of {} bytes decoded", cut);
        }
    }
}
