//! The delivery tasks every node runs: claim due deliveries (a lease and a claim token keep
//! other nodes off them), post each signed to an address checked against the denied
//! networks, record each answer as it comes, and schedule the next attempt. Beside them:
//! the look for expiring keys, and the sweep that disables failing endpoints and drops
//! events past retention.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use keyward_store::{Store, WebhookAttempt, WebhookDelivery, WebhookRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{FAILING_FOR, MAX_ANSWER_BYTES, RETRY_SCHEDULE, WebhookSettings, payload, sign};

/// No answer within this long is a failed attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Resolving an endpoint's name may take at most this long.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claim keeps other nodes off a delivery: longer than a resolution and an
/// attempt together (an outcome after it is not recorded: see the claim token).
const LEASE: Duration = Duration::from_secs(60);
/// Deliveries claimed at a time, and attempted at once.
const BATCH: u32 = 50;
/// How often each node looks for keys expiring or expired (found within a minute;
/// `--webhook-retry-scale` below 1 shortens it, down to 250 ms, for tests).
const EXPIRY_LOOK_EVERY: Duration = Duration::from_secs(20);

pub fn spawn(
    store: Arc<dyn Store>,
    settings: WebhookSettings,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let look_every = EXPIRY_LOOK_EVERY
        .mul_f64(settings.retry_scale.min(1.0))
        .max(Duration::from_millis(250));
    every(look_every, stopped.clone(), {
        let (store, settings) = (store.clone(), settings.clone());
        move || {
            let (store, settings) = (store.clone(), settings.clone());
            async move {
                if let Err(error) = raise_expiry_notices(&*store, &settings).await {
                    tracing::warn!(%error, "cannot look for expiring keys; will retry");
                }
            }
        }
    });
    every(Duration::from_secs(60), stopped.clone(), {
        let (store, settings) = (store.clone(), settings.clone());
        move || {
            let (store, settings) = (store.clone(), settings.clone());
            async move { sweep(&*store, &settings).await }
        }
    });
    every(Duration::from_secs(1), stopped, move || {
        let (store, settings) = (store.clone(), settings.clone());
        async move {
            if let Err(error) = deliver_due(&*store, &settings).await {
                tracing::warn!(%error, "webhook deliveries failed; will retry");
            }
        }
    })
}

/// Runs `work` every `period` (a run that overruns delays the next) until stopped.
fn every<F, Fut>(period: Duration, mut stopped: watch::Receiver<bool>, work: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => work().await,
                _ = stopped.changed() => return,
            }
        }
    })
}

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
    settings: &WebhookSettings,
) -> Result<(), keyward_store::StoreError> {
    loop {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let claimed = store
            .claim_webhook_deliveries(now, lease_until, BATCH)
            .await?;
        let count = claimed.len();
        // Each outcome is recorded as soon as its attempt ends: a slow receiver delays
        // nobody else's record.
        let mut attempts = futures_util::stream::iter(claimed.into_iter().map(
            |(delivery, endpoint)| async move {
                let outcome = attempt(settings, &delivery, &endpoint).await;
                (delivery, outcome)
            },
        ))
        .buffer_unordered(BATCH as usize);
        while let Some((delivery, outcome)) = attempts.next().await {
            let claim = delivery.claim.as_deref().unwrap_or_default();
            if let Err(error) = store
                .finish_webhook_delivery(&delivery.id, claim, &outcome, Utc::now())
                .await
            {
                tracing::warn!(%error, delivery = %delivery.id, "cannot record a webhook attempt; it will be attempted again");
            }
        }
        if count < BATCH as usize {
            return Ok(());
        }
    }
}

/// One attempt: the event posted, signed with every secret in use, to an address that is
/// not in a denied network (the connection goes to the very address that was checked).
async fn attempt(
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
    let client = match pinned_client(settings, &endpoint.url).await {
        Ok(client) => client,
        Err(reason) => return failed(None, reason),
    };
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
            let text = answer_start(response).await;
            match status {
                200..=299 => WebhookAttempt::Succeeded { status, body: text },
                410 => WebhookAttempt::Gone { body: text },
                _ => failed(Some(status), text),
            }
        }
    }
}

/// The first bytes of an answer (what the deliveries log keeps); the rest is never read.
async fn answer_start(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(MAX_ANSWER_BYTES);
    String::from_utf8_lossy(&kept).into_owned()
}

/// A client for one attempt: the endpoint's host resolved once and checked, the
/// connection pinned to the checked addresses (no second lookup to rebind), no proxy, no
/// redirects. Fails closed: a name that does not resolve is a failed attempt.
async fn pinned_client(settings: &WebhookSettings, url: &str) -> Result<reqwest::Client, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| "the endpoint's URL is invalid".to_owned())?;
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| format!("resolving {bare} took too long"))?
            .map_err(|error| format!("cannot resolve {bare}: {error}"))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("{bare} resolves to no address"));
    }
    if let Some(denied) = addresses
        .iter()
        .find(|address| super::is_denied(settings, address.ip()))
    {
        return Err(format!(
            "{} is in a denied network (--webhook-deny-network)",
            denied.ip()
        ));
    }
    let mut builder = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("keyward-webhooks/", env!("CARGO_PKG_VERSION")));
    if bare.parse::<IpAddr>().is_err() {
        builder = builder.resolve_to_addrs(bare, &addresses);
    }
    builder
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))
}
