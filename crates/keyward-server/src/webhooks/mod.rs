//! Event webhooks: endpoints registered through the API receive the events of the changes
//! they subscribe to, signed per the Standard Webhooks specification. Events are raised by
//! the store inside the transaction of the change they describe (a transactional outbox);
//! every node runs [`spawn`], which claims due deliveries with a lease (so each delivery
//! is attempted by one node at a time), posts them, and records the outcome.

pub mod deliver;
pub mod sign;

use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::views::KeyObject;

/// The event types an endpoint may subscribe to (or `*` for all).
pub const EVENT_TYPES: [&str; 10] = [
    "key.created",
    "key.updated",
    "key.revoked",
    "key.rotated",
    "key.expiring",
    "key.expired",
    "key.leaked",
    "user.plan_changed",
    "quota.threshold",
    "usage.metered",
];

/// The wait after each failed attempt (then the delivery is dead), before scaling.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// An endpoint failing every attempt for this long (before scaling) is disabled.
pub const FAILING_FOR: Duration = Duration::from_secs(5 * 86_400);

/// How long the previous secret keeps signing after a rotation.
pub const SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Multiplies every retry interval and the 5-day rule (1 in production).
    pub retry_scale: f64,
    /// Days events are kept for replays.
    pub retention_days: u32,
    /// Addresses deliveries may never go to (checked at creation and on each attempt).
    pub deny_networks: Vec<IpNet>,
    /// `key.expiring` fires this long before a key's expiry.
    pub expiry_notice: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_scale: 1.0,
            retention_days: 30,
            // Cloud metadata services and "this host" addresses.
            deny_networks: [
                "169.254.0.0/16",
                "fe80::/10",
                "0.0.0.0/8",
                "100.100.100.200/32",
                "fd00:ec2::254/128",
            ]
            .iter()
            .map(|net| net.parse().expect("a network")) // ok: constant networks, parsed in a unit test too
            .collect(),
            expiry_notice: Duration::from_secs(7 * 86_400),
        }
    }
}

impl WebhookSettings {
    pub fn scaled(&self, interval: Duration) -> chrono::Duration {
        chrono::Duration::from_std(interval.mul_f64(self.retry_scale.max(0.0)))
            .unwrap_or(chrono::Duration::MAX)
    }
}

/// An endpoint URL as given: absolute `http`/`https` with a host, at most 2048 characters,
/// and not in a denied network when the host is an address. A name is checked on the
/// address it resolves to at each delivery (names change, and resolving here could stall).
pub fn check_url(settings: &WebhookSettings, raw: &str) -> Result<String, String> {
    const WHAT: &str = "must be an absolute http or https URL of at most 2048 characters";
    let url = reqwest::Url::parse(raw).map_err(|_| WHAT.to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || raw.len() > 2048 {
        return Err(WHAT.to_owned());
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>()
        && is_denied(settings, ip)
    {
        return Err(format!("{ip} is in a network webhooks may not reach"));
    }
    Ok(url.to_string())
}

/// Whether an address is in a denied network, an IPv4 address written as IPv6
/// (`::ffff:a.b.c.d`) judged as the IPv4 address it is.
pub fn is_denied(settings: &WebhookSettings, ip: std::net::IpAddr) -> bool {
    let ip = ip.to_canonical();
    settings.deny_networks.iter().any(|net| net.contains(&ip))
}

/// The most of an answer's body an attempt reads (and the deliveries log keeps).
pub const MAX_ANSWER_BYTES: usize = keyward_store::MAX_RESPONSE_BODY;

/// Event types as given: at least one, each known (or `*`), duplicates dropped.
pub fn check_events(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() || events.len() > EVENT_TYPES.len() + 1 {
        return Err("name at least one event type, or [\"*\"]".to_owned());
    }
    let mut checked: Vec<String> = Vec::new();
    for event in events {
        if event != "*" && !EVENT_TYPES.contains(&event.as_str()) {
            return Err(format!(
                "`{event}` is not an event type; use * or one of {}",
                EVENT_TYPES.join(", ")
            ));
        }
        if !checked.contains(event) {
            checked.push(event.clone());
        }
    }
    Ok(checked)
}

/// The `data` of an event, from the records the store kept with it: key records become
/// key objects as they stood when the event was raised.
pub fn render_data(kind: &str, subject: &Value, raised_at: DateTime<Utc>) -> Value {
    let key = |value: &Value| -> Value {
        match serde_json::from_value::<keyward_store::KeyRecord>(value.clone()) {
            Ok(record) => {
                serde_json::to_value(KeyObject::of(&record, raised_at)).unwrap_or(Value::Null)
            }
            Err(_) => value.clone(),
        }
    };
    match kind {
        "key.rotated" => json!({"key": key(&subject["key"]), "old_key": key(&subject["old_key"])}),
        "key.leaked" => {
            let mut data = subject.clone();
            data["key"] = key(&subject["key"]);
            data
        }
        _ if kind.starts_with("key.") => key(&subject["key"]),
        _ => subject.clone(),
    }
}

/// The body of every delivery of an event: `{type, timestamp, data}`.
pub fn payload(kind: &str, subject: &Value, raised_at: DateTime<Utc>) -> Value {
    json!({
        "type": kind,
        "timestamp": keyward_core::time::format(&raised_at),
        "data": render_data(kind, subject, raised_at),
    })
}

pub use deliver::spawn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_networks_catch_ipv4_written_as_ipv6_and_urls_naming_them() {
        let settings = WebhookSettings::default();
        for denied in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "0.0.0.0",
        ] {
            assert!(is_denied(&settings, denied.parse().unwrap()), "{denied}");
        }
        assert!(!is_denied(&settings, "127.0.0.1".parse().unwrap()));
        for url in [
            "http://[::ffff:169.254.169.254]/latest",
            "http://169.254.169.254/",
            "http://2852039166/",
        ] {
            assert!(check_url(&settings, url).is_err(), "{url}");
        }
        assert!(check_url(&settings, "https://hooks.example/x").is_ok());
    }
}
