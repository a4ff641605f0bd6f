//! What a handler takes from its request: who calls (the admin token, an admin key
//! holding the endpoint's permission, or a user's own key) and from where, query
//! parameters and fields whose refusals are problems naming the field, and the instant it
//! decides at.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::permissions;
use crate::auth::{Caller, authenticate};
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientAddr;
use crate::state::AppState;

/// A management caller: the admin or a user's own key.
#[derive(Debug, Clone)]
pub struct AdminOrSelf(pub Caller, pub ClientAddr);

/// The admin only: the admin token, or an admin key holding the endpoint's permission;
/// who it is (to record as the actor) and where the call comes from.
#[derive(Debug, Clone)]
pub struct AdminOnly(pub Caller, pub ClientAddr);

impl FromRequestParts<AppState> for AdminOrSelf {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (caller, client) = caller(parts, state, false).await?;
        Ok(Self(caller, client))
    }
}

impl FromRequestParts<AppState> for AdminOnly {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (caller, client) = caller(parts, state, true).await?;
        Ok(Self(caller, client))
    }
}

/// Who makes a management call, from where; with `admin_only`, a user's key is refused.
/// An admin key must hold what the endpoint needs (see [`permissions`]).
async fn caller(
    parts: &mut Parts,
    state: &AppState,
    admin_only: bool,
) -> ApiResult<(Caller, ClientAddr)> {
    let Ok(client) = ClientAddr::from_request_parts(parts, state).await;
    let caller = authenticate(state, parts, &client, admin_only).await?;
    if let Caller::Admin(Some(key)) = &caller {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let Some(needed) = permissions::needed(&parts.method, route) else {
            return Err(ApiError::Forbidden(
                "this endpoint takes the admin token, not an admin key".to_owned(),
            ));
        };
        if let Some(permission) = permissions::missing(&key.permissions, needed) {
            return Err(ApiError::Forbidden(format!(
                "this admin key lacks the `{permission}` permission"
            )));
        }
    }
    Ok((caller, client))
}

/// Query parameters whose rejections are 422 problems naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // `api_key` is a credential (with `--allow-query-key`), not a listing parameter.
        let query: String = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| pair.split('=').next() != Some("api_key"))
            .collect::<Vec<_>>()
            .join("&");
        serde_urlencoded_like(&query).map(Self)
    }
}

fn serde_urlencoded_like<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::Validation("query: unreadable".to_owned()))?,
    )
    .map(|q| q.0)
    .map_err(|rejection| {
        let text = rejection.body_text();
        ApiError::Validation(
            text.strip_prefix("Failed to deserialize query string: ")
                .unwrap_or(&text)
                .to_owned(),
        )
    })
}

/// Parses one input field with a domain parser; failures are 422 naming the field.
pub fn field<T, E: std::fmt::Display>(
    name: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> ApiResult<T> {
    parse(value).map_err(|error| ApiError::validation(name, error))
}

/// Serde helper: distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`), for PATCH bodies.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// The current instant, for decisions and views.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
