//! Event webhooks' endpoints: create, read, change, delete, rotate the signing secret.
//! Events and their deliveries are in `webhook_outbox.rs`.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{QueryBuilder, Row};

use super::rows::{get_json, get_opt_ts, get_ts, json, opt_ts, ts};
use super::{Backend, Conn, Db, DbRow, now, write_audit};
use crate::{
    Actor, AuditAction, NewWebhook, Page, PageRequest, StoreError, StoreResult, WebhookPatch,
    WebhookRecord,
};

const ENDPOINT_COLUMNS: &str = "id, url, events, description, enabled, secret, previous_secret, \
    previous_secret_until, failing_since, created_at, updated_at";

fn endpoint_from_row(row: &DbRow) -> StoreResult<WebhookRecord> {
    let previous: Option<String> = row.try_get("previous_secret")?;
    let until = get_opt_ts(row, "previous_secret_until")?;
    Ok(WebhookRecord {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: get_json(row, "events")?,
        description: row.try_get("description")?,
        enabled: row.try_get("enabled")?,
        secret: row.try_get("secret")?,
        previous_secret: previous.zip(until),
        failing_since: get_opt_ts(row, "failing_since")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

pub(super) async fn endpoint_in(conn: &mut Conn, id: &str) -> StoreResult<WebhookRecord> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound("webhook"))?;
    endpoint_from_row(&row)
}

pub(super) async fn create(
    store: &Backend,
    new: &NewWebhook,
    actor: &Actor,
) -> StoreResult<WebhookRecord> {
    let at = now();
    let id = format!("whk_{}", keyward_core::monotonic_ulid());
    let mut tx = store.write().await?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, events, description, enabled, secret, created_at, updated_at)
         VALUES ($1, $2, $3, $4, TRUE, $5, $6, $6)",
    )
    .bind(&id)
    .bind(&new.url)
    .bind(json(&new.events))
    .bind(&new.description)
    .bind(&new.secret)
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    let record = endpoint_in(&mut tx, &id).await?;
    let details = json!({"webhook_id": id, "url": record.url, "events": record.events});
    audit(&mut tx, at, actor, AuditAction::WebhookCreate, details).await?;
    tx.commit().await?;
    Ok(record)
}

/// The audit record of a change to an endpoint (no user or key; never the secret).
async fn audit(
    conn: &mut Conn,
    at: DateTime<Utc>,
    actor: &Actor,
    action: AuditAction,
    details: serde_json::Value,
) -> StoreResult<()> {
    write_audit(conn, at, actor, action, None, None, details).await
}

pub(super) async fn get(store: &Backend, id: &str) -> StoreResult<WebhookRecord> {
    let mut conn = store.pool.acquire().await?;
    endpoint_in(&mut conn, id).await
}

pub(super) async fn list(store: &Backend, page: &PageRequest) -> StoreResult<Page<WebhookRecord>> {
    let limit = page.limit.clamp(1, 1000);
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE 1 = 1"
    ));
    let listing = "webhooks";
    if let Some(cursor) = &page.cursor {
        super::after_cursor(store, &mut query, "webhook_endpoints", listing, cursor).await?;
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(&store.pool).await?;
    let items = rows
        .iter()
        .map(endpoint_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    super::page(store, listing, items, limit, |w| w.id.clone()).await
}

pub(super) async fn update(
    store: &Backend,
    id: &str,
    patch: &WebhookPatch,
    actor: &Actor,
) -> StoreResult<WebhookRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let mut endpoint = endpoint_in(&mut tx, id).await?;
    if let Some(url) = &patch.url {
        endpoint.url.clone_from(url);
    }
    if let Some(events) = &patch.events {
        endpoint.events.clone_from(events);
    }
    if let Some(description) = &patch.description {
        endpoint.description.clone_from(description);
    }
    if let Some(enabled) = patch.enabled {
        // Enabling again starts the failure clock afresh.
        if enabled && !endpoint.enabled {
            endpoint.failing_since = None;
        }
        endpoint.enabled = enabled;
    }
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $2, events = $3, description = $4, enabled = $5,
             failing_since = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(id)
    .bind(&endpoint.url)
    .bind(json(&endpoint.events))
    .bind(&endpoint.description)
    .bind(endpoint.enabled)
    .bind(opt_ts(endpoint.failing_since))
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    let record = endpoint_in(&mut tx, id).await?;
    let fields: Vec<&str> = [
        ("url", patch.url.is_some()),
        ("events", patch.events.is_some()),
        ("description", patch.description.is_some()),
        ("enabled", patch.enabled.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let details = json!({"webhook_id": id, "fields": fields});
    audit(&mut tx, at, actor, AuditAction::WebhookUpdate, details).await?;
    tx.commit().await?;
    Ok(record)
}

/// Deletes the endpoint; its undelivered deliveries end as `dead`.
pub(super) async fn delete(store: &Backend, id: &str, actor: &Actor) -> StoreResult<WebhookRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let record = endpoint_in(&mut tx, id).await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'dead'
         WHERE endpoint_id = $1 AND status IN ('pending', 'failed')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let details = json!({"webhook_id": id, "url": record.url});
    audit(&mut tx, at, actor, AuditAction::WebhookDelete, details).await?;
    tx.commit().await?;
    Ok(record)
}

/// A new secret; the current one keeps signing until `overlap_until`.
pub(super) async fn rotate_secret(
    store: &Backend,
    id: &str,
    secret: &str,
    overlap_until: DateTime<Utc>,
    actor: &Actor,
) -> StoreResult<WebhookRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let endpoint = endpoint_in(&mut tx, id).await?;
    sqlx::query(
        "UPDATE webhook_endpoints SET secret = $2, previous_secret = $3,
             previous_secret_until = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(secret)
    .bind(&endpoint.secret)
    .bind(ts(overlap_until))
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    let record = endpoint_in(&mut tx, id).await?;
    let details = json!({"webhook_id": id, "previous_secret_until": overlap_until});
    audit(
        &mut tx,
        at,
        actor,
        AuditAction::WebhookRotateSecret,
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}
