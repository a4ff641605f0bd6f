//! `keyward webhooks create|list|delete|deliveries|rotate-secret|replay|enable|disable`:
//! the same rules and records as `/v1/webhooks`.

use chrono::Utc;
use keyward_server::webhooks::{self, SECRET_OVERLAP, WebhookSettings, sign};
use keyward_store::{Actor, NewWebhook, PageRequest, WebhookPatch, WebhookRecord};
use serde_json::json;

use super::{Context, named_not_found, pages, parse_arg, print_next_page};
use crate::cli::WebhooksCommand;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;

pub async fn run(context: &Context, command: WebhooksCommand) -> CliResult {
    match command {
        WebhooksCommand::Create {
            url,
            events,
            description,
        } => {
            // The networks a server denies by default: the CLI has no server settings.
            let settings = WebhookSettings::default();
            let new = NewWebhook {
                url: webhooks::check_url(&settings, &url)
                    .map_err(|reason| CliError::usage(format!("--url {reason}")))?,
                events: webhooks::check_events(&events)
                    .map_err(|reason| CliError::usage(format!("--event: {reason}")))?,
                description,
                secret: sign::new_secret(),
            };
            let created = context.store.create_webhook(&new, &Actor::cli()).await?;
            print_with_secret(context, &created)
        }
        WebhooksCommand::List { page } => {
            let listed = pages(&page, |page: PageRequest| async move {
                context.store.list_webhooks(&page).await
            })
            .await?;
            if context.json {
                return output::json(
                    &json!({"webhooks": listed.items, "next_cursor": listed.next_cursor}),
                );
            }
            let mut table = output::table(["ID", "URL", "EVENTS", "ENABLED", "DESCRIPTION"]);
            for webhook in &listed.items {
                table.add_row([
                    webhook.id.clone(),
                    webhook.url.clone(),
                    webhook.events.join(" "),
                    webhook.enabled.to_string(),
                    output::or_dash(webhook.description.as_ref()),
                ]);
            }
            output::print_table(&table);
            if listed.items.is_empty() {
                outln!("no webhooks");
            }
            print_next_page(listed.next_cursor.as_deref());
            Ok(())
        }
        WebhooksCommand::Delete { id } => {
            let deleted = context
                .store
                .delete_webhook(&id, &Actor::cli())
                .await
                .map_err(|e| named_not_found(e, "webhook", &id))?;
            print(context, &deleted)
        }
        WebhooksCommand::Deliveries { id, page } => {
            context
                .store
                .get_webhook(&id)
                .await
                .map_err(|e| named_not_found(e, "webhook", &id))?;
            let listed = pages(&page, |page: PageRequest| {
                let id = id.clone();
                async move { context.store.list_webhook_deliveries(&id, &page).await }
            })
            .await?;
            if context.json {
                let deliveries: Vec<_> = listed
                    .items
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.id, "event_id": d.event.id, "type": d.event.kind,
                            "attempt": d.attempts, "status": d.status,
                            "at": d.attempted_at.map(|at| keyward_core::time::format(&at)),
                            "response_status": d.response_status,
                        })
                    })
                    .collect();
                return output::json(
                    &json!({"deliveries": deliveries, "next_cursor": listed.next_cursor}),
                );
            }
            let mut table =
                output::table(["ID", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "ANSWER", "AT"]);
            for delivery in &listed.items {
                table.add_row([
                    delivery.id.clone(),
                    delivery.event.id.clone(),
                    delivery.event.kind.clone(),
                    delivery.status.as_str().to_owned(),
                    delivery.attempts.to_string(),
                    output::or_dash(delivery.response_status),
                    output::time(delivery.attempted_at),
                ]);
            }
            output::print_table(&table);
            if listed.items.is_empty() {
                outln!("no deliveries");
            }
            print_next_page(listed.next_cursor.as_deref());
            Ok(())
        }
        WebhooksCommand::RotateSecret { id } => {
            let overlap = chrono::Duration::from_std(SECRET_OVERLAP).unwrap_or_default();
            let rotated = context
                .store
                .rotate_webhook_secret(
                    &id,
                    &sign::new_secret(),
                    Utc::now() + overlap,
                    &Actor::cli(),
                )
                .await
                .map_err(|e| named_not_found(e, "webhook", &id))?;
            print_with_secret(context, &rotated)
        }
        WebhooksCommand::Replay { id, since } => {
            let since = parse_arg("--since", &since, keyward_core::time::parse)?;
            let retention = WebhookSettings::default().retention_days;
            if since < Utc::now() - chrono::Duration::days(i64::from(retention)) {
                return Err(CliError::usage(format!(
                    "--since: events are kept {retention} days by default; give a later time"
                )));
            }
            let replayed = context
                .store
                .replay_webhook_events(&id, since, &Actor::cli())
                .await
                .map_err(|e| named_not_found(e, "webhook", &id))?;
            if context.json {
                return output::json(&json!({"replayed": replayed}));
            }
            outln!(
                "{replayed} event{} will be sent again",
                if replayed == 1 { "" } else { "s" }
            );
            Ok(())
        }
        WebhooksCommand::Enable { id } => set_enabled(context, &id, true).await,
        WebhooksCommand::Disable { id } => set_enabled(context, &id, false).await,
    }
}

async fn set_enabled(context: &Context, id: &str, enabled: bool) -> CliResult {
    let patch = WebhookPatch {
        enabled: Some(enabled),
        ..WebhookPatch::default()
    };
    let updated = context
        .store
        .update_webhook(id, &patch, &Actor::cli())
        .await
        .map_err(|e| named_not_found(e, "webhook", id))?;
    print(context, &updated)
}

fn fields(webhook: &WebhookRecord) -> comfy_table::Table {
    output::fields(&[
        ("id", webhook.id.clone()),
        ("url", webhook.url.clone()),
        ("events", webhook.events.join(" ")),
        ("enabled", webhook.enabled.to_string()),
        ("description", output::or_dash(webhook.description.as_ref())),
        ("created", output::time(Some(webhook.created_at))),
    ])
}

fn print(context: &Context, webhook: &WebhookRecord) -> CliResult {
    if context.json {
        return output::json(webhook);
    }
    output::print_table(&fields(webhook));
    Ok(())
}

/// The endpoint and its secret (creation, rotation): the secret signs deliveries.
fn print_with_secret(context: &Context, webhook: &WebhookRecord) -> CliResult {
    if context.json {
        let mut document = serde_json::to_value(webhook)
            .map_err(|e| CliError::failure(format!("cannot encode the result: {e}")))?;
        document["secret"] = json!(webhook.secret);
        return output::json(&document);
    }
    output::print_table(&fields(webhook));
    outln!("secret: {}", webhook.secret);
    Ok(())
}
