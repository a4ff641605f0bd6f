//! `keyward keys usage`, `keyward usage` and `keyward usage summary`: the documents of
//! `GET /v1/keys/{id}/usage`, `GET /v1/users/{id}/usage` and `GET /v1/usage/summary`, or
//! tables.

use chrono::Utc;
use keyward_core::KeyId;
use keyward_server::reports::{self, MAX_DAYS};
use keyward_server::views::DayUsage;

use super::{Context, named_not_found, period_arg, user_id_arg};
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;

/// A figure, or `-` when there is none.
fn number(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

pub async fn key(context: &Context, id: &KeyId, days: u32) -> CliResult {
    check_days(days)?;
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
    outln!();
    output::print_table(&days_table(&report.by_day, true));
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
    let mut statuses = output::table(["STATUS", "REQUESTS"]);
    for (status, requests) in &report.by_status {
        statuses.add_row([status.clone(), requests.to_string()]);
    }
    outln!();
    output::print_table(&statuses);
    Ok(())
}

/// Up to this many days, a usage table has a row per day; over it, a row per month.
const DAILY_ROWS_UP_TO: usize = 62;

/// The by-day part of a report as a table: a row per day, or — for a long look-back such as
/// `--days 400` — a row per month (without latency, which does not add up across days).
fn days_table(days: &[DayUsage], latency: bool) -> comfy_table::Table {
    if days.len() > DAILY_ROWS_UP_TO {
        let mut table = output::table(["MONTH", "REQUESTS", "REJECTED", "UNITS"]);
        let mut months: Vec<(&str, u64, u64, u64)> = Vec::new();
        for day in days {
            let month = day.date.get(..7).unwrap_or(&day.date);
            match months.last_mut() {
                Some(last) if last.0 == month => {
                    last.1 += day.requests;
                    last.2 += day.rejected;
                    last.3 += day.units;
                }
                _ => months.push((month, day.requests, day.rejected, day.units)),
            }
        }
        for (month, requests, rejected, units) in months {
            table.add_row([
                month.to_owned(),
                requests.to_string(),
                rejected.to_string(),
                units.to_string(),
            ]);
        }
        return table;
    }
    let mut header = vec!["DATE", "REQUESTS", "REJECTED", "UNITS"];
    if latency {
        header.extend(["P50 MS", "P95 MS"]);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    for day in days {
        let mut row = vec![
            day.date.clone(),
            day.requests.to_string(),
            day.rejected.to_string(),
            day.units.to_string(),
        ];
        if latency {
            row.extend([number(day.p50_ms.flatten()), number(day.p95_ms.flatten())]);
        }
        table.add_row(row);
    }
    table
}

/// `keyward usage summary`: `GET /v1/usage/summary`.
pub async fn summary(context: &Context, days: u32) -> CliResult {
    check_days(days)?;
    let report = reports::summary(&*context.store, days, Utc::now()).await?;
    if context.json {
        return output::json(&report);
    }
    outln!(
        "{}",
        output::fields(&[
            ("days", days.to_string()),
            ("requests", report.requests.to_string()),
            ("rejected", report.rejected.to_string()),
            (
                "rejection rate",
                format!("{:.2} %", report.rejection_rate * 100.0)
            ),
            (
                "latency ms",
                format!(
                    "p50 {}, p95 {}, p99 {}",
                    number(report.latency_ms.p50),
                    number(report.latency_ms.p95),
                    number(report.latency_ms.p99)
                )
            ),
        ])
    );
    let mut codes = output::table(["CODE", "REQUESTS"]);
    for (code, requests) in &report.by_code {
        codes.add_row([code.clone(), requests.to_string()]);
    }
    outln!();
    output::print_table(&codes);
    let mut keys = output::table(["KEY", "USER", "REQUESTS", "REJECTED", "UNITS"]);
    for key in &report.top_keys {
        keys.add_row([
            key.key_id.clone(),
            output::or_dash(key.user_id.as_ref()),
            key.requests.to_string(),
            key.rejected.to_string(),
            key.units.to_string(),
        ]);
    }
    outln!();
    output::print_table(&keys);
    let mut endpoints = output::table(["ENDPOINT", "REQUESTS", "REJECTED"]);
    for row in &report.top_endpoints {
        let endpoint = if row.endpoint.is_empty() {
            "-"
        } else {
            &row.endpoint
        };
        endpoints.add_row([
            endpoint.to_owned(),
            row.requests.to_string(),
            row.rejected.to_string(),
        ]);
    }
    outln!();
    output::print_table(&endpoints);
    Ok(())
}

fn check_days(days: u32) -> CliResult {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "--days must be between 1 and {MAX_DAYS}"
        )))
    }
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
    outln!();
    output::print_table(&days_table(&report.by_day, false));
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
