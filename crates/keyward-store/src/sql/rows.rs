//! Converting between Rust values and columns. Both backends use one schema shape:
//! timestamps as TEXT in one fixed UTC format (sorts as text), JSON as text, counts as
//! signed 64-bit integers.

use super::DbRow;
use chrono::{DateTime, NaiveDateTime, Utc};
use keyward_core::{
    Burst, Environment, KeyId, KeyPrefix, Plan, PlanName, PlanSpec, Price, Scope, UserId, Window,
};
use serde::de::DeserializeOwned;
use sqlx::Row;

use crate::{KeyRecord, Metadata, StoreError, StoreResult, UserRecord};

const TS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// The one timestamp format of the schema (sorts as text).
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.format(TS_FORMAT).to_string()
}

pub(crate) fn opt_ts(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(ts)
}

pub(crate) fn parse_ts(raw: &str) -> StoreResult<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(raw, TS_FORMAT)
        .map(|t| t.and_utc())
        .or_else(|_| keyward_core::time::parse(raw))
        .map_err(|error| StoreError::corrupt("timestamp", format!("{raw:?}: {error}")))
}

pub(crate) fn get_ts(row: &DbRow, column: &str) -> StoreResult<DateTime<Utc>> {
    let raw: String = row.try_get(column)?;
    parse_ts(&raw)
}

pub(crate) fn get_opt_ts(row: &DbRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    let raw: Option<String> = row.try_get(column)?;
    raw.as_deref().map(parse_ts).transpose()
}

pub(crate) fn get_json<T: DeserializeOwned>(row: &DbRow, column: &str) -> StoreResult<T> {
    let raw: String = row.try_get(column)?;
    serde_json::from_str(&raw).map_err(|error| StoreError::corrupt(column, error))
}

pub(crate) fn get_opt_json<T: DeserializeOwned>(
    row: &DbRow,
    column: &str,
) -> StoreResult<Option<T>> {
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|raw| serde_json::from_str(&raw).map_err(|error| StoreError::corrupt(column, error)))
        .transpose()
}

/// JSON text of a value (for JSON columns).
pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn parsed<T, E: std::fmt::Display>(
    what: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> StoreResult<T> {
    parse(raw).map_err(|error| StoreError::corrupt(what, format!("{raw:?}: {error}")))
}

pub(crate) fn get_u64(row: &DbRow, column: &str) -> StoreResult<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|error| StoreError::corrupt(column, error))
}

pub(crate) fn get_opt_u64(row: &DbRow, column: &str) -> StoreResult<Option<u64>> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| u64::try_from(v).map_err(|error| StoreError::corrupt(column, error)))
        .transpose()
}

/// Columns of a key row joined with its user's plan, as every key query selects them.
pub(crate) const KEY_COLUMNS: &str = "k.id, k.key_prefix, k.prefix, k.user_id, k.name, \
    k.environment, k.plan, u.plan AS user_plan, k.created_at, k.updated_at, k.expires_at, \
    k.last_used_at, k.request_count, k.is_active, k.enabled, k.revoked_at, k.replaced_by, \
    k.rate_limit_per_hour, k.limits, k.allowed_ips, k.scopes, k.metadata, k.lineage_id, k.imported, \
    k.disabled_by, k.locked_metadata";

/// The SQL side of [`keyward_core::KeyStatus::of`], for a key table aliased `k` at the
/// instant `at`: the condition that the key is `active`. Listings, `max_keys` and
/// `key_count` use these two conditions only, and a conformance test holds them to the Rust
/// rule on the same rows. (`at` is written as a literal: it is a timestamp keyward formats.)
pub(crate) fn active_key_sql(at: DateTime<Utc>) -> String {
    format!(
        "(k.is_active = TRUE AND k.enabled = TRUE AND (k.expires_at IS NULL OR k.expires_at > '{}'))",
        ts(at)
    )
}

/// The condition that the key is active or disabled (counted by `max_keys`, listed by
/// default): not revoked, and not expired unless disabled (disabled beats expired).
pub(crate) fn open_key_sql(at: DateTime<Utc>) -> String {
    format!(
        "(k.is_active = TRUE AND (k.enabled = FALSE OR k.expires_at IS NULL OR k.expires_at > '{}'))",
        ts(at)
    )
}

pub(crate) fn key_from_row(row: &DbRow) -> StoreResult<KeyRecord> {
    let id: String = row.try_get("id")?;
    let prefix: Option<String> = row.try_get("prefix")?;
    let user_id: String = row.try_get("user_id")?;
    let environment: String = row.try_get("environment")?;
    let plan: Option<String> = row.try_get("plan")?;
    let user_plan: String = row.try_get("user_plan")?;
    let replaced_by: Option<String> = row.try_get("replaced_by")?;
    let allowed_ips: Option<Vec<String>> = get_opt_json(row, "allowed_ips")?;
    let scopes: Vec<String> = get_json(row, "scopes")?;
    Ok(KeyRecord {
        id: parsed("key id", &id, KeyId::parse)?,
        key_prefix: row.try_get("key_prefix")?,
        prefix: prefix
            .as_deref()
            .map(|p| parsed("prefix", p, KeyPrefix::parse))
            .transpose()?,
        user_id: parsed("user id", &user_id, UserId::parse)?,
        name: row.try_get("name")?,
        environment: parsed("environment", &environment, Environment::parse)?,
        plan: plan
            .as_deref()
            .map(|p| parsed("plan", p, PlanName::parse))
            .transpose()?,
        user_plan: parsed("plan", &user_plan, PlanName::parse)?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        expires_at: get_opt_ts(row, "expires_at")?,
        last_used_at: get_opt_ts(row, "last_used_at")?,
        request_count: get_u64(row, "request_count")?,
        is_active: row.try_get("is_active")?,
        enabled: row.try_get("enabled")?,
        revoked_at: get_opt_ts(row, "revoked_at")?,
        replaced_by: replaced_by
            .as_deref()
            .map(|r| parsed("key id", r, KeyId::parse))
            .transpose()?,
        rate_limit_per_hour: get_opt_u64(row, "rate_limit_per_hour")?,
        limits: get_opt_json::<Vec<Window>>(row, "limits")?,
        allowed_ips: allowed_ips
            .map(|nets| {
                nets.iter()
                    .map(|n| parsed("allowed_ips", n, str::parse))
                    .collect()
            })
            .transpose()?,
        scopes: scopes
            .iter()
            .map(|s| parsed("scope", s, Scope::parse))
            .collect::<StoreResult<_>>()?,
        metadata: get_json::<Metadata>(row, "metadata")?,
        lineage_id: row.try_get("lineage_id")?,
        imported: row.try_get("imported")?,
        disabled_by: row.try_get("disabled_by")?,
        locked_metadata: get_json(row, "locked_metadata")?,
    })
}

/// Columns of a user row plus its count of active keys at `at`.
pub(crate) fn user_columns(at: DateTime<Utc>) -> String {
    format!(
        "u.user_id, u.plan, u.email, u.company, u.metadata, u.created_at, u.updated_at, \
         u.deleted_at, (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.user_id \
         AND {}) AS key_count",
        active_key_sql(at)
    )
}

pub(crate) fn user_from_row(row: &DbRow) -> StoreResult<UserRecord> {
    let user_id: String = row.try_get("user_id")?;
    let plan: String = row.try_get("plan")?;
    Ok(UserRecord {
        user_id: parsed("user id", &user_id, UserId::parse)?,
        plan: parsed("plan", &plan, PlanName::parse)?,
        email: row.try_get("email")?,
        company: row.try_get("company")?,
        metadata: get_json(row, "metadata")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        key_count: get_u64(row, "key_count")?,
        deleted_at: get_opt_ts(row, "deleted_at")?,
    })
}

pub(crate) fn plan_from_row(row: &DbRow) -> StoreResult<Plan> {
    let name: String = row.try_get("name")?;
    let base: Option<i64> = row.try_get("price_base_cents")?;
    let included: Option<i64> = row.try_get("price_included_requests")?;
    let overage: Option<i64> = row.try_get("price_overage_cents_per_1000")?;
    let price = match (base, included, overage) {
        (Some(base), Some(included), Some(overage)) => Some(Price {
            base_cents: u64::try_from(base).map_err(|e| StoreError::corrupt("price", e))?,
            included_requests: u64::try_from(included)
                .map_err(|e| StoreError::corrupt("price", e))?,
            overage_cents_per_1000: u64::try_from(overage)
                .map_err(|e| StoreError::corrupt("price", e))?,
        }),
        _ => None,
    };
    Ok(Plan {
        name: parsed("plan", &name, PlanName::parse)?,
        spec: PlanSpec {
            limits: get_json(row, "limits")?,
            burst: get_opt_json::<Burst>(row, "burst")?,
            monthly_quota: get_opt_u64(row, "monthly_quota")?,
            max_keys: get_opt_u64(row, "max_keys")?,
            features: get_opt_json::<Vec<Scope>>(row, "features")?,
            price,
            max_key_lifetime_days: get_opt_u64(row, "max_key_lifetime_days")?
                .map(|days| u32::try_from(days).map_err(|e| StoreError::corrupt("plan", e)))
                .transpose()?,
        },
    })
}

/// Converts a count or limit for binding (database integers are signed).
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
