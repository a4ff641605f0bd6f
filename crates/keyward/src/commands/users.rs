//! `keyward users create|list|show|set-plan|delete`.

use keyward_core::{PlanName, UserId};
use keyward_store::{Actor, NewUser, PageRequest, UserFilter, UserPatch, UserProfile, UserRecord};
use serde_json::{Value, json};

use super::{Context, named_not_found, parse_arg, parse_meta, user_id_arg};
use crate::cli::UsersCommand;
use crate::error::CliResult;
use crate::output;
use crate::output::outln;

pub async fn run(context: &Context, command: UsersCommand) -> CliResult {
    match command {
        UsersCommand::Create {
            user_id,
            plan,
            email,
            company,
            meta,
        } => {
            let user = NewUser {
                user_id: parse_arg("--user-id", &user_id, UserId::parse)?,
                plan: parse_arg("--plan", &plan, PlanName::parse)?,
                profile: UserProfile {
                    email,
                    company,
                    metadata: parse_meta(&meta)?,
                },
            };
            let created = context.store.create_user(&user, &Actor::cli()).await?;
            print_user(context, &created)
        }
        UsersCommand::List { plan, page } => {
            let plan = plan
                .as_deref()
                .map(|p| parse_arg("--plan", p, PlanName::parse))
                .transpose()?;
            let page = super::pages(&page, |page: PageRequest| {
                let filter = UserFilter {
                    plan: plan.clone(),
                    page,
                };
                async move { context.store.list_users(&filter).await }
            })
            .await?;
            let users = page.items;
            if context.json {
                return output::json(&json!({"users": users, "next_cursor": page.next_cursor}));
            }
            let mut table = output::table(["USER", "PLAN", "EMAIL", "COMPANY", "KEYS", "CREATED"]);
            for user in &users {
                table.add_row([
                    user.user_id.to_string(),
                    user.plan.to_string(),
                    output::or_dash(user.email.as_ref()),
                    output::or_dash(user.company.as_ref()),
                    user.key_count.to_string(),
                    output::time(Some(user.created_at)),
                ]);
            }
            output::print_table(&table);
            if users.is_empty() {
                outln!("no users");
            }
            super::print_next_page(page.next_cursor.as_deref());
            Ok(())
        }
        UsersCommand::Show { user_id } => {
            let user = context.store.get_user(&user_id_arg(&user_id)?).await?;
            print_user(context, &user)
        }
        UsersCommand::SetPlan { user_id, plan } => {
            let patch = UserPatch {
                plan: Some(parse_arg("PLAN", &plan, PlanName::parse)?),
                ..UserPatch::default()
            };
            let user = context
                .store
                .update_user(&user_id_arg(&user_id)?, &patch, &Actor::cli())
                .await?;
            print_user(context, &user)
        }
        UsersCommand::RevokeKeys { user_id, yes } => {
            let id = user_id_arg(&user_id)?;
            // An unknown user is an error, not "0 keys revoked".
            context
                .store
                .get_user(&id)
                .await
                .map_err(|e| named_not_found(e, "user", &user_id))?;
            output::confirm(
                &format!("Revoke every key of {id}? They cannot be restored."),
                yes,
            )?;
            let revoked = context.store.revoke_user_keys(&id, &Actor::cli()).await?;
            if context.json {
                return output::json(&serde_json::json!({"user_id": id, "revoked": revoked}));
            }
            outln!(
                "revoked {revoked} key{} of {id}",
                if revoked == 1 { "" } else { "s" }
            );
            Ok(())
        }
        UsersCommand::Delete { user_id, yes } => {
            output::confirm(
                &format!("Delete user {user_id} and revoke all its keys? This cannot be undone."),
                yes,
            )?;
            let user = context
                .store
                .delete_user(&user_id_arg(&user_id)?, &Actor::cli())
                .await?;
            print_user(context, &user)
        }
    }
}

fn print_user(context: &Context, user: &UserRecord) -> CliResult {
    if context.json {
        return output::json(user);
    }
    let table = output::fields(&[
        ("user", user.user_id.to_string()),
        ("plan", user.plan.to_string()),
        ("email", output::or_dash(user.email.as_ref())),
        ("company", output::or_dash(user.company.as_ref())),
        ("active keys", user.key_count.to_string()),
        ("created", output::time(Some(user.created_at))),
        ("deleted", output::time(user.deleted_at)),
        ("metadata", Value::Object(user.metadata.clone()).to_string()),
    ]);
    output::print_table(&table);
    Ok(())
}
