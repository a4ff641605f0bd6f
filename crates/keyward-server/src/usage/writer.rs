//! The writer: every flush interval it takes what the recorder tallied and stores it in one
//! transaction (kept and retried when the write fails, flushed on shutdown); hourly, it
//! prunes what is past its retention.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use keyward_core::KeyId;
use keyward_limiter::Month;
use keyward_store::{KeyUsage, QuotaUsage, Rollup, Store, UsageBatch};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use ulid::Ulid;

use super::UsageRecorder;
use super::tallies::{PendingEvent, Tallies};

/// Rollups are kept this long (≥ 400 days: a year of invoices and more).
const ROLLUP_RETENTION_DAYS: i64 = 400;
/// Change-feed entries are kept this long (a follower further behind reloads anyway).
const CHANGE_RETENTION_DAYS: i64 = 7;
/// Delivered billing events are kept this long (dead and pending ones stay).
const OUTBOX_RETENTION_DAYS: i64 = 90;

/// The writer task and the handle that stops it.
#[derive(Debug)]
pub struct UsageWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl UsageWriter {
    /// Starts the writer (and the retention task: raw events older than
    /// `retention_days` and rollups older than 400 days are deleted hourly); returns it
    /// with the recorder that feeds it. With `analytics` off (`--usage off`) no rollups or
    /// raw events are kept, but `request_count`, `last_used_at` and quota usage are.
    pub fn start(
        store: Arc<dyn Store>,
        interval: Duration,
        retention_days: u32,
        analytics: bool,
    ) -> (Self, UsageRecorder) {
        let tallies = Arc::new(Tallies::default());
        let node: Arc<str> = Ulid::new().to_string().into();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(prune(store.clone(), retention_days, stopped.clone()));
        let task = tokio::spawn(run(
            store.clone(),
            tallies.clone(),
            node.clone(),
            stopped,
            interval,
        ));
        (
            Self { stop, task },
            UsageRecorder {
                tallies,
                store,
                node,
                interval,
                analytics,
            },
        )
    }

    /// Flushes everything recorded so far and stops.
    pub async fn shutdown(self) {
        // Fails only when the writer has already ended; it is awaited just below.
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "usage writer ended abnormally");
        }
    }
}

async fn flush(store: &dyn Store, tallies: &Tallies, node: &str) {
    let now = Utc::now();
    tallies.forget_endpoints_before(now.timestamp().div_euclid(3600));
    tallies.forget_quota_totals_before(Month::of(now).previous());
    let quota = tallies.take_quota();
    let keys = tallies.take();
    let rollups = tallies.take_rollups();
    let events = tallies.take_events();
    if quota.is_empty() && keys.is_empty() && rollups.is_empty() && events.is_empty() {
        return;
    }
    let batch = UsageBatch {
        keys: keys
            .iter()
            .map(|(id, (admitted, at))| KeyUsage {
                id: KeyId::from_ulid(*id),
                admitted: *admitted,
                last_used_at: *at,
            })
            .filter(|usage| usage.admitted > 0)
            .collect(),
        quota: quota
            .iter()
            .map(|(user_id, month, units)| QuotaUsage {
                user_id: user_id.clone(),
                period: month.label(),
                node: node.to_owned(),
                units: *units,
            })
            .collect(),
        rollups: rollups
            .iter()
            .map(|(key, counts)| Rollup {
                hour: Utc
                    .timestamp_opt(key.hour * 3600, 0)
                    .single()
                    .unwrap_or_default(),
                key_id: KeyId::from_ulid(key.key),
                user_id: counts.user_id.clone(),
                environment: counts.environment,
                plan: key.plan.clone(),
                endpoint: key.endpoint.to_string(),
                status_code: key.status,
                code: key.code.as_str().to_owned(),
                requests: counts.requests,
                rejected: counts.rejected,
                units: counts.units,
                latency: counts.latency,
            })
            .collect(),
        events: events
            .iter()
            .flat_map(|(_, events)| events.iter().map(PendingEvent::stored))
            .collect(),
    };
    let written = store.record_usage(&batch).await;
    metrics::gauge!("keyward_usage_pending_keys").set(if written.is_ok() {
        0.0
    } else {
        keys.len() as f64
    });
    if let Err(error) = written {
        // Put everything back: the next tick retries. Counts are bounded by the keys and
        // tuples in use, not by traffic, so nothing has to be dropped while the database
        // is away; raw events beyond the buffer are shed (and counted).
        tracing::warn!(%error, keys = keys.len(), "usage write failed; will retry");
        metrics::counter!("keyward_usage_write_failures_total").increment(1);
        for (user, month, units) in quota {
            tallies.restore_quota(&user, month, units);
        }
        for (id, (admitted, at)) in keys {
            tallies.add(id, admitted, at);
        }
        for (key, counts) in rollups {
            tallies.restore_rollup(key, counts);
        }
        let mut shed = 0;
        for (shard, events) in events {
            shed += tallies.add_events(shard, events);
        }
        if shed > 0 {
            metrics::counter!("keyward_usage_events_shed_total").increment(shed);
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    tallies: Arc<Tallies>,
    node: Arc<str>,
    mut stopped: watch::Receiver<bool>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => flush(&*store, &tallies, &node).await,
            _ = stopped.changed() => break,
        }
    }
    flush(&*store, &tallies, &node).await;
}

/// Deletes, hourly, raw events past the retention period, rollups past 400 days, change-feed
/// entries past 7 days and delivered billing events past 90 days.
async fn prune(store: Arc<dyn Store>, retention_days: u32, mut stopped: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = Utc::now();
                let events_before = now - chrono::Duration::days(i64::from(retention_days));
                let rollups_before = now - chrono::Duration::days(ROLLUP_RETENTION_DAYS);
                let pruned = match store.prune_usage(events_before, rollups_before).await {
                    Ok(rows) => store
                        .prune_history(
                            now - chrono::Duration::days(CHANGE_RETENTION_DAYS),
                            now - chrono::Duration::days(OUTBOX_RETENTION_DAYS),
                        )
                        .await
                        .map(|more| rows + more),
                    Err(error) => Err(error),
                };
                // Dashboard and portal sessions past their end, and unused expired links.
                let pruned = match pruned {
                    Ok(rows) => store.prune_web_sessions(now).await.map(|more| rows + more),
                    Err(error) => Err(error),
                };
                match pruned {
                    Ok(0) => {}
                    Ok(rows) => tracing::info!(rows, "pruned old usage and history"),
                    Err(error) => tracing::warn!(%error, "cannot prune old usage; will retry"),
                }
            }
            _ = stopped.changed() => return,
        }
    }
}
