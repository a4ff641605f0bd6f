//! Pieces several pages show: a key's fields and state, audit records, and a refused
//! action.

use axum::response::Response;
use keyward_store::KeyRecord;
use maud::{Markup, html};

use super::layout::{self, count, when, when_opt};
use crate::error::ApiError;
use crate::views::KeyObject;

/// The state of a key as a badge.
pub fn status_badge(status: keyward_core::KeyStatus) -> Markup {
    html! { span.status.(status.as_str()) { (status.as_str()) } }
}

/// A key's fields, as a definition list.
pub fn key_fields(key: &KeyRecord, view: &KeyObject<'_>) -> Markup {
    html! {
        dl.fields #key-fields {
            dt { "Id" } dd { code #key-id { (key.id) } }
            dt { "Prefix" } dd { code { (key.key_prefix) } }
            dt { "Status" } dd #key-status { (status_badge(view.status)) }
            dt { "User" } dd { (key.user_id) }
            dt { "Environment" } dd { (key.environment.as_str()) }
            dt { "Plan" } dd { (view.effective_plan) @if key.plan.is_some() { " (the key's own)" } }
            dt { "Scopes" } dd { @if key.scopes.is_empty() { "every scope" } @else { @for scope in &key.scopes { code { (scope) } " " } } }
            dt { "Allowed addresses" } dd { @match &key.allowed_ips { Some(nets) => { @for net in nets { code { (net) } " " } }, None => { "any" } } }
            dt { "Created" } dd { (when(key.created_at)) }
            dt { "Expires" } dd { (when_opt(key.expires_at)) }
            dt { "Last used" } dd { (when_opt(key.last_used_at)) }
            dt { "Requests" } dd { (count(key.request_count)) }
            @if let Some(by) = &key.disabled_by { dt { "Disabled by" } dd { (by) } }
            @if let Some(replaced) = &key.replaced_by { dt { "Replaced by" } dd { a href={ "/ui/keys/" (replaced) } { code { (replaced) } } } }
        }
    }
}

/// Audit records as a table.
pub fn audit_table(records: &[keyward_store::AuditRecord]) -> Markup {
    html! {
        div.scroll {
            table.audit {
                thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "User" } th { "Key" } th { "Address" } th { "Details" } } }
                tbody {
                    @for record in records {
                        tr {
                            td { (when(record.at)) }
                            td { (record.actor) }
                            td { code { (record.action) } }
                            td { (record.user_id.as_deref().unwrap_or("—")) }
                            td { @if let Some(key) = &record.key_id { a href={ "/ui/keys/" (key) } { code { (key) } } } @else { "—" } }
                            td { (record.ip.as_deref().unwrap_or("—")) }
                            td { code { (record.details) } }
                        }
                    }
                }
            }
        }
        @if records.is_empty() { p { "Nothing recorded." } }
    }
}

/// An action the API's rules refused, as a page.
pub fn refused_action(error: &ApiError) -> Response {
    let status = error.status();
    let text = error.to_string();
    layout::message(status, "Not done", &text)
}

/// The grace-period field of a rotation's confirmation: how long the old key keeps working.
pub fn grace_field() -> Markup {
    html! {
        label for="grace" { "The old key keeps working for" }
        select #grace name="grace_period_seconds" {
            option value="0" { "no time: stop it now" }
            option value="3600" selected { "1 hour" }
            option value="86400" { "1 day" }
            option value="604800" { "7 days" }
            option value="2592000" { "30 days" }
        }
    }
}

/// A rotation as a confirmed form asks it (the API's rules judge the grace period); the
/// page to answer with when the form is unreadable.
pub fn rotation_of(
    form: &layout::Form,
) -> Result<crate::routes::keys::RotateKeyRequest, Box<Response>> {
    let grace = form
        .text("grace_period_seconds")
        .map(str::parse::<u64>)
        .transpose()
        .map_err(|_| {
            Box::new(layout::message(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "Not rotated",
                "The grace period must be a number of seconds.",
            ))
        })?;
    Ok(crate::routes::keys::RotateKeyRequest {
        grace_period_seconds: grace,
        expires_in_days: None,
    })
}
