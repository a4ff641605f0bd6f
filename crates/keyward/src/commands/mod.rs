//! One module per subcommand; each opens the store, does one thing and prints the result.

mod db;
mod import;
mod keys;
mod plans;
mod users;

use keyward_store::{SqliteStore, Store};
use serde_json::{Map, Value};

use crate::cli::{Cli, Command};
use crate::config::{self, FileConfig};
use crate::error::{CliError, CliResult};

/// What every command needs: the store and how to print.
pub struct Context {
    pub store: Box<dyn Store>,
    pub json: bool,
}

pub async fn run(cli: Cli) -> CliResult {
    let file = FileConfig::load(cli.config.as_deref())?;
    let url = config::database_url(cli.database_url.as_deref(), &file);
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
    }
}

async fn open_store(url: &str) -> CliResult<Box<dyn Store>> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url)
            .await
            .map_err(|error| CliError::failure(format!("cannot open the database: {error}")))?;
        Ok(Box::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Err(CliError::failure(
            "this build of keyward supports SQLite only; PostgreSQL support is planned",
        ))
    } else {
        Err(CliError::usage(
            "--database-url must start with sqlite: or postgres://",
        ))
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

/// Parses a command-line value with a domain parser, as a usage error naming the option.
pub fn parse_arg<T, E: std::fmt::Display>(
    option: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> CliResult<T> {
    parse(value).map_err(|error| CliError::usage(format!("{option}: {error}")))
}
