//! `keyward serve`'s settings: each is a flag, a `KEYWARD_` environment variable and a
//! configuration-file key, with its default and range stated once.

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakActionArg {
    Revoke,
    Disable,
    Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageMode {
    On,
    Off,
}

/// Every setting of `serve`, in one place: each field is a flag (with its `KEYWARD_`
/// environment variable, through clap) and a config-file key of the same name (through
/// serde). All are optional here: flag > environment > config file, then the defaults and
/// range checks of `keyward serve`. Adding a setting is adding a field here and using it.
#[derive(Debug, Default, Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Address to listen on (`host:port`; port 0 picks a free port). Default 127.0.0.1:8080.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_LISTEN",
        value_name = "ADDR"
    )]
    pub listen: Option<String>,
    /// Redis for rate limits shared by every node (`redis://host:port`, or
    /// `redis+cluster://host1:port1,host2:port2` for a Redis Cluster). Default: in process.
    #[arg(
        long,
        env = "KEYWARD_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Most connections to PostgreSQL (1–1000; ignored for SQLite). Default 16.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_DATABASE_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub database_max_connections: Option<u32>,
    /// When Redis fails: fall back to per-node limits (`local`), admit (`open`) or answer
    /// 503 (`closed`). Default local.
    #[arg(
        long,
        env = "KEYWARD_REDIS_FAILURE_MODE",
        hide_env_values = true,
        value_enum,
        value_name = "MODE"
    )]
    pub redis_failure_mode: Option<RedisFailureMode>,
    /// Accept the key in the `api_key` query parameter (URLs end up in logs). Default false.
    #[arg(hide_env_values = true, long, env = "KEYWARD_ALLOW_QUERY_KEY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_query_key: Option<bool>,
    /// A proxy whose X-Forwarded-For is trusted (repeatable; env: comma list). Default: none.
    #[arg(
        long = "trusted-proxy",
        env = "KEYWARD_TRUSTED_PROXIES",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Serve HTTPS with this PEM certificate (its chain may follow it); needs --tls-key.
    /// SIGHUP reloads the pair for new connections.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_TLS_CERT",
        value_name = "FILE"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_TLS_KEY",
        value_name = "FILE"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Refuse credentials sent over plain HTTP (403 HTTPS_REQUIRED) unless the client is in
    /// --https-exempt-network. Default true; `--require-https=false` turns it off.
    #[arg(hide_env_values = true, long, env = "KEYWARD_REQUIRE_HTTPS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub require_https: Option<bool>,
    /// Clients allowed to send credentials over plain HTTP (repeatable; env: comma list;
    /// `none` for no one). Default 127.0.0.0/8 and ::1/128.
    #[arg(
        long = "https-exempt-network",
        env = "KEYWARD_HTTPS_EXEMPT_NETWORKS",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    #[serde(default)]
    pub https_exempt_networks: Vec<String>,
    /// Failed checks per client address per minute before it is refused (0 = off). Default 100.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_FAILURE_LIMIT",
        value_name = "N"
    )]
    pub failure_limit: Option<u32>,
    /// Length of the brute-force guard's window in seconds (1–86400). Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_FAILURE_WINDOW_SECONDS",
        value_name = "SECONDS"
    )]
    pub failure_window_seconds: Option<u64>,
    /// IPv6 clients are counted by the brute-force guard per network of this prefix length
    /// (one host usually holds a whole /64). 0–128. Default 64.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_FAILURE_IPV6_PREFIX",
        value_name = "BITS"
    )]
    pub failure_ipv6_prefix: Option<u32>,
    /// Read the admin token from this file (its first line; at least 32 characters). The
    /// token itself is never a flag: set it here or in KEYWARD_ADMIN_TOKEN, not both.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_ADMIN_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Management calls made with a user's key, per user per 60-second window (0 = off).
    /// Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_SELF_SERVICE_LIMIT",
        value_name = "N"
    )]
    pub self_service_limit: Option<u32>,
    /// Put `/metrics` behind `Authorization: Bearer <token>`. Default: open.
    #[arg(
        long,
        env = "KEYWARD_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Time a client has to send a request's headers (e.g. 10s). Default 10s.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_HEADER_READ_TIMEOUT",
        value_name = "DURATION"
    )]
    pub header_read_timeout: Option<String>,
    /// Time a client has to send a request's body before 408 (e.g. 30s). Default 30s.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BODY_READ_TIMEOUT",
        value_name = "DURATION"
    )]
    pub body_read_timeout: Option<String>,
    /// An idle keep-alive connection is closed after this long. Default 60s.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_IDLE_TIMEOUT",
        value_name = "DURATION"
    )]
    pub idle_timeout: Option<String>,
    /// Connections served at once; further ones wait to be accepted. Default 10000.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: Option<u32>,
    /// Usage analytics: hourly rollups and raw events (key counters and quotas are kept
    /// either way). Default on.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_USAGE",
        value_enum,
        value_name = "on|off"
    )]
    pub usage: Option<UsageMode>,
    /// Days raw usage events are kept (1–3650). Default 30.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_USAGE_RETENTION_DAYS",
        value_name = "N"
    )]
    pub usage_retention_days: Option<u32>,
    /// How often each node writes usage (request counts, quota units, analytics), from
    /// 50ms to 60s. A node killed without a chance to flush (SIGKILL, power loss) loses at
    /// most about this much of its latest admissions. Default 200ms.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_USAGE_FLUSH_INTERVAL",
        value_name = "DURATION"
    )]
    pub usage_flush_interval: Option<String>,
    /// Most memory the in-process key cache takes, in MiB (1–1048576). Each key counts
    /// for its size, metadata included, so large keys mean fewer cached keys, never more
    /// memory. Default 512 (about a million keys with little metadata).
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_KEY_CACHE_MB",
        value_name = "MIB"
    )]
    pub key_cache_mb: Option<u64>,
    /// Deliver billing events (JSON, signed) to this URL.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_WEBHOOK_URL",
        value_name = "URL"
    )]
    pub billing_webhook_url: Option<String>,
    /// The HMAC-SHA256 secret of the webhook's `Keyward-Signature`.
    #[arg(
        long,
        env = "KEYWARD_BILLING_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub billing_webhook_secret: Option<String>,
    /// Stripe's API base URL. Default https://api.stripe.com.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_STRIPE_BASE_URL",
        value_name = "URL"
    )]
    pub stripe_base_url: Option<String>,
    /// Send meter events to Stripe Billing with this secret key.
    #[arg(
        long,
        env = "KEYWARD_BILLING_STRIPE_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub stripe_secret_key: Option<String>,
    /// The Stripe meter's event name. Default `api_requests`.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_STRIPE_EVENT_NAME",
        value_name = "NAME"
    )]
    pub stripe_event_name: Option<String>,
    /// Delivery attempts before a billing event is dead-lettered (1–100). Default 8.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_MAX_ATTEMPTS",
        value_name = "N"
    )]
    pub billing_max_attempts: Option<u32>,
    /// The first retry's delay in milliseconds (1–3600000); each further one doubles (with
    /// jitter). Default 1000.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_RETRY_BASE_MS",
        value_name = "MS"
    )]
    pub billing_retry_base_ms: Option<u64>,
    /// Seconds after an hour ends before its usage is metered (0–86400). Default 300.
    #[arg(
        long,
        env = "KEYWARD_BILLING_METER_DELAY_SECONDS",
        hide_env_values = true,
        value_name = "SECONDS"
    )]
    pub billing_meter_delay_seconds: Option<u64>,
    /// Seconds between looks at the last 24 metered hours for late usage (1–86400).
    /// Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_RECHECK_SECONDS",
        value_name = "SECONDS"
    )]
    pub billing_recheck_seconds: Option<u64>,
    /// Seconds a node's claim on a billing delivery keeps other nodes from sending it (a
    /// node that dies mid-delivery leaves it to another after this), 15 to 3600. Default 60.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_BILLING_LEASE_SECONDS",
        value_name = "SECONDS"
    )]
    pub billing_lease_seconds: Option<u64>,
    /// GitHub's secret-scanning public keys: the JSON document GitHub publishes
    /// (`{"public_keys": [...]}`), saved as a file and re-read on SIGHUP. Enables `POST
    /// /v1/secret-scanning/github`. Default: none (the endpoint answers 404).
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_GITHUB_PUBLIC_KEYS",
        value_name = "FILE"
    )]
    pub github_public_keys: Option<std::path::PathBuf>,
    /// What a leak report does to an active or disabled key it names: `revoke`, `disable`,
    /// or `notify` (audit only). Admin keys are always revoked. Default revoke.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_LEAK_ACTION",
        value_enum,
        value_name = "ACTION"
    )]
    pub leak_action: Option<LeakActionArg>,
    /// Multiplies every webhook retry interval (5s, 5m, 30m, 2h, 5h, 10h, 10h) and the
    /// 5 days after which an endpoint failing every attempt is disabled; for tests, e.g.
    /// 0.001 (0.0001–1000). Default 1.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_WEBHOOK_RETRY_SCALE",
        value_name = "F"
    )]
    pub webhook_retry_scale: Option<f64>,
    /// Days webhook events are kept for replays (1–3650). Default 30.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_WEBHOOK_RETENTION_DAYS",
        value_name = "N"
    )]
    pub webhook_retention_days: Option<u32>,
    /// A network webhooks may never be delivered to, checked at creation and on the
    /// resolved address of each attempt (repeatable; env: comma list; `none` for none).
    /// Default 169.254.0.0/16, fe80::/10, 0.0.0.0/8, 100.100.100.200/32 and
    /// fd00:ec2::254/128 (cloud metadata services, "this host").
    #[arg(
        hide_env_values = true,
        long = "webhook-deny-network",
        env = "KEYWARD_WEBHOOK_DENY_NETWORKS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub webhook_deny_networks: Vec<String>,
    /// Days before a key's expiry that `key.expiring` is sent (1–3650). Default 7.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_EXPIRY_NOTICE_DAYS",
        value_name = "N"
    )]
    pub expiry_notice_days: Option<u32>,
    /// A dashboard session ends after this long without a request (1m–24h). Default 30m.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_UI_SESSION_IDLE",
        value_name = "DURATION"
    )]
    pub ui_session_idle: Option<String>,
    /// A dashboard session ends this long after sign-in, however active (1m–7d).
    /// Default 12h.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_UI_SESSION_MAX",
        value_name = "DURATION"
    )]
    pub ui_session_max: Option<String>,
    /// How long a portal link made by `POST /v1/users/{id}/portal-sessions` can be used,
    /// once (1s–7d). Default 15m.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_PORTAL_LINK_TTL",
        value_name = "DURATION"
    )]
    pub portal_link_ttl: Option<String>,
    /// The address customers reach keyward at, such as `https://keys.example.com`: portal
    /// links start with it. Default: the scheme and `Host` of the request making the link.
    #[arg(
        hide_env_values = true,
        long,
        env = "KEYWARD_PUBLIC_URL",
        value_name = "URL"
    )]
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailureMode {
    Local,
    Open,
    Closed,
}

impl ServeArgs {
    /// These settings (from flags and the environment) over `file`'s: each one not given
    /// here is taken from the file.
    pub fn over(self, file: &ServeArgs) -> Result<ServeArgs, crate::error::CliError> {
        let unset = |value: &serde_json::Value| {
            value.is_null() || value.as_array().is_some_and(Vec::is_empty)
        };
        let internal = |error: serde_json::Error| {
            crate::error::CliError::failure(format!("cannot merge the settings: {error}"))
        };
        let mut merged = serde_json::to_value(file).map_err(internal)?;
        let given = serde_json::to_value(self).map_err(internal)?;
        if let (Some(merged), serde_json::Value::Object(given)) = (merged.as_object_mut(), given) {
            for (name, value) in given {
                if !unset(&value) {
                    merged.insert(name, value);
                }
            }
        }
        serde_json::from_value(merged).map_err(internal)
    }
}
