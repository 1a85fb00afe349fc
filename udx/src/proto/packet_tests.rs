use super::packet::*;
use proptest::prelude::*;

#[test]
fn header_bytes_match_js_capture() {
    // A pure ACK as udx-native sends it: id 7, rwnd 4 MiB (00 00 40 00), seq 3, ack 5.
    let h = Header {
        flags: 0,
        data_offset: 0,
        stream_id: 7,
        rwnd: 4 * 1024 * 1024,
        seq: 3,
        ack: 5,
    };
    let mut b = [0u8; 20];
    h.encode(&mut b).unwrap();
    assert_eq!(hex(&b), "ff01000007000000000040000300000005000000");
    assert_eq!(Header::decode(&b).unwrap(), h);
    assert_eq!(peek_stream_id(&b), Some(7));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn rejects_short_and_foreign() {
    assert_eq!(
        Packet::decode(&[0xff, 1, 0]),
        Err(DecodeError::TooShort { len: 3 })
    );
    let mut b = [0u8; 20];
    b[0] = 0x03; // dht-rpc request
    assert!(matches!(
        Packet::decode(&b),
        Err(DecodeError::BadMagic { .. })
    ));
    assert_eq!(peek_stream_id(&b), None);
    assert_eq!(peek_stream_id(&[0xff, 1, 0, 0, 1, 0, 0, 0]), None);
}

#[test]
fn data_offset_past_end_is_rejected() {
    let mut b = [0u8; 24];
    Header {
        flags: flags::DATA,
        data_offset: 5,
        ..Default::default()
    }
    .encode(&mut b)
    .unwrap();
    assert_eq!(
        Packet::decode(&b),
        Err(DecodeError::BadDataOffset {
            offset: 5,
            available: 4
        })
    );
}

#[test]
fn sack_count_follows_libudx_rule() {
    // 20 + 3 blocks + 3 stray bytes: 3 blocks.
    let mut b = vec![0u8; 20 + 24 + 3];
    Header {
        flags: flags::SACK,
        ..Default::default()
    }
    .encode(&mut b)
    .unwrap();
    assert_eq!(Packet::decode(&b).unwrap().sack_count(), 3);
    // data offset 8 bounds the SACK area to one block.
    b[3] = 8;
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.sack_count(), 1);
    assert_eq!(p.payload.len(), 24 + 3 - 8);
}

#[test]
fn mtu_probe_padding_is_skipped() {
    let mut out = [0u8; 100];
    let h = Header {
        flags: flags::DATA,
        seq: 9,
        ..Default::default()
    };
    let n = encode(&mut out, h, &[], 32, b"hello").unwrap();
    assert_eq!(n, 20 + 32 + 5);
    let p = Packet::decode(&out[..n]).unwrap();
    assert_eq!(p.payload, b"hello");
    assert_eq!(p.header.data_offset, 32);
}

#[test]
fn seq_arithmetic_wraps() {
    assert!(seq_lt(u32::MAX, 0));
    assert!(!seq_lt(0, u32::MAX));
    assert_eq!(seq_diff(1, u32::MAX), 2);
}

proptest! {
    #[test]
    fn roundtrip_data(flags_ in 0u8..64, id: u32, rwnd: u32, seq: u32, ack: u32,
                      pad in 0usize..64, payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let f = flags_ & !flags::SACK;
        let h = Header { flags: f, data_offset: 0, stream_id: id, rwnd, seq, ack };
        let mut out = vec![0u8; 2048];
        let n = encode(&mut out, h, &[], pad, &payload).unwrap();
        let p = Packet::decode(&out[..n]).unwrap();
        prop_assert_eq!(p.header, Header { data_offset: pad as u8, ..h });
        prop_assert_eq!(p.payload, &payload[..]);
        prop_assert_eq!(p.sack_count(), 0);
    }

    #[test]
    fn roundtrip_sacks(id: u32, seq: u32, ack: u32,
                       blocks in proptest::collection::vec((any::<u32>(), any::<u32>()), 1..=MAX_SACKS)) {
        let blocks: Vec<_> = blocks.into_iter().map(|(start, end)| SackBlock { start, end }).collect();
        let h = Header { flags: 0, data_offset: 0, stream_id: id, rwnd: 1, seq, ack };
        let mut out = vec![0u8; 2048];
        let n = encode(&mut out, h, &blocks, 0, &[]).unwrap();
        prop_assert_eq!(n, 20 + 8 * blocks.len());
        let p = Packet::decode(&out[..n]).unwrap();
        prop_assert_eq!(p.header.flags, flags::SACK);
        prop_assert_eq!(p.sacks().collect::<Vec<_>>(), blocks);
    }

    #[test]
    fn decode_never_panics_and_reencodes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        crate::fuzzing::packet_roundtrip(&data);
        let mut d = data.clone();
        if d.len() >= 2 { d[0] = 0xff; d[1] = 1; }
        crate::fuzzing::packet_roundtrip(&d);
    }
}
