//! One module per subcommand; each opens the store, does one thing and prints the result.

mod admin_keys;
mod audit;
mod billing;
mod db;
mod import;
mod keys;
mod plans;
mod serve;
mod settings;
mod usage;
mod users;
mod webhooks;

use std::sync::Arc;

use keyward_store::{Page, PageRequest, Store, StoreError};
use serde_json::{Map, Value};

use crate::cli::{Cli, Command, PageArgs, UsageCommand};
use crate::config::{self, FileConfig};
use crate::error::{CliError, CliResult};

#[cfg(test)]
pub use serve::check_file as check_serve_settings;

/// What every command needs: the store and how to print.
pub struct Context {
    pub store: Arc<dyn Store>,
    pub json: bool,
}

pub async fn run(cli: Cli) -> CliResult {
    let file = FileConfig::load(cli.config.as_deref())?;
    let url = config::database_url(cli.database_url.as_deref(), &file);
    if let Command::Serve(args) = cli.command {
        return serve::run(*args, url, &file).await;
    }
    // Needs no database: a shell's completion script.
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(
            shell,
            &mut crate::cli::Cli::command(),
            "keyward",
            &mut script,
        );
        crate::output::outln!("{}", String::from_utf8_lossy(&script).trim_end());
        return Ok(());
    }
    let store = open_store(&url).await?;
    // Every command applies pending migrations first; `db` commands manage them themselves.
    if !matches!(cli.command, Command::Db(_)) {
        store.migrate().await?;
    }
    let context = Context {
        store,
        json: cli.json,
    };
    match cli.command {
        Command::Keys(command) => keys::run(&context, command).await,
        Command::Users(command) => users::run(&context, command).await,
        Command::Plans(command) => plans::run(&context, command).await,
        Command::Db(command) => db::run(&context, command).await,
        Command::Import(args) => import::run(&context, args).await,
        Command::Usage {
            command: Some(UsageCommand::Summary { days }),
            ..
        } => usage::summary(&context, days).await,
        Command::Usage {
            command: None,
            user_id,
            period,
        } => {
            usage::user(
                &context,
                user_id.as_deref().unwrap_or_default(),
                period.as_deref(),
            )
            .await
        }
        Command::Audit(args) => audit::run(&context, args).await,
        Command::Billing(command) => billing::run(&context, command).await,
        Command::AdminKeys(command) => admin_keys::run(&context, command).await,
        Command::Webhooks(command) => webhooks::run(&context, command).await,
        Command::Serve(_) | Command::Completions { .. } => Ok(()),
    }
}

async fn open_store(url: &str) -> CliResult<Arc<dyn Store>> {
    match keyward_store::connect(url).await {
        Ok(store) => Ok(store),
        Err(StoreError::Invalid { message, .. }) if !url.starts_with("sqlite:") => {
            Err(CliError::usage(format!("--database-url {message}")))
        }
        Err(error) => Err(CliError::failure(format!(
            "cannot open the database: {error}"
        ))),
    }
}

/// A listing: the one page `--limit`/`--cursor` ask for, or — with neither — every page.
pub async fn pages<T, F, Fut>(args: &PageArgs, mut fetch: F) -> CliResult<Page<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    if args.limit.is_some() || args.cursor.is_some() {
        let request = PageRequest {
            limit: args.limit.unwrap_or(100),
            cursor: args.cursor.clone(),
        };
        return fetch(request).await.map_err(cursor_error);
    }
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(PageRequest {
            limit: 1000,
            cursor,
        })
        .await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
        }
    }
}

/// A cursor keyward did not issue is a usage error naming the option.
fn cursor_error(error: StoreError) -> CliError {
    match error {
        StoreError::Invalid {
            field: "cursor",
            message,
        } => CliError::usage(format!("--cursor: {message}")),
        other => other.into(),
    }
}

/// After a page: the option that prints the next one, on stderr (stdout stays the table).
pub fn print_next_page(next_cursor: Option<&str>) {
    if let Some(cursor) = next_cursor {
        eprintln!("more: --cursor {cursor}");
    }
}

/// Parses repeated `K=V` options into a JSON object (values stay strings).
pub fn parse_meta(entries: &[String]) -> CliResult<Map<String, Value>> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                Ok((key.to_owned(), Value::String(value.to_owned())))
            }
            _ => Err(CliError::usage(format!(
                "--meta takes KEY=VALUE, got `{entry}`"
            ))),
        })
        .collect()
}

/// The `--period` of a usage or billing command (default: the current month).
pub fn period_arg(raw: Option<&str>) -> CliResult<keyward_core::billing::Period> {
    match raw {
        Some(raw) => parse_arg("--period", raw, keyward_core::billing::Period::parse),
        None => Ok(keyward_core::billing::Period::of(chrono::Utc::now())),
    }
}

/// A user id argument; a malformed one names no user (exit 1, as the API's 404).
pub fn user_id_arg(value: &str) -> CliResult<keyward_core::UserId> {
    keyward_core::UserId::parse(value)
        .map_err(|_| CliError::failure(format!("user `{value}` not found")))
}

/// Maps "not found" to one sentence naming what was asked for.
pub fn named_not_found(error: StoreError, what: &str, id: &str) -> CliError {
    match error {
        StoreError::NotFound(_) => CliError::failure(format!("{what} `{id}` not found")),
        other => other.into(),
    }
}

/// Parses a command-line value with a domain parser, as a usage error naming the option.
pub fn parse_arg<T, E: std::fmt::Display>(
    option: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> CliResult<T> {
    parse(value).map_err(|error| CliError::usage(format!("{option}: {error}")))
}
