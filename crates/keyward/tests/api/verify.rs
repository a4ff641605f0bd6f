//! Black-box tests of the verification path through `/v1/verify` and `/v1/authorize`:
//! every decision code that exists without limits, in the order the checks run.

use std::time::Duration;

use crate::support::{TestServer, eventually};
use reqwest::Method;
use serde_json::json;

fn with_bad_checksum(key: &str) -> String {
    let mut chars: Vec<char> = key.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn missing_invalid_and_valid() {
    let server = TestServer::spawn_app().await;
    let (key, object) = server
        .create_key(json!({"user_id": "u", "name": "k", "metadata": {"tier": "gold"}}))
        .await;

    let valid = server.verify(json!({"key": key})).await;
    assert_eq!(valid.status, 200);
    assert_eq!(valid.body["valid"], true);
    assert_eq!(valid.body["code"], "VALID");
    assert_eq!(valid.body["key_id"], object["id"]);
    assert_eq!(valid.body["user_id"], "u");
    assert_eq!(valid.body["plan"], "free");
    assert_eq!(valid.body["metadata"], json!({"tier": "gold"}));

    let no_key = server.verify(json!({})).await;
    no_key.assert_problem(422, "VALIDATION_FAILED");
    assert!(
        no_key.body["detail"].as_str().unwrap().contains("key"),
        "{}",
        no_key.text
    );
    for (body, code) in [
        (json!({"key": ""}), "MISSING"),
        (json!({"key": "garbage"}), "INVALID"),
        (json!({"key": with_bad_checksum(&key)}), "INVALID"),
        (
            json!({"key": "sk_live_0000000000000000000000000000000000000000000000000"}),
            "INVALID",
        ),
    ] {
        let response = server.verify(body.clone()).await;
        assert_eq!(response.status, 200, "{body}");
        assert_eq!(response.body["valid"], false);
        assert_eq!(response.body["code"], code, "{body}");
    }
    // Unknown but well-formed: a fresh key from another database.
    let other = TestServer::spawn_app().await;
    let (foreign_key, _) = other.create_key(json!({"user_id": "x", "name": "k"})).await;
    assert_eq!(server.verify_code(&foreign_key).await, "INVALID");
    assert_eq!(
        server.verify_code(&foreign_key).await,
        "INVALID",
        "negative cache answers the same"
    );

    let authorized = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(authorized.status, 200);
    assert_eq!(authorized.header("x-keyward-key-id"), object["id"].as_str());
    assert_eq!(authorized.header("x-keyward-user-id"), Some("u"));
    assert_eq!(authorized.header("x-keyward-plan"), Some("free"));
    server
        .send(server.client.get(server.url("/v1/authorize")))
        .await
        .assert_problem(401, "MISSING");
    server
        .send(
            server
                .client
                .post(server.url("/v1/authorize"))
                .header("X-API-Key", "garbage"),
        )
        .await
        .assert_problem(401, "INVALID");
}

#[tokio::test]
async fn the_key_comes_from_bearer_or_x_api_key_and_from_the_query_only_when_allowed() {
    let strict = TestServer::spawn_app().await;
    let (key, _) = strict
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let bearer = strict
        .send(
            strict
                .client
                .get(strict.url("/v1/authorize"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(bearer.status, 200);
    let header = strict
        .send(
            strict
                .client
                .get(strict.url("/v1/authorize"))
                .header("X-API-Key", &key),
        )
        .await;
    assert_eq!(header.status, 200);
    let query = strict
        .send(
            strict
                .client
                .get(strict.url(&format!("/v1/authorize?api_key={key}"))),
        )
        .await;
    query.assert_problem(401, "MISSING");
    let forwarded = strict
        .send(
            strict
                .client
                .get(strict.url("/v1/authorize"))
                .header("X-Original-URI", format!("/data?api_key={key}")),
        )
        .await;
    forwarded.assert_problem(401, "MISSING");

    let lenient = TestServer::start_with(&["--allow-query-key"], &[]).await;
    let (key, _) = lenient
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let query = lenient
        .send(
            lenient
                .client
                .get(lenient.url(&format!("/v1/authorize?api_key={key}"))),
        )
        .await;
    assert_eq!(query.status, 200);
    let forwarded = lenient
        .send(
            lenient
                .client
                .get(lenient.url("/v1/authorize"))
                .header("X-Forwarded-Uri", format!("/data?x=1&api_key={key}")),
        )
        .await;
    assert_eq!(forwarded.status, 200);
}

#[tokio::test]
async fn revoked_disabled_reenabled_and_expired_keys() {
    let server = TestServer::spawn_app().await;
    let (key, object) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let id = object["id"].as_str().unwrap();

    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(server.verify_code(&key).await, "DISABLED");
    server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&key),
        )
        .await
        .assert_problem(401, "DISABLED");
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(server.verify_code(&key).await, "VALID");

    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"expires_at": past})),
        )
        .await;
    assert_eq!(server.verify_code(&key).await, "EXPIRED");
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"expires_at": null})),
        )
        .await;
    assert_eq!(server.verify_code(&key).await, "VALID");

    server
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(server.verify_code(&key).await, "REVOKED");
    server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&key),
        )
        .await
        .assert_problem(401, "REVOKED");
}

#[tokio::test]
async fn rotation_keeps_the_old_key_working_for_its_grace_period_only() {
    let server = TestServer::spawn_app().await;
    // Enterprise: the polling below must not run into the free plan's 60 per minute.
    let (old_key, object) = server
        .create_key(json!({"user_id": "u", "name": "k", "plan": "enterprise"}))
        .await;
    let id = object["id"].as_str().unwrap();
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 2})),
        )
        .await;
    let new_key = rotated.body["key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        server.verify_code(&old_key).await,
        "VALID",
        "inside the grace period"
    );
    assert_eq!(server.verify_code(&new_key).await, "VALID");
    eventually(Duration::from_secs(4), || async {
        server.verify_code(&old_key).await == "EXPIRED"
    })
    .await;
    assert_eq!(server.verify_code(&new_key).await, "VALID");

    let new_id = rotated.body["key"]["id"].as_str().unwrap();
    let immediate = server
        .admin(Method::POST, &format!("/v1/keys/{new_id}/rotate"), None)
        .await;
    assert_eq!(immediate.status, 201);
    assert_eq!(
        server.verify_code(&new_key).await,
        "EXPIRED",
        "no grace period"
    );
    assert_eq!(
        server
            .verify_code(immediate.body["key"]["key"].as_str().unwrap())
            .await,
        "VALID"
    );
}

#[tokio::test]
async fn ip_allowlists_work_for_v4_and_v6_and_trust_forwarded_for_only_from_trusted_proxies() {
    let server = TestServer::start_with(&["--trusted-proxy", "127.0.0.1/32"], &[]).await;
    let (key, _) = server.create_key(json!({"user_id": "u", "name": "k", "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]})).await;
    let verify = |ip: &str| json!({"key": key, "ip": ip});
    assert_eq!(
        server.verify(verify("203.0.113.50")).await.body["code"],
        "VALID"
    );
    assert_eq!(
        server.verify(verify("2001:db8::1")).await.body["code"],
        "VALID"
    );
    assert_eq!(
        server.verify(verify("198.51.100.1")).await.body["code"],
        "IP_NOT_ALLOWED"
    );
    assert_eq!(
        server.verify(verify("2001:db9::1")).await.body["code"],
        "IP_NOT_ALLOWED"
    );
    assert_eq!(
        server.verify(json!({"key": key})).await.body["code"],
        "IP_NOT_ALLOWED",
        "the socket address is 127.0.0.1"
    );

    let through = |xff: &str| {
        server
            .client
            .get(server.url("/v1/authorize"))
            .bearer_auth(&key)
            .header("X-Forwarded-For", xff.to_owned())
            // The trusted proxy terminated TLS.
            .header("X-Forwarded-Proto", "https")
    };
    assert_eq!(server.send(through("203.0.113.7")).await.status, 200);
    assert_eq!(server.send(through("2001:db8::7")).await.status, 200);
    server
        .send(through("198.51.100.7"))
        .await
        .assert_problem(403, "IP_NOT_ALLOWED");
    // Rightmost untrusted entry wins: a client cannot smuggle an allowed address in front.
    server
        .send(through("203.0.113.7, 198.51.100.7"))
        .await
        .assert_problem(403, "IP_NOT_ALLOWED");
    assert_eq!(
        server
            .send(through("198.51.100.7, 203.0.113.7"))
            .await
            .status,
        200
    );

    // Without trusted proxies, X-Forwarded-For is ignored.
    let untrusting = TestServer::spawn_app().await;
    let (key, _) = untrusting
        .create_key(json!({"user_id": "u", "name": "k", "allowed_ips": ["203.0.113.0/24"]}))
        .await;
    let spoofed = untrusting
        .client
        .get(untrusting.url("/v1/authorize"))
        .bearer_auth(&key)
        .header("X-Forwarded-For", "203.0.113.7");
    untrusting
        .send(spoofed)
        .await
        .assert_problem(403, "IP_NOT_ALLOWED");
}

#[tokio::test]
async fn scopes_come_from_the_key_and_its_plans_features() {
    let server = TestServer::spawn_app().await;
    let (scoped, _) = server
        .create_key(json!({"user_id": "u", "name": "k", "scopes": ["read"]}))
        .await;
    let (open, _) = server
        .create_key(json!({"user_id": "u", "name": "open"}))
        .await;
    let check =
        |key: &str, scopes: serde_json::Value| json!({"key": key, "required_scopes": scopes});
    assert_eq!(
        server.verify(check(&scoped, json!(["read"]))).await.body["code"],
        "VALID"
    );
    assert_eq!(
        server.verify(check(&scoped, json!(["write"]))).await.body["code"],
        "INSUFFICIENT_SCOPE"
    );
    assert_eq!(
        server.verify(check(&open, json!(["write"]))).await.body["code"],
        "VALID"
    );
    let authorize = server
        .client
        .get(server.url("/v1/authorize"))
        .bearer_auth(&scoped)
        .header("X-Keyward-Required-Scopes", "read, write");
    server
        .send(authorize)
        .await
        .assert_problem(403, "INSUFFICIENT_SCOPE");

    // A plan with features restricts every key on it, and moving the user unlocks them.
    server
        .admin(
            Method::PUT,
            "/v1/plans/basic",
            Some(json!({"limits": [{"window_seconds": 60, "max": 100}], "features": ["read"]})),
        )
        .await;
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "v", "plan": "basic"})),
        )
        .await;
    let (key, _) = server
        .create_key(json!({"user_id": "v", "name": "k"}))
        .await;
    assert_eq!(
        server.verify(check(&key, json!(["write"]))).await.body["code"],
        "INSUFFICIENT_SCOPE"
    );
    server
        .admin(Method::PATCH, "/v1/users/v", Some(json!({"plan": "pro"})))
        .await;
    assert_eq!(
        server.verify(check(&key, json!(["write"]))).await.body["code"],
        "VALID"
    );
}

#[tokio::test]
async fn decisions_that_could_fail_two_ways_follow_the_contract_order() {
    let server = TestServer::start_with(
        &["--failure-limit", "3", "--failure-window-seconds", "30"],
        &[],
    )
    .await;
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let (key, object) = server
        .create_key(json!({"user_id": "u", "name": "k", "allowed_ips": ["192.0.2.0/24"], "scopes": ["read"]}))
        .await;
    let id = object["id"].as_str().unwrap();
    let body = json!({"key": key, "ip": "198.51.100.1", "required_scopes": ["write"]});
    assert_eq!(
        server.verify(body.clone()).await.body["code"],
        "IP_NOT_ALLOWED",
        "before scopes"
    );
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"expires_at": past})),
        )
        .await;
    assert_eq!(
        server.verify(body.clone()).await.body["code"],
        "EXPIRED",
        "before the allowlist"
    );
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        server.verify(body.clone()).await.body["code"],
        "DISABLED",
        "before expiry"
    );
    server
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(
        server.verify(body.clone()).await.body["code"],
        "REVOKED",
        "before everything the key itself says"
    );
    // That was the guard's third failure (EXPIRED, DISABLED, REVOKED), so every further check is refused…
    assert_eq!(
        server.verify(body.clone()).await.body["code"],
        "TOO_MANY_FAILURES",
        "the guard comes before the key"
    );
    // …except one without a key, which is MISSING first.
    assert_eq!(
        server.verify(json!({"key": ""})).await.body["code"],
        "MISSING"
    );
}

#[tokio::test]
async fn the_brute_force_guard_kicks_in_and_expires() {
    let server = TestServer::start_with(
        &["--failure-limit", "3", "--failure-window-seconds", "2"],
        &[],
    )
    .await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    for _ in 0..3 {
        assert_eq!(
            server
                .verify_code("sk_live_0000000000000000000000000000000000000000000000000")
                .await,
            "INVALID"
        );
    }
    assert_eq!(
        server.verify_code(&key).await,
        "TOO_MANY_FAILURES",
        "the 4th check is refused, valid key or not"
    );
    let blocked = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&key),
        )
        .await;
    blocked.assert_problem(429, "TOO_MANY_FAILURES");
    eventually(Duration::from_secs(4), || async {
        server.verify_code(&key).await == "VALID"
    })
    .await;

    // A trusted proxy verifying for its clients: failures count per client `ip`.
    let proxied = TestServer::start_with(
        &["--failure-limit", "2", "--trusted-proxy", "127.0.0.0/8"],
        &[],
    )
    .await;
    let (key, _) = proxied
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    for _ in 0..2 {
        proxied
            .verify(json!({"key": "garbage", "ip": "198.51.100.1"}))
            .await;
    }
    assert_eq!(
        proxied
            .verify(json!({"key": key, "ip": "198.51.100.1"}))
            .await
            .body["code"],
        "TOO_MANY_FAILURES"
    );
    assert_eq!(
        proxied
            .verify(json!({"key": key, "ip": "198.51.100.2"}))
            .await
            .body["code"],
        "VALID",
        "another client is unaffected"
    );
}

#[tokio::test]
async fn a_revocation_by_the_cli_reaches_the_running_server_within_a_second() {
    let server = TestServer::spawn_app().await;
    let (key, object) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    assert_eq!(server.verify_code(&key).await, "VALID", "now cached");
    let output = server.cli(&["keys", "revoke", object["id"].as_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Polled for longer than the promise, so a miss reports how long it took.
    let took = eventually(Duration::from_secs(5), || async {
        server.verify_code(&key).await == "REVOKED"
    })
    .await;
    assert!(took < Duration::from_secs(1), "revoked after {took:?}");

    // And a direct SQL edit by another process, through the change feed's trigger.
    let (key2, object2) = server
        .create_key(json!({"user_id": "u", "name": "k2"}))
        .await;
    assert_eq!(server.verify_code(&key2).await, "VALID");
    let output = server.cli(&["keys", "rotate", object2["id"].as_str().unwrap()]);
    assert!(output.status.success());
    eventually(Duration::from_secs(1), || async {
        server.verify_code(&key2).await == "EXPIRED"
    })
    .await;
}

/// A key sent as `Authorization: <key>` (no `Bearer`) is MISSING, and the answer says why —
/// without repeating the header, which holds a key.
#[tokio::test]
async fn an_authorization_header_without_bearer_is_told_what_to_send() {
    let server = TestServer::spawn_app().await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    for value in [key.clone(), format!("Basic {key}"), format!("Token {key}")] {
        let answer = server
            .send(
                server
                    .client
                    .get(server.url("/v1/authorize"))
                    .header("Authorization", &value),
            )
            .await;
        answer.assert_problem(401, "MISSING");
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains("Bearer"), "{detail}");
        assert!(!answer.text.contains(&key[8..]), "the key is not echoed");
    }
    let bare = server
        .send(server.client.get(server.url("/v1/authorize")))
        .await;
    bare.assert_problem(401, "MISSING");
    assert_eq!(bare.body["detail"], "no API key was presented");
    let bearer = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .header("Authorization", format!("Bearer {key}")),
        )
        .await;
    assert_eq!(bearer.status, 200);
}
