//! `POST /v1/verify`: a service asks whether a key may make a request. Every decision is a
//! 200 with `valid` and `code`; only a malformed request is a 4xx, an outage a 503.

use std::borrow::Cow;
use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use keyward_core::Scope;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::inputs::field;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, JsonBody, is_trusted, parse_json};
use crate::https;
use crate::serve::OverTls;
use crate::state::AppState;
use crate::verifier::{CachedKey, Check, Decision, KeyIdDisplay};

const MAX_TEXT: usize = 2048;

/// A key to check, and what the request it came with is for.
// Borrows its strings from the body where JSON escapes allow (the usual case).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest<'a> {
    /// The key to check (required); an empty string answers `MISSING`.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub key: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = Option<Vec<String>>)]
    pub required_scopes: Option<Vec<Cow<'a, str>>>,
    /// The endpoint the key is used on (for usage analytics).
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    pub endpoint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    pub method: Option<Cow<'a, str>>,
    /// The end client's address: checked against the key's allowlist, and — when the caller
    /// is a trusted proxy — what the brute-force guard counts failures against.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    pub ip: Option<Cow<'a, str>>,
    /// Units the request consumes (1 to 1000000000, default 1).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub cost: Option<u64>,
}

/// The tightest rate-limit window after the check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateLimitSummary {
    pub limit: u64,
    pub remaining: u64,
    pub reset_seconds: u64,
}

/// The decision: `valid`, the code, and what the key grants.
// Borrows from the cached key, so answering allocates little.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    /// The decision.
    #[schema(value_type = crate::error::DecisionCode)]
    pub code: &'static str,
    /// The key's id once the key was found (null for `MISSING`, `TOO_MANY_FAILURES` and
    /// `INVALID`).
    #[schema(value_type = Option<String>)]
    pub key_id: Option<KeyIdDisplay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub plan: Option<&'a str>,
    /// `live` or `test`: test keys count toward neither quota nor billing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<keyward_core::Environment>)]
    pub environment: Option<keyward_core::Environment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<&'a [Scope]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimitSummary>,
}

/// `{}`: what a key without metadata answers.
static NO_METADATA: std::sync::LazyLock<Option<Box<RawValue>>> =
    std::sync::LazyLock::new(|| RawValue::from_string("{}".to_owned()).ok());

impl<'a> VerifyResponse<'a> {
    pub fn from_decision(decision: &'a Decision) -> Self {
        // A key that failed (revoked, disabled, expired) says nothing about its owner.
        let key = decision.key.as_deref();
        if decision.code.is_key_failure() {
            return Self {
                valid: false,
                code: decision.code.as_str(),
                key_id: key.map(CachedKey::id_display),
                user_id: None,
                plan: None,
                environment: None,
                scopes: None,
                metadata: None,
                expires_at: None,
                ratelimit: None,
            };
        }
        Self {
            valid: decision.is_valid(),
            code: decision.code.as_str(),
            key_id: key.map(CachedKey::id_display),
            user_id: key.map(|k| k.user_id.as_str()),
            plan: key.map(|k| k.effective_plan().as_str()),
            environment: key.map(|k| k.environment),
            scopes: key.map(|k| &*k.scopes),
            metadata: key.and_then(|k| k.metadata_ref().or(NO_METADATA.as_deref())),
            expires_at: key
                .and_then(|k| k.expires_at)
                .map(|at| keyward_core::time::format(&at)),
            ratelimit: decision
                .limits
                .as_ref()
                .and_then(|l| l.tightest_window())
                .map(|w| RateLimitSummary {
                    limit: w.limit,
                    remaining: w.remaining,
                    reset_seconds: w.reset_seconds,
                }),
        }
    }
}

/// Callers already warned about sending `ip` without being a trusted proxy (bounded, so
/// spoofed callers cannot grow it).
static WARNED_UNTRUSTED: std::sync::LazyLock<moka::sync::Cache<IpAddr, ()>> =
    std::sync::LazyLock::new(|| moka::sync::Cache::new(10_000));

/// A backend that sends its clients' `ip` without being a trusted proxy has every failure
/// of every client counted against its own address: one attacker then locks all of them
/// out. Said once per caller, where operators look.
fn warn_untrusted_ip(peer: IpAddr) {
    if WARNED_UNTRUSTED.contains_key(&peer) {
        return;
    }
    WARNED_UNTRUSTED.insert(peer, ());
    tracing::warn!(
        caller = %peer,
        "a /v1/verify caller sends `ip` but is not a trusted proxy: failed checks of all its clients count against the caller's own address, so one client's guessing can lock out every client; start keyward with --trusted-proxy covering this caller"
    );
}

fn text(name: &str, value: Option<&str>) -> ApiResult<()> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(ApiError::validation(
            name,
            "must be at most 2048 characters",
        )),
        _ => Ok(()),
    }
}

#[utoipa::path(post, path = "/v1/verify", operation_id = "verify", summary = "Verify a key and count the request against its limits", tag = "verification", request_body = VerifyRequest,
    responses((status = 200, description = "The decision, whatever it is", body = VerifyResponse),
        (status = "4XX", description = "A malformed request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn verify(
    State(state): State<AppState>,
    client: ClientAddr,
    over_tls: Option<Extension<OverTls>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let request: VerifyRequest<'_> = parse_json(&body)?;
    // A key in the body crossed the network like one in a header: judged by the caller's
    // own address (the socket peer), before anything else.
    let config = &state.config;
    if !request.key.is_empty()
        && !https::is_https(
            over_tls.is_some(),
            client.peer,
            &headers,
            &config.trusted_proxies,
        )
        && https::refuses(config, client.peer)
    {
        return Err(ApiError::HttpsRequired);
    }
    text("endpoint", request.endpoint.as_deref())?;
    text("method", request.method.as_deref())?;
    if request.key.len() > 4096 {
        return Err(ApiError::validation(
            "key",
            "must be at most 4096 characters",
        ));
    }
    let ip: Option<IpAddr> = request
        .ip
        .as_deref()
        .map(|ip| {
            field("ip", ip, |v| {
                v.parse::<IpAddr>().map_err(|_| "not an IP address")
            })
        })
        .transpose()?;
    let scopes: Vec<Scope> = request
        .required_scopes
        .unwrap_or_default()
        .iter()
        .map(|s| field("required_scopes", s, Scope::parse))
        .collect::<ApiResult<_>>()?;
    let cost = request.cost.unwrap_or(1);
    if cost == 0 || cost > 1_000_000_000 {
        return Err(ApiError::validation(
            "cost",
            "must be between 1 and 1000000000",
        ));
    }
    // A trusted proxy verifies for its clients: failures count against the client's address.
    let trusted = is_trusted(client.peer, &state.config.trusted_proxies);
    let guard_ip = if trusted {
        ip.unwrap_or(client.peer)
    } else {
        if ip.is_some() {
            warn_untrusted_ip(client.peer);
        }
        client.peer
    };
    let check = Check {
        presented: Some(&request.key),
        client_ip: ip.unwrap_or(client.peer),
        guard_ip,
        required_scopes: &scopes,
        cost,
        counted: true,
        endpoint: request.endpoint.as_deref().unwrap_or(""),
        method: request.method.as_deref().unwrap_or(""),
        defer_usage: false,
    };
    let decision = state.verifier.verify(&check, Utc::now()).await?;
    // No wait could ever admit a request costing more than a limit holds.
    if let Some(limit) = decision
        .limits
        .as_ref()
        .and_then(|outcome| outcome.smallest_window())
        && cost > limit.limit
    {
        return Err(ApiError::validation(
            "cost",
            format!(
                "{cost} is above the smallest limit's maximum ({})",
                limit.limit
            ),
        ));
    }
    if let Some(key) = &decision.key {
        key.record_in_span_for_response();
    }
    Ok(Json(VerifyResponse::from_decision(&decision)).into_response())
}
