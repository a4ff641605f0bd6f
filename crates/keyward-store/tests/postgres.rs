//! The store conformance suite on PostgreSQL, plus what only PostgreSQL does. The server is
//! the throwaway one scripts/test.sh starts (`KEYWARD_TEST_DATABASE_URL`); without it these
//! tests fail, never skip. Each test gets a database of its own.

mod conformance;

use keyward_store::roles::*;
use keyward_store::{Actor, KeySpec, PostgresStore, Store, issue_key};
use sqlx::{Connection, Executor};

/// A fresh, empty database on the test server; returns its URL.
async fn fresh_database() -> String {
    let admin = std::env::var("KEYWARD_TEST_DATABASE_URL").expect(
        "KEYWARD_TEST_DATABASE_URL must name a PostgreSQL server (scripts/test.sh starts one)",
    );
    let name = format!("kw_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test PostgreSQL server answers");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let (server, _) = admin.rsplit_once('/').expect("a URL with a database name");
    format!("{server}/{name}")
}

async fn fresh_postgres() -> (Box<dyn Store>, ()) {
    let store = PostgresStore::connect(&fresh_database().await)
        .await
        .expect("connect to PostgreSQL");
    (Box::new(store), ())
}

store_conformance!(postgres, fresh_postgres().await);

async fn migrated() -> PostgresStore {
    let store = PostgresStore::connect(&fresh_database().await)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

raw_sql_conformance!(postgres_sql, (migrated().await, ()));

#[tokio::test]
async fn every_change_is_announced_to_listeners_at_commit() {
    let store = migrated().await;
    let mut listener = store.listen().await.unwrap();
    let spec = KeySpec::new("u1".parse().unwrap(), "k");
    let (_, key) = issue_key(&store, &spec, &Actor::cli()).await.unwrap();
    let changes = store.changes_since(0, 100).await.unwrap();
    let mut announced = Vec::new();
    while announced.len() < changes.len() {
        let notification = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("a notification within 5 s")
            .unwrap();
        announced.push(notification.payload().parse::<i64>().unwrap());
    }
    let ids: Vec<i64> = changes.iter().map(|c| c.id).collect();
    assert_eq!(announced, ids, "the user's and the key's events, in order");
    assert!(changes.iter().any(|c| c.entity_id == key.id.as_str()));
}
