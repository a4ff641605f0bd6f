//! Admin keys: created and revoked under audit, looked up by hash on every admin call.

use chrono::{DateTime, Duration, Utc};
use keyward_core::{KeyHash, Permission, monotonic_ulid};
use sqlx::{QueryBuilder, Row};

use super::rows::{get_opt_ts, get_ts, opt_ts, ts};
use super::{Backend, Db, DbRow, now, write_audit};
use crate::{
    Actor, AdminKeyRecord, AuditAction, NewAdminKey, Page, PageRequest, StoreError, StoreResult,
};

const COLUMNS: &str =
    "id, name, key_prefix, permissions, created_at, expires_at, last_used_at, revoked_at";

/// `last_used_at` is written at most once a minute per key.
const LAST_USED_PRECISION_SECONDS: i64 = 60;

fn from_row(row: &DbRow) -> StoreResult<AdminKeyRecord> {
    let permissions: String = row.try_get("permissions")?;
    Ok(AdminKeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        key_prefix: row.try_get("key_prefix")?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| StoreError::corrupt("admin key permissions", e))?,
        created_at: get_ts(row, "created_at")?,
        expires_at: get_opt_ts(row, "expires_at")?,
        last_used_at: get_opt_ts(row, "last_used_at")?,
        revoked_at: get_opt_ts(row, "revoked_at")?,
    })
}

fn permission_names(permissions: &[Permission]) -> Vec<&'static str> {
    permissions.iter().map(|p| p.as_str()).collect()
}

pub(super) async fn create(
    store: &Backend,
    new: &NewAdminKey,
    actor: &Actor,
) -> StoreResult<AdminKeyRecord> {
    let at = now();
    let id = format!("adk_{}", monotonic_ulid());
    let permissions = serde_json::to_string(&new.permissions)
        .map_err(|e| StoreError::corrupt("admin key permissions", e))?;
    let mut tx = store.write().await?;
    sqlx::query(
        "INSERT INTO admin_keys (id, name, key_hash, key_prefix, permissions, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&new.name)
    .bind(new.hash.to_hex())
    .bind(&new.key_prefix)
    .bind(&permissions)
    .bind(ts(at))
    .bind(opt_ts(new.expires_at))
    .execute(&mut *tx)
    .await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::AdminKeyCreate,
        None,
        None,
        serde_json::json!({
            "admin_key_id": id,
            "name": new.name,
            "permissions": permission_names(&new.permissions),
            "key_prefix": new.key_prefix,
            "expires_at": opt_ts(new.expires_at),
        }),
    )
    .await?;
    let record = get_in(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(record)
}

async fn get_in(conn: &mut super::Conn, id: &str) -> StoreResult<AdminKeyRecord> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admin_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound("admin key"))?;
    from_row(&row)
}

pub(super) async fn get(store: &Backend, id: &str) -> StoreResult<AdminKeyRecord> {
    let mut conn = store.pool.acquire().await?;
    get_in(&mut conn, id).await
}

pub(super) async fn by_hash(
    store: &Backend,
    hash: &KeyHash,
) -> StoreResult<Option<AdminKeyRecord>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM admin_keys WHERE key_hash = $1"
    ))
    .bind(hash.to_hex())
    .fetch_optional(&store.pool)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(super) async fn list(
    store: &Backend,
    include_revoked: bool,
    page: &PageRequest,
) -> StoreResult<Page<AdminKeyRecord>> {
    let limit = page.limit.clamp(1, 1000);
    let mut query: QueryBuilder<Db> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM admin_keys WHERE 1 = 1"));
    if !include_revoked {
        query.push(" AND revoked_at IS NULL");
    }
    let listing = format!("admin_keys\0{include_revoked}");
    if let Some(cursor) = &page.cursor {
        super::after_cursor(store, &mut query, "admin_keys", &listing, cursor).await?;
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(&store.pool).await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    super::page(store, &listing, items, limit, |key| key.id.clone()).await
}

/// Revokes `id` (idempotent: a revoked key is returned unchanged, without a new audit
/// record).
pub(super) async fn revoke(
    store: &Backend,
    id: &str,
    actor: &Actor,
) -> StoreResult<AdminKeyRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let revoked =
        sqlx::query("UPDATE admin_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let record = get_in(&mut tx, id).await?;
    if revoked > 0 {
        write_audit(
            &mut tx,
            at,
            actor,
            AuditAction::AdminKeyRevoke,
            None,
            None,
            if matches!(&actor.kind, crate::ActorKind::AdminKey(by) if by == id) {
                serde_json::json!({"admin_key_id": id, "name": record.name, "self_revoke": true})
            } else {
                serde_json::json!({"admin_key_id": id, "name": record.name})
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(record)
}

/// Notes that `id` was used at `at`, at most once a minute (one small write per key per
/// minute, whatever the traffic).
pub(super) async fn touch(store: &Backend, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
    let stale = ts(at - Duration::seconds(LAST_USED_PRECISION_SECONDS));
    let mut tx = store.write().await?;
    sqlx::query(
        "UPDATE admin_keys SET last_used_at = $2
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(id)
    .bind(ts(at))
    .bind(stale)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
