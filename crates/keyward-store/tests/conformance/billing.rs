//! The store conformance suite — Billing: plan segments, price history, metering and the outbox. Each case takes a freshly migrated store.

use super::helpers::*;

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
