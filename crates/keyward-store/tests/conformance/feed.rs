//! The store conformance suite — The change feed and the audit log. Each case takes a freshly migrated store.

use super::helpers::*;

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
