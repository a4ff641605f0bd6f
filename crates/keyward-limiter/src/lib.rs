//! Every kind of limit keyward enforces, in one crate: sliding windows, the burst bucket,
//! the monthly quota and per-user windows ([`LimitKind`]).
//!
//! [`Limits`] is the one entry point a caller uses: it takes what applies to a request
//! ([`Ask`]) and answers with a decision code and how every limit stands. Behind it, a
//! [`Limiter`] backend keeps the windows and the burst bucket — [`MemoryLimiter`] in
//! process, [`RedisLimiter`] shared by every node (it keeps the monthly quota too), and
//! [`FailoverLimiter`] for Redis outages — and the monthly quota is counted either by the
//! shared backend or in this process ([`quota`]), seeded from stored usage through an
//! injected [`QuotaBook`]. Backends pass one conformance suite. Rejected checks consume
//! nothing.

mod failover;
mod limits;
mod memory;
pub mod quota;
mod redis;

use std::borrow::Cow;

use async_trait::async_trait;
use keyward_core::{Burst, UserId, Window};
use serde::Serialize;

pub use failover::{FailoverLimiter, FailureMode};
pub use limits::{Ask, Limits, Verdict, Windows};
pub use memory::{
    Gcra, LimitState, MemoryLimiter, SUB_BUCKETS, SlidingWindow, bucket_width_ms, ceil_seconds,
};
pub use quota::{Month, QuotaBook};
pub use redis::RedisLimiter;

/// The kinds of limit a request can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// A sliding window: at most `max` units in any `window_seconds`.
    Window,
    /// The plan's token bucket (GCRA): short bursts above the windows' pace.
    Burst,
    /// The user's monthly quota (calendar month, UTC; live keys only).
    Month,
}

impl LimitKind {
    /// The name a limit of this kind reports, for the kinds that have one fixed name.
    pub const fn fixed_name(self) -> Option<&'static str> {
        match self {
            Self::Window => None,
            Self::Burst => Some("burst"),
            Self::Month => Some("month"),
        }
    }
}

/// One rate-limit check.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// Who the state belongs to: a key's lineage (rotation keeps it).
    pub owner: u128,
    /// The owner's group (its user): shared backends keep a group's state together, so the
    /// user's quota and its keys' windows are checked in one atomic step.
    pub group: &'a UserId,
    /// The group's monthly quota, for backends that share it (see [`Limiter::shares_quota`]).
    pub quota: Option<QuotaCheck<'a>>,
    pub windows: &'a [Window],
    pub burst: Option<&'a Burst>,
    pub cost: u64,
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// A monthly quota to check with the windows.
#[derive(Debug, Clone, Copy)]
pub struct QuotaCheck<'a> {
    pub period: Month,
    pub limit: u64,
    /// How long the period's counter must live (until the month ends, plus a margin).
    pub ttl_seconds: u64,
    /// The checking node process (its id, chosen at start).
    pub node: &'a str,
    /// Units this node process has admitted for the group in the period so far, by any
    /// path (its own fallback during an outage included). A backend whose figure for this
    /// node is lower (it lost state) raises it to this before checking.
    pub node_units: u64,
}

/// What a quota-sharing backend says about the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaState {
    /// Units used after the check (the check's cost included when admitted).
    Used { used: u64, exceeded: bool },
    /// The backend has no figure for the period: seed it from stored usage and ask again.
    Unknown,
}

/// One limit's state after a check, for headers and `/v1/verify`'s `ratelimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStatus {
    pub kind: LimitKind,
    /// A window's own name, if it has one (see [`LimitStatus::name`]).
    pub own_name: Option<String>,
    /// The limit (`q`).
    pub limit: u64,
    /// The window, or the time the burst bucket takes to refill, in seconds (`w`).
    pub window_seconds: u64,
    /// Units still admissible (`r`).
    pub remaining: u64,
    /// Seconds until `remaining` next increases (`t`; 0 when nothing is counted).
    pub reset_seconds: u64,
    /// For a limit that rejected the check: seconds until it would be admitted.
    pub retry_after: Option<u64>,
}

impl LimitStatus {
    /// The name the limit is reported by: a window's own name, else `minute`, `hour`,
    /// `day` or `{W}s` by its length; `burst`; `month`. Worked out only when an answer is
    /// written, never while checking.
    pub fn name(&self) -> Cow<'_, str> {
        match (self.kind.fixed_name(), &self.own_name) {
            (Some(fixed), _) => Cow::Borrowed(fixed),
            (None, Some(own)) => Cow::Borrowed(own),
            (None, None) => keyward_core::plan::window_length_name(self.window_seconds),
        }
    }
}

/// What `/v1/verify` reports of a limit: name, limit, window, remaining, reset.
impl Serialize for LimitStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("LimitStatus", 5)?;
        out.serialize_field("name", &self.name())?;
        out.serialize_field("limit", &self.limit)?;
        out.serialize_field("window_seconds", &self.window_seconds)?;
        out.serialize_field("remaining", &self.remaining)?;
        out.serialize_field("reset_seconds", &self.reset_seconds)?;
        out.end()
    }
}

/// What the limiter says about one check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub admitted: bool,
    /// Every window (in the order given), then the burst bucket.
    pub limits: Vec<LimitStatus>,
    /// Set by backends that share the quota, when the check carried one.
    pub quota: Option<QuotaState>,
}

impl Outcome {
    /// The window with the least remaining (the burst bucket and the month are not
    /// windows); among ties, the one with the largest reset: what `X-RateLimit-*` and
    /// `/v1/verify`'s `ratelimit` report.
    pub fn tightest_window(&self) -> Option<&LimitStatus> {
        tightest_window(&self.limits)
    }

    /// The window with the smallest maximum: no wait can admit a request costing more.
    pub fn smallest_window(&self) -> Option<&LimitStatus> {
        self.windows().min_by_key(|l| l.limit)
    }

    fn windows(&self) -> impl Iterator<Item = &LimitStatus> {
        self.limits.iter().filter(|l| l.kind == LimitKind::Window)
    }

    /// Seconds to wait before retrying (rejections only): the longest wait of any limit
    /// that rejected, so a client that waits that long is admitted. At least 1.
    pub fn retry_after(&self) -> Option<u64> {
        if self.admitted {
            return None;
        }
        self.limits
            .iter()
            .filter_map(|l| l.retry_after)
            .max()
            .map(|s| s.max(1))
    }
}

/// A limiter backend failed (Redis unreachable, …); the failure policy decides what follows.
#[derive(Debug, thiserror::Error)]
#[error("the limiter is unavailable: {0}")]
pub struct LimiterError(pub String);

#[async_trait]
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Admits the check if every limit does (consuming its cost everywhere), else consumes
    /// nothing.
    async fn check(&self, check: &Check<'_>) -> Result<Outcome, LimiterError>;

    /// Whether this backend checks `Check::quota` itself (shared by every node). Backends
    /// that do not leave the quota to the caller.
    fn shares_quota(&self) -> bool {
        false
    }

    /// Whether the backend answers right now (always, for in-process backends).
    async fn ping(&self) -> Result<(), LimiterError> {
        Ok(())
    }

    /// Seeds a group's quota figure for a period from stored units per node process:
    /// each node's figure becomes the larger of the one the backend holds and the stored
    /// one, so seeding twice, or after a node raised its own figure, counts nothing twice.
    async fn seed_quota(
        &self,
        _group: &str,
        _period: Month,
        _units_by_node: &[(String, u64)],
        _ttl_seconds: u64,
    ) -> Result<(), LimiterError> {
        Ok(())
    }
}

/// The burst bucket's `w`: capacity ÷ rate, rounded up.
pub fn burst_window_seconds(burst: &Burst) -> u64 {
    (burst.capacity as f64 / burst.rate_per_second).ceil() as u64
}

/// See [`Outcome::tightest_window`].
pub fn tightest_window(limits: &[LimitStatus]) -> Option<&LimitStatus> {
    limits
        .iter()
        .filter(|l| l.kind == LimitKind::Window)
        .min_by(|a, b| {
            a.remaining
                .cmp(&b.remaining)
                .then(b.reset_seconds.cmp(&a.reset_seconds))
        })
}
