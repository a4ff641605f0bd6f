//! User operations.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use keyward_core::{PlanName, UserId};
use serde_json::json;
use sqlx::QueryBuilder;

use super::plans::ensure_plan;
use super::revoke_in;
use super::rows::{json, ts, user_columns, user_from_row};
use super::{Backend, Conn, Db, Lookup, bad_cursor, exists, now, write_audit};
use crate::{
    Actor, AuditAction, NewUser, Page, StoreError, StoreResult, UserFilter, UserPatch, UserProfile,
    UserRecord, merge_metadata,
};

pub(super) async fn fetch(
    conn: &mut Conn,
    id: &UserId,
    at: DateTime<Utc>,
) -> StoreResult<UserRecord> {
    let sql = format!(
        "SELECT {} FROM users u WHERE u.user_id = $1",
        user_columns(at)
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    user_from_row(&row)
}

/// Inserts a user and opens its first billing segment.
pub(super) async fn insert(
    conn: &mut Conn,
    id: &UserId,
    plan: &PlanName,
    profile: &UserProfile,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (user_id, plan, email, company, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.as_str())
    .bind(plan.as_str())
    .bind(&profile.email)
    .bind(&profile.company)
    .bind(json(&profile.metadata))
    .bind(ts(at))
    .execute(&mut *conn)
    .await?;
    open_segment(conn, id, plan, at, at).await
}

/// Records that `id` is on `plan` from `effective_at`, with the plan's price as of now.
async fn open_segment(
    conn: &mut Conn,
    id: &UserId,
    plan: &PlanName,
    effective_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO plan_history (user_id, plan, effective_at, price_base_cents,
             price_included_requests, price_overage_cents_per_1000, created_at)
         SELECT $1, name, $3, price_base_cents, price_included_requests,
             price_overage_cents_per_1000, $4
         FROM plans WHERE name = $2",
    )
    .bind(id.as_str())
    .bind(plan.as_str())
    .bind(ts(effective_at))
    .bind(ts(at))
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn create(
    store: &Backend,
    user: &NewUser,
    actor: &Actor,
) -> StoreResult<UserRecord> {
    let at = now();
    let mut tx = store.write().await?;
    if exists(&mut tx, Lookup::UserById, user.user_id.as_str()).await? {
        return Err(StoreError::Conflict(format!(
            "user `{}` already exists",
            user.user_id
        )));
    }
    ensure_plan(&mut tx, &user.plan).await?;
    insert(&mut tx, &user.user_id, &user.plan, &user.profile, at).await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::UserCreate,
        Some(&user.user_id),
        None,
        json!({"plan": user.plan}),
    )
    .await?;
    let record = fetch(&mut tx, &user.user_id, at).await?;
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn list(store: &Backend, filter: &UserFilter) -> StoreResult<Page<UserRecord>> {
    let limit = filter.page.limit.clamp(1, 1000);
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT {} FROM users u WHERE u.deleted_at IS NULL",
        user_columns(now())
    ));
    if let Some(plan) = &filter.plan {
        query
            .push(" AND u.plan = ")
            .push_bind(plan.as_str().to_owned());
    }
    let listing = format!(
        "users\0{}",
        filter.plan.as_ref().map_or("*", PlanName::as_str)
    );
    if let Some(cursor) = &filter.page.cursor {
        let position = super::open_cursor(store, &listing, cursor).await?;
        let cursor = UserId::parse(&position).map_err(|_| bad_cursor())?;
        let mut conn = store.pool.acquire().await?;
        if !exists(&mut conn, Lookup::UserById, cursor.as_str()).await? {
            return Err(bad_cursor());
        }
        query
            .push(" AND (u.created_at, u.user_id) < (SELECT created_at, user_id FROM users WHERE user_id = ")
            .push_bind(cursor.into_string())
            .push(")");
    }
    query
        .push(" ORDER BY u.created_at DESC, u.user_id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(&store.pool).await?;
    let items = rows
        .iter()
        .map(user_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    super::page(store, &listing, items, limit, |user| {
        user.user_id.to_string()
    })
    .await
}

pub(super) async fn update(
    store: &Backend,
    id: &UserId,
    patch: &UserPatch,
    actor: &Actor,
) -> StoreResult<UserRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let mut user = fetch(&mut tx, id, at).await?;
    if user.deleted_at.is_some() {
        return Err(StoreError::Conflict(format!("user `{id}` is deleted")));
    }
    let mut fields = Vec::new();
    if let Some(plan) = &patch.plan {
        ensure_plan(&mut tx, plan).await?;
        if *plan != user.plan {
            let effective_at = patch.plan_effective_at.unwrap_or(at);
            let current_start: Option<String> =
                sqlx::query_scalar("SELECT MAX(effective_at) FROM plan_history WHERE user_id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            check_effective_at(effective_at, at, current_start.as_deref())?;
            open_segment(&mut tx, id, plan, effective_at, at).await?;
            // The billing providers hear of it through the outbox, in this transaction.
            let event_id = format!("pc_{}", keyward_core::monotonic_ulid());
            super::billing::insert_events(
                &mut tx,
                &[crate::BillingEvent {
                    payload: json!({
                        "type": "plan.changed",
                        "id": event_id,
                        "user_id": id,
                        "from_plan": user.plan,
                        "to_plan": plan,
                        "effective_at": keyward_core::time::format(&effective_at),
                    }),
                    id: event_id,
                    kind: "plan.changed".to_owned(),
                    user_id: id.clone(),
                    created_at: at,
                }],
            )
            .await?;
            super::webhook_outbox::raise(
                &mut tx,
                "user.plan_changed",
                &json!({
                    "user_id": id,
                    "from_plan": user.plan,
                    "to_plan": plan,
                    "effective_at": keyward_core::time::format(&effective_at),
                }),
                at,
            )
            .await?;
            user.plan = plan.clone();
        }
        fields.push("plan");
    } else if patch.plan_effective_at.is_some() {
        return Err(StoreError::invalid(
            "plan_effective_at",
            "only applies together with `plan`",
        ));
    }
    if let Some(email) = &patch.email {
        user.email.clone_from(email);
        fields.push("email");
    }
    if let Some(company) = &patch.company {
        user.company.clone_from(company);
        fields.push("company");
    }
    if let Some(metadata) = &patch.metadata {
        merge_metadata(&mut user.metadata, metadata);
        fields.push("metadata");
    }
    sqlx::query("UPDATE users SET plan = $2, email = $3, company = $4, metadata = $5, updated_at = $6 WHERE user_id = $1")
        .bind(id.as_str())
        .bind(user.plan.as_str())
        .bind(&user.email)
        .bind(&user.company)
        .bind(json(&user.metadata))
        .bind(ts(at))
        .execute(&mut *tx)
        .await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::UserUpdate,
        Some(id),
        None,
        json!({"fields": fields, "plan": user.plan}),
    )
    .await?;
    let record = fetch(&mut tx, id, at).await?;
    tx.commit().await?;
    Ok(record)
}

/// A plan change may be back-dated, but not into the future, not before the current month
/// (its invoice may be final) and not before the segment it ends began.
fn check_effective_at(
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
    current_start: Option<&str>,
) -> StoreResult<()> {
    let month_start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    if effective_at > now {
        return Err(StoreError::invalid(
            "plan_effective_at",
            "must not be in the future",
        ));
    }
    if effective_at < month_start {
        return Err(StoreError::invalid(
            "plan_effective_at",
            "must be within the current month",
        ));
    }
    if let Some(start) = current_start
        && ts(effective_at).as_str() < start
    {
        return Err(StoreError::invalid(
            "plan_effective_at",
            "must not precede the start of the current plan",
        ));
    }
    Ok(())
}

pub(super) async fn delete(store: &Backend, id: &UserId, actor: &Actor) -> StoreResult<UserRecord> {
    let at = now();
    let mut tx = store.write().await?;
    let user = fetch(&mut tx, id, at).await?;
    if user.deleted_at.is_some() {
        return Ok(user);
    }
    let revoked = revoke_all(&mut tx, id, actor, at).await?;
    super::sessions::end_all(&mut tx, id, at).await?;
    sqlx::query("UPDATE users SET deleted_at = $2, updated_at = $2 WHERE user_id = $1")
        .bind(id.as_str())
        .bind(ts(at))
        .execute(&mut *tx)
        .await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::UserDelete,
        Some(id),
        None,
        json!({"revoked_keys": revoked}),
    )
    .await?;
    let record = fetch(&mut tx, id, at).await?;
    tx.commit().await?;
    Ok(record)
}

/// Revokes every unrevoked key of the user, with an audit record each.
async fn revoke_all(
    conn: &mut Conn,
    id: &UserId,
    actor: &Actor,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE user_id = $1 AND is_active = TRUE")
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await?;
    for key_id in &ids {
        let key_id =
            keyward_core::KeyId::parse(key_id).map_err(|e| StoreError::corrupt("key id", e))?;
        revoke_in(conn, &key_id, at).await?;
        write_audit(
            conn,
            at,
            actor,
            AuditAction::KeyRevoke,
            Some(id),
            Some(&key_id),
            json!({"reason": "user"}),
        )
        .await?;
    }
    Ok(ids.len() as u64)
}

pub(super) async fn revoke_keys(store: &Backend, id: &UserId, actor: &Actor) -> StoreResult<u64> {
    let at = now();
    let mut tx = store.write().await?;
    if !exists(&mut tx, Lookup::UserById, id.as_str()).await? {
        return Err(StoreError::NotFound("user"));
    }
    let revoked = revoke_all(&mut tx, id, actor, at).await?;
    tx.commit().await?;
    Ok(revoked)
}
