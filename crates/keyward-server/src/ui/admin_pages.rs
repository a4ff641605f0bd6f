//! The dashboard's users, plans, audit log and webhooks: each page shows what the matching
//! API call answers, and each action runs the code of the API's handler.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use keyward_core::billing::Period;
use keyward_core::{Permission, PlanName, UserId};
use keyward_store::{AuditAction, AuditFilter, PageRequest, UserFilter};
use maud::html;

use super::chart;
use super::keys::{audit_table, refused_action, status_badge};
use super::layout::{self, Form, Notice, Params, Viewer, count, csrf_field, when, when_opt};
use super::session::{AdminSession, csrf_matches, csrf_refused};
use crate::error::ApiError;
use crate::reports;
use crate::routes::keys::ListKeysQuery;
use crate::routes::plans::PutPlanRequest;
use crate::routes::users::UpdateUserRequest;
use crate::state::AppState;
use crate::views::KeyObject;

fn viewer(session: &AdminSession) -> Viewer<'_> {
    Viewer::Admin {
        who: &session.who,
        csrf: &session.csrf,
        permissions: session.caller.permissions(),
    }
}

fn store_error(error: keyward_store::StoreError) -> Response {
    ApiError::from(error).into_response()
}

fn not_found(what: &str) -> Response {
    layout::message(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what}."),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct UsersQuery {
    id: Option<String>,
    plan: Option<String>,
    cursor: Option<String>,
}

pub async fn users(
    State(state): State<AppState>,
    session: AdminSession,
    Params(query): Params<UsersQuery>,
) -> Response {
    if let Some(refused) = session.refused(Permission::UsersRead) {
        return refused;
    }
    // Searching by id opens the user.
    if let Some(id) = query
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        return match UserId::parse(id) {
            Ok(id) => Redirect::to(&format!("/ui/users/{}", encode(id.as_str()))).into_response(),
            Err(_) => not_found("user"),
        };
    }
    let plan = match query
        .plan
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(PlanName::parse)
        .transpose()
    {
        Ok(plan) => plan,
        Err(_) => return not_found("plan"),
    };
    let filter = UserFilter {
        plan,
        page: PageRequest {
            limit: 25,
            cursor: query.cursor.clone().filter(|c| !c.is_empty()),
        },
    };
    let page = match state.store.list_users(&filter).await {
        Ok(page) => page,
        Err(error) => return refused_action(&ApiError::from(error)),
    };
    let plans = match state.store.list_plans().await {
        Ok(plans) => plans,
        Err(error) => return store_error(error),
    };
    let content = html! {
        form.filters method="get" action="/ui/users" role="search" {
            label { "User id" input type="search" name="id" placeholder="acme"; }
            label { "Plan"
                select name="plan" {
                    option value="" { "any" }
                    @for plan in &plans {
                        option value=(plan.name.as_str()) selected[query.plan.as_deref() == Some(plan.name.as_str())] { (plan.name.as_str()) }
                    }
                }
            }
            button type="submit" { "Find users" }
        }
        div.scroll {
            table #users {
                thead { tr { th { "User" } th { "Plan" } th { "Email" } th { "Company" } th.num { "Keys" } th { "Created" } } }
                tbody {
                    @for user in &page.items {
                        tr {
                            td { a href={ "/ui/users/" (encode(user.user_id.as_str())) } { (user.user_id) } }
                            td { (user.plan.as_str()) }
                            td { (user.email.as_deref().unwrap_or("—")) }
                            td { (user.company.as_deref().unwrap_or("—")) }
                            td.num { (count(user.key_count)) }
                            td { (when(user.created_at)) }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() { p { "No user." } }
        @if let Some(next) = &page.next_cursor {
            p { a rel="next" href={ "/ui/users?cursor=" (encode(next)) @if let Some(plan) = &query.plan { "&plan=" (encode(plan)) } } { "Next page" } }
        }
    };
    layout::page("Users", &viewer(&session), None, content).into_response()
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn user(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Params(query): Params<DoneQuery>,
) -> Response {
    user_page(
        &state,
        &session,
        &id,
        query.done.as_deref().map(|_| Notice::done("Saved.")),
        None,
    )
    .await
}

async fn user_page(
    state: &AppState,
    session: &AdminSession,
    id: &str,
    notice: Option<Notice>,
    extra: Option<maud::Markup>,
) -> Response {
    if let Some(refused) = session.refused(Permission::UsersRead) {
        return refused;
    }
    let Ok(user_id) = UserId::parse(id) else {
        return not_found("user");
    };
    let user = match state.store.get_user(&user_id).await {
        Ok(user) => user,
        Err(keyward_store::StoreError::NotFound(_)) => return not_found("user"),
        Err(error) => return store_error(error),
    };
    let now = Utc::now();
    let period = Period::of(now);
    let usage = if session.may(Permission::UsageRead) {
        match reports::user_usage(&*state.store, &user_id, period, now).await {
            Ok(usage) => Some(usage),
            Err(error) => return store_error(error),
        }
    } else {
        None
    };
    let invoice = if session.may(Permission::BillingRead) {
        match reports::invoice(&*state.store, &user_id, period, now).await {
            Ok(invoice) => Some(invoice),
            Err(error) => return store_error(error),
        }
    } else {
        None
    };
    let keys = if session.may(Permission::KeysRead) {
        let listing = ListKeysQuery {
            user_id: Some(user_id.to_string()),
            include_inactive: false,
            q: None,
            status: None,
            plan: None,
            limit: Some(100),
            cursor: None,
        };
        match crate::routes::keys::list_page(state, &session.caller, listing).await {
            Ok(page) => Some(page.items),
            Err(error) => return error.into_response(),
        }
    } else {
        None
    };
    let plans = match state.store.list_plans().await {
        Ok(plans) => plans,
        Err(error) => return store_error(error),
    };
    let may_write = session.may(Permission::UsersWrite) && user.deleted_at.is_none();
    let content = html! {
        @if let Some(extra) = extra { (extra) }
        dl.fields #user-fields {
            dt { "User" } dd #user-id { (user.user_id) }
            dt { "Plan" } dd #user-plan { (user.plan.as_str()) }
            dt { "Email" } dd { (user.email.as_deref().unwrap_or("—")) }
            dt { "Company" } dd { (user.company.as_deref().unwrap_or("—")) }
            dt { "Created" } dd { (when(user.created_at)) }
            dt { "Deleted" } dd { (when_opt(user.deleted_at)) }
        }
        @if may_write {
            h2 { "Change plan" }
            form.card method="post" action={ "/ui/users/" (encode(user.user_id.as_str())) "/plan" } {
                (csrf_field(&session.csrf))
                label for="plan" { "Plan" }
                select #plan name="plan" {
                    @for plan in &plans {
                        option value=(plan.name.as_str()) selected[plan.name == user.plan] { (plan.name.as_str()) }
                    }
                }
                label for="effective" { "Billed from (UTC, RFC 3339; empty: now)" }
                input #effective type="text" name="plan_effective_at" placeholder="2026-12-01T00:00:00Z";
                button type="submit" { "Change plan" }
            }
            h2 { "Portal" }
            form.inline method="post" action={ "/ui/users/" (encode(user.user_id.as_str())) "/portal-link" } {
                (csrf_field(&session.csrf))
                button.plain type="submit" { "Make a one-time portal link" }
            }
        }
        @if let Some(usage) = &usage {
            h2 { "Usage in " (usage.period) }
            (chart::stacked(&format!("Requests per day in {}", usage.period), &usage.by_day.iter().map(|day| {
                let mut by = std::collections::BTreeMap::new();
                by.insert("admitted".to_owned(), day.requests - day.rejected.min(day.requests));
                by.insert("rejected".to_owned(), day.rejected);
                (day.date.get(8..).unwrap_or(&day.date).to_owned(), by)
            }).collect::<Vec<_>>()))
            p #user-usage { (count(usage.requests)) " requests, " (count(usage.rejected)) " rejected, " (count(usage.units)) " units"
                @if let Some(quota) = &usage.quota { "; quota " (count(quota.used)) " of " (count(quota.limit)) " used" } "." }
        }
        @if let Some(invoice) = &invoice {
            h2 { "Invoice for " (invoice.period) }
            div.scroll {
                table #invoice {
                    thead { tr { th { "Line" } th.num { "Quantity" } th.num { "Amount" } } }
                    tbody {
                        @for line in &invoice.lines {
                            tr { td { (format!("{:?}", line.kind).to_lowercase()) " · " (line.plan.as_str()) " · " (when(line.from)) " – " (when(line.to)) } td.num { (count(line.quantity)) } td.num { (money(line.amount_cents, invoice.currency)) } }
                        }
                    }
                    tfoot { tr { th { "Total" } td {} td.num #invoice-total { (money(invoice.total_cents, invoice.currency)) } } }
                }
            }
        }
        @if let Some(keys) = &keys {
            h2 { "Keys" }
            div.scroll {
                table {
                    thead { tr { th { "Key" } th { "Name" } th { "Status" } th { "Last used" } } }
                    tbody {
                        @for key in keys {
                            tr {
                                td { a href={ "/ui/keys/" (key.id) } { code { (key.key_prefix) } } }
                                td { (key.name) }
                                td { (status_badge(KeyObject::of(key, now).status)) }
                                td { (when_opt(key.last_used_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(
        &format!("User {}", user.user_id),
        &viewer(session),
        notice.as_ref(),
        content,
    )
    .into_response()
}

fn money(cents: u64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        count(cents / 100),
        cents % 100,
        currency.to_uppercase()
    )
}

pub async fn change_plan(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if !csrf_matches(&session.csrf, &form) {
        return csrf_refused();
    }
    if let Some(refused) = session.refused(Permission::UsersWrite) {
        return refused;
    }
    let request = UpdateUserRequest {
        plan: form.text("plan").map(str::to_owned),
        plan_effective_at: form.text("plan_effective_at").map(str::to_owned),
        ..UpdateUserRequest::default()
    };
    match crate::routes::users::update_for(&state, &session.caller, &session.client, &id, request)
        .await
    {
        Ok(user) => {
            state.feed.catch_up().await;
            Redirect::to(&format!(
                "/ui/users/{}?done=plan",
                encode(user.user_id.as_str())
            ))
            .into_response()
        }
        Err(error) => refused_action(&error),
    }
}

pub async fn portal_link(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    parts: Parts,
    form: Form,
) -> Response {
    if !csrf_matches(&session.csrf, &form) {
        return csrf_refused();
    }
    if let Some(refused) = session.refused(Permission::UsersWrite) {
        return refused;
    }
    match crate::routes::users::portal_link(&state, &session.caller, &session.client, &id, &parts)
        .await
    {
        Ok(link) => {
            let extra = html! {
                section.secret {
                    h2 { "Portal link" }
                    p { "Give this link to the user alone. It opens their portal once, until " (when(link.expires_at)) "." }
                    div.copyrow {
                        input #new-key type="text" readonly value=(link.url) aria-label="Portal link";
                        button type="button" data-copy="new-key" { "Copy" }
                    }
                }
            };
            user_page(&state, &session, &id, None, Some(extra)).await
        }
        Err(error) => refused_action(&error),
    }
}

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
    if let Some(refused) = session.refused(Permission::UsersRead) {
        return refused;
    }
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
    layout::page("Plans", &viewer(session), notice.as_ref(), content).into_response()
}

pub async fn edit_plan(
    State(state): State<AppState>,
    session: AdminSession,
    Path(name): Path<String>,
    form: Form,
) -> Response {
    if !csrf_matches(&session.csrf, &form) {
        return csrf_refused();
    }
    if let Some(refused) = session.refused(Permission::PlansWrite) {
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
    layout::page("Audit log", &viewer(&session), notice.as_ref(), content).into_response()
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
    layout::page("Webhooks", &viewer(&session), None, content).into_response()
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
        .map(|n| Notice::done(format!("{n} events will be sent again.")));
    layout::page(
        "Webhook endpoint",
        &viewer(&session),
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
    if !csrf_matches(&session.csrf, &form) {
        return csrf_refused();
    }
    if let Some(refused) = session.refused(Permission::WebhooksWrite) {
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
