//! Who is calling a management endpoint: the admin (the admin token, or an admin key with
//! permissions), or a user's own key (self-service), checked through the one verification
//! path.

use std::sync::Arc;

use axum::http::request::Parts;
use chrono::Utc;
use keyward_core::{Code, Permission, PlainKey, PresentedKey, Scope, UserId};
use keyward_store::{Actor, AdminKeyRecord};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, bearer_token, presented_key};
use crate::state::AppState;
use crate::verifier::{CachedKey, Check};

/// An authenticated management caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin token (`None`: every permission), or an admin key and its permissions.
    Admin(Option<Arc<AdminKeyRecord>>),
    /// A user's own key; acts only on that user.
    Key(Arc<CachedKey>),
    /// A user in its portal: acts as an unrestricted `live` key of that user (see
    /// [`CachedKey::portal`]), under the same self-service rules as a key.
    Portal(Arc<CachedKey>),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin(_))
    }

    /// The user a self-service caller acts for.
    pub fn own_user(&self) -> Option<&UserId> {
        self.own_key().map(|key| &key.user_id)
    }

    /// The key a self-service caller acts with (the portal's is an unrestricted one).
    pub fn own_key(&self) -> Option<&Arc<CachedKey>> {
        match self {
            Self::Admin(_) => None,
            Self::Key(key) | Self::Portal(key) => Some(key),
        }
    }

    /// The permissions an admin caller holds (`*` for the admin token); none for a key.
    pub fn permissions(&self) -> &[Permission] {
        match self {
            Self::Admin(None) => &[Permission::All],
            Self::Admin(Some(key)) => &key.permissions,
            Self::Key(_) | Self::Portal(_) => &[],
        }
    }

    pub fn actor(&self, client: &ClientAddr) -> Actor {
        match self {
            Self::Admin(None) => Actor::admin(Some(client.client)),
            Self::Admin(Some(key)) => Actor::admin_key(&key.id, Some(client.client)),
            Self::Key(key) => Actor::key(key.id(), Some(client.client)),
            Self::Portal(key) => Actor::portal(&key.user_id, Some(client.client)),
        }
    }

    /// Whether this caller may see a key of `owner` (admins see all; keys, their user's).
    pub fn can_see(&self, owner: &UserId) -> bool {
        self.own_user().is_none_or(|user| user == owner)
    }
}

const NO_CREDENTIALS: &str = "an admin token or an API key is required";
const ADMIN_ONLY: &str = "this endpoint needs the admin token";
const WRONG_TOKEN: &str = "the admin token is wrong";
const WRONG_ADMIN_KEY: &str = "the admin key is unknown, revoked or expired";

/// Refuses an address the brute-force guard has blocked, before any credential is judged.
pub fn refuse_if_blocked(state: &AppState, client: &ClientAddr) -> ApiResult<()> {
    match state.verifier.guard().blocked_for(client.client) {
        Some(seconds) => Err(ApiError::Decision {
            code: Code::TooManyFailures,
            retry_after: Some(seconds),
        }),
        None => Ok(()),
    }
}

/// A wrong admin credential: counted by the brute-force guard like a failed key.
fn wrong_admin_credential(state: &AppState, client: &ClientAddr, why: &'static str) -> ApiError {
    state.verifier.guard().record_failure(client.client);
    ApiError::Unauthorized(why)
}

/// Authenticates the caller of an endpoint open to the admin and (unless `admin_only`) to a
/// user's own key.
pub async fn authenticate(
    state: &AppState,
    parts: &Parts,
    client: &ClientAddr,
    admin_only: bool,
) -> ApiResult<Caller> {
    let presented = presented_key(
        &parts.headers,
        parts.uri.query(),
        state.config.allow_query_key,
    )
    .ok_or(ApiError::Unauthorized(NO_CREDENTIALS))?;
    refuse_if_blocked(state, client)?;
    // Admin credentials come only from `Authorization: Bearer` (never `X-API-Key` or the
    // query string, where they would end up in logs).
    if let Some(token) = bearer_token(&parts.headers) {
        if state.admin_token.matches(token) {
            return Ok(Caller::Admin(None));
        }
        if token.starts_with(ADMIN_KEY_START) {
            return admin_key(state, client, token).await;
        }
    }
    if admin_only {
        // A well-formed user key is not a guess at the admin token; anything else is.
        return Err(if PlainKey::parse(presented).is_ok() {
            ApiError::Unauthorized(ADMIN_ONLY)
        } else {
            wrong_admin_credential(state, client, WRONG_TOKEN)
        });
    }
    // Only something that can be a key is checked as one; anything else is a wrong token.
    match PresentedKey::classify(presented) {
        Ok(PresentedKey::Native(_))
        | Ok(PresentedKey::Foreign(_))
        | Err(keyward_core::KeyFormatError::BadChecksum) => {}
        Err(keyward_core::KeyFormatError::Malformed) => {
            return Err(wrong_admin_credential(state, client, WRONG_TOKEN));
        }
    }
    let check = Check {
        presented: Some(presented),
        client_ip: client.client,
        guard_ip: client.client,
        required_scopes: &[],
        cost: 0,
        counted: false,
        endpoint: "",
        method: "",
        defer_usage: false,
    };
    let decision = state.verifier.verify(&check, Utc::now()).await?;
    match (decision.code, decision.key.clone()) {
        (Code::Valid, Some(key)) => {
            // Every management call made with a key counts, even one refused below.
            limit_self_service(state, &key.user_id).await?;
            let manage = Scope::KEYS_MANAGE;
            if !key.scopes.is_empty() && !key.scopes.iter().any(|s| s.as_str() == manage) {
                return Err(ApiError::Forbidden(format!(
                    "the key lacks the `{manage}` scope"
                )));
            }
            key.record_in_span();
            Ok(Caller::Key(key))
        }
        // A foreign string the store does not know is just a wrong token (the verifier
        // already counted the failure).
        (Code::Invalid, _)
            if PlainKey::parse(presented).is_err() && PresentedKey::classify(presented).is_ok() =>
        {
            Err(ApiError::Unauthorized(WRONG_TOKEN))
        }
        (code, _) => Err(ApiError::Decision {
            code,
            retry_after: decision.blocked_for,
        }),
    }
}

const ADMIN_KEY_START: &str = "kwadm_";

/// A credential typed into the dashboard's sign-in form: the admin token or an admin key.
/// A wrong one counts as a failed check, like a wrong bearer token.
pub async fn admin_credential(
    state: &AppState,
    client: &ClientAddr,
    credential: &str,
) -> ApiResult<Caller> {
    refuse_if_blocked(state, client)?;
    if state.admin_token.matches(credential) {
        Ok(Caller::Admin(None))
    } else if credential.starts_with(ADMIN_KEY_START) {
        admin_key(state, client, credential).await
    } else {
        Err(wrong_admin_credential(state, client, WRONG_TOKEN))
    }
}

/// An admin key presented as a bearer token: looked up by hash on every call, so a
/// revocation holds on every node at once. A wrong one counts as a failed check.
async fn admin_key(state: &AppState, client: &ClientAddr, token: &str) -> ApiResult<Caller> {
    let Ok(key) = PlainKey::parse(token) else {
        return Err(wrong_admin_credential(state, client, WRONG_ADMIN_KEY));
    };
    if !key.is_admin_key() {
        return Err(wrong_admin_credential(state, client, WRONG_ADMIN_KEY));
    }
    if state.verifier.store_down() {
        return Err(ApiError::Unavailable);
    }
    let now = Utc::now();
    match state.store.admin_key_by_hash(&key.hash()).await? {
        Some(record) if record.is_usable(now) => {
            if let Err(error) = state.store.touch_admin_key(&record.id, now).await {
                tracing::warn!(%error, admin_key = %record.id, "cannot note the admin key's use");
            }
            Ok(Caller::Admin(Some(Arc::new(record))))
        }
        _ => Err(wrong_admin_credential(state, client, WRONG_ADMIN_KEY)),
    }
}

/// `--self-service-limit`: management calls made with a user's keys share one per-user
/// window, so churning keys cannot multiply what a user may do.
pub async fn limit_self_service(state: &AppState, user: &keyward_core::UserId) -> ApiResult<()> {
    let refused = state
        .verifier
        .self_service_call(user, state.config.self_service_limit, chrono::Utc::now())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    match refused {
        None => Ok(()),
        Some(retry_after) => Err(ApiError::SelfServiceLimited {
            limit: state.config.self_service_limit,
            retry_after,
        }),
    }
}
