//! The PostgreSQL backend, for several keyward nodes sharing one database. The queries are
//! the shared ones of `sql/`; this file holds what only PostgreSQL does: the pool, the
//! write lock, migration bookkeeping and the change-feed notifications (LISTEN/NOTIFY).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Row, Transaction};

use crate::{StoreError, StoreResult};

// The same SQL, compiled again against this backend's types (see sql/mod.rs): loading the
// file twice is the point.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

type Db = sqlx::Postgres;
type Conn = sqlx::PgConnection;
type DbRow = sqlx::postgres::PgRow;
type Backend = PostgresStore;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Plans in the order they were created (the defaults share one timestamp).
const PLAN_ORDER: &str = "created_at, seq";

const SCHEMA_SNAPSHOT: &str = "SELECT kind || ' ' || name || ': ' || definition FROM ( \
     SELECT 'column' AS kind, table_name || '.' || column_name AS name, \
            data_type || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END \
              || COALESCE(' DEFAULT ' || column_default, '') AS definition \
       FROM information_schema.columns \
      WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
     UNION ALL \
     SELECT 'index', indexname, indexdef FROM pg_indexes \
      WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations' \
     UNION ALL \
     SELECT 'trigger', trigger_name || ' ' || event_manipulation, action_statement \
       FROM information_schema.triggers WHERE trigger_schema = current_schema() \
     UNION ALL \
     SELECT 'view', viewname, definition FROM pg_views WHERE schemaname = current_schema() \
     UNION ALL \
     SELECT 'function', p.proname, pg_get_functiondef(p.oid) FROM pg_proc p \
       JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema() \
   ) schema ORDER BY kind, name, definition";

/// The channel the change-feed trigger notifies with each new event's id.
pub const CHANGE_CHANNEL: &str = "keyward_changes";

/// Every keyward write transaction takes this transaction-scoped advisory lock first, so
/// writers run one at a time across all nodes, as on SQLite: checks such as `max_keys`
/// see every committed key, and change-feed ids commit in order (a follower that has seen
/// id n never later meets a smaller one). Management writes are rare; usage batches are a
/// few per second.
const WRITE_LOCK: i64 = 0x006b_6579_7761_7264; // "keyward" in ASCII

/// Connection settings: pool size and timeouts.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub max_connections: u32,
    /// How long a query waits for a pooled connection (including connecting).
    pub acquire_timeout: Duration,
    /// The server aborts any statement running longer than this.
    pub statement_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Keys, users, plans, audit log and change feed in one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// The key that seals listing cursors (loaded from `settings` on first use).
    cursor_key: tokio::sync::OnceCell<[u8; 32]>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) with the default options. Does
    /// not migrate: call [`crate::AdminStore::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, &PostgresOptions::default()).await
    }

    pub async fn connect_with(url: &str, settings: &PostgresOptions) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::invalid("database_url", error.to_string()))?
            .application_name("keyward")
            .options([(
                "statement_timeout",
                settings.statement_timeout.as_millis().to_string(),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            // A connection that died with the server is found out before it is handed out.
            .test_before_acquire(true)
            .connect_lazy_with(options.clone());
        // Fail now, with the real cause (refused, unknown host, bad password …), if the
        // server cannot be reached at all; the pool would only report a timeout.
        let probe = tokio::time::timeout(
            settings.acquire_timeout,
            sqlx::PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))??;
        let _ = probe.close().await;
        Ok(Self {
            pool,
            options,
            cursor_key: tokio::sync::OnceCell::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection that receives the change feed's notifications (the id of each new
    /// event, on [`CHANGE_CHANNEL`]).
    pub async fn listen(&self) -> StoreResult<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(listener)
    }
    /// The server settings this store connects with (for tools that need a connection of
    /// their own).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// A write transaction holding keyward's write lock (see [`WRITE_LOCK`]).
    async fn write(&self) -> StoreResult<Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<(i64, DateTime<Utc>)>> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT version, to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS installed_on
             FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let version: i64 = row.try_get("version")?;
                let installed: String = row.try_get("installed_on")?;
                let at = chrono::NaiveDateTime::parse_from_str(&installed, "%Y-%m-%d %H:%M:%S")
                    .map_err(|error| StoreError::corrupt("migration timestamp", error))?
                    .and_utc();
                Ok((version, at))
            })
            .collect()
    }
}

/// Wakes a change-feed follower the moment a change commits (PostgreSQL LISTEN/NOTIFY), so
/// it need not wait for its next poll. The feed table stays the source of truth: a
/// notification lost while the connection was down only delays a change to the next poll.
#[derive(Debug)]
pub struct ChangeListener(PgListener);

impl ChangeListener {
    /// Listens on the database `url` names; `None` for databases without notifications
    /// (SQLite: its followers poll).
    pub async fn connect(url: &str) -> StoreResult<Option<Self>> {
        if !crate::is_postgres_url(url) {
            return Ok(None);
        }
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(Some(Self(listener)))
    }

    /// Waits for the next change (the listener reconnects by itself after a failure).
    pub async fn changed(&mut self) -> StoreResult<()> {
        self.0.recv().await?;
        Ok(())
    }
}
