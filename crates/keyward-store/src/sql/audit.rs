//! The audit log and the change feed.

use keyward_core::KeyHash;
use sqlx::{QueryBuilder, Row};

use super::rows::get_ts;
use super::{Backend, Db};
use crate::{
    AuditFilter, AuditRecord, ChangeEvent, ChangeOp, Entity, Page, StoreError, StoreResult,
};

pub(super) async fn list(store: &Backend, filter: &AuditFilter) -> StoreResult<Page<AuditRecord>> {
    let limit = filter.page.limit.clamp(1, 1000);
    let mut query: QueryBuilder<Db> = QueryBuilder::new(
        "SELECT a.id, a.at, a.actor, a.action, a.user_id, a.key_id, a.ip, a.details FROM audit_log a WHERE 1 = 1",
    );
    if let Some(user_id) = &filter.user_id {
        query
            .push(" AND a.user_id = ")
            .push_bind(user_id.as_str().to_owned());
    }
    if let Some(key_id) = &filter.key_id {
        query
            .push(" AND a.key_id = ")
            .push_bind(key_id.as_str().to_owned());
    }
    if let Some(action) = filter.action {
        query.push(" AND a.action = ").push_bind(action.as_str());
    }
    let listing = format!(
        "audit\0{}\0{}\0{}",
        filter.user_id.as_ref().map_or("*", |u| u.as_str()),
        filter.key_id.as_ref().map_or("*", |k| k.as_str()),
        filter.action.map_or("*", |a| a.as_str()),
    );
    if let Some(cursor) = &filter.page.cursor {
        let cursor = &super::open_cursor(store, &listing, cursor).await?;
        let at: Option<String> = sqlx::query_scalar("SELECT at FROM audit_log WHERE id = $1")
            .bind(cursor)
            .fetch_optional(&store.pool)
            .await?;
        let at = at.ok_or_else(super::bad_cursor)?;
        query
            .push(" AND (a.at, a.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(cursor.to_owned())
            .push(")");
    }
    query
        .push(" ORDER BY a.at DESC, a.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(&store.pool).await?;
    let items = rows
        .iter()
        .map(|row| {
            let details: String = row.try_get("details")?;
            Ok(AuditRecord {
                id: row.try_get("id")?,
                at: get_ts(row, "at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                user_id: row.try_get("user_id")?,
                key_id: row.try_get("key_id")?,
                ip: row.try_get("ip")?,
                details: serde_json::from_str(&details)
                    .map_err(|e| StoreError::corrupt("audit details", e))?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    super::page(store, &listing, items, limit, |record| record.id.clone()).await
}

pub(super) async fn changes_since(
    store: &Backend,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<ChangeEvent>> {
    let rows = sqlx::query(
        "SELECT id, entity, entity_id, op, key_hash FROM change_events WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit.max(1)))
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            let entity: String = row.try_get("entity")?;
            let key_hash: Option<String> = row.try_get("key_hash")?;
            let op: String = row.try_get("op")?;
            Ok(ChangeEvent {
                id: row.try_get("id")?,
                entity: match entity.as_str() {
                    "key" => Entity::Key,
                    "user" => Entity::User,
                    "plan" => Entity::Plan,
                    other => return Err(StoreError::corrupt("change entity", other)),
                },
                entity_id: row.try_get("entity_id")?,
                op: match op.as_str() {
                    "insert" => ChangeOp::Insert,
                    "update" => ChangeOp::Update,
                    "delete" => ChangeOp::Delete,
                    other => return Err(StoreError::corrupt("change op", other)),
                },
                key_hash: key_hash
                    .map(|hash| {
                        KeyHash::from_hex(&hash).map_err(|e| StoreError::corrupt("key hash", e))
                    })
                    .transpose()?,
            })
        })
        .collect()
}
