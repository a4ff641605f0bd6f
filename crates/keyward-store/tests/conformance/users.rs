//! The store conformance suite — Users and plans. Each case takes a freshly migrated store.

use super::helpers::*;

pub async fn unknown_plans_and_deleted_users_are_refused(store: &dyn Store) {
    let mut bad = spec("kim", "k");
    bad.plan = Some(plan("platinum"));
    assert!(matches!(
        issue_key(store, &bad, &admin()).await,
        Err(StoreError::Invalid { field: "plan", .. })
    ));
    assert!(
        matches!(
            store.get_user(&user("kim")).await,
            Err(StoreError::NotFound("user"))
        ),
        "nothing half-written"
    );

    let (_, key) = issue_key(store, &spec("kim", "k"), &admin()).await.unwrap();
    let patch = KeyPatch {
        plan: Some(Some(plan("platinum"))),
        ..KeyPatch::default()
    };
    assert!(matches!(
        store.update_key(&key.id, &patch, &admin()).await,
        Err(StoreError::Invalid { .. })
    ));

    store.delete_user(&user("kim"), &admin()).await.unwrap();
    assert!(matches!(
        issue_key(store, &spec("kim", "again"), &admin()).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn users_are_created_listed_updated_and_deleted(store: &dyn Store) {
    let new = |id: &str, p: &str| NewUser {
        user_id: user(id),
        plan: plan(p),
        profile: UserProfile {
            email: Some(format!("{id}@example.com")),
            company: Some("Acme".into()),
            metadata: Metadata::new(),
        },
    };
    let created = store
        .create_user(&new("u1", "pro"), &admin())
        .await
        .unwrap();
    assert_eq!(created.plan, plan("pro"));
    assert_eq!(created.key_count, 0);
    assert_eq!(created.deleted_at, None);
    assert!(matches!(
        store.create_user(&new("u1", "free"), &admin()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_user(&new("u9", "nope"), &admin()).await,
        Err(StoreError::Invalid { .. })
    ));
    store
        .create_user(&new("u2", "free"), &admin())
        .await
        .unwrap();
    store
        .create_user(&new("u3", "pro"), &admin())
        .await
        .unwrap();

    let pros = store
        .list_users(&UserFilter {
            plan: Some(plan("pro")),
            page: page(10, None),
        })
        .await
        .unwrap();
    let ids: Vec<&str> = pros.items.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, ["u3", "u1"]);
    let first = store
        .list_users(&UserFilter {
            plan: None,
            page: page(2, None),
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = store
        .list_users(&UserFilter {
            plan: None,
            page: page(2, first.next_cursor.clone()),
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_cursor, None);

    let patch = UserPatch {
        plan: Some(plan("enterprise")),
        email: Some(None),
        metadata: Some(json!({"tier": "big"}).as_object().unwrap().clone()),
        ..UserPatch::default()
    };
    let updated = store
        .update_user(&user("u1"), &patch, &admin())
        .await
        .unwrap();
    assert_eq!(updated.plan, plan("enterprise"));
    assert_eq!(updated.email, None);
    assert_eq!(updated.company.as_deref(), Some("Acme"));
    assert_eq!(updated.metadata["tier"], "big");
    let future = UserPatch {
        plan: Some(plan("free")),
        plan_effective_at: Some(Utc::now() + Duration::hours(1)),
        ..UserPatch::default()
    };
    assert!(matches!(
        store.update_user(&user("u1"), &future, &admin()).await,
        Err(StoreError::Invalid {
            field: "plan_effective_at",
            ..
        })
    ));

    let (_, k1) = issue_key(store, &spec("u1", "a"), &admin()).await.unwrap();
    issue_key(store, &spec("u1", "b"), &admin()).await.unwrap();
    assert_eq!(store.get_user(&user("u1")).await.unwrap().key_count, 2);
    store.revoke_key(&k1.id, &admin()).await.unwrap();
    assert_eq!(
        store.revoke_user_keys(&user("u1"), &admin()).await.unwrap(),
        1
    );
    assert_eq!(
        store.revoke_user_keys(&user("u1"), &admin()).await.unwrap(),
        0
    );
    assert!(matches!(
        store.revoke_user_keys(&user("ghost"), &admin()).await,
        Err(StoreError::NotFound(_))
    ));

    issue_key(store, &spec("u2", "c"), &admin()).await.unwrap();
    let deleted = store.delete_user(&user("u2"), &admin()).await.unwrap();
    assert!(deleted.deleted_at.is_some());
    assert_eq!(deleted.key_count, 0);
    let again = store.delete_user(&user("u2"), &admin()).await.unwrap();
    assert_eq!(again.deleted_at, deleted.deleted_at, "idempotent");
    assert_eq!(
        store.get_user(&user("u2")).await.unwrap().deleted_at,
        deleted.deleted_at,
        "still readable"
    );
    let keys = store
        .list_keys(&KeyFilter {
            user_id: Some(user("u2")),
            include_inactive: true,
            page: page(10, None),
            ..KeyFilter::default()
        })
        .await
        .unwrap();
    assert!(
        keys.items.iter().all(|k| !k.is_active),
        "deleting a user revokes its keys"
    );
    let listed = store.list_users(&UserFilter::default()).await.unwrap();
    assert!(listed.items.iter().all(|u| u.user_id.as_str() != "u2"));
    assert!(matches!(
        store
            .update_user(&user("u2"), &UserPatch::default(), &admin())
            .await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn plans_start_with_the_defaults_and_can_be_replaced(store: &dyn Store) {
    let plans = store.list_plans().await.unwrap();
    assert_eq!(plans, keyward_core::plan::default_plans());

    let spec = PlanSpec {
        limits: vec![Window {
            window_seconds: 10,
            max: 3,
            name: Some("short".into()),
        }],
        burst: Some(keyward_core::Burst {
            rate_per_second: 2.5,
            capacity: 5,
        }),
        monthly_quota: Some(1000),
        max_keys: Some(2),
        features: Some(vec![Scope::parse("read").unwrap()]),
        price: Some(keyward_core::Price {
            base_cents: 900,
            included_requests: 10_000,
            overage_cents_per_1000: 25,
        }),
        max_key_lifetime_days: Some(90),
    };
    let gold = Plan {
        name: plan("gold"),
        spec,
    };
    assert_eq!(store.put_plan(&gold, &admin()).await.unwrap(), gold);
    assert_eq!(store.get_plan(&plan("gold")).await.unwrap(), gold);

    let mut cheaper = gold.clone();
    cheaper.spec.price = None;
    cheaper.spec.features = None;
    store.put_plan(&cheaper, &admin()).await.unwrap();
    assert_eq!(store.get_plan(&plan("gold")).await.unwrap(), cheaper);
    assert_eq!(store.list_plans().await.unwrap().len(), 4);

    let mut invalid = gold.clone();
    invalid.spec.limits = vec![Window::new(0, 1)];
    assert!(matches!(
        store.put_plan(&invalid, &admin()).await,
        Err(StoreError::Invalid {
            field: "limits",
            ..
        })
    ));
    assert!(matches!(
        store.get_plan(&plan("nope")).await,
        Err(StoreError::NotFound("plan"))
    ));
    let audit = store
        .list_audit(&AuditFilter {
            action: Some(AuditAction::PlanUpdate),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 2);
}
