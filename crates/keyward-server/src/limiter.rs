//! The limiter as the verifier sees it: the `keyward-limiter` trait, and the windows that
//! apply to a key (its own `limits`, else its plan's; `rate_limit_per_hour` replaces or adds
//! the one-hour window).

use std::borrow::Cow;

use keyward_core::{Plan, Window};

pub use keyward_limiter::{
    Check as LimitCheck, LimitStatus, Limiter, LimiterError, MemoryLimiter, Outcome,
};

use crate::cached_key::CachedKey;

pub fn effective_windows<'a>(key: &'a CachedKey, plan: &'a Plan) -> Cow<'a, [Window]> {
    let base: &[Window] = key.limits.as_deref().unwrap_or(&plan.spec.limits);
    let Some(per_hour) = key.rate_limit_per_hour else {
        return Cow::Borrowed(base);
    };
    let mut windows = base.to_vec();
    match windows.iter_mut().find(|w| w.window_seconds == 3600) {
        Some(hour) => hour.max = per_hour,
        None => {
            windows.push(Window::new(3600, per_hour));
            windows.sort_by_key(|w| w.window_seconds);
        }
    }
    Cow::Owned(windows)
}

/// The window with the least remaining (the burst bucket and the month are not windows);
/// among ties, the one with the largest reset: what `X-RateLimit-*` and `/v1/verify`'s
/// `ratelimit` report.
pub fn tightest(limits: &[LimitStatus]) -> Option<&LimitStatus> {
    limits
        .iter()
        .filter(|l| l.name != "burst" && l.name != "month")
        .min_by(|a, b| {
            a.remaining
                .cmp(&b.remaining)
                .then(b.reset_seconds.cmp(&a.reset_seconds))
        })
}
