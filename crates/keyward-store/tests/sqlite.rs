//! The store conformance suite on SQLite, plus what only SQLite can show.

mod conformance;

use keyward_store::{SqliteStore, Store};

async fn fresh_sqlite() -> (Box<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let store = SqliteStore::connect(&url).await.expect("open SQLite");
    (Box::new(store), dir)
}

store_conformance!(sqlite, fresh_sqlite().await);

#[tokio::test]
async fn direct_sql_edits_reach_the_change_feed_and_usage_bookkeeping_does_not() {
    use keyward_store::{Actor, Entity, KeySpec, issue_key};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
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

    sqlx::query("UPDATE api_keys SET enabled = 0 WHERE id = $1")
        .bind(key.id.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    let changes = store.changes_since(before, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].entity, Entity::Key);
    assert_eq!(changes[0].entity_id, key.id.as_str());
}

#[tokio::test]
async fn the_view_reports_status_and_validity_without_the_hash() {
    use keyward_store::{Actor, KeySpec, issue_key};
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
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
    for expected in [
        "id",
        "key_prefix",
        "status",
        "is_valid",
        "request_count",
        "lineage_id",
    ] {
        assert!(columns.iter().any(|c| c == expected), "missing {expected}");
    }
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
