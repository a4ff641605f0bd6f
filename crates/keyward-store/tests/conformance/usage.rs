//! The store conformance suite — Usage: request counts, quota units, hourly rollups and pruning. Each case takes a freshly migrated store.

use super::helpers::*;

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
