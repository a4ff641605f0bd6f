//! Delivery: outbox events claimed under a lease and sent to each sink (a signed webhook,
//! Stripe meter events), retried with backoff and jitter, dead-lettered at the end.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use keyward_store::{BillingEvent, Delivery, DeliveryOutcome, Store, StoreError};
use rand::Rng;
use sha2::Sha256;

use super::{
    BillingSettings, DELIVERY_TIMEOUT, MAX_RETRY_DELAY, MIN_LEASE, Sink, StripeSettings,
    WebhookSettings,
};

/// When a sink was first configured: events older than that are not sent to it.
pub(super) async fn sink_since(
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

pub(super) async fn deliver_due(
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

/// The `result` label values of `keyward_billing_deliveries_total`.
pub(super) const RESULTS: [&str; 4] = ["delivered", "skipped", "failed", "dead"];

/// `base · 2^(attempt−1)`, at most 5 minutes, times a random factor in [0.5, 1].
pub(super) fn retry_delay(base: Duration, attempt: u32) -> chrono::Duration {
    let exponential = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_RETRY_DELAY);
    let jitter = rand::rng().random_range(0.5..=1.0);
    chrono::Duration::from_std(exponential.mul_f64(jitter)).unwrap_or_default()
}

pub(super) enum Sent {
    Delivered,
    Skipped(String),
    Failed(String),
}

pub(super) async fn send(
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

pub(super) async fn outcome_of(response: Result<reqwest::Response, reqwest::Error>) -> Sent {
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

pub(super) async fn send_webhook(
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

pub(super) async fn send_stripe(
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
