//! The SQL both backends share, compiled once per backend: `sqlite.rs` and `postgres.rs`
//! each include this module (`#[path]`) next to their own `Db` (the sqlx driver), `Conn`,
//! `DbRow`, `Backend` (the store type, with its `pool`, `write()` and
//! `applied_migrations()`), `MIGRATOR`, `PLAN_ORDER` and `SCHEMA_SNAPSHOT`. One set of
//! queries, so the backends cannot drift apart; the conformance suite runs on both.
//!
//! The schema has the same shape on both (see `migrations/`): timestamps are TEXT in one
//! fixed UTC format, JSON is text, booleans are written as `TRUE`/`FALSE`, placeholders
//! are `$n`.

mod admin_keys;
mod audit;
mod billing;
mod cursor;
mod import;
mod keys;
mod plans;
mod roles;
mod rows;
mod sessions;
mod usage;
mod users;
mod webhook_outbox;
mod webhooks;

use chrono::{DateTime, Utc};
use keyward_core::{KeyId, UserId};

use super::{Backend, Conn, Db, DbRow, PLAN_ORDER};
use crate::{Actor, KeyUsage, Page, QuotaUsage, StoreError, StoreResult};

/// Runs a read again, once, after a short pause, when it failed on a broken connection (a
/// database restart, a failover, a connection dropped by a proxy): the pool hands out a
/// fresh connection the second time. Writes are never retried here — a commit whose answer
/// was lost may have happened — and neither is a pool timeout, which has waited already.
async fn retry_read<T, F, Fut>(mut read: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    match read().await {
        Err(error) if error.is_broken_connection() => {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            read().await
        }
        outcome => outcome,
    }
}

/// Now, at the millisecond precision the database keeps.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Rows that can be checked for existence by one text column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup {
    UserById,
    KeyById,
    KeyByHash,
    PlanByName,
}

/// Whether a row exists (`Lookup` names the table and column; `value` is bound).
pub(crate) async fn exists(conn: &mut Conn, lookup: Lookup, value: &str) -> StoreResult<bool> {
    let sql = match lookup {
        Lookup::UserById => "SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)",
        Lookup::KeyById => "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)",
        Lookup::KeyByHash => "SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = $1)",
        Lookup::PlanByName => "SELECT EXISTS (SELECT 1 FROM plans WHERE name = $1)",
    };
    Ok(sqlx::query_scalar(sql).bind(value).fetch_one(conn).await?)
}

/// The error for a `cursor` this store never handed out.
pub(crate) use cursor::open as open_cursor;

pub(crate) fn bad_cursor() -> StoreError {
    StoreError::invalid("cursor", "not a cursor this listing returned")
}

/// Cuts a listing fetched with `limit + 1` rows into a page and its continuation cursor,
/// sealed for `listing` (see [`cursor`]).
pub(crate) async fn page<T>(
    store: &Backend,
    listing: &str,
    mut items: Vec<T>,
    limit: u32,
    position_of: impl Fn(&T) -> String,
) -> StoreResult<Page<T>> {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        match items.last().map(position_of) {
            Some(position) => Some(cursor::seal(store, listing, &position).await?),
            None => None,
        }
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Continues a newest-first listing of `table`, ordered by `(created_at, id)`, after the
/// row the sealed `cursor` names (a cursor of another listing, or naming no row, is refused).
pub(super) async fn after_cursor(
    store: &Backend,
    query: &mut sqlx::QueryBuilder<'_, Db>,
    table: &'static str,
    listing: &str,
    cursor: &str,
) -> StoreResult<()> {
    let id = open_cursor(store, listing, cursor).await?;
    let created: Option<String> =
        sqlx::query_scalar(&format!("SELECT created_at FROM {table} WHERE id = $1"))
            .bind(&id)
            .fetch_optional(&store.pool)
            .await?;
    let created = created.ok_or_else(bad_cursor)?;
    query
        .push(" AND (created_at, id) < (")
        .push_bind(created)
        .push(", ")
        .push_bind(id)
        .push(")");
    Ok(())
}

/// Writes an audit record inside the caller's transaction.
pub(crate) async fn write_audit(
    conn: &mut Conn,
    at: DateTime<Utc>,
    actor: &Actor,
    action: crate::AuditAction,
    user_id: Option<&UserId>,
    key_id: Option<&KeyId>,
    details: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, user_id, key_id, ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(format!("aud_{}", keyward_core::monotonic_ulid()))
    .bind(rows::ts(at))
    .bind(actor.label())
    .bind(action.as_str())
    .bind(user_id.map(UserId::as_str))
    .bind(key_id.map(KeyId::as_str))
    .bind(actor.ip.map(|ip| ip.to_string()))
    .bind(details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes one active key (its audit record is the caller's) and raises `key.revoked`.
pub(super) async fn revoke_in(
    conn: &mut Conn,
    id: &KeyId,
    at: DateTime<chrono::Utc>,
) -> StoreResult<()> {
    let revoked = sqlx::query(
        "UPDATE api_keys SET is_active = FALSE, revoked_at = $2, updated_at = $2
         WHERE id = $1 AND is_active = TRUE",
    )
    .bind(id.as_str())
    .bind(rows::ts(at))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if revoked > 0 {
        let record = keys::fetch(conn, id).await?;
        webhook_outbox::raise(conn, "key.revoked", &serde_json::json!({"key": record}), at).await?;
    }
    Ok(())
}

/// Adds admitted checks to `request_count` and advances `last_used_at`.
async fn add_key_usage(conn: &mut Conn, usage: &[KeyUsage]) -> StoreResult<()> {
    for entry in usage {
        sqlx::query(
            "UPDATE api_keys SET request_count = request_count + $2,
                 last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $3 THEN $3
                                     ELSE last_used_at END
             WHERE id = $1",
        )
        .bind(entry.id.as_str())
        .bind(rows::int(entry.admitted))
        .bind(rows::ts(entry.last_used_at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds admitted units to users' monthly quota usage.
async fn add_quota(conn: &mut Conn, usage: &[QuotaUsage], at: DateTime<Utc>) -> StoreResult<()> {
    let at = rows::ts(at);
    for entry in usage {
        sqlx::query(
            "INSERT INTO quota_usage (user_id, period, units, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, period) DO UPDATE SET units = quota_usage.units + excluded.units,
                 updated_at = excluded.updated_at",
        )
        .bind(entry.user_id.as_str())
        .bind(&entry.period)
        .bind(rows::int(entry.units))
        .bind(&at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO quota_usage_by_node (user_id, period, node, units, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, period, node) DO UPDATE
                 SET units = quota_usage_by_node.units + excluded.units,
                     updated_at = excluded.updated_at",
        )
        .bind(entry.user_id.as_str())
        .bind(&entry.period)
        .bind(&entry.node)
        .bind(rows::int(entry.units))
        .bind(&at)
        .execute(&mut *conn)
        .await?;
        quota_thresholds(conn, entry, &at).await?;
    }
    Ok(())
}

/// `quota.threshold` when a user's units in the month reach 80 % and then 100 % of its
/// plan's quota: each once per user, month and threshold (recorded in this transaction,
/// which holds the write lock, so two nodes never both raise one).
async fn quota_thresholds(conn: &mut Conn, entry: &QuotaUsage, at: &str) -> StoreResult<()> {
    let standing: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT q.units, p.monthly_quota FROM quota_usage q
         JOIN users u ON u.user_id = q.user_id JOIN plans p ON p.name = u.plan
         WHERE q.user_id = $1 AND q.period = $2",
    )
    .bind(entry.user_id.as_str())
    .bind(&entry.period)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((used, Some(limit))) = standing else {
        return Ok(());
    };
    if limit <= 0 {
        return Ok(());
    }
    // Only the batch that moves the total across a threshold records it: the write lock
    // orders the batches of every node, so exactly one does.
    let before = i128::from(used) - i128::from(rows::int(entry.units));
    for percent in [80_i64, 100] {
        let threshold = i128::from(limit) * i128::from(percent);
        if i128::from(used) * 100 < threshold {
            break;
        }
        if before * 100 >= threshold {
            continue;
        }
        let recorded = sqlx::query(
            "INSERT INTO quota_threshold_notices (user_id, period, percent) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, period, percent) DO NOTHING",
        )
        .bind(entry.user_id.as_str())
        .bind(&entry.period)
        .bind(percent)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if recorded == 1 {
            let now = rows::parse_ts(at)?;
            webhook_outbox::raise(
                conn,
                "quota.threshold",
                &serde_json::json!({
                    "user_id": entry.user_id, "period": entry.period, "limit": limit,
                    "used": used, "percent": percent,
                }),
                now,
            )
            .await?;
        }
    }
    Ok(())
}
