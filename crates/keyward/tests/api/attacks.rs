//! Attacks: what a customer holding one of its own keys (or an anonymous client) tried
//! against a running server to get more than the admin gave it — each attempt performed for
//! real, each asserted to fail safely. Grouped by what the attacker was after.

use crate::support::{Response, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

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
    let server = TestServer::spawn_app().await;
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
            .admin_call(
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
    let server = TestServer::spawn_app().await;
    let (manager, key) = admin_key(&server, json!({})).await;
    let id = key["id"].as_str().unwrap();
    for at in [
        "9999-12-31T23:59:59-23:59",
        "+10000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ] {
        let create = server
            .admin_call(
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
            .admin_call(
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
        .admin_call(
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
    let server = TestServer::spawn_app().await;
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
    let server = TestServer::spawn_app().await;
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
    // An admin disabling a key its user already disabled takes the decision over.
    self_patch(&server, &manager, own_id, json!({"enabled": false})).await;
    let taken = server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{own_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(taken.body["disabled_by"], "admin");
    let enable = self_patch(&server, &manager, own_id, json!({"enabled": true})).await;
    assert_forbidden_naming(&enable, "enabled");
    // An unknown key is 404 whatever the body's values.
    let unknown = self_patch(
        &server,
        &manager,
        "key_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        json!({"enabled": "yes"}),
    )
    .await;
    unknown.assert_problem(404, "NOT_FOUND");
}

async fn manager_id(server: &TestServer, key: &str) -> String {
    let verified = server.verify(json!({"key": key})).await;
    verified.body["key_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn keys_made_by_self_service_inherit_the_callers_restrictions() {
    let server = TestServer::spawn_app().await;
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
        (
            json!({"name": "c", "expires_in_days": 30}),
            "expires_in_days",
        ),
        (
            json!({"name": "c", "expires_at": "2099-01-01T00:00:00Z"}),
            "expires_at",
        ),
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
    let server = TestServer::spawn_app().await;
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
    let server = TestServer::spawn_app().await;
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
    let server = TestServer::spawn_app().await;
    for name in [
        "\u{1b}[2Jgotcha",
        "invoice\u{202e}fdp.exe",
        "",
        &"n".repeat(201),
    ] {
        let response = server
            .admin_call(
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
    for days in ["0", "3000000", "99999999999"] {
        let output = server.cli(&[
            "keys",
            "create",
            "--user-id",
            "victim",
            "--name",
            "n",
            "--expires-in-days",
            days,
        ]);
        assert_eq!(output.status.code(), Some(2), "{days}: {output:?}");
    }
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
    let server = TestServer::spawn_app().await;
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
        .admin_call(
            Method::POST,
            "/v1/keys",
            Some(json!({"user_id": "victim", "name": "big", "metadata": {"m": "y".repeat(17 * 1024)}})),
        )
        .await;
    big.assert_problem(422, "VALIDATION_FAILED");
}

// 5b. Management calls multiplied by churning keys.

#[tokio::test]
async fn management_calls_with_keys_share_one_per_user_limit() {
    let server = TestServer::start_with(&["--self-service-limit", "5"], &[]).await;
    let (first, _) = admin_key(&server, json!({})).await;
    let (second, _) = admin_key(&server, json!({"name": "second"})).await;
    for _ in 0..3 {
        let listed = server.as_key(&first, Method::GET, "/v1/keys", None).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    // A refused call still counts: 404s and 403s are calls too.
    let unknown = server
        .as_key(
            &second,
            Method::GET,
            "/v1/keys/key_01JD2Y4J8ZV0Q7S8K3M1H6T4RE",
            None,
        )
        .await;
    unknown.assert_problem(404, "NOT_FOUND");
    server.as_key(&second, Method::GET, "/v1/keys", None).await;
    let refused = server.as_key(&second, Method::GET, "/v1/keys", None).await;
    refused.assert_problem(429, "RATE_LIMITED");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("--self-service-limit"),
        "{}",
        refused.text
    );
    assert!(
        !refused
            .headers
            .keys()
            .any(|h| h.as_str().contains("ratelimit")),
        "{:?}",
        refused.headers
    );
    let churned = self_create(&server, &first, json!({"name": "fresh"})).await;
    churned.assert_problem(429, "RATE_LIMITED");
    // A key without `keys:manage` is refused after counting, so it is limited too.
    let (reader, _) = admin_key(&server, json!({"scopes": ["read"]})).await;
    let limited = server.as_key(&reader, Method::GET, "/v1/keys", None).await;
    limited.assert_problem(429, "RATE_LIMITED");
    // Neither the admin nor the keys' own verification is held back by it.
    assert_eq!(
        server.admin(Method::GET, "/v1/keys", None).await.status,
        200
    );
    assert_eq!(server.verify_code(&first).await, "VALID");
}

// 6. The brute-force guard.

#[tokio::test]
async fn rotating_addresses_inside_one_ipv6_64_does_not_escape_the_guard() {
    let server = TestServer::start_with(
        &["--failure-limit", "5", "--trusted-proxy", "127.0.0.1/32"],
        &[],
    )
    .await;
    let guess = "sk_live_0000000000000000000000000000000000000000000000000";
    let authorize = |from: String| {
        server.send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(guess)
                .header("X-Forwarded-For", from)
                // The trusted proxy terminated TLS.
                .header("X-Forwarded-Proto", "https"),
        )
    };
    for host in 1..=5 {
        authorize(format!("2001:db8:1:2::{host:x}"))
            .await
            .assert_problem(401, "INVALID");
    }
    let blocked = authorize("2001:db8:1:2:ffff:ffff:ffff:1".to_owned()).await;
    blocked.assert_problem(429, "TOO_MANY_FAILURES");
    let retry: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (55..=60).contains(&retry),
        "the time the block has left: {retry}"
    );
    // Another network is somebody else.
    authorize("2001:db8:1:3::1".to_owned())
        .await
        .assert_problem(401, "INVALID");
}

#[tokio::test]
async fn guessing_the_admin_token_locks_the_guesser_out_everywhere() {
    let server = TestServer::start_with(&["--failure-limit", "3"], &[]).await;
    for guess in 0..3 {
        let response = server
            .send(
                server
                    .client
                    .get(server.url("/v1/users"))
                    .bearer_auth(format!("guess-number-{guess}-of-the-admin-token-xxxxxx")),
            )
            .await;
        response.assert_problem(401, "UNAUTHORIZED");
    }
    // Now even the right token is refused from this address, with the time left…
    let right = server.admin_call(Method::GET, "/v1/users", None).await;
    right.assert_problem(429, "TOO_MANY_FAILURES");
    let retry: u64 = right.header("retry-after").unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    // …as is every credential, while what needs none still answers.
    let (status, _) = (
        server
            .send(
                server
                    .client
                    .get(server.url("/v1/authorize"))
                    .bearer_auth("x"),
            )
            .await,
        (),
    );
    status.assert_problem(429, "TOO_MANY_FAILURES");
    for open in [
        "/healthz",
        "/readyz",
        "/v1/plans",
        "/openapi.json",
        "/docs",
        "/metrics",
    ] {
        let response = server.send(server.client.get(server.url(open))).await;
        assert_eq!(response.status, 200, "{open}: {}", response.text);
    }
    // Refusals do not extend the block.
    let later = server.admin_call(Method::GET, "/v1/users", None).await;
    later.assert_problem(429, "TOO_MANY_FAILURES");
    let retry_later: u64 = later.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_later <= retry);
}

#[tokio::test]
async fn admin_credentials_count_only_as_a_bearer_token() {
    let server = TestServer::start_with(&["--allow-query-key"], &[]).await;
    let query = server
        .send(server.client.get(server.url(&format!(
            "/v1/users?api_key={}",
            crate::support::ADMIN_TOKEN
        ))))
        .await;
    query.assert_problem(401, "UNAUTHORIZED");
    let header = server
        .send(
            server
                .client
                .get(server.url("/v1/users"))
                .header("X-API-Key", crate::support::ADMIN_TOKEN),
        )
        .await;
    header.assert_problem(401, "UNAUTHORIZED");
    // A user's key in the query string is a credential, not an unknown listing parameter.
    let (key, _) = admin_key(&server, json!({})).await;
    let listed = server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/keys?limit=5&api_key={key}"))),
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        server.admin(Method::GET, "/v1/users", None).await.status,
        200
    );
}

#[tokio::test]
async fn a_backend_sending_ip_without_being_trusted_is_warned_once() {
    let mut server = TestServer::start().await;
    let (key, _) = admin_key(&server, json!({})).await;
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        server.verify(json!({"key": key, "ip": ip})).await;
    }
    server.stop();
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    let warnings = log.matches("is not a trusted proxy").count();
    assert_eq!(warnings, 1, "once per caller address");
    assert!(log.contains("--trusted-proxy"));
}

// 7. Unbounded resources.

#[tokio::test]
async fn clients_cannot_grow_metric_labels_or_log_paths() {
    let server = TestServer::spawn_app().await;
    for i in 0..50 {
        let method = Method::from_bytes(format!("X{i}METHOD").as_bytes()).unwrap();
        server
            .send(
                server
                    .client
                    .request(method, server.url(&format!("/nowhere-{i}"))),
            )
            .await;
    }
    let metrics = server.send(server.client.get(server.url("/metrics"))).await;
    assert!(
        !metrics.text.contains("METHOD"),
        "methods are known values or `other`"
    );
    assert!(
        !metrics.text.contains("nowhere"),
        "paths are routes or `unmatched`"
    );
    assert!(
        metrics.text.contains("method=\"other\""),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("route=\"unmatched\""));
}

#[tokio::test]
async fn a_key_records_at_most_100_endpoints_an_hour() {
    crate::support::clear_of_hour_boundary().await;
    let server = TestServer::spawn_app().await;
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "victim", "plan": "enterprise"})),
        )
        .await;
    let (key, object) = admin_key(&server, json!({})).await;
    let long = format!("/long/{}", "é".repeat(300));
    for i in 0..120 {
        let uri = if i == 0 {
            long.clone()
        } else {
            format!("/item/{i}?page=2")
        };
        let response = server
            .send(
                server
                    .client
                    .get(server.url("/v1/authorize"))
                    .bearer_auth(&key)
                    .header("X-Original-URI", uri),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text);
    }
    let path = format!("/v1/keys/{}/usage?days=1", object["id"].as_str().unwrap());
    crate::support::eventually(std::time::Duration::from_secs(10), || async {
        server.admin(Method::GET, &path, None).await.body["total_requests"] == 120
    })
    .await;
    let usage = server.admin(Method::GET, &path, None).await.body;
    let endpoints = usage["by_endpoint"].as_array().unwrap();
    assert_eq!(endpoints.len(), 101, "100 endpoints and `other`: {usage}");
    let other = endpoints.iter().find(|e| e["endpoint"] == "other").unwrap();
    assert_eq!(other["requests"], 20);
    for endpoint in endpoints {
        let name = endpoint["endpoint"].as_str().unwrap();
        assert!(name.len() <= 256 && !name.contains('?'), "{name}");
    }
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let server = TestServer::start_with(&["--metrics-token", "scrape-me-0123456789"], &[]).await;
    let anonymous = server.send(server.client.get(server.url("/metrics"))).await;
    anonymous.assert_problem(401, "UNAUTHORIZED");
    let wrong = server
        .send(
            server
                .client
                .get(server.url("/metrics"))
                .bearer_auth("nope"),
        )
        .await;
    wrong.assert_problem(401, "UNAUTHORIZED");
    let right = server
        .send(
            server
                .client
                .get(server.url("/metrics"))
                .bearer_auth("scrape-me-0123456789"),
        )
        .await;
    assert_eq!(right.status, 200);
    assert!(right.text.contains("keyward_"));
}

// 8. Cursors.

#[tokio::test]
async fn cursors_cannot_probe_or_cross_listings() {
    let server = TestServer::spawn_app().await;
    let (alice, _) = admin_key(&server, json!({"user_id": "alice"})).await;
    admin_key(&server, json!({"user_id": "alice", "name": "2"})).await;
    let (mallory, _) = admin_key(&server, json!({"user_id": "mallory"})).await;
    admin_key(&server, json!({"user_id": "mallory", "name": "2"})).await;
    let page = server
        .as_key(&alice, Method::GET, "/v1/keys?limit=1", None)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = server
        .as_key(
            &alice,
            Method::GET,
            &format!("/v1/keys?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(next.body["keys"].as_array().unwrap().len(), 1);

    let all = server
        .admin(Method::GET, "/v1/keys?user_id=alice", None)
        .await;
    let raw_id = all.body["keys"][0]["id"].as_str().unwrap().to_owned();
    let mut altered = cursor.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    for bad in [cursor.as_str(), raw_id.as_str(), altered.as_str(), "zz"] {
        let response = server
            .as_key(
                &mallory,
                Method::GET,
                &format!("/v1/keys?cursor={bad}"),
                None,
            )
            .await;
        response.assert_problem(422, "VALIDATION_FAILED");
        assert!(response.body["detail"].as_str().unwrap().contains("cursor"));
    }
    // Another user's key, and its usage, do not exist for mallory.
    for path in [
        format!("/v1/keys/{raw_id}"),
        format!("/v1/keys/{raw_id}/usage"),
    ] {
        let response = server.as_key(&mallory, Method::GET, &path, None).await;
        response.assert_problem(404, "NOT_FOUND");
    }
    // The admin's listing of all keys is another listing than alice's.
    let admin = server
        .admin_call(Method::GET, &format!("/v1/keys?cursor={cursor}"), None)
        .await;
    admin.assert_problem(422, "VALIDATION_FAILED");
    // A cursor stays valid when its item changes state.
    let first_id = page.body["keys"][0]["id"].as_str().unwrap();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{first_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    let still = server
        .as_key(
            &alice,
            Method::GET,
            &format!("/v1/keys?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(still.status, 200, "{}", still.text);
}

// Contract gaps found by the same review.

#[tokio::test]
async fn hostile_paths_and_bodies_get_problems_naming_the_field() {
    let server = TestServer::spawn_app().await;
    let undecodable = server.admin_call(Method::GET, "/v1/keys/%FF", None).await;
    undecodable.assert_problem(404, "NOT_FOUND");
    let plan = server
        .admin_call(
            Method::PUT,
            "/v1/plans/lots",
            Some(json!({"limits": "lots"})),
        )
        .await;
    plan.assert_problem(422, "VALIDATION_FAILED");
    assert!(
        plan.body["detail"].as_str().unwrap().contains("limits"),
        "{}",
        plan.text
    );
}

#[test]
fn a_repetitive_admin_token_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .env_remove("KEYWARD_CONFIG")
        .env("KEYWARD_ADMIN_TOKEN", "T".repeat(40))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", dir.path().join("k.db").display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEYWARD_ADMIN_TOKEN"));
}

#[tokio::test]
async fn an_import_names_the_csv_line_of_a_bad_row_and_imports_nothing() {
    let server = TestServer::spawn_app().await;
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let other = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
    let csv = format!(
        "key_hash,user_id,name,expires_at\n{hash},u1,fine,\n{other},u2,\"bad\u{1b}[2Jname\",\n"
    );
    let file = server.dir.path().join("keys.csv");
    std::fs::write(&file, csv).unwrap();
    let output = server.cli(&["import", "--from-csv", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3"), "the header is line 1: {stderr}");
    let far = format!("key_hash,user_id,expires_at\n{hash},u1,9999-12-31T23:59:59-23:59\n");
    std::fs::write(&file, far).unwrap();
    let output = server.cli(&["import", "--from-csv", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2"));
    let keys = server
        .admin(Method::GET, "/v1/keys?include_inactive=true", None)
        .await;
    assert_eq!(
        keys.body["keys"].as_array().unwrap().len(),
        0,
        "nothing imported"
    );
}

// 7b. Slow and idle connections.

mod slow_clients {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::*;

    fn connect(server: &TestServer) -> TcpStream {
        let address = server.base.trim_start_matches("http://");
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        stream
    }

    /// Reads until the server closes the connection; returns what it sent and when it closed.
    fn read_to_close(mut stream: TcpStream) -> (String, Duration) {
        let started = Instant::now();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(error) => panic!("the server kept the connection open: {error}"),
            }
        }
        (
            String::from_utf8_lossy(&all).into_owned(),
            started.elapsed(),
        )
    }

    #[tokio::test]
    async fn half_sent_headers_are_cut_off_while_others_are_served() {
        let server = TestServer::start_with(&["--header-read-timeout", "1s"], &[]).await;
        let mut slow = Vec::new();
        for _ in 0..20 {
            let mut stream = connect(&server);
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            slow.push(stream);
        }
        let healthy = server.send(server.client.get(server.url("/healthz"))).await;
        assert_eq!(healthy.status, 200);
        let closed = tokio::task::spawn_blocking(move || {
            slow.into_iter().map(read_to_close).collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for (_, after) in closed {
            assert!(after < Duration::from_secs(4), "closed after {after:?}");
        }
    }

    #[tokio::test]
    async fn a_body_that_never_finishes_gets_408() {
        let server = TestServer::start_with(&["--body-read-timeout", "1s"], &[]).await;
        let mut stream = connect(&server);
        stream
            .write_all(
                b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":",
            )
            .unwrap();
        let (answer, _) = tokio::task::spawn_blocking(move || read_to_close(stream))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }

    #[tokio::test]
    async fn idle_keep_alive_connections_are_closed() {
        let server = TestServer::start_with(&["--idle-timeout", "1s"], &[]).await;
        let mut stream = connect(&server);
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (answer, after) = tokio::task::spawn_blocking(move || read_to_close(stream))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(after < Duration::from_secs(4), "closed after {after:?}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let server = TestServer::start_with(&["--max-connections", "2"], &[]).await;
        let held: Vec<TcpStream> = (0..2).map(|_| connect(&server)).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = server
            .client
            .get(server.url("/healthz"))
            .timeout(Duration::from_millis(700))
            .send()
            .await;
        assert!(
            waiting.is_err(),
            "a third connection is not served while two are held"
        );
        drop(held);
        let served = server.send(server.client.get(server.url("/healthz"))).await;
        assert_eq!(served.status, 200);
    }
}
