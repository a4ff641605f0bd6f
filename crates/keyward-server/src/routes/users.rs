//! `/v1/users` (admin only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use keyward_core::{PlanName, UserId};
use keyward_store::{
    Metadata, NewUser, PageRequest, UserFilter, UserPatch, UserProfile, UserRecord,
};
use serde::Deserialize;

use super::inputs::{AdminOnly, ApiQuery, double_option, field, now};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
use crate::state::AppState;
use crate::views::{PortalLink, PortalSessionsEnded, RevokedCount, UserList};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1 to 255 letters, digits and `_.@:+-`.
    #[schema(pattern = r"^[A-Za-z0-9_.@:+-]{1,255}$")]
    pub user_id: String,
    /// Default `free`. Alias: `tier`.
    #[serde(alias = "tier")]
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plan: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(alias = "tier")]
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plan: Option<String>,
    /// RFC 3339, ≤ now, within the current month: when the plan change starts billing.
    #[schema(format = DateTime)]
    pub plan_effective_at: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub company: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListUsersQuery {
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub plan: Option<String>,
    /// Items per page (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A user id from the path; one that cannot exist is simply not found.
pub(super) fn path_user(id: &str) -> ApiResult<UserId> {
    UserId::parse(id).map_err(|_| ApiError::NotFound("user"))
}

fn text_field(name: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(text) if text.len() > 320 || text.chars().any(char::is_control) => Err(
            ApiError::validation(name, "must be at most 320 printable characters"),
        ),
        other => Ok(other),
    }
}

#[utoipa::path(get, path = "/v1/users", operation_id = "listUsers", summary = "List users", tag = "users", params(ListUsersQuery),
    responses((status = 200, body = crate::views::UserList), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _: AdminOnly,
    ApiQuery(query): ApiQuery<ListUsersQuery>,
) -> ApiResult<Json<UserList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let filter = UserFilter {
        plan: query
            .plan
            .as_deref()
            .map(|p| field("plan", p, PlanName::parse))
            .transpose()?,
        page: PageRequest {
            limit,
            cursor: query.cursor,
        },
    };
    let page = state.store.list_users(&filter).await?;
    Ok(Json(UserList {
        users: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/users", operation_id = "createUser", summary = "Create a user", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = keyward_store::UserRecord), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserRecord>)> {
    let user = NewUser {
        user_id: field("user_id", &request.user_id, UserId::parse)?,
        plan: match &request.plan {
            Some(plan) => field("plan", plan, PlanName::parse)?,
            None => PlanName::free(),
        },
        profile: UserProfile {
            email: text_field("email", request.email)?,
            company: text_field("company", request.company)?,
            metadata: request.metadata.unwrap_or_default(),
        },
    };
    let created = state
        .store
        .create_user(&user, &caller.actor(&client))
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/v1/users/{user_id}", operation_id = "getUser", summary = "Get a user", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = keyward_store::UserRecord), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn show(
    State(state): State<AppState>,
    _: AdminOnly,
    Path(user_id): Path<String>,
) -> ApiResult<Json<UserRecord>> {
    Ok(Json(state.store.get_user(&path_user(&user_id)?).await?))
}

#[utoipa::path(patch, path = "/v1/users/{user_id}", operation_id = "updateUser", summary = "Change a user's plan, email, company or metadata", tag = "users", params(("user_id" = String, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = keyward_store::UserRecord), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(user_id): Path<String>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<UserRecord>> {
    Ok(Json(
        update_for(&state, &caller, &client, &user_id, request).await?,
    ))
}

/// Changes a user as `PATCH /v1/users/{user_id}` does (the dashboard too).
pub async fn update_for(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    user_id: &str,
    request: UpdateUserRequest,
) -> ApiResult<UserRecord> {
    let id = path_user(user_id)?;
    let patch = UserPatch {
        plan: request
            .plan
            .as_deref()
            .map(|p| field("plan", p, PlanName::parse))
            .transpose()?,
        plan_effective_at: request
            .plan_effective_at
            .as_deref()
            .map(|at| field("plan_effective_at", at, keyward_core::time::parse))
            .transpose()?,
        email: request.email.map(|e| text_field("email", e)).transpose()?,
        company: request
            .company
            .map(|c| text_field("company", c))
            .transpose()?,
        metadata: request.metadata,
    };
    Ok(state
        .store
        .update_user(&id, &patch, &caller.actor(client))
        .await?)
}

#[utoipa::path(delete, path = "/v1/users/{user_id}", operation_id = "deleteUser", summary = "Delete a user and revoke their keys", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, description = "The deleted user (`deleted_at` set); its keys are revoked", body = keyward_store::UserRecord),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(user_id): Path<String>,
) -> ApiResult<Json<UserRecord>> {
    let id = path_user(&user_id)?;
    let deleted = state.store.delete_user(&id, &caller.actor(&client)).await?;
    Ok(Json(deleted))
}

#[utoipa::path(post, path = "/v1/users/{user_id}/revoke-keys", operation_id = "revokeUserKeys", summary = "Revoke every key of a user", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = crate::views::RevokedCount), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn revoke_keys(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(user_id): Path<String>,
) -> ApiResult<Json<RevokedCount>> {
    let id = path_user(&user_id)?;
    let revoked = state
        .store
        .revoke_user_keys(&id, &caller.actor(&client))
        .await?;
    Ok(Json(RevokedCount { revoked }))
}

#[utoipa::path(post, path = "/v1/users/{user_id}/portal-sessions", operation_id = "createPortalSession", summary = "Make a one-time link to the user's portal", tag = "users", params(("user_id" = String, Path)),
    responses((status = 201, description = "A link that opens the user's portal once, before `expires_at`", body = PortalLink),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn create_portal_session(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(user_id): Path<String>,
    parts: Parts,
) -> ApiResult<(StatusCode, Json<PortalLink>)> {
    let link = portal_link(&state, &caller, &client, &user_id, &parts).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Makes a one-time portal link for an existing user (the dashboard's button too). Only the
/// SHA-256 of its token is stored; the link is shown to the caller alone.
pub async fn portal_link(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    user_id: &str,
    parts: &Parts,
) -> ApiResult<PortalLink> {
    let id = path_user(user_id)?;
    let token = crate::ui::session::new_token();
    let ttl = chrono::Duration::from_std(state.config.ui.portal_link_ttl)
        .unwrap_or(chrono::Duration::minutes(15));
    let expires_at = now() + ttl;
    state
        .store
        .create_portal_link(
            &id,
            &crate::ui::session::token_hash(&token),
            expires_at,
            &caller.actor(client),
        )
        .await?;
    Ok(PortalLink {
        url: format!(
            "{}/portal/enter?token={token}",
            crate::ui::session::public_origin(parts, state)
        ),
        expires_at,
    })
}

#[utoipa::path(delete, path = "/v1/users/{user_id}/portal-sessions", operation_id = "revokePortalSessions", summary = "End every portal link and session of the user", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = PortalSessionsEnded),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn revoke_portal_sessions(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(user_id): Path<String>,
) -> ApiResult<Json<PortalSessionsEnded>> {
    let id = path_user(&user_id)?;
    let ended = state
        .store
        .revoke_portal_sessions(&id, &caller.actor(&client))
        .await?;
    Ok(Json(PortalSessionsEnded {
        user_id: id.to_string(),
        ended,
    }))
}
