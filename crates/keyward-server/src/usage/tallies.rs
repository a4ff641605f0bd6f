//! The request path's half of usage: what one check adds ([`UsageRecorder::record`]) to
//! the in-memory tallies the writer takes from — sharded maps behind short locks, bounded
//! by the keys and tuples in use, not by traffic. Nothing here formats a string for the
//! store; the writer does that off the request path.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use keyward_core::{Code, Environment, KeyId, PlanName, UserId};
use keyward_limiter::Month;
use keyward_store::{LATENCY_BOUNDS_MS, LATENCY_BUCKETS, UsageEvent};
use ulid::Ulid;

use super::{
    MAX_ENDPOINT, MAX_ENDPOINTS_PER_KEY_HOUR, MAX_PENDING_EVENTS, OTHER_ENDPOINT, SHARDS,
    UsageRecord, UsageRecorder,
};

impl UsageRecorder {
    /// Adds one checked request to the tallies: a few map updates under short locks.
    pub fn record(&self, record: &UsageRecord<'_>) {
        let tallies = &self.tallies;
        let key = record.key;
        let admitted = record.code == Code::Valid;
        let units = if admitted { record.cost } else { 0 };
        if admitted {
            tallies.add(key.id, 1, record.at);
        }
        if !self.analytics {
            return;
        }
        let hour = record.at.timestamp().div_euclid(3600);
        let endpoint = endpoint_of(record.endpoint);
        let method = method_label(record.method);
        let latency_ms = record
            .latency
            .map(|latency| u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        let endpoint_admitted = tallies.add_check(
            RollupHead::new(key.id, hour, record.status, record.code),
            endpoint,
            &key,
            Sample::new(!admitted, units, latency_ms.map(latency_bucket)),
        );
        let endpoint = if endpoint_admitted {
            endpoint
        } else {
            OTHER_ENDPOINT
        };
        let shed = tallies.add_events(
            shard_of(key.id),
            [PendingEvent {
                key: key.id,
                user_id: key.user_id.clone(),
                endpoint: endpoint.into(),
                method,
                at: record.at,
                response_time_ms: latency_ms,
                status_code: record.status,
                code: record.code,
                cost: units,
            }],
        );
        if shed > 0 {
            metrics::counter!("keyward_usage_events_shed_total").increment(shed);
        }
    }
}

/// The method a usage event records: a known HTTP method, else `other` (the value comes
/// from the client, through `X-Original-Method` or `/v1/verify`).
pub(super) fn method_label(raw: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|known| known.eq_ignore_ascii_case(raw)) {
        Some(known) => known,
        None if raw.is_empty() => "",
        None => "other",
    }
}

/// The endpoint a usage event records: the path without its query or fragment, cut to
/// [`MAX_ENDPOINT`] bytes at a character boundary.
pub(super) fn endpoint_of(raw: &str) -> &str {
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

/// The latency histogram bucket a response time falls in.
fn latency_bucket(ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|&bound| ms <= bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// A raw event as the request path queues it; [`PendingEvent::stored`] gives the form the
/// store writes.
#[derive(Debug, Clone)]
pub(super) struct PendingEvent {
    key: Ulid,
    user_id: UserId,
    endpoint: Box<str>,
    method: &'static str,
    at: DateTime<Utc>,
    response_time_ms: Option<u64>,
    status_code: u16,
    code: Code,
    cost: u64,
}

impl PendingEvent {
    pub(super) fn stored(&self) -> UsageEvent {
        UsageEvent {
            key_id: KeyId::from_ulid(self.key),
            user_id: self.user_id.clone(),
            endpoint: self.endpoint.to_string(),
            method: self.method.to_owned(),
            at: self.at,
            response_time_ms: self.response_time_ms,
            status_code: self.status_code,
            code: self.code.as_str().to_owned(),
            cost: self.cost,
        }
    }
}

/// The endpoints one key was seen on in one hour: (unix hour, endpoints).
pub(super) type EndpointsSeen = (i64, std::collections::HashSet<Box<str>>);

/// A user's admitted units per month: one or two entries (this month and the last),
/// looked up by the user without allocating.
pub(super) type QuotaTotals = Vec<(Month, u64)>;

/// Admitted checks and the latest check time, per key.
pub(super) type Tally = HashMap<Ulid, (u64, DateTime<Utc>)>;

/// What a rollup is counted by, besides its endpoint and plan: kept apart so a check finds
/// its rollup without building a key (no string is copied when the rollup exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct RollupHead {
    pub(super) key: Ulid,
    /// Unix hour.
    pub(super) hour: i64,
    pub(super) status: u16,
    pub(super) code: Code,
}

impl RollupHead {
    pub(super) fn new(key: Ulid, hour: i64, status: u16, code: Code) -> Self {
        Self {
            key,
            hour,
            status,
            code,
        }
    }
}

/// One check, as its rollup counts it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    rejected: bool,
    units: u64,
    latency_bucket: Option<usize>,
}

/// A rollup as the writer takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RollupKey {
    pub(super) key: Ulid,
    /// Unix hour.
    pub(super) hour: i64,
    pub(super) endpoint: Box<str>,
    pub(super) status: u16,
    pub(super) code: Code,
    pub(super) plan: PlanName,
}

#[derive(Debug, Clone)]
pub(super) struct RollupCounts {
    pub(super) user_id: UserId,
    pub(super) environment: Environment,
    pub(super) requests: u64,
    pub(super) rejected: u64,
    pub(super) units: u64,
    pub(super) latency: [u64; LATENCY_BUCKETS],
}

impl Sample {
    pub(super) fn new(rejected: bool, units: u64, latency_bucket: Option<usize>) -> Self {
        Self {
            rejected,
            units,
            latency_bucket,
        }
    }
}

impl RollupCounts {
    fn add_sample(&mut self, sample: Sample) {
        self.requests += 1;
        self.rejected += u64::from(sample.rejected);
        self.units += sample.units;
        if let Some(bucket) = sample.latency_bucket
            && let Some(count) = self.latency.get_mut(bucket)
        {
            *count += 1;
        }
    }

    pub(super) fn add(&mut self, other: &RollupCounts) {
        self.requests += other.requests;
        self.rejected += other.rejected;
        self.units += other.units;
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            *mine += theirs;
        }
    }
}

/// Rollup counts waiting for the writer, and the endpoints each key was seen on this hour
/// (one lock for both: a check whose rollup already exists pays for no endpoint check).
#[derive(Debug, Default)]
pub(super) struct RollupShard {
    /// Per head, the (endpoint, plan) pairs counted: a few per head, searched in order.
    pub(super) counts: HashMap<RollupHead, Vec<(Box<str>, PlanName, RollupCounts)>>,
    pub(super) endpoints: HashMap<Ulid, EndpointsSeen>,
}

impl RollupShard {
    fn find(
        &mut self,
        head: &RollupHead,
        endpoint: &str,
        plan: &PlanName,
    ) -> Option<&mut RollupCounts> {
        self.counts
            .get_mut(head)?
            .iter_mut()
            .find(|(e, p, _)| &**e == endpoint && p == plan)
            .map(|(_, _, counts)| counts)
    }

    /// Adds `counts` to the rollup of (`head`, `endpoint`, `plan`), created if new.
    pub(super) fn add(
        &mut self,
        head: RollupHead,
        endpoint: &str,
        plan: &PlanName,
        counts: &RollupCounts,
    ) {
        match self.find(&head, endpoint, plan) {
            Some(existing) => existing.add(counts),
            None => self.counts.entry(head).or_default().push((
                endpoint.into(),
                plan.clone(),
                counts.clone(),
            )),
        }
    }

    /// Whether `key` may record `endpoint` this `hour`: while it has fewer than
    /// [`MAX_ENDPOINTS_PER_KEY_HOUR`] endpoints this hour, or already has this one.
    pub(super) fn admit_endpoint(&mut self, key: Ulid, hour: i64, endpoint: &str) -> bool {
        let (seen_hour, set) = self
            .endpoints
            .entry(key)
            .or_insert_with(|| (hour, std::collections::HashSet::new()));
        if *seen_hour != hour {
            *seen_hour = hour;
            set.clear();
        }
        if set.contains(endpoint) {
            true
        } else if set.len() < MAX_ENDPOINTS_PER_KEY_HOUR {
            set.insert(endpoint.into());
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Tallies {
    pub(super) shards: [Mutex<Tally>; SHARDS],
    /// Admitted units per (user, month) for monthly quotas, not written yet.
    pub(super) quota: [Mutex<HashMap<(UserId, Month), u64>>; SHARDS],
    /// Every unit this node process admitted per (user, month), written or not: what
    /// it tells a shared limiter that may have lost some (the current and previous month
    /// are kept).
    pub(super) quota_totals: [Mutex<HashMap<UserId, QuotaTotals>>; SHARDS],
    pub(super) rollups: [Mutex<RollupShard>; SHARDS],
    pub(super) events: [Mutex<Vec<PendingEvent>>; SHARDS],
    /// The hour whose predecessors' endpoints were last forgotten.
    pub(super) endpoints_hour: std::sync::atomic::AtomicI64,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn shard_of(key: Ulid) -> usize {
    (key.random() as usize) % SHARDS
}

impl Tallies {
    pub(super) fn add(&self, key: Ulid, count: u64, at: DateTime<Utc>) {
        let mut tally = lock(&self.shards[shard_of(key)]);
        let entry = tally.entry(key).or_insert((0, at));
        entry.0 += count;
        entry.1 = entry.1.max(at);
    }

    /// Counts admitted units toward a user's monthly quota: pending for the writer, and in
    /// the node's running total.
    pub(super) fn add_quota(&self, user: &UserId, month: Month, units: u64) {
        let shard = user.shard(SHARDS);
        *lock(&self.quota[shard])
            .entry((user.clone(), month))
            .or_insert(0) += units;
        let mut totals = lock(&self.quota_totals[shard]);
        let months = match totals.get_mut(user) {
            Some(months) => months,
            None => totals.entry(user.clone()).or_default(),
        };
        match months.iter_mut().find(|(m, _)| *m == month) {
            Some((_, total)) => *total += units,
            None => months.push((month, units)),
        }
    }

    /// Every unit this node process has admitted toward `user`'s quota in `month`,
    /// written or not.
    pub(super) fn quota_total(&self, user: &UserId, month: Month) -> u64 {
        lock(&self.quota_totals[user.shard(SHARDS)])
            .get(user)
            .and_then(|months| months.iter().find(|(m, _)| *m == month))
            .map_or(0, |(_, total)| *total)
    }

    /// Counts one check in its rollup; returns `false` when the key has used up its
    /// endpoints for the hour and the check went to [`OTHER_ENDPOINT`] instead.
    pub(super) fn add_check(
        &self,
        head: RollupHead,
        endpoint: &str,
        key: &super::UsageKey<'_>,
        sample: Sample,
    ) -> bool {
        let mut shard = lock(&self.rollups[shard_of(head.key)]);
        if let Some(existing) = shard.find(&head, endpoint, key.user_plan) {
            // Counted this flush already, so admitted this hour.
            existing.add_sample(sample);
            return true;
        }
        let admitted = shard.admit_endpoint(head.key, head.hour, endpoint);
        let endpoint = if admitted { endpoint } else { OTHER_ENDPOINT };
        let mut counts = RollupCounts {
            user_id: key.user_id.clone(),
            environment: key.environment,
            requests: 0,
            rejected: 0,
            units: 0,
            latency: [0; LATENCY_BUCKETS],
        };
        counts.add_sample(sample);
        shard.add(head, endpoint, key.user_plan, &counts);
        admitted
    }

    /// Queues raw events; returns how many did not fit.
    pub(super) fn add_events(
        &self,
        shard: usize,
        events: impl IntoIterator<Item = PendingEvent>,
    ) -> u64 {
        let mut queue = lock(&self.events[shard]);
        let mut shed = 0;
        for event in events {
            if queue.len() < MAX_PENDING_EVENTS / SHARDS {
                queue.push(event);
            } else {
                shed += 1;
            }
        }
        shed
    }
}
