//! What the HTTP API adds over calling the local backend directly: time to first token and
//! total time per request, medians, for the same request three ways, in one process:
//! - `backend`: `Infer::complete` called directly on the backend;
//! - `queue`: through the node's request queue and its event channel (what the API does inside);
//! - `http`: `POST /v1/completions` with `stream: true` over loopback HTTP/1.1 to the axum
//!   server, read by a hyper client on a kept-alive connection (TTFT = first SSE frame).
//!
//! Two backends: `echo` (no model work, so the difference is the overhead itself) and the
//! built-in model (pulled into the cache when missing), 8 tokens at temperature 0.
//! `cargo bench -p node --bench api`; `BENCH_RUNS` (echo, default 300) and `BENCH_MODEL_RUNS`
//! (default 7) change the run counts; `BENCH_MODEL=0` leaves the model out.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use node::api::{AppState, Event, cluster::LocalOnly};
use node::cli::Env;
use node::inference::backend::{Backend, Infer};
use node::inference::queue::RequestQueue;
use node::inference::request::{GenRequest, Input, Sampling};
use tokio::sync::mpsc;

struct Sample {
    ttft: Duration,
    total: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn report(name: &str, s: Vec<Sample>, base: Option<(Duration, Duration)>) -> (Duration, Duration) {
    let t = median(s.iter().map(|x| x.ttft).collect());
    let a = median(s.iter().map(|x| x.total).collect());
    let extra = base
        .map(|(bt, ba)| {
            format!(
                "  (+{:.3} ms TTFT, +{:.3} ms total)",
                (t.as_secs_f64() - bt.as_secs_f64()) * 1e3,
                (a.as_secs_f64() - ba.as_secs_f64()) * 1e3
            )
        })
        .unwrap_or_default();
    println!(
        "  {name:<8} p50 TTFT {:>9.3} ms   p50 total {:>9.3} ms   ({} runs){extra}",
        t.as_secs_f64() * 1e3,
        a.as_secs_f64() * 1e3,
        s.len()
    );
    (t, a)
}

fn backend(env: &[(&str, &str)]) -> Backend {
    let mut pairs = vec![("OPENGATEWAY_MODEL_DIR", "/nonexistent")];
    pairs.extend_from_slice(env);
    Backend::from_env(&Env::from_pairs(pairs), None).unwrap()
}

fn request(model: &str, prompt: &str, max: usize) -> GenRequest {
    GenRequest {
        input: Input::Raw(prompt.to_owned()),
        model: Some(model.to_owned()),
        sampling: Sampling {
            max_tokens: Some(max),
            temperature: Some(0.0),
            ..Sampling::default()
        },
    }
}

fn direct(b: &mut Backend, req: &GenRequest, runs: usize) -> Vec<Sample> {
    (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            let mut first = None;
            b.complete(req, &mut |_| {
                first.get_or_insert_with(|| t0.elapsed());
                ControlFlow::Continue(())
            })
            .unwrap();
            Sample {
                ttft: first.unwrap_or_default(),
                total: t0.elapsed(),
            }
        })
        .collect()
}

async fn queued(q: &RequestQueue, req: &GenRequest, runs: usize) -> Vec<Sample> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = req.clone();
        q.submit_job(Box::new(move |b: &mut dyn Infer| {
            let c = b.complete(&r, &mut |d| {
                let _ = tx.send(Event::Delta(d.to_owned()));
                ControlFlow::Continue(())
            });
            let _ = tx.send(Event::Done(c.map_err(Into::into)));
        }));
        let mut first = None;
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Delta(_) => {
                    first.get_or_insert_with(|| t0.elapsed());
                }
                Event::Done(r) => {
                    r.unwrap();
                    break;
                }
            }
        }
        out.push(Sample {
            ttft: first.unwrap_or_default(),
            total: t0.elapsed(),
        });
    }
    out
}

async fn http(
    addr: std::net::SocketAddr,
    model: &str,
    prompt: &str,
    max: usize,
    runs: usize,
) -> Vec<Sample> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = serde_json::json!({"model": model, "prompt": prompt, "max_tokens": max, "temperature": 0, "stream": true}).to_string();
    let mut out = Vec::new();
    for _ in 0..runs {
        let req = hyper::Request::post(format!("http://{addr}/v1/completions"))
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        // HTTP/1.1: the kept-alive connection takes the next request once the last is read.
        send.ready().await.unwrap();
        let t0 = Instant::now();
        let mut resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut first = None;
        let mut all = Vec::new();
        while let Some(f) = resp.body_mut().frame().await {
            if let Ok(d) = f.unwrap().into_data() {
                first.get_or_insert_with(|| t0.elapsed());
                all.extend_from_slice(&d);
            }
        }
        let total = t0.elapsed();
        assert!(
            all.ends_with(b"data: [DONE]\n\n"),
            "{}",
            String::from_utf8_lossy(&all)
        );
        out.push(Sample {
            ttft: first.unwrap_or_default(),
            total,
        });
    }
    out
}

fn bench(title: &str, env: &[(&str, &str)], prompt: &str, max: usize, runs: usize) {
    println!("{title}");
    let mut b = backend(env);
    let model = b.models().first().cloned().unwrap();
    let req = request(&model, prompt, max);
    // Warm-up (first-run allocations, caches).
    direct(&mut b, &req, 1);
    let base = report("backend", direct(&mut b, &req, runs), None);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let q = Arc::new(RequestQueue::new(Box::new(b), 8));
    rt.block_on(async {
        queued(&q, &req, 1).await;
        report("queue", queued(&q, &req, runs).await, Some(base));
        let state = Arc::new(AppState::new(
            Arc::clone(&q),
            vec![model.clone()],
            "bench",
            "bench",
            Arc::new(LocalOnly),
            None,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                node::api::listener_nodelay(listener),
                node::api::router(state),
            )
            .await
        });
        http(addr, &model, prompt, max, 1).await;
        report(
            "http",
            http(addr, &model, prompt, max, runs).await,
            Some(base),
        );
    });
}

fn main() {
    let runs = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    bench(
        "echo backend, a 10-word prompt (11 streamed words):",
        &[("POC_INFERENCE_BACKEND", "echo")],
        "one two three four five six seven eight nine ten",
        64,
        runs("BENCH_RUNS", 300),
    );
    if std::env::var("BENCH_MODEL").as_deref() != Ok("0") {
        let path = node::inference::cache::ensure_builtin(&Env::from_process()).unwrap();
        let path = path.to_str().unwrap().to_owned();
        bench(
            "built-in model (SmolLM2-135M Q4_1), 8 tokens at temperature 0:",
            &[
                ("POC_INFERENCE_BACKEND", "native"),
                ("OPENGATEWAY_MODEL_PATH", path.as_str()),
            ],
            "Peer-to-peer networks are",
            8,
            runs("BENCH_MODEL_RUNS", 7),
        );
    }
}
