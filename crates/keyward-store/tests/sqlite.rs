//! The store conformance suite on SQLite, and the raw-SQL checks every backend passes.

mod conformance;

use keyward_store::roles::*;
use keyward_store::{SqliteStore, Store};

async fn open_sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let store = SqliteStore::connect(&url).await.expect("open SQLite");
    (store, dir)
}

async fn fresh_sqlite() -> (Box<dyn Store>, tempfile::TempDir) {
    let (store, dir) = open_sqlite().await;
    (Box::new(store), dir)
}

store_conformance!(sqlite, fresh_sqlite().await);

async fn migrated_sqlite() -> (SqliteStore, tempfile::TempDir) {
    let (store, dir) = open_sqlite().await;
    store.migrate().await.expect("migrate");
    (store, dir)
}

raw_sql_conformance!(sqlite_sql, migrated_sqlite().await);
