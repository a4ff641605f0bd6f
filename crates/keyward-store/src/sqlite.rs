//! The embedded SQLite backend: one file, WAL mode, created on first use. The queries are
//! the shared ones of `sql/`; this file holds what only SQLite does.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool, Transaction};

use crate::{StoreError, StoreResult};

// The same SQL, compiled again against this backend's types (see sql/mod.rs): loading the
// file twice is the point.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

type Db = sqlx::Sqlite;
type Conn = sqlx::SqliteConnection;
type DbRow = sqlx::sqlite::SqliteRow;
type Backend = SqliteStore;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Plans in the order they were created (the defaults share one timestamp).
const PLAN_ORDER: &str = "created_at, rowid";

const SCHEMA_SNAPSHOT: &str = "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master \
     WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY type, name";

/// Keys, users, plans, audit log and change feed in one SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The key that seals listing cursors (loaded from `settings` on first use).
    cursor_key: tokio::sync::OnceCell<[u8; 32]>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite::memory:`).
    /// Does not migrate: call [`AdminStore::migrate`](crate::AdminStore::migrate).
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
        // SQLite creates the file, not its directory, and then says only "unable to open
        // database file": name what is missing.
        let file = options.get_filename();
        if !in_memory
            && let Some(directory) = file.parent().filter(|d| !d.as_os_str().is_empty())
            && !directory.is_dir()
        {
            return Err(StoreError::invalid(
                "database_url",
                format!(
                    "the directory {} of the database file {} does not exist; create it first",
                    directory.display(),
                    file.display()
                ),
            ));
        }
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
        Ok(Self {
            pool,
            cursor_key: tokio::sync::OnceCell::new(),
        })
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
