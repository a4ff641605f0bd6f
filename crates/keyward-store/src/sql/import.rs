//! Importing keys that were issued elsewhere: SHA-256 hashes (and what is known of each
//! key) in one transaction — all rows or none.

use std::collections::HashSet;

use keyward_core::{Environment, KeyHash, KeyId, PlanName};
use serde_json::json;
use sqlx::Row;

use super::keys::check_metadata_size;
use super::plans::ensure_plan;
use super::rows::{json, opt_ts, ts};
use super::{Backend, Conn, Lookup, exists, now, write_audit};
use crate::{
    Actor, AuditAction, ImportMode, ImportReport, ImportRow, SkippedRow, StoreError, StoreResult,
    UserProfile,
};

pub(super) async fn import(
    store: &Backend,
    rows: &[ImportRow],
    mode: ImportMode,
    actor: &Actor,
) -> StoreResult<ImportReport> {
    let at = now();
    let mut tx = store.write().await?;
    let mut known_plans: HashSet<PlanName> = HashSet::new();
    let mut seen: HashSet<KeyHash> = HashSet::new();
    let mut skipped = Vec::new();
    let mut imported = 0u64;
    let mut users_created = 0u64;
    for row in rows {
        let invalid =
            |message: String| StoreError::invalid("csv", format!("line {}: {message}", row.line));
        if let Some(plan) = &row.plan
            && !known_plans.contains(plan)
        {
            ensure_plan(&mut tx, plan)
                .await
                .map_err(|_| invalid(format!("unknown plan `{plan}`")))?;
            known_plans.insert(plan.clone());
        }
        if exists(&mut tx, Lookup::KeyByHash, &row.key_hash.to_hex()).await?
            || !seen.insert(row.key_hash)
        {
            skipped.push(SkippedRow {
                line: row.line,
                reason: "a key with this key_hash already exists".to_owned(),
            });
            continue;
        }
        let user = sqlx::query("SELECT deleted_at FROM users WHERE user_id = $1")
            .bind(row.user_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        match user {
            Some(user) => {
                let deleted: Option<String> = user.try_get("deleted_at")?;
                if deleted.is_some() {
                    return Err(invalid(format!("user `{}` is deleted", row.user_id)));
                }
            }
            None => {
                let plan = row.plan.clone().unwrap_or_else(PlanName::free);
                super::users::insert(&mut tx, &row.user_id, &plan, &UserProfile::default(), at)
                    .await?;
                users_created += 1;
            }
        }
        let mut metadata = row.metadata.clone();
        check_metadata_size(&metadata)
            .map_err(|_| invalid("metadata is over 16 KiB".to_owned()))?;
        let id = match &row.id {
            Some(id) if !id_taken(&mut tx, id).await? => id.clone(),
            Some(id) => {
                metadata.insert("legacy_id".to_owned(), json!(id));
                KeyId::generate()
            }
            None => KeyId::generate(),
        };
        let created_at = row.created_at.unwrap_or(at);
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, key_prefix, prefix, user_id, name, environment,
                 plan, created_at, updated_at, expires_at, is_active, revoked_at, metadata,
                 lineage_id, imported, locked_metadata)
             VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $1, TRUE, $14)",
        )
        .bind(id.as_str())
        .bind(row.key_hash.to_hex())
        .bind(
            row.key_prefix
                .clone()
                .unwrap_or_else(|| "imported…".to_owned()),
        )
        .bind(row.user_id.as_str())
        .bind(&row.name)
        .bind(Environment::Live.as_str())
        .bind(row.plan.as_ref().map(PlanName::as_str))
        .bind(ts(created_at))
        .bind(ts(at))
        .bind(opt_ts(row.expires_at))
        .bind(row.is_active)
        .bind((!row.is_active).then(|| ts(at)))
        .bind(json(&metadata))
        // Imported metadata comes from the operator: read-only to self-service.
        .bind(json(&metadata.keys().collect::<Vec<_>>()))
        .execute(&mut *tx)
        .await?;
        imported += 1;
    }
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::KeysImport,
        None,
        None,
        json!({"imported": imported, "skipped": skipped.len(), "users_created": users_created}),
    )
    .await?;
    let dry_run = mode == ImportMode::DryRun;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(ImportReport {
        dry_run,
        imported,
        skipped,
    })
}

async fn id_taken(conn: &mut Conn, id: &KeyId) -> StoreResult<bool> {
    exists(conn, Lookup::KeyById, id.as_str()).await
}
