//! `keyward db migrate|rollback|status`.

use serde_json::json;

use super::Context;
use crate::cli::DbCommand;
use crate::error::CliResult;
use crate::output;
use crate::output::outln;

pub async fn run(context: &Context, command: DbCommand) -> CliResult {
    match command {
        DbCommand::Migrate => {
            let applied = context.store.migrate().await?;
            if context.json {
                return output::json(&json!({"applied": applied}));
            }
            if applied.is_empty() {
                outln!("database is up to date");
            }
            for version in applied {
                outln!("applied {version}");
            }
            Ok(())
        }
        DbCommand::Rollback { steps, yes } => {
            output::confirm(
                &format!("Roll back the newest {steps} migration(s)? Their tables and data go."),
                yes,
            )?;
            let reverted = context.store.rollback(steps).await?;
            if context.json {
                return output::json(&json!({"rolled_back": reverted}));
            }
            if reverted.is_empty() {
                outln!("no migration to roll back");
            }
            for version in reverted {
                outln!("rolled back {version}");
            }
            Ok(())
        }
        DbCommand::Status => {
            let status = context.store.migration_status().await?;
            if context.json {
                return output::json(&json!({"migrations": status}));
            }
            let mut table = output::table(["VERSION", "DESCRIPTION", "APPLIED", "APPLIED AT"]);
            for migration in &status {
                table.add_row([
                    migration.version.to_string(),
                    migration.description.clone(),
                    if migration.applied { "yes" } else { "no" }.to_owned(),
                    output::time(migration.applied_at),
                ]);
            }
            output::print_table(&table);
            Ok(())
        }
    }
}
