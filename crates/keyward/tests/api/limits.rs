//! Rate limits through the real server: windows, headers, Retry-After, overrides, tiers,
//! rotation and plan changes. Short windows keep the waits short.

use std::time::Duration;

use crate::support::{TestServer, eventually};
use reqwest::Method;
use serde_json::json;

/// A plan allowing 5 requests per 2 seconds, and a key of a user on it.
async fn tiny_plan_key(server: &TestServer, user: &str) -> (String, serde_json::Value) {
    let plan = server
        .admin(Method::PUT, "/v1/plans/tiny", Some(json!({"limits": [{"window_seconds": 2, "max": 5}, {"window_seconds": 60, "max": 100}]})))
        .await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": user, "plan": "tiny"})),
        )
        .await;
    server
        .create_key(json!({"user_id": user, "name": "k"}))
        .await
}

#[tokio::test]
async fn the_request_past_the_window_is_rate_limited_with_headers_and_retry_after() {
    let server = TestServer::spawn_app().await;
    let (key, _) = tiny_plan_key(&server, "u").await;
    let authorize = || {
        server
            .client
            .get(server.url("/v1/authorize"))
            .bearer_auth(&key)
    };
    for expected_remaining in (0..5).rev() {
        let ok = server.send(authorize()).await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            ok.header("x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        assert_eq!(
            ok.header("ratelimit-policy"),
            Some("\"2s\";q=5;w=2, \"minute\";q=100;w=60")
        );
        assert!(
            ok.header("ratelimit")
                .unwrap()
                .starts_with(&format!("\"2s\";r={expected_remaining};t="))
        );
    }
    let limited = server.send(authorize()).await;
    limited.assert_problem(429, "RATE_LIMITED");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = limited
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= 1 && reset <= retry, "reset {reset}, retry {retry}");
    assert!(
        limited
            .header("ratelimit")
            .unwrap()
            .contains("\"minute\";r=95;"),
        "rejections consume nothing"
    );

    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        server.send(authorize()).await.status,
        200,
        "waiting Retry-After is enough"
    );

    let verified = server.verify(json!({"key": key})).await;
    assert!(
        verified.body["ratelimit"]["limit"].is_u64(),
        "{}",
        verified.text
    );
    server
        .verify(json!({"key": key, "cost": 6}))
        .await
        .assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn free_and_pro_differ_as_in_the_table_and_overrides_apply() {
    let server = TestServer::spawn_app().await;
    let (free, _) = server
        .create_key(json!({"user_id": "f", "name": "k"}))
        .await;
    let (pro, _) = server
        .create_key(json!({"user_id": "p", "name": "k", "plan": "pro"}))
        .await;
    for _ in 0..60 {
        assert_eq!(server.verify_code(&free).await, "VALID");
    }
    assert_eq!(
        server.verify_code(&free).await,
        "RATE_LIMITED",
        "free: 60 per minute"
    );
    for _ in 0..61 {
        assert_eq!(
            server.verify_code(&pro).await,
            "VALID",
            "pro: 600 per minute"
        );
    }
    let head = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&pro),
        )
        .await;
    assert_eq!(
        head.header("ratelimit-policy"),
        Some("\"minute\";q=600;w=60, \"hour\";q=20000;w=3600, \"day\";q=500000;w=86400")
    );

    let (hourly, _) = server
        .create_key(json!({"user_id": "h", "name": "k", "rate_limit_per_hour": 3}))
        .await;
    for _ in 0..3 {
        assert_eq!(server.verify_code(&hourly).await, "VALID");
    }
    assert_eq!(
        server.verify_code(&hourly).await,
        "RATE_LIMITED",
        "rate_limit_per_hour replaces the hour window"
    );
}

#[tokio::test]
async fn a_rotated_key_inherits_a_full_window_and_plan_changes_apply_live() {
    let server = TestServer::spawn_app().await;
    let (key, object) = tiny_plan_key(&server, "r").await;
    for _ in 0..5 {
        assert_eq!(server.verify_code(&key).await, "VALID");
    }
    let id = object["id"].as_str().unwrap();
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 60})),
        )
        .await;
    let new_key = rotated.body["key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        server.verify_code(&new_key).await,
        "RATE_LIMITED",
        "rotation never resets limits"
    );

    // Moving the user to a roomier plan lifts the limit at once.
    server
        .admin(
            Method::PATCH,
            "/v1/users/r",
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(server.verify_code(&new_key).await, "VALID");
    // A plan edit made by another process (the CLI) reaches the server within a second.
    let (key2, _) = server
        .create_key(json!({"user_id": "s", "name": "k"}))
        .await;
    let output = server.cli(&["plans", "set", "free", "--per-minute", "1"]);
    assert!(output.status.success());
    eventually(Duration::from_secs(1), || async {
        let first = server.verify_code(&key2).await;
        first == "RATE_LIMITED" || server.verify_code(&key2).await == "RATE_LIMITED"
    })
    .await;
}

#[tokio::test]
async fn the_monthly_quota_counts_live_keys_of_the_user_and_survives_a_restart() {
    crate::support::clear_of_hour_boundary().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let mut server = TestServer::start_with(&["--database-url", &url], &[]).await;
    server
        .admin(
            Method::PUT,
            "/v1/plans/metered",
            Some(json!({"limits": [{"window_seconds": 60, "max": 100}], "monthly_quota": 3})),
        )
        .await;
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "m", "plan": "metered"})),
        )
        .await;
    let (first, _) = server
        .create_key(json!({"user_id": "m", "name": "a"}))
        .await;
    let (second, _) = server
        .create_key(json!({"user_id": "m", "name": "b"}))
        .await;
    let (test_key, _) = server
        .create_key(json!({"user_id": "m", "name": "t", "environment": "test"}))
        .await;
    assert_eq!(server.verify_code(&first).await, "VALID");
    assert_eq!(server.verify_code(&second).await, "VALID");
    let third = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&first),
        )
        .await;
    assert_eq!(third.status, 200);
    assert!(
        third
            .header("ratelimit")
            .unwrap()
            .contains("\"month\";r=0;"),
        "{:?}",
        third.header("ratelimit")
    );
    assert!(
        third
            .header("ratelimit-policy")
            .unwrap()
            .contains("\"month\";q=3;w=")
    );

    let over = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&second),
        )
        .await;
    over.assert_problem(429, "QUOTA_EXCEEDED");
    assert_eq!(
        over.body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(
        server.verify_code(&test_key).await,
        "VALID",
        "test keys count toward no quota"
    );
    assert_eq!(server.verify_code(&test_key).await, "VALID");

    let (status, _) = server.stop();
    assert_eq!(status.code(), Some(0));
    let restarted = TestServer::start_with(&["--database-url", &url], &[]).await;
    assert_eq!(
        restarted.verify_code(&first).await,
        "QUOTA_EXCEEDED",
        "still used up after a restart"
    );
}

#[tokio::test]
async fn max_keys_caps_a_users_open_keys_but_never_rotation() {
    let server = TestServer::spawn_app().await;
    let mut first = None;
    for i in 0..5 {
        let (_, key) = server
            .create_key(json!({"user_id": "cap", "name": format!("k{i}")}))
            .await;
        first.get_or_insert(key);
    }
    let refused = server
        .admin_call(
            Method::POST,
            "/v1/keys",
            Some(json!({"user_id": "cap", "name": "sixth"})),
        )
        .await;
    refused.assert_problem(409, "CONFLICT");
    let id = first.unwrap()["id"].as_str().unwrap().to_owned();
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 60})),
        )
        .await;
    assert_eq!(rotated.status, 201, "rotation is never refused by max_keys");
    // The old key counts until its grace period ends; with both it and its successor
    // revoked, there is room again.
    let new_id = rotated.body["key"]["id"].as_str().unwrap();
    server
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    server
        .admin(Method::DELETE, &format!("/v1/keys/{new_id}"), None)
        .await;
    let (_, _) = server
        .create_key(json!({"user_id": "cap", "name": "after-revoke"}))
        .await;
}

/// Where limits are kept: in process (the default deployment) or in the test Redis.
async fn servers() -> Vec<(&'static str, TestServer)> {
    vec![
        ("in process", TestServer::spawn_app().await),
        (
            "Redis",
            TestServer::start_with(&["--redis-url", &crate::support::redis_url()], &[]).await,
        ),
    ]
}

/// A user id no earlier test or run used (Redis outlives the servers).
fn fresh_user(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}

/// A user on `plan` (created from `body`) and a live key of it with `key_body`'s fields.
async fn user_key(
    server: &TestServer,
    plan: &str,
    body: serde_json::Value,
    key_body: serde_json::Value,
) -> (String, String) {
    server
        .admin(Method::PUT, &format!("/v1/plans/{plan}"), Some(body))
        .await;
    let user = fresh_user(plan);
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": user, "plan": plan})),
        )
        .await;
    let mut key_body = key_body;
    key_body["user_id"] = json!(user);
    key_body["name"] = json!("k");
    key_body["environment"] = json!("live");
    let (key, object) = server.create_key(key_body).await;
    (key, object["id"].as_str().unwrap().to_owned())
}

async fn code_of(server: &TestServer, body: serde_json::Value) -> String {
    let response = server.verify(body).await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.body["code"].as_str().unwrap().to_owned()
}

/// The checks run in a fixed order and the first that fails decides: a key over both its
/// quota and a window is QUOTA_EXCEEDED; an address or scope refusal comes before either,
/// and none of these refusals consumes anything.
#[tokio::test]
async fn refusals_come_in_order_and_consume_nothing() {
    crate::support::clear_of_hour_boundary().await;
    for (backend, server) in servers().await {
        let plan = json!({"limits": [{"window_seconds": 60, "max": 3}], "monthly_quota": 3});
        let (key, id) = user_key(
            &server,
            "ordered",
            plan,
            json!({"allowed_ips": ["10.0.0.0/8"], "scopes": ["read"]}),
        )
        .await;
        let inside = json!({"key": key, "ip": "10.1.2.3"});
        let outside = json!({"key": key, "ip": "192.0.2.1"});
        let unscoped = json!({"key": key, "ip": "10.1.2.3", "required_scopes": ["write"]});
        assert_eq!(code_of(&server, inside.clone()).await, "VALID", "{backend}");
        for _ in 0..5 {
            assert_eq!(code_of(&server, outside.clone()).await, "IP_NOT_ALLOWED");
            assert_eq!(
                code_of(&server, unscoped.clone()).await,
                "INSUFFICIENT_SCOPE"
            );
        }
        // Ten refusals consumed nothing: two more fit, then both the window and the quota
        // are full.
        for _ in 0..2 {
            assert_eq!(code_of(&server, inside.clone()).await, "VALID", "{backend}");
        }
        assert_eq!(
            code_of(&server, inside.clone()).await,
            "QUOTA_EXCEEDED",
            "{backend}: over both, the quota decides"
        );
        assert_eq!(
            code_of(&server, outside).await,
            "IP_NOT_ALLOWED",
            "{backend}"
        );
        assert_eq!(
            code_of(&server, unscoped).await,
            "INSUFFICIENT_SCOPE",
            "{backend}"
        );
        eventually(Duration::from_secs(5), || async {
            let object = server
                .admin(Method::GET, &format!("/v1/keys/{id}"), None)
                .await;
            object.body["request_count"] == 3
        })
        .await;

        // A window full before the quota: RATE_LIMITED.
        let plan = json!({"limits": [{"window_seconds": 60, "max": 2}], "monthly_quota": 10});
        let (key, _) = user_key(&server, "windowed", plan, json!({})).await;
        for _ in 0..2 {
            assert_eq!(code_of(&server, json!({"key": key})).await, "VALID");
        }
        assert_eq!(
            code_of(&server, json!({"key": key})).await,
            "RATE_LIMITED",
            "{backend}"
        );
    }
}

/// Many clients at once on one node: a window admits exactly its max and a monthly quota
/// exactly its units (reserved before the windows are asked, so none is spent twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_get_exactly_the_window_and_the_quota() {
    crate::support::clear_of_hour_boundary().await;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    for (backend, server) in servers().await {
        let server = Arc::new(server);
        let windowed = user_key(
            &server,
            "crowded",
            json!({"limits": [{"window_seconds": 60, "max": 40}]}),
            json!({}),
        )
        .await
        .0;
        let metered = user_key(
            &server,
            "metered",
            json!({"limits": [{"window_seconds": 60, "max": 1000}], "monthly_quota": 25}),
            json!({}),
        )
        .await
        .0;
        for (key, expected, refusal) in [
            (windowed, 40, "RATE_LIMITED"),
            (metered, 25, "QUOTA_EXCEEDED"),
        ] {
            let admitted = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (server, key, admitted) = (server.clone(), key.clone(), admitted.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..10 {
                        let response = server.authorize(&key).await;
                        match response.status {
                            200 => {
                                admitted.fetch_add(1, Ordering::SeqCst);
                            }
                            429 => assert_eq!(response.code(), refusal),
                            other => panic!("unexpected {other}: {}", response.text),
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(
                admitted.load(Ordering::SeqCst),
                expected,
                "{backend}: 160 concurrent requests, {refusal} after {expected}"
            );
        }
    }
}
