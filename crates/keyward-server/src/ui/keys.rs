//! The dashboard's keys: search and filters (the listing `GET /v1/keys` answers with),
//! a key's detail with its usage and audit trail, and revoke, rotate, disable and enable,
//! each confirmed on its own page and done by the code the API runs.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use keyward_core::{KeyId, Permission};
use keyward_store::{AuditFilter, KeyRecord, PageRequest};
use maud::html;

use super::chart;
use super::layout::{self, Form, Notice, Params, count, csrf_field, encode, when, when_opt};
use super::parts::{
    audit_table, grace_field, key_fields, refused_action, rotation_of, status_badge,
};
use super::session::AdminSession;
use crate::error::ApiError;
use crate::reports;
use crate::routes::keys::{self as api, ListKeysQuery, UpdateKeyRequest};
use crate::state::AppState;
use crate::views::KeyObject;

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    plan: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    Params(query): Params<ListQuery>,
) -> Response {
    if let Some(refused) = session.refused(Permission::KeysRead) {
        return refused;
    }
    let blank = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let listing = ListKeysQuery {
        user_id: None,
        include_inactive: true,
        q: blank(&query.q),
        status: blank(&query.status),
        plan: blank(&query.plan),
        limit: Some(25),
        cursor: blank(&query.cursor),
    };
    let (page, notice) = match api::list::list_page(&state, &session.caller, listing).await {
        Ok(page) => (Some(page), None),
        Err(ApiError::Validation(why)) => (None, Some(Notice::error(why))),
        Err(error) => return error.into_response(),
    };
    let plans: Vec<String> = match state.store.list_plans().await {
        Ok(plans) => plans
            .into_iter()
            .map(|plan| plan.name.as_str().to_owned())
            .collect(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    let now = Utc::now();
    let next = page
        .as_ref()
        .and_then(|p| p.next_cursor.clone())
        .map(|cursor| {
            let mut link = url_query(&[
                ("q", query.q.as_deref()),
                ("status", query.status.as_deref()),
                ("plan", query.plan.as_deref()),
            ]);
            link.push_str(&format!("&cursor={}", encode(&cursor)));
            format!("/ui/keys?{link}")
        });
    let content = html! {
        form.filters method="get" action="/ui/keys" role="search" {
            label { "Search" input type="search" name="q" value=[query.q.as_deref()] placeholder="id, prefix, user or name"; }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for status in ["active", "disabled", "expired", "revoked"] {
                        option value=(status) selected[query.status.as_deref() == Some(status)] { (status) }
                    }
                }
            }
            label { "Plan"
                select name="plan" {
                    option value="" { "any" }
                    @for plan in &plans {
                        option value=(plan) selected[query.plan.as_deref() == Some(plan.as_str())] { (plan) }
                    }
                }
            }
            button type="submit" { "Find keys" }
        }
        @if let Some(page) = &page {
            div.scroll {
                table #keys {
                    thead { tr { th { "Key" } th { "Name" } th { "User" } th { "Plan" } th { "Environment" } th { "Status" } th { "Created" } th { "Last used" } } }
                    tbody {
                        @for key in &page.items {
                            @let view = KeyObject::of(key, now);
                            tr data-key=(key.id) {
                                td { a href={ "/ui/keys/" (key.id) } { code { (key.key_prefix) } } br; code.hint { (key.id) } }
                                td { (key.name) }
                                td { a href={ "/ui/users/" (key.user_id) } { (key.user_id) } }
                                td { (view.effective_plan) }
                                td { (key.environment.as_str()) }
                                td { (status_badge(view.status)) }
                                td { (when(key.created_at)) }
                                td { (when_opt(key.last_used_at)) }
                            }
                        }
                    }
                }
            }
            @if page.items.is_empty() { p { "No key matches." } }
            @if let Some(next) = next { p { a href=(next) rel="next" { "Next page" } } }
        }
    };
    let notice = notice.or_else(|| done_notice(query.done.as_deref()));
    layout::page("Keys", &session.viewer(), notice.as_ref(), content).into_response()
}

fn done_notice(done: Option<&str>) -> Option<Notice> {
    done.and_then(|done| match done {
        "revoke" => Some(Notice::done(
            "The key is revoked: every check of it now answers REVOKED.",
        )),
        "disable" => Some(Notice::done(
            "The key is disabled: checks answer DISABLED until it is enabled.",
        )),
        "enable" => Some(Notice::done("The key is enabled again.")),
        _ => None,
    })
}

/// A query string of the non-empty values.
fn url_query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(name, value)| {
            value
                .filter(|v| !v.is_empty())
                .map(|v| format!("{name}={}", encode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn load(state: &AppState, session: &AdminSession, id: &str) -> Result<KeyRecord, Response> {
    crate::routes::keys::visible_key(state, &session.caller, id)
        .await
        .map_err(|error| match error {
            ApiError::NotFound(_) | ApiError::Validation(_) => layout::message(
                StatusCode::NOT_FOUND,
                "No such key",
                "There is no key with this id.",
            ),
            error => error.into_response(),
        })
}

pub async fn detail(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Params(query): Params<ListQuery>,
) -> Response {
    if let Some(refused) = session.refused(Permission::KeysRead) {
        return refused;
    }
    let key = match load(&state, &session, &id).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let now = Utc::now();
    let usage = if session.may(Permission::UsageRead) {
        match reports::key_usage(&*state.store, &key.id, 30, now).await {
            Ok(report) => Some(report),
            Err(error) => return ApiError::from(error).into_response(),
        }
    } else {
        None
    };
    let audit = if session.may(Permission::AuditRead) {
        let filter = AuditFilter {
            key_id: Some(key.id.clone()),
            page: PageRequest {
                limit: 50,
                cursor: None,
            },
            ..AuditFilter::default()
        };
        match state.store.list_audit(&filter).await {
            Ok(page) => Some(page.items),
            Err(error) => return ApiError::from(error).into_response(),
        }
    } else {
        None
    };
    let view = KeyObject::of(&key, now);
    let may_write = session.may(Permission::KeysWrite);
    let content = html! {
        (key_fields(&key, &view))
        @if may_write && view.status != keyward_core::KeyStatus::Revoked {
            div.actions {
                a href={ "/ui/keys/" (key.id) "/rotate" } { "Rotate…" }
                @if key.enabled { a href={ "/ui/keys/" (key.id) "/disable" } { "Disable…" } }
                @else { a href={ "/ui/keys/" (key.id) "/enable" } { "Enable…" } }
                a href={ "/ui/keys/" (key.id) "/revoke" } { "Revoke…" }
            }
        }
        @if let Some(report) = &usage {
            h2 { "Usage, last 30 days" }
            (chart::stacked("Requests per day, admitted and rejected", &report.by_day.iter().map(|day| {
                let mut by = BTreeMap::new();
                by.insert("admitted".to_owned(), day.requests - day.rejected.min(day.requests));
                by.insert("rejected".to_owned(), day.rejected);
                (day.date.get(5..).unwrap_or(&day.date).to_owned(), by)
            }).collect::<Vec<_>>()))
            p #key-usage-total { (count(report.total_requests)) " requests, " (count(report.rejected_requests)) " rejected, " (count(report.units)) " units." }
        }
        @if let Some(records) = &audit {
            h2 { "Audit trail" }
            (audit_table(records))
        }
    };
    let notice = done_notice(query.done.as_deref());
    layout::page(
        &format!("Key {}", key.name),
        &session.viewer(),
        notice.as_ref(),
        content,
    )
    .into_response()
}

/// What each action does, for its confirmation page.
fn describe(action: &str) -> Option<(&'static str, &'static str, bool)> {
    match action {
        "revoke" => Some((
            "Revoke this key",
            "Every check of it will answer REVOKED, on every node within a second. This cannot be undone.",
            true,
        )),
        "rotate" => Some((
            "Rotate this key",
            "A new key replaces it, with the same settings and limits; its plaintext is shown once, on the next page. The old key keeps working for the grace period you choose.",
            false,
        )),
        "disable" => Some((
            "Disable this key",
            "Checks answer DISABLED until it is enabled again.",
            true,
        )),
        "enable" => Some((
            "Enable this key",
            "Checks of it are judged again as before it was disabled.",
            false,
        )),
        _ => None,
    }
}

/// The confirmation page of an action.
pub async fn confirm(
    State(state): State<AppState>,
    session: AdminSession,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    if let Some(refused) = session.refused(Permission::KeysWrite) {
        return refused;
    }
    let Some((title, text, danger)) = describe(&action) else {
        return layout::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        );
    };
    let key = match load(&state, &session, &id).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let view = KeyObject::of(&key, Utc::now());
    let content = html! {
        (key_fields(&key, &view))
        form.card method="post" action={ "/ui/keys/" (key.id) "/" (action) } {
            (csrf_field(&session.csrf))
            p { (text) }
            @if action == "rotate" {
                (grace_field())
            }
            div.actions {
                button.danger[danger] type="submit" { (title) }
                a href={ "/ui/keys/" (key.id) } { "Cancel" }
            }
        }
    };
    layout::page(title, &session.viewer(), None, content).into_response()
}

/// Carries out a confirmed action.
pub async fn act(
    State(state): State<AppState>,
    session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    form: Form,
) -> Response {
    if let Some(refused) = session.refuse_post(&form, &[Permission::KeysWrite]) {
        return refused;
    }
    if describe(&action).is_none() {
        return layout::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        );
    }
    let key = match load(&state, &session, &id).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let client = &session.client;
    let caller = &session.caller;
    let outcome = match action.as_str() {
        "rotate" => {
            let request = match rotation_of(&form) {
                Ok(request) => request,
                Err(refused) => return *refused,
            };
            match api::rotate_for(&state, caller, client, key, request).await {
                Ok((plain, new, old)) => {
                    state.feed.catch_up().await;
                    let now = Utc::now();
                    let content = html! {
                        (layout::secret_once("The new key", plain.expose_secret()))
                        h2 { "New key" }
                        (key_fields(&new, &KeyObject::of(&new, now)))
                        h2 { "Old key" }
                        (key_fields(&old, &KeyObject::of(&old, now)))
                        p { a href={ "/ui/keys/" (new.id) } { "Done: go to the new key" } }
                    };
                    let notice =
                        Notice::done("Rotated. Copy the new key now; it is not shown again.");
                    return layout::page("Key rotated", &session.viewer(), Some(&notice), content)
                        .into_response();
                }
                Err(error) => Err(error),
            }
        }
        "revoke" => api::revoke_for(&state, caller, client, key.id.as_str())
            .await
            .map(drop),
        "disable" | "enable" => {
            let request = UpdateKeyRequest {
                enabled: Some(action == "enable"),
                ..UpdateKeyRequest::default()
            };
            api::update_for(&state, caller, client, key, request)
                .await
                .map(drop)
        }
        _ => {
            return layout::message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such action.",
            );
        }
    };
    match outcome {
        Ok(()) => {
            state.feed.catch_up().await;
            Redirect::to(&format!(
                "/ui/keys/{}?done={action}",
                KeyId::parse(&id).map_or(id.clone(), |k| k.to_string())
            ))
            .into_response()
        }
        Err(error) => refused_action(&error),
    }
}
