//! Billing providers. A background task, running when a sink
//! is configured:
//!
//! 1. meters every closed hour: per user, hour and plan, the admitted units of `live`
//!    keys become a `usage.metered` event in the outbox, with an id derived from (user,
//!    hour, plan) — every node derives the same id, so the event exists once; units that
//!    reach the database later (within 24 h) follow as further events (`…_r2`, …) carrying
//!    the difference;
//! 2. delivers outbox events to each sink: a generic webhook (JSON, `Keyward-Signature`
//!    HMAC-SHA256) and Stripe Billing meter events (`identifier` = the event id, so Stripe
//!    drops a repeat). Failures are retried with exponential backoff and jitter; after
//!    `max_attempts` the delivery is dead-lettered (`keyward billing outbox`, `/metrics`).
//!
//! `plan.changed` events are written by the store in the transaction that changes the plan.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_store::Store;
use tokio::sync::watch;
use zeroize::Zeroizing;

mod deliver;
mod meter;

pub use deliver::signature;
use deliver::{deliver_due, sink_since};
use meter::meter;
pub use meter::metered_event_id;

/// Where and how to deliver.
#[derive(Clone, Default)]
pub struct BillingSettings {
    pub webhook: Option<WebhookSettings>,
    pub stripe: Option<StripeSettings>,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles (with jitter), up to 5 minutes.
    pub retry_base: Duration,
    /// How long after an hour ends it is metered (nodes write usage every `--usage-flush-interval`, 200 ms by default).
    pub meter_delay: Duration,
    /// How often the last 24 metered hours are looked at again for late usage.
    pub recheck_every: Duration,
    /// How long a node's claim on a delivery keeps other nodes from sending it: a node
    /// that dies after sending and before recording leaves it to another node after this.
    pub lease: Duration,
}

#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: Zeroizing<String>,
}

#[derive(Clone)]
pub struct StripeSettings {
    pub base_url: String,
    pub secret_key: Zeroizing<String>,
    pub event_name: String,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("base_url", &self.base_url)
            .field("secret_key", &"[REDACTED]")
            .field("event_name", &self.event_name)
            .finish()
    }
}

impl std::fmt::Debug for BillingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingSettings")
            .field("webhook", &self.webhook)
            .field("stripe", &self.stripe)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("meter_delay", &self.meter_delay)
            .field("recheck_every", &self.recheck_every)
            .field("lease", &self.lease)
            .finish()
    }
}

impl BillingSettings {
    pub fn is_enabled(&self) -> bool {
        self.webhook.is_some() || self.stripe.is_some()
    }
}

const METERED_THROUGH: &str = "billing.metered_through";
/// How far back the first run meters (usage older than this is not sent).
const FIRST_RUN_LOOKBACK_HOURS: i64 = 48;
/// Hours looked at again for late usage.
const RECHECK_HOURS: i64 = 24;
/// The longest a sink's answer is awaited.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest lease: longer than one delivery's timeout.
pub const MIN_LEASE: Duration = Duration::from_secs(15);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Starts the metering and delivery task; it stops when `stopped` changes.
pub fn spawn(
    store: Arc<dyn Store>,
    settings: BillingSettings,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the HTTP client for billing sinks");
                return;
            }
        };
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each sink was first configured (read before anything is metered, so the
        // first hours metered now go to it): older events are not sent to it.
        let mut since: Vec<(Sink, Option<DateTime<Utc>>)> = sinks(&settings)
            .into_iter()
            .map(|sink| (sink, None))
            .collect();
        // Every outcome of every configured sink is on /metrics from the start, at 0.
        for (sink, _) in &since {
            for result in deliver::RESULTS {
                metrics::counter!("keyward_billing_deliveries_total", "sink" => sink.name(), "result" => result)
                    .increment(0);
            }
        }
        let mut last_recheck: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    for (sink, start) in &mut since {
                        if start.is_none() {
                            match sink_since(&*store, *sink, Utc::now()).await {
                                Ok(at) => *start = Some(at),
                                Err(error) => tracing::warn!(%error, "cannot read the billing sink's start; will retry"),
                            }
                        }
                    }
                    if since.iter().any(|(_, start)| start.is_none()) {
                        continue;
                    }
                    let recheck = last_recheck.is_none_or(|at| at.elapsed() >= settings.recheck_every);
                    match meter(&*store, &settings, Utc::now(), recheck).await {
                        Ok(()) if recheck => last_recheck = Some(tokio::time::Instant::now()),
                        Ok(()) => {}
                        Err(error) => tracing::warn!(%error, "cannot meter usage for billing; will retry"),
                    }
                    for (sink, start) in &since {
                        let Some(start) = *start else { continue };
                        if let Err(error) = deliver_due(&*store, &client, &settings, *sink, start).await {
                            tracing::warn!(%error, sink = sink.name(), "billing deliveries failed; will retry");
                        }
                    }
                }
                _ = stopped.changed() => return,
            }
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Sink {
    Webhook,
    Stripe,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Stripe => "stripe",
        }
    }
}

fn sinks(settings: &BillingSettings) -> Vec<Sink> {
    let mut sinks = Vec::new();
    if settings.webhook.is_some() {
        sinks.push(Sink::Webhook);
    }
    if settings.stripe.is_some() {
        sinks.push(Sink::Stripe);
    }
    sinks
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use keyward_core::UserId;

    use super::deliver::retry_delay;
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'secret',b'1700000000.{}',hashlib.sha256).hexdigest())"
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_five_minutes() {
        let base = Duration::from_secs(1);
        for attempt in 1..=12 {
            let delay = retry_delay(base, attempt).to_std().unwrap();
            let full = base
                .saturating_mul(2u32.pow(attempt - 1))
                .min(MAX_RETRY_DELAY);
            assert!(delay <= full && delay >= full / 2, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn metered_event_ids_are_stable_and_distinct() {
        let user = UserId::parse("alice").unwrap();
        let hour = Utc.with_ymd_and_hms(2026, 11, 22, 13, 0, 0).unwrap();
        let id = metered_event_id(&user, hour, "pro");
        assert_eq!(id, metered_event_id(&user, hour, "pro"));
        assert_ne!(id, metered_event_id(&user, hour, "free"));
        assert_ne!(
            id,
            metered_event_id(&user, hour + chrono::Duration::hours(1), "pro")
        );
        assert!(id.starts_with("um_") && id.len() == 35);
    }
}
