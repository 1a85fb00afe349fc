//! The page at `/`: one self-contained HTML file (inline CSS and JS, no fonts, scripts or
//! images from elsewhere, so it works on a machine with no internet), embedded in the binary.
//! It talks only to this node's own routes: `/v1/models` through `/api/cluster` for the model
//! picker and the cluster view, `/v1/chat/completions` with `stream: true` for the chat (with
//! stop, time to first token and tokens per second), and `/metrics` for the request-rate and
//! latency charts.

use axum::response::Html;

/// The page.
pub(super) const PAGE: &str = include_str!("page.html");

/// `GET /`.
pub(super) async fn index() -> Html<&'static str> {
    Html(PAGE)
}
