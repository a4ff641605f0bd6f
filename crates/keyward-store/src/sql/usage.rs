//! Usage: the writer's batches (rollups, raw events, `request_count`, quota usage — one
//! transaction), the rollups the read side aggregates, retention, and what invoices need
//! (plan segments and price history).

use chrono::{DateTime, Utc};
use keyward_core::{Environment, KeyId, PlanName, Price, UserId};
use sqlx::{QueryBuilder, Row};

use super::rows::{get_opt_u64, get_ts, get_u64, int, parsed, ts};
use super::{Backend, Conn, Db, now};
use crate::{
    LATENCY_BUCKETS, PlanSegment, PriceChange, Rollup, StoreResult, UsageBatch, UsageEvent,
    UsageFilter, UsageGroup, UsageTotal,
};

const ROLLUP_COLUMNS: &str = "hour, key_id, user_id, environment, plan, endpoint, status_code, \
    code, requests, rejected, units, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, l12, l13";

/// Rows per multi-row INSERT (well under both backends' bound-parameter limits).
const CHUNK: usize = 500;

pub(super) async fn record(store: &Backend, batch: &UsageBatch) -> StoreResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = store.write().await?;
    super::add_key_usage(&mut tx, &batch.keys).await?;
    super::add_quota(&mut tx, &batch.quota, now()).await?;
    for chunk in batch.rollups.chunks(CHUNK) {
        add_rollups(&mut tx, chunk).await?;
    }
    for chunk in batch.events.chunks(CHUNK) {
        insert_events(&mut tx, chunk).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn add_rollups(conn: &mut Conn, rollups: &[Rollup]) -> StoreResult<()> {
    let mut query: QueryBuilder<Db> =
        QueryBuilder::new(format!("INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) "));
    query.push_values(rollups, |mut row, rollup| {
        row.push_bind(ts(rollup.hour))
            .push_bind(rollup.key_id.as_str().to_owned())
            .push_bind(rollup.user_id.as_str().to_owned())
            .push_bind(rollup.environment.as_str())
            .push_bind(rollup.plan.as_str().to_owned())
            .push_bind(rollup.endpoint.clone())
            .push_bind(i64::from(rollup.status_code))
            .push_bind(rollup.code.clone())
            .push_bind(int(rollup.requests))
            .push_bind(int(rollup.rejected))
            .push_bind(int(rollup.units));
        for count in rollup.latency {
            row.push_bind(int(count));
        }
    });
    query.push(
        " ON CONFLICT (hour, key_id, endpoint, status_code, code, plan) DO UPDATE SET \
         requests = usage_rollups.requests + excluded.requests, \
         rejected = usage_rollups.rejected + excluded.rejected, \
         units = usage_rollups.units + excluded.units",
    );
    for bucket in 0..LATENCY_BUCKETS {
        query.push(format!(
            ", l{bucket} = usage_rollups.l{bucket} + excluded.l{bucket}"
        ));
    }
    query.build().execute(conn).await?;
    Ok(())
}

async fn insert_events(conn: &mut Conn, events: &[UsageEvent]) -> StoreResult<()> {
    let mut query: QueryBuilder<Db> = QueryBuilder::new(
        "INSERT INTO api_key_usage (api_key_id, user_id, endpoint, method, timestamp, \
         response_time_ms, status_code, code, cost) ",
    );
    query.push_values(events, |mut row, event| {
        // Borrowed: the events outlive the statement, so no string is copied to bind it.
        row.push_bind(event.key_id.as_str())
            .push_bind(event.user_id.as_str())
            .push_bind(event.endpoint.as_str())
            .push_bind(event.method.as_str())
            .push_bind(ts(event.at))
            .push_bind(event.response_time_ms.map(int))
            .push_bind(i64::from(event.status_code))
            .push_bind(event.code.as_str())
            .push_bind(int(event.cost));
    });
    query.build().execute(conn).await?;
    Ok(())
}

/// `WHERE …` of a filter, appended to `query`.
fn push_filter(query: &mut QueryBuilder<Db>, filter: &UsageFilter) {
    query.push(" WHERE hour >= ").push_bind(ts(filter.from));
    query.push(" AND hour < ").push_bind(ts(filter.to));
    if let Some(key_id) = &filter.key_id {
        query
            .push(" AND key_id = ")
            .push_bind(key_id.as_str().to_owned());
    }
    if let Some(user_id) = &filter.user_id {
        query
            .push(" AND user_id = ")
            .push_bind(user_id.as_str().to_owned());
    }
    if let Some(environment) = filter.environment {
        query
            .push(" AND environment = ")
            .push_bind(environment.as_str());
    }
}

pub(super) async fn rollups(store: &Backend, filter: &UsageFilter) -> StoreResult<Vec<Rollup>> {
    let mut query: QueryBuilder<Db> =
        QueryBuilder::new(format!("SELECT {ROLLUP_COLUMNS} FROM usage_rollups"));
    push_filter(&mut query, filter);
    query.push(" ORDER BY hour, key_id, endpoint, status_code, code, plan");
    let rows = query.build().fetch_all(&store.pool).await?;
    rows.iter()
        .map(|row| {
            let key_id: String = row.try_get("key_id")?;
            let user_id: String = row.try_get("user_id")?;
            let environment: String = row.try_get("environment")?;
            let plan: String = row.try_get("plan")?;
            let status: i64 = row.try_get("status_code")?;
            let mut latency = [0u64; LATENCY_BUCKETS];
            for (bucket, slot) in latency.iter_mut().enumerate() {
                *slot = get_u64(row, &format!("l{bucket}"))?;
            }
            Ok(Rollup {
                hour: get_ts(row, "hour")?,
                key_id: parsed("key id", &key_id, KeyId::parse)?,
                user_id: parsed("user id", &user_id, UserId::parse)?,
                environment: parsed("environment", &environment, Environment::parse)?,
                plan: parsed("plan", &plan, PlanName::parse)?,
                endpoint: row.try_get("endpoint")?,
                status_code: u16::try_from(status).unwrap_or(0),
                code: row.try_get("code")?,
                requests: get_u64(row, "requests")?,
                rejected: get_u64(row, "rejected")?,
                units: get_u64(row, "units")?,
                latency,
            })
        })
        .collect()
}

/// Rollups added up per group, in SQL (a summary over many keys and days never travels
/// row by row).
pub(super) async fn totals(
    store: &Backend,
    filter: &UsageFilter,
    group: UsageGroup,
) -> StoreResult<Vec<UsageTotal>> {
    let columns: &[&str] = match group {
        UsageGroup::Total => &[],
        UsageGroup::Day => &["substr(hour, 1, 10)"],
        UsageGroup::Key => &["key_id", "user_id"],
        UsageGroup::Endpoint => &["endpoint"],
        UsageGroup::Status => &["CAST(status_code AS TEXT)"],
        UsageGroup::Code => &["code"],
        UsageGroup::HourPlan => &["hour", "plan"],
        UsageGroup::UserPlan => &["user_id", "plan"],
        UsageGroup::HourUserPlan => &["hour", "user_id", "plan"],
        UsageGroup::DayCode => &["substr(hour, 1, 10)", "code"],
        UsageGroup::HourCode => &["hour", "code"],
    };
    let sum = |column: &str| format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS {column}");
    let mut select: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("{column} AS g{i}"))
        .collect();
    select.extend(["requests", "rejected", "units"].map(sum));
    select.extend((0..LATENCY_BUCKETS).map(|bucket| sum(&format!("l{bucket}"))));
    let mut query: QueryBuilder<Db> =
        QueryBuilder::new(format!("SELECT {} FROM usage_rollups", select.join(", ")));
    push_filter(&mut query, filter);
    if !columns.is_empty() {
        let grouped = columns.join(", ");
        query.push(format!(" GROUP BY {grouped} ORDER BY {grouped}"));
    }
    let rows = query.build().fetch_all(&store.pool).await?;
    rows.iter()
        .map(|row| {
            let mut latency = [0u64; LATENCY_BUCKETS];
            for (bucket, slot) in latency.iter_mut().enumerate() {
                *slot = get_u64(row, &format!("l{bucket}"))?;
            }
            Ok(UsageTotal {
                group: (0..columns.len())
                    .map(|i| row.try_get::<String, _>(format!("g{i}").as_str()))
                    .collect::<Result<_, _>>()?,
                requests: get_u64(row, "requests")?,
                rejected: get_u64(row, "rejected")?,
                units: get_u64(row, "units")?,
                latency,
            })
        })
        .collect()
}

/// Deletes raw events older than `events_before` and rollups older than `rollups_before`;
/// returns how many rows went.
pub(super) async fn prune(
    store: &Backend,
    events_before: DateTime<Utc>,
    rollups_before: DateTime<Utc>,
) -> StoreResult<u64> {
    let events = sqlx::query("DELETE FROM api_key_usage WHERE timestamp < $1")
        .bind(ts(events_before))
        .execute(&store.pool)
        .await?;
    let rollups = sqlx::query("DELETE FROM usage_rollups WHERE hour < $1")
        .bind(ts(rollups_before))
        .execute(&store.pool)
        .await?;
    Ok(events.rows_affected() + rollups.rows_affected())
}

pub(super) async fn segments(store: &Backend, user_id: &UserId) -> StoreResult<Vec<PlanSegment>> {
    let rows = sqlx::query(
        "SELECT plan, effective_at FROM plan_history WHERE user_id = $1 ORDER BY effective_at, id",
    )
    .bind(user_id.as_str())
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            let plan: String = row.try_get("plan")?;
            Ok(PlanSegment {
                plan: parsed("plan", &plan, PlanName::parse)?,
                effective_at: get_ts(row, "effective_at")?,
            })
        })
        .collect()
}

pub(super) async fn prices(store: &Backend) -> StoreResult<Vec<PriceChange>> {
    let rows = sqlx::query(
        "SELECT plan, effective_at, price_base_cents, price_included_requests, \
         price_overage_cents_per_1000 FROM plan_prices ORDER BY plan, effective_at, id",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            let plan: String = row.try_get("plan")?;
            let price = match (
                get_opt_u64(row, "price_base_cents")?,
                get_opt_u64(row, "price_included_requests")?,
                get_opt_u64(row, "price_overage_cents_per_1000")?,
            ) {
                (Some(base_cents), Some(included_requests), Some(overage_cents_per_1000)) => {
                    Some(Price {
                        base_cents,
                        included_requests,
                        overage_cents_per_1000,
                    })
                }
                _ => None,
            };
            Ok(PriceChange {
                plan: parsed("plan", &plan, PlanName::parse)?,
                effective_at: get_ts(row, "effective_at")?,
                price,
            })
        })
        .collect()
}

/// Records a plan's price from `at` when it differs from the latest recorded one (inside
/// the caller's transaction).
pub(super) async fn note_price(
    conn: &mut Conn,
    plan: &PlanName,
    price: Option<&Price>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let latest = sqlx::query(
        "SELECT price_base_cents, price_included_requests, price_overage_cents_per_1000 \
         FROM plan_prices WHERE plan = $1 ORDER BY effective_at DESC, id DESC LIMIT 1",
    )
    .bind(plan.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let wanted = price.map(|p| {
        (
            int(p.base_cents),
            int(p.included_requests),
            int(p.overage_cents_per_1000),
        )
    });
    if let Some(row) = &latest {
        let stored: (Option<i64>, Option<i64>, Option<i64>) = (
            row.try_get("price_base_cents")?,
            row.try_get("price_included_requests")?,
            row.try_get("price_overage_cents_per_1000")?,
        );
        let same = match wanted {
            Some((a, b, c)) => stored == (Some(a), Some(b), Some(c)),
            None => stored == (None, None, None),
        };
        if same {
            return Ok(());
        }
    }
    sqlx::query(
        "INSERT INTO plan_prices (plan, effective_at, price_base_cents, price_included_requests, \
         price_overage_cents_per_1000) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(plan.as_str())
    .bind(ts(at))
    .bind(wanted.map(|w| w.0))
    .bind(wanted.map(|w| w.1))
    .bind(wanted.map(|w| w.2))
    .execute(conn)
    .await?;
    Ok(())
}
