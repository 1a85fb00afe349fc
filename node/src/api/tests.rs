use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request as HttpRequest;
use futures_util::StreamExt;
use tower::ServiceExt;

use super::cluster::{ClusterError, LocalOnly, PeerInfo, PeerModel};
use super::*;
use crate::inference::backend::{Infer, Reply};
use crate::inference::request::{FinishReason, GenRequest};

/// A backend that produces one token `t ` per tick the test sends, up to the request's
/// `max_tokens`, and reports how each generation ended.
struct Ticking {
    ticks: Receiver<()>,
    ended: Sender<FinishReason>,
}

impl Infer for Ticking {
    fn infer(&mut self, _p: &str, _m: Option<&str>) -> Result<Reply, InferError> {
        Err(InferError::WorkerGone)
    }

    fn complete(
        &mut self,
        req: &GenRequest,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion, InferError> {
        let mut text = String::new();
        let mut finish = FinishReason::Length;
        for _ in 0..req.sampling.max_tokens.unwrap_or(3) {
            self.ticks.recv().map_err(|_| InferError::WorkerGone)?;
            text.push_str("t ");
            if on_text("t ").is_break() {
                finish = FinishReason::Cancelled;
                break;
            }
        }
        let _ = self.ended.send(finish);
        Ok(Completion {
            completion_tokens: text.len() / 2,
            text,
            model: "tick".into(),
            backend: "echo",
            prompt_tokens: 1,
            finish,
        })
    }
}

#[derive(Debug)]
struct FarCluster;

impl Cluster for FarCluster {
    fn clusters(&self) -> Vec<String> {
        vec!["c1".into()]
    }
    fn models(&self) -> Vec<PeerModel> {
        vec![
            PeerModel {
                id: "far".into(),
                peer: "alice".into(),
            },
            PeerModel {
                id: "far".into(),
                peer: "bob".into(),
            },
        ]
    }
    fn peers(&self) -> Vec<PeerInfo> {
        Vec::new()
    }
    fn forward(
        &self,
        req: GenRequest,
        _events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<String, ClusterError> {
        Err(ClusterError::NoPeer(req.model.unwrap_or_default()))
    }
}

fn echo_state(cluster: Arc<dyn Cluster>, key: Option<&str>) -> Arc<AppState> {
    let b = crate::inference::backend::Backend::from_env(
        &crate::cli::Env::from_pairs([
            ("POC_INFERENCE_BACKEND", "echo"),
            ("OPENGATEWAY_MODEL_DIR", "/nonexistent"),
        ]),
        None,
    )
    .unwrap();
    let q = Arc::new(RequestQueue::new(Box::new(b), 2));
    Arc::new(AppState::new(
        q,
        vec!["echo".into()],
        "echo",
        "me",
        cluster,
        key.map(str::to_owned),
    ))
}

fn post(path: &str, body: &str) -> HttpRequest<Body> {
    HttpRequest::post(path)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(path: &str, key: Option<&str>) -> HttpRequest<Body> {
    let mut r = HttpRequest::get(path);
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    r.body(Body::empty()).unwrap()
}

async fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&b).unwrap())
}

#[tokio::test]
async fn peer_models_are_listed_and_answered_503_without_a_peer_and_404_when_unknown() {
    let app = router(echo_state(Arc::new(FarCluster), None));
    let (s, v) = json_of(app.clone().oneshot(get("/v1/models", None)).await.unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("echo"), json!("far")]);
    assert_eq!(v["data"][1]["owned_by"], "alice");
    assert_eq!(v["data"][1]["peers"], json!(["alice", "bob"]));

    let chat = |m: &str| {
        post(
            "/v1/chat/completions",
            &json!({"model": m, "messages": [{"role": "user", "content": "x"}]}).to_string(),
        )
    };
    let (s, v) = json_of(app.clone().oneshot(chat("far")).await.unwrap()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_peer_available");
    assert_eq!(v["error"]["type"], "server_error");
    let (s, v) = json_of(app.clone().oneshot(chat("near")).await.unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
    let (s, v) = json_of(app.clone().oneshot(chat("echo")).await.unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["node"], "me");

    let (_, v) = json_of(
        app.clone()
            .oneshot(get("/api/cluster", None))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["clusters"], json!(["c1"]));
    assert_eq!(v["models"].as_array().unwrap().len(), 2);

    // A node without the network has only its own models.
    let app = router(echo_state(Arc::new(LocalOnly), None));
    let (_, v) = json_of(app.clone().oneshot(get("/v1/models", None)).await.unwrap()).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn api_key_guards_everything_but_health_and_the_page() {
    let app = router(echo_state(Arc::new(LocalOnly), Some("k")));
    for path in ["/v1/models", "/metrics", "/api/cluster"] {
        let (s, v) = json_of(app.clone().oneshot(get(path, None)).await.unwrap()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(v["error"]["code"], "invalid_api_key");
        let r = app.clone().oneshot(get(path, Some("kk"))).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = app.clone().oneshot(get(path, Some("k"))).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    for path in ["/health", "/"] {
        let r = app.clone().oneshot(get(path, None)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

/// Polls `cond` until it holds, failing after a generous deadline.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// Multi-threaded: the test blocks on std channels while the server's tasks keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_429_and_a_client_that_leaves_frees_the_backend() {
    let (tick, ticks) = channel();
    let (ended_tx, ended) = channel();
    let ended = Mutex::new(ended);
    let q = Arc::new(RequestQueue::new(
        Box::new(Ticking {
            ticks,
            ended: ended_tx,
        }),
        1,
    ));
    let state = Arc::new(AppState::new(
        Arc::clone(&q),
        vec!["tick".into()],
        "test",
        "me",
        Arc::new(LocalOnly),
        None,
    ));
    let app = router(Arc::clone(&state));
    let body = |stream: bool, max: usize| {
        json!({"model": "tick", "messages": [{"role": "user", "content": "x"}], "stream": stream, "max_tokens": max})
            .to_string()
    };

    // A: streamed; its first token lets the response start.
    tick.send(()).unwrap();
    let a = app
        .clone()
        .oneshot(post("/v1/chat/completions", &body(true, 1_000_000)))
        .await
        .unwrap();
    assert_eq!(a.status(), StatusCode::OK);
    let mut frames = a.into_body().into_data_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"t \"") {
        let f = frames.next().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&f).unwrap());
    }

    // B waits in the queue; C finds it full.
    let b_app = app.clone();
    let b = tokio::spawn(async move {
        json_of(
            b_app
                .oneshot(post("/v1/chat/completions", &body(false, 3)))
                .await
                .unwrap(),
        )
        .await
    });
    until("B to wait", || q.waiting() == 1).await;
    let (s, v) = json_of(
        app.clone()
            .oneshot(post("/v1/completions", r#"{"model":"tick","prompt":"c"}"#))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    // A's client leaves: its generation stops within a token or two of noticing, long before
    // its million tokens.
    drop(frames);
    let deadline = Instant::now() + Duration::from_secs(20);
    let a_end = loop {
        tick.send(()).unwrap();
        match ended.lock().unwrap().recv_timeout(Duration::from_millis(5)) {
            Ok(f) => break f,
            Err(_) => assert!(Instant::now() < deadline, "A never stopped"),
        }
    };
    assert_eq!(a_end, FinishReason::Cancelled);

    // B gets the backend and its full answer (ticks left over from A count towards it).
    while !b.is_finished() {
        tick.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (s, v) = b.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "t t t ");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(ended.lock().unwrap().recv().unwrap(), FinishReason::Length);

    let m = state.metrics.encode();
    for line in [
        "opengateway_generations_total{finish=\"cancelled\"} 1",
        "opengateway_generations_total{finish=\"length\"} 1",
        "opengateway_api_requests_total{endpoint=\"completions\",outcome=\"rate_limited\"} 1",
        "opengateway_api_requests_total{endpoint=\"chat\",outcome=\"ok\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing from\n{m}");
    }
}

#[test]
fn the_page_is_self_contained() {
    let p = super::page::PAGE;
    for needle in ["http://", "https://", "<link", " src=", "@import", "url("] {
        assert!(!p.contains(needle), "the page refers to {needle}");
    }
    for id in [
        "id=\"model\"",
        "id=\"stop\"",
        "id=\"peers\"",
        "/api/cluster",
        "/v1/chat/completions",
    ] {
        assert!(p.contains(id), "{id}");
    }
}
