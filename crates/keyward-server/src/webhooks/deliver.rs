//! The delivery task every node runs: claim due deliveries (a lease keeps other nodes off
//! them), post each signed, record the answer, and schedule the next attempt.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keyward_store::{Store, WebhookAttempt, WebhookDelivery, WebhookRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{FAILING_FOR, RETRY_SCHEDULE, WebhookSettings, payload, sign};

/// No answer within this long is a failed attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claim keeps other nodes off a delivery (longer than an attempt can take).
const LEASE: Duration = Duration::from_secs(60);
/// Deliveries claimed at a time.
const BATCH: u32 = 50;

pub fn spawn(
    store: Arc<dyn Store>,
    settings: WebhookSettings,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keyward-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the HTTP client for webhooks");
                return;
            }
        };
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep: Option<tokio::time::Instant> = None;
        let mut last_expiry_look: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(error) = deliver_due(&*store, &client, &settings).await {
                        tracing::warn!(%error, "webhook deliveries failed; will retry");
                    }
                    let look_every = EXPIRY_LOOK_EVERY
                        .mul_f64(settings.retry_scale.min(1.0))
                        .max(Duration::from_millis(250));
                    if last_expiry_look.is_none_or(|at| at.elapsed() >= look_every) {
                        last_expiry_look = Some(tokio::time::Instant::now());
                        if let Err(error) = raise_expiry_notices(&*store, &settings).await {
                            tracing::warn!(%error, "cannot look for expiring keys; will retry");
                        }
                    }
                    if last_sweep.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        last_sweep = Some(tokio::time::Instant::now());
                        sweep(&*store, &settings).await;
                    }
                }
                _ = stopped.changed() => return,
            }
        }
    })
}

/// How often each node looks for keys expiring or expired (found within a minute;
/// `--webhook-retry-scale` below 1 shortens it, down to 250 ms, for tests).
const EXPIRY_LOOK_EVERY: Duration = Duration::from_secs(20);

/// `key.expiring` and `key.expired`, once per key and expiry (the store records them), for
/// moments since this deployment first looked, less a day.
async fn raise_expiry_notices(
    store: &dyn Store,
    settings: &WebhookSettings,
) -> Result<(), keyward_store::StoreError> {
    const FIRST_LOOK: &str = "webhooks.expiry_first_look";
    let now = Utc::now();
    store
        .insert_setting_if_absent(FIRST_LOOK, &keyward_core::time::format(&now))
        .await?;
    let first = store
        .get_setting(FIRST_LOOK)
        .await?
        .and_then(|raw| keyward_core::time::parse(&raw).ok())
        .unwrap_or(now);
    let notice = chrono::Duration::from_std(settings.expiry_notice).unwrap_or_default();
    let since = first - chrono::Duration::days(1);
    while store.raise_expiry_notices(now, notice, since, 500).await? >= 500 {}
    Ok(())
}

/// Disables endpoints failing for 5 days (scaled) and drops events past retention.
async fn sweep(store: &dyn Store, settings: &WebhookSettings) {
    let now = Utc::now();
    match store
        .disable_failing_webhooks(now - settings.scaled(FAILING_FOR))
        .await
    {
        Ok(0) => {}
        Ok(count) => tracing::warn!(
            count,
            "webhook endpoints disabled after failing every attempt"
        ),
        Err(error) => tracing::warn!(%error, "cannot check failing webhook endpoints"),
    }
    let before = now - chrono::Duration::days(i64::from(settings.retention_days));
    if let Err(error) = store.prune_webhook_events(before).await {
        tracing::warn!(%error, "cannot prune old webhook events");
    }
}

async fn deliver_due(
    store: &dyn Store,
    client: &reqwest::Client,
    settings: &WebhookSettings,
) -> Result<(), keyward_store::StoreError> {
    loop {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let claimed = store
            .claim_webhook_deliveries(now, lease_until, BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let count = claimed.len();
        let attempts = claimed.into_iter().map(|(delivery, endpoint)| async move {
            let outcome = attempt(client, settings, &delivery, &endpoint).await;
            (delivery, outcome)
        });
        for (delivery, outcome) in futures_util::future::join_all(attempts).await {
            store
                .finish_webhook_delivery(&delivery.id, &outcome, Utc::now())
                .await?;
        }
        if count < BATCH as usize {
            return Ok(());
        }
    }
}

/// One attempt: the event posted, signed with every secret in use.
async fn attempt(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    delivery: &WebhookDelivery,
    endpoint: &WebhookRecord,
) -> WebhookAttempt {
    let failed = |status: Option<u16>, body: String| {
        let retry_at = RETRY_SCHEDULE
            .get(delivery.attempts as usize)
            .map(|wait| Utc::now() + settings.scaled(*wait));
        WebhookAttempt::Failed {
            status,
            body,
            retry_at,
        }
    };
    if let Some(reason) = denied(settings, &endpoint.url).await {
        return failed(None, reason);
    }
    let event = &delivery.event;
    let body = payload(&event.kind, &event.subject, event.created_at).to_string();
    let now = Utc::now();
    let timestamp = now.timestamp();
    let signature = sign::signature(
        &endpoint.signing_secrets(now),
        &event.id,
        timestamp,
        body.as_bytes(),
    );
    let sent = client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Err(error) => failed(None, format!("no answer: {error}")),
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            match status {
                200..=299 => WebhookAttempt::Succeeded { status, body: text },
                410 => WebhookAttempt::Gone { body: text },
                _ => failed(Some(status), text),
            }
        }
    }
}

/// Why the endpoint's address may not be reached (a denied network), if it may not.
async fn denied(settings: &WebhookSettings, url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map(|found| found.map(|a| a.ip()).collect())
            .unwrap_or_default(),
    };
    addresses
        .iter()
        .find(|ip| settings.deny_networks.iter().any(|net| net.contains(*ip)))
        .map(|ip| format!("{ip} is in a denied network (--webhook-deny-network)"))
}
