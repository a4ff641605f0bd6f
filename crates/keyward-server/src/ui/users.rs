//! The dashboard's users: search and list (by plan), and a user's page — its plan (changed
//! as `PATCH /v1/users/{id}` changes it), this month's usage, quota and invoice, its keys,
//! and one-time portal links.

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use keyward_core::billing::Period;
use keyward_core::{Permission, PlanName, UserId};
use keyward_store::{PageRequest, UserFilter};
use maud::html;

use super::chart;
use super::layout::{
    self, DoneQuery, Form, Notice, Params, count, csrf_field, encode, money, not_found,
    store_error, when, when_opt,
};
use super::parts::{refused_action, status_badge};
use super::session::AdminSession;
use crate::error::ApiError;
use crate::reports;
use crate::routes::keys::ListKeysQuery;
use crate::routes::users::UpdateUserRequest;
use crate::state::AppState;
use crate::views::KeyObject;

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
    layout::page("Users", &session.viewer(), None, content).into_response()
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
        match crate::routes::keys::list::list_page(state, &session.caller, listing).await {
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
    // A portal makes keys: its links need both.
    let may_link = may_write && session.may(Permission::KeysWrite);
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
        }
        @if may_link {
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
        &session.viewer(),
        notice.as_ref(),
        content,
    )
    .into_response()
}

pub async fn change_plan(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(refused) = session.refuse_post(&form, &[Permission::UsersWrite]) {
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
    let needed = [Permission::UsersWrite, Permission::KeysWrite];
    if let Some(refused) = session.refuse_post(&form, &needed) {
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
