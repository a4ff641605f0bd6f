//! Keys: the stored record, its API view, and the inputs of key operations (create,
//! change, rotate, import).

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::{Environment, KeyHash, KeyId, KeyPrefix, PlanName, Scope, UserId, Window};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{PageRequest, UserProfile};

/// A JSON object, as `metadata` fields are.
pub type Metadata = Map<String, Value>;

pub use keyward_core::KeyStatus;

/// A stored API key: everything but its hash.
/// Serialized only as the subject of a webhook event (a snapshot the event's `data` is
/// rendered from), never as an API document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub user_id: Option<UserId>,
    /// Include revoked and expired keys (disabled keys are always listed).
    pub include_inactive: bool,
    /// Keys whose id or user id is this, whose display prefix starts with it, or whose
    /// name contains it (letter case aside).
    pub search: Option<String>,
    /// Only keys in this state (a revoked or expired state lists them whatever
    /// `include_inactive` says).
    pub status: Option<keyward_core::KeyStatus>,
    /// Only keys on this plan: their own, else their user's.
    pub plan: Option<PlanName>,
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

/// What a leak report does to an active or disabled key it names (admin keys are always
/// revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    Revoke,
    Disable,
    /// Audit only.
    Notify,
}

/// The most tokens one leak report may name (GitHub sends far fewer at a time).
pub const MAX_REPORTED_TOKENS: usize = 1000;

/// Where a leaked key was found, as the report says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReport {
    pub url: Option<String>,
    pub source: Option<String>,
}

/// The key a leak report named, and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakFound {
    /// `key_…`, or `adk_…` for an admin key.
    pub id: String,
    pub user_id: Option<UserId>,
    /// `revoked`, `disabled`, `notified`, or `none` (already revoked or expired).
    pub action: &'static str,
    /// True for the first report of this key (later ones are audited too).
    pub first_report: bool,
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

/// Whether an import keeps what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    Commit,
    /// Every row checked in a transaction that is rolled back: the report tells what a
    /// real import would do (the same duplicates, the same refusals).
    DryRun,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Whether this was a dry run (nothing kept).
    pub dry_run: bool,
    pub imported: u64,
    pub skipped: Vec<SkippedRow>,
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
