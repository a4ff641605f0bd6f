//! Attacks: what a customer holding one of its own keys (or an anonymous client) tried
//! against a running server to get more than the admin gave it — each attempt performed for
//! real, each asserted to fail safely. Grouped by what the attacker was after.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Response, TestServer};

/// Creates a key as the admin with `body` (user `victim` unless given) and returns its
/// plaintext and object.
async fn admin_key(server: &TestServer, body: Value) -> (String, Value) {
    let mut body = body;
    if body.get("user_id").is_none() {
        body["user_id"] = json!("victim");
    }
    if body.get("name").is_none() {
        body["name"] = json!("issued by the admin");
    }
    server.create_key(body).await
}

async fn self_create(server: &TestServer, key: &str, body: Value) -> Response {
    server
        .as_key(key, Method::POST, "/v1/keys", Some(body))
        .await
}

async fn self_patch(server: &TestServer, key: &str, id: &str, body: Value) -> Response {
    server
        .as_key(key, Method::PATCH, &format!("/v1/keys/{id}"), Some(body))
        .await
}

async fn self_rotate(server: &TestServer, key: &str, id: &str, body: Value) -> Response {
    server
        .as_key(
            key,
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(body),
        )
        .await
}

#[track_caller]
fn assert_forbidden_naming(response: &Response, field: &str) {
    response.assert_problem(403, "FORBIDDEN");
    assert!(
        response.body["detail"].as_str().unwrap().contains(field),
        "the detail names `{field}`: {}",
        response.text
    );
}

// 1. Billing bypass: a test key that looks live, or a test key that makes live keys.

#[tokio::test]
async fn a_test_key_cannot_pass_for_live_nor_make_live_keys() {
    let server = TestServer::start().await;
    let (manager, _) = admin_key(&server, json!({})).await;

    // A self-made test key wearing a live prefix: refused.
    let disguised = self_create(
        &server,
        &manager,
        json!({"name": "x", "environment": "test", "prefix": "sk_live"}),
    )
    .await;
    disguised.assert_problem(422, "VALIDATION_FAILED");
    assert!(
        disguised.body["detail"]
            .as_str()
            .unwrap()
            .contains("prefix")
    );
    for (environment, prefix) in [
        ("test", "acme_prod"),
        ("live", "sk_test"),
        ("live", "kwadm"),
    ] {
        let response = server
            .admin(
                Method::POST,
                "/v1/keys",
                Some(json!({"user_id": "victim", "name": "x", "environment": environment, "prefix": prefix})),
            )
            .await;
        response.assert_problem(422, "VALIDATION_FAILED");
    }

    // Downstream sees the environment, whatever the prefix.
    let created = self_create(
        &server,
        &manager,
        json!({"name": "sandbox", "environment": "test", "prefix": "acme"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let test_key = created.body["key"].as_str().unwrap().to_owned();
    let verified = server.verify(json!({"key": test_key})).await;
    assert_eq!(verified.body["environment"], "test");
    let authorized = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&test_key),
        )
        .await;
    assert_eq!(authorized.status, 200);
    assert_eq!(authorized.header("x-keyward-environment"), Some("test"));

    // The test key creates only test keys (omitted environment: test), and touches no live key.
    let live = self_create(
        &server,
        &test_key,
        json!({"name": "up", "environment": "live"}),
    )
    .await;
    assert_forbidden_naming(&live, "environment");
    let inherited = self_create(&server, &test_key, json!({"name": "child"})).await;
    assert_eq!(inherited.status, 201, "{}", inherited.text);
    assert_eq!(inherited.body["environment"], "test");
    let (_, live_key) = admin_key(&server, json!({"name": "production"})).await;
    let live_id = live_key["id"].as_str().unwrap();
    assert_forbidden_naming(
        &self_patch(&server, &test_key, live_id, json!({"name": "mine"})).await,
        "environment",
    );
    assert_forbidden_naming(
        &self_rotate(&server, &test_key, live_id, json!({})).await,
        "environment",
    );
    let revoke = server
        .as_key(
            &test_key,
            Method::DELETE,
            &format!("/v1/keys/{live_id}"),
            None,
        )
        .await;
    assert_forbidden_naming(&revoke, "environment");
}

// 2. Year-10000 expiry: SQL and the verifier must agree on every key's status.

#[tokio::test]
async fn times_beyond_year_9999_or_before_1970_are_refused_everywhere() {
    let server = TestServer::start().await;
    let (manager, key) = admin_key(&server, json!({})).await;
    let id = key["id"].as_str().unwrap();
    for at in [
        "9999-12-31T23:59:59-23:59",
        "+10000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ] {
        let create = server
            .admin(
                Method::POST,
                "/v1/keys",
                Some(json!({"user_id": "victim", "name": "x", "expires_at": at})),
            )
            .await;
        create.assert_problem(422, "VALIDATION_FAILED");
        assert!(
            create.body["detail"]
                .as_str()
                .unwrap()
                .contains("expires_at")
        );
        let own = self_create(&server, &manager, json!({"name": "x", "expires_at": at})).await;
        own.assert_problem(422, "VALIDATION_FAILED");
        let patch = server
            .admin(
                Method::PATCH,
                &format!("/v1/keys/{id}"),
                Some(json!({"expires_at": at})),
            )
            .await;
        patch.assert_problem(422, "VALIDATION_FAILED");
    }
    // The largest accepted time is an ordinary, active, counted key.
    let (far, far_key) = admin_key(
        &server,
        json!({"user_id": "faruser", "expires_at": "9999-12-31T23:59:59Z"}),
    )
    .await;
    assert_eq!(far_key["status"], "active");
    assert_eq!(server.verify_code(&far).await, "VALID");
    let user = server.admin(Method::GET, "/v1/users/faruser", None).await;
    assert_eq!(user.body["key_count"], 1);
    let listed = server
        .admin(Method::GET, "/v1/keys?user_id=faruser", None)
        .await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    // max_keys counts it: the free plan's 5 keys are 5, whatever their expiry.
    for _ in 0..4 {
        admin_key(
            &server,
            json!({"user_id": "faruser", "expires_at": "9999-12-31T23:59:59Z"}),
        )
        .await;
    }
    let sixth = server
        .admin(
            Method::POST,
            "/v1/keys",
            Some(json!({"user_id": "faruser", "name": "6", "expires_at": "9999-12-31T23:59:59Z"})),
        )
        .await;
    sixth.assert_problem(409, "CONFLICT");
}

// 3. Rotation as escalation.

#[tokio::test]
async fn a_narrow_key_cannot_rotate_a_wider_sibling_into_its_hands() {
    let server = TestServer::start().await;
    let user = server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "victim", "plan": "enterprise"})),
        )
        .await;
    assert_eq!(user.status, 201);
    let (manager, _) = admin_key(&server, json!({"scopes": ["keys:manage"]})).await;
    let (_, unrestricted) = admin_key(&server, json!({"name": "root-ish"})).await;
    let (_, read_write) = admin_key(&server, json!({"scopes": ["read", "write"]})).await;
    for target in [&unrestricted, &read_write] {
        let response =
            self_rotate(&server, &manager, target["id"].as_str().unwrap(), json!({})).await;
        assert_forbidden_naming(&response, "scopes");
    }

    // Restrictions of the caller bound what it may rotate.
    let (limited, _) = admin_key(
        &server,
        json!({"allowed_ips": ["127.0.0.0/8"], "expires_in_days": 1}),
    )
    .await;
    let (_, open) = admin_key(&server, json!({"name": "anywhere"})).await;
    let response = self_rotate(&server, &limited, open["id"].as_str().unwrap(), json!({})).await;
    assert_forbidden_naming(&response, "allowed_ips");
    let (_, later) = admin_key(
        &server,
        json!({"allowed_ips": ["127.0.0.1"], "expires_in_days": 30}),
    )
    .await;
    let response = self_rotate(&server, &limited, later["id"].as_str().unwrap(), json!({})).await;
    assert_forbidden_naming(&response, "expires_at");

    // A new key never outlives the one it replaces.
    let (short, short_key) = admin_key(&server, json!({"expires_in_days": 2})).await;
    let response = self_rotate(
        &server,
        &short,
        short_key["id"].as_str().unwrap(),
        json!({"expires_in_days": 30}),
    )
    .await;
    assert_forbidden_naming(&response, "expires_in_days");
    // What it may do: rotate itself, keeping its expiry.
    let response = self_rotate(
        &server,
        &short,
        short_key["id"].as_str().unwrap(),
        json!({}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.body["key"]["expires_at"], short_key["expires_at"]);
}

// 4. Undoing what the admin set.

#[tokio::test]
async fn self_service_only_narrows_what_the_admin_set() {
    let server = TestServer::start().await;
    let (manager, _) = admin_key(&server, json!({})).await;
    let (_, restricted) = admin_key(
        &server,
        json!({
            "allowed_ips": ["10.0.0.0/8"],
            "expires_in_days": 5,
            "metadata": {"tier_note": "set by admin"},
        }),
    )
    .await;
    let id = restricted["id"].as_str().unwrap();

    // Widening or clearing is refused, naming the field.
    for (body, field) in [
        (json!({"allowed_ips": null}), "allowed_ips"),
        (json!({"allowed_ips": ["0.0.0.0/0"]}), "allowed_ips"),
        (
            json!({"allowed_ips": ["10.0.0.0/8", "192.0.2.0/24"]}),
            "allowed_ips",
        ),
        (json!({"expires_at": null}), "expires_at"),
        (json!({"expires_at": "2099-01-01T00:00:00Z"}), "expires_at"),
        (json!({"metadata": {"tier_note": "mine now"}}), "metadata"),
        (json!({"metadata": {"tier_note": null}}), "metadata"),
        (json!({"plan": "enterprise"}), "plan"),
        (
            json!({"rate_limit_per_hour": 1000000}),
            "rate_limit_per_hour",
        ),
    ] {
        let response = self_patch(&server, &manager, id, body.clone()).await;
        assert_forbidden_naming(&response, field);
    }
    let unchanged = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(unchanged.body["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(unchanged.body["expires_at"], restricted["expires_at"]);
    assert_eq!(unchanged.body["locked_metadata"], json!(["tier_note"]));

    // Narrowing, and sending a current value, are allowed.
    let narrowed = self_patch(
        &server,
        &manager,
        id,
        json!({
            "allowed_ips": ["10.1.0.0/16"],
            "expires_at": "2026-12-01T00:00:00Z",
            "metadata": {"tier_note": "set by admin", "own": "note"},
        }),
    )
    .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.text);
    let own_member = self_patch(&server, &manager, id, json!({"metadata": {"own": null}})).await;
    assert_eq!(
        own_member.status, 200,
        "its own member it may remove: {}",
        own_member.text
    );

    // An admin-disabled key stays disabled; one the user disabled, the user may enable.
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    let disabled = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(disabled.body["disabled_by"], "admin");
    let enable = self_patch(&server, &manager, id, json!({"enabled": true})).await;
    assert_forbidden_naming(&enable, "enabled");
    let rotate = self_rotate(&server, &manager, id, json!({})).await;
    rotate.assert_problem(409, "CONFLICT");
    let (_, own) = admin_key(&server, json!({"name": "self-disabled"})).await;
    let own_id = own["id"].as_str().unwrap();
    let off = self_patch(&server, &manager, own_id, json!({"enabled": false})).await;
    assert_eq!(
        off.body["disabled_by"],
        format!("key:{}", manager_id(&server, &manager).await)
    );
    let on = self_patch(&server, &manager, own_id, json!({"enabled": true})).await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(on.body["disabled_by"], Value::Null);
}

async fn manager_id(server: &TestServer, key: &str) -> String {
    let verified = server.verify(json!({"key": key})).await;
    verified.body["key_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn keys_made_by_self_service_inherit_the_callers_restrictions() {
    let server = TestServer::start().await;
    let (_, pro_user) = (
        (),
        server
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"user_id": "victim", "plan": "pro"})),
            )
            .await,
    );
    assert_eq!(pro_user.status, 201);
    let (caller, caller_key) = admin_key(
        &server,
        json!({
            "plan": "free",
            "rate_limit_per_hour": 3,
            "allowed_ips": ["127.0.0.1/32"],
            "expires_in_days": 1,
        }),
    )
    .await;
    let child = self_create(&server, &caller, json!({"name": "child"})).await;
    assert_eq!(child.status, 201, "{}", child.text);
    assert_eq!(child.body["plan"], "free", "not the user's pro plan");
    assert_eq!(child.body["effective_plan"], "free");
    assert_eq!(child.body["rate_limit_per_hour"], 3);
    assert_eq!(child.body["allowed_ips"], json!(["127.0.0.1/32"]));
    assert_eq!(child.body["expires_at"], caller_key["expires_at"]);
    for (body, field) in [
        (
            json!({"name": "c", "allowed_ips": ["0.0.0.0/0"]}),
            "allowed_ips",
        ),
        (json!({"name": "c", "expires_in_days": 30}), "expires_at"),
        (json!({"name": "c", "plan": "enterprise"}), "plan"),
        (
            json!({"name": "c", "limits": [{"window_seconds": 60, "max": 100000}]}),
            "limits",
        ),
    ] {
        assert_forbidden_naming(&self_create(&server, &caller, body).await, field);
    }
    // The hourly rate follows the lineage of keys it made: 3 per hour, not 3 per key.
    let child_key = child.body["key"].as_str().unwrap();
    let mut admitted = 0;
    for _ in 0..5 {
        if server.verify_code(child_key).await == "VALID" {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "the child has the caller's hourly rate");
}

// 5. Limits multiplied by churn.

#[tokio::test]
async fn racing_rotations_make_one_successor() {
    let server = TestServer::start().await;
    let (key, object) = admin_key(&server, json!({})).await;
    let id = object["id"].as_str().unwrap().to_owned();
    let attempts = (0..8).map(|_| self_rotate(&server, &key, &id, json!({})));
    // All in flight together.
    let responses = futures_util::future::join_all(attempts).await;
    let won = responses.iter().filter(|r| r.status == 201).count();
    assert_eq!(won, 1, "exactly one rotation of a key succeeds");
    for response in responses.iter().filter(|r| r.status != 201) {
        assert!(
            matches!(response.status, 409 | 401),
            "the others conflict (or the key is already expired): {}",
            response.text
        );
    }
    let keys = server
        .admin(Method::GET, "/v1/keys?user_id=victim", None)
        .await;
    assert_eq!(
        keys.body["keys"].as_array().unwrap().len(),
        1,
        "{}",
        keys.text
    );
}

// 8. Smaller leaks.

#[tokio::test]
async fn a_failed_key_says_nothing_about_its_owner() {
    let server = TestServer::start().await;
    let (key, object) = admin_key(
        &server,
        json!({"metadata": {"email": "ceo@victim.example"}}),
    )
    .await;
    server
        .admin(
            Method::DELETE,
            &format!("/v1/keys/{}", object["id"].as_str().unwrap()),
            None,
        )
        .await;
    let verified = server.verify(json!({"key": key})).await;
    assert_eq!(
        verified.body,
        json!({"valid": false, "code": "REVOKED", "key_id": object["id"]}),
        "exactly these three members"
    );
    let unknown = server
        .verify(json!({"key": "sk_live_0000000000000000000000000000000000000000000000000"}))
        .await;
    assert_eq!(unknown.body["key_id"], Value::Null);
    assert_eq!(
        unknown.body.as_object().unwrap().len(),
        3,
        "{}",
        unknown.text
    );
    let authorized = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&key),
        )
        .await;
    authorized.assert_problem(401, "REVOKED");
    assert!(
        !authorized
            .headers
            .keys()
            .any(|h| h.as_str().starts_with("x-keyward-")
                || h.as_str().starts_with("ratelimit")
                || h.as_str().starts_with("x-ratelimit")),
        "{:?}",
        authorized.headers
    );
    // A body without `key` is malformed, not a decision.
    let missing = server.verify(json!({"endpoint": "/x"})).await;
    missing.assert_problem(422, "VALIDATION_FAILED");
    assert!(missing.body["detail"].as_str().unwrap().contains("key"));
    let empty = server.verify(json!({"key": ""})).await;
    assert_eq!(
        empty.body,
        json!({"valid": false, "code": "MISSING", "key_id": null})
    );
}

#[tokio::test]
async fn names_cannot_carry_terminal_escapes_or_bidi_tricks() {
    let server = TestServer::start().await;
    for name in [
        "\u{1b}[2Jgotcha",
        "invoice\u{202e}fdp.exe",
        "",
        &"n".repeat(201),
    ] {
        let response = server
            .admin(
                Method::POST,
                "/v1/keys",
                Some(json!({"user_id": "victim", "name": name})),
            )
            .await;
        response.assert_problem(422, "VALIDATION_FAILED");
        assert!(response.body["detail"].as_str().unwrap().contains("name"));
    }
    let output = server.cli(&[
        "keys",
        "create",
        "--user-id",
        "victim",
        "--name",
        "a\u{1b}[31mred",
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let accepted = server
        .admin(
            Method::POST,
            "/v1/keys",
            Some(json!({"user_id": "victim", "name": &"é".repeat(200)})),
        )
        .await;
    assert_eq!(accepted.status, 201, "200 characters, not bytes");
}

#[tokio::test]
async fn metadata_cannot_grow_past_16_kib() {
    let server = TestServer::start().await;
    let (key, object) = admin_key(&server, json!({})).await;
    let id = object["id"].as_str().unwrap();
    let chunk = "x".repeat(6000);
    for member in ["a", "b"] {
        let response = self_patch(&server, &key, id, json!({"metadata": {member: chunk}})).await;
        assert_eq!(response.status, 200, "{}", response.text);
    }
    let third = self_patch(&server, &key, id, json!({"metadata": {"c": chunk}})).await;
    third.assert_problem(422, "VALIDATION_FAILED");
    assert!(third.body["detail"].as_str().unwrap().contains("metadata"));
    let big = server
        .admin(
            Method::POST,
            "/v1/keys",
            Some(json!({"user_id": "victim", "name": "big", "metadata": {"m": "y".repeat(17 * 1024)}})),
        )
        .await;
    big.assert_problem(422, "VALIDATION_FAILED");
}
