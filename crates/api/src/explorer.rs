//! The block explorer: three static files compiled into the binary and served at `/`. The
//! page reads the same `/api/v1` as any client and follows `/api/v1/events` to update live;
//! it never changes anything (it has no token). The files are plain HTML, CSS and JavaScript
//! in `crates/api/explorer/`, with no build step.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../explorer/index.html");
const EXPLORER_JS: &str = include_str!("../explorer/explorer.js");
const EXPLORER_CSS: &str = include_str!("../explorer/explorer.css");

/// Same origin only: the page loads nothing from elsewhere, and nothing may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    file("application/javascript; charset=utf-8", EXPLORER_JS)
}

pub async fn style() -> Response {
    file("text/css; charset=utf-8", EXPLORER_CSS)
}
