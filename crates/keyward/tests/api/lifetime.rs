//! A plan's cap on key lifetimes (`max_key_lifetime_days`): new and rotated keys of its
//! users expire within it, a change to a later expiry is refused, and nothing else moves.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestServer;

fn expiry(key: &Value) -> DateTime<Utc> {
    key["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no expiry: {key}"))
        .parse()
        .unwrap()
}

/// Within a minute of `now + days` (the request took some time).
fn about_days_from_now(at: DateTime<Utc>, days: i64) -> bool {
    let expected = Utc::now() + Duration::days(days);
    (expected - at).num_seconds().abs() < 60
}

async fn capped_plan(server: &TestServer, days: u32) {
    let plan = server
        .admin(
            Method::PUT,
            "/v1/plans/capped",
            Some(json!({"limits": [{"window_seconds": 60, "max": 100}], "max_key_lifetime_days": days})),
        )
        .await;
    assert_eq!(plan.body["max_key_lifetime_days"], days);
}

#[tokio::test]
async fn new_and_rotated_keys_live_at_most_the_plans_days() {
    let server = TestServer::spawn_app().await;
    capped_plan(&server, 30).await;
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "acme", "plan": "capped"})),
        )
        .await;
    // No expiry asked: the cap is the expiry. A later one: clamped. An earlier one: kept.
    let (_, open) = server
        .create_key(json!({"user_id": "acme", "name": "open"}))
        .await;
    assert!(about_days_from_now(expiry(&open), 30), "{open}");
    let (_, later) = server
        .create_key(json!({"user_id": "acme", "name": "later", "expires_in_days": 90}))
        .await;
    assert!(about_days_from_now(expiry(&later), 30), "{later}");
    let (_, earlier) = server
        .create_key(json!({"user_id": "acme", "name": "earlier", "expires_in_days": 7}))
        .await;
    assert!(about_days_from_now(expiry(&earlier), 7), "{earlier}");

    // A rotated key keeps its predecessor's expiry or the one asked, within the cap.
    let id = later["id"].as_str().unwrap();
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"expires_in_days": 365})),
        )
        .await;
    assert!(
        about_days_from_now(expiry(&rotated.body["key"]), 30),
        "{}",
        rotated.text
    );

    // A change to a later expiry (or to none) is refused; an earlier one is fine.
    let id = open["id"].as_str().unwrap();
    let in_days = |days: i64| (Utc::now() + Duration::days(days)).to_rfc3339();
    for body in [
        json!({"expires_at": in_days(31)}),
        json!({"expires_at": null}),
    ] {
        let refused = server
            .admin_call(Method::PATCH, &format!("/v1/keys/{id}"), Some(body.clone()))
            .await;
        refused.assert_problem(422, "VALIDATION_FAILED");
        assert!(refused.text.contains("caps how long"), "{}", refused.text);
    }
    let shown = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(
        shown.body["expires_at"], open["expires_at"],
        "a refused change changed it"
    );
    let shorter = server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"expires_at": in_days(10)})),
        )
        .await;
    assert!(about_days_from_now(expiry(&shorter.body), 10));
}

#[tokio::test]
async fn the_cap_is_the_users_plan_and_existing_keys_keep_their_expiry() {
    let server = TestServer::spawn_app().await;
    capped_plan(&server, 30).await;
    // A key's own plan does not cap it: the user's plan does.
    let (_, own_plan) = server
        .create_key(json!({"user_id": "free-user", "name": "k", "plan": "capped"}))
        .await;
    assert!(own_plan["expires_at"].is_null(), "{own_plan}");

    // Moving the user onto the capped plan leaves its keys as they are; its next key is capped.
    server
        .admin(
            Method::PATCH,
            "/v1/users/free-user",
            Some(json!({"plan": "capped"})),
        )
        .await;
    let id = own_plan["id"].as_str().unwrap();
    let kept = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert!(kept.body["expires_at"].is_null(), "{}", kept.text);
    let (_, next) = server
        .create_key(json!({"user_id": "free-user", "name": "next"}))
        .await;
    assert!(about_days_from_now(expiry(&next), 30));

    // Removing the cap frees new keys again.
    server
        .admin(
            Method::PUT,
            "/v1/plans/capped",
            Some(json!({"limits": [{"window_seconds": 60, "max": 100}]})),
        )
        .await;
    let (_, free) = server
        .create_key(json!({"user_id": "free-user", "name": "free"}))
        .await;
    assert!(free["expires_at"].is_null(), "{free}");

    // Out-of-range caps are refused.
    for days in [json!(0), json!(36_501), json!(-1), json!("30")] {
        let refused = server
            .admin_call(
                Method::PUT,
                "/v1/plans/capped",
                Some(json!({"max_key_lifetime_days": days})),
            )
            .await;
        assert_eq!(refused.status, 422, "{days}: {}", refused.text);
    }
}

#[tokio::test]
async fn self_service_asks_are_checked_before_the_cap_clamps_them() {
    let server = TestServer::spawn_app().await;
    capped_plan(&server, 30).await;
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "acme", "plan": "capped"})),
        )
        .await;
    let (own, parent) = server
        .create_key(json!({"user_id": "acme", "name": "parent", "expires_in_days": 5}))
        .await;
    // The user's key expires in 5 days: a child asking for 20 is refused (it may only
    // narrow), even though the plan's cap of 30 would allow it.
    let child = server
        .as_key(
            &own,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "child", "expires_in_days": 20})),
        )
        .await;
    assert_eq!(child.status, 403, "{}", child.text);
    let within = server
        .as_key(
            &own,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "child"})),
        )
        .await;
    assert_eq!(within.status, 201, "{}", within.text);
    assert!(expiry(&within.body) <= expiry(&parent));
}
