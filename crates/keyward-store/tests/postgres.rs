//! The store conformance suite on PostgreSQL, plus what only PostgreSQL does. The server is
//! the throwaway one scripts/test.sh starts (`KEYWARD_TEST_DATABASE_URL`); without it these
//! tests fail, never skip. Each test gets a database of its own.

mod conformance;

use keyward_store::{Actor, Entity, KeySpec, PostgresStore, Store, issue_key};
use sqlx::{Connection, Executor, Row};

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

#[tokio::test]
async fn direct_sql_edits_reach_the_change_feed_and_usage_bookkeeping_does_not() {
    let store = migrated().await;
    let spec = KeySpec::new("u1".parse().unwrap(), "k");
    let (_, key) = issue_key(&store, &spec, &Actor::cli()).await.unwrap();
    let before = store.latest_change().await.unwrap();

    sqlx::query("UPDATE api_keys SET last_used_at = '2026-01-01T00:00:00.000Z', request_count = 5 WHERE id = $1")
        .bind(key.id.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(
        store.latest_change().await.unwrap(),
        before,
        "bookkeeping is not a change"
    );

    sqlx::query("UPDATE api_keys SET enabled = FALSE WHERE id = $1")
        .bind(key.id.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    let changes = store.changes_since(before, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].entity, Entity::Key);
    assert_eq!(changes[0].entity_id, key.id.as_str());
    assert_eq!(
        changes[0].key_hash,
        Some(key_hash(&store, key.id.as_str()).await)
    );
}

async fn key_hash(store: &PostgresStore, id: &str) -> keyward_core::KeyHash {
    let hex: String = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    keyward_core::KeyHash::from_hex(&hex).unwrap()
}

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

#[tokio::test]
async fn the_view_reports_status_and_validity_without_the_hash() {
    let store = migrated().await;
    let (_, active) = issue_key(
        &store,
        &KeySpec::new("u1".parse().unwrap(), "a"),
        &Actor::cli(),
    )
    .await
    .unwrap();
    let (_, revoked) = issue_key(
        &store,
        &KeySpec::new("u1".parse().unwrap(), "r"),
        &Actor::cli(),
    )
    .await
    .unwrap();
    store.revoke_key(&revoked.id, &Actor::cli()).await.unwrap();
    let rows = sqlx::query("SELECT * FROM v_user_api_keys ORDER BY name")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let columns: Vec<String> = rows[0]
        .columns()
        .iter()
        .map(|c| sqlx::Column::name(c).to_owned())
        .collect();
    assert!(!columns.iter().any(|c| c == "key_hash"), "{columns:?}");
    let by_name: Vec<(String, String, bool)> = rows
        .iter()
        .map(|r| (r.get("id"), r.get("status"), r.get("is_valid")))
        .collect();
    assert_eq!(
        by_name[0],
        (active.id.to_string(), "active".to_owned(), true)
    );
    assert_eq!(
        by_name[1],
        (revoked.id.to_string(), "revoked".to_owned(), false)
    );
}
