//! Rate-limit response headers: `X-RateLimit-*` for the tightest window and
//! the draft-10 `RateLimit-Policy` / `RateLimit` structured fields for every limit.

use std::fmt::Write;

use axum::http::{HeaderMap, HeaderValue};

use keyward_limiter::{LimitStatus, tightest_window};

pub fn rate_limit_headers(headers: &mut HeaderMap, limits: &[LimitStatus]) {
    if limits.is_empty() {
        return;
    }
    if let Some(window) = tightest_window(limits) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(window.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(window.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(window.reset_seconds));
    }
    // Written straight into two buffers: this runs on every admitted request.
    let mut policy = String::with_capacity(24 * limits.len());
    let mut state = String::with_capacity(24 * limits.len());
    for (index, limit) in limits.iter().enumerate() {
        let separator = if index == 0 { "" } else { ", " };
        let _ = write!(
            policy,
            "{separator}\"{}\";q={};w={}",
            limit.name, limit.limit, limit.window_seconds
        );
        let _ = write!(
            state,
            "{separator}\"{}\";r={};t={}",
            limit.name, limit.remaining, limit.reset_seconds
        );
    }
    if let Ok(value) = HeaderValue::try_from(policy) {
        headers.insert("ratelimit-policy", value);
    }
    if let Ok(value) = HeaderValue::try_from(state) {
        headers.insert("ratelimit", value);
    }
}
