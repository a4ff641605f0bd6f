//! `keyward serve`: resolves the settings (flag > env > file > default) and runs the server
//! until SIGINT or SIGTERM, then shuts down gracefully.

use std::io::Write;
use std::time::Duration;

use keyward_limiter::FailureMode;
use keyward_server::billing::{BillingSettings, StripeSettings, WebhookSettings};
use keyward_server::{Application, ServerConfig, StartupError};
use zeroize::Zeroizing;

use super::parse_arg;
use crate::cli::{RedisFailureMode, ServeArgs, UsageMode};
use crate::config::FileConfig;
use crate::error::{CliError, CliResult};

pub async fn run(args: ServeArgs, database_url: String, file: &FileConfig) -> CliResult {
    let config = resolve(args, database_url, file)?;
    let application = Application::build(config)
        .await
        .map_err(|error| match error {
            StartupError::Bind { .. } => CliError::failure(error.to_string()),
            other => CliError::failure(other.to_string()),
        })?;
    println!("keyward listening on http://{}", application.address());
    // A closed stdout only loses this line; the server runs on.
    let _ = std::io::stdout().flush();
    application
        .run_until(shutdown_signal())
        .await
        .map_err(|error| CliError::failure(format!("the server stopped: {error}")))
}

fn resolve(args: ServeArgs, database_url: String, file: &FileConfig) -> CliResult<ServerConfig> {
    let defaults = ServerConfig::default();
    let billing = billing(&args, file, defaults.billing.clone())?;
    let trusted = if args.trusted_proxies.is_empty() {
        file.trusted_proxies.clone().unwrap_or_default()
    } else {
        args.trusted_proxies
    };
    let trusted_proxies = trusted
        .iter()
        .map(|cidr| cidr.trim())
        .filter(|cidr| !cidr.is_empty())
        .map(|cidr| parse_arg("--trusted-proxy", cidr, super::keys::parse_cidr))
        .collect::<CliResult<_>>()?;
    let admin_token = admin_token(
        args.admin_token_file
            .as_deref()
            .or(file.admin_token_file.as_deref()),
    )?;
    Ok(ServerConfig {
        listen: args
            .listen
            .or_else(|| file.listen.clone())
            .unwrap_or(defaults.listen),
        database_url,
        database_max_connections: args
            .database_max_connections
            .or(file.database_max_connections)
            .unwrap_or(defaults.database_max_connections),
        redis_url: args
            .redis_url
            .or_else(|| file.redis_url.clone())
            .filter(|url| !url.is_empty()),
        redis_failure_mode: match args.redis_failure_mode.or(file.redis_failure_mode) {
            None | Some(RedisFailureMode::Local) => FailureMode::Local,
            Some(RedisFailureMode::Open) => FailureMode::Open,
            Some(RedisFailureMode::Closed) => FailureMode::Closed,
        },
        admin_token,
        allow_query_key: args
            .allow_query_key
            .or(file.allow_query_key)
            .unwrap_or(defaults.allow_query_key),
        trusted_proxies,
        failure_limit: args
            .failure_limit
            .or(file.failure_limit)
            .unwrap_or(defaults.failure_limit),
        failure_window: args
            .failure_window_seconds
            .or(file.failure_window_seconds)
            .map_or(defaults.failure_window, Duration::from_secs),
        failure_ipv6_prefix: {
            let bits = args
                .failure_ipv6_prefix
                .or(file.failure_ipv6_prefix)
                .unwrap_or(u32::from(defaults.failure_ipv6_prefix));
            u8::try_from(bits)
                .ok()
                .filter(|bits| *bits <= 128)
                .ok_or_else(|| out_of_range("--failure-ipv6-prefix", bits, "0 to 128"))?
        },
        self_service_limit: args
            .self_service_limit
            .or(file.self_service_limit)
            .unwrap_or(defaults.self_service_limit),
        metrics_token: args
            .metrics_token
            .or_else(|| file.metrics_token.clone())
            .filter(|token| !token.is_empty())
            .map(Zeroizing::new),
        header_read_timeout: duration_setting(
            "--header-read-timeout",
            args.header_read_timeout
                .as_deref()
                .or(file.header_read_timeout.as_deref()),
            defaults.header_read_timeout,
        )?,
        body_read_timeout: duration_setting(
            "--body-read-timeout",
            args.body_read_timeout
                .as_deref()
                .or(file.body_read_timeout.as_deref()),
            defaults.body_read_timeout,
        )?,
        idle_timeout: duration_setting(
            "--idle-timeout",
            args.idle_timeout
                .as_deref()
                .or(file.idle_timeout.as_deref()),
            defaults.idle_timeout,
        )?,
        max_connections: {
            let n = args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections);
            if !(1..=1_000_000).contains(&n) {
                return Err(out_of_range("--max-connections", n, "1 to 1000000"));
            }
            n
        },
        usage: args
            .usage
            .or(file.usage)
            .map_or(defaults.usage, |mode| mode == UsageMode::On),
        usage_retention_days: args
            .usage_retention_days
            .or(file.usage_retention_days)
            .unwrap_or(defaults.usage_retention_days),
        usage_flush_interval: duration_in(
            "--usage-flush-interval",
            args.usage_flush_interval
                .as_deref()
                .or(file.usage_flush_interval.as_deref()),
            defaults.usage_flush_interval,
            (Duration::from_millis(50), Duration::from_secs(60)),
            "between 50ms and 60s",
        )?,
        key_cache_capacity: args
            .key_cache_capacity
            .or(file.key_cache_capacity)
            .unwrap_or(defaults.key_cache_capacity),
        billing,
    })
}

/// The admin token: `KEYWARD_ADMIN_TOKEN`, or the first line of the admin token file
/// (`--admin-token-file`, `KEYWARD_ADMIN_TOKEN_FILE`, `admin_token_file`); never both.
fn admin_token(path: Option<&std::path::Path>) -> CliResult<Option<Zeroizing<String>>> {
    let from_env = std::env::var("KEYWARD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Zeroizing::new);
    let Some(path) = path else {
        return Ok(from_env);
    };
    if from_env.is_some() {
        return Err(CliError::usage(
            "the admin token is set twice: use KEYWARD_ADMIN_TOKEN or an admin token file, not both",
        ));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
        CliError::failure(format!(
            "cannot read the admin token file {}: {error}",
            path.display()
        ))
    })?);
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(CliError::failure(format!(
            "the admin token file {} is empty",
            path.display()
        )));
    }
    Ok(Some(Zeroizing::new(token.to_owned())))
}

/// The one message for a setting outside its range, whatever its source.
fn out_of_range(setting: &str, value: impl std::fmt::Display, range: &str) -> CliError {
    CliError::usage(format!(
        "{setting} must be {range} (got {value}); set by the flag, its KEYWARD_ environment variable or the config file"
    ))
}

/// A duration setting: humantime (`90s`, `10m`) or whole seconds, from 1 second to 1 day.
fn duration_setting(setting: &str, raw: Option<&str>, default: Duration) -> CliResult<Duration> {
    duration_in(
        setting,
        raw,
        default,
        (Duration::from_secs(1), Duration::from_secs(86_400)),
        "between 1s and 24h",
    )
}

/// A duration setting (humantime such as `200ms`, `90s`, or whole seconds) within `bounds`.
fn duration_in(
    setting: &str,
    raw: Option<&str>,
    default: Duration,
    (least, most): (Duration, Duration),
    range: &str,
) -> CliResult<Duration> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(raw).map_err(|_| {
            CliError::usage(format!(
                "{setting}: `{raw}` is not a duration; try 10s, 2m or a number of seconds"
            ))
        })?,
    };
    if parsed < least || parsed > most {
        return Err(out_of_range(setting, raw, range));
    }
    Ok(parsed)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// The billing sinks: a webhook when its URL is set (with its secret), Stripe when its
/// secret key is set.
fn billing(
    args: &ServeArgs,
    file: &FileConfig,
    defaults: BillingSettings,
) -> CliResult<BillingSettings> {
    let pick = |flag: &Option<String>, file: &Option<String>| {
        flag.clone()
            .or_else(|| file.clone())
            .filter(|value| !value.is_empty())
    };
    let webhook = match (
        pick(&args.billing_webhook_url, &file.billing_webhook_url),
        pick(&args.billing_webhook_secret, &file.billing_webhook_secret),
    ) {
        (Some(url), Some(secret)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(CliError::usage(
                    "--billing-webhook-url must be an http:// or https:// URL",
                ));
            }
            Some(WebhookSettings {
                url,
                secret: Zeroizing::new(secret),
            })
        }
        (Some(_), None) => {
            return Err(CliError::usage(
                "--billing-webhook-url needs --billing-webhook-secret (KEYWARD_BILLING_WEBHOOK_SECRET) to sign events",
            ));
        }
        (None, _) => None,
    };
    let stripe = pick(&args.stripe_secret_key, &file.stripe_secret_key).map(|key| StripeSettings {
        base_url: pick(&args.stripe_base_url, &file.stripe_base_url)
            .unwrap_or_else(|| "https://api.stripe.com".to_owned()),
        secret_key: Zeroizing::new(key),
        event_name: pick(&args.stripe_event_name, &file.stripe_event_name)
            .unwrap_or_else(|| "api_requests".to_owned()),
    });
    Ok(BillingSettings {
        webhook,
        stripe,
        max_attempts: args
            .billing_max_attempts
            .or(file.billing_max_attempts)
            .unwrap_or(defaults.max_attempts),
        retry_base: args
            .billing_retry_base_ms
            .or(file.billing_retry_base_ms)
            .map_or(defaults.retry_base, Duration::from_millis),
        meter_delay: args
            .billing_meter_delay_seconds
            .or(file.billing_meter_delay_seconds)
            .map_or(defaults.meter_delay, Duration::from_secs),
        recheck_every: args
            .billing_recheck_seconds
            .or(file.billing_recheck_seconds)
            .map_or(defaults.recheck_every, Duration::from_secs),
        lease: match args.billing_lease_seconds.or(file.billing_lease_seconds) {
            None => defaults.lease,
            Some(seconds) if (15..=3_600).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => {
                return Err(out_of_range(
                    "--billing-lease-seconds",
                    seconds,
                    "15 to 3600",
                ));
            }
        },
    })
}
