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

pub async fn admin_keys_are_found_by_hash_listed_revoked_and_touched(store: &dyn Store) {
    use keyward_core::Permission;
    let (key, created) = keyward_store::issue_admin_key(
        store,
        "ci",
        &[
            Permission::UsageRead,
            Permission::KeysRead,
            Permission::KeysRead,
        ],
        None,
        &admin(),
    )
    .await
    .unwrap();
    assert!(created.id.starts_with("adk_"));
    assert_eq!(
        created.permissions,
        [Permission::KeysRead, Permission::UsageRead]
    );
    assert!(key.expose_secret().starts_with("kwadm_"));
    let found = store.admin_key_by_hash(&key.hash()).await.unwrap().unwrap();
    assert_eq!(found, created);
    let other = keyward_core::PlainKey::generate(&keyward_core::KeyPrefix::parse("kwadm").unwrap())
        .unwrap();
    assert!(
        store
            .admin_key_by_hash(&other.hash())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        keyward_store::issue_admin_key(store, "none", &[], None, &admin())
            .await
            .is_err()
    );

    let (_, second) =
        keyward_store::issue_admin_key(store, "second", &[Permission::All], None, &admin())
            .await
            .unwrap();
    let first_page = store.list_admin_keys(false, &page(1, None)).await.unwrap();
    assert_eq!(first_page.items[0].id, second.id, "newest first");
    let rest = store
        .list_admin_keys(false, &page(1, first_page.next_cursor))
        .await
        .unwrap();
    assert_eq!(rest.items[0].id, created.id);
    assert!(rest.next_cursor.is_none());

    let at = Utc::now();
    store.touch_admin_key(&created.id, at).await.unwrap();
    let touched = store.get_admin_key(&created.id).await.unwrap();
    assert!(touched.last_used_at.is_some());
    // Within the minute, a second use writes nothing.
    store
        .touch_admin_key(&created.id, at + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        store.get_admin_key(&created.id).await.unwrap().last_used_at,
        touched.last_used_at
    );

    let revoked = store.revoke_admin_key(&created.id, &admin()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = store.revoke_admin_key(&created.id, &admin()).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at, "idempotent");
    let active = store.list_admin_keys(false, &page(10, None)).await.unwrap();
    assert_eq!(active.items.len(), 1);
    let all = store.list_admin_keys(true, &page(10, None)).await.unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(matches!(
        store.get_admin_key("adk_missing").await,
        Err(StoreError::NotFound(_))
    ));
    let actions: Vec<String> = store
        .list_audit(&AuditFilter {
            action: Some(AuditAction::AdminKeyRevoke),
            page: page(10, None),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        ["admin_key.revoke"],
        "one record, however often revoked"
    );
}
