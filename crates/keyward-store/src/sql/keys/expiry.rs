//! A key's expiry: the latest a new key may expire under its user's plan, and the notices
//! (`key.expiring`, `key.expired`) raised as keys near and pass their expiry.

use chrono::{DateTime, Utc};
use keyward_core::UserId;

use super::super::rows::ts;
use super::super::{Backend, Conn};
use crate::{StoreError, StoreResult};

/// The latest a key of `user_id` made at `at` may expire, when the user's plan caps key
/// lifetimes (`max_key_lifetime_days`); `None` without a cap. It is the user's plan that
/// counts, not a plan set on the key itself.
pub(in super::super) async fn latest_expiry(
    conn: &mut Conn,
    user_id: &UserId,
    at: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
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

/// Raises `key.expiring` for active, unreplaced keys expiring within `notice` of `now`,
/// and `key.expired` for those whose expiry has passed — once per key and expiry value
/// (recorded in the same transaction), never for moments before `since`. At most `limit`
/// of each kind a call; returns how many were raised.
pub(in super::super) async fn raise_expiry_notices(
    store: &Backend,
    now: DateTime<Utc>,
    notice: chrono::Duration,
    since: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u32> {
    let open = "k.is_active = TRUE AND k.replaced_by IS NULL AND k.expires_at IS NOT NULL";
    // Not yet raised for this key and this expiry.
    let pending = |kind: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM key_expiry_notices n
                 WHERE n.key_id = k.id AND n.kind = '{kind}' AND n.expires_at = k.expires_at)"
        )
    };
    // Expiring: expiry in (now, now + notice]. The key entered its notice window at the
    // later of (expiry − notice) and its last change (a key made or changed inside the
    // window enters it then): that moment not before `since`.
    let expiring: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT k.id FROM api_keys k WHERE {open} AND k.expires_at > $1 AND k.expires_at <= $2
             AND (k.expires_at >= $3 OR k.updated_at >= $4) AND {} ORDER BY k.expires_at LIMIT $5",
        pending("expiring")
    ))
    .bind(ts(now))
    .bind(ts(now + notice))
    .bind(ts(since + notice))
    .bind(ts(since))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await?;
    // Expired: expiry in [since, now].
    let expired: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT k.id FROM api_keys k WHERE {open} AND k.expires_at <= $1 AND k.expires_at >= $2
             AND {} ORDER BY k.expires_at LIMIT $3",
        pending("expired")
    ))
    .bind(ts(now))
    .bind(ts(since))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await?;
    let found: Vec<(&str, String)> = expiring
        .into_iter()
        .map(|id| ("expiring", id))
        .chain(expired.into_iter().map(|id| ("expired", id)))
        .collect();
    if found.is_empty() {
        return Ok(0);
    }
    let mut tx = store.write().await?;
    let mut raised = 0;
    for (kind, id) in found {
        let key_id =
            keyward_core::KeyId::parse(&id).map_err(|e| StoreError::corrupt("key id", e))?;
        let key = super::fetch(&mut tx, &key_id).await?;
        let Some(expires_at) = key.expires_at else {
            continue;
        };
        // Judged again inside the transaction: the key may have changed since the look.
        let still = key.is_active
            && key.replaced_by.is_none()
            && if kind == "expiring" {
                expires_at > now && expires_at <= now + notice
            } else {
                expires_at <= now
            };
        if !still {
            continue;
        }
        let recorded = sqlx::query(
            "INSERT INTO key_expiry_notices (key_id, kind, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (key_id, kind, expires_at) DO NOTHING",
        )
        .bind(&id)
        .bind(kind)
        .bind(ts(expires_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if recorded == 1 {
            let event = if kind == "expiring" {
                "key.expiring"
            } else {
                "key.expired"
            };
            super::super::webhook_outbox::raise(
                &mut tx,
                event,
                &serde_json::json!({"key": key}),
                now,
            )
            .await?;
            raised += 1;
        }
    }
    tx.commit().await?;
    Ok(raised)
}
