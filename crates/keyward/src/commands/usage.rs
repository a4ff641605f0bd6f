//! `keyward keys usage` and `keyward usage`: the documents of `GET /v1/keys/{id}/usage` and
//! `GET /v1/users/{id}/usage`, or tables.

use chrono::Utc;
use keyward_core::KeyId;
use keyward_server::reports::{self, MAX_DAYS};

use super::{Context, named_not_found, period_arg, user_id_arg};
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;

/// A figure, or `-` when there is none.
fn number(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

pub async fn key(context: &Context, id: &KeyId, days: u32) -> CliResult {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(CliError::usage(format!(
            "--days must be between 1 and {MAX_DAYS}"
        )));
    }
    context
        .store
        .get_key(id)
        .await
        .map_err(|e| named_not_found(e, "key", id.as_str()))?;
    let report = reports::key_usage(&*context.store, id, days, Utc::now()).await?;
    if context.json {
        return output::json(&report);
    }
    outln!(
        "{}",
        output::fields(&[
            ("key", id.to_string()),
            ("days", days.to_string()),
            ("requests", report.total_requests.to_string()),
            ("rejected", report.rejected_requests.to_string()),
            ("units", report.units.to_string()),
        ])
    );
    let mut table = output::table(["DATE", "REQUESTS", "REJECTED", "UNITS", "P50 MS", "P95 MS"]);
    for day in &report.by_day {
        table.add_row([
            day.date.clone(),
            day.requests.to_string(),
            day.rejected.to_string(),
            day.units.to_string(),
            number(day.p50_ms.flatten()),
            number(day.p95_ms.flatten()),
        ]);
    }
    outln!();
    output::print_table(&table);
    let mut endpoints = output::table(["ENDPOINT", "REQUESTS"]);
    for row in &report.by_endpoint {
        let endpoint = if row.endpoint.is_empty() {
            "-"
        } else {
            &row.endpoint
        };
        endpoints.add_row([endpoint.to_owned(), row.requests.to_string()]);
    }
    outln!();
    output::print_table(&endpoints);
    Ok(())
}

pub async fn user(context: &Context, user_id: &str, period: Option<&str>) -> CliResult {
    let period = period_arg(period)?;
    let id = user_id_arg(user_id)?;
    let report = reports::user_usage(&*context.store, &id, period, Utc::now())
        .await
        .map_err(|e| named_not_found(e, "user", user_id))?;
    if context.json {
        return output::json(&report);
    }
    let quota = match &report.quota {
        None => "-".to_owned(),
        Some(quota) => format!("{} of {} used", quota.used, quota.limit),
    };
    outln!(
        "{}",
        output::fields(&[
            ("user", user_id.to_owned()),
            ("period", period.to_string()),
            ("requests", report.requests.to_string()),
            ("rejected", report.rejected.to_string()),
            ("units", report.units.to_string()),
            ("quota", quota),
        ])
    );
    let mut keys = output::table(["KEY", "REQUESTS", "UNITS"]);
    for row in &report.by_key {
        keys.add_row([
            row.key_id.clone(),
            row.requests.to_string(),
            row.units.to_string(),
        ]);
    }
    outln!();
    output::print_table(&keys);
    Ok(())
}
