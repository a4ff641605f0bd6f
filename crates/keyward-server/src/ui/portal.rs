//! The customer portal: one user's keys (create, rotate, revoke — the plaintext shown
//! once), usage, quota and invoice. The portal acts as an unrestricted `live` key of that
//! user, so the API's self-service rules and its per-user limit apply unchanged, and its
//! actions are audited as `portal:<user id>`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use keyward_core::billing::Period;
use keyward_core::{Environment, KeyStatus};
use maud::{Markup, html};

use super::chart;
use super::layout::{self, Form, Notice, Params, Viewer, count, csrf_field, when, when_opt};
use super::parts::{grace_field, key_fields, refused_action, rotation_of, status_badge};
use super::session::{PortalSession, csrf_matches, csrf_refused};
use crate::error::ApiError;
use crate::reports;
use crate::routes::keys::{self as api, CreateKeyRequest, ListKeysQuery};
use crate::state::AppState;
use crate::views::KeyObject;

fn viewer(session: &PortalSession) -> Viewer<'_> {
    Viewer::Portal {
        user: session.user.user_id.as_str(),
        csrf: &session.csrf,
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    session: PortalSession,
    Params(query): Params<DoneQuery>,
) -> Response {
    let notice = match query.done.as_deref() {
        Some("revoke") => Some(Notice::done("The key is revoked.")),
        _ => None,
    };
    portal_page(&state, &session, notice, None).await
}

async fn portal_page(
    state: &AppState,
    session: &PortalSession,
    notice: Option<Notice>,
    extra: Option<Markup>,
) -> Response {
    let user_id = &session.user.user_id;
    let listing = ListKeysQuery {
        user_id: None,
        include_inactive: false,
        q: None,
        status: None,
        plan: None,
        limit: Some(100),
        cursor: None,
    };
    let keys = match api::list::list_page(state, &session.caller, listing).await {
        Ok(page) => page.items,
        Err(error) => return error.into_response(),
    };
    let now = Utc::now();
    let period = Period::of(now);
    let usage = match reports::user_usage(&*state.store, user_id, period, now).await {
        Ok(usage) => usage,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let invoice = match reports::invoice(&*state.store, user_id, period, now).await {
        Ok(invoice) => invoice,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let content = html! {
        @if let Some(extra) = extra { (extra) }
        h2 { "Your keys" }
        div.scroll {
            table #portal-keys {
                thead { tr { th { "Key" } th { "Name" } th { "Environment" } th { "Status" } th { "Created" } th { "Last used" } th { "Actions" } } }
                tbody {
                    @for key in &keys {
                        @let view = KeyObject::of(key, now);
                        tr data-key=(key.id) {
                            td { code { (key.key_prefix) } }
                            td { (key.name) }
                            td { (key.environment.as_str()) }
                            td { (status_badge(view.status)) }
                            td { (when(key.created_at)) }
                            td { (when_opt(key.last_used_at)) }
                            td {
                                @if view.status != KeyStatus::Revoked {
                                    a href={ "/portal/keys/" (key.id) "/rotate" } { "Rotate…" } " "
                                    a href={ "/portal/keys/" (key.id) "/revoke" } { "Revoke…" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if keys.is_empty() { p { "You have no key yet." } }
        h2 { "New key" }
        form.card method="post" action="/portal/keys" {
            (csrf_field(&session.csrf))
            label for="name" { "Name" }
            input #name type="text" name="name" required maxlength="200" placeholder="production server";
            label for="environment" { "Environment" }
            select #environment name="environment" {
                option value="live" selected { "live" }
                option value="test" { "test" }
            }
            label for="scopes" { "Scopes (comma-separated; empty: every scope)" }
            input #scopes type="text" name="scopes";
            label for="expires" { "Expires in days (empty: never)" }
            input #expires type="number" name="expires_in_days" min="1" max="36500";
            button type="submit" { "Create key" }
        }
        h2 { "Usage in " (usage.period) }
        (chart::stacked(&format!("Your requests per day in {}", usage.period), &usage.by_day.iter().map(|day| {
            let mut by = BTreeMap::new();
            by.insert("admitted".to_owned(), day.requests - day.rejected.min(day.requests));
            by.insert("rejected".to_owned(), day.rejected);
            (day.date.get(8..).unwrap_or(&day.date).to_owned(), by)
        }).collect::<Vec<_>>()))
        p #portal-usage { (count(usage.requests)) " requests, " (count(usage.rejected)) " rejected, " (count(usage.units)) " units." }
        @if let Some(quota) = &usage.quota {
            h2 { "Monthly quota" }
            (chart::bars("Quota units this month", &[("used".to_owned(), quota.used), ("remaining".to_owned(), quota.remaining)]))
            p #portal-quota { (count(quota.used)) " of " (count(quota.limit)) " units used." }
        }
        h2 { "Invoice for " (invoice.period) }
        div.scroll {
            table #portal-invoice {
                thead { tr { th { "Line" } th.num { "Quantity" } th.num { "Amount" } } }
                tbody {
                    @for line in &invoice.lines {
                        tr { td { (format!("{:?}", line.kind).to_lowercase()) " · " (line.plan.as_str()) } td.num { (count(line.quantity)) } td.num { (format!("{}.{:02} {}", count(line.amount_cents / 100), line.amount_cents % 100, invoice.currency.to_uppercase())) } }
                    }
                }
                tfoot { tr { th { "Total" } td {} td.num { (format!("{}.{:02} {}", count(invoice.total_cents / 100), invoice.total_cents % 100, invoice.currency.to_uppercase())) } } }
            }
        }
    };
    layout::page("Your API keys", &viewer(session), notice.as_ref(), content).into_response()
}

pub async fn create_key(
    State(state): State<AppState>,
    session: PortalSession,
    form: Form,
) -> Response {
    if !csrf_matches(&session.csrf, &form) {
        return csrf_refused();
    }
    let environment = match form.text("environment") {
        None | Some("live") => Environment::Live,
        Some("test") => Environment::Test,
        Some(_) => {
            return layout::message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not created",
                "The environment is live or test.",
            );
        }
    };
    let expires_in_days = match form
        .text("expires_in_days")
        .map(str::parse::<u32>)
        .transpose()
    {
        Ok(days) => days,
        Err(_) => {
            return portal_refusal(
                &state,
                &session,
                "Not created: the days until it expires must be a whole number.",
            )
            .await;
        }
    };
    let scopes: Option<Vec<String>> = form.text("scopes").map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let request = CreateKeyRequest {
        name: form.text("name").unwrap_or("").to_owned(),
        environment: Some(environment),
        expires_in_days,
        scopes,
        ..CreateKeyRequest::default()
    };
    match api::create_for(&state, &session.caller, &session.client, request).await {
        Ok((plain, key)) => {
            new_key_page(
                &state,
                &session,
                &plain,
                &key,
                "Key created. Copy it now; it is not shown again.",
            )
            .await
        }
        Err(error) => portal_refusal(&state, &session, &format!("Not created: {error}")).await,
    }
}

/// The portal with a key just made (created or rotated): its plaintext, shown this once,
/// and its fields. This node's caches catch up first, so the key works at once.
async fn new_key_page(
    state: &AppState,
    session: &PortalSession,
    plain: &keyward_core::PlainKey,
    key: &keyward_store::KeyRecord,
    done: &str,
) -> Response {
    state.feed.catch_up().await;
    let extra = html! {
        (layout::secret_once("Your new key", plain.expose_secret()))
        (key_fields(key, &KeyObject::of(key, Utc::now())))
    };
    portal_page(state, session, Some(Notice::done(done)), Some(extra)).await
}

async fn portal_refusal(state: &AppState, session: &PortalSession, text: &str) -> Response {
    let mut response = portal_page(state, session, Some(Notice::error(text)), None).await;
    if response.status().is_success() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

fn describe(action: &str) -> Option<(&'static str, &'static str)> {
    match action {
        "revoke" => Some((
            "Revoke this key",
            "Requests with it will be refused from now on. This cannot be undone.",
        )),
        "rotate" => Some((
            "Rotate this key",
            "You get a new key, shown once. The old one keeps working for the time you choose, so you can deploy the new one.",
        )),
        _ => None,
    }
}

pub async fn confirm(
    State(state): State<AppState>,
    session: PortalSession,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let Some((title, text)) = describe(&action) else {
        return layout::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        );
    };
    let key = match api::visible_key(&state, &session.caller, &id).await {
        Ok(key) => key,
        Err(_) => {
            return layout::message(
                StatusCode::NOT_FOUND,
                "No such key",
                "You have no key with this id.",
            );
        }
    };
    let content = html! {
        (key_fields(&key, &KeyObject::of(&key, Utc::now())))
        form.card method="post" action={ "/portal/keys/" (key.id) "/" (action) } {
            (csrf_field(&session.csrf))
            p { (text) }
            @if action == "rotate" {
                (grace_field())
            }
            div.actions {
                button.danger[action == "revoke"] type="submit" { (title) }
                a href="/portal/" { "Cancel" }
            }
        }
    };
    layout::page(title, &viewer(&session), None, content).into_response()
}

pub async fn act(
    State(state): State<AppState>,
    session: PortalSession,
    Path((id, action)): Path<(String, String)>,
    form: Form,
) -> Response {
    if !csrf_matches(&session.csrf, &form) {
        return csrf_refused();
    }
    let key = match api::visible_key(&state, &session.caller, &id).await {
        Ok(key) => key,
        Err(_) => {
            return layout::message(
                StatusCode::NOT_FOUND,
                "No such key",
                "You have no key with this id.",
            );
        }
    };
    match action.as_str() {
        "revoke" => {
            match api::revoke_for(&state, &session.caller, &session.client, key.id.as_str()).await {
                Ok(_) => {
                    state.feed.catch_up().await;
                    Redirect::to("/portal/?done=revoke").into_response()
                }
                Err(error) => refused_action(&error),
            }
        }
        "rotate" => {
            let request = match rotation_of(&form) {
                Ok(request) => request,
                Err(refused) => return *refused,
            };
            match api::rotate_for(&state, &session.caller, &session.client, key, request).await {
                Ok((plain, new, _old)) => {
                    new_key_page(
                        &state,
                        &session,
                        &plain,
                        &new,
                        "Rotated. Copy the new key now; it is not shown again.",
                    )
                    .await
                }
                Err(error) => refused_action(&error),
            }
        }
        _ => layout::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        ),
    }
}
