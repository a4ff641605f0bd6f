//! Usage reports and invoices, read from the hourly rollups (never from raw events) and
//! added up by the database (`Store::usage_totals`), so a summary over many keys and days
//! never travels row by row. The HTTP endpoints and the CLI both call these, so `--json`
//! prints the endpoint's document.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keyward_core::billing::{self, HourUnits, Invoice, InvoiceInput, Period};
use keyward_core::{Environment, KeyId, PlanName, UserId};
use keyward_store::{
    LATENCY_BOUNDS_MS, LATENCY_BUCKETS, PriceChange, Store, StoreError, UsageFilter, UsageGroup,
    UsageTotal,
};

use crate::views::{
    DayUsage, EndpointRequests, KeyRequests, KeyUsageReport, LatencyPercentiles, QuotaStanding,
    TimelinePoint, TopEndpoint, TopKey, UsageSummary, UserUsageReport,
};

/// Longest look-back for `days` (rollups are kept 400 days).
pub const MAX_DAYS: u32 = 400;

/// The `q` quantile of a latency histogram, as its bucket's upper bound in ms (the slowest
/// bucket reports its lower bound); `null` without samples.
fn quantile(histogram: &[u64; LATENCY_BUCKETS], q: f64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
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
            return Some(bound);
        }
    }
    None
}

/// The first instant of the UTC day `days - 1` days before `now`'s.
fn days_back(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let today = now.date_naive();
    let first = today - Duration::days(i64::from(days.max(1)) - 1);
    first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

fn empty() -> UsageTotal {
    UsageTotal {
        group: Vec::new(),
        requests: 0,
        rejected: 0,
        units: 0,
        latency: [0; LATENCY_BUCKETS],
    }
}

async fn totals(
    store: &dyn Store,
    filter: &UsageFilter,
    group: UsageGroup,
) -> Result<Vec<UsageTotal>, StoreError> {
    store.usage_totals(filter, group).await
}

async fn total(store: &dyn Store, filter: &UsageFilter) -> Result<UsageTotal, StoreError> {
    Ok(totals(store, filter, UsageGroup::Total)
        .await?
        .into_iter()
        .next()
        .unwrap_or_else(empty))
}

/// One entry per day from `first` to `last` (zero-filled), with latency percentiles when
/// `latency` is set.
async fn days(
    store: &dyn Store,
    filter: &UsageFilter,
    first: NaiveDate,
    last: NaiveDate,
    latency: bool,
) -> Result<Vec<DayUsage>, StoreError> {
    let by_day: HashMap<String, UsageTotal> = totals(store, filter, UsageGroup::Day)
        .await?
        .into_iter()
        .map(|t| (t.group.first().cloned().unwrap_or_default(), t))
        .collect();
    Ok(first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|date| {
            let date = date.to_string();
            let counts = by_day.get(&date).cloned().unwrap_or_else(empty);
            DayUsage {
                date,
                requests: counts.requests,
                rejected: counts.rejected,
                units: counts.units,
                p50_ms: latency.then(|| quantile(&counts.latency, 0.50)),
                p95_ms: latency.then(|| quantile(&counts.latency, 0.95)),
            }
        })
        .collect())
}

/// Requests by code over the report's time: by hour for one day (today's hours so far), by
/// day otherwise; zero-filled, so the points cover the whole time.
async fn timeline(
    store: &dyn Store,
    filter: &UsageFilter,
    days_back_n: u32,
    now: DateTime<Utc>,
) -> Result<Vec<TimelinePoint>, StoreError> {
    let hourly = days_back_n == 1;
    let group = if hourly {
        UsageGroup::HourCode
    } else {
        UsageGroup::DayCode
    };
    let mut by_start: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for total in totals(store, filter, group).await? {
        let (Some(start), Some(code)) = (total.group.first(), total.group.get(1)) else {
            continue;
        };
        // Hours are the schema's timestamp text; a point names its hour as `HH:00`.
        let start = if hourly {
            start
                .get(11..13)
                .map_or_else(|| start.clone(), |hh| format!("{hh}:00"))
        } else {
            start.clone()
        };
        *by_start
            .entry(start)
            .or_default()
            .entry(code.clone())
            .or_default() += total.requests;
    }
    let starts: Vec<String> = if hourly {
        (0..=now.format("%H").to_string().parse::<u32>().unwrap_or(23))
            .map(|hour| format!("{hour:02}:00"))
            .collect()
    } else {
        let first = days_back(now, days_back_n).date_naive();
        first
            .iter_days()
            .take_while(|day| *day <= now.date_naive())
            .map(|day| day.to_string())
            .collect()
    };
    Ok(starts
        .into_iter()
        .map(|start| TimelinePoint {
            by_code: by_start.remove(&start).unwrap_or_default(),
            start,
        })
        .collect())
}

/// Groups, most requests first (ties by group), at most `n`.
fn top(mut rows: Vec<UsageTotal>, n: usize) -> Vec<UsageTotal> {
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.group.cmp(&b.group)));
    rows.truncate(n);
    rows
}

fn first(total: &UsageTotal) -> &str {
    total.group.first().map_or("", String::as_str)
}

/// `GET /v1/keys/{id}/usage?days=N`: the last `days` UTC days including today.
pub async fn key_usage(
    store: &dyn Store,
    key_id: &KeyId,
    days_back_n: u32,
    now: DateTime<Utc>,
) -> Result<KeyUsageReport, StoreError> {
    let from = days_back(now, days_back_n);
    let filter = UsageFilter {
        key_id: Some(key_id.clone()),
        ..UsageFilter::between(from, now + Duration::hours(1))
    };
    let total = total(store, &filter).await?;
    let by_day = days(store, &filter, from.date_naive(), now.date_naive(), true).await?;
    let by_endpoint = top(
        totals(store, &filter, UsageGroup::Endpoint).await?,
        usize::MAX,
    )
    .iter()
    .map(|t| EndpointRequests {
        endpoint: first(t).to_owned(),
        requests: t.requests,
    })
    .collect();
    let by_status: BTreeMap<String, u64> = totals(store, &filter, UsageGroup::Status)
        .await?
        .iter()
        .map(|t| (first(t).to_owned(), t.requests))
        .collect();
    Ok(KeyUsageReport {
        key_id: key_id.clone(),
        days: days_back_n,
        total_requests: total.requests,
        rejected_requests: total.rejected,
        units: total.units,
        by_day,
        by_endpoint,
        by_status,
    })
}

/// `GET /v1/users/{id}/usage?period=YYYY-MM`.
pub async fn user_usage(
    store: &dyn Store,
    user_id: &UserId,
    period: Period,
    now: DateTime<Utc>,
) -> Result<UserUsageReport, StoreError> {
    let user = store.get_user(user_id).await?;
    let filter = UsageFilter {
        user_id: Some(user_id.clone()),
        ..UsageFilter::between(period.start(), period.end())
    };
    let total = total(store, &filter).await?;
    let last_day = (period.end() - Duration::seconds(1))
        .date_naive()
        .min(now.date_naive().max(period.start().date_naive()));
    let by_day = days(store, &filter, period.start().date_naive(), last_day, false).await?;
    let by_key = top(totals(store, &filter, UsageGroup::Key).await?, usize::MAX)
        .iter()
        .map(|t| KeyRequests {
            key_id: first(t).to_owned(),
            requests: t.requests,
            units: t.units,
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
            Some(QuotaStanding {
                limit,
                used,
                remaining: limit.saturating_sub(used),
            })
        }
        None => None,
    };
    Ok(UserUsageReport {
        user_id: user_id.clone(),
        period: period.to_string(),
        requests: total.requests,
        rejected: total.rejected,
        units: total.units,
        by_day,
        by_key,
        quota,
    })
}

fn rate(rejected: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        rejected as f64 / requests as f64
    }
}

/// `GET /v1/usage/summary?days=N`: every key's traffic over the last `days` UTC days.
pub async fn summary(
    store: &dyn Store,
    days_back_n: u32,
    now: DateTime<Utc>,
) -> Result<UsageSummary, StoreError> {
    let filter = UsageFilter::between(days_back(now, days_back_n), now + Duration::hours(1));
    let total = total(store, &filter).await?;
    let by_code: BTreeMap<String, u64> = totals(store, &filter, UsageGroup::Code)
        .await?
        .iter()
        .map(|t| (first(t).to_owned(), t.requests))
        .collect();
    let top_keys = top(totals(store, &filter, UsageGroup::Key).await?, 10)
        .iter()
        .map(|t| TopKey {
            key_id: first(t).to_owned(),
            user_id: t.group.get(1).cloned(),
            requests: t.requests,
            rejected: t.rejected,
            units: t.units,
        })
        .collect();
    let top_endpoints = top(totals(store, &filter, UsageGroup::Endpoint).await?, 10)
        .iter()
        .map(|t| TopEndpoint {
            endpoint: first(t).to_owned(),
            requests: t.requests,
            rejected: t.rejected,
            rejection_rate: rate(t.rejected, t.requests),
        })
        .collect();
    let timeline = timeline(store, &filter, days_back_n, now).await?;
    Ok(UsageSummary {
        days: days_back_n,
        timeline,
        requests: total.requests,
        rejected: total.rejected,
        rejection_rate: rate(total.rejected, total.requests),
        by_code,
        top_keys,
        top_endpoints,
        latency_ms: LatencyPercentiles {
            p50: quantile(&total.latency, 0.50),
            p95: quantile(&total.latency, 0.95),
            p99: quantile(&total.latency, 0.99),
        },
    })
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

/// `GET /v1/users/{id}/invoice?period=YYYY-MM`.
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
    let filter = UsageFilter {
        user_id: Some(user_id.clone()),
        environment: Some(Environment::Live),
        ..UsageFilter::between(period.start(), period.end())
    };
    let mut usage = Vec::new();
    for hour in totals(store, &filter, UsageGroup::HourPlan).await? {
        let (Some(at), Some(plan)) = (hour.group.first(), hour.group.get(1)) else {
            continue;
        };
        let at = keyward_core::time::parse(at)
            .map_err(|e| StoreError::Internal(format!("unreadable rollup hour {at:?}: {e}")))?;
        let plan = PlanName::parse(plan)
            .map_err(|e| StoreError::Internal(format!("unreadable rollup plan {plan:?}: {e}")))?;
        if hour.units > 0 {
            usage.push(HourUnits {
                hour: at,
                plan,
                units: hour.units,
            });
        }
    }
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
        assert_eq!(quantile(&histogram, 0.5), None);
        histogram[0] = 90; // ≤ 1 ms
        histogram[4] = 9; // ≤ 20 ms
        histogram[13] = 1; // > 10 s
        assert_eq!(quantile(&histogram, 0.50), Some(1));
        assert_eq!(quantile(&histogram, 0.95), Some(20));
        assert_eq!(quantile(&histogram, 0.99), Some(20));
        assert_eq!(quantile(&histogram, 1.0), Some(10_000));
    }

    #[test]
    fn days_back_starts_at_midnight() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, 15, 4, 5).unwrap();
        assert_eq!(days_back(now, 1).to_rfc3339(), "2026-11-22T00:00:00+00:00");
        assert_eq!(days_back(now, 7).to_rfc3339(), "2026-11-16T00:00:00+00:00");
    }
}
