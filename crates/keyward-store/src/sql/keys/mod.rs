//! Key operations.

use chrono::DateTime;
use keyward_core::{KeyHash, KeyId, PlanName, UserId};
use serde_json::json;
use sqlx::{QueryBuilder, Row};

mod leaks;
mod rotate;

pub(super) use leaks::report_leaks;
pub(super) use rotate::rotate;

use super::plans::ensure_plan;
use super::rows::{KEY_COLUMNS, int, json, key_from_row, open_key_sql, opt_ts, ts};
use super::{Backend, Conn, Db, Lookup, bad_cursor, exists, now, revoke_in, write_audit};
use crate::{
    Actor, AuditAction, KeyFilter, KeyMaterial, KeyPatch, KeyRecord, KeySpec, Page, StoreError,
    StoreResult, UserProfile, merge_metadata,
};

pub(super) async fn fetch(conn: &mut Conn, id: &KeyId) -> StoreResult<KeyRecord> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN users u ON u.user_id = k.user_id WHERE k.id = $1"
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound("key"))?;
    key_from_row(&row)
}

pub(super) async fn lookup(store: &Backend, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN users u ON u.user_id = k.user_id WHERE k.key_hash = $1"
    );
    sqlx::query(&sql)
        .bind(hash.to_hex())
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
}

/// The user's plan, creating the user on plan `free` if it does not exist.
/// `Conflict` if the user is deleted.
async fn plan_of_user_or_create(
    conn: &mut Conn,
    user_id: &UserId,
    profile: &UserProfile,
    actor: &Actor,
    at: DateTime<chrono::Utc>,
) -> StoreResult<PlanName> {
    let row = sqlx::query("SELECT plan, deleted_at FROM users WHERE user_id = $1")
        .bind(user_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => {
            let deleted: Option<String> = row.try_get("deleted_at")?;
            if deleted.is_some() {
                return Err(StoreError::Conflict(format!("user `{user_id}` is deleted")));
            }
            let plan: String = row.try_get("plan")?;
            PlanName::parse(&plan).map_err(|e| StoreError::corrupt("plan", e))
        }
        None => {
            let plan = PlanName::free();
            super::users::insert(conn, user_id, &plan, profile, at).await?;
            write_audit(
                conn,
                at,
                actor,
                AuditAction::UserCreate,
                Some(user_id),
                None,
                json!({"plan": plan, "created_for": "key.create"}),
            )
            .await?;
            Ok(plan)
        }
    }
}

/// Keys counted against `max_keys`: active or disabled (not revoked, not expired).
async fn open_key_count(
    conn: &mut Conn,
    user_id: &UserId,
    at: DateTime<chrono::Utc>,
) -> StoreResult<u64> {
    let sql = format!(
        "SELECT COUNT(*) FROM api_keys k WHERE k.user_id = $1 AND {}",
        open_key_sql(at)
    );
    let count: i64 = sqlx::query_scalar(&sql)
        .bind(user_id.as_str())
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut Conn,
    material: &KeyMaterial,
    spec: &KeySpec,
    lineage_id: &str,
    locked: &[String],
    at: DateTime<chrono::Utc>,
) -> StoreResult<()> {
    check_metadata_size(&spec.metadata)?;
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, key_prefix, prefix, user_id, name, environment, plan,
             created_at, updated_at, expires_at, rate_limit_per_hour, limits, allowed_ips, scopes,
             metadata, lineage_id, imported, locked_metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16, FALSE, $17)",
    )
    .bind(material.id.as_str())
    .bind(material.hash.to_hex())
    .bind(&material.key_prefix)
    .bind(material.prefix.as_str())
    .bind(spec.user_id.as_str())
    .bind(&spec.name)
    .bind(spec.environment.as_str())
    .bind(spec.plan.as_ref().map(PlanName::as_str))
    .bind(ts(at))
    .bind(opt_ts(spec.expires_at))
    .bind(spec.rate_limit_per_hour.map(int))
    .bind(spec.limits.as_ref().map(json))
    .bind(spec.allowed_ips.as_ref().map(json))
    .bind(json(&spec.scopes))
    .bind(json(&spec.metadata))
    .bind(lineage_id)
    .bind(json(locked))
    .execute(conn)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a key with this id or hash already exists".to_owned())
        }
        _ => error.into(),
    })?;
    Ok(())
}

pub(super) async fn create(
    store: &Backend,
    spec: &KeySpec,
    material: &KeyMaterial,
    actor: &Actor,
) -> StoreResult<KeyRecord> {
    let at = now();
    let mut tx = store.write().await?;
    if let Some(plan) = &spec.plan {
        ensure_plan(&mut tx, plan).await?;
    }
    let user_plan =
        plan_of_user_or_create(&mut tx, &spec.user_id, &spec.new_user, actor, at).await?;
    let max_keys: Option<i64> = sqlx::query_scalar("SELECT max_keys FROM plans WHERE name = $1")
        .bind(user_plan.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
    // The user's plan may cap the key's life: a later (or no) expiry becomes the cap.
    let mut spec = std::borrow::Cow::Borrowed(spec);
    if let Some(latest) = latest_expiry(&mut tx, &spec.user_id, at).await? {
        let clamped = spec.expires_at.map_or(latest, |asked| asked.min(latest));
        spec.to_mut().expires_at = Some(clamped);
    }
    let spec = spec.as_ref();
    if let Some(max_keys) = max_keys {
        let open = open_key_count(&mut tx, &spec.user_id, at).await?;
        if open >= u64::try_from(max_keys).unwrap_or(0) {
            return Err(StoreError::Conflict(format!(
                "user `{}` already has {open} keys, the most its plan `{user_plan}` allows",
                spec.user_id
            )));
        }
    }
    // What an operator sets, a user's own keys may not change.
    let locked = if actor.is_operator() {
        spec.metadata.keys().cloned().collect()
    } else {
        Vec::new()
    };
    insert(&mut tx, material, spec, material.id.as_str(), &locked, at).await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::KeyCreate,
        Some(&spec.user_id),
        Some(&material.id),
        json!({
            "name": spec.name,
            "environment": spec.environment,
            "key_prefix": material.key_prefix,
            "plan": spec.plan,
        }),
    )
    .await?;
    let record = fetch(&mut tx, &material.id).await?;
    super::webhooks::raise(&mut tx, "key.created", &json!({"key": record}), at).await?;
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn list(store: &Backend, filter: &KeyFilter) -> StoreResult<Page<KeyRecord>> {
    let at = now();
    let limit = filter.page.limit.clamp(1, 1000);
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN users u ON u.user_id = k.user_id WHERE 1 = 1"
    ));
    if let Some(user_id) = &filter.user_id {
        query.push(" AND k.user_id = ").push_bind(user_id.as_str());
    }
    if !filter.include_inactive {
        query.push(" AND ").push(open_key_sql(at));
    }
    let listing = format!(
        "keys\0{}\0{}",
        filter.user_id.as_ref().map_or("*", UserId::as_str),
        filter.include_inactive
    );
    if let Some(cursor) = &filter.page.cursor {
        let position = super::open_cursor(store, &listing, cursor).await?;
        let cursor = cursor_key(store, &position).await?;
        query
            .push(" AND (k.created_at, k.id) < (SELECT created_at, id FROM api_keys WHERE id = ")
            .push_bind(cursor.as_str().to_owned())
            .push(")");
    }
    query
        .push(" ORDER BY k.created_at DESC, k.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(&store.pool).await?;
    let items = rows
        .iter()
        .map(key_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    super::page(store, &listing, items, limit, |key| key.id.to_string()).await
}

async fn cursor_key(store: &Backend, cursor: &str) -> StoreResult<KeyId> {
    let id = KeyId::parse(cursor).map_err(|_| bad_cursor())?;
    let mut conn = store.pool.acquire().await?;
    if exists(&mut conn, Lookup::KeyById, id.as_str()).await? {
        Ok(id)
    } else {
        Err(bad_cursor())
    }
}

/// The latest a key of `user_id` made at `at` may expire, when the user's plan caps key
/// lifetimes (`max_key_lifetime_days`); `None` without a cap. It is the user's plan that
/// counts, not a plan set on the key itself.
pub(super) async fn latest_expiry(
    conn: &mut Conn,
    user_id: &UserId,
    at: DateTime<chrono::Utc>,
) -> StoreResult<Option<DateTime<chrono::Utc>>> {
    let days: Option<i64> = sqlx::query_scalar(
        "SELECT p.max_key_lifetime_days FROM users u JOIN plans p ON p.name = u.plan
         WHERE u.user_id = $1",
    )
    .bind(user_id.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    Ok(days.map(|days| at + chrono::Duration::days(days)))
}

pub(super) async fn update(
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
                    super::rows::ts(latest)
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
        super::webhooks::raise(&mut tx, "key.updated", &json!({"key": record}), at).await?;
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

pub(super) async fn revoke(store: &Backend, id: &KeyId, actor: &Actor) -> StoreResult<KeyRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let key = fetch(&mut tx, id).await?;
    if !key.is_active {
        return Ok(key);
    }
    revoke_in(&mut tx, id, at).await?;
    // A key revoked by its own holder (with the key itself) says so.
    let details = if matches!(&actor.kind, crate::ActorKind::Key(by) if by == id) {
        json!({"self_revoke": true})
    } else {
        json!({})
    };
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::KeyRevoke,
        Some(&key.user_id),
        Some(id),
        details,
    )
    .await?;
    let record = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(record)
}

/// The compare-and-set behind self-service checks: a change judged against one version of a
/// key applies only to that version (an admin's change in between makes it a conflict).
fn unchanged_since(key: &KeyRecord, expected: Option<DateTime<chrono::Utc>>) -> StoreResult<()> {
    match expected {
        Some(at) if at != key.updated_at => Err(StoreError::Conflict(format!(
            "key `{}` changed while this request was judged; read it again",
            key.id
        ))),
        _ => Ok(()),
    }
}

/// Refuses metadata over [`crate::MAX_METADATA_BYTES`] as compact JSON: it is returned on
/// every verification.
pub(super) fn check_metadata_size(metadata: &crate::Metadata) -> StoreResult<()> {
    if json(metadata).len() > crate::MAX_METADATA_BYTES {
        return Err(StoreError::invalid(
            "metadata",
            "must be at most 16 KiB as compact JSON (after merging)",
        ));
    }
    Ok(())
}
