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

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use keyward_core::{Environment, UserId};
use keyward_store::{
    BillingEvent, Delivery, DeliveryOutcome, MeteredHour, Store, StoreError, UsageFilter,
    UsageGroup,
};
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use zeroize::Zeroizing;

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

fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(at.timestamp().div_euclid(3600) * 3600, 0)
        .single()
        .unwrap_or(at)
}

/// The stable id of a user's metered usage in one hour on one plan.
pub fn metered_event_id(user_id: &UserId, hour: DateTime<Utc>, plan: &str) -> String {
    let digest = Sha256::new()
        .chain_update(user_id.as_str())
        .chain_update([0])
        .chain_update(hour.timestamp().to_be_bytes())
        .chain_update([0])
        .chain_update(plan)
        .finalize();
    format!("um_{}", &hex::encode(digest)[..32])
}

/// A `usage.metered` event for `units` of one user, hour and plan; revision 1 carries the
/// hour's units when it is first metered, later revisions what arrived since.
fn metered_event(
    user_id: &UserId,
    hour: DateTime<Utc>,
    plan: &str,
    units: u64,
    revision: u32,
    now: DateTime<Utc>,
) -> BillingEvent {
    let base = metered_event_id(user_id, hour, plan);
    let id = if revision <= 1 {
        base
    } else {
        format!("{base}_r{revision}")
    };
    BillingEvent {
        payload: json!({
            "type": "usage.metered",
            "id": id,
            "user_id": user_id,
            "period_start": keyward_core::time::format(&hour),
            "period_end": keyward_core::time::format(&(hour + chrono::Duration::hours(1))),
            "units": units,
            "plan": plan,
        }),
        id,
        kind: "usage.metered".to_owned(),
        user_id: user_id.clone(),
        created_at: now,
    }
}

/// Meters every hour in `[from, to)`: for each user and plan whose `live` units exceed
/// what was metered so far, one event with the difference (the first one with all of it).
async fn meter_hours(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let filter = UsageFilter {
        environment: Some(Environment::Live),
        ..UsageFilter::between(from, to)
    };
    let metered: std::collections::HashMap<(String, DateTime<Utc>, String), (u64, u32)> = store
        .metered_hours(from, to)
        .await?
        .into_iter()
        .map(|m| {
            (
                (m.user_id.to_string(), m.hour, m.plan),
                (m.units, m.revisions),
            )
        })
        .collect();
    for total in store
        .usage_totals(&filter, UsageGroup::HourUserPlan)
        .await?
    {
        let [hour, user, plan] = total.group.as_slice() else {
            continue;
        };
        let (Ok(hour), Ok(user_id)) = (keyward_core::time::parse(hour), UserId::parse(user)) else {
            continue;
        };
        let (sent, revisions) = metered
            .get(&(user.clone(), hour, plan.clone()))
            .copied()
            .unwrap_or((0, 0));
        if total.units <= sent {
            continue;
        }
        let revision = revisions + 1;
        let event = metered_event(&user_id, hour, plan, total.units - sent, revision, now);
        let row = MeteredHour {
            user_id,
            hour,
            plan: plan.clone(),
            units: total.units,
            revisions: revision,
        };
        // Another node may have metered it a moment ago: then this changes nothing and the
        // next pass compares against what that node recorded.
        store.record_metering(&row, revisions, &event).await?;
    }
    Ok(())
}

/// Meters every hour that closed (plus the meter delay) since the last run; with
/// `recheck`, also looks again at the 24 hours before, for usage that reached the
/// database late.
async fn meter(
    store: &dyn Store,
    settings: &BillingSettings,
    now: DateTime<Utc>,
    recheck: bool,
) -> Result<(), StoreError> {
    let first = hour_start(now) - chrono::Duration::hours(FIRST_RUN_LOOKBACK_HOURS);
    let stored = store.get_setting(METERED_THROUGH).await?;
    let mut through = stored
        .as_deref()
        .and_then(|raw| keyward_core::time::parse(raw).ok())
        .unwrap_or(first);
    // Nothing was metered before the first run: there is nothing to look at again.
    if recheck && stored.is_some() {
        meter_hours(
            store,
            through - chrono::Duration::hours(RECHECK_HOURS),
            through,
            now,
        )
        .await?;
    }
    let delay = chrono::Duration::from_std(settings.meter_delay).unwrap_or_default();
    while through + chrono::Duration::hours(1) + delay <= now {
        let end = through + chrono::Duration::hours(1);
        meter_hours(store, through, end, now).await?;
        through = end;
        store
            .put_setting(METERED_THROUGH, &keyward_core::time::format(&through))
            .await?;
    }
    Ok(())
}

/// When a sink was first configured: events older than that are not sent to it.
async fn sink_since(
    store: &dyn Store,
    sink: Sink,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    let name = format!("billing.sink.{}.since", sink.name());
    store
        .insert_setting_if_absent(&name, &keyward_core::time::format(&now))
        .await?;
    let raw = store.get_setting(&name).await?.unwrap_or_default();
    Ok(keyward_core::time::parse(&raw).unwrap_or(now))
}

async fn deliver_due(
    store: &dyn Store,
    client: &reqwest::Client,
    settings: &BillingSettings,
    sink: Sink,
    since: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let lease = settings.lease.max(MIN_LEASE);
    let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    let due = store
        .claim_deliveries(sink.name(), since, now, lease_until, 100)
        .await?;
    let timeout = chrono::Duration::from_std(DELIVERY_TIMEOUT).unwrap_or_default();
    for delivery in due {
        // One that might still be in flight when the claim runs out is left for the next
        // claim (after the lease), so no other node can send it at the same time.
        if Utc::now() + timeout >= lease_until {
            break;
        }
        let result = send(store, client, settings, sink, &delivery).await;
        let outcome = match result {
            Sent::Delivered => DeliveryOutcome::Delivered,
            Sent::Skipped(why) => DeliveryOutcome::Skipped(why),
            Sent::Failed(error) => {
                let attempt = delivery.attempts + 1;
                if attempt >= settings.max_attempts.max(1) {
                    tracing::error!(event = %delivery.event.id, sink = sink.name(), %error,
                        attempts = attempt, "billing delivery dead-lettered");
                    DeliveryOutcome::Dead(error)
                } else {
                    DeliveryOutcome::Retry {
                        at: Utc::now() + retry_delay(settings.retry_base, attempt),
                        error,
                    }
                }
            }
        };
        let result = match &outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Skipped(_) => "skipped",
            DeliveryOutcome::Retry { .. } => "failed",
            DeliveryOutcome::Dead(_) => "dead",
        };
        metrics::counter!("keyward_billing_deliveries_total", "sink" => sink.name(), "result" => result)
            .increment(1);
        store
            .finish_delivery(&delivery.event.id, sink.name(), &outcome, Utc::now())
            .await?;
    }
    Ok(())
}

/// `base · 2^(attempt−1)`, at most 5 minutes, times a random factor in [0.5, 1].
fn retry_delay(base: Duration, attempt: u32) -> chrono::Duration {
    let exponential = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_RETRY_DELAY);
    let jitter = rand::rng().random_range(0.5..=1.0);
    chrono::Duration::from_std(exponential.mul_f64(jitter)).unwrap_or_default()
}

enum Sent {
    Delivered,
    Skipped(String),
    Failed(String),
}

async fn send(
    store: &dyn Store,
    client: &reqwest::Client,
    settings: &BillingSettings,
    sink: Sink,
    delivery: &Delivery,
) -> Sent {
    match sink {
        Sink::Webhook => match &settings.webhook {
            Some(webhook) => send_webhook(client, webhook, &delivery.event).await,
            None => Sent::Skipped("webhook not configured".to_owned()),
        },
        Sink::Stripe => match &settings.stripe {
            Some(stripe) => send_stripe(store, client, stripe, &delivery.event).await,
            None => Sent::Skipped("Stripe not configured".to_owned()),
        },
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

async fn outcome_of(response: Result<reqwest::Response, reqwest::Error>) -> Sent {
    match response {
        Ok(response) if response.status().is_success() => Sent::Delivered,
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            Sent::Failed(format!("answered {status}: {body}"))
        }
        Err(error) => Sent::Failed(error.without_url().to_string()),
    }
}

async fn send_webhook(
    client: &reqwest::Client,
    webhook: &WebhookSettings,
    event: &BillingEvent,
) -> Sent {
    let body = event.payload.to_string();
    let signature = signature(&webhook.secret, Utc::now().timestamp(), body.as_bytes());
    outcome_of(
        client
            .post(&webhook.url)
            .header("Content-Type", "application/json")
            .header("Keyward-Signature", signature)
            .header("Keyward-Event-Id", &event.id)
            .body(body)
            .send()
            .await,
    )
    .await
}

async fn send_stripe(
    store: &dyn Store,
    client: &reqwest::Client,
    stripe: &StripeSettings,
    event: &BillingEvent,
) -> Sent {
    if event.kind != "usage.metered" {
        return Sent::Skipped("Stripe receives meter events only".to_owned());
    }
    let customer = match store.get_user(&event.user_id).await {
        Ok(user) => user
            .metadata
            .get("stripe_customer_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        Err(error) => return Sent::Failed(format!("cannot read the user: {error}")),
    };
    let Some(customer) = customer else {
        return Sent::Skipped("the user has no metadata.stripe_customer_id".to_owned());
    };
    let units = event.payload["units"].as_u64().unwrap_or(0).to_string();
    let timestamp = event.payload["period_start"]
        .as_str()
        .and_then(|raw| keyward_core::time::parse(raw).ok())
        .map_or_else(|| Utc::now().timestamp(), |at| at.timestamp())
        .to_string();
    let form = [
        ("event_name", stripe.event_name.as_str()),
        ("payload[stripe_customer_id]", customer.as_str()),
        ("payload[value]", units.as_str()),
        ("timestamp", timestamp.as_str()),
        ("identifier", event.id.as_str()),
    ];
    let url = format!(
        "{}/v1/billing/meter_events",
        stripe.base_url.trim_end_matches('/')
    );
    outcome_of(
        client
            .post(url)
            .bearer_auth(stripe.secret_key.as_str())
            .form(&form)
            .send()
            .await,
    )
    .await
}

#[cfg(test)]
mod tests {
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
