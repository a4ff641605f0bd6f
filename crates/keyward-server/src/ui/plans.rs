//! The dashboard's plans: the list `GET /v1/plans` answers, and editing one as
//! `PUT /v1/plans/{name}` takes it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::Permission;
use maud::html;

use super::layout::{self, DoneQuery, Form, Notice, Params, count, csrf_field, store_error};
use super::session::AdminSession;
use crate::routes::plans::PutPlanRequest;
use crate::state::AppState;

pub async fn plans(
    State(state): State<AppState>,
    session: AdminSession,
    Params(query): Params<DoneQuery>,
) -> Response {
    plans_page(
        &state,
        &session,
        query.done.as_deref().map(|_| Notice::done("Plan saved.")),
        None,
    )
    .await
}

async fn plans_page(
    state: &AppState,
    session: &AdminSession,
    notice: Option<Notice>,
    draft: Option<(&str, &str)>,
) -> Response {
    // Plans are public (`GET /v1/plans` needs no credential): any session sees them.
    let plans = match state.store.list_plans().await {
        Ok(plans) => plans,
        Err(error) => return store_error(error),
    };
    let may_write = session.may(Permission::PlansWrite);
    let content = html! {
        div.scroll {
            table #plans {
                thead { tr { th { "Plan" } th { "Windows" } th { "Burst" } th.num { "Monthly quota" } th.num { "Key cap" } th { "Features" } } }
                tbody {
                    @for plan in &plans {
                        tr {
                            td { (plan.name.as_str()) }
                            td { @for window in &plan.spec.limits { code { (window.max) " / " (window.display_name()) } " " } }
                            td { @match &plan.spec.burst { Some(b) => { (b.capacity) " at " (b.rate_per_second) "/s" }, None => { "—" } } }
                            td.num { (plan.spec.monthly_quota.map_or_else(|| "—".to_owned(), count)) }
                            td.num { (plan.spec.max_keys.map_or_else(|| "—".to_owned(), count)) }
                            td { @match &plan.spec.features { Some(f) => { @for s in f { code { (s) } " " } }, None => { "every scope" } } }
                        }
                    }
                }
            }
        }
        @if may_write {
            h2 { "Edit a plan" }
            p.hint { "The plan as PUT /v1/plans/{name} takes it (JSON without its name). Saving replaces the whole plan; the same checks apply." }
            @for plan in &plans {
                @let text = match draft { Some((name, text)) if name == plan.name.as_str() => text.to_owned(), _ => serde_json::to_string_pretty(&plan.spec).unwrap_or_default() };
                details open[draft.is_some_and(|(name, _)| name == plan.name.as_str())] {
                    summary { (plan.name.as_str()) }
                    form.card method="post" action={ "/ui/plans/" (plan.name.as_str()) } {
                        (csrf_field(&session.csrf))
                        label for={ "spec-" (plan.name.as_str()) } { "Plan " (plan.name.as_str()) }
                        textarea id={ "spec-" (plan.name.as_str()) } name="spec" rows="12" cols="60" spellcheck="false" { (text) }
                        button type="submit" { "Save " (plan.name.as_str()) }
                    }
                }
            }
        }
    };
    layout::page("Plans", &session.viewer(), notice.as_ref(), content).into_response()
}

pub async fn edit_plan(
    State(state): State<AppState>,
    session: AdminSession,
    Path(name): Path<String>,
    form: Form,
) -> Response {
    if let Some(refused) = session.refuse_post(&form, &[Permission::PlansWrite]) {
        return refused;
    }
    let text = form.get("spec").unwrap_or("");
    let request: PutPlanRequest = match serde_json::from_str(text) {
        Ok(request) => request,
        Err(error) => {
            let notice = Notice::error(format!("Not saved: the plan is not valid JSON ({error})."));
            return plans_page(&state, &session, Some(notice), Some((&name, text))).await;
        }
    };
    match crate::routes::plans::put_for(&state, &session.caller, &session.client, &name, request)
        .await
    {
        Ok(_) => {
            state.feed.catch_up().await;
            Redirect::to("/ui/plans?done=saved").into_response()
        }
        Err(error) => {
            let notice = Notice::error(format!("Not saved: {error}"));
            plans_page(&state, &session, Some(notice), Some((&name, text))).await
        }
    }
}
