//! `/v1/keys`: create, list, show, update, revoke, rotate (admin or self-service).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use keyward_core::{KeyId, KeyPrefix, Permission, PlainKey, PlanName, UserId};
use keyward_store::{KeyPatch, KeyRecord, KeySpec, Rotation, issue_key, rotate_key};
use serde_json::Value;

use super::inputs::{AdminOrSelf, field, now};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientAddr;
use crate::extract::{ApiJson, JsonBody, RawBody, from_json_value, is_json, parse_json_syntax};
use crate::self_service;
use crate::state::AppState;
use crate::views::{KeyObject, NewKeyObject, RotatedKeys};

mod fields;
pub mod list;
pub mod self_revoke;

pub use fields::{
    CreateKeyRequest, ListKeysQuery, RotateKeyRequest, UpdateKeyRequest, ips_field, rate_field,
    scopes_field,
};
use fields::{check_metadata_size, days_from_now, forbid_admin_fields, limits_field, time_field};
pub(crate) use fields::{expiry_field, name_field};

const MAX_LIST_ITEMS: usize = 100;
use keyward_core::MAX_GRACE_SECONDS;
const MAX_DAYS: u32 = 36_500;

/// A key id from the path; one that cannot exist is simply not found.
fn path_key(id: &str) -> ApiResult<KeyId> {
    KeyId::parse(id).map_err(|_| ApiError::NotFound("key"))
}

/// The key object of `key`, as answered.
fn view(key: &KeyRecord) -> Response {
    Json(KeyObject::of(key, now())).into_response()
}

/// A new key's object, with its plaintext shown this once.
fn view_with_secret<'a>(key: &'a KeyRecord, secret: &'a str) -> NewKeyObject<'a> {
    NewKeyObject {
        object: KeyObject::of(key, now()),
        key: secret,
    }
}

/// A key the caller may act on: any for the admin; its own user's for a key (else 404).
pub async fn visible_key(state: &AppState, caller: &Caller, id: &str) -> ApiResult<KeyRecord> {
    let key = state.store.get_key(&path_key(id)?).await?;
    if caller.can_see(&key.user_id) {
        Ok(key)
    } else {
        Err(ApiError::NotFound("key"))
    }
}

#[utoipa::path(post, path = "/v1/keys", operation_id = "createKey", summary = "Create a key (its plaintext is shown once)", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, description = "The new key, with its plaintext `key` (shown once)", body = crate::views::NewKeyObject),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminOrSelf(caller, client): AdminOrSelf,
    ApiJson(request): ApiJson<CreateKeyRequest>,
) -> ApiResult<Response> {
    let (plain, key) = create_for(&state, &caller, &client, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(view_with_secret(&key, plain.expose_secret())),
    )
        .into_response())
}

/// Creates a key as `POST /v1/keys` does, for any caller (the dashboard and the portal
/// too): the plaintext, to show once, and the key.
pub async fn create_for(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    request: CreateKeyRequest,
) -> ApiResult<(PlainKey, KeyRecord)> {
    let caller = caller.clone();
    let user_id = match (caller.own_user(), &request.user_id) {
        (Some(own), _) => own.clone(),
        (None, Some(user_id)) => field("user_id", user_id, UserId::parse)?,
        (None, None) => return Err(ApiError::validation("user_id", "is required")),
    };
    // Creating a key for a user that does not exist creates the user: an admin key needs
    // `users:write` for that too.
    if let Caller::Admin(Some(admin_key)) = &caller
        && !keyward_core::permission::grants(&admin_key.permissions, Permission::UsersWrite)
    {
        match state.store.get_user(&user_id).await {
            Ok(_) => {}
            Err(keyward_store::StoreError::NotFound(_)) => {
                return Err(ApiError::Forbidden(format!(
                    "user {user_id} does not exist, and creating it needs the `users:write` permission this admin key lacks"
                )));
            }
            Err(error) => return Err(error.into()),
        }
    }
    let mut spec = KeySpec::new(user_id, name_field(&request.name)?);
    spec.environment = request.environment.unwrap_or_default();
    spec.prefix = request
        .prefix
        .as_deref()
        .map(|p| field("prefix", p, KeyPrefix::parse))
        .transpose()?;
    spec.plan = request
        .plan
        .as_deref()
        .map(|p| field("plan", p, PlanName::parse))
        .transpose()?;
    spec.expires_at = expiry_field(request.expires_in_days, request.expires_at.as_deref())?;
    spec.rate_limit_per_hour = request.rate_limit_per_hour.map(rate_field).transpose()?;
    spec.limits = request.limits.as_deref().map(limits_field).transpose()?;
    spec.allowed_ips = request.allowed_ips.as_deref().map(ips_field).transpose()?;
    let requested_scopes = request.scopes.as_deref().map(scopes_field).transpose()?;
    check_metadata_size(request.metadata.as_ref())?;
    // The prefix must not claim another environment than the one the key gets (a test key's
    // keys are test keys unless it asks otherwise, which is refused below).
    let environment = match caller.own_key() {
        Some(own) if request.environment.is_none() => own.environment,
        _ => spec.environment,
    };
    if let Some(prefix) = &spec.prefix {
        prefix
            .check_user_key(environment)
            .map_err(|error| ApiError::validation("prefix", error))?;
    }
    forbid_admin_fields(
        &caller,
        &[
            ("user_id", request.user_id.is_some()),
            ("plan", request.plan.is_some()),
            ("rate_limit_per_hour", request.rate_limit_per_hour.is_some()),
            ("limits", request.limits.is_some()),
        ],
    )?;
    spec.scopes = match caller.own_key() {
        Some(own) => {
            let expiry_field = if request.expires_in_days.is_some() {
                "expires_in_days"
            } else {
                "expires_at"
            };
            self_service::restrict_new_key(
                own,
                &mut spec,
                request.environment.is_some(),
                expiry_field,
            )?;
            self_service::new_key_scopes(own, requested_scopes)?
        }
        None => requested_scopes.unwrap_or_default(),
    };
    spec.metadata = request.metadata.unwrap_or_default();
    let (plain, key) = issue_key(&*state.store, &spec, &caller.actor(client)).await?;
    tracing::info!(key_id = %key.id, key_prefix = %key.key_prefix, user_id = %key.user_id, "key created");
    Ok((plain, key))
}

#[utoipa::path(get, path = "/v1/keys/{id}", operation_id = "getKey", summary = "Get a key", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = crate::views::KeyObject), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    AdminOrSelf(caller, _): AdminOrSelf,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let key = visible_key(&state, &caller, &id).await?;
    Ok(view(&key))
}

#[utoipa::path(patch, path = "/v1/keys/{id}", operation_id = "updateKey", summary = "Change a key's name, state, expiry, addresses, scopes, metadata, plan or limits", tag = "keys", params(("id" = String, Path)), request_body = UpdateKeyRequest,
    responses((status = 200, body = crate::views::KeyObject), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminOrSelf(caller, client): AdminOrSelf,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    // Syntax (400), then the key (404), then the values (422).
    let document = parse_json_syntax(&body)?;
    let key = visible_key(&state, &caller, &id).await?;
    let request: UpdateKeyRequest = from_json_value(document)?;
    Ok(view(
        &update_for(&state, &caller, &client, key, request).await?,
    ))
}

/// Changes a key as `PATCH /v1/keys/{id}` does, for any caller. `key` is one the caller may
/// see ([`visible_key`]).
pub async fn update_for(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    key: KeyRecord,
    request: UpdateKeyRequest,
) -> ApiResult<KeyRecord> {
    let patch = KeyPatch {
        name: request.name.as_deref().map(name_field).transpose()?,
        enabled: request.enabled,
        expires_at: request
            .expires_at
            .map(|at| {
                at.as_deref()
                    .map(|at| time_field("expires_at", at))
                    .transpose()
            })
            .transpose()?,
        allowed_ips: request
            .allowed_ips
            .map(|ips| ips.as_deref().map(ips_field).transpose())
            .transpose()?,
        scopes: request.scopes.as_deref().map(scopes_field).transpose()?,
        metadata: request.metadata,
        plan: request
            .plan
            .map(|plan| {
                plan.as_deref()
                    .map(|p| field("plan", p, PlanName::parse))
                    .transpose()
            })
            .transpose()?,
        rate_limit_per_hour: request
            .rate_limit_per_hour
            .map(|r| r.map(rate_field).transpose())
            .transpose()?,
        limits: request
            .limits
            .map(|l| l.as_deref().map(limits_field).transpose())
            .transpose()?,
        // Self-service is judged against this version of the key: an admin's change in
        // between makes the request a conflict instead of undoing the admin.
        if_unchanged_since: (!caller.is_admin()).then_some(key.updated_at),
    };
    if let Some(metadata) = &patch.metadata {
        let mut merged = key.metadata.clone();
        keyward_store::merge_metadata(&mut merged, metadata);
        check_metadata_size(Some(&merged))?;
    }
    forbid_admin_fields(
        caller,
        &[
            ("plan", patch.plan.is_some()),
            ("rate_limit_per_hour", patch.rate_limit_per_hour.is_some()),
            ("limits", patch.limits.is_some()),
        ],
    )?;
    if let Some(own) = caller.own_key() {
        let own_disable = patch.enabled == Some(true) && disabled_by_same_user(state, &key).await?;
        self_service::check_patch(own, &key, &patch, own_disable)?;
    }
    Ok(state
        .store
        .update_key(&key.id, &patch, &caller.actor(client))
        .await?)
}

#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "revokeKey", summary = "Revoke a key", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, description = "The revoked key (idempotent)", body = crate::views::KeyObject), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    AdminOrSelf(caller, client): AdminOrSelf,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(view(&revoke_for(&state, &caller, &client, &id).await?))
}

/// Revokes a key as `DELETE /v1/keys/{id}` does, for any caller.
pub async fn revoke_for(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    id: &str,
) -> ApiResult<KeyRecord> {
    let key = visible_key(state, caller, id).await?;
    if let Some(own) = caller.own_key() {
        self_service::check_environment(own, key.environment)?;
    }
    let revoked = state
        .store
        .revoke_key(&key.id, &caller.actor(client))
        .await?;
    tracing::info!(key_id = %revoked.id, key_prefix = %revoked.key_prefix, "key revoked");
    Ok(revoked)
}

#[utoipa::path(post, path = "/v1/keys/{id}/rotate", operation_id = "rotateKey", summary = "Rotate a key, with an optional grace period for the old one", tag = "keys", params(("id" = String, Path)), request_body(content = Option<RotateKeyRequest>),
    responses((status = 201, body = crate::views::RotatedKeys), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    AdminOrSelf(caller, client): AdminOrSelf,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    // Syntax (400/415), then the key (404), then the values (422).
    let document = optional_json_document(&headers, &body)?;
    let key = visible_key(&state, &caller, &id).await?;
    let request: RotateKeyRequest = match document {
        Some(document) => from_json_value(document)?,
        None => RotateKeyRequest::default(),
    };
    let (plain, new, old) = rotate_for(&state, &caller, &client, key, request).await?;
    let rotated = RotatedKeys {
        key: view_with_secret(&new, plain.expose_secret()),
        old_key: KeyObject::of(&old, now()),
    };
    Ok((StatusCode::CREATED, Json(rotated)).into_response())
}

/// Rotates a key as `POST /v1/keys/{id}/rotate` does, for any caller: the new key's
/// plaintext (to show once), the new key and the old one. `key` is one the caller may see
/// ([`visible_key`]).
pub async fn rotate_for(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    key: KeyRecord,
    request: RotateKeyRequest,
) -> ApiResult<(PlainKey, KeyRecord, KeyRecord)> {
    let grace = request.grace_period_seconds.unwrap_or(0);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::validation(
            "grace_period_seconds",
            "must be between 0 and 2592000",
        ));
    }
    let rotation = Rotation {
        grace: Duration::seconds(grace as i64),
        expires_at: request
            .expires_in_days
            .map(|d| days_from_now("expires_in_days", d))
            .transpose()?,
        // Self-service was judged against this version of the key.
        if_unchanged_since: (!caller.is_admin()).then_some(key.updated_at),
    };
    if let Some(own) = caller.own_key() {
        self_service::check_rotation(own, &key, rotation.expires_at)?;
    }
    let (plain, new, old) =
        rotate_key(&*state.store, &key.id, &rotation, &caller.actor(client)).await?;
    tracing::info!(key_id = %old.id, new_key_id = %new.id, grace_period_seconds = grace, "key rotated");
    Ok((plain, new, old))
}

/// Whether `key` was disabled by a key of its own user (or that user's portal), so that the
/// user may enable it again.
async fn disabled_by_same_user(state: &AppState, key: &KeyRecord) -> ApiResult<bool> {
    let Some(by) = key.disabled_by.as_deref() else {
        return Ok(false);
    };
    if let Some(user) = by.strip_prefix("portal:") {
        return Ok(user == key.user_id.as_str());
    }
    let Some(id) = by.strip_prefix("key:").and_then(|id| KeyId::parse(id).ok()) else {
        return Ok(false);
    };
    match state.store.get_key(&id).await {
        Ok(disabler) => Ok(disabler.user_id == key.user_id),
        Err(keyward_store::StoreError::NotFound(_)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// A JSON body that may be absent (empty, `None`); when present it must be JSON.
pub fn optional_json_document(headers: &HeaderMap, body: &Bytes) -> ApiResult<Option<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json_syntax(body).map(Some)
}
