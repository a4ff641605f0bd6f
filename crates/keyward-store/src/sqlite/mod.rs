//! The embedded SQLite backend: one file, WAL mode, created on first use.

mod audit;
mod keys;
mod plans;
mod rows;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyward_core::{KeyHash, KeyId, Plan, PlanName, UserId};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool, Transaction};

use crate::{
    Actor, AuditFilter, AuditRecord, ChangeEvent, ImportReport, ImportRow, KeyFilter, KeyMaterial,
    KeyPatch, KeyRecord, KeySpec, KeyUsage, MigrationInfo, NewUser, Page, QuotaUsage, Rotation,
    Store, StoreError, StoreResult, UserFilter, UserPatch, UserRecord,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Keys, users, plans, audit log and change feed in one SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite::memory:`).
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::invalid("database_url", error.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database lives and dies with its one connection.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that takes the write lock up front: a deferred transaction that
    /// reads and then writes can fail with SQLITE_BUSY instead of waiting its turn.
    async fn write(&self) -> StoreResult<Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<(i64, DateTime<Utc>)>> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT version, installed_on FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let version: i64 = row.try_get("version")?;
                let installed: String = row.try_get("installed_on")?;
                // SQLite's CURRENT_TIMESTAMP: 'YYYY-MM-DD HH:MM:SS' in UTC.
                let at = chrono::NaiveDateTime::parse_from_str(&installed, "%Y-%m-%d %H:%M:%S")
                    .map_err(|error| StoreError::corrupt("migration timestamp", error))?
                    .and_utc();
                Ok((version, at))
            })
            .collect()
    }
}

/// Now, at the millisecond precision the database keeps.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Rows that can be checked for existence by one text column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup {
    UserById,
    KeyById,
    KeyByHash,
    PlanByName,
}

/// Whether a row exists (`Lookup` names the table and column; `value` is bound).
pub(crate) async fn exists(
    conn: &mut SqliteConnection,
    lookup: Lookup,
    value: &str,
) -> StoreResult<bool> {
    let sql = match lookup {
        Lookup::UserById => "SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)",
        Lookup::KeyById => "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)",
        Lookup::KeyByHash => "SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = $1)",
        Lookup::PlanByName => "SELECT EXISTS (SELECT 1 FROM plans WHERE name = $1)",
    };
    Ok(sqlx::query_scalar(sql).bind(value).fetch_one(conn).await?)
}

/// The error for a `cursor` this store never handed out.
pub(crate) fn bad_cursor() -> StoreError {
    StoreError::invalid("cursor", "not a cursor this listing returned")
}

/// Cuts a listing fetched with `limit + 1` rows into a page and its continuation cursor.
pub(crate) fn page<T>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Writes an audit record inside the caller's transaction.
pub(crate) async fn write_audit(
    conn: &mut SqliteConnection,
    at: DateTime<Utc>,
    actor: &Actor,
    action: crate::AuditAction,
    user_id: Option<&UserId>,
    key_id: Option<&KeyId>,
    details: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, user_id, key_id, ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(format!("aud_{}", ulid::Ulid::new()))
    .bind(rows::ts(at))
    .bind(actor.label())
    .bind(action.as_str())
    .bind(user_id.map(UserId::as_str))
    .bind(key_id.map(KeyId::as_str))
    .bind(actor.ip.map(|ip| ip.to_string()))
    .bind(details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_key(
        &self,
        spec: &KeySpec,
        material: &KeyMaterial,
        actor: &Actor,
    ) -> StoreResult<KeyRecord> {
        keys::create(self, spec, material, actor).await
    }

    async fn get_key(&self, id: &KeyId) -> StoreResult<KeyRecord> {
        let mut conn = self.pool.acquire().await?;
        keys::fetch(&mut conn, id).await
    }

    async fn list_keys(&self, filter: &KeyFilter) -> StoreResult<Page<KeyRecord>> {
        keys::list(self, filter).await
    }

    async fn update_key(
        &self,
        id: &KeyId,
        patch: &KeyPatch,
        actor: &Actor,
    ) -> StoreResult<KeyRecord> {
        keys::update(self, id, patch, actor).await
    }

    async fn revoke_key(&self, id: &KeyId, actor: &Actor) -> StoreResult<KeyRecord> {
        keys::revoke(self, id, actor).await
    }

    async fn rotate_key(
        &self,
        id: &KeyId,
        rotation: &Rotation,
        material: &KeyMaterial,
        actor: &Actor,
    ) -> StoreResult<(KeyRecord, KeyRecord)> {
        keys::rotate(self, id, rotation, material, actor).await
    }

    async fn lookup(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        keys::lookup(self, hash).await
    }

    async fn has_imported_keys(&self) -> StoreResult<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE imported = 1)")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn import_keys(&self, rows: &[ImportRow], actor: &Actor) -> StoreResult<ImportReport> {
        keys::import(self, rows, actor).await
    }

    async fn create_user(&self, user: &NewUser, actor: &Actor) -> StoreResult<UserRecord> {
        users::create(self, user, actor).await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<UserRecord> {
        let mut conn = self.pool.acquire().await?;
        users::fetch(&mut conn, id, now()).await
    }

    async fn list_users(&self, filter: &UserFilter) -> StoreResult<Page<UserRecord>> {
        users::list(self, filter).await
    }

    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        actor: &Actor,
    ) -> StoreResult<UserRecord> {
        users::update(self, id, patch, actor).await
    }

    async fn delete_user(&self, id: &UserId, actor: &Actor) -> StoreResult<UserRecord> {
        users::delete(self, id, actor).await
    }

    async fn revoke_user_keys(&self, id: &UserId, actor: &Actor) -> StoreResult<u64> {
        users::revoke_keys(self, id, actor).await
    }

    async fn list_plans(&self) -> StoreResult<Vec<Plan>> {
        plans::list(self).await
    }

    async fn get_plan(&self, name: &PlanName) -> StoreResult<Plan> {
        let mut conn = self.pool.acquire().await?;
        plans::fetch(&mut conn, name).await
    }

    async fn put_plan(&self, plan: &Plan, actor: &Actor) -> StoreResult<Plan> {
        plans::put(self, plan, actor).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<AuditRecord>> {
        audit::list(self, filter).await
    }

    async fn latest_change(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM change_events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEvent>> {
        audit::changes_since(self, after, limit).await
    }

    async fn record_key_usage(&self, usage: &[KeyUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for entry in usage {
            sqlx::query(
                "UPDATE api_keys SET request_count = request_count + $2,
                     last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $3 THEN $3
                                         ELSE last_used_at END
                 WHERE id = $1",
            )
            .bind(entry.id.as_str())
            .bind(rows::int(entry.admitted))
            .bind(rows::ts(entry.last_used_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_quota_usage(&self, usage: &[QuotaUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let at = rows::ts(now());
        let mut tx = self.write().await?;
        for entry in usage {
            sqlx::query(
                "INSERT INTO quota_usage (user_id, period, units, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, period) DO UPDATE SET units = units + excluded.units,
                     updated_at = excluded.updated_at",
            )
            .bind(entry.user_id.as_str())
            .bind(&entry.period)
            .bind(rows::int(entry.units))
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quota_usage(&self, user_id: &UserId, period: &str) -> StoreResult<u64> {
        let units: Option<i64> =
            sqlx::query_scalar("SELECT units FROM quota_usage WHERE user_id = $1 AND period = $2")
                .bind(user_id.as_str())
                .bind(period)
                .fetch_optional(&self.pool)
                .await?;
        Ok(units.map_or(0, |u| u64::try_from(u).unwrap_or(0)))
    }

    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> StoreResult<bool> {
        let result = sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(rows::ts(now()))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let applied: Vec<i64> = self
            .applied_migrations()
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        MIGRATOR.run(&self.pool).await?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| m.version)
            .collect())
    }

    async fn rollback(&self, steps: u32) -> StoreResult<Vec<i64>> {
        let mut applied: Vec<i64> = self
            .applied_migrations()
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        applied.reverse();
        let steps = (steps as usize).min(applied.len());
        let target = applied.get(steps).copied().unwrap_or(0);
        MIGRATOR.undo(&self.pool, target).await?;
        Ok(applied[..steps].to_vec())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>> {
        let applied = self.applied_migrations().await?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| {
                let at = applied
                    .iter()
                    .find(|(v, _)| *v == m.version)
                    .map(|(_, at)| *at);
                MigrationInfo {
                    version: m.version,
                    description: m.description.to_string(),
                    applied: at.is_some(),
                    applied_at: at,
                }
            })
            .collect())
    }

    async fn schema_snapshot(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY type, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
