use super::*;

fn err(endpoint: Endpoint, body: &str) -> ApiError {
    parse(endpoint, body.as_bytes()).unwrap_err()
}

#[test]
fn requests_are_read_field_by_field() {
    let p = parse(
        Endpoint::Chat,
        br#"{"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
            "max_completion_tokens":5,"temperature":0,"top_p":0.5,"seed":-1,"stop":"x","stream":true,
            "stream_options":{"include_usage":true},"n":1,"user":"ignored"}"#,
    )
    .unwrap();
    assert_eq!(p.model, "m");
    assert!(p.stream && p.include_usage);
    assert_eq!(
        p.gen_request.input,
        Input::Chat(vec![
            ChatMessage::new("system", "be brief"),
            ChatMessage::new("user", "ab")
        ])
    );
    let s = &p.gen_request.sampling;
    assert_eq!(s.max_tokens, Some(5));
    assert_eq!(s.temperature, Some(0.0));
    assert_eq!(s.top_p, Some(0.5));
    assert_eq!(s.seed, Some(u64::MAX));
    assert_eq!(s.stop, vec!["x".to_owned()]);

    let p = parse(Endpoint::Completions, br#"{"model":"m","prompt":["only"]}"#).unwrap();
    assert_eq!(p.gen_request.input, Input::Raw("only".into()));
    assert!(!p.stream);
}

#[test]
fn bad_bodies_are_400_naming_the_field() {
    let cases = [
        (Endpoint::Chat, "{", None),
        (Endpoint::Chat, "[]", None),
        (Endpoint::Chat, r#"{"messages":[]}"#, Some("model")),
        (Endpoint::Chat, r#"{"model":"m"}"#, Some("messages")),
        (
            Endpoint::Chat,
            r#"{"model":"m","messages":[]}"#,
            Some("messages"),
        ),
        (
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            Some("messages[0].role"),
        ),
        (
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
            Some("messages[0].content"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":["a","b"]}"#,
            Some("prompt"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","n":2}"#,
            Some("n"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","max_tokens":-1}"#,
            Some("max_tokens"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","temperature":3}"#,
            Some("temperature"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","top_p":"x"}"#,
            Some("top_p"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","seed":1.5}"#,
            Some("seed"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","stop":["1","2","3","4","5"]}"#,
            Some("stop"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","stream":"yes"}"#,
            Some("stream"),
        ),
    ];
    for (endpoint, body, param) in cases {
        let e = err(endpoint, body);
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(e.param.as_deref(), param, "{body}: {}", e.message);
        let b = e.body();
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(
            b["error"]["message"].as_str().unwrap().ends_with('.'),
            "{b}"
        );
    }
}

#[test]
fn backend_errors_map_to_openai_statuses() {
    let busy = ApiError::from(InferError::QueueFull {
        waiting: 8,
        limit: 8,
    });
    assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.body()["error"]["code"], "rate_limit_exceeded");
    let long = ApiError::from(InferError::Native(NativeError::PromptTooLong {
        tokens: 5000,
        limit: 4095,
    }));
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.code, Some("context_length_exceeded"));
    let gone = ApiError::from(InferError::WorkerGone);
    assert_eq!(gone.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(ApiError::model_not_found("x").status, StatusCode::NOT_FOUND);
    assert_eq!(
        ApiError::no_peer("none.".into()).status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
