//! `/v1/admin-keys`: credentials for the management API with permissions, made and revoked
//! by the admin token or an admin key holding `admin:manage`, which grants and revokes only
//! keys within its own permissions (`*` and `admin:manage` keys: only the admin token or a
//! `*` key).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::Permission;
use keyward_core::permission::may_manage;
use keyward_store::{AdminKeyRecord, PageRequest, issue_admin_key};
use serde::Deserialize;

use super::inputs::{AdminOnly, ApiQuery, field};
use super::keys::{expiry_field, name_field};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{AdminKeyList, NewAdminKeyObject};

/// `POST /v1/admin-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdminKeyRequest {
    /// 1 to 200 characters, no control or bidirectional-formatting characters.
    pub name: String,
    /// `keys:read`, `keys:write`, `users:read`, `users:write`, `plans:write`, `usage:read`,
    /// `billing:read`, `audit:read`, `webhooks:write`, `admin:manage`, or `*` (all).
    pub permissions: Vec<String>,
    /// RFC 3339, in the future.
    pub expires_at: Option<String>,
    /// 1 to 36500.
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAdminKeysQuery {
    /// Include revoked keys (default false).
    pub include_revoked: Option<bool>,
    /// Items per page (1–1000, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// What the caller may not grant or revoke, as a refusal.
fn beyond(caller: &Caller, permissions: &[Permission], verb: &str) -> ApiResult<()> {
    if may_manage(caller.permissions(), permissions) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "this admin key cannot {verb} a key with permissions it does not hold itself (keys with `*` or `admin:manage`: only the admin token or a `*` key)"
    )))
}

#[utoipa::path(post, path = "/v1/admin-keys", operation_id = "createAdminKey", summary = "Create an admin key (its plaintext is shown once)", tag = "admin keys", request_body = CreateAdminKeyRequest,
    responses((status = 201, description = "The new admin key, with its plaintext `key` (shown once)", body = NewAdminKeyObject),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    ApiJson(request): ApiJson<CreateAdminKeyRequest>,
) -> ApiResult<Response> {
    let name = name_field(&request.name)?;
    if request.permissions.is_empty() || request.permissions.len() > Permission::ALL.len() {
        return Err(ApiError::validation(
            "permissions",
            "give between 1 and 11 permissions",
        ));
    }
    let permissions = request
        .permissions
        .iter()
        .map(|p| field("permissions", p, Permission::parse))
        .collect::<ApiResult<Vec<_>>>()?;
    let expires_at = expiry_field(request.expires_in_days, request.expires_at.as_deref())?;
    beyond(&caller, &permissions, "grant")?;
    let (key, record) = issue_admin_key(
        &*state.store,
        &name,
        &permissions,
        expires_at,
        &caller.actor(&client),
    )
    .await?;
    tracing::info!(admin_key = %record.id, key_prefix = %record.key_prefix, "admin key created");
    let created = NewAdminKeyObject {
        object: &record,
        key: key.expose_secret(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/v1/admin-keys", operation_id = "listAdminKeys", summary = "List admin keys (never their keys)", tag = "admin keys", params(ListAdminKeysQuery),
    responses((status = 200, body = AdminKeyList),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminOnly(_, _): AdminOnly,
    ApiQuery(query): ApiQuery<ListAdminKeysQuery>,
) -> ApiResult<Json<AdminKeyList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let page = state
        .store
        .list_admin_keys(
            query.include_revoked.unwrap_or(false),
            &PageRequest {
                limit,
                cursor: query.cursor,
            },
        )
        .await?;
    Ok(Json(AdminKeyList {
        admin_keys: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(delete, path = "/v1/admin-keys/{id}", operation_id = "revokeAdminKey", summary = "Revoke an admin key", tag = "admin keys", params(("id" = String, Path)),
    responses((status = 200, description = "The revoked admin key (idempotent)", body = AdminKeyRecord),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminKeyRecord>> {
    if !id.starts_with("adk_") || id.len() > 64 {
        return Err(ApiError::NotFound("admin key"));
    }
    let key = state.store.get_admin_key(&id).await?;
    beyond(&caller, &key.permissions, "revoke")?;
    let revoked = state
        .store
        .revoke_admin_key(&id, &caller.actor(&client))
        .await?;
    tracing::info!(admin_key = %revoked.id, "admin key revoked");
    Ok(Json(revoked))
}
