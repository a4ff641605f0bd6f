//! Rate-limit response headers (CONTRACT §7): `X-RateLimit-*` for the tightest window and
//! the draft-10 `RateLimit-Policy` / `RateLimit` structured fields for every limit.

use axum::http::{HeaderMap, HeaderValue};

use crate::limiter::LimitStatus;
use crate::routes::tightest;

pub fn rate_limit_headers(headers: &mut HeaderMap, limits: &[LimitStatus]) {
    if limits.is_empty() {
        return;
    }
    if let Some(window) = tightest(limits) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(window.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(window.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(window.reset_seconds));
    }
    let policy = limits
        .iter()
        .map(|l| format!("\"{}\";q={};w={}", l.name, l.limit, l.window_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    let state = limits
        .iter()
        .map(|l| format!("\"{}\";r={};t={}", l.name, l.remaining, l.reset_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert("ratelimit-policy", value);
    }
    if let Ok(value) = HeaderValue::from_str(&state) {
        headers.insert("ratelimit", value);
    }
}
