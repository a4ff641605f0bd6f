//! `keyward keys usage` and `keyward usage`: the documents of `GET /v1/keys/{id}/usage` and
//! `GET /v1/users/{id}/usage`, or tables.

use chrono::Utc;
use keyward_core::KeyId;
use keyward_server::reports::{self, MAX_DAYS};
use serde_json::Value;

use super::{Context, named_not_found, period_arg, user_id_arg};
use crate::error::{CliError, CliResult};
use crate::output;

fn number(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
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
    println!(
        "{}",
        output::fields(&[
            ("key", id.to_string()),
            ("days", days.to_string()),
            ("requests", number(&report["total_requests"])),
            ("rejected", number(&report["rejected_requests"])),
            ("units", number(&report["units"])),
        ])
    );
    let mut table = output::table(["DATE", "REQUESTS", "REJECTED", "UNITS", "P50 MS", "P95 MS"]);
    for day in report["by_day"].as_array().into_iter().flatten() {
        table.add_row([
            day["date"].as_str().unwrap_or("").to_owned(),
            number(&day["requests"]),
            number(&day["rejected"]),
            number(&day["units"]),
            number(&day["p50_ms"]),
            number(&day["p95_ms"]),
        ]);
    }
    println!();
    output::print_table(&table);
    let mut endpoints = output::table(["ENDPOINT", "REQUESTS"]);
    for row in report["by_endpoint"].as_array().into_iter().flatten() {
        let endpoint = row["endpoint"].as_str().unwrap_or("");
        endpoints.add_row([
            if endpoint.is_empty() { "-" } else { endpoint }.to_owned(),
            number(&row["requests"]),
        ]);
    }
    println!();
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
    let quota = match &report["quota"] {
        Value::Null => "-".to_owned(),
        quota => format!("{} of {} used", quota["used"], quota["limit"]),
    };
    println!(
        "{}",
        output::fields(&[
            ("user", user_id.to_owned()),
            ("period", period.to_string()),
            ("requests", number(&report["requests"])),
            ("rejected", number(&report["rejected"])),
            ("units", number(&report["units"])),
            ("quota", quota),
        ])
    );
    let mut keys = output::table(["KEY", "REQUESTS", "UNITS"]);
    for row in report["by_key"].as_array().into_iter().flatten() {
        keys.add_row([
            row["key_id"].as_str().unwrap_or("").to_owned(),
            number(&row["requests"]),
            number(&row["units"]),
        ]);
    }
    println!();
    output::print_table(&keys);
    Ok(())
}
