//! `POST /v1/keys/self-revoke`: whoever holds a key can revoke it — a holder who finds it
//! leaked, a scanner that found it in public. Open (the key is the credential), answered
//! the same for every string that is not a revocable key, and counted by the brute-force
//! guard, so it cannot be used to learn which keys exist.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use keyward_core::{PlainKey, PresentedKey};
use keyward_store::{Actor, KeyStatus};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
use crate::state::AppState;

/// A key its holder wants revoked.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfRevokeRequest {
    /// The key itself (a user's key or an admin key).
    pub key: String,
}

/// The revoked key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SelfRevoked {
    /// The revoked key's id (`key_…`, or `adk_…` for an admin key).
    pub key_id: String,
    pub revoked: bool,
}

#[utoipa::path(post, path = "/v1/keys/self-revoke", operation_id = "selfRevokeKey", summary = "Revoke the key in the body (for its holder)", tag = "keys", request_body = SelfRevokeRequest,
    responses((status = 200, description = "The key is revoked (on this node at once, on the others through the change feed within a second)", body = SelfRevoked),
        (status = 404, description = "Not a key that can be revoked (unknown, already revoked or expired)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn self_revoke(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(request): ApiJson<SelfRevokeRequest>,
) -> ApiResult<Json<SelfRevoked>> {
    crate::auth::refuse_if_blocked(&state, &client)?;
    let not_found = || {
        state.verifier.guard().record_failure(client.client);
        ApiError::NotFound("key")
    };
    let now = Utc::now();
    // An admin key: revoked like any other, by itself.
    if let Ok(admin) = PlainKey::parse(&request.key)
        && admin.is_admin_key()
    {
        if state.verifier.store_down() {
            return Err(ApiError::Unavailable);
        }
        let Some(record) = state.store.admin_key_by_hash(&admin.hash()).await? else {
            return Err(not_found());
        };
        if !record.is_usable(now) {
            return Err(not_found());
        }
        let actor = Actor::admin_key(&record.id, Some(client.client));
        state.store.revoke_admin_key(&record.id, &actor).await?;
        tracing::warn!(admin_key = %record.id, "admin key revoked by its holder");
        return Ok(Json(SelfRevoked {
            key_id: record.id,
            revoked: true,
        }));
    }
    // A string that cannot be a key (a bad checksum, say) costs no I/O.
    let Ok(presented) = PresentedKey::classify(&request.key) else {
        return Err(not_found());
    };
    if state.verifier.store_down() {
        return Err(ApiError::Unavailable);
    }
    let Some(key) = state.store.lookup(&presented.hash()).await? else {
        return Err(not_found());
    };
    if !matches!(key.status(now), KeyStatus::Active | KeyStatus::Disabled) {
        return Err(not_found());
    }
    let actor = Actor::key(key.id.clone(), Some(client.client));
    let revoked = state.store.revoke_key(&key.id, &actor).await?;
    tracing::warn!(key_id = %revoked.id, key_prefix = %revoked.key_prefix, "key revoked by its holder");
    Ok(Json(SelfRevoked {
        key_id: revoked.id.to_string(),
        revoked: true,
    }))
}
