//! Dashboard and portal sessions, and the one-time links that open portal sessions. Most
//! are one row changed by one statement, needing no store-wide write lock; a link's
//! creation and the revocation of a user's sessions (audited) and opening a link (used up
//! and turned into a session at once) take it.

use chrono::{DateTime, Duration, Utc};
use keyward_core::UserId;
use serde_json::json;
use sqlx::Row;

use super::rows::{get_opt_ts, get_ts, ts};
use super::{Backend, Conn, Lookup, exists, write_audit};
use crate::{
    Actor, AuditAction, NewWebSession, SessionHolder, StoreError, StoreResult, WebSession,
};

/// How stale `last_seen_at` may get before a request writes it again: an idle limit is
/// honoured to within this much, and a busy session costs one write per this interval.
const SEEN_RESOLUTION_SECONDS: i64 = 5;

pub(super) async fn create(store: &Backend, session: &NewWebSession) -> StoreResult<()> {
    let mut conn = store.pool.acquire().await?;
    insert(&mut conn, session).await
}

async fn insert(conn: &mut Conn, session: &NewWebSession) -> StoreResult<()> {
    let (kind, admin_key_id, user_id) = match &session.holder {
        SessionHolder::Admin(key) => ("admin", key.as_deref(), None),
        SessionHolder::Portal(user) => ("portal", None, Some(user.as_str())),
    };
    sqlx::query(
        "INSERT INTO web_sessions
             (token_hash, kind, admin_key_id, user_id, admin_token_hash, csrf_token, idle_seconds,
              created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(&session.token_hash)
    .bind(kind)
    .bind(admin_key_id)
    .bind(user_id)
    .bind(session.admin_token_hash.as_deref())
    .bind(&session.csrf_token)
    .bind(session.idle.num_seconds().max(1))
    .bind(ts(session.created_at))
    .bind(ts(session.expires_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn touch(
    store: &Backend,
    token_hash: &str,
    portal: bool,
    now: DateTime<Utc>,
) -> StoreResult<Option<WebSession>> {
    let Some(row) = sqlx::query(
        "SELECT s.kind, s.admin_key_id, s.user_id, s.admin_token_hash, s.csrf_token,
                s.idle_seconds, s.created_at, s.last_seen_at,
                s.expires_at, a.id AS key_found, a.revoked_at AS key_revoked_at,
                a.expires_at AS key_expires_at, u.user_id AS user_found,
                u.deleted_at AS user_deleted_at
         FROM web_sessions s
         LEFT JOIN admin_keys a ON a.id = s.admin_key_id
         LEFT JOIN users u ON u.user_id = s.user_id
         WHERE s.token_hash = $1 AND s.kind = $2",
    )
    .bind(token_hash)
    .bind(if portal { "portal" } else { "admin" })
    .fetch_optional(&store.pool)
    .await?
    else {
        return Ok(None);
    };
    let kind: String = row.try_get("kind")?;
    let holder = match kind.as_str() {
        "admin" => SessionHolder::Admin(row.try_get("admin_key_id")?),
        _ => {
            let user: String = row.try_get("user_id")?;
            SessionHolder::Portal(
                UserId::parse(&user).map_err(|error| StoreError::corrupt("user id", error))?,
            )
        }
    };
    let last_seen = get_ts(&row, "last_seen_at")?;
    let idle = Duration::seconds(row.try_get::<i64, _>("idle_seconds")?);
    let expires_at = get_ts(&row, "expires_at")?;
    let holder_live = match &holder {
        SessionHolder::Admin(None) => true,
        SessionHolder::Admin(Some(_)) => {
            let found: Option<String> = row.try_get("key_found")?;
            found.is_some()
                && get_opt_ts(&row, "key_revoked_at")?.is_none()
                && get_opt_ts(&row, "key_expires_at")?.is_none_or(|at| at > now)
        }
        SessionHolder::Portal(_) => {
            let found: Option<String> = row.try_get("user_found")?;
            found.is_some() && get_opt_ts(&row, "user_deleted_at")?.is_none()
        }
    };
    if !(holder_live && now < expires_at && now < last_seen + idle) {
        delete(store, token_hash).await?;
        return Ok(None);
    }
    if now - last_seen >= Duration::seconds(SEEN_RESOLUTION_SECONDS) {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(ts(now))
            .execute(&store.pool)
            .await?;
    }
    Ok(Some(WebSession {
        holder,
        admin_token_hash: row.try_get("admin_token_hash")?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: get_ts(&row, "created_at")?,
        expires_at,
    }))
}

pub(super) async fn delete(store: &Backend, token_hash: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&store.pool)
        .await?;
    Ok(())
}

pub(super) async fn create_link(
    store: &Backend,
    user: &UserId,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    actor: &Actor,
) -> StoreResult<()> {
    let at = super::now();
    let mut tx = store.write().await?;
    let deleted: Option<Option<String>> =
        sqlx::query_scalar("SELECT deleted_at FROM users WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if !matches!(deleted, Some(None)) {
        return Err(StoreError::NotFound("user"));
    }
    sqlx::query(
        "INSERT INTO portal_links (token_hash, user_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user.as_str())
    .bind(ts(at))
    .bind(ts(expires_at))
    .execute(&mut *tx)
    .await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::PortalSessionCreate,
        Some(user),
        None,
        json!({"expires_at": expires_at}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn open_portal(
    store: &Backend,
    link_hash: &str,
    session: &NewWebSession,
    now: DateTime<Utc>,
) -> StoreResult<Option<UserId>> {
    let mut tx = store.write().await?;
    // One statement: of two nodes using the same link at once, one alone sees its row.
    let user: Option<String> = sqlx::query_scalar(
        "UPDATE portal_links SET used_at = $2
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING user_id",
    )
    .bind(link_hash)
    .bind(ts(now))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    let user = UserId::parse(&user).map_err(|error| StoreError::corrupt("user id", error))?;
    let session = NewWebSession {
        holder: SessionHolder::Portal(user.clone()),
        ..session.clone()
    };
    insert(&mut tx, &session).await?;
    tx.commit().await?;
    Ok(Some(user))
}

pub(super) async fn revoke_user(store: &Backend, user: &UserId, actor: &Actor) -> StoreResult<u64> {
    let at = super::now();
    let mut tx = store.write().await?;
    if !exists(&mut tx, Lookup::UserById, user.as_str()).await? {
        return Err(StoreError::NotFound("user"));
    }
    let ended = end_all(&mut tx, user, at).await?;
    write_audit(
        &mut tx,
        at,
        actor,
        AuditAction::PortalSessionRevoke,
        Some(user),
        None,
        json!({"ended": ended}),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Ends every portal link and session of `user` (its revocation, its deletion); how many
/// could still have been used at `now`.
pub(super) async fn end_all(
    conn: &mut Conn,
    user: &UserId,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let links = sqlx::query(
        "DELETE FROM portal_links WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(user.as_str())
    .bind(ts(now))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM portal_links WHERE user_id = $1")
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?;
    let sessions = sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(links + sessions)
}

pub(super) async fn prune(store: &Backend, now: DateTime<Utc>) -> StoreResult<u64> {
    let sessions = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
        .bind(ts(now))
        .execute(&store.pool)
        .await?
        .rows_affected();
    let links = sqlx::query("DELETE FROM portal_links WHERE expires_at <= $1")
        .bind(ts(now))
        .execute(&store.pool)
        .await?
        .rows_affected();
    Ok(sessions + links)
}
