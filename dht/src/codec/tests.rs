use super::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn uint_known_answers_from_protocol_map() {
    for (n, want) in [
        (0u64, "00"),
        (252, "fc"),
        (253, "fdfd00"),
        (65535, "fdffff"),
        (65536, "fe00000100"),
        (0xffff_ffff, "feffffffff"),
        (1 << 32, "ff0000000001000000"),
    ] {
        let mut out = Vec::new();
        out.put_uint(n);
        assert_eq!(hex(&out), want, "encode {n}");
        assert_eq!(Reader::new(&out).uint(), Ok(n), "decode {want}");
    }
}

#[test]
fn uint_accepts_non_minimal_forms_like_js() {
    assert_eq!(Reader::new(&[0xfd, 5, 0]).uint(), Ok(5));
    assert_eq!(Reader::new(&[0xfe, 5, 0, 0, 0]).uint(), Ok(5));
}

#[test]
fn uint_above_2_pow_53_is_refused_with_offset() {
    let buf = [0x00, 0xff, 0, 0, 0, 0, 0, 0, 0x20, 0];
    let mut r = Reader::new(&buf);
    assert_eq!(r.u8(), Ok(0));
    let e = r.uint().unwrap_err();
    assert_eq!(e.offset, 1);
    assert_eq!(e.kind, DecodeErrorKind::UintOverflow(1 << 53));
}

#[test]
fn truncated_input_reports_offset_of_the_field() {
    let e = Reader::new(&[0x05, 1, 2]).buffer().unwrap_err();
    assert_eq!(e.offset, 0);
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            needed: 5,
            available: 2
        }
    );
    assert!(Reader::new(&[]).u8().is_err());
    assert!(Reader::new(&[0xfd, 1]).uint().is_err());
}

#[test]
fn forged_array_count_is_refused_before_allocating() {
    // count 0x100001 > limit
    let e = Reader::new(&[0xfe, 0x01, 0x00, 0x10, 0x00])
        .ipv4_addr_array()
        .unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::ArrayTooLong { .. }));
    // count 1000 with 6 bytes of input
    let e = Reader::new(&[0xfd, 0xe8, 0x03, 1, 2, 3, 4, 5, 6])
        .ipv4_addr_array()
        .unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }));
}

#[test]
fn int_is_zig_zag() {
    for (n, want) in [(0i64, "00"), (-1, "01"), (1, "02"), (-2, "03"), (2, "04")] {
        let mut out = Vec::new();
        out.put_int(n);
        assert_eq!(hex(&out), want);
        assert_eq!(Reader::new(&out).int(), Ok(n));
    }
}

#[test]
fn bool_is_true_only_for_one() {
    assert_eq!(Reader::new(&[1]).bool(), Ok(true));
    assert_eq!(Reader::new(&[2]).bool(), Ok(false));
}

#[test]
fn addresses_known_answers() {
    let mut out = Vec::new();
    out.put_ipv4_addr(&"1.2.3.4:49737".parse().unwrap());
    assert_eq!(hex(&out), "0102030449c2");
    let mut out = Vec::new();
    out.put_ipv6_addr(&"[::1]:1".parse().unwrap());
    assert_eq!(hex(&out), "000000000000000000000000000000010100");
}
