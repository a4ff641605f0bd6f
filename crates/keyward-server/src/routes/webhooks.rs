//! `/v1/webhooks`: endpoints that receive events (admin only; `webhooks:write`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use keyward_store::{NewWebhook, PageRequest, WebhookDelivery, WebhookPatch, WebhookRecord};
use serde::{Deserialize, Serialize};

use super::inputs::{AdminOnly, ApiQuery, field};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::webhooks::{SECRET_OVERLAP, sign};

/// A new endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where events are posted: `http` or `https`.
    #[schema(max_length = 2048)]
    pub url: String,
    /// Event types to receive (`key.created`, `key.updated`, `key.revoked`, `key.rotated`,
    /// `key.expiring`, `key.expired`, `key.leaked`, `user.plan_changed`,
    /// `quota.threshold`, `usage.metered`), or `["*"]` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// A change to an endpoint: absent fields are left alone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::inputs::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// An endpoint with its signing secret (on creation and on secret rotation).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret<'a> {
    #[serde(flatten)]
    pub webhook: &'a WebhookRecord,
    /// Signs every delivery (`whsec_…`); verify with a Standard Webhooks library.
    pub secret: &'a str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookRecord>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookSecret {
    pub secret: String,
}

/// One event's delivery to the endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryObject {
    pub id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempts made so far.
    pub attempt: u32,
    /// When the last attempt was made; null before the first.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    #[schema(value_type = String)]
    pub status: keyward_store::WebhookDeliveryStatus,
    /// The last answer's status; null before an answer.
    pub response_status: Option<u16>,
    /// When the next attempt is due (pending and failed deliveries).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryObject>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Re-send every kept event raised since this time (RFC 3339) that the endpoint
    /// subscribes to now.
    #[schema(format = DateTime)]
    pub since: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub replayed: u64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

fn page(query: &PageQuery) -> ApiResult<PageRequest> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    Ok(PageRequest {
        limit,
        cursor: query.cursor.clone(),
    })
}

fn url_field(state: &AppState, raw: &str) -> ApiResult<String> {
    crate::webhooks::check_url(&state.config.webhooks, raw)
        .map_err(|reason| ApiError::validation("url", reason))
}

fn events_field(events: &[String]) -> ApiResult<Vec<String>> {
    crate::webhooks::check_events(events).map_err(|reason| ApiError::validation("events", reason))
}

fn description_field(description: Option<&str>) -> ApiResult<Option<String>> {
    match description {
        Some(text) if text.chars().count() > 500 => Err(ApiError::validation(
            "description",
            "at most 500 characters",
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

fn created(webhook: &WebhookRecord) -> Response {
    (
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            webhook,
            secret: &webhook.secret,
        }),
    )
        .into_response()
}

#[utoipa::path(post, path = "/v1/webhooks", operation_id = "createWebhook", summary = "Register an endpoint for events", tag = "webhooks", request_body = CreateWebhookRequest,
    responses((status = 201, description = "The endpoint, with its signing secret", body = WebhookWithSecret),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    ApiJson(request): ApiJson<CreateWebhookRequest>,
) -> ApiResult<Response> {
    let new = NewWebhook {
        url: url_field(&state, &request.url)?,
        events: events_field(&request.events)?,
        description: description_field(request.description.as_deref())?,
        secret: sign::new_secret(),
    };
    let webhook = state
        .store
        .create_webhook(&new, &caller.actor(&client))
        .await?;
    Ok(created(&webhook))
}

#[utoipa::path(get, path = "/v1/webhooks", operation_id = "listWebhooks", summary = "List endpoints", tag = "webhooks", params(PageQuery),
    responses((status = 200, description = "Endpoints, newest first (never their secrets)", body = WebhookList),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _: AdminOnly,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<WebhookList>> {
    let listed = state.store.list_webhooks(&page(&query)?).await?;
    Ok(Json(WebhookList {
        webhooks: listed.items,
        next_cursor: listed.next_cursor,
    }))
}

async fn endpoint(state: &AppState, id: &str) -> ApiResult<WebhookRecord> {
    if !id.starts_with("whk_") || id.len() > 64 {
        return Err(ApiError::NotFound("webhook"));
    }
    Ok(state.store.get_webhook(id).await?)
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "getWebhook", summary = "Show an endpoint", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookRecord),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn show(
    State(state): State<AppState>,
    _: AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookRecord>> {
    Ok(Json(endpoint(&state, &id).await?))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", operation_id = "updateWebhook", summary = "Change an endpoint (URL, events, description, enabled)", tag = "webhooks", params(("id" = String, Path)), request_body = UpdateWebhookRequest,
    responses((status = 200, body = WebhookRecord),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateWebhookRequest>,
) -> ApiResult<Json<WebhookRecord>> {
    endpoint(&state, &id).await?;
    let patch = WebhookPatch {
        url: match &request.url {
            Some(url) => Some(url_field(&state, url)?),
            None => None,
        },
        events: request.events.as_deref().map(events_field).transpose()?,
        description: match &request.description {
            Some(description) => Some(description_field(description.as_deref())?),
            None => None,
        },
        enabled: request.enabled,
    };
    Ok(Json(
        state
            .store
            .update_webhook(&id, &patch, &caller.actor(&client))
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "deleteWebhook", summary = "Delete an endpoint", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "The deleted endpoint", body = WebhookRecord),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookRecord>> {
    endpoint(&state, &id).await?;
    Ok(Json(
        state
            .store
            .delete_webhook(&id, &caller.actor(&client))
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", operation_id = "getWebhookSecret", summary = "An endpoint's signing secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookSecret),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn secret(
    State(state): State<AppState>,
    _: AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookSecret>> {
    Ok(Json(WebhookSecret {
        secret: endpoint(&state, &id).await?.secret,
    }))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", operation_id = "rotateWebhookSecret", summary = "Give an endpoint a new secret (the old one signs too for 24 h)", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "The endpoint with its new secret", body = WebhookWithSecret),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    endpoint(&state, &id).await?;
    let overlap = chrono::Duration::from_std(SECRET_OVERLAP).unwrap_or_default();
    let webhook = state
        .store
        .rotate_webhook_secret(
            &id,
            &sign::new_secret(),
            Utc::now() + overlap,
            &caller.actor(&client),
        )
        .await?;
    Ok(Json(WebhookWithSecret {
        webhook: &webhook,
        secret: &webhook.secret,
    })
    .into_response())
}

fn delivery_object(delivery: WebhookDelivery) -> DeliveryObject {
    use keyward_store::WebhookDeliveryStatus::{Failed, Pending};
    DeliveryObject {
        next_attempt_at: matches!(delivery.status, Pending | Failed)
            .then(|| keyward_core::time::format(&delivery.next_attempt_at)),
        id: delivery.id,
        event_id: delivery.event.id,
        kind: delivery.event.kind,
        attempt: delivery.attempts,
        at: delivery
            .attempted_at
            .map(|at| keyward_core::time::format(&at)),
        status: delivery.status,
        response_status: delivery.response_status,
    }
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries", summary = "An endpoint's deliveries", tag = "webhooks", params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "Deliveries, newest first", body = DeliveryList),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: AdminOnly,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<DeliveryList>> {
    endpoint(&state, &id).await?;
    let listed = state
        .store
        .list_webhook_deliveries(&id, &page(&query)?)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: listed.items.into_iter().map(delivery_object).collect(),
        next_cursor: listed.next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", operation_id = "replayWebhookEvents", summary = "Send kept events again", tag = "webhooks", params(("id" = String, Path)), request_body = ReplayRequest,
    responses((status = 202, description = "How many events will be sent again (same id, type, time and data)", body = Replayed),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> ApiResult<Response> {
    let replayed = replay_for(&state, &caller, &client, &id, &request.since).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })).into_response())
}

/// Sends kept events again as `POST /v1/webhooks/{id}/replay` does (the dashboard too).
pub async fn replay_for(
    state: &AppState,
    caller: &crate::auth::Caller,
    client: &crate::extract::ClientAddr,
    id: &str,
    since: &str,
) -> ApiResult<u64> {
    endpoint(state, id).await?;
    let since: DateTime<Utc> = field("since", since, keyward_core::time::parse)?;
    let kept_from =
        Utc::now() - chrono::Duration::days(i64::from(state.config.webhooks.retention_days));
    if since < kept_from {
        return Err(ApiError::validation(
            "since",
            format!(
                "events are kept {} days: `since` may be at most that far back",
                state.config.webhooks.retention_days
            ),
        ));
    }
    Ok(state
        .store
        .replay_webhook_events(id, since, &caller.actor(client))
        .await?)
}
