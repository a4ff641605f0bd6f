//! `/v1/authorize` (any method): forward-auth for nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth` and Envoy `ext_authz` (HTTP).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keyward_core::Scope;

use crate::error::{ApiError, refusal_response};
use crate::extract::{ClientAddr, presented_key};
use crate::headers::rate_limit_headers;
use crate::state::AppState;
use crate::verifier::Check;

/// Optional: a comma-separated list of scopes the original request needs.
pub const REQUIRED_SCOPES_HEADER: &str = "x-keyward-required-scopes";

#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/authorize", operation_id = "authorize", summary = "Forward-auth: check the key of a request a gateway holds", tag = "verification",
    params(
        ("X-Original-URI" = Option<String>, Header, description = "the original request's URI (nginx)"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "the original request's URI (Traefik, Caddy)"),
        ("X-Original-Method" = Option<String>, Header),
        ("X-Forwarded-Method" = Option<String>, Header),
        ("X-Keyward-Required-Scopes" = Option<String>, Header, description = "comma-separated scopes the request needs"),
    ),
    responses(
        (status = 200, description = "Admitted; `X-Keyward-Key-Id`, `X-Keyward-User-Id`, `X-Keyward-Plan`, `X-Keyward-Environment` and the rate-limit headers are set"),
        (status = "4XX", description = "The decision's status", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security((), ("key" = [])))]
pub async fn authorize(
    State(state): State<AppState>,
    client: ClientAddr,
    request: Request,
) -> Response {
    let headers = request.headers();
    let original_query = original_uri(headers).and_then(|uri| uri.split_once('?').map(|(_, q)| q));
    let query = request.uri().query().or(original_query);
    let presented = presented_key(headers, query, state.config.allow_query_key);
    let scopes: Vec<Scope> = match headers.get(REQUIRED_SCOPES_HEADER).map(|v| v.to_str()) {
        None => Vec::new(),
        Some(Ok(list)) => match list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect()
        {
            Ok(scopes) => scopes,
            Err(error) => {
                return ApiError::validation("X-Keyward-Required-Scopes", error).into_response();
            }
        },
        Some(Err(_)) => {
            return ApiError::validation("X-Keyward-Required-Scopes", "not visible ASCII")
                .into_response();
        }
    };
    let check = Check {
        presented,
        client_ip: client.client,
        guard_ip: client.client,
        required_scopes: &scopes,
        cost: 1,
        counted: true,
        endpoint: original_uri(headers).unwrap_or(""),
        method: original_method(headers).unwrap_or(""),
        defer_usage: false,
    };
    let decision = match state.verifier.verify(&check, Utc::now()).await {
        Ok(decision) => decision,
        Err(_) => return ApiError::Unavailable.into_response(),
    };
    let mut response = if decision.is_valid() {
        let mut response = axum::http::StatusCode::OK.into_response();
        if let Some(key) = &decision.key {
            key.record_in_span_for_response();
            let out = response.headers_mut();
            // `key_` and the ULID, written on the stack: no string is built for it.
            let mut ulid = [0; ulid::ULID_LEN];
            key.ulid().array_to_str(&mut ulid);
            let mut id = *b"key_00000000000000000000000000";
            id[4..].copy_from_slice(&ulid);
            insert(out, KEY_ID, &id);
            insert(out, USER_ID, key.user_id.as_str().as_bytes());
            insert(out, PLAN, key.effective_plan().as_str().as_bytes());
            out.insert(
                ENVIRONMENT,
                HeaderValue::from_static(key.environment.as_str()),
            );
        }
        response
    } else {
        refusal_response(decision.code, decision.retry_after(), headers)
    };
    if let Some(limits) = &decision.limits {
        rate_limit_headers(response.headers_mut(), &limits.limits);
    }
    response
}

fn original_uri(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-original-uri")
        .or_else(|| headers.get("x-forwarded-uri"))
        .and_then(|v| v.to_str().ok())
}

fn original_method(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-original-method")
        .or_else(|| headers.get("x-forwarded-method"))
        .and_then(|value| value.to_str().ok())
}

const KEY_ID: HeaderName = HeaderName::from_static("x-keyward-key-id");
const USER_ID: HeaderName = HeaderName::from_static("x-keyward-user-id");
const PLAN: HeaderName = HeaderName::from_static("x-keyward-plan");
const ENVIRONMENT: HeaderName = HeaderName::from_static("x-keyward-environment");

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(name, value);
    }
}
