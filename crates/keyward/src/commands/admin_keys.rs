//! `keyward admin-keys create|list|revoke`: the CLI acts as the operator, so it may grant
//! any permission.

use chrono::{Duration, Utc};
use keyward_core::Permission;
use keyward_store::{Actor, AdminKeyRecord, PageRequest, issue_admin_key};
use serde_json::json;

use super::{Context, parse_arg};
use crate::cli::{AdminKeysCommand, PageArgs};
use crate::error::{CliError, CliResult};
use crate::output;

pub async fn run(context: &Context, command: AdminKeysCommand) -> CliResult {
    match command {
        AdminKeysCommand::Create {
            name,
            permissions,
            expires_in_days,
        } => create(context, &name, &permissions, expires_in_days).await,
        AdminKeysCommand::List {
            include_revoked,
            page,
        } => list(context, include_revoked, &page).await,
        AdminKeysCommand::Revoke { id } => {
            if !id.starts_with("adk_") {
                return Err(CliError::usage(format!(
                    "`{id}` is not an admin key id (adk_…)"
                )));
            }
            let revoked = context
                .store
                .revoke_admin_key(&id, &Actor::cli())
                .await
                .map_err(|e| super::named_not_found(e, "admin key", &id))?;
            if context.json {
                return output::json(&revoked);
            }
            output::print_table(&fields(&revoked));
            Ok(())
        }
    }
}

async fn create(
    context: &Context,
    name: &str,
    permissions: &[String],
    expires_in_days: Option<u32>,
) -> CliResult {
    let name = parse_arg("--name", name, keyward_core::KeyName::parse)?;
    let permissions = permissions
        .iter()
        .map(|p| parse_arg("--permission", p, Permission::parse))
        .collect::<CliResult<Vec<_>>>()?;
    let expires_at = match expires_in_days {
        Some(days) if !(1..=36_500).contains(&days) => {
            return Err(CliError::usage(
                "--expires-in-days must be between 1 and 36500",
            ));
        }
        Some(days) => Some(Utc::now() + Duration::days(i64::from(days))),
        None => None,
    };
    let (key, record) = issue_admin_key(
        &*context.store,
        name.as_str(),
        &permissions,
        expires_at,
        &Actor::cli(),
    )
    .await?;
    eprintln!("warning: store this admin key now; it cannot be shown again.");
    if context.json {
        let mut object =
            serde_json::to_value(&record).map_err(|e| CliError::failure(e.to_string()))?;
        object["key"] = json!(key.expose_secret());
        return output::json_secret(&object);
    }
    // Written at once, the key last: if any of it cannot be written, the command fails.
    output::secret_line(format_args!(
        "{}\n\n{}",
        output::escape_nonprintable(&fields(&record).to_string()),
        key.expose_secret()
    ))
}

async fn list(context: &Context, include_revoked: bool, paging: &PageArgs) -> CliResult {
    let page = super::pages(paging, |page: PageRequest| async move {
        context.store.list_admin_keys(include_revoked, &page).await
    })
    .await?;
    let keys = page.items;
    if context.json {
        return output::json(&json!({"admin_keys": keys, "next_cursor": page.next_cursor}));
    }
    let mut table = output::table([
        "ID",
        "NAME",
        "PREFIX",
        "PERMISSIONS",
        "EXPIRES",
        "LAST USED",
        "REVOKED",
    ]);
    for key in &keys {
        table.add_row([
            key.id.clone(),
            key.name.clone(),
            key.key_prefix.clone(),
            permission_list(key),
            output::time(key.expires_at),
            output::time(key.last_used_at),
            output::time(key.revoked_at),
        ]);
    }
    output::print_table(&table);
    super::print_next_page(page.next_cursor.as_deref());
    Ok(())
}

fn permission_list(key: &AdminKeyRecord) -> String {
    key.permissions
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn fields(key: &AdminKeyRecord) -> comfy_table::Table {
    output::fields(&[
        ("id", key.id.clone()),
        ("name", key.name.clone()),
        ("prefix", key.key_prefix.clone()),
        ("permissions", permission_list(key)),
        ("created", output::time(Some(key.created_at))),
        ("expires", output::time(key.expires_at)),
        ("last used", output::time(key.last_used_at)),
        ("revoked", output::time(key.revoked_at)),
    ])
}
