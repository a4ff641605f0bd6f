//! The server's settings, already resolved (flag > env > file > default) by the binary.

use std::time::Duration;

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use zeroize::Zeroizing;

/// Everything `keyward serve` needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    pub database_url: String,
    /// Most connections to PostgreSQL per node.
    pub database_max_connections: u32,
    /// Shared rate-limit state for many nodes; `None` keeps limits in process.
    pub redis_url: Option<String>,
    pub redis_failure_mode: keyward_limiter::FailureMode,
    /// From `KEYWARD_ADMIN_TOKEN`; else one is generated on first start.
    pub admin_token: Option<Zeroizing<String>>,
    pub allow_query_key: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// Serve HTTPS with this certificate and key (plain HTTP when `None`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Refuse credentials sent over plain HTTP by clients outside `https_exempt_networks`.
    pub require_https: bool,
    /// Clients that may send credentials over plain HTTP (loopback by default).
    pub https_exempt_networks: Vec<IpNet>,
    /// Failed checks per client address per window (0 = off).
    pub failure_limit: u32,
    /// The brute-force guard's window (a minute; shorter in tests).
    pub failure_window: Duration,
    /// IPv6 clients are counted per network of this many leading bits.
    pub failure_ipv6_prefix: u8,
    /// Management calls made with a user's key, per user per minute (0 = off).
    pub self_service_limit: u32,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<Zeroizing<String>>,
    /// Connection bounds: headers, body, idle keep-alive, connections at once.
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
    /// Usage analytics (`--usage on|off`); key counters and quotas are kept either way.
    pub usage: bool,
    pub usage_retention_days: u32,
    /// How often usage is written: also the most of its recent admissions a node loses
    /// when killed without a chance to flush (SIGKILL, power loss).
    pub usage_flush_interval: Duration,
    /// Most memory the in-process key cache takes, in MiB (keys are weighed by their size,
    /// so keys with large metadata count for more).
    pub key_cache_mb: u64,
    /// Billing sinks (none by default).
    pub billing: crate::billing::BillingSettings,
    /// GitHub's secret-scanning public keys (the document it publishes, saved as a file);
    /// `POST /v1/secret-scanning/github` answers 404 without it.
    pub github_public_keys: Option<std::path::PathBuf>,
    /// What a leak report does to an active or disabled user key it names.
    pub leak_action: keyward_store::LeakAction,
    /// Event webhooks: retries, retention, denied networks.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// The dashboard's and the portal's sessions and links.
    pub ui: UiSettings,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_failure_mode", &self.redis_failure_mode)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("allow_query_key", &self.allow_query_key)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("tls", &self.tls)
            .field("require_https", &self.require_https)
            .field("https_exempt_networks", &self.https_exempt_networks)
            .field("failure_limit", &self.failure_limit)
            .field("failure_window", &self.failure_window)
            .field("failure_ipv6_prefix", &self.failure_ipv6_prefix)
            .field("self_service_limit", &self.self_service_limit)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("usage", &self.usage)
            .field("usage_retention_days", &self.usage_retention_days)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("key_cache_mb", &self.key_cache_mb)
            .field("billing", &self.billing)
            .field("github_public_keys", &self.github_public_keys)
            .field("leak_action", &self.leak_action)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            database_url: "sqlite://keyward.db".to_owned(),
            database_max_connections: keyward_store::PostgresOptions::default().max_connections,
            redis_url: None,
            redis_failure_mode: keyward_limiter::FailureMode::Local,
            admin_token: None,
            allow_query_key: false,
            trusted_proxies: Vec::new(),
            tls: None,
            require_https: true,
            https_exempt_networks: LOOPBACK.to_vec(),
            failure_limit: 100,
            failure_window: Duration::from_secs(60),
            failure_ipv6_prefix: 64,
            self_service_limit: 60,
            metrics_token: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            usage: true,
            usage_retention_days: 30,
            usage_flush_interval: crate::usage::DEFAULT_FLUSH_INTERVAL,
            key_cache_mb: 512,
            billing: crate::billing::BillingSettings {
                max_attempts: 8,
                retry_base: Duration::from_secs(1),
                meter_delay: Duration::from_secs(300),
                recheck_every: Duration::from_secs(60),
                lease: Duration::from_secs(60),
                ..crate::billing::BillingSettings::default()
            },
            github_public_keys: None,
            leak_action: keyward_store::LeakAction::Revoke,
            webhooks: crate::webhooks::WebhookSettings::default(),
            ui: UiSettings::default(),
        }
    }
}

/// A URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://kw:s3cret@db:5432/kw"),
            "postgres://kw:***@db:5432/kw"
        );
        assert_eq!(redact_url("sqlite://keyward.db"), "sqlite://keyward.db");
        let config = ServerConfig {
            admin_token: Some(Zeroizing::new("x".repeat(40))),
            database_url: "postgres://kw:s3cret@db/kw".into(),
            ..ServerConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret") && !debug.contains(&"x".repeat(40)));
    }
}

/// The dashboard's and the portal's sessions and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSettings {
    /// A dashboard session ends after this long without a request.
    pub session_idle: Duration,
    /// A dashboard session ends this long after sign-in, however active.
    pub session_max: Duration,
    /// How long a portal link can be used (once).
    pub portal_link_ttl: Duration,
    /// Where customers reach keyward (`https://keys.example.com`, no trailing slash);
    /// `None`: the scheme and `Host` of the request that makes the link.
    pub public_url: Option<String>,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            portal_link_ttl: Duration::from_secs(15 * 60),
            public_url: None,
        }
    }
}

impl UiSettings {
    /// Checks a public URL: `http` or `https`, a host, no query or fragment. Returned
    /// without a trailing slash.
    pub fn public_url(raw: &str) -> Result<String, &'static str> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| "is not a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with http:// or https://");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("has no host");
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err("must not carry a query, a fragment or a user name");
        }
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }
}

/// The networks exempt by default: loopback (`127.0.0.0/8`, `::1/128`).
pub const LOOPBACK: [IpNet; 2] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
];
