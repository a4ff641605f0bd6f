//! Changing a key: every field an update may touch, each under the rules a caller must
//! meet (the plan's lifetime cap, a key's own plan, metadata size), compare-and-set on the
//! key's last change, and one audit record naming the fields changed.

use keyward_core::{KeyId, PlanName};
use serde_json::json;

use super::super::plans::ensure_plan;
use super::super::rows::{int, json, opt_ts, ts};
use super::super::{Backend, now, write_audit};
use super::{check_metadata_size, fetch, latest_expiry, unchanged_since};
use crate::{Actor, AuditAction, KeyPatch, KeyRecord, StoreError, StoreResult, merge_metadata};

pub(in super::super) async fn update(
    store: &Backend,
    id: &KeyId,
    patch: &KeyPatch,
    actor: &Actor,
) -> StoreResult<KeyRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let mut key = fetch(&mut tx, id).await?;
    unchanged_since(&key, patch.if_unchanged_since)?;
    // Under a cap on key lifetimes, a key lives at most that long from its creation: a
    // change may shorten its life, never lengthen it past the cap (nor remove its expiry).
    if let Some(asked) = patch.expires_at
        && asked != key.expires_at
        && let Some(latest) = latest_expiry(&mut tx, &key.user_id, key.created_at).await?
    {
        let lengthens = match (asked, key.expires_at) {
            (None, _) => true,
            // A key without expiry (made before the cap) only gets shorter by having one.
            (Some(_), None) => false,
            (Some(asked), Some(current)) => asked > latest && asked > current,
        };
        if lengthens {
            return Err(StoreError::invalid(
                "expires_at",
                format!(
                    "may be at most {} (the user's plan caps how long its keys live)",
                    super::super::rows::ts(latest)
                ),
            ));
        }
    }
    if let Some(Some(plan)) = &patch.plan {
        ensure_plan(&mut tx, plan).await?;
    }
    let was_enabled = key.enabled;
    if let Some(name) = &patch.name {
        key.name.clone_from(name);
    }
    if let Some(enabled) = patch.enabled {
        // Who disabled it decides who may enable it again; an operator disabling a key its
        // user disabled takes the decision over.
        if enabled != key.enabled || (!enabled && actor.is_operator()) {
            key.disabled_by = (!enabled).then(|| actor.label());
        }
        key.enabled = enabled;
    }
    if let Some(expires_at) = patch.expires_at {
        key.expires_at = expires_at;
    }
    if let Some(allowed_ips) = &patch.allowed_ips {
        key.allowed_ips.clone_from(allowed_ips);
    }
    if let Some(scopes) = &patch.scopes {
        key.scopes.clone_from(scopes);
    }
    if let Some(metadata) = &patch.metadata {
        merge_metadata(&mut key.metadata, metadata);
        check_metadata_size(&key.metadata)?;
        if actor.is_operator() {
            // Members an operator sets become read-only to self-service; members it
            // removes are nobody's.
            for (member, value) in metadata {
                let locked = key.locked_metadata.iter().any(|m| m == member);
                if value.is_null() {
                    key.locked_metadata.retain(|m| m != member);
                } else if !locked {
                    key.locked_metadata.push(member.clone());
                }
            }
        }
        key.locked_metadata
            .retain(|member| key.metadata.contains_key(member));
    }
    if let Some(plan) = &patch.plan {
        key.plan.clone_from(plan);
    }
    if let Some(rate) = patch.rate_limit_per_hour {
        key.rate_limit_per_hour = rate;
    }
    if let Some(limits) = &patch.limits {
        key.limits.clone_from(limits);
    }
    sqlx::query(
        "UPDATE api_keys SET name = $2, enabled = $3, expires_at = $4, allowed_ips = $5,
             scopes = $6, metadata = $7, plan = $8, rate_limit_per_hour = $9, limits = $10,
             updated_at = $11, disabled_by = $12, locked_metadata = $13
         WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(&key.name)
    .bind(key.enabled)
    .bind(opt_ts(key.expires_at))
    .bind(key.allowed_ips.as_ref().map(json))
    .bind(json(&key.scopes))
    .bind(json(&key.metadata))
    .bind(key.plan.as_ref().map(PlanName::as_str))
    .bind(key.rate_limit_per_hour.map(int))
    .bind(key.limits.as_ref().map(json))
    .bind(ts(at))
    .bind(key.disabled_by.as_deref())
    .bind(json(&key.locked_metadata))
    .execute(&mut *tx)
    .await?;
    if key.enabled != was_enabled {
        let action = if key.enabled {
            AuditAction::KeyEnable
        } else {
            AuditAction::KeyDisable
        };
        write_audit(
            &mut tx,
            at,
            actor,
            action,
            Some(&key.user_id),
            Some(id),
            json!({}),
        )
        .await?;
    }
    if patch.changes_settings() {
        write_audit(
            &mut tx,
            at,
            actor,
            AuditAction::KeyUpdate,
            Some(&key.user_id),
            Some(id),
            json!({"fields": patch_fields(patch)}),
        )
        .await?;
    }
    let record = fetch(&mut tx, id).await?;
    // One `key.updated` per audit record (a change of settings, an enable or disable).
    let changes = usize::from(key.enabled != was_enabled) + usize::from(patch.changes_settings());
    for _ in 0..changes {
        super::super::webhook_outbox::raise(&mut tx, "key.updated", &json!({"key": record}), at)
            .await?;
    }
    tx.commit().await?;
    Ok(record)
}

/// The names of the fields a patch sets, for the audit record.
fn patch_fields(patch: &KeyPatch) -> Vec<&'static str> {
    [
        ("name", patch.name.is_some()),
        ("expires_at", patch.expires_at.is_some()),
        ("allowed_ips", patch.allowed_ips.is_some()),
        ("scopes", patch.scopes.is_some()),
        ("metadata", patch.metadata.is_some()),
        ("plan", patch.plan.is_some()),
        ("rate_limit_per_hour", patch.rate_limit_per_hour.is_some()),
        ("limits", patch.limits.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}
