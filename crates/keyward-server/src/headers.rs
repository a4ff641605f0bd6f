//! Rate-limit response headers: `X-RateLimit-*` for the tightest window and
//! the draft-10 `RateLimit-Policy` / `RateLimit` structured fields for every limit.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use keyward_limiter::{LimitStatus, tightest_window};

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const STATE: HeaderName = HeaderName::from_static("ratelimit");

pub fn rate_limit_headers(headers: &mut HeaderMap, limits: &[LimitStatus]) {
    if limits.is_empty() {
        return;
    }
    if let Some(window) = tightest_window(limits) {
        headers.insert(LIMIT, HeaderValue::from(window.limit));
        headers.insert(REMAINING, HeaderValue::from(window.remaining));
        headers.insert(RESET, HeaderValue::from(window.reset_seconds));
    }
    // Written straight into two buffers, without the formatting machinery: this runs on
    // every admitted request.
    let mut policy = Vec::with_capacity(32 * limits.len());
    let mut state = Vec::with_capacity(32 * limits.len());
    let mut digits = itoa::Buffer::new();
    for (index, limit) in limits.iter().enumerate() {
        if index > 0 {
            policy.extend_from_slice(b", ");
            state.extend_from_slice(b", ");
        }
        for (out, first, second) in [
            (&mut policy, ("q", limit.limit), ("w", limit.window_seconds)),
            (
                &mut state,
                ("r", limit.remaining),
                ("t", limit.reset_seconds),
            ),
        ] {
            out.push(b'"');
            out.extend_from_slice(limit.name().as_bytes());
            out.push(b'"');
            for (parameter, value) in [first, second] {
                out.push(b';');
                out.extend_from_slice(parameter.as_bytes());
                out.push(b'=');
                out.extend_from_slice(digits.format(value).as_bytes());
            }
        }
    }
    if let Ok(value) = HeaderValue::try_from(policy) {
        headers.insert(POLICY, value);
    }
    if let Ok(value) = HeaderValue::try_from(state) {
        headers.insert(STATE, value);
    }
}
