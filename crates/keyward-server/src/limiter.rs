//! The limiter hook of the verification path. Rate limits and quotas arrive with their own
//! backends (in-process and Redis); until then [`NoLimits`] admits every key, and the
//! verifier already asks it on every counted check.

use crate::verifier::CachedKey;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyward_core::{Code, Plan};
use serde::Serialize;

/// One limit's state after a check, for headers and `/v1/verify`'s `ratelimit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitStatus {
    /// `minute`, `hour`, `day`, `{W}s`, a window's own name, `burst` or `month`.
    pub name: String,
    /// The limit (`q`).
    pub limit: u64,
    /// The window or refill period in seconds (`w`).
    pub window_seconds: u64,
    /// Units still admissible (`r`).
    pub remaining: u64,
    /// Seconds until `remaining` next increases (`t`).
    pub reset_seconds: u64,
}

/// What a limiter says about one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOutcome {
    /// `None` = admitted; else `QUOTA_EXCEEDED` or `RATE_LIMITED`.
    pub rejection: Option<Code>,
    /// Every window, then the burst bucket and the quota, as they stand after the check.
    pub limits: Vec<LimitStatus>,
    /// Seconds to wait before a retry can be admitted (rejections only).
    pub retry_after: Option<u64>,
}

impl LimitOutcome {
    pub fn admitted() -> Self {
        Self {
            rejection: None,
            limits: Vec::new(),
            retry_after: None,
        }
    }
}

/// A limiter backend failed (Redis unreachable, …); the failure policy decides what follows.
#[derive(Debug, thiserror::Error)]
#[error("the limiter is unavailable: {0}")]
pub struct LimiterError(pub String);

#[async_trait]
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Checks and, if every limit admits it, consumes `cost` units for `key` on `plan`.
    /// A rejected check consumes nothing.
    async fn check(
        &self,
        key: &CachedKey,
        plan: &Plan,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<LimitOutcome, LimiterError>;
}

/// Admits everything and reports no limits.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLimits;

#[async_trait]
impl Limiter for NoLimits {
    async fn check(
        &self,
        _key: &CachedKey,
        _plan: &Plan,
        _cost: u64,
        _now: DateTime<Utc>,
    ) -> Result<LimitOutcome, LimiterError> {
        Ok(LimitOutcome::admitted())
    }
}
