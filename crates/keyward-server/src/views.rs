//! What the API and the CLI's `--json` print of stored records: one type per object, whose
//! OpenAPI schema is derived from the same definition that is serialized.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::time::rfc3339;
use keyward_core::{Environment, KeyId, KeyStatus, PlanName, Scope, UserId, Window};
use keyward_store::{KeyRecord, Metadata};
use serde::Serialize;
use utoipa::ToSchema;

/// An API key. Never its hash, never its plaintext.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyObject)]
pub struct KeyObject<'a> {
    #[schema(value_type = String)]
    pub id: &'a KeyId,
    /// The key's first characters, for recognising it (`sk_live_Lr4l…`).
    pub key_prefix: &'a str,
    #[schema(value_type = String)]
    pub user_id: &'a UserId,
    pub name: &'a str,

    pub environment: Environment,
    /// The key's own plan override; null when it follows its user's plan.
    #[schema(value_type = Option<String>)]
    pub plan: Option<&'a PlanName>,
    /// The plan that applies: the override, else the user's.
    #[schema(value_type = String)]
    pub effective_plan: &'a PlanName,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Admitted checks.
    pub request_count: u64,
    pub is_active: bool,
    pub enabled: bool,

    pub status: KeyStatus,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key that replaced this one by rotation.
    #[schema(value_type = Option<String>)]
    pub replaced_by: Option<&'a KeyId>,
    pub rate_limit_per_hour: Option<u64>,

    pub limits: Option<&'a [Window]>,
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<&'a [IpNet]>,
    #[schema(value_type = Vec<String>)]
    pub scopes: &'a [Scope],
    #[schema(value_type = Object)]
    pub metadata: &'a Metadata,
    /// Who disabled the key (`admin`, `cli`, `key:<id>`, …); null while enabled.
    pub disabled_by: Option<&'a str>,
    /// Metadata members an admin set: read-only to the user's own keys.
    pub locked_metadata: &'a [String],
}

impl<'a> KeyObject<'a> {
    /// The key object of `key` at `now` (its status depends on the time).
    pub fn of(key: &'a KeyRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: &key.id,
            key_prefix: &key.key_prefix,
            user_id: &key.user_id,
            name: &key.name,
            environment: key.environment,
            plan: key.plan.as_ref(),
            effective_plan: key.effective_plan(),
            created_at: key.created_at,
            updated_at: key.updated_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            request_count: key.request_count,
            is_active: key.is_active,
            enabled: key.enabled,
            status: key.status(now),
            revoked_at: key.revoked_at,
            replaced_by: key.replaced_by.as_ref(),
            rate_limit_per_hour: key.rate_limit_per_hour,
            limits: key.limits.as_deref(),
            allowed_ips: key.allowed_ips.as_deref(),
            scopes: &key.scopes,
            metadata: &key.metadata,
            disabled_by: key.disabled_by.as_deref(),
            locked_metadata: &key.locked_metadata,
        }
    }
}

// --- schemas of the other response and request bodies -----------------------------------

/// A new key: the key object plus its plaintext `key`, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyObject<'a> {
    #[serde(flatten)]
    pub object: KeyObject<'a>,
    /// The key itself. keyward keeps only its SHA-256: it cannot show it again.
    pub key: &'a str,
}

/// A page of keys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList<'a> {
    pub keys: Vec<KeyObject<'a>>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A rotation's result: the new key (shown once) and the old one, now expiring.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeys<'a> {
    pub key: NewKeyObject<'a>,
    pub old_key: KeyObject<'a>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<keyward_store::UserRecord>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    pub revoked: u64,
}

/// A plan's settings (the body of `PUT /v1/plans/{name}`; a `name`, if given, must equal
/// the path's).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanBody {
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(flatten)]
    #[schema(inline)]
    pub settings: keyward_core::PlanSpec,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub plans: Vec<keyward_core::Plan>,
}

// --- usage reports (what `GET …/usage`, `/v1/usage/summary` and the CLI print) -----------

/// One UTC day of usage.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub requests: u64,
    pub rejected: u64,
    pub units: u64,
    /// Median latency in ms (its bucket's upper bound); null without samples. Only in a
    /// key's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub p50_ms: Option<Option<u64>>,
    /// 95th-percentile latency in ms, as `p50_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub p95_ms: Option<Option<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EndpointRequests {
    pub endpoint: String,
    pub requests: u64,
}

/// A key's usage over its last days (`GET /v1/keys/{id}/usage`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KeyUsageReport {
    #[schema(value_type = String)]
    pub key_id: KeyId,
    pub days: u32,
    pub total_requests: u64,
    pub rejected_requests: u64,
    pub units: u64,
    pub by_day: Vec<DayUsage>,
    /// Most requests first.
    pub by_endpoint: Vec<EndpointRequests>,
    /// Requests by the HTTP status the client received.
    pub by_status: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KeyRequests {
    pub key_id: String,
    pub requests: u64,
    pub units: u64,
}

/// How a monthly quota stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QuotaStanding {
    pub limit: u64,
    pub used: u64,
    pub remaining: u64,
}

/// A user's usage in one month (`GET /v1/users/{user_id}/usage`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserUsageReport {
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// `YYYY-MM` (UTC).
    pub period: String,
    pub requests: u64,
    pub rejected: u64,
    pub units: u64,
    pub by_day: Vec<DayUsage>,
    /// Most requests first.
    pub by_key: Vec<KeyRequests>,
    /// The monthly quota; null when the user's plan has none.
    pub quota: Option<QuotaStanding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopKey {
    pub key_id: String,
    pub user_id: Option<String>,
    pub requests: u64,
    pub rejected: u64,
    pub units: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopEndpoint {
    pub endpoint: String,
    pub requests: u64,
    pub rejected: u64,
    /// `rejected ÷ requests` (0 without requests).
    pub rejection_rate: f64,
}

/// Latency percentiles in ms (bucket upper bounds); null without samples.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LatencyPercentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

/// Every key's traffic over the last days (`GET /v1/usage/summary`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsageSummary {
    pub days: u32,
    /// Requests by decision code over time: one point per hour of today when `days` is 1
    /// (`start` is `HH:00`, UTC), else one per day (`YYYY-MM-DD`); every point present.
    pub timeline: Vec<TimelinePoint>,
    pub requests: u64,
    pub rejected: u64,
    pub rejection_rate: f64,
    /// Requests by decision code.
    pub by_code: BTreeMap<String, u64>,
    /// The 10 keys with the most requests.
    pub top_keys: Vec<TopKey>,
    /// The 10 endpoints with the most requests.
    pub top_endpoints: Vec<TopEndpoint>,
    pub latency_ms: LatencyPercentiles,
}

/// A one-time link to a user's portal (`POST /v1/users/{user_id}/portal-sessions`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalLink {
    /// Opens the portal once; give it to the user alone. It holds the only copy of its
    /// token: keyward keeps a hash.
    pub url: String,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// How many portal links and sessions of a user were ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalSessionsEnded {
    pub user_id: String,
    pub ended: u64,
}

/// Requests by decision code in one hour or day of a usage summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TimelinePoint {
    pub start: String,
    pub by_code: BTreeMap<String, u64>,
}

/// A page of the audit log, newest first (`GET /v1/audit`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub records: Vec<keyward_store::AuditRecord>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A new admin key: the admin key object plus its plaintext `key`, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewAdminKeyObject<'a> {
    #[serde(flatten)]
    pub object: &'a keyward_store::AdminKeyRecord,
    /// The key itself. keyward keeps only its SHA-256: it cannot show it again.
    pub key: &'a str,
}

/// A page of admin keys, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminKeyList {
    pub admin_keys: Vec<keyward_store::AdminKeyRecord>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}
