//! Usage bookkeeping off the request path. Each checked request adds to in-memory tallies
//! (sharded maps, a short lock): per key (`request_count`, `last_used_at`), per user and
//! month (quota), per hour × key × endpoint × status × code × plan (the rollups analytics
//! and invoices read), and a bounded buffer of raw events. A writer task takes everything
//! every flush interval (200 ms by default) and stores it in one transaction, so the figures
//! always agree; what is not written yet is flushed on shutdown, and a failed write is kept
//! and retried. A node killed without a chance to flush loses at most its last interval.
//!
//! Counts are never dropped: the tallies are bounded by the number of distinct keys and
//! tuples in use, not by traffic. Raw events are the one thing shed under overload (beyond
//! [`MAX_PENDING_EVENTS`] waiting), each shed event counted in
//! `keyward_usage_events_shed_total`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use keyward_core::{Code, KeyId, UserId};
use keyward_store::{
    KeyUsage, LATENCY_BUCKETS, Rollup, Store, UsageBatch, UsageEvent, latency_bucket,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use ulid::Ulid;

use crate::cached_key::CachedKey;

mod tallies;

use tallies::{RollupCounts, RollupKey, Tallies, lock, shard_of};

const SHARDS: usize = 16;

/// How often the writer stores what was recorded, unless configured otherwise: a node
/// killed without a chance to flush (SIGKILL, power loss) loses at most the admissions of
/// this last interval and of a write still in flight.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Raw events waiting for the writer, at most (the rest are shed and counted).
pub const MAX_PENDING_EVENTS: usize = 200_000;

/// Longest endpoint kept, in bytes (longer ones are cut at a character boundary).
const MAX_ENDPOINT: usize = 256;

/// Distinct endpoints recorded per key per hour on one node; further ones are recorded as
/// [`OTHER_ENDPOINT`], so clients choosing paths cannot grow the rollups without bound.
const MAX_ENDPOINTS_PER_KEY_HOUR: usize = 100;
const OTHER_ENDPOINT: &str = "other";

/// Rollups are kept this long (≥ 400 days: a year of invoices and more).
const ROLLUP_RETENTION_DAYS: i64 = 400;
/// Change-feed entries are kept this long (a follower further behind reloads anyway).
const CHANGE_RETENTION_DAYS: i64 = 7;
/// Delivered billing events are kept this long (dead and pending ones stay).
const OUTBOX_RETENTION_DAYS: i64 = 90;

/// One checked request, as the usage pipeline records it.
#[derive(Debug, Clone, Copy)]
pub struct UsageRecord<'a> {
    pub key: &'a CachedKey,
    pub code: Code,
    /// The status the client received.
    pub status: u16,
    /// The endpoint the request was for (`""` when not known); its query string is dropped.
    pub endpoint: &'a str,
    pub method: &'a str,
    pub latency: Option<Duration>,
    /// The request's cost (counted as units only when admitted).
    pub cost: u64,
    pub at: DateTime<Utc>,
}

/// The recording side, held by the verifier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    tallies: Arc<Tallies>,
    /// This node process's id (a ULID chosen at start), which its quota units are stored
    /// under.
    node: Arc<str>,
    /// How often the writer stores what was recorded.
    interval: Duration,
    /// Rollups and raw events (`--usage on`); without them only what enforcement and the
    /// key object need is kept (`request_count`, `last_used_at`, quota usage).
    analytics: bool,
}

/// The method a usage event records: a known HTTP method, else `other` (the value comes
/// from the client, through `X-Original-Method` or `/v1/verify`).
fn method_label(raw: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|known| known.eq_ignore_ascii_case(raw)) {
        Some(known) => known,
        None if raw.is_empty() => "",
        None => "other",
    }
}

fn endpoint_of(raw: &str) -> &str {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if path.len() <= MAX_ENDPOINT {
        return path;
    }
    let mut end = MAX_ENDPOINT;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

impl UsageRecorder {
    pub fn record(&self, record: &UsageRecord<'_>) {
        let tallies = &self.tallies;
        let key = record.key;
        let admitted = record.code == Code::Valid;
        let units = if admitted { record.cost } else { 0 };
        if admitted {
            tallies.add(key.ulid(), 1, record.at);
        }
        if !self.analytics {
            return;
        }
        let hour = record.at.timestamp().div_euclid(3600);
        let endpoint = endpoint_of(record.endpoint);
        let latency_ms = record
            .latency
            .map(|latency| u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        let mut latency = [0; LATENCY_BUCKETS];
        if let Some(ms) = latency_ms {
            latency[latency_bucket(ms)] = 1;
        }
        let endpoint_admitted = tallies.add_rollup(
            RollupKey {
                key: key.ulid(),
                hour,
                endpoint: endpoint.into(),
                status: record.status,
                code: record.code,
                plan: key.user_plan.clone(),
            },
            RollupCounts {
                user_id: key.user_id.clone(),
                environment: key.environment,
                requests: 1,
                rejected: u64::from(!admitted),
                units,
                latency,
            },
        );
        let endpoint = if endpoint_admitted {
            endpoint
        } else {
            OTHER_ENDPOINT
        };
        let shed = tallies.add_events(
            shard_of(key.ulid()),
            [UsageEvent {
                key_id: key.id(),
                user_id: key.user_id.clone(),
                endpoint: endpoint.to_owned(),
                method: method_label(record.method).to_owned(),
                at: record.at,
                response_time_ms: latency_ms,
                status_code: record.status,
                code: record.code.as_str().to_owned(),
                cost: units,
            }],
        );
        if shed > 0 {
            metrics::counter!("keyward_usage_events_shed_total").increment(shed);
        }
    }

    /// Counts admitted units toward a user's monthly quota (persisted by the writer).
    pub fn record_quota(&self, user: &UserId, period: &str, units: u64) {
        self.tallies.add_quota(user, period, units);
        let shard = crate::quota::user_shard(user, SHARDS);
        let mut totals = lock(&self.tallies.quota_totals[shard]);
        let periods = match totals.get_mut(user) {
            Some(periods) => periods,
            None => totals.entry(user.clone()).or_default(),
        };
        match periods.iter_mut().find(|(p, _)| p.as_ref() == period) {
            Some((_, total)) => *total += units,
            None => periods.push((period.into(), units)),
        }
    }

    /// Every unit this node process has admitted toward `user`'s quota in `period`,
    /// written or not.
    pub fn quota_total(&self, user: &UserId, period: &str) -> u64 {
        let shard = crate::quota::user_shard(user, SHARDS);
        lock(&self.tallies.quota_totals[shard])
            .get(user)
            .and_then(|periods| periods.iter().find(|(p, _)| p.as_ref() == period))
            .map_or(0, |(_, total)| *total)
    }

    /// This node process's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long after a shared limiter lost a quota figure every node (flushing as often
    /// as this one) has written what it admitted before the loss: two flush intervals, at
    /// most 1 s.
    pub fn settle_time(&self) -> Duration {
        (self.interval * 2).min(Duration::from_secs(1))
    }
}

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
        let task = tokio::spawn(run(store, tallies.clone(), node.clone(), stopped, interval));
        (
            Self { stop, task },
            UsageRecorder {
                tallies,
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
    tallies.forget_quota_totals_before(&crate::quota::Month::of(now).previous().label());
    let quota = tallies.take_quota(node);
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
        quota,
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
            .flat_map(|(_, events)| events.iter().cloned())
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
        for entry in batch.quota {
            tallies.add_quota(&entry.user_id, &entry.period, entry.units);
        }
        for (id, (admitted, at)) in keys {
            tallies.add(id, admitted, at);
        }
        for (key, counts) in rollups {
            tallies.add_rollup(key, counts);
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

#[cfg(test)]
mod tests {
    use super::tallies::RollupShard;
    use super::*;

    #[test]
    fn endpoints_lose_their_query_and_are_cut_at_a_character_boundary() {
        assert_eq!(endpoint_of("/orders?key=sk_live_x"), "/orders");
        assert_eq!(endpoint_of("/a#frag"), "/a");
        let long = "é".repeat(150);
        let cut = endpoint_of(&long);
        assert!(cut.len() <= 256 && cut.len() >= 255 && long.starts_with(cut));
    }

    #[test]
    fn methods_are_known_values_or_other() {
        assert_eq!(method_label("get"), "GET");
        assert_eq!(method_label(""), "");
        assert_eq!(method_label(&"X".repeat(400_000)), "other");
    }

    #[test]
    fn a_key_gets_100_distinct_endpoints_an_hour_then_other() {
        let mut shard = RollupShard::default();
        let key = Ulid::new();
        for i in 0..100 {
            assert!(shard.admit_endpoint(key, 7, &format!("/e/{i}")));
        }
        assert!(!shard.admit_endpoint(key, 7, "/e/new"));
        assert!(shard.admit_endpoint(key, 7, "/e/5"), "a known one stays");
        assert!(shard.admit_endpoint(Ulid::new(), 7, "/e/new"), "per key");
        assert!(shard.admit_endpoint(key, 8, "/e/new"), "per hour");
        let tallies = Tallies::default();
        lock(&tallies.rollups[0]).endpoints = shard.endpoints;
        tallies.forget_endpoints_before(9);
        assert!(
            tallies
                .rollups
                .iter()
                .all(|shard| lock(shard).endpoints.is_empty())
        );
    }

    #[test]
    fn a_nodes_quota_totals_count_every_unit_per_user_and_month() {
        let recorder = UsageRecorder {
            tallies: Arc::new(Tallies::default()),
            node: "n".into(),
            interval: DEFAULT_FLUSH_INTERVAL,
            analytics: false,
        };
        let (alice, bob) = (
            UserId::parse("alice").unwrap(),
            UserId::parse("bob").unwrap(),
        );
        recorder.record_quota(&alice, "2026-10", 2);
        recorder.record_quota(&alice, "2026-11", 3);
        recorder.record_quota(&alice, "2026-11", 4);
        recorder.record_quota(&bob, "2026-11", 1);
        assert_eq!(recorder.quota_total(&alice, "2026-11"), 7);
        assert_eq!(recorder.quota_total(&alice, "2026-10"), 2);
        assert_eq!(recorder.quota_total(&bob, "2026-11"), 1);
        assert_eq!(recorder.quota_total(&bob, "2026-10"), 0);
        // Written or not, they stay: taking the pending units leaves the totals.
        assert_eq!(recorder.tallies.take_quota("n").len(), 3);
        assert_eq!(recorder.quota_total(&alice, "2026-11"), 7);
        recorder.tallies.forget_quota_totals_before("2026-11");
        assert_eq!(recorder.quota_total(&alice, "2026-10"), 0);
        assert_eq!(recorder.quota_total(&alice, "2026-11"), 7);
    }
}
