//! The page at `/`.

use axum::response::Html;

/// `GET /`.
pub(super) async fn index() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
