//! Usage reports, invoices and the audit log (read-only).

use axum::Json;
use axum::extract::{Path, State};
use keyward_core::billing::{Invoice, Period};
use keyward_core::{KeyId, UserId};
use keyward_store::{AuditAction, AuditFilter, PageRequest};
use serde::Deserialize;

use super::inputs::{AdminOnly, AdminOrSelf, ApiQuery, field, now};
use crate::error::{ApiError, ApiResult};
use crate::reports::{self, MAX_DAYS};
use crate::state::AppState;
use crate::views::{AuditList, KeyUsageReport, UsageSummary, UserUsageReport};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DaysQuery {
    /// Days back, today included (1–400).
    #[param(minimum = 1, maximum = 400)]
    pub days: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// A month, `YYYY-MM` (UTC); default the current one.
    #[param(pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$")]
    pub period: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[param(pattern = r"^[A-Za-z0-9_.@:+-]{1,255}$")]
    pub user_id: Option<String>,
    #[param(pattern = r"^key_[0-9A-HJKMNP-TV-Z]{26}$")]
    pub key_id: Option<String>,
    /// An action, such as `key.create` or `plan.update`.
    pub action: Option<String>,
    /// Items per page (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

fn days(query: &DaysQuery, default: u32) -> ApiResult<u32> {
    let days = query.days.unwrap_or(default);
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::validation(
            "days",
            format!("must be between 1 and {MAX_DAYS}"),
        ))
    }
}

/// The requested month, or the current one.
pub fn period(raw: Option<&str>) -> ApiResult<Period> {
    match raw {
        Some(raw) => field("period", raw, Period::parse),
        None => Ok(Period::of(now())),
    }
}

/// The user of the path and the month of the query (`/v1/users/{user_id}/…?period=`).
fn user_period(user_id: &str, query: &PeriodQuery) -> ApiResult<(UserId, Period)> {
    let period = period(query.period.as_deref())?;
    Ok((super::users::path_user(user_id)?, period))
}

#[utoipa::path(get, path = "/v1/keys/{id}/usage", operation_id = "getKeyUsage", summary = "A key's usage over time", tag = "usage", params(("id" = String, Path), DaysQuery),
    responses((status = 200, description = "The key's usage, day by day", body = KeyUsageReport),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn key_usage(
    State(state): State<AppState>,
    AdminOrSelf(caller, _): AdminOrSelf,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DaysQuery>,
) -> ApiResult<Json<KeyUsageReport>> {
    let days = days(&query, 30)?;
    let key = super::keys::visible_key(&state, &caller, &id).await?;
    Ok(Json(
        reports::key_usage(&*state.store, &key.id, days, now()).await?,
    ))
}

#[utoipa::path(get, path = "/v1/users/{user_id}/usage", operation_id = "getUserUsage", summary = "A user's usage over time", tag = "usage", params(("user_id" = String, Path), PeriodQuery),
    responses((status = 200, description = "The user's usage in the month", body = UserUsageReport),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn user_usage(
    State(state): State<AppState>,
    _: AdminOnly,
    Path(user_id): Path<String>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> ApiResult<Json<UserUsageReport>> {
    let (user_id, period) = user_period(&user_id, &query)?;
    Ok(Json(
        reports::user_usage(&*state.store, &user_id, period, now()).await?,
    ))
}

#[utoipa::path(get, path = "/v1/users/{user_id}/invoice", operation_id = "getInvoice", summary = "A user's invoice for one month", tag = "usage", params(("user_id" = String, Path), PeriodQuery),
    responses((status = 200, description = "The invoice so far (the whole month once it is over)", body = Invoice),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn invoice(
    State(state): State<AppState>,
    _: AdminOnly,
    Path(user_id): Path<String>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> ApiResult<Json<Invoice>> {
    let (user_id, period) = user_period(&user_id, &query)?;
    let invoice = reports::invoice(&*state.store, &user_id, period, now()).await?;
    Ok(Json(invoice))
}

#[utoipa::path(get, path = "/v1/usage/summary", operation_id = "getUsageSummary", summary = "Usage of every key and user", tag = "usage", params(DaysQuery),
    responses((status = 200, description = "Traffic of every key over the days", body = UsageSummary),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn summary(
    State(state): State<AppState>,
    _: AdminOnly,
    ApiQuery(query): ApiQuery<DaysQuery>,
) -> ApiResult<Json<UsageSummary>> {
    let days = days(&query, 7)?;
    Ok(Json(reports::summary(&*state.store, days, now()).await?))
}

#[utoipa::path(get, path = "/v1/audit", operation_id = "listAudit", summary = "The audit log", tag = "usage", params(AuditQuery),
    responses((status = 200, description = "A page of the audit log, newest first", body = AuditList),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    _: AdminOnly,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let action = query
        .action
        .as_deref()
        .map(|raw| {
            AuditAction::parse(raw).ok_or_else(|| {
                ApiError::validation(
                    "action",
                    format!(
                        "must be one of {}",
                        AuditAction::ALL.map(AuditAction::as_str).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        user_id: query
            .user_id
            .as_deref()
            .map(|raw| field("user_id", raw, UserId::parse))
            .transpose()?,
        key_id: query
            .key_id
            .as_deref()
            .map(|raw| field("key_id", raw, KeyId::parse))
            .transpose()?,
        action,
        page: PageRequest {
            limit,
            cursor: query.cursor,
        },
    };
    let page = state.store.list_audit(&filter).await?;
    Ok(Json(AuditList {
        records: page.items,
        next_cursor: page.next_cursor,
    }))
}
