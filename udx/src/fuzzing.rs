//! Per-input checks shared by the fuzz targets and the corpus replay in `cargo test`.

use crate::proto::packet::{self, Packet};

/// Decodes `data`; if it decodes, re-encodes and checks that decoding again gives the same
/// header, SACK blocks and payload.
pub fn packet_roundtrip(data: &[u8]) {
    let Ok(p) = Packet::decode(data) else {
        return;
    };
    let sacks: Vec<_> = p.sacks().collect();
    assert!(sacks.len() <= data.len() / 8);
    let mut out = vec![0u8; data.len() + 64];
    // Re-encode: SACK packets are re-encoded with their blocks (payload only if the data
    // offset separated it), others with their payload and padding.
    let n = if p.header.flags & packet::flags::SACK != 0 {
        if p.payload.is_empty() || p.header.data_offset == 0 {
            packet::encode(&mut out, p.header, &sacks, 0, &[])
        } else {
            return; // ambiguous layouts (payload overlapping the SACK area) are not re-encoded
        }
    } else {
        packet::encode(
            &mut out,
            p.header,
            &[],
            usize::from(p.header.data_offset),
            p.payload,
        )
    };
    let Some(n) = n else { return };
    let q = Packet::decode(&out[..n]).expect("re-encoded packet decodes");
    let qs: Vec<_> = q.sacks().collect();
    if sacks.is_empty() {
        assert_eq!(
            q.header.flags & !packet::flags::SACK,
            p.header.flags & !packet::flags::SACK
        );
    }
    assert_eq!(q.header.stream_id, p.header.stream_id);
    assert_eq!(q.header.seq, p.header.seq);
    assert_eq!(q.header.ack, p.header.ack);
    assert_eq!(q.header.rwnd, p.header.rwnd);
    assert_eq!(qs, sacks);
    if p.header.flags & packet::flags::SACK == 0 {
        assert_eq!(q.payload, p.payload);
        assert_eq!(q.header, p.header);
    }
}
