//! Leak reports from secret scanners: the named key is revoked (or disabled, or only
//! noted), and every report is audited, in one transaction.

use keyward_core::{KeyHash, KeyId, UserId};
use serde_json::json;

use super::super::rows::ts;
use super::super::{Backend, now, revoke_in, write_audit};
use super::fetch;
use crate::{
    Actor, ActorKind, AuditAction, KeyStatus, LeakAction, LeakFound, LeakReport, StoreResult,
};

pub(in super::super) async fn report_leak(
    store: &Backend,
    hash: &KeyHash,
    action: LeakAction,
    report: &LeakReport,
) -> StoreResult<Option<LeakFound>> {
    let at = now();
    let actor = Actor {
        kind: ActorKind::GitHub,
        ip: None,
    };
    let mut tx = store.write().await?;
    let key_id: Option<String> = sqlx::query_scalar("SELECT id FROM api_keys WHERE key_hash = $1")
        .bind(hash.to_hex())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(id) = key_id {
        let id = KeyId::parse(&id).map_err(|e| crate::StoreError::corrupt("key id", e))?;
        let key = fetch(&mut tx, &id).await?;
        let earlier: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1 AND key_id = $2")
                .bind(AuditAction::KeyLeakReported.as_str())
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let taken = match (key.status(at), action) {
            (KeyStatus::Active | KeyStatus::Disabled, LeakAction::Revoke) => {
                revoke_in(&mut tx, &id, at).await?;
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
            &mut tx,
            at,
            &actor,
            AuditAction::KeyLeakReported,
            Some(&key.user_id),
            Some(&id),
            json!({"url": report.url, "source": report.source, "action": taken}),
        )
        .await?;
        tx.commit().await?;
        return Ok(Some(LeakFound {
            id: id.to_string(),
            user_id: Some(key.user_id),
            action: taken,
            first_report: earlier == 0,
        }));
    }
    // An admin key is always revoked: it opens the management API.
    let admin: Option<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, revoked_at, expires_at FROM admin_keys WHERE key_hash = $1")
            .bind(hash.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((id, revoked_at, _)) = admin else {
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
    write_audit(
        &mut tx,
        at,
        &actor,
        AuditAction::KeyLeakReported,
        None::<&UserId>,
        None,
        json!({"admin_key_id": id, "url": report.url, "source": report.source, "action": taken}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(LeakFound {
        id,
        user_id: None,
        action: taken,
        first_report: revoked_now,
    }))
}
