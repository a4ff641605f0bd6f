//! Key operations.

use chrono::DateTime;
use keyward_core::{KeyHash, KeyId, PlanName, UserId};
use serde_json::json;
use sqlx::{QueryBuilder, Row};

mod expiry;
mod leaks;
mod rotate;
mod update;

pub(super) use expiry::{latest_expiry, raise_expiry_notices};
pub(super) use leaks::report_leaks;
pub(super) use rotate::rotate;
pub(super) use update::update;

use super::plans::ensure_plan;
use super::rows::{KEY_COLUMNS, int, json, key_from_row, open_key_sql, opt_ts, ts};
use super::{Backend, Conn, Db, Lookup, bad_cursor, exists, now, revoke_in, write_audit};
use crate::{
    Actor, AuditAction, KeyFilter, KeyMaterial, KeyRecord, KeySpec, Page, StoreError, StoreResult,
    UserProfile,
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
    super::webhook_outbox::raise(&mut tx, "key.created", &json!({"key": record}), at).await?;
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
    match filter.status {
        Some(status) => {
            query.push(" AND ").push(status_sql(status, at));
        }
        None if !filter.include_inactive => {
            query.push(" AND ").push(open_key_sql(at));
        }
        None => {}
    }
    if let Some(plan) = &filter.plan {
        query
            .push(" AND COALESCE(k.plan, u.plan) = ")
            .push_bind(plan.as_str().to_owned());
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query
            .push(" AND (k.id = ")
            .push_bind(search.to_owned())
            .push(" OR k.user_id = ")
            .push_bind(search.to_owned())
            .push(" OR k.key_prefix LIKE ")
            .push_bind(format!("{escaped}%"))
            .push(" ESCAPE '\\' OR lower(k.name) LIKE ")
            .push_bind(format!("%{}%", escaped.to_lowercase()))
            .push(" ESCAPE '\\')");
    }
    let listing = format!(
        "keys\0{}\0{}\0{}\0{:?}\0{}",
        filter.user_id.as_ref().map_or("*", UserId::as_str),
        filter.include_inactive,
        filter.search.as_deref().unwrap_or(""),
        filter.status,
        filter.plan.as_ref().map_or("*", PlanName::as_str),
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

/// The SQL side of one key state (see [`keyward_core::KeyStatus::of`]), for a key table
/// aliased `k` at `at`.
fn status_sql(status: keyward_core::KeyStatus, at: DateTime<chrono::Utc>) -> String {
    use keyward_core::KeyStatus;
    match status {
        KeyStatus::Active => super::rows::active_key_sql(at),
        KeyStatus::Revoked => "k.is_active = FALSE".to_owned(),
        KeyStatus::Disabled => "(k.is_active = TRUE AND k.enabled = FALSE)".to_owned(),
        KeyStatus::Expired => format!(
            "(k.is_active = TRUE AND k.enabled = TRUE AND k.expires_at IS NOT NULL AND k.expires_at <= '{}')",
            ts(at)
        ),
    }
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
