//! What the API and the CLI's `--json` print of stored records: one type per object, whose
//! OpenAPI schema is derived from the same definition that is serialized.

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
pub struct NewKeyObject {
    #[serde(flatten)]
    pub object: KeyObject<'static>,
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyObject<'static>>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeys {
    pub key: NewKeyObject,
    pub old_key: KeyObject<'static>,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserObject {
    pub user_id: String,
    pub plan: String,
    pub email: Option<String>,
    pub company: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    pub key_count: u64,
    pub deleted_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserObject>,
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
