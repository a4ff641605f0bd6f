//! `keyward audit`: a page of the audit log, as `GET /v1/audit` answers it.

use keyward_core::{KeyId, UserId};
use keyward_store::{AuditAction, AuditFilter, PageRequest};
use serde_json::json;

use super::{Context, parse_arg, print_next_page};
use crate::cli::AuditArgs;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;

pub async fn run(context: &Context, args: AuditArgs) -> CliResult {
    let action = args
        .action
        .as_deref()
        .map(|raw| {
            AuditAction::parse(raw).ok_or_else(|| {
                CliError::usage(format!(
                    "--action must be one of {}",
                    AuditAction::ALL.map(AuditAction::as_str).join(", ")
                ))
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        user_id: args
            .user_id
            .as_deref()
            .map(|raw| parse_arg("--user-id", raw, UserId::parse))
            .transpose()?,
        key_id: args
            .key_id
            .as_deref()
            .map(|raw| parse_arg("--key-id", raw, KeyId::parse))
            .transpose()?,
        action,
        page: PageRequest {
            limit: args.limit,
            cursor: args.cursor,
        },
    };
    let page = super::pages(
        &crate::cli::PageArgs {
            limit: Some(filter.page.limit),
            cursor: filter.page.cursor.clone(),
        },
        |_| context.store.list_audit(&filter),
    )
    .await?;
    if context.json {
        return output::json(&json!({"records": page.items, "next_cursor": page.next_cursor}));
    }
    let mut table = output::table(["AT", "ACTOR", "ACTION", "USER", "KEY", "IP"]);
    for record in &page.items {
        table.add_row([
            output::time(Some(record.at)),
            record.actor.clone(),
            record.action.clone(),
            output::or_dash(record.user_id.as_ref()),
            output::or_dash(record.key_id.as_ref()),
            output::or_dash(record.ip.as_ref()),
        ]);
    }
    output::print_table(&table);
    if page.items.is_empty() {
        outln!("no audit records");
    }
    print_next_page(page.next_cursor.as_deref());
    Ok(())
}
