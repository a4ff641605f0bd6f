//! `GET /v1/keys`: the listing, with its search and filters (the dashboard's keys page
//! shows the same page of keys).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyward_core::{PlanName, UserId};
use keyward_store::{KeyFilter, KeyRecord, PageRequest};

use super::super::inputs::{AdminOrSelf, ApiQuery, field, now};
use super::ListKeysQuery;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::{KeyList, KeyObject};

#[utoipa::path(get, path = "/v1/keys", operation_id = "listKeys", summary = "List keys", tag = "keys", params(ListKeysQuery),
    responses((status = 200, body = crate::views::KeyList), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = []), ("key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AdminOrSelf(caller, _): AdminOrSelf,
    ApiQuery(query): ApiQuery<ListKeysQuery>,
) -> ApiResult<Response> {
    let page = list_page(&state, &caller, query).await?;
    let now = now();
    Ok(Json(KeyList {
        keys: page
            .items
            .iter()
            .map(|key| KeyObject::of(key, now))
            .collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// The page of keys `GET /v1/keys` answers with (the dashboard's keys page shows it too).
pub async fn list_page(
    state: &AppState,
    caller: &Caller,
    query: ListKeysQuery,
) -> ApiResult<keyward_store::Page<KeyRecord>> {
    let requested = query
        .user_id
        .as_deref()
        .map(|u| field("user_id", u, UserId::parse))
        .transpose()?;
    let user_id = match (caller.own_user(), requested) {
        (Some(own), Some(requested)) if *own != requested => {
            return Err(ApiError::NotFound("user"));
        }
        (Some(own), _) => Some(own.clone()),
        (None, requested) => requested,
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    if query
        .q
        .as_ref()
        .is_some_and(|q| q.is_empty() || q.chars().count() > 200)
    {
        return Err(ApiError::validation("q", "must be 1 to 200 characters"));
    }
    let search = query
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            keyward_core::KeyStatus::parse(raw).ok_or_else(|| {
                ApiError::validation("status", "must be active, disabled, expired or revoked")
            })
        })
        .transpose()?;
    let plan = query
        .plan
        .as_deref()
        .map(|p| field("plan", p, PlanName::parse))
        .transpose()?;
    let filter = KeyFilter {
        user_id,
        include_inactive: query.include_inactive,
        search,
        status,
        plan,
        page: PageRequest {
            limit,
            cursor: query.cursor,
        },
    };
    Ok(state.store.list_keys(&filter).await?)
}
