//! The floor `scripts/bench-http.sh` measures keyward against: the same HTTP stack
//! (tokio's multi-threaded runtime, axum, mimalloc) with nothing on top — one handler that
//! reads the key from `Authorization: Bearer` or `X-API-Key` and answers 200 (401 without
//! one). Whatever keyward's `/v1/authorize` costs beyond this is keyward's own.
//!
//!   cargo run --release --example bare_handler -p keyward-server   # prints its address

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn authorize(headers: HeaderMap) -> StatusCode {
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let key = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match key {
        Some(key) if !key.is_empty() => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/v1/authorize", get(authorize));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("keyward listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
