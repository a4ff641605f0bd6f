//! The billing outbox: events with stable ids and their deliveries to each sink.

use chrono::{DateTime, Utc};
use keyward_core::UserId;
use sqlx::{QueryBuilder, Row};

use super::rows::{get_opt_ts, get_ts, get_u64, parsed, ts};
use super::{Backend, Conn, Db, DbRow};
use crate::{
    BillingEvent, Delivery, DeliveryOutcome, DeliveryStatus, MeteredHour, StoreError, StoreResult,
};

/// Inserts events whose ids are new (an id seen before is the same event).
pub(super) async fn insert_events(conn: &mut Conn, events: &[BillingEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut query: QueryBuilder<Db> =
        QueryBuilder::new("INSERT INTO billing_events (id, kind, user_id, payload, created_at) ");
    query.push_values(events, |mut row, event| {
        row.push_bind(event.id.clone())
            .push_bind(event.kind.clone())
            .push_bind(event.user_id.as_str().to_owned())
            .push_bind(event.payload.to_string())
            .push_bind(ts(event.created_at));
    });
    query.push(" ON CONFLICT (id) DO NOTHING");
    query.build().execute(conn).await?;
    Ok(())
}

pub(super) async fn add_events(store: &Backend, events: &[BillingEvent]) -> StoreResult<()> {
    let mut tx = store.write().await?;
    for chunk in events.chunks(500) {
        insert_events(&mut tx, chunk).await?;
    }
    tx.commit().await?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "e.id, e.kind, e.user_id, e.payload, e.created_at, d.sink, \
    d.status, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at";

/// An event from the columns `id, kind, user_id, payload, created_at`.
fn event_from_row(row: &DbRow) -> StoreResult<BillingEvent> {
    let user_id: String = row.try_get("user_id")?;
    let payload: String = row.try_get("payload")?;
    Ok(BillingEvent {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        user_id: parsed("user id", &user_id, UserId::parse)?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::corrupt("billing event", e))?,
        created_at: get_ts(row, "created_at")?,
    })
}

fn delivery_from_row(row: &DbRow) -> StoreResult<Delivery> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        event: event_from_row(row)?,
        sink: row.try_get("sink")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("delivery status", &status))?,
        attempts: u32::try_from(get_u64(row, "attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: get_ts(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        delivered_at: get_opt_ts(row, "delivered_at")?,
    })
}

/// Opens deliveries to `sink` for events created since `since` that have none, then claims
/// up to `limit` due ones (pending, next attempt ≤ now) by moving their next attempt to
/// `lease_until`, so another node does not send them at the same time.
pub(super) async fn claim(
    store: &Backend,
    sink: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Delivery>> {
    let mut tx = store.write().await?;
    sqlx::query(
        "INSERT INTO billing_deliveries (event_id, sink, status, attempts, next_attempt_at)
         SELECT e.id, $1, 'pending', 0, $3 FROM billing_events e
         WHERE e.created_at >= $2
           AND NOT EXISTS (SELECT 1 FROM billing_deliveries d WHERE d.event_id = e.id AND d.sink = $1)",
    )
    .bind(sink)
    .bind(ts(since))
    .bind(ts(now))
    .execute(&mut *tx)
    .await?;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM billing_deliveries d JOIN billing_events e ON e.id = d.event_id
         WHERE d.sink = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2
         ORDER BY d.next_attempt_at, e.id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(sink)
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    let deliveries = rows
        .iter()
        .map(delivery_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    for delivery in &deliveries {
        sqlx::query(
            "UPDATE billing_deliveries SET next_attempt_at = $3 WHERE event_id = $1 AND sink = $2",
        )
        .bind(&delivery.event.id)
        .bind(sink)
        .bind(ts(lease_until))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(deliveries)
}

pub(super) async fn finish(
    store: &Backend,
    event_id: &str,
    sink: &str,
    outcome: &DeliveryOutcome,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (status, next, error, delivered) = match outcome {
        DeliveryOutcome::Delivered => ("delivered", now, None, Some(now)),
        DeliveryOutcome::Skipped(why) => ("skipped", now, Some(why.clone()), None),
        DeliveryOutcome::Retry { at, error } => ("pending", *at, Some(error.clone()), None),
        DeliveryOutcome::Dead(error) => ("dead", now, Some(error.clone()), None),
    };
    let mut tx = store.write().await?;
    sqlx::query(
        "UPDATE billing_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4,
             last_error = $5, delivered_at = $6
         WHERE event_id = $1 AND sink = $2",
    )
    .bind(event_id)
    .bind(sink)
    .bind(status)
    .bind(ts(next))
    .bind(error)
    .bind(delivered.map(ts))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deliveries, newest events first, optionally of one status.
pub(super) async fn list(
    store: &Backend,
    status: Option<DeliveryStatus>,
    limit: u32,
) -> StoreResult<Vec<Delivery>> {
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS} FROM billing_deliveries d JOIN billing_events e ON e.id = d.event_id WHERE 1 = 1"
    ));
    if let Some(status) = status {
        query.push(" AND d.status = ").push_bind(status.as_str());
    }
    query
        .push(" ORDER BY e.created_at DESC, e.id DESC, d.sink LIMIT ")
        .push_bind(i64::from(limit.clamp(1, 10_000)));
    let rows = query.build().fetch_all(&store.pool).await?;
    rows.iter().map(delivery_from_row).collect()
}

/// Events created in `[from, to)`, oldest first (for tests and tools).
pub(super) async fn events(
    store: &Backend,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<BillingEvent>> {
    let rows = sqlx::query(
        "SELECT id, kind, user_id, payload, created_at FROM billing_events
         WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id",
    )
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Deletes finished deliveries (delivered or skipped) and then events with no delivery left,
/// all older than `before`; dead and pending deliveries stay.
pub(super) async fn prune(conn: &mut Conn, before: DateTime<Utc>) -> StoreResult<u64> {
    let deliveries = sqlx::query(
        "DELETE FROM billing_deliveries WHERE status IN ('delivered', 'skipped')
         AND next_attempt_at < $1",
    )
    .bind(ts(before))
    .execute(&mut *conn)
    .await?;
    let events = sqlx::query(
        "DELETE FROM billing_events WHERE created_at < $1
         AND NOT EXISTS (SELECT 1 FROM billing_deliveries d WHERE d.event_id = billing_events.id)",
    )
    .bind(ts(before))
    .execute(&mut *conn)
    .await?;
    Ok(deliveries.rows_affected() + events.rows_affected())
}

pub(super) async fn metered(
    store: &Backend,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<MeteredHour>> {
    let rows = sqlx::query(
        "SELECT user_id, hour, plan, units, revisions FROM billing_metered
         WHERE hour >= $1 AND hour < $2 ORDER BY hour, user_id, plan",
    )
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            let user_id: String = row.try_get("user_id")?;
            Ok(MeteredHour {
                user_id: parsed("user id", &user_id, UserId::parse)?,
                hour: get_ts(row, "hour")?,
                plan: row.try_get("plan")?,
                units: get_u64(row, "units")?,
                revisions: u32::try_from(get_u64(row, "revisions")?).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Records `hour` as metered (its units, as revision `hour.revisions`) and adds `event`,
/// in one transaction — if the stored revision is still `expected` (0: no row yet). Two
/// nodes metering the same hour at once: one wins, the other changes nothing (`false`).
pub(super) async fn record_metering(
    store: &Backend,
    hour: &MeteredHour,
    expected: u32,
    event: &BillingEvent,
) -> StoreResult<bool> {
    let mut tx = store.write().await?;
    let changed = if expected == 0 {
        sqlx::query(
            "INSERT INTO billing_metered (user_id, hour, plan, units, revisions)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, hour, plan) DO NOTHING",
        )
    } else {
        sqlx::query(
            "UPDATE billing_metered SET units = $4, revisions = $5
             WHERE user_id = $1 AND hour = $2 AND plan = $3 AND revisions = $6",
        )
    }
    .bind(hour.user_id.as_str())
    .bind(ts(hour.hour))
    .bind(&hour.plan)
    .bind(super::rows::int(hour.units))
    .bind(i64::from(hour.revisions))
    .bind(i64::from(expected))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if changed {
        insert_events(&mut tx, std::slice::from_ref(event)).await?;
        // The same body reaches webhook endpoints subscribed to `usage.metered`.
        super::webhook_outbox::raise(&mut tx, "usage.metered", &event.payload, event.created_at)
            .await?;
        tx.commit().await?;
    }
    Ok(changed)
}
