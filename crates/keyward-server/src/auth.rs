//! Who is calling a management endpoint: the admin (admin token), or a user's own key
//! (self-service), checked through the one verification path.

use std::sync::Arc;

use axum::http::request::Parts;
use chrono::Utc;
use keyward_core::{Code, PlainKey, PresentedKey, Scope, UserId};
use keyward_store::Actor;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, bearer_token, presented_key};
use crate::state::AppState;
use crate::verifier::{CachedKey, Check};

/// An authenticated management caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    /// A user's own key; acts only on that user.
    Key(Arc<CachedKey>),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin)
    }

    /// The user a self-service caller acts for.
    pub fn own_user(&self) -> Option<&UserId> {
        match self {
            Self::Admin => None,
            Self::Key(key) => Some(&key.user_id),
        }
    }

    pub fn actor(&self, client: &ClientAddr) -> Actor {
        match self {
            Self::Admin => Actor::admin(Some(client.client)),
            Self::Key(key) => Actor::key(key.id(), Some(client.client)),
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
    if bearer_token(&parts.headers).is_some_and(|token| state.admin_token.matches(token)) {
        return Ok(Caller::Admin);
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
