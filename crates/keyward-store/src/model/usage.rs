//! Usage: what the writer stores per flush, the rollups reports read, and what invoices
//! need.

use chrono::{DateTime, Utc};
use keyward_core::{Environment, KeyId, PlanName, UserId};

/// Usage bookkeeping for one key, accumulated in memory and written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub id: KeyId,
    /// Admitted checks since the last write.
    pub admitted: u64,
    pub last_used_at: DateTime<Utc>,
}

/// Admitted units to add to a user's monthly quota usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub user_id: UserId,
    /// `YYYY-MM` (UTC).
    pub period: String,
    /// The node process that admitted them (its id, chosen at start): a shared limiter
    /// that lost its figure rebuilds it per node (see [`crate::UsageStore::quota_usage_by_node`]).
    pub node: String,
    pub units: u64,
}

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 13] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];

/// Buckets of the latency histogram ([`LATENCY_BOUNDS_MS`] and one for slower responses).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Counts of one hour × key × endpoint × status × decision code × plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    pub key_id: KeyId,
    pub user_id: UserId,
    pub environment: Environment,
    /// The user's plan when these requests were checked (the billing segment's plan).
    pub plan: PlanName,
    /// `""` when the caller did not name one.
    pub endpoint: String,
    pub status_code: u16,
    pub code: String,
    pub requests: u64,
    pub rejected: u64,
    /// Admitted cost.
    pub units: u64,
    /// Responses per [`LATENCY_BOUNDS_MS`] bucket.
    pub latency: [u64; LATENCY_BUCKETS],
}

/// One checked request, kept raw for `--usage-retention-days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub key_id: KeyId,
    pub user_id: UserId,
    pub endpoint: String,
    pub method: String,
    pub at: DateTime<Utc>,
    pub response_time_ms: Option<u64>,
    pub status_code: u16,
    pub code: String,
    /// Admitted cost (0 when rejected).
    pub cost: u64,
}

/// Everything one flush of the usage writer stores, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    pub keys: Vec<KeyUsage>,
    pub quota: Vec<QuotaUsage>,
    pub rollups: Vec<Rollup>,
    pub events: Vec<UsageEvent>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.quota.is_empty()
            && self.rollups.is_empty()
            && self.events.is_empty()
    }
}

/// Which rollups to read: hours in `[from, to)`, optionally of one key, one user, one
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    pub key_id: Option<KeyId>,
    pub user_id: Option<UserId>,
    pub environment: Option<Environment>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl UsageFilter {
    /// Everything in `[from, to)`.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            key_id: None,
            user_id: None,
            environment: None,
            from,
            to,
        }
    }
}

/// A user's plan from `effective_at` until the next segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSegment {
    pub plan: PlanName,
    pub effective_at: DateTime<Utc>,
}

/// A plan's price from `effective_at` until the next change (`None`: the plan is free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub plan: PlanName,
    pub effective_at: DateTime<Utc>,
    pub price: Option<keyward_core::Price>,
}

/// How [`crate::UsageStore::usage_totals`] groups rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    /// One row for everything.
    Total,
    /// By UTC day (`YYYY-MM-DD`).
    Day,
    /// By key: key id, user id.
    Key,
    Endpoint,
    /// By status code (as text).
    Status,
    /// By decision code.
    Code,
    /// By hour and plan: hour start (the schema's timestamp text), plan.
    HourPlan,
    /// By user and plan: user id, plan.
    UserPlan,
    /// By hour, user and plan: hour start, user id, plan.
    HourUserPlan,
    /// By UTC day and decision code: `YYYY-MM-DD`, code.
    DayCode,
    /// By hour and decision code: hour start, code.
    HourCode,
}

/// Rollups added up over one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    /// The group's values, in the order [`UsageGroup`] names them (empty for `Total`).
    pub group: Vec<String>,
    pub requests: u64,
    pub rejected: u64,
    pub units: u64,
    pub latency: [u64; LATENCY_BUCKETS],
}
