//! `POST /v1/chat/completions` and `POST /v1/completions`.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::metrics::{EndpointLabels, FinishLabels};
use super::openai::{self, ApiError, Endpoint, ParsedRequest};
use super::{AppState, Event, unix_now};
use crate::inference::backend::Infer;
use crate::inference::request::{Completion, FinishReason, GenRequest};

/// Header naming the node that generated the answer.
pub const NODE_HEADER: &str = "x-opengateway-node";

/// `POST /v1/chat/completions`.
pub async fn chat(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    handle(state, Endpoint::Chat, body).await
}

/// `POST /v1/completions`.
pub async fn completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    handle(state, Endpoint::Completions, body).await
}

/// Counts a request once: with the outcome it is given, or as `cancelled` when it is dropped
/// unfinished (the client went away).
struct Outcome {
    state: Arc<AppState>,
    endpoint: Endpoint,
    started: Instant,
    first_token: bool,
    done: bool,
}

impl Outcome {
    fn first_token(&mut self) {
        if !self.first_token {
            self.first_token = true;
            self.state
                .metrics
                .ttft
                .get_or_create(&self.labels())
                .observe(self.started.elapsed().as_secs_f64());
        }
    }

    fn labels(&self) -> EndpointLabels {
        EndpointLabels {
            endpoint: self.endpoint.label().to_owned(),
        }
    }

    fn finish(&mut self, outcome: &str) {
        if self.done {
            return;
        }
        self.done = true;
        self.state.metrics.request(self.endpoint.label(), outcome);
        self.state
            .metrics
            .latency
            .get_or_create(&self.labels())
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish("cancelled");
    }
}

async fn handle(state: Arc<AppState>, endpoint: Endpoint, body: Bytes) -> Response {
    let mut outcome = Outcome {
        state: Arc::clone(&state),
        endpoint,
        started: Instant::now(),
        first_token: false,
        done: false,
    };
    let parsed = match openai::parse(endpoint, &body) {
        Ok(mut p) => {
            // Without a seed each request samples differently, as OpenAI's API does (the
            // node's own fixed seed is for `model run` and the wire protocol).
            p.gen_request
                .sampling
                .seed
                .get_or_insert_with(|| fresh_seed(&state));
            p
        }
        Err(e) => {
            outcome.finish(e.outcome);
            return e.into_response();
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let node = match route(&state, &parsed, tx) {
        Ok(n) => n,
        Err(e) => {
            outcome.finish(e.outcome);
            return e.into_response();
        }
    };
    // Wait for the first event, so that a request that fails before producing anything (a
    // prompt too long, a backend error) gets its proper status instead of a broken stream.
    let first = match rx.recv().await {
        Some(Event::Done(Err(e))) => {
            outcome.finish(e.outcome);
            return e.into_response();
        }
        Some(ev) => ev,
        None => {
            let e = ApiError::from(crate::inference::backend::InferError::WorkerGone);
            outcome.finish(e.outcome);
            return e.into_response();
        }
    };
    let mut resp = if parsed.stream {
        stream(outcome, endpoint, parsed, node.clone(), first, rx).into_response()
    } else {
        whole(outcome, endpoint, node.clone(), first, rx).await
    };
    if let Ok(v) = HeaderValue::from_str(&node) {
        resp.headers_mut().insert(NODE_HEADER, v);
    }
    resp
}

/// A seed no earlier request used: the answer counter hashed with this process's random keys.
fn fresh_seed(state: &AppState) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(state.next_id())
}

/// Starts the request where it can run; returns the name of the node answering it.
fn route(
    state: &Arc<AppState>,
    parsed: &ParsedRequest,
    tx: UnboundedSender<Event>,
) -> Result<String, ApiError> {
    if state.local_models.contains(&parsed.model) {
        submit_local(state, parsed.gen_request.clone(), tx)?;
        return Ok(state.node_name.clone());
    }
    if state.cluster.models().iter().any(|m| m.id == parsed.model) {
        return state
            .cluster
            .forward(parsed.gen_request.clone(), tx)
            .map_err(|e| ApiError::no_peer(format!("{e}.")));
    }
    Err(ApiError::model_not_found(&parsed.model))
}

/// Queues a local generation whose text goes to `tx` as it is produced. The generation stops
/// as soon as `tx`'s receiver is gone; a request whose client left while it waited is skipped.
fn submit_local(
    state: &Arc<AppState>,
    req: GenRequest,
    tx: UnboundedSender<Event>,
) -> Result<(), ApiError> {
    let st = Arc::clone(state);
    let job = Box::new(move |backend: &mut dyn Infer| {
        let m = &st.metrics;
        let finish = |f: &str| {
            m.generations
                .get_or_create(&FinishLabels {
                    finish: f.to_owned(),
                })
                .inc();
        };
        if tx.is_closed() {
            finish(FinishReason::Cancelled.as_str());
            return;
        }
        let mut first: Option<Instant> = None;
        let r = backend.complete(&req, &mut |delta| {
            first.get_or_insert_with(Instant::now);
            match tx.send(Event::Delta(delta.to_owned())) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        });
        match &r {
            Ok(c) => {
                finish(c.finish.as_str());
                m.prompt_tokens.inc_by(c.prompt_tokens as u64);
                m.completion_tokens.inc_by(c.completion_tokens as u64);
                if let Some(t) = first
                    && c.completion_tokens > 1
                {
                    let secs = t.elapsed().as_secs_f64();
                    if secs > 0.0 {
                        m.tokens_per_second
                            .observe((c.completion_tokens - 1) as f64 / secs);
                    }
                }
            }
            Err(_) => finish("error"),
        }
        let _ = tx.send(Event::Done(r.map_err(ApiError::from)));
    });
    state
        .queue
        .try_submit(job)
        .map_err(|(e, _job)| ApiError::from(e))
}

async fn whole(
    mut outcome: Outcome,
    endpoint: Endpoint,
    node: String,
    first: Event,
    mut rx: UnboundedReceiver<Event>,
) -> Response {
    let mut next = Some(first);
    loop {
        let ev = match next.take() {
            Some(ev) => ev,
            None => match rx.recv().await {
                Some(ev) => ev,
                None => Event::from(crate::inference::backend::InferError::WorkerGone),
            },
        };
        match ev {
            Event::Delta(_) => outcome.first_token(),
            Event::Done(Ok(c)) => {
                outcome.finish("ok");
                let id = openai::answer_id(endpoint, outcome.state.next_id());
                return axum::Json(openai::full_answer(endpoint, &id, unix_now(), &c, &node))
                    .into_response();
            }
            Event::Done(Err(e)) => {
                outcome.finish(e.outcome);
                return e.into_response();
            }
        }
    }
}

fn sse_json(v: &serde_json::Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().data(v.to_string()))
}

/// The streamed answer: a task turns generation events into SSE events; when the client goes
/// away the body (and with it the task's channel) is dropped, the task ends and drops the
/// generation's receiver, which stops the generation at its next token.
fn stream(
    mut outcome: Outcome,
    endpoint: Endpoint,
    parsed: ParsedRequest,
    node: String,
    first: Event,
    mut rx: UnboundedReceiver<Event>,
) -> impl IntoResponse {
    let (out, body) = mpsc::channel::<Result<SseEvent, Infallible>>(32);
    let head = openai::ChunkHead {
        endpoint,
        id: openai::answer_id(endpoint, outcome.state.next_id()),
        created: unix_now(),
        model: parsed.model.clone(),
        node,
    };
    tokio::spawn(async move {
        let chunk = |delta: Option<&str>, first: bool, finish: Option<&str>| {
            head.chunk(delta, first, finish)
        };
        if endpoint == Endpoint::Chat
            && out
                .send(sse_json(&chunk(Some(""), true, None)))
                .await
                .is_err()
        {
            return;
        }
        let mut next = Some(first);
        loop {
            let ev = match next.take() {
                Some(ev) => ev,
                None => tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => ev,
                        None => Event::from(crate::inference::backend::InferError::WorkerGone),
                    },
                    () = out.closed() => return,
                },
            };
            match ev {
                Event::Delta(d) => {
                    outcome.first_token();
                    if out
                        .send(sse_json(&chunk(Some(&d), false, None)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Event::Done(Ok(c)) => {
                    let c: Completion = c;
                    let _ = out
                        .send(sse_json(&chunk(None, false, Some(c.finish.as_str()))))
                        .await;
                    if parsed.include_usage {
                        let _ = out.send(sse_json(&head.usage_chunk(&c))).await;
                    }
                    let sent = out.send(Ok(SseEvent::default().data("[DONE]"))).await;
                    outcome.finish(if sent.is_ok() { "ok" } else { "cancelled" });
                    return;
                }
                Event::Done(Err(e)) => {
                    outcome.finish(e.outcome);
                    let _ = out.send(sse_json(&e.body())).await;
                    return;
                }
            }
        }
    });
    let body =
        futures_util::stream::unfold(
            body,
            |mut b| async move { b.recv().await.map(|ev| (ev, b)) },
        );
    Sse::new(body)
}
