use super::*;
use serde_json::json;

fn req(line: &str) -> Option<InferenceRequest> {
    match parse_line(line.as_bytes()) {
        Some(Incoming::InferenceRequest(r)) => Some(r),
        _ => None,
    }
}

#[test]
fn requests_follow_the_poc_rules() {
    let r = req(r#"{"type":"inference_request","request_id":"a-1","prompt":"hi","model":"m"}"#)
        .unwrap();
    assert_eq!(r.request_id, json!("a-1"));
    assert_eq!(r.prompt, "hi");
    assert_eq!(r.model.as_deref(), Some("m"));
    // request_id of any JSON type comes back unchanged.
    for id in [
        json!(7),
        json!(1.5),
        json!({"x": [1]}),
        json!([1, "a"]),
        json!(false),
        json!(""),
    ] {
        let line = json!({"type": "inference_request", "request_id": id, "prompt": ""}).to_string();
        let r = req(&line).unwrap();
        assert_eq!(r.request_id, id);
        assert_eq!(r.prompt, "");
        let out: Value =
            serde_json::from_str(&inference_response(&r.request_id, "x", "m")).unwrap();
        assert_eq!(out["request_id"], id);
    }
    // A prompt of another type is String(prompt).
    assert_eq!(
        req(r#"{"type":"inference_request","request_id":1,"prompt":42}"#)
            .unwrap()
            .prompt,
        "42"
    );
    // Missing or null request_id / prompt: ignored.
    assert!(req(r#"{"type":"inference_request","prompt":"hi"}"#).is_none());
    assert!(req(r#"{"type":"inference_request","request_id":null,"prompt":"hi"}"#).is_none());
    assert!(req(r#"{"type":"inference_request","request_id":"a"}"#).is_none());
    assert!(req(r#"{"type":"inference_request","request_id":"a","prompt":null}"#).is_none());
}

#[test]
fn malformed_and_foreign_lines_are_ignored() {
    for line in [
        "",
        "   ",
        "{",
        "not json",
        "{\"type\":\"inference_request\",\"request_id\":\"a\",\"prompt\":\"x\"",
        "null",
        "5",
        "[1,2]",
        "{\"type\":\"peer_announce\",\"node_name\":\"x\"}",
        "{\"type\":42}",
        "\u{0}\u{1}\u{2}",
    ] {
        assert_eq!(parse_line(line.as_bytes()), None, "{line:?}");
    }
    // Invalid UTF-8 inside a string becomes U+FFFD, as Node's utf8 decoding does.
    let mut bytes = br#"{"type":"inference_request","request_id":"a","prompt":""#.to_vec();
    bytes.extend_from_slice(&[0xff, b'"', b'}']);
    let Some(Incoming::InferenceRequest(r)) = parse_line(&bytes) else {
        panic!("not parsed")
    };
    assert_eq!(r.prompt, "\u{fffd}");
}

#[test]
fn peer_hello_round_trip_and_tolerance() {
    let line = peer_hello("n1", &["a".into(), "b".into()], &["SmolLM-360M".into()]);
    assert_eq!(
        line,
        "{\"type\":\"peer_hello\",\"node_name\":\"n1\",\"clusters\":[\"a\",\"b\"],\"supported_models\":[\"SmolLM-360M\"]}\n"
    );
    assert_eq!(
        parse_line(line.trim_end().as_bytes()),
        Some(Incoming::PeerHello {
            node_name: Some("n1".into()),
            clusters: Some(vec!["a".into(), "b".into()])
        })
    );
    assert_eq!(
        parse_line(br#"{"type":"peer_hello","node_name":"","clusters":[" a ","",1,"a",null]}"#),
        Some(Incoming::PeerHello {
            node_name: None,
            clusters: Some(vec!["a".into(), "1".into(), "null".into()])
        })
    );
    assert_eq!(
        parse_line(br#"{"type":"peer_hello","clusters":"x"}"#),
        Some(Incoming::PeerHello {
            node_name: None,
            clusters: None
        })
    );
}

#[test]
fn responses_are_written_as_the_poc_writes_them() {
    assert_eq!(
        inference_response(&json!("r1"), "[echo] hi", "llama3.2:1b"),
        "{\"type\":\"inference_response\",\"request_id\":\"r1\",\"response\":\"[echo] hi\",\"model\":\"llama3.2:1b\"}\n"
    );
    assert_eq!(
        error_response(&json!(3), "queue full"),
        "{\"type\":\"inference_response\",\"request_id\":3,\"response\":\"[error] queue full\"}\n"
    );
}

fn collect(dec: &mut LineDecoder, chunk: &[u8], out: &mut Vec<Vec<u8>>) {
    dec.feed(chunk, |l| out.push(l.to_vec()));
}

#[test]
fn decoder_splits_across_chunks() {
    let mut d = LineDecoder::default();
    let mut out = Vec::new();
    collect(&mut d, b"ab", &mut out);
    collect(&mut d, b"c\nde\n\nf", &mut out);
    assert_eq!(out, vec![b"abc".to_vec(), b"de".to_vec(), b"".to_vec()]);
    assert_eq!(d.buffered(), 1);
}

#[test]
fn ten_mib_line_is_dropped_without_buffering_and_the_next_line_survives() {
    let mut d = LineDecoder::default();
    let mut out = Vec::new();
    let good = br#"{"type":"inference_request","request_id":"ok","prompt":"p"}"#;
    collect(&mut d, good, &mut out);
    collect(&mut d, b"\n", &mut out);
    // 10 MiB of a single JSON string, in 64 KiB chunks, then a newline and a good request.
    let chunk = vec![b'x'; 64 * 1024];
    collect(
        &mut d,
        b"{\"type\":\"inference_request\",\"request_id\":\"big\",\"prompt\":\"",
        &mut out,
    );
    let mut max_held = 0;
    for _ in 0..160 {
        collect(&mut d, &chunk, &mut out);
        max_held = max_held.max(d.buffered());
    }
    assert!(max_held <= MAX_LINE, "held {max_held} bytes");
    assert_eq!(d.buffered(), 0);
    let mut tail = b"\"}\n".to_vec();
    tail.extend_from_slice(good);
    tail.push(b'\n');
    collect(&mut d, &tail, &mut out);
    assert_eq!(d.dropped(), 1);
    let ids: Vec<_> = out
        .iter()
        .filter_map(|l| match parse_line(l) {
            Some(Incoming::InferenceRequest(r)) => Some(r.request_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![json!("ok"), json!("ok")]);
}

#[test]
fn line_of_exactly_the_limit_is_kept_and_one_more_is_dropped() {
    let mut d = LineDecoder::new(4);
    let mut out = Vec::new();
    collect(&mut d, b"abcd\nabcde\nxy\n", &mut out);
    assert_eq!(out, vec![b"abcd".to_vec(), b"xy".to_vec()]);
    assert_eq!(d.dropped(), 1);
}

#[test]
fn stream_is_asked_only_by_json_true() {
    let r = |extra: &str| {
        req(&format!(
            r#"{{"type":"inference_request","request_id":"s","prompt":"p"{extra}}}"#
        ))
        .unwrap()
        .stream
    };
    assert!(r(r#","stream":true"#));
    for no in [
        "",
        r#","stream":false"#,
        r#","stream":"true""#,
        r#","stream":1"#,
        r#","stream":null"#,
    ] {
        assert!(!r(no), "{no}");
    }
}

#[test]
fn chunk_and_request_lines() {
    let id = json!({"n": 1});
    let line = inference_chunk(&id, "he\"llo\n", 3);
    assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v,
        json!({"type": "inference_chunk", "request_id": {"n": 1}, "delta": "he\"llo\n", "index": 3})
    );
    // A chunk line is not a message a node acts on (a POC client skips it too: it reads only
    // inference_response).
    assert_eq!(parse_line(line.as_bytes()), None);
    let line = inference_request(&json!("r"), "hi", Some("echo"), true);
    assert_eq!(
        req(line.trim_end()).unwrap(),
        InferenceRequest {
            request_id: json!("r"),
            prompt: "hi".into(),
            model: Some("echo".into()),
            stream: true
        }
    );
    let plain: Value =
        serde_json::from_str(&inference_request(&json!(1), "x", None, false)).unwrap();
    assert_eq!(
        plain,
        json!({"type": "inference_request", "request_id": 1, "prompt": "x"})
    );
}
