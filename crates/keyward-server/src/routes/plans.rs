//! `/v1/plans`: the list is open; creating or replacing a plan needs the admin.

use axum::Json;
use axum::extract::{Path, State};
use keyward_core::{Plan, PlanName, PlanSpec};
use serde::Deserialize;
use serde_json::Value;

use super::inputs::AdminOnly;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::extract::ClientAddr;
use crate::state::AppState;
use crate::views::PlanList;

#[utoipa::path(get, path = "/v1/plans", operation_id = "listPlans", summary = "List plans", tag = "plans",
    responses((status = 200, body = crate::views::PlanList), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<PlanList>> {
    let plans = state.store.list_plans().await?;
    Ok(Json(PlanList { plans }))
}

/// `PUT /v1/plans/{name}`: the plan without `name` (a `name` must equal the path's).
#[derive(Debug, Deserialize)]
pub struct PutPlanRequest {
    name: Option<String>,
    #[serde(flatten)]
    spec: serde_json::Map<String, Value>,
}

#[utoipa::path(put, path = "/v1/plans/{name}", operation_id = "putPlan", summary = "Create or replace a plan", tag = "plans", params(("name" = String, Path)),
    request_body(content = crate::views::PlanBody),
    responses((status = 200, body = keyward_core::Plan), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn put(
    State(state): State<AppState>,
    AdminOnly(caller, client): AdminOnly,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<PutPlanRequest>,
) -> ApiResult<Json<Plan>> {
    Ok(Json(
        put_for(&state, &caller, &client, &name, request).await?,
    ))
}

/// Creates or replaces a plan as `PUT /v1/plans/{name}` does (the dashboard too).
pub async fn put_for(
    state: &AppState,
    caller: &Caller,
    client: &ClientAddr,
    name: &str,
    request: PutPlanRequest,
) -> ApiResult<Plan> {
    let name = PlanName::parse(name).map_err(|e| ApiError::validation("name", e))?;
    if let Some(body_name) = &request.name
        && body_name != name.as_str()
    {
        return Err(ApiError::validation(
            "name",
            "must equal the plan name in the path",
        ));
    }
    // Deserialized with its path, so every 422 names the failing field (`limits[0].max`).
    let spec: PlanSpec =
        serde_path_to_error::deserialize(Value::Object(request.spec)).map_err(|error| {
            let path = error.path().to_string();
            let field = if path == "." { "plan" } else { path.as_str() };
            ApiError::validation(field, error.inner())
        })?;
    spec.validate()
        .map_err(|error| ApiError::validation(error.field, error.reason))?;
    Ok(state
        .store
        .put_plan(&Plan { name, spec }, &caller.actor(client))
        .await?)
}
