//! Liveness, readiness, metrics and the OpenAPI document (all open).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", summary = "Liveness: the process answers", tag = "operations", responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        reasons: Vec::new(),
    })
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz", summary = "Readiness: the store and the limiter answer", tag = "operations",
    responses((status = 200, description = "Ready (`ok`) or serving with reduced guarantees (`degraded`)", body = Health),
        (status = 503, description = "The store is unreachable", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    // Known down: answer at once (load balancers' health checks time out in a second or two).
    if state.verifier.store_down() {
        return ApiError::Unavailable.into_response();
    }
    match state.store.ping().await {
        Ok(()) => {
            let reasons: Vec<String> = state
                .failover
                .iter()
                .filter_map(|f| f.degraded_reason())
                .map(str::to_owned)
                .collect();
            let status = if reasons.is_empty() { "ok" } else { "degraded" };
            Json(Health {
                status: status.to_owned(),
                reasons,
            })
            .into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            ApiError::Unavailable.into_response()
        }
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", summary = "Prometheus metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(expected) = &state.config.metrics_token
        && let Err(error) = check_metrics_token(&state, &client, &headers, expected)
    {
        return error.into_response();
    }
    let body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `--metrics-token`: the scraper's bearer token, compared in constant time; wrong ones are
/// counted by the brute-force guard.
fn check_metrics_token(
    state: &AppState,
    client: &ClientAddr,
    headers: &axum::http::HeaderMap,
    expected: &str,
) -> Result<(), ApiError> {
    let Some(presented) = crate::extract::bearer_token(headers) else {
        return Err(ApiError::Unauthorized("`/metrics` needs its bearer token"));
    };
    crate::auth::refuse_if_blocked(state, client)?;
    let matches = crate::admin::secrets_match(expected, presented);
    if matches {
        Ok(())
    } else {
        state.verifier.guard().record_failure(client.client);
        Err(ApiError::Unauthorized("the metrics token is wrong"))
    }
}

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", summary = "This OpenAPI document", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn serve_document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
        .into_response()
}

/// The OpenAPI document of every route, as JSON, built once.
pub fn document_json() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (management, others) = super::routes();
        crate::openapi::to_json([management, others])
    })
}
