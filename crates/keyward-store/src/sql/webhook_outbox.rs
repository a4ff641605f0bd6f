//! The outbox of webhook events: each event raised inside the transaction of the change it
//! describes, and its delivery to each endpoint subscribed to it — claimed under a lease,
//! finished only by the claim that made the attempt, replayed, pruned.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{QueryBuilder, Row};

use super::rows::{get_opt_ts, get_ts, get_u64, ts};
use super::webhooks::endpoint_in;
use super::{Backend, Conn, Db, DbRow, now};
use crate::{
    MAX_RESPONSE_BODY, Page, PageRequest, StoreError, StoreResult, WebhookAttempt, WebhookDelivery,
    WebhookDeliveryStatus, WebhookEvent, WebhookRecord,
};

/// Raises an event inside the caller's transaction: it is kept (for replays) and a
/// delivery is opened to every enabled endpoint subscribed to its type, due at once.
pub(crate) async fn raise(
    conn: &mut Conn,
    kind: &str,
    subject: &Value,
    at: DateTime<Utc>,
) -> StoreResult<String> {
    let id = format!("msg_{}", keyward_core::monotonic_ulid());
    sqlx::query(
        "INSERT INTO webhook_events (id, type, subject, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(kind)
    .bind(subject.to_string())
    .bind(ts(at))
    .execute(&mut *conn)
    .await?;
    let endpoints: Vec<(String, String)> =
        sqlx::query_as("SELECT id, events FROM webhook_endpoints WHERE enabled = TRUE")
            .fetch_all(&mut *conn)
            .await?;
    for (endpoint_id, events) in endpoints {
        let events: Vec<String> =
            serde_json::from_str(&events).map_err(|e| StoreError::corrupt("webhook events", e))?;
        if events.iter().any(|e| e == "*" || e == kind) {
            open_delivery(conn, &id, &endpoint_id, at).await?;
        }
    }
    Ok(id)
}

async fn open_delivery(
    conn: &mut Conn,
    event_id: &str,
    endpoint_id: &str,
    due: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, next_attempt_at)
         VALUES ($1, $2, $3, 'pending', 0, $4)
         ON CONFLICT (event_id, endpoint_id) DO NOTHING",
    )
    .bind(format!("dlv_{}", keyward_core::monotonic_ulid()))
    .bind(event_id)
    .bind(endpoint_id)
    .bind(ts(due))
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn raise_alone(
    store: &Backend,
    kind: &str,
    subject: &Value,
) -> StoreResult<String> {
    let mut tx = store.write().await?;
    let id = raise(&mut tx, kind, subject, now()).await?;
    tx.commit().await?;
    Ok(id)
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, \
    d.attempted_at, d.response_status, d.response_body, d.claim, e.id AS event_id, e.type, \
    e.subject, e.created_at AS event_created_at";

fn delivery_from_row(row: &DbRow) -> StoreResult<WebhookDelivery> {
    let status: String = row.try_get("status")?;
    let subject: String = row.try_get("subject")?;
    let response_status: Option<i64> = row.try_get("response_status")?;
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        status: WebhookDeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("unknown delivery status `{status}`")))?,
        attempts: u32::try_from(get_u64(row, "attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: get_ts(row, "next_attempt_at")?,
        attempted_at: get_opt_ts(row, "attempted_at")?,
        response_status: response_status.and_then(|s| u16::try_from(s).ok()),
        response_body: row.try_get("response_body")?,
        claim: row.try_get("claim")?,
        event: WebhookEvent {
            id: row.try_get("event_id")?,
            kind: row.try_get("type")?,
            subject: serde_json::from_str(&subject)
                .map_err(|e| StoreError::corrupt("webhook event", e))?,
            created_at: get_ts(row, "event_created_at")?,
        },
    })
}

/// Claims up to `limit` due deliveries of enabled endpoints until `lease_until`, so no other
/// node attempts them meanwhile (one write transaction: claims never overlap).
pub(super) async fn claim(
    store: &Backend,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<(WebhookDelivery, WebhookRecord)>> {
    // Most of the time nothing is due: find that out without the write lock.
    let due: Option<String> = sqlx::query_scalar(
        "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
         WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= $1 AND w.enabled = TRUE
         LIMIT 1",
    )
    .bind(ts(now))
    .fetch_optional(&store.pool)
    .await?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = store.write().await?;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
         JOIN webhook_events e ON e.id = d.event_id
         JOIN webhook_endpoints w ON w.id = d.endpoint_id
         WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= $1 AND w.enabled = TRUE
         ORDER BY d.next_attempt_at, d.id LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    let claim = format!("clm_{}", keyward_core::monotonic_ulid());
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut delivery = delivery_from_row(row)?;
        sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = $2, claim = $3 WHERE id = $1")
            .bind(&delivery.id)
            .bind(ts(lease_until))
            .bind(&claim)
            .execute(&mut *tx)
            .await?;
        delivery.claim = Some(claim.clone());
        let endpoint = endpoint_in(&mut tx, &delivery.endpoint_id).await?;
        claimed.push((delivery, endpoint));
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Records how an attempt ended (one more attempt counted), and what it says of the
/// endpoint: a 2xx clears its failure clock, a failure starts it, a 410 disables it. Only
/// the claim that made the attempt records it: an answer that comes after its lease ended
/// (another node may have claimed and delivered it since) changes nothing.
pub(super) async fn finish(
    store: &Backend,
    delivery_id: &str,
    claim: &str,
    attempt: &WebhookAttempt,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (status, response_status, body, next) = match attempt {
        WebhookAttempt::Succeeded { status, body } => {
            (WebhookDeliveryStatus::Succeeded, Some(*status), body, now)
        }
        WebhookAttempt::Failed {
            status,
            body,
            retry_at: Some(at),
        } => (WebhookDeliveryStatus::Failed, *status, body, *at),
        WebhookAttempt::Failed {
            status,
            body,
            retry_at: None,
        } => (WebhookDeliveryStatus::Dead, *status, body, now),
        WebhookAttempt::Gone { body } => (WebhookDeliveryStatus::Dead, Some(410), body, now),
    };
    let mut end = body.len().min(MAX_RESPONSE_BODY);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let body = &body[..end];
    let mut tx = store.write().await?;
    let endpoint_id: Option<String> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3,
             attempted_at = $4, response_status = $5, response_body = $6, claim = NULL
         WHERE id = $1 AND claim = $7 AND status IN ('pending', 'failed') RETURNING endpoint_id",
    )
    .bind(delivery_id)
    .bind(status.as_str())
    .bind(ts(next))
    .bind(ts(now))
    .bind(response_status.map(i64::from))
    .bind(body)
    .bind(claim)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(endpoint_id) = endpoint_id else {
        // Not this claim's any more: its outcome is someone else's to record.
        return Ok(());
    };
    let endpoint = match attempt {
        WebhookAttempt::Succeeded { .. } => {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                .bind(&endpoint_id)
        }
        WebhookAttempt::Failed { .. } => sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL",
        )
        .bind(&endpoint_id)
        .bind(ts(now)),
        WebhookAttempt::Gone { .. } => sqlx::query(
            "UPDATE webhook_endpoints SET enabled = FALSE, updated_at = $2 WHERE id = $1",
        )
        .bind(&endpoint_id)
        .bind(ts(now)),
    };
    endpoint.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Disables endpoints that failed every attempt since `failing_before` (none answered 2xx);
/// returns how many.
pub(super) async fn disable_failing(
    store: &Backend,
    failing_before: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut tx = store.write().await?;
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET enabled = FALSE, updated_at = $2
         WHERE enabled = TRUE AND failing_since IS NOT NULL AND failing_since <= $1",
    )
    .bind(ts(failing_before))
    .bind(ts(now()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(done)
}

pub(super) async fn deliveries(
    store: &Backend,
    endpoint_id: &str,
    page: &PageRequest,
) -> StoreResult<Page<WebhookDelivery>> {
    let limit = page.limit.clamp(1, 1000);
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
         JOIN webhook_events e ON e.id = d.event_id WHERE d.endpoint_id = "
    ));
    query.push_bind(endpoint_id.to_owned());
    let listing = format!("webhook_deliveries\0{endpoint_id}");
    if let Some(cursor) = &page.cursor {
        let cursor = super::open_cursor(store, &listing, cursor).await?;
        query.push(" AND d.id < ").push_bind(cursor);
    }
    query
        .push(" ORDER BY d.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(&store.pool).await?;
    let items = rows
        .iter()
        .map(delivery_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    super::page(store, &listing, items, limit, |d| d.id.clone()).await
}

/// Re-opens, for `endpoint_id`, every kept event since `since` it subscribes to now: a
/// delivery already made is made again (same event id, type, time and data). Returns how
/// many.
pub(super) async fn replay(
    store: &Backend,
    endpoint_id: &str,
    since: DateTime<Utc>,
    actor: &crate::Actor,
) -> StoreResult<u64> {
    let at = now();
    let mut tx = store.write().await?;
    let endpoint = endpoint_in(&mut tx, endpoint_id).await?;
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, type FROM webhook_events WHERE created_at >= $1 ORDER BY created_at, id",
    )
    .bind(ts(since))
    .fetch_all(&mut *tx)
    .await?;
    let mut count = 0;
    for (event_id, kind) in events {
        if !endpoint.subscribes_to(&kind) {
            continue;
        }
        let reopened = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3,
                 claim = NULL
             WHERE event_id = $1 AND endpoint_id = $2",
        )
        .bind(&event_id)
        .bind(endpoint_id)
        .bind(ts(at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if reopened == 0 {
            open_delivery(&mut tx, &event_id, endpoint_id, at).await?;
        }
        count += 1;
    }
    let details = serde_json::json!({"webhook_id": endpoint_id, "since": since, "events": count});
    super::write_audit(
        &mut tx,
        at,
        actor,
        crate::AuditAction::WebhookReplay,
        None,
        None,
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// Deletes events older than `before` with their deliveries (replays cannot reach them).
pub(super) async fn prune(conn: &mut Conn, before: DateTime<Utc>) -> StoreResult<u64> {
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE event_id IN
             (SELECT id FROM webhook_events WHERE created_at < $1)",
    )
    .bind(ts(before))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let events = sqlx::query("DELETE FROM webhook_events WHERE created_at < $1")
        .bind(ts(before))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(deliveries + events)
}
