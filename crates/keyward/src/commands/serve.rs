//! `keyward serve`: resolves the settings (flag > env > file > default) and runs the server
//! until SIGINT or SIGTERM, then shuts down gracefully.

use std::io::Write;
use std::time::Duration;

use keyward_limiter::FailureMode;
use keyward_server::billing::{BillingSettings, StripeSettings, WebhookSettings};
use keyward_server::tls::TlsFiles;
use keyward_server::{Application, ServerConfig, StartupError};
use zeroize::Zeroizing;

use super::parse_arg;
use super::settings::{duration_in, duration_setting, ranged, ui_settings};
use crate::cli::{LeakActionArg, RedisFailureMode, ServeArgs, UsageMode};
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
    println!(
        "keyward listening on {}://{}",
        application.scheme(),
        application.address()
    );
    // A closed stdout only loses this line; the server runs on.
    let _ = std::io::stdout().flush();
    tokio::spawn(keyward_server::tls::reload_on_hangup(application.tls()));
    tokio::spawn(keyward_server::leaks::reload_on_hangup(
        application.github_keys(),
    ));
    application
        .run_until(shutdown_signal())
        .await
        .map_err(|error| CliError::failure(format!("the server stopped: {error}")))
}

fn resolve(args: ServeArgs, database_url: String, file: &FileConfig) -> CliResult<ServerConfig> {
    // Flag and environment (clap) over the config file, then defaults and checks below.
    let args = args.over(&file.serve)?;
    let defaults = ServerConfig::default();
    let billing = billing(&args, defaults.billing.clone())?;
    let trusted_proxies = args
        .trusted_proxies
        .iter()
        .map(|cidr| cidr.trim())
        .filter(|cidr| !cidr.is_empty())
        .map(|cidr| parse_arg("--trusted-proxy", cidr, super::keys::parse_cidr))
        .collect::<CliResult<_>>()?;
    let admin_token = admin_token(args.admin_token_file.as_deref())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => {
            return Err(CliError::usage(
                "--tls-cert and --tls-key go together: give both, or neither for plain HTTP",
            ));
        }
    };
    let https_exempt_networks = match args.https_exempt_networks.as_slice() {
        [] => defaults.https_exempt_networks.clone(),
        [none] if none.trim().eq_ignore_ascii_case("none") => Vec::new(),
        networks => networks
            .iter()
            .map(|cidr| cidr.trim())
            .filter(|cidr| !cidr.is_empty())
            .map(|cidr| parse_arg("--https-exempt-network", cidr, super::keys::parse_cidr))
            .collect::<CliResult<_>>()?,
    };
    Ok(ServerConfig {
        listen: args.listen.clone().unwrap_or(defaults.listen),
        database_url,
        database_max_connections: ranged(
            "--database-max-connections",
            args.database_max_connections,
            defaults.database_max_connections,
            1..=1000,
        )?,
        redis_url: args.redis_url.clone().filter(|url| !url.is_empty()),
        redis_failure_mode: match args.redis_failure_mode {
            None | Some(RedisFailureMode::Local) => FailureMode::Local,
            Some(RedisFailureMode::Open) => FailureMode::Open,
            Some(RedisFailureMode::Closed) => FailureMode::Closed,
        },
        admin_token,
        allow_query_key: args.allow_query_key.unwrap_or(defaults.allow_query_key),
        trusted_proxies,
        tls,
        require_https: args.require_https.unwrap_or(defaults.require_https),
        https_exempt_networks,
        failure_limit: args.failure_limit.unwrap_or(defaults.failure_limit),
        failure_window: Duration::from_secs(ranged(
            "--failure-window-seconds",
            args.failure_window_seconds,
            defaults.failure_window.as_secs(),
            1..=86_400,
        )?),
        failure_ipv6_prefix: u8::try_from(ranged(
            "--failure-ipv6-prefix",
            args.failure_ipv6_prefix,
            u32::from(defaults.failure_ipv6_prefix),
            0..=128,
        )?)
        .unwrap_or(defaults.failure_ipv6_prefix),
        self_service_limit: args
            .self_service_limit
            .unwrap_or(defaults.self_service_limit),
        metrics_token: args
            .metrics_token
            .clone()
            .filter(|token| !token.is_empty())
            .map(Zeroizing::new),
        header_read_timeout: duration_setting(
            "--header-read-timeout",
            args.header_read_timeout.as_deref(),
            defaults.header_read_timeout,
        )?,
        body_read_timeout: duration_setting(
            "--body-read-timeout",
            args.body_read_timeout.as_deref(),
            defaults.body_read_timeout,
        )?,
        idle_timeout: duration_setting(
            "--idle-timeout",
            args.idle_timeout.as_deref(),
            defaults.idle_timeout,
        )?,
        max_connections: ranged(
            "--max-connections",
            args.max_connections,
            defaults.max_connections,
            1..=1_000_000,
        )?,
        usage: args
            .usage
            .map_or(defaults.usage, |mode| mode == UsageMode::On),
        usage_retention_days: ranged(
            "--usage-retention-days",
            args.usage_retention_days,
            defaults.usage_retention_days,
            1..=3650,
        )?,
        usage_flush_interval: duration_in(
            "--usage-flush-interval",
            args.usage_flush_interval.as_deref(),
            defaults.usage_flush_interval,
            (Duration::from_millis(50), Duration::from_secs(60)),
            "between 50ms and 60s",
        )?,
        key_cache_mb: ranged(
            "--key-cache-mb",
            args.key_cache_mb,
            defaults.key_cache_mb,
            1..=1_048_576,
        )?,
        billing,
        webhooks: webhook_settings(&args, &defaults.webhooks)?,
        ui: ui_settings(&args, &defaults.ui)?,
        github_public_keys: args.github_public_keys.clone(),
        leak_action: match args.leak_action {
            None | Some(LeakActionArg::Revoke) => keyward_store::LeakAction::Revoke,
            Some(LeakActionArg::Disable) => keyward_store::LeakAction::Disable,
            Some(LeakActionArg::Notify) => keyward_store::LeakAction::Notify,
        },
    })
}

/// Event webhooks: the retry scale, how long events are kept, the denied networks.
fn webhook_settings(
    args: &ServeArgs,
    defaults: &keyward_server::webhooks::WebhookSettings,
) -> CliResult<keyward_server::webhooks::WebhookSettings> {
    let retry_scale = match args.webhook_retry_scale {
        None => defaults.retry_scale,
        Some(scale) if scale.is_finite() && (0.0001..=1000.0).contains(&scale) => scale,
        Some(_) => {
            return Err(CliError::usage(
                "--webhook-retry-scale must be between 0.0001 and 1000",
            ));
        }
    };
    let deny_networks = match args.webhook_deny_networks.as_slice() {
        [] => defaults.deny_networks.clone(),
        [none] if none.trim().eq_ignore_ascii_case("none") => Vec::new(),
        networks => networks
            .iter()
            .map(|cidr| cidr.trim())
            .filter(|cidr| !cidr.is_empty())
            .map(|cidr| parse_arg("--webhook-deny-network", cidr, super::keys::parse_cidr))
            .collect::<CliResult<_>>()?,
    };
    Ok(keyward_server::webhooks::WebhookSettings {
        retry_scale,
        retention_days: ranged(
            "--webhook-retention-days",
            args.webhook_retention_days,
            defaults.retention_days,
            1..=3650,
        )?,
        deny_networks,
        expiry_notice: std::time::Duration::from_secs(
            u64::from(ranged(
                "--expiry-notice-days",
                args.expiry_notice_days,
                u32::try_from(defaults.expiry_notice.as_secs() / 86_400).unwrap_or(7),
                1..=3650,
            )?) * 86_400,
        ),
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
fn billing(args: &ServeArgs, defaults: BillingSettings) -> CliResult<BillingSettings> {
    let pick = |value: &Option<String>| value.clone().filter(|value| !value.is_empty());
    let webhook = match (
        pick(&args.billing_webhook_url),
        pick(&args.billing_webhook_secret),
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
    let stripe = pick(&args.stripe_secret_key).map(|key| StripeSettings {
        base_url: pick(&args.stripe_base_url)
            .unwrap_or_else(|| "https://api.stripe.com".to_owned()),
        secret_key: Zeroizing::new(key),
        event_name: pick(&args.stripe_event_name).unwrap_or_else(|| "api_requests".to_owned()),
    });
    Ok(BillingSettings {
        webhook,
        stripe,
        max_attempts: ranged(
            "--billing-max-attempts",
            args.billing_max_attempts,
            defaults.max_attempts,
            1..=100,
        )?,
        retry_base: Duration::from_millis(ranged(
            "--billing-retry-base-ms",
            args.billing_retry_base_ms,
            u64::try_from(defaults.retry_base.as_millis()).unwrap_or(1000),
            1..=3_600_000,
        )?),
        meter_delay: Duration::from_secs(ranged(
            "--billing-meter-delay-seconds",
            args.billing_meter_delay_seconds,
            defaults.meter_delay.as_secs(),
            0..=86_400,
        )?),
        recheck_every: Duration::from_secs(ranged(
            "--billing-recheck-seconds",
            args.billing_recheck_seconds,
            defaults.recheck_every.as_secs(),
            1..=86_400,
        )?),
        lease: Duration::from_secs(ranged(
            "--billing-lease-seconds",
            args.billing_lease_seconds,
            defaults.lease.as_secs(),
            15..=3_600,
        )?),
    })
}

/// Runs `serve`'s checks of every setting on a config file alone, as a start with no flags
/// would (the admin token file is not read: it holds a secret of the host; a billing
/// webhook's secret is taken as given by the environment, where the example file says it
/// comes from).
#[cfg(test)]
pub fn check_file(file: &FileConfig) -> CliResult {
    let mut serve: ServeArgs = serde_json::from_value(
        serde_json::to_value(&file.serve).map_err(|e| CliError::failure(e.to_string()))?,
    )
    .map_err(|e| CliError::failure(e.to_string()))?;
    serve.admin_token_file = None;
    if serve.billing_webhook_url.is_some() && serve.billing_webhook_secret.is_none() {
        serve.billing_webhook_secret = Some("as-if-from-KEYWARD_BILLING_WEBHOOK_SECRET".into());
    }
    let file = FileConfig {
        database_url: file.database_url.clone(),
        serve,
    };
    let url = crate::config::database_url(None, &file);
    resolve(ServeArgs::default(), url, &file).map(drop)
}
