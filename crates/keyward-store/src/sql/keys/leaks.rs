//! Leak reports from secret scanners: each named key is revoked (or disabled, or only
//! noted) and every report of a known key audited, all in one transaction.

use keyward_core::{KeyHash, KeyId, UserId};
use serde_json::json;

use sqlx::{QueryBuilder, Row};

use super::super::rows::ts;
use super::super::{Backend, Conn, Db, now, revoke_in, write_audit};
use super::fetch;
use crate::{
    Actor, ActorKind, AuditAction, KeyStatus, LeakAction, LeakFound, LeakReport,
    MAX_REPORTED_TOKENS, StoreResult,
};

pub(in super::super) async fn report_leaks(
    store: &Backend,
    reports: &[(KeyHash, LeakReport)],
    action: LeakAction,
) -> StoreResult<Vec<Option<LeakFound>>> {
    if reports.len() > MAX_REPORTED_TOKENS {
        return Err(crate::StoreError::invalid(
            "tokens",
            format!("a report names at most {MAX_REPORTED_TOKENS} tokens"),
        ));
    }
    // Which hashes name anything, read without the write lock: a report of strings this
    // deployment never issued writes nothing.
    let mut known = std::collections::HashSet::new();
    for chunk in reports.chunks(500) {
        let mut query: QueryBuilder<Db> =
            QueryBuilder::new("SELECT key_hash FROM api_keys WHERE key_hash IN (");
        push_hashes(&mut query, chunk);
        query.push(") UNION SELECT key_hash FROM admin_keys WHERE key_hash IN (");
        push_hashes(&mut query, chunk);
        query.push(")");
        let rows = query.build().fetch_all(&store.pool).await?;
        for row in rows {
            known.insert(row.try_get::<String, _>("key_hash")?);
        }
    }
    if known.is_empty() {
        return Ok(vec![None; reports.len()]);
    }
    // Every action and audit record of the report in one transaction: all or nothing.
    let at = now();
    let mut tx = store.write().await?;
    let mut found = Vec::with_capacity(reports.len());
    for (hash, report) in reports {
        found.push(if known.contains(&hash.to_hex()) {
            report_one(&mut tx, hash, action, report, at).await?
        } else {
            None
        });
    }
    tx.commit().await?;
    Ok(found)
}

fn push_hashes(query: &mut QueryBuilder<Db>, chunk: &[(KeyHash, LeakReport)]) {
    let mut list = query.separated(", ");
    for (hash, _) in chunk {
        list.push_bind(hash.to_hex());
    }
}

async fn report_one(
    tx: &mut Conn,
    hash: &KeyHash,
    action: LeakAction,
    report: &LeakReport,
    at: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Option<LeakFound>> {
    let actor = Actor {
        kind: ActorKind::GitHub,
        ip: None,
    };
    let key_id: Option<String> = sqlx::query_scalar("SELECT id FROM api_keys WHERE key_hash = $1")
        .bind(hash.to_hex())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(id) = key_id {
        let id = KeyId::parse(&id).map_err(|e| crate::StoreError::corrupt("key id", e))?;
        let key = fetch(tx, &id).await?;
        let earlier: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1 AND key_id = $2")
                .bind(AuditAction::KeyLeakReported.as_str())
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let taken = match (key.status(at), action) {
            (KeyStatus::Active | KeyStatus::Disabled, LeakAction::Revoke) => {
                revoke_in(tx, &id, at).await?;
                "revoked"
            }
            (KeyStatus::Active, LeakAction::Disable) => {
                sqlx::query(
                    "UPDATE api_keys SET enabled = FALSE, disabled_by = $2, updated_at = $3
                     WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(actor.label())
                .bind(ts(at))
                .execute(&mut *tx)
                .await?;
                "disabled"
            }
            (KeyStatus::Disabled, LeakAction::Disable) => "disabled",
            (KeyStatus::Active | KeyStatus::Disabled, LeakAction::Notify) => "notified",
            _ => "none",
        };
        write_audit(
            tx,
            at,
            &actor,
            AuditAction::KeyLeakReported,
            Some(&key.user_id),
            Some(&id),
            json!({"url": report.url, "source": report.source, "action": taken}),
        )
        .await?;
        if earlier == 0 {
            let after = fetch(tx, &id).await?;
            super::super::webhook_outbox::raise(
                tx,
                "key.leaked",
                &json!({"key": after, "url": report.url, "source": report.source, "action": taken}),
                at,
            )
            .await?;
        }
        return Ok(Some(LeakFound {
            id: id.to_string(),
            user_id: Some(key.user_id),
            action: taken,
            first_report: earlier == 0,
        }));
    }
    // An admin key is always revoked: it opens the management API.
    let admin: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT id, revoked_at FROM admin_keys WHERE key_hash = $1")
            .bind(hash.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((id, revoked_at)) = admin else {
        return Ok(None);
    };
    let revoked_now = revoked_at.is_none()
        && sqlx::query(
            "UPDATE admin_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(&id)
        .bind(ts(at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
    let taken = if revoked_now { "revoked" } else { "none" };
    if revoked_now {
        // Found where every admin key's revocation is: as `admin_key.revoke`.
        write_audit(
            tx,
            at,
            &actor,
            AuditAction::AdminKeyRevoke,
            None::<&UserId>,
            None,
            json!({"admin_key_id": id, "leak_reported": true}),
        )
        .await?;
    }
    write_audit(
        tx,
        at,
        &actor,
        AuditAction::KeyLeakReported,
        None::<&UserId>,
        None,
        json!({"admin_key_id": id, "url": report.url, "source": report.source, "action": taken}),
    )
    .await?;
    Ok(Some(LeakFound {
        id,
        user_id: None,
        action: taken,
        first_report: revoked_now,
    }))
}
