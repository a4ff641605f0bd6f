//! Plan operations.

use keyward_core::{Plan, PlanName};
use serde_json::json;

use super::rows::{int, json, plan_from_row, ts};
use super::{Backend, Conn, Lookup, PLAN_ORDER, exists, now, write_audit};
use crate::{Actor, AuditAction, StoreError, StoreResult};

const PLAN_COLUMNS: &str = "name, limits, burst, monthly_quota, max_keys, features, \
    price_base_cents, price_included_requests, price_overage_cents_per_1000, \
    max_key_lifetime_days";

pub(super) async fn list(store: &Backend) -> StoreResult<Vec<Plan>> {
    let sql = format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY {PLAN_ORDER}");
    let rows = sqlx::query(&sql).fetch_all(&store.pool).await?;
    rows.iter().map(plan_from_row).collect()
}

pub(super) async fn fetch(conn: &mut Conn, name: &PlanName) -> StoreResult<Plan> {
    let sql = format!("SELECT {PLAN_COLUMNS} FROM plans WHERE name = $1");
    let row = sqlx::query(&sql)
        .bind(name.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound("plan"))?;
    plan_from_row(&row)
}

pub(super) async fn put(store: &Backend, plan: &Plan, actor: &Actor) -> StoreResult<Plan> {
    plan.spec
        .validate()
        .map_err(|error| StoreError::invalid(error.field, error.reason))?;
    let at = now();
    let spec = &plan.spec;
    let mut tx = store.write().await?;
    sqlx::query(
        "INSERT INTO plans (name, limits, burst, monthly_quota, max_keys, features,
             price_base_cents, price_included_requests, price_overage_cents_per_1000,
             created_at, updated_at, max_key_lifetime_days)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)
         ON CONFLICT (name) DO UPDATE SET limits = excluded.limits, burst = excluded.burst,
             monthly_quota = excluded.monthly_quota, max_keys = excluded.max_keys,
             features = excluded.features, price_base_cents = excluded.price_base_cents,
             price_included_requests = excluded.price_included_requests,
             price_overage_cents_per_1000 = excluded.price_overage_cents_per_1000,
             updated_at = excluded.updated_at,
             max_key_lifetime_days = excluded.max_key_lifetime_days",
    )
    .bind(plan.name.as_str())
    .bind(json(&spec.limits))
    .bind(spec.burst.as_ref().map(json))
    .bind(spec.monthly_quota.map(int))
    .bind(spec.max_keys.map(int))
    .bind(spec.features.as_ref().map(json))
    .bind(spec.price.as_ref().map(|p| int(p.base_cents)))
    .bind(spec.price.as_ref().map(|p| int(p.included_requests)))
    .bind(spec.price.as_ref().map(|p| int(p.overage_cents_per_1000)))
    .bind(ts(at))
    .bind(spec.max_key_lifetime_days.map(i64::from))
    .execute(&mut *tx)
    .await?;
    super::usage::note_price(&mut tx, &plan.name, spec.price.as_ref(), at).await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::PlanUpdate,
        None,
        None,
        json!({"plan": plan}),
    )
    .await?;
    let stored = fetch(&mut tx, &plan.name).await?;
    tx.commit().await?;
    Ok(stored)
}

/// `Invalid` unless the plan exists.
pub(super) async fn ensure_plan(conn: &mut Conn, plan: &PlanName) -> StoreResult<()> {
    if exists(conn, Lookup::PlanByName, plan.as_str()).await? {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "plan",
            format!("unknown plan `{plan}`"),
        ))
    }
}
