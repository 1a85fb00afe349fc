//! The OpenAI-compatible HTTP API (`opengateway api`), on axum.
//!
//! Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (whole answers,
//! or server-sent events in OpenAI's chunk format ending with `data: [DONE]` when `stream` is
//! true), `GET /health`, `GET /metrics` (Prometheus text), `GET /api/cluster` (the node, its
//! models and peers as JSON, for the page and scripts) and the page at `/`.
//!
//! A request for a model the local backend serves goes through the node's bounded queue; its
//! generation hands each piece of text over a channel as it is produced, so a streamed answer
//! carries real tokens as they come, and a client that goes away closes the channel, which
//! stops the generation at its next token and frees the backend. Other models go to the
//! [`cluster::Cluster`] (404 when nobody offers the model, 503 when no peer that does is
//! reachable). A full queue is answered 429 at once.
//!
//! Sampling settings a request leaves out take the node's defaults (temperature 0.7, at most
//! `OPENGATEWAY_MAX_TOKENS` or 128 tokens, no stop strings), except the seed, which is fresh for
//! every request without one. Bodies are limited to axum's default 2 MB; the native model caps
//! prompt plus answer at its context, so no request holds more than that in memory.
//!
//! With an API key (`--api-key` or `OPENGATEWAY_API_KEY`) every route except `/health` and the
//! page needs `Authorization: Bearer <key>` (compared in constant time).

pub mod cluster;
pub mod generate;
pub mod metrics;
pub mod openai;
mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::inference::backend::InferError;
use crate::inference::queue::RequestQueue;
use crate::inference::request::Completion;
use cluster::Cluster;
use metrics::Metrics;
use openai::ApiError;

/// What a generation sends back to the handler that asked for it.
#[derive(Debug)]
pub enum Event {
    /// New text.
    Delta(String),
    /// The end: the whole answer, or why it failed.
    Done(Result<Completion, ApiError>),
}

impl From<InferError> for Event {
    fn from(e: InferError) -> Self {
        Event::Done(Err(e.into()))
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The local backend's queue.
    pub queue: Arc<RequestQueue>,
    /// Model ids the local backend answers for.
    pub local_models: Vec<String>,
    /// The backend's name (`native`, `echo`, `ollama`, `auto`).
    pub backend: String,
    /// This node's name (`NODE_NAME`), reported in answers.
    pub node_name: String,
    /// The cluster.
    pub cluster: Arc<dyn Cluster>,
    /// Metrics.
    pub metrics: Metrics,
    /// The bearer token, when one is required.
    pub api_key: Option<String>,
    /// Answer ids.
    next_id: AtomicU64,
    /// Unix seconds the node started.
    pub started_unix: u64,
}

impl AppState {
    /// State for a node serving `queue`.
    pub fn new(
        queue: Arc<RequestQueue>,
        local_models: Vec<String>,
        backend: &str,
        node_name: &str,
        cluster: Arc<dyn Cluster>,
        api_key: Option<String>,
    ) -> Self {
        let metrics = Metrics::new();
        metrics
            .queue_limit
            .set(i64::try_from(queue.limit()).unwrap_or(i64::MAX));
        let now = unix_now();
        AppState {
            queue,
            local_models,
            backend: backend.to_owned(),
            node_name: node_name.to_owned(),
            cluster,
            metrics,
            api_key: api_key.filter(|k| !k.is_empty()),
            // Ids differ between runs of the node: the start time in the high bits.
            next_id: AtomicU64::new(now << 24),
            started_unix: now,
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Seconds since 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let guarded = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(generate::chat))
        .route("/v1/completions", post(generate::completions))
        .route("/metrics", get(metrics_text))
        .route("/api/cluster", get(cluster_view))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/", get(page::index))
        .merge(guarded)
        .fallback(|req: Request| async move { ApiError::no_route(req.uri().path()) })
        .with_state(state)
}

async fn require_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            state
                .metrics
                .request(endpoint_of(req.uri().path()), "unauthorized");
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

fn endpoint_of(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat",
        "/v1/completions" => "completions",
        "/v1/models" => "models",
        "/metrics" => "metrics",
        _ => "other",
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "node": state.node_name,
        "backend": state.backend,
        "models": state.local_models,
        "queue": {"waiting": state.queue.waiting(), "running": state.queue.running(), "limit": state.queue.limit()},
    }))
    .into_response()
}

/// The model list: local models (`owned_by` this node), then each model peers offer that is not
/// local (`owned_by` the first peer offering it, `peers` all of them).
fn model_list(state: &AppState) -> Vec<Value> {
    let created = state.started_unix;
    let mut out: Vec<Value> = state
        .local_models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": state.node_name, "peers": [state.node_name]}))
        .collect();
    for pm in state.cluster.models() {
        if state.local_models.contains(&pm.id) {
            continue;
        }
        if let Some(entry) = out.iter_mut().find(|m| m["id"] == pm.id.as_str()) {
            if let Some(Value::Array(peers)) = entry.get_mut("peers") {
                peers.push(pm.peer.into());
            }
        } else {
            out.push(json!({"id": pm.id, "object": "model", "created": created, "owned_by": pm.peer, "peers": [pm.peer]}));
        }
    }
    out
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.request("models", "ok");
    axum::Json(json!({"object": "list", "data": model_list(&state)})).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    m.queue_waiting
        .set(i64::try_from(state.queue.waiting()).unwrap_or(i64::MAX));
    m.queue_running
        .set(i64::try_from(state.queue.running()).unwrap_or(i64::MAX));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        m.encode(),
    )
        .into_response()
}

async fn cluster_view(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "node": state.node_name,
        "backend": state.backend,
        "clusters": state.cluster.clusters(),
        "models": model_list(&state),
        "peers": state.cluster.peers(),
        "queue": {"waiting": state.queue.waiting(), "running": state.queue.running(), "limit": state.queue.limit()},
        "started": state.started_unix,
    }))
    .into_response()
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime or the server failed.
    #[error("the API server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `state` on `addr` until Ctrl-C / SIGTERM; `on_ready` gets the bound address.
pub fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        on_ready(listener.local_addr()?);
        axum::serve(listener_nodelay(listener), router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok(())
    })
}

/// The listener with Nagle's algorithm off on every connection: a streamed token is one small
/// write, and without this it waits for the client's delayed ACK (about 40 ms on Linux).
pub fn listener_nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests;
