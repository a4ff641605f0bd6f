//! What the key endpoints accept: the request bodies and query, and the checks of each
//! field (every refusal a 422 naming the field).

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use keyward_core::plan::validate_windows;
use keyward_core::{Environment, KeyName, Scope, Window};
use keyward_store::Metadata;
use serde::Deserialize;

use super::super::inputs::{double_option, field};
use super::{MAX_DAYS, MAX_LIST_ITEMS};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// `POST /v1/keys`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Admin only; self-service creates keys for its own user.
    #[schema(pattern = r"^[A-Za-z0-9_.@:+-]{1,255}$")]
    pub user_id: Option<String>,
    /// 1 to 200 characters, no control or bidirectional-formatting characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"
    )]
    pub name: String,
    #[schema(value_type = Option<keyward_core::Environment>)]
    pub environment: Option<Environment>,
    /// The key's prefix (`sk_live` by default): a lowercase letter and up to 11 lowercase
    /// letters or digits, then optionally `_` and 1 to 11 more.
    #[schema(pattern = r"^[a-z][a-z0-9]{0,11}(_[a-z0-9]{1,11})?$")]
    pub prefix: Option<String>,
    /// Admin only. Alias: `tier`.
    #[serde(alias = "tier")]
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plan: Option<String>,
    /// 1 to 36500.
    #[schema(minimum = 1, maximum = 36500)]
    pub expires_in_days: Option<u32>,
    /// RFC 3339, between 1970 and 9999.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Admin only.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    pub rate_limit_per_hour: Option<u64>,
    /// Admin only.
    #[schema(value_type = Option<Vec<Object>>)]
    pub limits: Option<Vec<Window>>,
    pub allowed_ips: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// `PATCH /v1/keys/{id}`: absent fields are left alone; `null` clears a nullable one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"
    )]
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Option<Vec<String>>>,
    pub scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
    /// Admin only. Alias: `tier`.
    #[serde(default, alias = "tier", deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub plan: Option<Option<String>>,
    /// Admin only.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub rate_limit_per_hour: Option<Option<u64>>,
    /// Admin only.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub limits: Option<Option<Vec<Window>>>,
}

/// `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old key keeps working (0 to 2592000 s, default 0).
    #[schema(minimum = 0, maximum = 2_592_000)]
    pub grace_period_seconds: Option<u64>,
    /// 1 to 36500.
    #[schema(minimum = 1, maximum = 36500)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListKeysQuery {
    #[param(pattern = r"^[A-Za-z0-9_.@:+-]{1,255}$")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub include_inactive: bool,
    /// Keys whose id or user id is this, whose display prefix starts with it, or whose
    /// name contains it (letter case aside); 1–200 characters.
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// Only keys in this state (`revoked` and `expired` list them whatever
    /// `include_inactive` says).
    #[param(pattern = "^(active|disabled|expired|revoked)$")]
    pub status: Option<String>,
    /// Only keys on this plan (their own, else their user's).
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plan: Option<String>,
    /// Items per page (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

pub(crate) fn name_field(name: &str) -> ApiResult<String> {
    field("name", name, KeyName::parse).map(KeyName::into_inner)
}

/// A key's allowed networks, as the API takes them: at most 100, each a CIDR or an address.
pub fn ips_field(values: &[String]) -> ApiResult<Vec<IpNet>> {
    if values.len() > MAX_LIST_ITEMS {
        return Err(ApiError::validation("allowed_ips", "at most 100 entries"));
    }
    values
        .iter()
        .map(|value| {
            value
                .parse::<IpNet>()
                .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ApiError::validation(
                        "allowed_ips",
                        format!("`{value}` is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

/// A key's scopes, as the API takes them: at most 100, each a valid scope, duplicates dropped.
pub fn scopes_field(values: &[String]) -> ApiResult<Vec<Scope>> {
    if values.len() > MAX_LIST_ITEMS {
        return Err(ApiError::validation("scopes", "at most 100 entries"));
    }
    let mut scopes: Vec<Scope> = values
        .iter()
        .map(|s| field("scopes", s, Scope::parse))
        .collect::<ApiResult<_>>()?;
    scopes.dedup();
    Ok(scopes)
}

pub(super) fn limits_field(windows: &[Window]) -> ApiResult<Vec<Window>> {
    validate_windows(windows).map_err(|error| ApiError::validation("limits", error.reason))?;
    Ok(windows.to_vec())
}

/// A key's hourly limit, as the API takes it: 1 to 2^63 − 1.
pub fn rate_field(value: u64) -> ApiResult<u64> {
    if value == 0 || value > i64::MAX as u64 {
        return Err(ApiError::validation(
            "rate_limit_per_hour",
            "must be between 1 and 9223372036854775807",
        ));
    }
    Ok(value)
}

pub(super) fn days_from_now(name: &str, days: u32) -> ApiResult<DateTime<Utc>> {
    if days == 0 || days > MAX_DAYS {
        return Err(ApiError::validation(name, "must be between 1 and 36500"));
    }
    Ok(Utc::now() + Duration::days(i64::from(days)))
}

/// A new credential's expiry: `expires_in_days` or `expires_at` (in the future), not both.
pub(crate) fn expiry_field(
    expires_in_days: Option<u32>,
    expires_at: Option<&str>,
) -> ApiResult<Option<DateTime<Utc>>> {
    match (expires_in_days, expires_at) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "expires_at",
            "give expires_in_days or expires_at, not both",
        )),
        (Some(days), None) => days_from_now("expires_in_days", days).map(Some),
        (None, Some(at)) => {
            let at = time_field("expires_at", at)?;
            if at <= Utc::now() {
                return Err(ApiError::validation("expires_at", "must be in the future"));
            }
            Ok(Some(at))
        }
        (None, None) => Ok(None),
    }
}

/// Metadata is returned on every verification: at most 16 KiB as compact JSON.
pub(super) fn check_metadata_size(metadata: Option<&Metadata>) -> ApiResult<()> {
    let size = metadata.map_or(0, |m| serde_json::to_vec(m).map_or(usize::MAX, |v| v.len()));
    if size > keyward_store::MAX_METADATA_BYTES {
        return Err(ApiError::validation(
            "metadata",
            "must be at most 16 KiB as compact JSON",
        ));
    }
    Ok(())
}

pub(super) fn time_field(name: &str, value: &str) -> ApiResult<DateTime<Utc>> {
    field(name, value, keyward_core::time::parse)
}

/// Self-service sending a field only the admin may set is refused, naming the field.
pub(super) fn forbid_admin_fields(caller: &Caller, fields: &[(&str, bool)]) -> ApiResult<()> {
    if caller.is_admin() {
        return Ok(());
    }
    match fields.iter().find(|(_, present)| *present) {
        Some((name, _)) => Err(ApiError::Forbidden(format!(
            "`{name}`: only the admin may set it"
        ))),
        None => Ok(()),
    }
}
