//! The store conformance suite — Webhooks: endpoints, events raised with the changes they
//! describe, deliveries claimed under a lease, outcomes, replays and retention.

use super::helpers::*;
use keyward_store::{
    NewWebhook, WebhookAttempt, WebhookDeliveryStatus, WebhookPatch, WebhookRecord,
};

async fn endpoint(store: &dyn Store, events: &[&str]) -> WebhookRecord {
    store
        .create_webhook(
            &NewWebhook {
                url: "http://127.0.0.1:9/hooks".into(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                description: None,
                secret: "whsec_c2VjcmV0".into(),
            },
            &admin(),
        )
        .await
        .unwrap()
}

pub async fn events_reach_subscribed_enabled_endpoints_once(store: &dyn Store) {
    let all = endpoint(store, &["*"]).await;
    let revocations = endpoint(store, &["key.revoked"]).await;
    let paused = endpoint(store, &["*"]).await;
    store
        .update_webhook(
            &paused.id,
            &WebhookPatch {
                enabled: Some(false),
                ..WebhookPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let (_, key) = issue_key(store, &spec("acme", "k"), &admin())
        .await
        .unwrap();
    store.revoke_key(&key.id, &admin()).await.unwrap();
    // Revoking again changes nothing and raises nothing.
    store.revoke_key(&key.id, &admin()).await.unwrap();

    let now = Utc::now();
    let lease = now + Duration::seconds(60);
    let claimed = store
        .claim_webhook_deliveries(now, lease, 100)
        .await
        .unwrap();
    let mut seen: Vec<(String, String)> = claimed
        .iter()
        .map(|(d, e)| (e.id.clone(), d.event.kind.clone()))
        .collect();
    seen.sort();
    let mut expected = vec![
        (all.id.clone(), "key.created".to_owned()),
        (all.id.clone(), "key.revoked".to_owned()),
        (revocations.id.clone(), "key.revoked".to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let created = claimed
        .iter()
        .find(|(d, _)| d.event.kind == "key.created")
        .unwrap();
    assert_eq!(created.0.event.subject["key"]["id"], key.id.as_str());
    // Claimed: no other claim gets them until the lease ends.
    assert!(
        store
            .claim_webhook_deliveries(now, lease, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let after_lease = lease + Duration::seconds(1);
    let reclaimed = store
        .claim_webhook_deliveries(after_lease, after_lease, 100)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 3);
    // The first claim's lease ended and another claim holds them: its late outcome is
    // not recorded.
    let stale = &claimed[0].0;
    store
        .finish_webhook_delivery(
            &stale.id,
            stale.claim.as_deref().unwrap(),
            &WebhookAttempt::Succeeded {
                status: 200,
                body: String::new(),
            },
            now,
        )
        .await
        .unwrap();
    let log = store
        .list_webhook_deliveries(&claimed[0].1.id, &page(100, None))
        .await
        .unwrap();
    assert!(
        log.items
            .iter()
            .all(|d| d.status == WebhookDeliveryStatus::Pending),
        "a stale claim recorded an outcome"
    );

    // Outcomes: a 2xx is final; a failure is retried when due; the last failure is dead.
    let claimed = reclaimed;
    let (first, second, third) = (&claimed[0].0, &claimed[1].0, &claimed[2].0);
    store
        .finish_webhook_delivery(
            &first.id,
            first.claim.as_deref().unwrap(),
            &WebhookAttempt::Succeeded {
                status: 204,
                body: String::new(),
            },
            now,
        )
        .await
        .unwrap();
    let retry_at = now + Duration::seconds(5);
    store
        .finish_webhook_delivery(
            &second.id,
            second.claim.as_deref().unwrap(),
            &WebhookAttempt::Failed {
                status: Some(500),
                body: "x".repeat(5000),
                retry_at: Some(retry_at),
            },
            now,
        )
        .await
        .unwrap();
    store
        .finish_webhook_delivery(
            &third.id,
            third.claim.as_deref().unwrap(),
            &WebhookAttempt::Failed {
                status: None,
                body: String::new(),
                retry_at: None,
            },
            now,
        )
        .await
        .unwrap();
    let due = store
        .claim_webhook_deliveries(retry_at, retry_at + Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].0.id, second.id);
    assert_eq!(due[0].0.attempts, 1);
    assert_eq!(
        due[0].0.response_body.as_ref().unwrap().len(),
        1024,
        "1 KiB of the answer kept"
    );
    let log = store
        .list_webhook_deliveries(&claimed[2].1.id, &page(100, None))
        .await
        .unwrap();
    let third_logged = log.items.iter().find(|d| d.id == third.id).unwrap();
    assert_eq!(third_logged.status, WebhookDeliveryStatus::Dead);
}

pub async fn gone_and_failing_endpoints_are_disabled_and_replays_resend(store: &dyn Store) {
    let gone = endpoint(store, &["key.created"]).await;
    let failing = endpoint(store, &["key.created"]).await;
    issue_key(store, &spec("acme", "k"), &admin())
        .await
        .unwrap();
    let now = Utc::now();
    let claimed = store
        .claim_webhook_deliveries(now, now + Duration::seconds(60), 100)
        .await
        .unwrap();
    for (delivery, endpoint) in &claimed {
        let attempt = if endpoint.id == gone.id {
            WebhookAttempt::Gone {
                body: String::new(),
            }
        } else {
            WebhookAttempt::Failed {
                status: Some(503),
                body: String::new(),
                retry_at: Some(now),
            }
        };
        store
            .finish_webhook_delivery(
                &delivery.id,
                delivery.claim.as_deref().unwrap(),
                &attempt,
                now,
            )
            .await
            .unwrap();
    }
    assert!(
        !store.get_webhook(&gone.id).await.unwrap().enabled,
        "410 disables"
    );
    // Failing since `now`: not yet disabled by a cutoff before it, disabled by one after.
    assert_eq!(
        store
            .disable_failing_webhooks(now - Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .disable_failing_webhooks(now + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert!(!store.get_webhook(&failing.id).await.unwrap().enabled);
    // Disabled endpoints get no new events.
    issue_key(store, &spec("acme", "later"), &admin())
        .await
        .unwrap();
    for id in [&gone.id, &failing.id] {
        assert_eq!(
            store
                .list_webhook_deliveries(id, &page(100, None))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
    }
    // Enabled again and replayed: both events, the second for the first time.
    store
        .update_webhook(
            &failing.id,
            &WebhookPatch {
                enabled: Some(true),
                ..WebhookPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let replayed = store
        .replay_webhook_events(&failing.id, now - Duration::minutes(1), &admin())
        .await
        .unwrap();
    assert_eq!(replayed, 2);
    assert_eq!(
        store
            .list_webhook_deliveries(&failing.id, &page(100, None))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // Retention: events older than the cutoff go, with their deliveries.
    assert!(
        store
            .prune_webhook_events(Utc::now() + Duration::seconds(1))
            .await
            .unwrap()
            >= 2
    );
    assert!(
        store
            .list_webhook_deliveries(&failing.id, &page(100, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store.delete_webhook(&gone.id, &admin()).await.unwrap().id,
        gone.id
    );
    assert!(matches!(
        store.get_webhook(&gone.id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn endpoint_changes_are_audited_without_the_secret(store: &dyn Store) {
    let hook = endpoint(store, &["key.created"]).await;
    store
        .update_webhook(
            &hook.id,
            &WebhookPatch {
                description: Some(Some("billing".into())),
                ..WebhookPatch::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let rotated = store
        .rotate_webhook_secret(&hook.id, "whsec_bmV3c2VjcmV0", Utc::now(), &admin())
        .await
        .unwrap();
    store
        .replay_webhook_events(&hook.id, Utc::now() - Duration::minutes(1), &admin())
        .await
        .unwrap();
    store.delete_webhook(&hook.id, &admin()).await.unwrap();
    let records = store
        .list_audit(&AuditFilter {
            page: PageRequest {
                limit: 100,
                cursor: None,
            },
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .items;
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r.details["webhook_id"] == hook.id.as_str())
        .collect();
    let mut actions: Vec<&str> = mine.iter().map(|r| r.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "webhook.create",
            "webhook.delete",
            "webhook.replay",
            "webhook.rotate_secret",
            "webhook.update"
        ]
    );
    for record in &mine {
        assert_eq!(record.actor, "admin");
        let text = record.details.to_string();
        assert!(
            !text.contains(&rotated.secret) && !text.contains("whsec_c2VjcmV0"),
            "{text}"
        );
    }
}
