//! The store conformance suite — Settings and migrations. Each case takes a freshly migrated store.

use super::helpers::*;

pub async fn settings_are_written_once(store: &dyn Store) {
    assert_eq!(store.get_setting("admin_token_sha256").await.unwrap(), None);
    assert!(
        store
            .insert_setting_if_absent("admin_token_sha256", "a")
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_setting_if_absent("admin_token_sha256", "b")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_setting("admin_token_sha256")
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
    store.ping().await.unwrap();
}

pub async fn migrations_roll_back_exactly_and_keep_other_tables_rows(store: &dyn Store) {
    let pristine = store.schema_snapshot().await.unwrap();
    let applied = store.migrate().await.unwrap();
    assert!(applied.len() >= 3, "{applied:?}");
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
    let full = store.schema_snapshot().await.unwrap();

    // Populate every table, then undo and redo each suffix of the migrations.
    let (plain, key) = issue_key(store, &spec("pat", "k"), &admin()).await.unwrap();
    store
        .update_user(
            &user("pat"),
            &UserPatch {
                plan: Some(plan("pro")),
                ..UserPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    for steps in 1..applied.len() as u32 {
        let reverted = store.rollback(steps).await.unwrap();
        assert_eq!(reverted.len(), steps as usize);
        let status = store.migration_status().await.unwrap();
        assert_eq!(status.iter().filter(|m| !m.applied).count(), steps as usize);
        assert_ne!(store.schema_snapshot().await.unwrap(), full);
        let reapplied = store.migrate().await.unwrap();
        assert_eq!(reapplied.len(), steps as usize);
        assert_eq!(
            store.schema_snapshot().await.unwrap(),
            full,
            "down then up restores the schema"
        );
        let found = store
            .lookup(&plain.hash())
            .await
            .unwrap()
            .expect("rows of kept tables survive");
        assert_eq!(found.id, key.id);
        assert_eq!(
            store.get_user(&user("pat")).await.unwrap().plan,
            plan("pro")
        );
    }

    let all = store.rollback(u32::MAX).await.unwrap();
    assert_eq!(all.len(), applied.len());
    assert_eq!(
        store.schema_snapshot().await.unwrap(),
        pristine,
        "every down undoes its up"
    );
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| !m.applied)
    );
    store.migrate().await.unwrap();
    assert_eq!(store.schema_snapshot().await.unwrap(), full);
    assert_eq!(
        store.list_plans().await.unwrap(),
        keyward_core::plan::default_plans()
    );
}
