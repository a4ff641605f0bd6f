//! The dashboard's audit log (filtered as `GET /v1/audit` filters) and webhook endpoints,
//! each with its deliveries and a replay form.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use keyward_core::{Permission, UserId};
use keyward_store::{AuditAction, AuditFilter, PageRequest};
use maud::html;

use super::layout::{
    self, DoneQuery, Form, Notice, Params, csrf_field, encode, not_found, store_error, when,
    when_opt,
};
use super::parts::{audit_table, refused_action};
use super::session::AdminSession;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    user_id: Option<String>,
    key_id: Option<String>,
    action: Option<String>,
    cursor: Option<String>,
}

pub async fn audit(
    State(state): State<AppState>,
    session: AdminSession,
    Params(query): Params<AuditQuery>,
) -> Response {
    if let Some(refused) = session.refused(Permission::AuditRead) {
        return refused;
    }
    let blank = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut notice = None;
    let filter = AuditFilter {
        user_id: blank(&query.user_id).and_then(|id| {
            UserId::parse(&id)
                .map_err(|_| notice = Some(Notice::error("No user has that id.")))
                .ok()
        }),
        key_id: blank(&query.key_id).and_then(|id| {
            keyward_core::KeyId::parse(&id)
                .map_err(|_| notice = Some(Notice::error("That is not a key id.")))
                .ok()
        }),
        action: blank(&query.action).and_then(|a| AuditAction::parse(&a)),
        page: PageRequest {
            limit: 50,
            cursor: blank(&query.cursor),
        },
    };
    let page = match state.store.list_audit(&filter).await {
        Ok(page) => page,
        Err(error) => return refused_action(&ApiError::from(error)),
    };
    let next = page.next_cursor.as_ref().map(|cursor| {
        let mut link = format!("/ui/audit?cursor={}", encode(cursor));
        for (name, value) in [
            ("user_id", &query.user_id),
            ("key_id", &query.key_id),
            ("action", &query.action),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                link.push_str(&format!("&{name}={}", encode(value)));
            }
        }
        link
    });
    let content = html! {
        form.filters method="get" action="/ui/audit" role="search" {
            label { "User" input type="text" name="user_id" value=[query.user_id.as_deref()]; }
            label { "Key" input type="text" name="key_id" value=[query.key_id.as_deref()] placeholder="key_…"; }
            label { "Action"
                select name="action" {
                    option value="" { "any" }
                    @for action in AuditAction::ALL {
                        option value=(action.as_str()) selected[query.action.as_deref() == Some(action.as_str())] { (action.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        (audit_table(&page.items))
        @if let Some(next) = next { p { a rel="next" href=(next) { "Next page" } } }
    };
    layout::page("Audit log", &session.viewer(), notice.as_ref(), content).into_response()
}

pub async fn webhooks(State(state): State<AppState>, session: AdminSession) -> Response {
    if let Some(refused) = session.refused(Permission::WebhooksWrite) {
        return refused;
    }
    let page = match state
        .store
        .list_webhooks(&PageRequest {
            limit: 100,
            cursor: None,
        })
        .await
    {
        Ok(page) => page,
        Err(error) => return store_error(error),
    };
    let content = html! {
        div.scroll {
            table #webhooks {
                thead { tr { th { "Endpoint" } th { "Events" } th { "Enabled" } th { "Failing since" } th { "Created" } } }
                tbody {
                    @for hook in &page.items {
                        tr {
                            td { a href={ "/ui/webhooks/" (hook.id) } { code { (hook.url) } } }
                            td { @for event in &hook.events { code { (event) } " " } }
                            td { (if hook.enabled { "yes" } else { "no" }) }
                            td { (when_opt(hook.failing_since)) }
                            td { (when(hook.created_at)) }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() { p { "No endpoint. Register one with POST /v1/webhooks or keyward webhooks create." } }
    };
    layout::page("Webhooks", &session.viewer(), None, content).into_response()
}

pub async fn webhook(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Params(query): Params<DoneQuery>,
) -> Response {
    if let Some(refused) = session.refused(Permission::WebhooksWrite) {
        return refused;
    }
    let hook = match state.store.get_webhook(&id).await {
        Ok(hook) => hook,
        Err(keyward_store::StoreError::NotFound(_)) => return not_found("webhook endpoint"),
        Err(error) => return store_error(error),
    };
    let deliveries = match state
        .store
        .list_webhook_deliveries(
            &id,
            &PageRequest {
                limit: 100,
                cursor: None,
            },
        )
        .await
    {
        Ok(page) => page.items,
        Err(error) => return store_error(error),
    };
    let content = html! {
        dl.fields {
            dt { "URL" } dd { code { (hook.url) } }
            dt { "Events" } dd { @for event in &hook.events { code { (event) } " " } }
            dt { "Enabled" } dd { (if hook.enabled { "yes" } else { "no" }) }
            dt { "Description" } dd { (hook.description.as_deref().unwrap_or("—")) }
        }
        h2 { "Deliveries" }
        div.scroll {
            table #deliveries {
                thead { tr { th { "Delivery" } th { "Event" } th { "Status" } th.num { "Attempts" } th { "Last attempt" } th.num { "Answer" } } }
                tbody {
                    @for delivery in &deliveries {
                        tr {
                            td { code { (delivery.id) } }
                            td { code { (delivery.event.kind) } br; code.hint { (delivery.event.id) } }
                            td { (format!("{:?}", delivery.status).to_lowercase()) }
                            td.num { (delivery.attempts) }
                            td { (when_opt(delivery.attempted_at)) }
                            td.num { (delivery.response_status.map_or_else(|| "—".to_owned(), |s| s.to_string())) }
                        }
                    }
                }
            }
        }
        @if deliveries.is_empty() { p { "Nothing delivered yet." } }
        h2 { "Replay" }
        form.card method="post" action={ "/ui/webhooks/" (hook.id) "/replay" } {
            (csrf_field(&session.csrf))
            label for="since" { "Send again every kept event since (UTC, RFC 3339)" }
            input #since type="text" name="since" required value=(keyward_core::time::format(&(Utc::now() - chrono::Duration::hours(1))));
            button type="submit" { "Replay" }
        }
    };
    let notice = query
        .done
        .as_deref()
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| Notice::done(format!("{n} events will be sent again.")));
    layout::page(
        "Webhook endpoint",
        &session.viewer(),
        notice.as_ref(),
        content,
    )
    .into_response()
}

pub async fn replay(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(refused) = session.refuse_post(&form, &[Permission::WebhooksWrite]) {
        return refused;
    }
    let since = form.get("since").unwrap_or("");
    match crate::routes::webhooks::replay_for(&state, &session.caller, &session.client, &id, since)
        .await
    {
        Ok(replayed) => Redirect::to(&format!("/ui/webhooks/{id}?done={replayed}")).into_response(),
        Err(error) => refused_action(&error),
    }
}
