//! Usage bookkeeping off the request path: checks are queued to a channel, and a writer
//! task aggregates them and updates `request_count` / `last_used_at` at most once per key
//! per flush interval (1 s). The writer flushes what it holds on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_core::{Code, KeyId};
use keyward_store::{KeyUsage, Store};
use ulid::Ulid;

use crate::verifier::CachedKey;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How many checks may wait for the writer before new ones are dropped (and counted).
const QUEUE_CAPACITY: usize = 65_536;

#[derive(Debug)]
struct UsageEvent {
    key_id: Ulid,
    admitted: bool,
    at: DateTime<Utc>,
}

/// The sending side, held by the verifier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    sender: Option<mpsc::Sender<UsageEvent>>,
    dropped: Arc<AtomicU64>,
}

impl UsageRecorder {
    /// A recorder that records nothing (usage tracking off).
    pub fn disabled() -> Self {
        Self {
            sender: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn record(&self, key: &CachedKey, code: Code, at: DateTime<Utc>) {
        let Some(sender) = &self.sender else {
            return;
        };
        let event = UsageEvent {
            key_id: key.ulid(),
            admitted: code == Code::Valid,
            at,
        };
        if sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("keyward_usage_events_dropped_total").increment(1);
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
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store, receiver, stopped, interval));
        let recorder = UsageRecorder {
            sender: Some(sender),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (Self { stop, task }, recorder)
    }

    /// Flushes everything queued so far and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "usage writer ended abnormally");
        }
    }
}

#[derive(Debug, Default)]
struct Pending(HashMap<Ulid, (u64, DateTime<Utc>)>);

impl Pending {
    fn add(&mut self, event: UsageEvent) {
        if !event.admitted {
            return;
        }
        let entry = self.0.entry(event.key_id).or_insert((0, event.at));
        entry.0 += 1;
        entry.1 = entry.1.max(event.at);
    }

    async fn flush(&mut self, store: &dyn Store) {
        if self.0.is_empty() {
            return;
        }
        let batch: Vec<KeyUsage> = self
            .0
            .iter()
            .map(|(id, (admitted, at))| KeyUsage {
                id: KeyId::from_ulid(*id),
                admitted: *admitted,
                last_used_at: *at,
            })
            .collect();
        match store.record_key_usage(&batch).await {
            Ok(()) => self.0.clear(),
            // Kept and retried at the next tick; the map is bounded by the number of keys.
            Err(error) => {
                tracing::warn!(%error, keys = batch.len(), "usage write failed; will retry")
            }
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<UsageEvent>,
    mut stopped: watch::Receiver<bool>,
    interval: Duration,
) {
    let mut pending = Pending::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = receiver.recv() => match event {
                Some(event) => pending.add(event),
                None => break,
            },
            _ = ticker.tick() => pending.flush(&*store).await,
            _ = stopped.changed() => break,
        }
    }
    receiver.close();
    while let Ok(event) = receiver.try_recv() {
        pending.add(event);
    }
    pending.flush(&*store).await;
}
