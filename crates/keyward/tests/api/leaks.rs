//! Leaked keys: `POST /v1/keys/self-revoke` lets whoever holds a key revoke it, and says
//! nothing about any other string.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Response, TestServer};

async fn self_revoke(server: &TestServer, body: Value) -> Response {
    server
        .send(
            server
                .client
                .post(server.url("/v1/keys/self-revoke"))
                .json(&body),
        )
        .await
}

#[tokio::test]
async fn a_holder_revokes_its_key_active_disabled_or_in_grace() {
    let server = TestServer::spawn_app().await;
    let (active, object) = server
        .create_key(json!({"user_id": "u", "name": "active"}))
        .await;
    let revoked = self_revoke(&server, json!({"key": active})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        revoked.body,
        json!({"key_id": object["id"], "revoked": true})
    );
    assert_eq!(server.verify_code(&active).await, "REVOKED");
    let audit = server
        .admin(
            Method::GET,
            &format!(
                "/v1/audit?key_id={}&action=key.revoke",
                object["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let record = &audit.body["records"][0];
    assert_eq!(
        record["actor"],
        format!("key:{}", object["id"].as_str().unwrap())
    );
    assert_eq!(record["details"]["self_revoke"], true);

    // A disabled key, and a rotated key still in its grace period, can be revoked too.
    let (disabled, object) = server
        .create_key(json!({"user_id": "u", "name": "disabled"}))
        .await;
    let id = object["id"].as_str().unwrap();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        self_revoke(&server, json!({"key": disabled})).await.status,
        200
    );
    let (old, object) = server
        .create_key(json!({"user_id": "u", "name": "rotated"}))
        .await;
    let id = object["id"].as_str().unwrap();
    server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 3600})),
        )
        .await;
    assert_eq!(server.verify_code(&old).await, "VALID");
    assert_eq!(self_revoke(&server, json!({"key": old})).await.status, 200);
    assert_eq!(server.verify_code(&old).await, "REVOKED");

    // Revoked already: nothing left to revoke.
    self_revoke(&server, json!({"key": active}))
        .await
        .assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn an_admin_key_can_be_revoked_by_its_holder() {
    let server = TestServer::spawn_app().await;
    let created = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "leaky", "permissions": ["keys:read"]})),
        )
        .await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let works = server.as_key(&key, Method::GET, "/v1/keys", None).await;
    assert_eq!(works.status, 200);
    let revoked = self_revoke(&server, json!({"key": key})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.body["key_id"], created.body["id"]);
    let refused = server.as_key(&key, Method::GET, "/v1/keys", None).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
}

#[tokio::test]
async fn anything_else_is_the_same_404_and_counted_by_the_guard() {
    let server = TestServer::start_with(&["--failure-limit", "3"], &[]).await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    // Without `key`: a malformed request naming the field.
    let missing = self_revoke(&server, json!({})).await;
    missing.assert_problem(422, "VALIDATION_FAILED");
    assert!(missing.text.contains("key"), "{}", missing.text);
    // A bad checksum, an unknown key, a string that is no key: the same 404.
    let mut bad_checksum = key.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    for guess in [bad_checksum.as_str(), "sk_live_unknown", "not a key"] {
        self_revoke(&server, json!({"key": guess}))
            .await
            .assert_problem(404, "NOT_FOUND");
    }
    // Three failures: the address is locked out, even with the right key.
    self_revoke(&server, json!({"key": key}))
        .await
        .assert_problem(429, "TOO_MANY_FAILURES");
    assert_eq!(server.verify_code(&key).await, "TOO_MANY_FAILURES");
}
