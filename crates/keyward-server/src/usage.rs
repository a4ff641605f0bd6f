//! Usage bookkeeping off the request path. A check adds to a per-key tally in one of a few
//! sharded maps (a short lock, no task wake-up, no allocation for a key already tallied);
//! a writer task takes the tallies every flush interval (1 s) and updates `request_count`
//! and `last_used_at` in one transaction, so each key is written at most once per interval.
//! What is not written yet is flushed on shutdown; a failed write is kept and retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_core::{Code, KeyId, UserId};
use keyward_store::{KeyUsage, QuotaUsage, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use ulid::Ulid;

use crate::verifier::CachedKey;

const SHARDS: usize = 16;

/// Admitted checks and the latest check time, per key.
type Tally = HashMap<Ulid, (u64, DateTime<Utc>)>;

#[derive(Debug, Default)]
struct Tallies {
    shards: [Mutex<Tally>; SHARDS],
    /// Admitted units per (user, `YYYY-MM`) for monthly quotas.
    quota: [Mutex<HashMap<(UserId, String), u64>>; SHARDS],
}

impl Tallies {
    fn add(&self, key: Ulid, count: u64, at: DateTime<Utc>) {
        let shard = &self.shards[(key.random() as usize) % SHARDS];
        let mut tally = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = tally.entry(key).or_insert((0, at));
        entry.0 += count;
        entry.1 = entry.1.max(at);
    }

    fn add_quota(&self, user: &UserId, period: &str, units: u64) {
        let shard = crate::quota::user_shard(user, SHARDS);
        let mut tally = self.quota[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *tally.entry((user.clone(), period.to_owned())).or_insert(0) += units;
    }

    fn take_quota(&self) -> Vec<QuotaUsage> {
        let mut all = Vec::new();
        for shard in &self.quota {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            all.extend(
                taken
                    .into_iter()
                    .map(|((user_id, period), units)| QuotaUsage {
                        user_id,
                        period,
                        units,
                    }),
            );
        }
        all
    }

    fn take(&self) -> Tally {
        let mut all = Tally::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            if all.is_empty() {
                all = taken;
            } else {
                all.extend(taken);
            }
        }
        all
    }
}

/// The recording side, held by the verifier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    tallies: Option<Arc<Tallies>>,
}

impl UsageRecorder {
    /// A recorder that records nothing (usage tracking off).
    pub fn disabled() -> Self {
        Self { tallies: None }
    }

    pub fn record(&self, key: &CachedKey, code: Code, at: DateTime<Utc>) {
        if let Some(tallies) = &self.tallies
            && code == Code::Valid
        {
            tallies.add(key.ulid(), 1, at);
        }
    }
}

impl UsageRecorder {
    /// Counts admitted units toward a user's monthly quota (persisted by the writer).
    pub fn record_quota(&self, user: &UserId, period: &str, units: u64) {
        if let Some(tallies) = &self.tallies {
            tallies.add_quota(user, period, units);
        }
    }
}

/// The writer task and the handle that stops it.
#[derive(Debug)]
pub struct UsageWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl UsageWriter {
    /// Starts the writer; returns it with the recorder that feeds it.
    pub fn start(store: Arc<dyn Store>, interval: Duration) -> (Self, UsageRecorder) {
        let tallies = Arc::new(Tallies::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store, tallies.clone(), stopped, interval));
        (
            Self { stop, task },
            UsageRecorder {
                tallies: Some(tallies),
            },
        )
    }

    /// Flushes everything recorded so far and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "usage writer ended abnormally");
        }
    }
}

async fn flush(store: &dyn Store, tallies: &Tallies) {
    let quota = tallies.take_quota();
    if !quota.is_empty()
        && let Err(error) = store.add_quota_usage(&quota).await
    {
        tracing::warn!(%error, users = quota.len(), "quota usage write failed; will retry");
        metrics::counter!("keyward_usage_write_failures_total").increment(1);
        for entry in quota {
            tallies.add_quota(&entry.user_id, &entry.period, entry.units);
        }
    }
    let taken = tallies.take();
    if taken.is_empty() {
        return;
    }
    let batch: Vec<KeyUsage> = taken
        .iter()
        .map(|(id, (admitted, at))| KeyUsage {
            id: KeyId::from_ulid(*id),
            admitted: *admitted,
            last_used_at: *at,
        })
        .collect();
    let written = store.record_key_usage(&batch).await;
    metrics::gauge!("keyward_usage_pending_keys").set(if written.is_ok() {
        0.0
    } else {
        batch.len() as f64
    });
    if let Err(error) = written {
        // Put it back: the next tick retries. The tally is bounded by the number of keys in
        // use, not by traffic, so nothing ever has to be dropped while the database is away.
        tracing::warn!(%error, keys = batch.len(), "usage write failed; will retry");
        metrics::counter!("keyward_usage_write_failures_total").increment(1);
        for (id, (admitted, at)) in taken {
            tallies.add(id, admitted, at);
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    tallies: Arc<Tallies>,
    mut stopped: watch::Receiver<bool>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => flush(&*store, &tallies).await,
            _ = stopped.changed() => break,
        }
    }
    flush(&*store, &tallies).await;
}
