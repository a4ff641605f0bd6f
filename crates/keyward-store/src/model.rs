//! What the store holds and returns, and the inputs of its operations.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::time::rfc3339;
use keyward_core::{Environment, KeyHash, KeyId, KeyPrefix, PlanName, Scope, UserId, Window};
use serde::Serialize;
use serde_json::{Map, Value};

/// A JSON object, as `metadata` fields are.
pub type Metadata = Map<String, Value>;

pub use keyward_core::KeyStatus;

/// A stored API key: everything but its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: KeyId,
    /// What may be shown of the key, e.g. `sk_live_7fQa…`.
    pub key_prefix: String,
    /// The prefix the key was issued with (`None` for keys imported in a foreign format).
    pub prefix: Option<KeyPrefix>,
    pub user_id: UserId,
    pub name: String,
    pub environment: Environment,
    /// The key's own plan override.
    pub plan: Option<PlanName>,
    /// The plan of the key's user (what `effective_plan` falls back to).
    pub user_plan: PlanName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub request_count: u64,
    pub is_active: bool,
    pub enabled: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<KeyId>,
    pub rate_limit_per_hour: Option<u64>,
    pub limits: Option<Vec<Window>>,
    pub allowed_ips: Option<Vec<IpNet>>,
    pub scopes: Vec<Scope>,
    pub metadata: Metadata,
    /// Rate-limit state belongs to the lineage: a rotated key inherits its predecessor's.
    pub lineage_id: String,
    /// Imported from another system (its hash was not computed by keyward).
    pub imported: bool,
    /// Who disabled the key (an actor label such as `admin` or `key:<id>`); `None` while
    /// enabled.
    pub disabled_by: Option<String>,
    /// Metadata members set by an operator (admin or CLI): read-only to self-service.
    pub locked_metadata: Vec<String>,
}

impl KeyRecord {
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        KeyStatus::of(self.is_active, self.enabled, self.expires_at, now)
    }

    /// The key's own plan, else its user's.
    pub fn effective_plan(&self) -> &PlanName {
        self.plan.as_ref().unwrap_or(&self.user_plan)
    }

    /// The key object as of `now`.
    pub fn view(&self, now: DateTime<Utc>) -> KeyView<'_> {
        KeyView {
            id: &self.id,
            key_prefix: &self.key_prefix,
            user_id: &self.user_id,
            name: &self.name,
            environment: self.environment,
            plan: self.plan.as_ref(),
            effective_plan: self.effective_plan(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            request_count: self.request_count,
            is_active: self.is_active,
            enabled: self.enabled,
            status: self.status(now),
            revoked_at: self.revoked_at,
            replaced_by: self.replaced_by.as_ref(),
            rate_limit_per_hour: self.rate_limit_per_hour,
            limits: self.limits.as_deref(),
            allowed_ips: self.allowed_ips.as_deref(),
            scopes: &self.scopes,
            metadata: &self.metadata,
            disabled_by: self.disabled_by.as_deref(),
            locked_metadata: &self.locked_metadata,
        }
    }
}

/// The key object, as the API and `--json` print it. Never a hash.
#[derive(Debug, Serialize)]
pub struct KeyView<'a> {
    pub id: &'a KeyId,
    pub key_prefix: &'a str,
    pub user_id: &'a UserId,
    pub name: &'a str,
    pub environment: Environment,
    pub plan: Option<&'a PlanName>,
    pub effective_plan: &'a PlanName,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339::option")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub request_count: u64,
    pub is_active: bool,
    pub enabled: bool,
    pub status: KeyStatus,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<&'a KeyId>,
    pub rate_limit_per_hour: Option<u64>,
    pub limits: Option<&'a [Window]>,
    pub allowed_ips: Option<&'a [IpNet]>,
    pub scopes: &'a [Scope],
    pub metadata: &'a Metadata,
    pub disabled_by: Option<&'a str>,
    pub locked_metadata: &'a [String],
}

/// A user of the operator's product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub plan: PlanName,
    pub email: Option<String>,
    pub company: Option<String>,
    pub metadata: Metadata,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Keys whose status is `active`.
    pub key_count: u64,
    #[serde(with = "rfc3339::option")]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Who performed a management action, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorKind {
    Admin,
    Cli,
    Key(KeyId),
}

/// The actor and the client address of a management action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub ip: Option<IpAddr>,
}

impl Actor {
    pub fn cli() -> Self {
        Self {
            kind: ActorKind::Cli,
            ip: None,
        }
    }

    pub fn admin(ip: Option<IpAddr>) -> Self {
        Self {
            kind: ActorKind::Admin,
            ip,
        }
    }

    pub fn key(id: KeyId, ip: Option<IpAddr>) -> Self {
        Self {
            kind: ActorKind::Key(id),
            ip,
        }
    }

    /// An operator (the admin or the CLI), as opposed to a user acting on its own keys.
    pub fn is_operator(&self) -> bool {
        matches!(self.kind, ActorKind::Admin | ActorKind::Cli)
    }

    /// `admin`, `cli` or `key:<key id>`.
    pub fn label(&self) -> String {
        match &self.kind {
            ActorKind::Admin => "admin".to_owned(),
            ActorKind::Cli => "cli".to_owned(),
            ActorKind::Key(id) => format!("key:{id}"),
        }
    }
}

/// The management actions the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuditAction {
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.update")]
    KeyUpdate,
    #[serde(rename = "key.disable")]
    KeyDisable,
    #[serde(rename = "key.enable")]
    KeyEnable,
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "keys.import")]
    KeysImport,
    #[serde(rename = "user.create")]
    UserCreate,
    #[serde(rename = "user.update")]
    UserUpdate,
    #[serde(rename = "user.delete")]
    UserDelete,
    #[serde(rename = "plan.update")]
    PlanUpdate,
}

impl AuditAction {
    pub const ALL: [AuditAction; 11] = [
        Self::KeyCreate,
        Self::KeyUpdate,
        Self::KeyDisable,
        Self::KeyEnable,
        Self::KeyRevoke,
        Self::KeyRotate,
        Self::KeysImport,
        Self::UserCreate,
        Self::UserUpdate,
        Self::UserDelete,
        Self::PlanUpdate,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreate => "key.create",
            Self::KeyUpdate => "key.update",
            Self::KeyDisable => "key.disable",
            Self::KeyEnable => "key.enable",
            Self::KeyRevoke => "key.revoke",
            Self::KeyRotate => "key.rotate",
            Self::KeysImport => "keys.import",
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::UserDelete => "user.delete",
            Self::PlanUpdate => "plan.update",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == value)
    }
}

/// One audit record. Never holds key material.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: String,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    pub ip: Option<String>,
    pub details: Value,
}

/// A page of a listing, newest first. `next_cursor` continues after the last item.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Listing bounds shared by every paginated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=1000; the API defaults to 50.
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            cursor: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub user_id: Option<UserId>,
    /// Include revoked and expired keys (disabled keys are always listed).
    pub include_inactive: bool,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub plan: Option<PlanName>,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub key_id: Option<KeyId>,
    pub action: Option<AuditAction>,
    pub page: PageRequest,
}

/// What identifies a newly issued key in the store: its id, hash and display forms. The
/// plaintext never reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub id: KeyId,
    pub hash: KeyHash,
    pub key_prefix: String,
    pub prefix: KeyPrefix,
}

/// Profile fields for a user that a key creation makes on the fly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserProfile {
    pub email: Option<String>,
    pub company: Option<String>,
    pub metadata: Metadata,
}

/// The settings of a key to create (everything but its material).
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub user_id: UserId,
    pub name: String,
    pub environment: Environment,
    /// `None`: the environment's default prefix.
    pub prefix: Option<KeyPrefix>,
    pub plan: Option<PlanName>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_hour: Option<u64>,
    pub limits: Option<Vec<Window>>,
    pub allowed_ips: Option<Vec<IpNet>>,
    pub scopes: Vec<Scope>,
    pub metadata: Metadata,
    /// Used only when the user does not exist yet (it is then created on plan `free`).
    pub new_user: UserProfile,
}

impl KeySpec {
    pub fn new(user_id: UserId, name: impl Into<String>) -> Self {
        Self {
            user_id,
            name: name.into(),
            environment: Environment::Live,
            prefix: None,
            plan: None,
            expires_at: None,
            rate_limit_per_hour: None,
            limits: None,
            allowed_ips: None,
            scopes: Vec::new(),
            metadata: Metadata::new(),
            new_user: UserProfile::default(),
        }
    }
}

/// A partial update of a key. `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub allowed_ips: Option<Option<Vec<IpNet>>>,
    pub scopes: Option<Vec<Scope>>,
    /// Merged into the key's metadata (RFC 7396): `null` values remove their field.
    pub metadata: Option<Metadata>,
    pub plan: Option<Option<PlanName>>,
    pub rate_limit_per_hour: Option<Option<u64>>,
    pub limits: Option<Option<Vec<Window>>>,
    /// Apply only if the key's `updated_at` is still this (the caller judged the change
    /// against that version); else `Conflict`.
    pub if_unchanged_since: Option<DateTime<Utc>>,
}

impl KeyPatch {
    /// True if anything besides `enabled` changes.
    pub fn changes_settings(&self) -> bool {
        Self {
            enabled: None,
            if_unchanged_since: None,
            ..self.clone()
        } != Self::default()
    }
}

/// How to rotate a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// How long the old key keeps working: its `expires_at` becomes the earlier of its
    /// current one and now + grace (a grace period never lengthens a key's life).
    pub grace: chrono::Duration,
    /// The new key's expiry; `None` keeps the old key's (none if it had none).
    pub expires_at: Option<DateTime<Utc>>,
    /// Rotate only if the key's `updated_at` is still this; else `Conflict`.
    pub if_unchanged_since: Option<DateTime<Utc>>,
}

/// Most bytes a key's metadata may take as compact JSON (after a merge).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub user_id: UserId,
    pub plan: PlanName,
    pub profile: UserProfile,
}

/// A partial update of a user. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub plan: Option<PlanName>,
    /// When the plan change takes effect for billing (≤ now, within the current month).
    pub plan_effective_at: Option<DateTime<Utc>>,
    pub email: Option<Option<String>>,
    pub company: Option<Option<String>>,
    /// Merged into the user's metadata (RFC 7396).
    pub metadata: Option<Metadata>,
}

/// One row of a key import, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// The CSV line it came from (the header is line 1).
    pub line: u64,
    pub key_hash: KeyHash,
    pub user_id: UserId,
    /// A `key_` + ULID id to keep, else one is generated.
    pub id: Option<KeyId>,
    pub name: String,
    pub plan: Option<PlanName>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub metadata: Metadata,
    pub key_prefix: Option<String>,
}

/// A row an import skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub imported: u64,
    pub skipped: Vec<SkippedRow>,
}

/// What changed, for cache invalidation on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    Key,
    User,
    Plan,
}

/// What happened to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Increases with every change; poll with the last one seen.
    pub id: i64,
    pub entity: Entity,
    pub entity_id: String,
    pub op: ChangeOp,
    /// For keys, the key's hash: caches keyed by hash drop the entry directly.
    pub key_hash: Option<KeyHash>,
}

/// Usage bookkeeping for one key, accumulated in memory and written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub id: KeyId,
    /// Admitted checks since the last write.
    pub admitted: u64,
    pub last_used_at: DateTime<Utc>,
}

/// A migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
    #[serde(with = "rfc3339::option")]
    pub applied_at: Option<DateTime<Utc>>,
}

/// Applies a JSON merge patch (RFC 7396) to an object: `null` removes a field, objects merge
/// recursively, anything else replaces.
pub fn merge_metadata(target: &mut Metadata, patch: &Metadata) {
    for (field, value) in patch {
        match value {
            Value::Null => {
                target.remove(field);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(field.clone())
                    .or_insert_with(|| Value::Object(Metadata::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Metadata::new());
                }
                if let Value::Object(existing) = slot {
                    merge_metadata(existing, inner);
                }
            }
            other => {
                target.insert(field.clone(), other.clone());
            }
        }
    }
}

/// Admitted units to add to a user's monthly quota usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub user_id: UserId,
    /// `YYYY-MM` (UTC).
    pub period: String,
    /// The node process that admitted them (its id, chosen at start): a shared limiter
    /// that lost its figure rebuilds it per node (see [`crate::Store::quota_usage_by_node`]).
    pub node: String,
    pub units: u64,
}

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 13] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];
/// Buckets of the latency histogram ([`LATENCY_BOUNDS_MS`] and one for slower responses).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The histogram bucket a response time falls in.
pub fn latency_bucket(ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|&bound| ms <= bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

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

/// An event for billing providers, with a stable id (a retried delivery is the same event).
#[derive(Debug, Clone, PartialEq)]
pub struct BillingEvent {
    pub id: String,
    /// `usage.metered` or `plan.changed`.
    pub kind: String,
    pub user_id: UserId,
    /// The JSON document delivered (includes `id` and `type`).
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Nothing to send to this sink (e.g. Stripe for a user without a customer id).
    Skipped,
    /// Given up after too many failures.
    Dead,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Skipped => "skipped",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Skipped, Self::Dead]
            .into_iter()
            .find(|status| status.as_str() == raw)
    }
}

/// One event's delivery to one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event: BillingEvent,
    pub sink: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    Skipped(String),
    Retry { at: DateTime<Utc>, error: String },
    Dead(String),
}

/// How [`crate::Store::usage_totals`] groups rollups.
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

/// Units of one user, hour and plan already metered to billing providers, and in how many
/// `usage.metered` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredHour {
    pub user_id: UserId,
    pub hour: DateTime<Utc>,
    pub plan: String,
    pub units: u64,
    pub revisions: u32,
}
