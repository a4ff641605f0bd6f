//! The cases of the store conformance suite. Each takes a freshly migrated store.

use chrono::{Duration, Utc};
use keyward_core::{
    Environment, KeyHash, KeyId, KeyPrefix, Plan, PlanName, PlanSpec, Scope, UserId, Window,
};
use keyward_store::{
    Actor, AuditAction, AuditFilter, Entity, ImportRow, KeyFilter, KeyPatch, KeySpec, KeyStatus,
    KeyUsage, Metadata, NewUser, PageRequest, Rotation, Store, StoreError, UserFilter, UserPatch,
    UserProfile, issue_key, rotate_key,
};
use serde_json::json;

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn plan(name: &str) -> PlanName {
    PlanName::parse(name).unwrap()
}

fn admin() -> Actor {
    Actor::admin(Some("192.0.2.7".parse().unwrap()))
}

fn spec(user_id: &str, name: &str) -> KeySpec {
    KeySpec::new(user(user_id), name)
}

async fn enterprise_user(store: &dyn Store, id: &str) {
    store
        .create_user(
            &NewUser {
                user_id: user(id),
                plan: plan("enterprise"),
                profile: UserProfile::default(),
            },
            &admin(),
        )
        .await
        .unwrap();
}

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { limit, cursor }
}

async fn audit_actions(store: &dyn Store, key_id: &KeyId) -> Vec<String> {
    let filter = AuditFilter {
        key_id: Some(key_id.clone()),
        page: page(100, None),
        ..AuditFilter::default()
    };
    let mut actions: Vec<String> = store
        .list_audit(&filter)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.action)
        .collect();
    actions.reverse();
    actions
}

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
        })
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1, "a refused rotation creates nothing");
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

pub async fn the_change_feed_reports_every_change(store: &dyn Store) {
    let start = store.latest_change().await.unwrap();
    let (_, key) = issue_key(store, &spec("lee", "k"), &admin()).await.unwrap();
    store.revoke_key(&key.id, &admin()).await.unwrap();
    store
        .update_user(
            &user("lee"),
            &UserPatch {
                plan: Some(plan("pro")),
                ..UserPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let gold = PlanSpec {
        limits: vec![Window::new(60, 5)],
        ..PlanSpec::default()
    };
    store
        .put_plan(
            &Plan {
                name: plan("gold"),
                spec: gold,
            },
            &admin(),
        )
        .await
        .unwrap();

    let changes = store.changes_since(start, 1000).await.unwrap();
    assert!(
        changes.windows(2).all(|w| w[0].id < w[1].id),
        "ordered by id"
    );
    let has = |entity: Entity, id: &str| {
        changes
            .iter()
            .filter(|c| c.entity == entity && c.entity_id == id)
            .count()
    };
    assert!(has(Entity::Key, key.id.as_str()) >= 2, "create and revoke");
    assert!(has(Entity::User, "lee") >= 2, "create and plan change");
    assert_eq!(has(Entity::Plan, "gold"), 1);
    let latest = store.latest_change().await.unwrap();
    assert_eq!(latest, changes.last().unwrap().id);
    assert!(store.changes_since(latest, 10).await.unwrap().is_empty());
    let first_two = store.changes_since(start, 2).await.unwrap();
    assert_eq!(first_two.len(), 2);
    assert_eq!(first_two[0], changes[0]);
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
    let report = store.import_keys(&rows, &Actor::cli()).await.unwrap();
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
    let report = store.import_keys(&again, &Actor::cli()).await.unwrap();
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
    match store.import_keys(&invalid, &Actor::cli()).await {
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

pub async fn the_audit_log_filters_and_pages(store: &dyn Store) {
    let (_, key) = issue_key(store, &spec("ola", "k"), &Actor::cli())
        .await
        .unwrap();
    let key_actor = Actor::key(key.id.clone(), None);
    store
        .update_key(
            &key.id,
            &KeyPatch {
                name: Some("x".into()),
                ..KeyPatch::default()
            },
            &key_actor,
        )
        .await
        .unwrap();
    store.revoke_key(&key.id, &admin()).await.unwrap();

    let all = store
        .list_audit(&AuditFilter {
            key_id: Some(key.id.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = all.items.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["key.revoke", "key.update", "key.create"],
        "newest first"
    );
    let actors: Vec<&str> = all.items.iter().map(|r| r.actor.as_str()).collect();
    assert_eq!(
        actors,
        [
            "admin".to_owned(),
            format!("key:{}", key.id),
            "cli".to_owned()
        ]
    );

    let mut cursor = None;
    let mut paged = Vec::new();
    loop {
        let filter = AuditFilter {
            key_id: Some(key.id.clone()),
            page: page(1, cursor),
            ..AuditFilter::default()
        };
        let result = store.list_audit(&filter).await.unwrap();
        paged.extend(result.items.into_iter().map(|r| r.action));
        cursor = result.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, actions);
    let revokes = store
        .list_audit(&AuditFilter {
            action: Some(AuditAction::KeyRevoke),
            user_id: Some(user("ola")),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(revokes.items.len(), 1);
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

pub async fn usage_bookkeeping_accumulates_without_being_a_change(store: &dyn Store) {
    let (plain, key) = issue_key(store, &spec("quinn", "k"), &admin())
        .await
        .unwrap();
    let after_create = store.latest_change().await.unwrap();
    let changes = store.changes_since(after_create - 1, 10).await.unwrap();
    let created = changes
        .iter()
        .find(|c| c.entity == Entity::Key)
        .expect("key change");
    assert_eq!(
        created.key_hash,
        Some(plain.hash()),
        "key changes carry the hash"
    );

    let t1 = Utc::now() - Duration::seconds(10);
    let t2 = Utc::now();
    let usage = |admitted, at| KeyUsage {
        id: key.id.clone(),
        admitted,
        last_used_at: at,
    };
    store.record_key_usage(&[usage(3, t2)]).await.unwrap();
    store.record_key_usage(&[usage(2, t1)]).await.unwrap();
    store.record_key_usage(&[]).await.unwrap();
    let used = store.get_key(&key.id).await.unwrap();
    assert_eq!(used.request_count, 5);
    assert_eq!(
        used.last_used_at.unwrap().timestamp_millis(),
        t2.timestamp_millis(),
        "never moves back"
    );
    assert_eq!(
        store.latest_change().await.unwrap(),
        after_create,
        "bookkeeping does not invalidate caches"
    );
}

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

pub async fn quota_usage_accumulates_per_user_and_month(store: &dyn Store) {
    use keyward_store::QuotaUsage;
    let add = |user_id: &str, period: &str, node: &str, units| QuotaUsage {
        user_id: user(user_id),
        period: period.to_owned(),
        node: node.to_owned(),
        units,
    };
    assert_eq!(store.quota_usage(&user("q1"), "2026-11").await.unwrap(), 0);
    assert!(
        store
            .quota_usage_by_node(&user("q1"), "2026-11")
            .await
            .unwrap()
            .is_empty()
    );
    store
        .add_quota_usage(&[add("q1", "2026-11", "a", 5), add("q2", "2026-11", "a", 1)])
        .await
        .unwrap();
    store
        .add_quota_usage(&[
            add("q1", "2026-11", "a", 7),
            add("q1", "2026-11", "b", 4),
            add("q1", "2026-12", "b", 2),
        ])
        .await
        .unwrap();
    store.add_quota_usage(&[]).await.unwrap();
    assert_eq!(store.quota_usage(&user("q1"), "2026-11").await.unwrap(), 16);
    assert_eq!(store.quota_usage(&user("q1"), "2026-12").await.unwrap(), 2);
    assert_eq!(store.quota_usage(&user("q2"), "2026-11").await.unwrap(), 1);
    let mut by_node = store
        .quota_usage_by_node(&user("q1"), "2026-11")
        .await
        .unwrap();
    by_node.sort();
    assert_eq!(by_node, vec![("a".to_owned(), 12), ("b".to_owned(), 4)]);
    // Per-node figures whose month is long over are pruned; the totals stay.
    store
        .prune_history(
            Utc::now() - chrono::Duration::days(7),
            Utc::now() + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    assert!(
        store
            .quota_usage_by_node(&user("q1"), "2026-11")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.quota_usage(&user("q1"), "2026-11").await.unwrap(), 16);
}

pub async fn usage_batches_add_up_in_rollups_and_are_pruned(store: &dyn Store) {
    use chrono::TimeZone;
    use keyward_store::{LATENCY_BUCKETS, Rollup, UsageBatch, UsageEvent, UsageFilter, UsageGroup};
    let (_, key) = issue_key(store, &spec("r1", "k"), &admin()).await.unwrap();
    let hour = Utc.with_ymd_and_hms(2026, 11, 22, 13, 0, 0).unwrap();
    let rollup = |endpoint: &str, requests, rejected, units| {
        let mut latency = [0; LATENCY_BUCKETS];
        latency[1] = requests;
        Rollup {
            hour,
            key_id: key.id.clone(),
            user_id: user("r1"),
            environment: Environment::Live,
            plan: plan("free"),
            endpoint: endpoint.to_owned(),
            status_code: 200,
            code: "VALID".to_owned(),
            requests,
            rejected,
            units,
            latency,
        }
    };
    let event = |minute: u32, cost| UsageEvent {
        key_id: key.id.clone(),
        user_id: user("r1"),
        endpoint: "/a".to_owned(),
        method: "GET".to_owned(),
        at: hour + Duration::minutes(i64::from(minute)),
        response_time_ms: Some(2),
        status_code: 200,
        code: "VALID".to_owned(),
        cost,
    };
    let batch = UsageBatch {
        keys: vec![KeyUsage {
            id: key.id.clone(),
            admitted: 3,
            last_used_at: hour,
        }],
        quota: Vec::new(),
        rollups: vec![rollup("/a", 3, 0, 4), rollup("/b", 1, 1, 0)],
        events: vec![event(1, 1), event(2, 3)],
    };
    store.record_usage(&batch).await.unwrap();
    // The same tuple again adds to it.
    store
        .record_usage(&UsageBatch {
            rollups: vec![rollup("/a", 2, 0, 2)],
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    let filter = UsageFilter {
        key_id: Some(key.id.clone()),
        ..UsageFilter::between(hour, hour + Duration::hours(1))
    };
    let rows = store.usage_rollups(&filter).await.unwrap();
    assert_eq!(rows.len(), 2);
    // The database adds them up per group.
    let totals = |group| {
        let filter = filter.clone();
        async move {
            store
                .usage_totals(&filter, group)
                .await
                .unwrap()
                .into_iter()
                .map(|t| (t.group, t.requests, t.rejected, t.units, t.latency[1]))
                .collect::<Vec<_>>()
        }
    };
    let strings = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    assert_eq!(totals(UsageGroup::Total).await, [(vec![], 6, 1, 6, 6)]);
    assert_eq!(
        totals(UsageGroup::Day).await,
        [(strings(&["2026-11-22"]), 6, 1, 6, 6)]
    );
    assert_eq!(
        totals(UsageGroup::Endpoint).await,
        [
            (strings(&["/a"]), 5, 0, 6, 5),
            (strings(&["/b"]), 1, 1, 0, 1)
        ]
    );
    assert_eq!(
        totals(UsageGroup::Status).await,
        [(strings(&["200"]), 6, 1, 6, 6)]
    );
    assert_eq!(
        totals(UsageGroup::Key).await,
        [(strings(&[key.id.as_str(), "r1"]), 6, 1, 6, 6)]
    );
    assert_eq!(
        totals(UsageGroup::UserPlan).await,
        [(strings(&["r1", "free"]), 6, 1, 6, 6)]
    );
    let by_hour = totals(UsageGroup::HourPlan).await;
    assert_eq!(by_hour.len(), 1);
    assert_eq!(by_hour[0].0[1], "free");
    assert!(by_hour[0].0[0].starts_with("2026-11-22T13:00:00"));
    let test_only = UsageFilter {
        environment: Some(Environment::Test),
        ..filter.clone()
    };
    assert!(
        store
            .usage_totals(&test_only, UsageGroup::Key)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .usage_totals(&test_only, UsageGroup::Total)
            .await
            .unwrap()[0]
            .requests,
        0,
        "a total over nothing is zero"
    );
    assert_eq!(
        (
            rows[0].endpoint.as_str(),
            rows[0].requests,
            rows[0].units,
            rows[0].latency[1]
        ),
        ("/a", 5, 6, 5)
    );
    assert_eq!((rows[1].endpoint.as_str(), rows[1].rejected), ("/b", 1));
    assert_eq!(
        store.get_key(&key.id).await.unwrap().request_count,
        3,
        "request_count in the same batch"
    );
    let later = UsageFilter {
        from: hour + Duration::hours(1),
        to: hour + Duration::hours(2),
        ..filter.clone()
    };
    assert!(store.usage_rollups(&later).await.unwrap().is_empty());
    // Pruning: raw events before the cut go; rollups before theirs go.
    let deleted = store
        .prune_usage(hour + Duration::minutes(2), hour)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "one raw event, no rollup");
    let deleted = store
        .prune_usage(hour, hour + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(deleted, 2, "both rollups");
    assert!(store.usage_rollups(&filter).await.unwrap().is_empty());
}

pub async fn plan_segments_and_prices_have_history(store: &dyn Store) {
    enterprise_user(store, "s1").await;
    store
        .update_user(
            &user("s1"),
            &UserPatch {
                plan: Some(plan("pro")),
                ..UserPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let segments = store.plan_segments(&user("s1")).await.unwrap();
    let plans: Vec<&str> = segments.iter().map(|s| s.plan.as_str()).collect();
    assert_eq!(plans, ["enterprise", "pro"]);
    assert!(segments[0].effective_at <= segments[1].effective_at);
    // A price change is recorded once; the same price again is not a change.
    let priced = Plan {
        name: plan("metered"),
        spec: PlanSpec {
            price: Some(keyward_core::Price {
                base_cents: 900,
                included_requests: 1000,
                overage_cents_per_1000: 5,
            }),
            ..PlanSpec::default()
        },
    };
    store.put_plan(&priced, &admin()).await.unwrap();
    store.put_plan(&priced, &admin()).await.unwrap();
    let history: Vec<_> = store
        .price_history()
        .await
        .unwrap()
        .into_iter()
        .filter(|change| change.plan.as_str() == "metered")
        .collect();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].price.as_ref().unwrap().base_cents, 900);
}

pub async fn the_billing_outbox_claims_retries_and_finishes(store: &dyn Store) {
    use keyward_store::{BillingEvent, DeliveryOutcome, DeliveryStatus};
    let now = Utc::now();
    let event = |id: &str| BillingEvent {
        id: id.to_owned(),
        kind: "usage.metered".to_owned(),
        user_id: user("b1"),
        payload: json!({"id": id, "units": 5}),
        created_at: now,
    };
    store
        .add_billing_events(&[event("e1"), event("e2")])
        .await
        .unwrap();
    store.add_billing_events(&[event("e1")]).await.unwrap();
    let lease = now + Duration::seconds(60);
    let claimed = store
        .claim_deliveries("webhook", now - Duration::hours(1), now, lease, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        2,
        "one delivery per event, the repeat ignored"
    );
    assert_eq!(claimed[0].event.payload["units"], 5);
    // Claimed ones are leased: not handed out again now.
    assert!(
        store
            .claim_deliveries("webhook", now - Duration::hours(1), now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .finish_delivery("e1", "webhook", &DeliveryOutcome::Delivered, now)
        .await
        .unwrap();
    store
        .finish_delivery(
            "e2",
            "webhook",
            &DeliveryOutcome::Retry {
                at: now,
                error: "answered 500".to_owned(),
            },
            now,
        )
        .await
        .unwrap();
    let again = store
        .claim_deliveries("webhook", now - Duration::hours(1), now, lease, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].event.id.as_str(), again[0].attempts), ("e2", 1));
    assert_eq!(again[0].last_error.as_deref(), Some("answered 500"));
    store
        .finish_delivery(
            "e2",
            "webhook",
            &DeliveryOutcome::Dead("gave up".to_owned()),
            now,
        )
        .await
        .unwrap();
    let dead = store
        .list_deliveries(Some(DeliveryStatus::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    let delivered = store
        .list_deliveries(Some(DeliveryStatus::Delivered), 10)
        .await
        .unwrap();
    assert_eq!(delivered[0].event.id, "e1");
    assert!(delivered[0].delivered_at.is_some());
    // Another sink gets its own deliveries; events older than its start are not its own.
    assert!(
        store
            .claim_deliveries("stripe", now + Duration::seconds(1), now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .billing_events(now - Duration::seconds(1), now + Duration::seconds(1))
            .await
            .unwrap()
            .len(),
        2
    );
    // Pruning: the delivered event goes with its delivery; the dead one stays visible.
    enterprise_user(store, "feed-a").await;
    enterprise_user(store, "feed-b").await;
    assert!(store.changes_since(0, 1000).await.unwrap().len() >= 2);
    let later = Utc::now() + Duration::seconds(5);
    store.prune_history(later, later).await.unwrap();
    let left = store
        .billing_events(now - Duration::seconds(1), later)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "e2");
    assert_eq!(
        store.list_deliveries(None, 10).await.unwrap().len(),
        1,
        "only the dead delivery"
    );
    // The change feed keeps its newest entry, so followers resume after it.
    let newest = store.latest_change().await.unwrap();
    assert!(newest > 0);
    assert_eq!(store.latest_change().await.unwrap(), newest);
    assert!(
        store
            .changes_since(0, 1000)
            .await
            .unwrap()
            .iter()
            .all(|c| c.id == newest)
    );
}

pub async fn metering_records_revisions_once(store: &dyn Store) {
    use chrono::TimeZone;
    use keyward_store::{BillingEvent, MeteredHour};
    let hour = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let event = |id: &str| BillingEvent {
        id: id.to_owned(),
        kind: "usage.metered".to_owned(),
        user_id: user("m1"),
        payload: json!({"id": id}),
        created_at: Utc::now(),
    };
    let row = |units, revisions| MeteredHour {
        user_id: user("m1"),
        hour,
        plan: "pro".to_owned(),
        units,
        revisions,
    };
    let window = (hour, hour + Duration::hours(1));
    assert!(
        store
            .metered_hours(window.0, window.1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .record_metering(&row(7, 1), 0, &event("m"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_metering(&row(9, 1), 0, &event("m-other"))
            .await
            .unwrap(),
        "a second first revision loses"
    );
    assert!(
        store
            .record_metering(&row(12, 2), 1, &event("m_r2"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_metering(&row(13, 2), 1, &event("m_r2-other"))
            .await
            .unwrap(),
        "a stale revision loses"
    );
    let metered = store.metered_hours(window.0, window.1).await.unwrap();
    assert_eq!(metered, [row(12, 2)]);
    let ids: Vec<String> = store
        .billing_events(
            Utc::now() - Duration::minutes(1),
            Utc::now() + Duration::minutes(1),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"m".to_owned()) && ids.contains(&"m_r2".to_owned()));
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
