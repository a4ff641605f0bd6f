//! Settings: flag > environment > TOML file (`--config` / `KEYWARD_CONFIG`) > default.
//! Clap resolves flag and environment; this module reads the file into the same settings
//! type (`ServeArgs`), which `keyward serve` merges, completes with defaults and checks.

use std::path::Path;

use serde::Deserialize;

use crate::error::{CliError, CliResult};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://keyward.db";

/// A configuration file: `database_url` (every command's) and the settings of `serve`, with
/// the same names as the flags (`_` for `-`); an unknown key is an error.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub serve: crate::cli::ServeArgs,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> CliResult<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            CliError::failure(format!(
                "cannot read config file {}: {error}",
                path.display()
            ))
        })?;
        let invalid = |message: &str| {
            CliError::usage(format!(
                "config file {} is invalid: {message}",
                path.display()
            ))
        };
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|error: toml::de::Error| invalid(error.message()))?;
        let database_url = match table.remove("database_url") {
            None => None,
            Some(toml::Value::String(url)) => Some(url),
            Some(_) => return Err(invalid("database_url must be a string")),
        };
        let serve = crate::cli::ServeArgs::deserialize(toml::Value::Table(table))
            .map_err(|error| invalid(error.message()))?;
        Ok(Self {
            database_url,
            serve,
        })
    }
}

/// The database URL after applying every source in order.
pub fn database_url(flag_or_env: Option<&str>, file: &FileConfig) -> String {
    flag_or_env
        .map(str::to_owned)
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}
