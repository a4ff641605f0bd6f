//! Usage reports and invoices, read from the hourly rollups (never from raw events). The
//! HTTP endpoints and the CLI both call these, so `--json` prints the endpoint's document.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keyward_core::billing::{self, HourUnits, Invoice, InvoiceInput, Period};
use keyward_core::{Environment, KeyId, PlanName, UserId};
use keyward_store::{
    LATENCY_BOUNDS_MS, LATENCY_BUCKETS, PriceChange, Rollup, Store, StoreError, UsageFilter,
};
use serde_json::{Value, json};

/// Longest look-back for `days` (rollups are kept 400 days).
pub const MAX_DAYS: u32 = 400;

#[derive(Debug, Default, Clone)]
struct Counts {
    requests: u64,
    rejected: u64,
    units: u64,
    latency: [u64; LATENCY_BUCKETS],
}

impl Counts {
    fn add(&mut self, rollup: &Rollup) {
        self.requests += rollup.requests;
        self.rejected += rollup.rejected;
        self.units += rollup.units;
        for (mine, theirs) in self.latency.iter_mut().zip(rollup.latency) {
            *mine += theirs;
        }
    }

    /// The `q` quantile of the latency histogram, as its bucket's upper bound in ms (the
    /// slowest bucket reports its lower bound); `null` without samples.
    fn quantile(&self, q: f64) -> Value {
        quantile(&self.latency, q)
    }
}

fn quantile(histogram: &[u64; LATENCY_BUCKETS], q: f64) -> Value {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return Value::Null;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= rank {
            let bound = LATENCY_BOUNDS_MS
                .get(bucket)
                .or(LATENCY_BOUNDS_MS.last())
                .copied()
                .unwrap_or(0);
            return json!(bound);
        }
    }
    Value::Null
}

/// The first instant of the UTC day `days - 1` days before `now`'s.
fn days_back(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let today = now.date_naive();
    let first = today - Duration::days(i64::from(days.max(1)) - 1);
    first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

fn dates(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days().take_while(|d| *d <= to).collect()
}

/// Rollups added up: in total, per UTC day, and per `key`.
struct Tally<K> {
    total: Counts,
    by_day: BTreeMap<NaiveDate, Counts>,
    by: HashMap<K, Counts>,
}

fn tally<K: std::hash::Hash + Eq>(rollups: &[Rollup], key: impl Fn(&Rollup) -> K) -> Tally<K> {
    let mut tally = Tally {
        total: Counts::default(),
        by_day: BTreeMap::new(),
        by: HashMap::new(),
    };
    for rollup in rollups {
        tally.total.add(rollup);
        tally
            .by_day
            .entry(rollup.hour.date_naive())
            .or_default()
            .add(rollup);
        tally.by.entry(key(rollup)).or_default().add(rollup);
    }
    tally
}

impl<K> Tally<K> {
    /// One entry per day from `first` to `last` (zero-filled), with latency percentiles
    /// when `latency` is set.
    fn days(&self, first: NaiveDate, last: NaiveDate, latency: bool) -> Vec<Value> {
        dates(first, last)
            .into_iter()
            .map(|date| {
                let counts = self.by_day.get(&date).cloned().unwrap_or_default();
                let mut day = json!({
                    "date": date.to_string(),
                    "requests": counts.requests,
                    "rejected": counts.rejected,
                    "units": counts.units,
                });
                if latency {
                    day["p50_ms"] = counts.quantile(0.50);
                    day["p95_ms"] = counts.quantile(0.95);
                }
                day
            })
            .collect()
    }
}

fn top<K: Clone + Ord>(map: &HashMap<K, Counts>, n: usize) -> Vec<(K, Counts)> {
    let mut items: Vec<(K, Counts)> = map.iter().map(|(k, c)| (k.clone(), c.clone())).collect();
    items.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
    items.truncate(n);
    items
}

/// `GET /v1/keys/{id}/usage?days=N`: the last `days` UTC days including today.
pub async fn key_usage(
    store: &dyn Store,
    key_id: &KeyId,
    days: u32,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let from = days_back(now, days);
    let rollups = store
        .usage_rollups(&UsageFilter {
            key_id: Some(key_id.clone()),
            user_id: None,
            from,
            to: now + Duration::hours(1),
        })
        .await?;
    let tally = tally(&rollups, |rollup| rollup.endpoint.clone());
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for rollup in &rollups {
        *by_status.entry(rollup.status_code.to_string()).or_default() += rollup.requests;
    }
    let by_day = tally.days(from.date_naive(), now.date_naive(), true);
    let by_endpoint: Vec<Value> = top(&tally.by, usize::MAX)
        .into_iter()
        .map(|(endpoint, counts)| json!({"endpoint": endpoint, "requests": counts.requests}))
        .collect();
    let total = tally.total;
    Ok(json!({
        "key_id": key_id,
        "days": days,
        "total_requests": total.requests,
        "rejected_requests": total.rejected,
        "units": total.units,
        "by_day": by_day,
        "by_endpoint": by_endpoint,
        "by_status": by_status,
    }))
}

/// `GET /v1/users/{id}/usage?period=YYYY-MM`.
pub async fn user_usage(
    store: &dyn Store,
    user_id: &UserId,
    period: Period,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let user = store.get_user(user_id).await?;
    let rollups = store
        .usage_rollups(&UsageFilter {
            key_id: None,
            user_id: Some(user_id.clone()),
            from: period.start(),
            to: period.end(),
        })
        .await?;
    let tally = tally(&rollups, |rollup| rollup.key_id.to_string());
    let last_day = (period.end() - Duration::seconds(1))
        .date_naive()
        .min(now.date_naive().max(period.start().date_naive()));
    let by_day = tally.days(period.start().date_naive(), last_day, false);
    let total = &tally.total;
    let by_key = &tally.by;
    let by_key: Vec<Value> = top(by_key, usize::MAX)
        .into_iter()
        .map(|(key_id, counts)| {
            json!({"key_id": key_id, "requests": counts.requests, "units": counts.units})
        })
        .collect();
    let plan = match store.get_plan(&user.plan).await {
        Ok(plan) => Some(plan),
        Err(StoreError::NotFound(_)) => None,
        Err(error) => return Err(error),
    };
    let quota = match plan.and_then(|p| p.spec.monthly_quota) {
        Some(limit) => {
            let used = store.quota_usage(user_id, &period.to_string()).await?;
            json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used)})
        }
        None => Value::Null,
    };
    Ok(json!({
        "user_id": user_id,
        "period": period.to_string(),
        "requests": total.requests,
        "rejected": total.rejected,
        "units": total.units,
        "by_day": by_day,
        "by_key": by_key,
        "quota": quota,
    }))
}

/// `GET /v1/usage/summary?days=N`: every key's traffic over the last `days` UTC days.
pub async fn summary(
    store: &dyn Store,
    days: u32,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let rollups = store
        .usage_rollups(&UsageFilter {
            key_id: None,
            user_id: None,
            from: days_back(now, days),
            to: now + Duration::hours(1),
        })
        .await?;
    let mut total = Counts::default();
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_key: HashMap<(String, String), Counts> = HashMap::new();
    let mut by_endpoint: HashMap<String, Counts> = HashMap::new();
    for rollup in &rollups {
        total.add(rollup);
        *by_code.entry(rollup.code.clone()).or_default() += rollup.requests;
        by_key
            .entry((rollup.key_id.to_string(), rollup.user_id.to_string()))
            .or_default()
            .add(rollup);
        by_endpoint
            .entry(rollup.endpoint.clone())
            .or_default()
            .add(rollup);
    }
    let rate = |rejected: u64, requests: u64| {
        if requests == 0 {
            0.0
        } else {
            rejected as f64 / requests as f64
        }
    };
    let top_keys: Vec<Value> = top(&by_key, 10)
        .into_iter()
        .map(|((key_id, user_id), c)| {
            json!({"key_id": key_id, "user_id": user_id, "requests": c.requests,
                   "rejected": c.rejected, "units": c.units})
        })
        .collect();
    let top_endpoints: Vec<Value> = top(&by_endpoint, 10)
        .into_iter()
        .map(|(endpoint, c)| {
            json!({"endpoint": endpoint, "requests": c.requests, "rejected": c.rejected,
                   "rejection_rate": rate(c.rejected, c.requests)})
        })
        .collect();
    Ok(json!({
        "days": days,
        "requests": total.requests,
        "rejected": total.rejected,
        "rejection_rate": rate(total.rejected, total.requests),
        "by_code": by_code,
        "top_keys": top_keys,
        "top_endpoints": top_endpoints,
        "latency_ms": {
            "p50": total.quantile(0.50),
            "p95": total.quantile(0.95),
            "p99": total.quantile(0.99),
        },
    }))
}

/// The price `plan` had at `at`, from the price history.
fn price_at(
    history: &[PriceChange],
    plan: &PlanName,
    at: DateTime<Utc>,
) -> Option<keyward_core::Price> {
    history
        .iter()
        .rfind(|change| &change.plan == plan && change.effective_at <= at)
        .or_else(|| history.iter().find(|change| &change.plan == plan))
        .and_then(|change| change.price.clone())
}

/// `GET /v1/users/{id}/invoice?period=YYYY-MM` (CONTRACT §10 "Invoices").
pub async fn invoice(
    store: &dyn Store,
    user_id: &UserId,
    period: Period,
    now: DateTime<Utc>,
) -> Result<Invoice, StoreError> {
    let user = store.get_user(user_id).await?;
    let segments: Vec<(PlanName, DateTime<Utc>)> = store
        .plan_segments(user_id)
        .await?
        .into_iter()
        .map(|segment| (segment.plan, segment.effective_at))
        .collect();
    let segments = if segments.is_empty() {
        vec![(user.plan.clone(), user.created_at)]
    } else {
        segments
    };
    let history = store.price_history().await?;
    let mut hours: BTreeMap<(DateTime<Utc>, PlanName), u64> = BTreeMap::new();
    for rollup in store
        .usage_rollups(&UsageFilter {
            key_id: None,
            user_id: Some(user_id.clone()),
            from: period.start(),
            to: period.end(),
        })
        .await?
    {
        if rollup.environment == Environment::Live && rollup.units > 0 {
            *hours.entry((rollup.hour, rollup.plan)).or_default() += rollup.units;
        }
    }
    let usage: Vec<HourUnits> = hours
        .into_iter()
        .map(|((hour, plan), units)| HourUnits { hour, plan, units })
        .collect();
    Ok(billing::invoice(
        &InvoiceInput {
            user_id: user_id.as_str(),
            period,
            user_created_at: user.created_at,
            now,
            segments: &segments,
            usage: &usage,
        },
        |plan, at| price_at(&history, plan, at),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram() {
        let mut histogram = [0u64; LATENCY_BUCKETS];
        assert_eq!(quantile(&histogram, 0.5), Value::Null);
        histogram[0] = 90; // ≤ 1 ms
        histogram[4] = 9; // ≤ 20 ms
        histogram[13] = 1; // > 10 s
        assert_eq!(quantile(&histogram, 0.50), json!(1));
        assert_eq!(quantile(&histogram, 0.95), json!(20));
        assert_eq!(quantile(&histogram, 0.99), json!(20));
        assert_eq!(quantile(&histogram, 1.0), json!(10_000));
    }

    #[test]
    fn days_back_starts_at_midnight() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, 15, 4, 5).unwrap();
        assert_eq!(days_back(now, 1).to_rfc3339(), "2026-11-22T00:00:00+00:00");
        assert_eq!(days_back(now, 7).to_rfc3339(), "2026-11-16T00:00:00+00:00");
    }
}
