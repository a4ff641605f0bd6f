//! Settings: flag > environment > TOML file (`--config` / `KEYWARD_CONFIG`) > default.
//! Clap resolves flag and environment; this module adds the file and the defaults.

use std::path::Path;

use serde::Deserialize;

use crate::error::{CliError, CliResult};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://keyward.db";

/// The settings a configuration file may hold (the same names as the flags, with `_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub database_max_connections: Option<u32>,
    pub listen: Option<String>,
    pub redis_url: Option<String>,
    pub redis_failure_mode: Option<crate::cli::RedisFailureMode>,
    pub allow_query_key: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub failure_limit: Option<u32>,
    pub failure_window_seconds: Option<u64>,
    pub failure_ipv6_prefix: Option<u32>,
    pub self_service_limit: Option<u32>,
    pub metrics_token: Option<String>,
    pub admin_token_file: Option<std::path::PathBuf>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub usage: Option<crate::cli::UsageMode>,
    pub usage_retention_days: Option<u32>,
    pub usage_flush_interval: Option<String>,
    pub key_cache_capacity: Option<u64>,
    pub billing_webhook_url: Option<String>,
    pub billing_webhook_secret: Option<String>,
    pub stripe_base_url: Option<String>,
    pub stripe_secret_key: Option<String>,
    pub stripe_event_name: Option<String>,
    pub billing_max_attempts: Option<u32>,
    pub billing_retry_base_ms: Option<u64>,
    pub billing_meter_delay_seconds: Option<u64>,
    pub billing_recheck_seconds: Option<u64>,
    pub billing_lease_seconds: Option<u64>,
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
        toml::from_str(&text).map_err(|error| {
            CliError::usage(format!(
                "config file {} is invalid: {}",
                path.display(),
                error.message()
            ))
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
