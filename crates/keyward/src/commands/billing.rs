//! `keyward billing`: a user's invoice (the document of `GET /v1/users/{id}/invoice`),
//! every user's invoices for a month as CSV or JSON, and the billing outbox.

use chrono::Utc;
use keyward_core::billing::{Invoice, LineKind, Period};
use keyward_server::reports;
use keyward_store::{DeliveryStatus, PageRequest, UsageFilter, UsageGroup, UserFilter};
use serde_json::json;

use super::{Context, named_not_found, period_arg, user_id_arg};
use crate::cli::{BillingCommand, ExportFormat, OutboxStatus};
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;

pub async fn run(context: &Context, command: BillingCommand) -> CliResult {
    match command {
        BillingCommand::Invoice { user_id, period } => {
            let period = period_arg(period.as_deref())?;
            let id = user_id_arg(&user_id)?;
            let invoice = reports::invoice(&*context.store, &id, period, Utc::now())
                .await
                .map_err(|e| named_not_found(e, "user", &user_id))?;
            if context.json {
                return output::json(&invoice);
            }
            print_invoice(&invoice);
            Ok(())
        }
        BillingCommand::Outbox { status, limit } => outbox(context, status, limit).await,
        BillingCommand::Export { period, format } => {
            let period = period_arg(period.as_deref())?;
            export(context, period, format).await
        }
    }
}

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

fn kind(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Base => "base",
        LineKind::Overage => "overage",
    }
}

fn print_invoice(invoice: &Invoice) {
    outln!(
        "invoice for {} — {} ({})",
        invoice.user_id,
        invoice.period,
        invoice.currency
    );
    let mut table = output::table(["KIND", "PLAN", "FROM", "TO", "QUANTITY", "AMOUNT"]);
    for line in &invoice.lines {
        table.add_row([
            kind(line.kind).to_owned(),
            line.plan.to_string(),
            output::time(Some(line.from)),
            output::time(Some(line.to)),
            line.quantity.to_string(),
            dollars(line.amount_cents),
        ]);
    }
    output::print_table(&table);
    outln!("total: {}", dollars(invoice.total_cents));
}

/// The invoices of every user for `period`: every user not deleted, and every user
/// (deleted or not) with usage in the period.
async fn invoices(context: &Context, period: Period) -> CliResult<Vec<Invoice>> {
    let now = Utc::now();
    let mut users = std::collections::BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = context
            .store
            .list_users(&UserFilter {
                plan: None,
                page: PageRequest {
                    limit: 1000,
                    cursor: cursor.take(),
                },
            })
            .await?;
        users.extend(page.items.into_iter().map(|user| user.user_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Users with usage in the period, deleted or not.
    let with_usage = context
        .store
        .usage_totals(
            &UsageFilter::between(period.start(), period.end()),
            UsageGroup::Key,
        )
        .await?;
    users.extend(
        with_usage
            .iter()
            .filter_map(|total| total.group.get(1))
            .filter_map(|user| keyward_core::UserId::parse(user).ok()),
    );
    let mut invoices = Vec::with_capacity(users.len());
    for user_id in &users {
        invoices.push(reports::invoice(&*context.store, user_id, period, now).await?);
    }
    Ok(invoices)
}

async fn export(context: &Context, period: Period, format: ExportFormat) -> CliResult {
    let invoices = invoices(context, period).await?;
    if context.json || matches!(format, ExportFormat::Json) {
        return output::json(&json!({"period": period.to_string(), "invoices": invoices}));
    }
    let mut writer = csv::Writer::from_writer(std::io::stdout());
    let write_error = |error: csv::Error| CliError::failure(format!("cannot write CSV: {error}"));
    writer
        .write_record([
            "user_id",
            "period",
            "kind",
            "plan",
            "from",
            "to",
            "quantity",
            "amount_cents",
            "invoice_total_cents",
        ])
        .map_err(write_error)?;
    for invoice in &invoices {
        for line in &invoice.lines {
            writer
                .write_record([
                    invoice.user_id.clone(),
                    invoice.period.clone(),
                    kind(line.kind).to_owned(),
                    line.plan.to_string(),
                    keyward_core::time::format(&line.from),
                    keyward_core::time::format(&line.to),
                    line.quantity.to_string(),
                    line.amount_cents.to_string(),
                    invoice.total_cents.to_string(),
                ])
                .map_err(write_error)?;
        }
    }
    writer
        .flush()
        .map_err(|error| CliError::failure(format!("cannot write CSV: {error}")))?;
    Ok(())
}

async fn outbox(context: &Context, status: Option<OutboxStatus>, limit: u32) -> CliResult {
    let status = status.map(|status| match status {
        OutboxStatus::Pending => DeliveryStatus::Pending,
        OutboxStatus::Delivered => DeliveryStatus::Delivered,
        OutboxStatus::Skipped => DeliveryStatus::Skipped,
        OutboxStatus::Dead => DeliveryStatus::Dead,
    });
    let deliveries = context.store.list_deliveries(status, limit).await?;
    if context.json {
        let rows: Vec<_> = deliveries
            .iter()
            .map(|d| {
                json!({
                    "event_id": d.event.id,
                    "kind": d.event.kind,
                    "user_id": d.event.user_id,
                    "sink": d.sink,
                    "status": d.status,
                    "attempts": d.attempts,
                    "next_attempt_at": keyward_core::time::format(&d.next_attempt_at),
                    "last_error": d.last_error,
                    "delivered_at": d.delivered_at.map(|at| keyward_core::time::format(&at)),
                    "event": d.event.payload,
                })
            })
            .collect();
        return output::json(&json!({"deliveries": rows}));
    }
    let mut table = output::table([
        "EVENT",
        "KIND",
        "USER",
        "SINK",
        "STATUS",
        "ATTEMPTS",
        "LAST ERROR",
    ]);
    for d in &deliveries {
        table.add_row([
            d.event.id.clone(),
            d.event.kind.clone(),
            d.event.user_id.to_string(),
            d.sink.clone(),
            d.status.as_str().to_owned(),
            d.attempts.to_string(),
            d.last_error.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    output::print_table(&table);
    Ok(())
}
