//! The store conformance suite — Keys: creation, listing, revocation, rotation, expiry, `max_keys`, changes and imports. Each case takes a freshly migrated store.

use super::helpers::*;

pub async fn creating_a_key_creates_its_user_and_finds_it_by_hash(store: &dyn Store) {
    let mut spec = spec("alice", "ci");
    spec.environment = Environment::Test;
    spec.scopes = vec![Scope::parse("read").unwrap()];
    spec.metadata = json!({"team": "a"}).as_object().unwrap().clone();
    spec.allowed_ips = Some(vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ]);
    spec.new_user.email = Some("a@example.com".into());
    let (plain, key) = issue_key(store, &spec, &admin()).await.unwrap();

    assert!(plain.expose_secret().starts_with("sk_test_"));
    assert_eq!(key.key_prefix, plain.display_prefix());
    assert_eq!(key.user_id, user("alice"));
    assert_eq!(key.environment, Environment::Test);
    assert_eq!(key.plan, None);
    assert_eq!(key.effective_plan(), &plan("free"));
    assert_eq!(key.status(Utc::now()), KeyStatus::Active);
    assert_eq!(key.scopes, spec.scopes);
    assert_eq!(key.metadata, spec.metadata);
    assert_eq!(key.allowed_ips, spec.allowed_ips);
    assert_eq!(key.lineage_id, key.id.as_str());
    assert_eq!(key.request_count, 0);
    assert!(!key.imported);

    let alice = store.get_user(&user("alice")).await.unwrap();
    assert_eq!(alice.plan, plan("free"));
    assert_eq!(alice.email.as_deref(), Some("a@example.com"));
    assert_eq!(alice.key_count, 1);

    let found = store
        .lookup(&plain.hash())
        .await
        .unwrap()
        .expect("found by hash");
    assert_eq!(found, key);
    assert_eq!(store.get_key(&key.id).await.unwrap(), key);
    assert!(
        store
            .lookup(&KeyHash::of("sk_live_nothing"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.get_key(&KeyId::generate()).await,
        Err(StoreError::NotFound("key"))
    ));

    assert_eq!(key.status(Utc::now()), KeyStatus::Active);
    assert_eq!(key.effective_plan().as_str(), "free");
    // The record holds no hash at all: nothing of the key's can be printed from it.
    assert!(!format!("{key:?}").contains(&plain.hash().to_hex()));

    let users = store
        .list_audit(&AuditFilter {
            user_id: Some(user("alice")),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = users.items.iter().map(|r| r.action.as_str()).collect();
    assert!(
        actions.contains(&"key.create") && actions.contains(&"user.create"),
        "{actions:?}"
    );
    assert!(
        users
            .items
            .iter()
            .all(|r| r.ip.as_deref() == Some("192.0.2.7") && r.actor == "admin")
    );
}

pub async fn listing_is_newest_first_and_pages_without_gaps(store: &dyn Store) {
    enterprise_user(store, "bob").await;
    let mut created = Vec::new();
    for i in 0..7 {
        let (_, key) = issue_key(store, &spec("bob", &format!("k{i}")), &admin())
            .await
            .unwrap();
        created.push(key.id);
    }
    issue_key(store, &spec("carol", "other"), &admin())
        .await
        .unwrap();
    created.reverse();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let filter = KeyFilter {
            user_id: Some(user("bob")),
            include_inactive: false,
            page: page(3, cursor),
            ..KeyFilter::default()
        };
        let result = store.list_keys(&filter).await.unwrap();
        assert!(result.items.len() <= 3);
        seen.extend(result.items.into_iter().map(|k| k.id));
        cursor = result.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, created);

    let everyone = store
        .list_keys(&KeyFilter {
            page: page(100, None),
            ..KeyFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(everyone.items.len(), 8);
    assert_eq!(everyone.next_cursor, None);

    let bad = KeyFilter {
        page: page(3, Some("nonsense".into())),
        ..KeyFilter::default()
    };
    assert!(matches!(
        store.list_keys(&bad).await,
        Err(StoreError::Invalid {
            field: "cursor",
            ..
        })
    ));
}

pub async fn inactive_keys_are_listed_only_on_request(store: &dyn Store) {
    let (_, active) = issue_key(store, &spec("dan", "active"), &admin())
        .await
        .unwrap();
    let (_, revoked) = issue_key(store, &spec("dan", "revoked"), &admin())
        .await
        .unwrap();
    let (_, disabled) = issue_key(store, &spec("dan", "disabled"), &admin())
        .await
        .unwrap();
    let mut expiring = spec("dan", "expired");
    expiring.expires_at = Some(Utc::now() - Duration::seconds(1));
    let (_, expired) = issue_key(store, &expiring, &admin()).await.unwrap();
    store.revoke_key(&revoked.id, &admin()).await.unwrap();
    store
        .update_key(
            &disabled.id,
            &KeyPatch {
                enabled: Some(false),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();

    let ids = |include_inactive| async move {
        let filter = KeyFilter {
            user_id: Some(user("dan")),
            include_inactive,
            page: page(50, None),
            ..KeyFilter::default()
        };
        let mut ids: Vec<KeyId> = store
            .list_keys(&filter)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|k| k.id)
            .collect();
        ids.sort();
        ids
    };
    let mut expected = vec![active.id.clone(), disabled.id.clone()];
    expected.sort();
    assert_eq!(ids(false).await, expected);
    let mut all = vec![
        active.id,
        disabled.id.clone(),
        revoked.id.clone(),
        expired.id.clone(),
    ];
    all.sort();
    assert_eq!(ids(true).await, all);

    let now = Utc::now();
    assert_eq!(
        store.get_key(&revoked.id).await.unwrap().status(now),
        KeyStatus::Revoked
    );
    assert_eq!(
        store.get_key(&disabled.id).await.unwrap().status(now),
        KeyStatus::Disabled
    );
    assert_eq!(
        store.get_key(&expired.id).await.unwrap().status(now),
        KeyStatus::Expired
    );
    assert_eq!(store.get_user(&user("dan")).await.unwrap().key_count, 1);
}

pub async fn revoking_is_idempotent(store: &dyn Store) {
    let (plain, key) = issue_key(store, &spec("erin", "k"), &admin())
        .await
        .unwrap();
    let first = store.revoke_key(&key.id, &admin()).await.unwrap();
    assert!(!first.is_active);
    assert!(first.revoked_at.is_some());
    assert_eq!(first.status(Utc::now()), KeyStatus::Revoked);
    let second = store.revoke_key(&key.id, &admin()).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(store.lookup(&plain.hash()).await.unwrap().unwrap(), first);
    assert_eq!(
        audit_actions(store, &key.id).await,
        ["key.create", "key.revoke"]
    );
    assert!(matches!(
        store.revoke_key(&KeyId::generate(), &admin()).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn rotation_copies_settings_and_honours_the_grace_period(store: &dyn Store) {
    let mut original = spec("fay", "deploy");
    original.prefix = Some(KeyPrefix::parse("acme_ci").unwrap());
    original.plan = Some(plan("pro"));
    original.rate_limit_per_hour = Some(123);
    original.limits = Some(vec![Window::new(10, 5)]);
    original.scopes = vec![Scope::parse("write").unwrap()];
    original.allowed_ips = Some(vec!["192.0.2.0/24".parse().unwrap()]);
    original.metadata = json!({"k": "v"}).as_object().unwrap().clone();
    let (old_plain, old) = issue_key(store, &original, &admin()).await.unwrap();

    let rotation = Rotation {
        grace: Duration::hours(1),
        expires_at: None,
        if_unchanged_since: None,
    };
    let before = Utc::now();
    let (new_plain, new, old_after) = rotate_key(store, &old.id, &rotation, &admin())
        .await
        .unwrap();
    assert!(new_plain.expose_secret().starts_with("acme_ci_"));
    assert_ne!(new_plain.expose_secret(), old_plain.expose_secret());
    assert_eq!(new.name, "deploy");
    assert_eq!(new.plan, Some(plan("pro")));
    assert_eq!(new.rate_limit_per_hour, Some(123));
    assert_eq!(new.limits, original.limits);
    assert_eq!(new.scopes, original.scopes);
    assert_eq!(new.allowed_ips, original.allowed_ips);
    assert_eq!(new.metadata, original.metadata);
    assert_eq!(new.environment, old.environment);
    assert_eq!(
        new.lineage_id, old.lineage_id,
        "rate-limit state follows the lineage"
    );
    assert_eq!(new.expires_at, None);
    assert_eq!(old_after.replaced_by.as_ref(), Some(&new.id));
    let expiry = old_after.expires_at.expect("old key expires");
    assert!(
        expiry >= before + Duration::hours(1) - Duration::seconds(1)
            && expiry <= Utc::now() + Duration::hours(1)
    );
    assert_eq!(
        old_after.status(Utc::now()),
        KeyStatus::Active,
        "still inside its grace period"
    );
    assert_eq!(old_after.status(expiry), KeyStatus::Expired);

    let immediate = Rotation {
        grace: Duration::zero(),
        expires_at: Some(Utc::now() + Duration::days(3)),
        if_unchanged_since: None,
    };
    let (_, newest, replaced) = rotate_key(store, &new.id, &immediate, &admin())
        .await
        .unwrap();
    assert_eq!(replaced.status(Utc::now()), KeyStatus::Expired);
    assert!(newest.expires_at.is_some());
    assert_eq!(newest.lineage_id, old.lineage_id);
    assert!(
        audit_actions(store, &old.id)
            .await
            .contains(&"key.rotate".to_owned())
    );
}

pub async fn rotating_a_revoked_key_conflicts(store: &dyn Store) {
    let (_, key) = issue_key(store, &spec("gus", "k"), &admin()).await.unwrap();
    store.revoke_key(&key.id, &admin()).await.unwrap();
    let rotation = Rotation {
        grace: Duration::zero(),
        expires_at: None,
        if_unchanged_since: None,
    };
    assert!(matches!(
        rotate_key(store, &key.id, &rotation, &admin()).await,
        Err(StoreError::Conflict(_))
    ));
    let keys = store
        .list_keys(&KeyFilter {
            user_id: Some(user("gus")),
            include_inactive: true,
            page: page(10, None),
            ..KeyFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1, "a refused rotation creates nothing");
}

/// A key is rotated at most once, and only while it is active: two rotations racing for one
/// key leave exactly one successor; disabled, expired and already rotated keys conflict; the
/// successor keeps the old key's expiry, and a grace period never lengthens the old key's life.
pub async fn rotation_happens_at_most_once_and_only_to_active_keys(store: &dyn Store) {
    enterprise_user(store, "rot").await;
    let rotation = |grace: i64| Rotation {
        grace: Duration::seconds(grace),
        expires_at: None,
        if_unchanged_since: None,
    };
    let (_, key) = issue_key(store, &spec("rot", "racing"), &admin())
        .await
        .unwrap();
    let (grace, actor) = (rotation(60), admin());
    let (first, second) = tokio::join!(
        rotate_key(store, &key.id, &grace, &actor),
        rotate_key(store, &key.id, &grace, &actor)
    );
    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one wins"
    );
    for outcome in [&first, &second] {
        if let Err(error) = outcome {
            assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        }
    }
    let again = rotate_key(store, &key.id, &rotation(0), &admin()).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "already rotated"
    );
    let listed = store
        .list_keys(&KeyFilter {
            user_id: Some(user("rot")),
            include_inactive: true,
            page: page(100, None),
            ..KeyFilter::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2, "one successor, no orphan");

    // Disabled and expired keys are not rotated.
    let (_, disabled) = issue_key(store, &spec("rot", "disabled"), &admin())
        .await
        .unwrap();
    store
        .update_key(
            &disabled.id,
            &KeyPatch {
                enabled: Some(false),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let refused = rotate_key(store, &disabled.id, &rotation(0), &admin()).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "disabled");
    let (_, expired) = issue_key(store, &spec("rot", "expired"), &admin())
        .await
        .unwrap();
    store
        .update_key(
            &expired.id,
            &KeyPatch {
                expires_at: Some(Some(Utc::now() - Duration::seconds(1))),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let refused = rotate_key(store, &expired.id, &rotation(0), &admin()).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "expired");

    // The successor keeps the expiry; the grace period is cut at the old expiry.
    let soon = Utc::now() + Duration::seconds(30);
    let mut expiring = spec("rot", "expiring");
    expiring.expires_at = Some(soon);
    let (_, expiring) = issue_key(store, &expiring, &admin()).await.unwrap();
    let (_, new, old) = rotate_key(store, &expiring.id, &rotation(86_400), &admin())
        .await
        .unwrap();
    let to_secs = |at: Option<chrono::DateTime<Utc>>| at.map(|t| t.timestamp());
    assert_eq!(
        to_secs(new.expires_at),
        to_secs(Some(soon)),
        "the successor keeps the expiry"
    );
    assert_eq!(
        to_secs(old.expires_at),
        to_secs(Some(soon)),
        "grace never lengthens a life"
    );
}

pub async fn expiry_is_judged_against_now(store: &dyn Store) {
    let mut soon = spec("hal", "soon");
    let at = Utc::now() + Duration::days(1);
    soon.expires_at = Some(at);
    let (_, key) = issue_key(store, &soon, &admin()).await.unwrap();
    assert_eq!(
        key.expires_at.unwrap().timestamp_millis(),
        at.timestamp_millis()
    );
    assert_eq!(key.status(Utc::now()), KeyStatus::Active);
    assert_eq!(
        key.status(at + Duration::milliseconds(1)),
        KeyStatus::Expired
    );

    let past = Some(Some(Utc::now() - Duration::minutes(1)));
    let expired = store
        .update_key(
            &key.id,
            &KeyPatch {
                expires_at: past,
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(expired.status(Utc::now()), KeyStatus::Expired);
    let cleared = store
        .update_key(
            &key.id,
            &KeyPatch {
                expires_at: Some(None),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);
    assert_eq!(cleared.status(Utc::now()), KeyStatus::Active);
}

pub async fn max_keys_caps_open_keys(store: &dyn Store) {
    let mut keys = Vec::new();
    for i in 0..5 {
        keys.push(
            issue_key(store, &spec("ivy", &format!("k{i}")), &admin())
                .await
                .unwrap()
                .1,
        );
    }
    store
        .update_key(
            &keys[0].id,
            &KeyPatch {
                enabled: Some(false),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let refused = issue_key(store, &spec("ivy", "sixth"), &admin()).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "disabled keys still count"
    );
    store.revoke_key(&keys[1].id, &admin()).await.unwrap();
    issue_key(store, &spec("ivy", "sixth"), &admin())
        .await
        .unwrap();
    // Rotation is never refused by the cap.
    let rotation = Rotation {
        grace: Duration::hours(1),
        expires_at: None,
        if_unchanged_since: None,
    };
    rotate_key(store, &keys[2].id, &rotation, &admin())
        .await
        .unwrap();
}

pub async fn updates_merge_metadata_and_audit_enable_and_disable(store: &dyn Store) {
    let mut with_meta = spec("jo", "k");
    with_meta.metadata = json!({"a": 1, "nested": {"x": 1, "y": 2}})
        .as_object()
        .unwrap()
        .clone();
    let (_, key) = issue_key(store, &with_meta, &admin()).await.unwrap();

    let patch = KeyPatch {
        name: Some("renamed".into()),
        metadata: Some(
            json!({"a": null, "b": 2, "nested": {"y": null}})
                .as_object()
                .unwrap()
                .clone(),
        ),
        scopes: Some(vec![Scope::parse("read").unwrap()]),
        plan: Some(Some(plan("pro"))),
        rate_limit_per_hour: Some(Some(50)),
        allowed_ips: Some(Some(vec!["::1/128".parse().unwrap()])),
        limits: Some(Some(vec![Window::new(1, 2)])),
        ..KeyPatch::default()
    };
    let updated = store.update_key(&key.id, &patch, &admin()).await.unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(
        serde_json::Value::Object(updated.metadata.clone()),
        json!({"b": 2, "nested": {"x": 1}})
    );
    assert_eq!(updated.effective_plan(), &plan("pro"));
    assert_eq!(updated.rate_limit_per_hour, Some(50));
    assert_eq!(updated.limits, Some(vec![Window::new(1, 2)]));
    assert!(updated.updated_at >= key.updated_at);

    let disabled = store
        .update_key(
            &key.id,
            &KeyPatch {
                enabled: Some(false),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert!(!disabled.enabled);
    let enabled = store
        .update_key(
            &key.id,
            &KeyPatch {
                enabled: Some(true),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert!(enabled.enabled);
    let cleared = store
        .update_key(
            &key.id,
            &KeyPatch {
                plan: Some(None),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(cleared.plan, None);
    assert_eq!(
        audit_actions(store, &key.id).await,
        [
            "key.create",
            "key.update",
            "key.disable",
            "key.enable",
            "key.update"
        ]
    );
}

/// Who disabled a key is recorded, and members of metadata set by an operator are locked.
pub async fn disabling_and_operator_metadata_are_attributed(store: &dyn Store) {
    let mut with_meta = spec("attr", "k");
    with_meta.metadata = json!({"team": "ops"}).as_object().unwrap().clone();
    let (_, key) = issue_key(store, &with_meta, &admin()).await.unwrap();
    assert_eq!(key.locked_metadata, vec!["team".to_owned()]);
    let by_key = Actor::key(key.id.clone(), None);
    let patched = store
        .update_key(
            &key.id,
            &KeyPatch {
                enabled: Some(false),
                metadata: Some(json!({"mine": 1}).as_object().unwrap().clone()),
                ..KeyPatch::default()
            },
            &by_key,
        )
        .await
        .unwrap();
    assert_eq!(
        patched.disabled_by.as_deref(),
        Some(format!("key:{}", key.id).as_str())
    );
    assert_eq!(
        patched.locked_metadata,
        vec!["team".to_owned()],
        "a key's own members stay unlocked"
    );
    let patched = store
        .update_key(
            &key.id,
            &KeyPatch {
                enabled: Some(true),
                metadata: Some(
                    json!({"team": null, "mine": 2})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
                ..KeyPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(patched.disabled_by, None);
    assert_eq!(
        patched.locked_metadata,
        vec!["mine".to_owned()],
        "removed unlocks, set locks"
    );
}

fn import_row(line: u64, secret: &str, user_id: &str) -> ImportRow {
    ImportRow {
        line,
        key_hash: KeyHash::of(secret),
        user_id: user(user_id),
        id: None,
        name: "imported".into(),
        plan: None,
        created_at: None,
        expires_at: None,
        is_active: true,
        metadata: Metadata::new(),
        key_prefix: None,
    }
}

pub async fn imports_skip_duplicates_and_refuse_invalid_files_whole(store: &dyn Store) {
    assert!(!store.has_imported_keys().await.unwrap());
    let mut rows: Vec<ImportRow> = (0..20)
        .map(|i| import_row(i + 2, &format!("legacy-{i}"), &format!("m{}", i % 3)))
        .collect();
    rows[0].plan = Some(plan("pro"));
    rows[0].id = Some(KeyId::parse("key_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap());
    rows[1].is_active = false;
    rows[2].expires_at = Some(Utc::now() + Duration::days(2));
    rows.push(import_row(22, "legacy-3", "m0"));
    // A dry run reports exactly what the import will do, and keeps nothing.
    let dry = store
        .import_keys(&rows, ImportMode::DryRun, &Actor::cli())
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!((dry.imported, dry.skipped.len()), (20, 1));
    assert!(!store.has_imported_keys().await.unwrap(), "nothing kept");
    assert!(
        store
            .lookup(&KeyHash::of("legacy-0"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.get_user(&user("m0")).await.is_err(),
        "no user created"
    );

    let report = store
        .import_keys(&rows, ImportMode::Commit, &Actor::cli())
        .await
        .unwrap();
    assert!(!report.dry_run);
    assert_eq!(report.imported, 20);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].line, 22);
    assert!(store.has_imported_keys().await.unwrap());

    let first = store
        .lookup(&KeyHash::of("legacy-0"))
        .await
        .unwrap()
        .expect("imported key is found");
    assert!(first.imported);
    assert_eq!(first.id.as_str(), "key_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(first.plan, Some(plan("pro")));
    assert_eq!(
        store.get_user(&user("m0")).await.unwrap().plan,
        plan("pro"),
        "a new user takes the row's plan"
    );
    let second = store
        .lookup(&KeyHash::of("legacy-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status(Utc::now()), KeyStatus::Revoked);

    // Again: everything is a duplicate; an id already taken moves to metadata.legacy_id.
    let mut again = vec![import_row(2, "legacy-new", "m0")];
    again[0].id = Some(KeyId::parse("key_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap());
    let report = store
        .import_keys(&again, ImportMode::Commit, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    let moved = store
        .lookup(&KeyHash::of("legacy-new"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(moved.id.as_str(), "key_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(
        moved.metadata["legacy_id"],
        "key_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );

    let mut invalid: Vec<ImportRow> = (0..5)
        .map(|i| import_row(i + 2, &format!("fresh-{i}"), "n1"))
        .collect();
    invalid[3].plan = Some(plan("no-such-plan"));
    match store
        .import_keys(&invalid, ImportMode::Commit, &Actor::cli())
        .await
    {
        Err(StoreError::Invalid { message, .. }) => {
            assert!(message.contains("line 5"), "{message}")
        }
        other => panic!("expected an invalid-row error, got {other:?}"),
    }
    assert!(
        store
            .lookup(&KeyHash::of("fresh-0"))
            .await
            .unwrap()
            .is_none(),
        "nothing imported"
    );
    assert!(matches!(
        store.get_user(&user("n1")).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A plan's `max_key_lifetime_days` caps its users' new and rotated keys, and refuses a
/// change to a later expiry; keys made before the cap keep theirs.
pub async fn the_users_plan_caps_new_key_lifetimes(store: &dyn Store) {
    let uncapped = issue_key(store, &spec("acme", "before"), &admin())
        .await
        .unwrap()
        .1;
    let capped = Plan {
        name: plan("capped"),
        spec: PlanSpec {
            max_key_lifetime_days: Some(10),
            ..PlanSpec::default()
        },
    };
    store.put_plan(&capped, &admin()).await.unwrap();
    store
        .update_user(
            &user("acme"),
            &UserPatch {
                plan: Some(plan("capped")),
                ..UserPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let near = |at: Option<chrono::DateTime<Utc>>, days: i64| {
        let expected = Utc::now() + Duration::days(days);
        at.is_some_and(|at| (expected - at).num_seconds().abs() < 60)
    };
    let mut asked = spec("acme", "later");
    asked.expires_at = Some(Utc::now() + Duration::days(100));
    let clamped = issue_key(store, &asked, &admin()).await.unwrap().1;
    assert!(near(clamped.expires_at, 10), "{:?}", clamped.expires_at);
    let open = issue_key(store, &spec("acme", "open"), &admin())
        .await
        .unwrap()
        .1;
    assert!(near(open.expires_at, 10));
    let rotation = Rotation {
        grace: Duration::zero(),
        expires_at: Some(Utc::now() + Duration::days(50)),
        if_unchanged_since: None,
    };
    let (_, successor, _) = rotate_key(store, &open.id, &rotation, &admin())
        .await
        .unwrap();
    assert!(near(successor.expires_at, 10));
    for expires_at in [None, Some(Utc::now() + Duration::days(11))] {
        let refused = store
            .update_key(
                &clamped.id,
                &KeyPatch {
                    expires_at: Some(expires_at),
                    ..KeyPatch::default()
                },
                &admin(),
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(StoreError::Invalid {
                    field: "expires_at",
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    assert!(
        store
            .get_key(&uncapped.id)
            .await
            .unwrap()
            .expires_at
            .is_none()
    );
}

/// A leak report acts on the key it names once, audits every report, and finds admin keys.
pub async fn leak_reports_act_once_and_audit_every_report(store: &dyn Store) {
    use keyward_store::{LeakAction, LeakReport};
    let report = LeakReport {
        url: Some("https://github.com/o/r".into()),
        source: Some("content".into()),
    };
    let (plain, key) = issue_key(store, &spec("acme", "leaked"), &admin())
        .await
        .unwrap();
    let first = leak(store, plain.hash(), LeakAction::Revoke, &report)
        .await
        .unwrap();
    assert_eq!((first.action, first.first_report), ("revoked", true));
    assert_eq!(first.id, key.id.to_string());
    assert!(!store.get_key(&key.id).await.unwrap().is_active);
    let second = leak(store, plain.hash(), LeakAction::Revoke, &report)
        .await
        .unwrap();
    assert_eq!((second.action, second.first_report), ("none", false));
    let (plain, key) = issue_key(store, &spec("acme", "disable me"), &admin())
        .await
        .unwrap();
    let disabled = leak(store, plain.hash(), LeakAction::Disable, &report)
        .await
        .unwrap();
    assert_eq!(disabled.action, "disabled");
    let after = store.get_key(&key.id).await.unwrap();
    assert!(!after.enabled && after.is_active);
    assert_eq!(after.disabled_by.as_deref(), Some("github"));
    let (plain, key) = issue_key(store, &spec("acme", "notify"), &admin())
        .await
        .unwrap();
    let noted = leak(store, plain.hash(), LeakAction::Notify, &report)
        .await
        .unwrap();
    assert_eq!(noted.action, "notified");
    assert!(store.get_key(&key.id).await.unwrap().enabled);
    let unknown = KeyHash::of("sk_live_never_issued");
    assert!(
        leak(store, unknown, LeakAction::Revoke, &report)
            .await
            .is_none()
    );
    // An admin key is revoked whatever the action.
    let (admin_plain, admin_key) = keyward_store::issue_admin_key(
        store,
        "leaked",
        &[keyward_core::Permission::KeysRead],
        None,
        &admin(),
    )
    .await
    .unwrap();
    let found = leak(store, admin_plain.hash(), LeakAction::Notify, &report)
        .await
        .unwrap();
    assert_eq!(
        (found.id.as_str(), found.action),
        (admin_key.id.as_str(), "revoked")
    );
    assert!(
        store
            .admin_key_by_hash(&admin_plain.hash())
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    let audit = store
        .list_audit(&AuditFilter {
            action: Some(AuditAction::KeyLeakReported),
            page: page(100, None),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 5);
    assert!(
        audit
            .items
            .iter()
            .all(|r| r.actor == "github" && r.details["source"] == "content")
    );
}

async fn leak(
    store: &dyn Store,
    hash: KeyHash,
    action: keyward_store::LeakAction,
    report: &keyward_store::LeakReport,
) -> Option<keyward_store::LeakFound> {
    store
        .report_leaks(&[(hash, report.clone())], action)
        .await
        .unwrap()
        .pop()
        .unwrap()
}

/// A leak report is all or nothing, bounded, and writes nothing when it names no key.
pub async fn leak_reports_are_bounded_and_name_keys_in_order(store: &dyn Store) {
    use keyward_store::{LeakAction, LeakReport, MAX_REPORTED_TOKENS};
    let report = LeakReport::default();
    let (plain, key) = issue_key(store, &spec("acme", "k"), &admin())
        .await
        .unwrap();
    let unknown = (KeyHash::of("never issued"), report.clone());
    let answers = store
        .report_leaks(
            &[
                unknown.clone(),
                (plain.hash(), report.clone()),
                unknown.clone(),
            ],
            LeakAction::Revoke,
        )
        .await
        .unwrap();
    assert!(answers[0].is_none() && answers[2].is_none());
    assert_eq!(answers[1].as_ref().unwrap().id, key.id.to_string());
    let too_many = vec![unknown.clone(); MAX_REPORTED_TOKENS + 1];
    assert!(matches!(
        store.report_leaks(&too_many, LeakAction::Revoke).await,
        Err(StoreError::Invalid { .. })
    ));
    let before = store
        .list_audit(&AuditFilter {
            page: page(1000, None),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .items
        .len();
    let none = store
        .report_leaks(&vec![unknown; 3], LeakAction::Revoke)
        .await
        .unwrap();
    assert!(none.iter().all(Option::is_none));
    let after = store
        .list_audit(&AuditFilter {
            page: page(1000, None),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(before, after, "a report of unknown tokens wrote something");
}

/// Under a cap, a change may shorten a key's life but never lengthen it past the cap counted
/// from the key's creation, nor remove its expiry; a change that keeps it is no change.
pub async fn the_lifetime_cap_counts_from_creation_on_change(store: &dyn Store) {
    let capped = Plan {
        name: plan("capped"),
        spec: PlanSpec {
            max_key_lifetime_days: Some(10),
            ..PlanSpec::default()
        },
    };
    store.put_plan(&capped, &admin()).await.unwrap();
    let (_, long) = issue_key(store, &spec("acme", "long"), &admin())
        .await
        .unwrap();
    store
        .update_user(
            &user("acme"),
            &UserPatch {
                plan: Some(plan("capped")),
                ..UserPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let change = |expires_at| KeyPatch {
        expires_at: Some(expires_at),
        ..KeyPatch::default()
    };
    // A key from before the cap, without expiry: sending its own value back is no change;
    // giving it one (a shorter life) is fine.
    store
        .update_key(&long.id, &change(None), &admin())
        .await
        .unwrap();
    let soon = Utc::now() + Duration::days(3);
    store
        .update_key(&long.id, &change(Some(soon)), &admin())
        .await
        .unwrap();
    // A capped key cannot be pushed past creation + 10 days, even a day at a time.
    let (_, capped_key) = issue_key(store, &spec("acme", "capped"), &admin())
        .await
        .unwrap();
    let past_cap = capped_key.created_at + Duration::days(10) + Duration::minutes(5);
    assert!(matches!(
        store
            .update_key(&capped_key.id, &change(Some(past_cap)), &admin())
            .await,
        Err(StoreError::Invalid {
            field: "expires_at",
            ..
        })
    ));
    let shorter = Utc::now() + Duration::days(5);
    store
        .update_key(&capped_key.id, &change(Some(shorter)), &admin())
        .await
        .unwrap();
}

pub async fn listings_search_and_filter_by_state_and_plan(store: &dyn Store) {
    let mut pro = spec("acme", "Payments 100%_live");
    pro.plan = Some(plan("pro"));
    let (_, payments) = issue_key(store, &pro, &admin()).await.unwrap();
    let (_, batch) = issue_key(store, &spec("acme", "nightly batch"), &admin())
        .await
        .unwrap();
    let (_, revoked) = issue_key(store, &spec("globex", "old"), &admin())
        .await
        .unwrap();
    store.revoke_key(&revoked.id, &admin()).await.unwrap();
    let patch = KeyPatch {
        enabled: Some(false),
        ..KeyPatch::default()
    };
    let (_, disabled) = issue_key(store, &spec("globex", "paused"), &admin())
        .await
        .unwrap();
    store
        .update_key(&disabled.id, &patch, &admin())
        .await
        .unwrap();
    let ids = |filter: KeyFilter| async move {
        let mut ids: Vec<String> = store
            .list_keys(&filter)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|k| k.id.to_string())
            .collect();
        ids.sort();
        ids
    };
    let search = |q: &str| KeyFilter {
        search: Some(q.to_owned()),
        include_inactive: true,
        page: page(100, None),
        ..KeyFilter::default()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // By id, by user id, by display prefix, by part of the name (letter case aside).
    assert_eq!(
        ids(search(payments.id.as_str())).await,
        [payments.id.to_string()]
    );
    assert_eq!(
        ids(search("acme")).await,
        sorted(vec![payments.id.to_string(), batch.id.to_string()])
    );
    assert_eq!(
        ids(search(&payments.key_prefix)).await,
        [payments.id.to_string()]
    );
    assert_eq!(ids(search("BATCH")).await, [batch.id.to_string()]);
    // LIKE's wildcards are matched as themselves: only the name holding them matches.
    assert_eq!(ids(search("100%_")).await, [payments.id.to_string()]);
    assert_eq!(ids(search("%")).await, [payments.id.to_string()]);
    assert_eq!(ids(search("_")).await, [payments.id.to_string()]);
    // By state (revoked ones whatever include_inactive says) and by effective plan.
    let state = |status| KeyFilter {
        status: Some(status),
        page: page(100, None),
        ..KeyFilter::default()
    };
    assert_eq!(
        ids(state(KeyStatus::Revoked)).await,
        [revoked.id.to_string()]
    );
    assert_eq!(
        ids(state(KeyStatus::Disabled)).await,
        [disabled.id.to_string()]
    );
    assert_eq!(
        ids(state(KeyStatus::Active)).await,
        sorted(vec![payments.id.to_string(), batch.id.to_string()])
    );
    let on = |name: &str| KeyFilter {
        plan: Some(plan(name)),
        include_inactive: true,
        page: page(100, None),
        ..KeyFilter::default()
    };
    assert_eq!(ids(on("pro")).await, [payments.id.to_string()]);
    assert_eq!(ids(on("free")).await.len(), 3);
    // A cursor belongs to its listing.
    let first = store
        .list_keys(&KeyFilter {
            page: page(1, None),
            ..search("acme")
        })
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("a second page");
    assert!(
        store
            .list_keys(&KeyFilter {
                page: page(1, Some(cursor)),
                ..search("globex")
            })
            .await
            .is_err()
    );
}
