//! Rotation: a key hands its settings and its rate-limit lineage to a successor, at most
//! once — a compare-and-set on the old key decides which of two racing rotations wins.

use keyward_core::KeyId;
use serde_json::json;

use super::super::rows::{active_key_sql, ts};
use super::super::{Backend, now, write_audit};
use super::{fetch, insert, unchanged_since};
use crate::{
    Actor, AuditAction, KeyMaterial, KeyRecord, KeySpec, Rotation, StoreError, StoreResult,
    UserProfile,
};

pub(in super::super) async fn rotate(
    store: &Backend,
    id: &KeyId,
    rotation: &Rotation,
    material: &KeyMaterial,
    actor: &Actor,
) -> StoreResult<(KeyRecord, KeyRecord)> {
    let at = now();
    let mut tx = store.write().await?;
    let old = fetch(&mut tx, id).await?;
    unchanged_since(&old, rotation.if_unchanged_since)?;
    let status = old.status(at);
    if status != crate::KeyStatus::Active || old.replaced_by.is_some() {
        let why = if status != crate::KeyStatus::Active {
            format!("is {}", status.as_str())
        } else {
            "was already rotated".to_owned()
        };
        return Err(StoreError::Conflict(format!(
            "key `{id}` {why} and cannot be rotated"
        )));
    }
    // A grace period never lengthens a key's life.
    let grace_end = at + rotation.grace;
    let old_expiry = old
        .expires_at
        .map_or(grace_end, |current| current.min(grace_end));
    // The compare-and-set that makes a key rotate at most once, even when two nodes try at
    // the same instant: only the rotation that still finds the key active and unreplaced
    // changes it (PostgreSQL re-checks the condition on the row it waited for).
    let claimed = sqlx::query(&format!(
        "UPDATE api_keys AS k SET expires_at = $2, replaced_by = $3, updated_at = $4
         WHERE k.id = $1 AND k.replaced_by IS NULL AND {}",
        active_key_sql(at)
    ))
    .bind(id.as_str())
    .bind(ts(old_expiry))
    .bind(material.id.as_str())
    .bind(ts(at))
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "key `{id}` was rotated or revoked meanwhile"
        )));
    }
    let spec = KeySpec {
        user_id: old.user_id.clone(),
        name: old.name.clone(),
        environment: old.environment,
        prefix: Some(material.prefix.clone()),
        plan: old.plan.clone(),
        // The new key keeps the old key's expiry unless told otherwise, within the cap the
        // user's plan puts on a new key's life.
        expires_at: match (
            rotation.expires_at.or(old.expires_at),
            super::latest_expiry(&mut tx, &old.user_id, at).await?,
        ) {
            (asked, None) => asked,
            (asked, Some(latest)) => Some(asked.map_or(latest, |asked| asked.min(latest))),
        },
        rate_limit_per_hour: old.rate_limit_per_hour,
        limits: old.limits.clone(),
        allowed_ips: old.allowed_ips.clone(),
        scopes: old.scopes.clone(),
        metadata: old.metadata.clone(),
        new_user: UserProfile::default(),
    };
    insert(
        &mut tx,
        material,
        &spec,
        &old.lineage_id,
        &old.locked_metadata,
        at,
    )
    .await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::KeyRotate,
        Some(&old.user_id),
        Some(id),
        json!({
            "new_key_id": material.id,
            "new_key_prefix": material.key_prefix,
            "grace_period_seconds": rotation.grace.num_seconds(),
        }),
    )
    .await?;
    let new = fetch(&mut tx, &material.id).await?;
    let old = fetch(&mut tx, id).await?;
    super::super::webhook_outbox::raise(
        &mut tx,
        "key.rotated",
        &json!({"key": new, "old_key": old}),
        at,
    )
    .await?;
    tx.commit().await?;
    Ok((new, old))
}
