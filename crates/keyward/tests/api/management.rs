//! Black-box tests of the management API: admin and self-service.

use crate::support::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn admin_authentication_is_required_and_checked() {
    let server = TestServer::spawn_app().await;
    let missing = server.send(server.client.get(server.url("/v1/keys"))).await;
    missing.assert_problem(401, "UNAUTHORIZED");
    let wrong = server
        .send(
            server
                .client
                .get(server.url("/v1/users"))
                .bearer_auth("not-the-admin-token-at-all-xxxxxxxx"),
        )
        .await;
    wrong.assert_problem(401, "UNAUTHORIZED");
    let ok = server.admin(Method::GET, "/v1/users", None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, json!({"users": [], "next_cursor": null}));
}

#[tokio::test]
async fn keys_are_created_listed_shown_updated_revoked_and_rotated_by_the_admin() {
    let server = TestServer::spawn_app().await;
    let (plain, key) = server
        .create_key(json!({
            "user_id": "alice", "name": "ci", "environment": "test", "tier": "pro",
            "expires_in_days": 30, "scopes": ["read", "write"], "allowed_ips": ["10.0.0.0/8", "2001:db8::1"],
            "metadata": {"team": "core"}, "rate_limit_per_hour": 500,
            "limits": [{"window_seconds": 10, "max": 5}]
        }))
        .await;
    assert!(plain.starts_with("sk_test_"));
    assert_eq!(key["plan"], "pro");
    assert_eq!(key["effective_plan"], "pro");
    assert_eq!(key["allowed_ips"], json!(["10.0.0.0/8", "2001:db8::1/128"]));
    assert_eq!(key["limits"], json!([{"window_seconds": 10, "max": 5}]));
    assert!(key["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(key.get("key_hash").is_none());
    let id = key["id"].as_str().unwrap();

    let alice = server.admin(Method::GET, "/v1/users/alice", None).await;
    assert_eq!(
        alice.body["plan"], "free",
        "an unknown user is created on free"
    );

    let shown = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(shown.status, 200);
    assert!(
        shown.body.get("key").is_none(),
        "the plaintext is never shown again"
    );
    assert!(!shown.text.contains(&plain));

    let patched = server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"name": "renamed", "enabled": false, "metadata": {"x": 1}, "plan": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(patched.body["status"], "disabled");
    assert_eq!(patched.body["plan"], serde_json::Value::Null);
    assert_eq!(patched.body["metadata"], json!({"team": "core", "x": 1}));

    let (_, second) = server
        .create_key(json!({"user_id": "alice", "name": "second"}))
        .await;
    let listed = server
        .admin(Method::GET, "/v1/keys?user_id=alice&limit=1", None)
        .await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["keys"][0]["id"], second["id"], "newest first");
    let cursor = listed.body["next_cursor"].as_str().unwrap();
    let next = server
        .admin(
            Method::GET,
            &format!("/v1/keys?user_id=alice&limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(next.body["keys"][0]["id"], id, "disabled keys are listed");
    assert_eq!(next.body["next_cursor"], serde_json::Value::Null);

    let revoked = server
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body["status"], "revoked");
    let again = server
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);
    let active_only = server
        .admin(Method::GET, "/v1/keys?user_id=alice", None)
        .await;
    assert_eq!(active_only.body["keys"].as_array().unwrap().len(), 1);
    let all = server
        .admin(
            Method::GET,
            "/v1/keys?user_id=alice&include_inactive=true",
            None,
        )
        .await;
    assert_eq!(all.body["keys"].as_array().unwrap().len(), 2);

    let refused = server
        .admin_call(Method::POST, &format!("/v1/keys/{id}/rotate"), None)
        .await;
    refused.assert_problem(409, "CONFLICT");
    let second_id = second["id"].as_str().unwrap();
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{second_id}/rotate"),
            Some(json!({"grace_period_seconds": 3600})),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    assert!(
        rotated.body["key"]["key"]
            .as_str()
            .unwrap()
            .starts_with("sk_live_")
    );
    assert_eq!(
        rotated.body["old_key"]["replaced_by"],
        rotated.body["key"]["id"]
    );
    assert_eq!(rotated.body["old_key"]["status"], "active");

    let unknown = server
        .admin_call(Method::GET, "/v1/keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV", None)
        .await;
    unknown.assert_problem(404, "NOT_FOUND");
    let garbage = server
        .admin_call(Method::GET, "/v1/keys/whatever", None)
        .await;
    garbage.assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_users_key_manages_only_its_own_keys() {
    let server = TestServer::spawn_app().await;
    let (alice_key, alice) = server
        .create_key(json!({"user_id": "alice", "name": "root"}))
        .await;
    let (bob_key, bob) = server
        .create_key(json!({"user_id": "bob", "name": "root"}))
        .await;
    let alice_id = alice["id"].as_str().unwrap();
    let bob_id = bob["id"].as_str().unwrap();

    // Create for itself; admin-only fields are refused.
    let created = server
        .as_key(
            &alice_key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "laptop", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["user_id"], "alice");
    for field in [
        json!({"user_id": "bob"}),
        json!({"plan": "pro"}),
        json!({"tier": "pro"}),
        json!({"rate_limit_per_hour": 5}),
        json!({"limits": []}),
    ] {
        let mut body = json!({"name": "x"});
        body.as_object_mut()
            .unwrap()
            .extend(field.as_object().unwrap().clone());
        let refused = server
            .as_key(&alice_key, Method::POST, "/v1/keys", Some(body.clone()))
            .await;
        refused.assert_problem(403, "FORBIDDEN");
    }

    // Another user's key is invisible.
    for (method, path) in [
        (Method::GET, format!("/v1/keys/{bob_id}")),
        (Method::PATCH, format!("/v1/keys/{bob_id}")),
        (Method::DELETE, format!("/v1/keys/{bob_id}")),
        (Method::POST, format!("/v1/keys/{bob_id}/rotate")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine now"}));
        let response = server.as_key(&alice_key, method, &path, body).await;
        response.assert_problem(404, "NOT_FOUND");
    }
    assert_eq!(
        server.verify_code(&bob_key).await,
        "VALID",
        "bob's key untouched"
    );
    let list = server
        .as_key(&alice_key, Method::GET, "/v1/keys", None)
        .await;
    assert!(
        list.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["user_id"] == "alice")
    );
    server
        .as_key(&alice_key, Method::GET, "/v1/keys?user_id=bob", None)
        .await
        .assert_problem(404, "NOT_FOUND");

    // Admin-only endpoints: a user's key is not the admin token.
    server
        .as_key(&alice_key, Method::GET, "/v1/users", None)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    server
        .as_key(&alice_key, Method::GET, "/v1/users/alice", None)
        .await
        .assert_problem(401, "UNAUTHORIZED");

    // Self-service may not change plan or limits, and may only narrow scopes.
    let own = server
        .as_key(
            &alice_key,
            Method::PATCH,
            &format!("/v1/keys/{alice_id}"),
            Some(json!({"plan": "pro"})),
        )
        .await;
    own.assert_problem(403, "FORBIDDEN");
    let narrowed = server
        .as_key(
            &alice_key,
            Method::PATCH,
            &format!("/v1/keys/{alice_id}"),
            Some(json!({"name": "renamed", "metadata": {"a": 1}})),
        )
        .await;
    assert_eq!(narrowed.status, 200);
    let laptop_id = created.body["id"].as_str().unwrap();
    let widen = server
        .as_key(
            &alice_key,
            Method::PATCH,
            &format!("/v1/keys/{laptop_id}"),
            Some(json!({"scopes": ["read", "write"]})),
        )
        .await;
    widen.assert_problem(403, "FORBIDDEN");

    // A key with scopes but without keys:manage cannot manage.
    let laptop_key = created.body["key"].as_str().unwrap();
    server
        .as_key(laptop_key, Method::GET, "/v1/keys", None)
        .await
        .assert_problem(403, "FORBIDDEN");

    // A scoped manager creates keys within its own scopes only.
    let manager = server
        .as_key(
            &alice_key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "mgr", "scopes": ["keys:manage", "read"]})),
        )
        .await;
    let manager_key = manager.body["key"].as_str().unwrap();
    let inherited = server
        .as_key(
            manager_key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "child"})),
        )
        .await;
    assert_eq!(inherited.status, 201);
    assert_eq!(inherited.body["scopes"], json!(["keys:manage", "read"]));
    let subset = server
        .as_key(
            manager_key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "c2", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(subset.status, 201);
    server
        .as_key(
            manager_key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "c3", "scopes": []})),
        )
        .await
        .assert_problem(403, "FORBIDDEN");
    server
        .as_key(
            manager_key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "c4", "scopes": ["write"]})),
        )
        .await
        .assert_problem(403, "FORBIDDEN");

    // A failing key answers its §4 code.
    server
        .as_key(
            &bob_key,
            Method::DELETE,
            &format!("/v1/keys/{bob_id}"),
            None,
        )
        .await;
    server
        .as_key(&bob_key, Method::GET, "/v1/keys", None)
        .await
        .assert_problem(401, "REVOKED");
    server
        .as_key("sk_live_garbage", Method::GET, "/v1/keys", None)
        .await;
}

#[tokio::test]
async fn users_are_managed_by_the_admin() {
    let server = TestServer::spawn_app().await;
    let created = server
        .admin(Method::POST, "/v1/users", Some(json!({"user_id": "org:1", "tier": "pro", "email": "o@x.io", "company": "Org", "metadata": {"r": "eu"}})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["plan"], "pro");
    assert_eq!(created.body["key_count"], 0);
    server
        .admin_call(Method::POST, "/v1/users", Some(json!({"user_id": "org:1"})))
        .await
        .assert_problem(409, "CONFLICT");
    server
        .admin_call(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "org:2", "plan": "gold"})),
        )
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    server
        .admin(Method::POST, "/v1/users", Some(json!({"user_id": "org:3"})))
        .await;

    let pros = server.admin(Method::GET, "/v1/users?plan=pro", None).await;
    assert_eq!(pros.body["users"].as_array().unwrap().len(), 1);
    let page = server.admin(Method::GET, "/v1/users?limit=1", None).await;
    assert_eq!(page.body["users"].as_array().unwrap().len(), 1);
    assert!(page.body["next_cursor"].is_string());

    let patched = server
        .admin(
            Method::PATCH,
            "/v1/users/org:1",
            Some(json!({"plan": "enterprise", "email": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["plan"], "enterprise");
    assert_eq!(patched.body["email"], serde_json::Value::Null);

    let (key, _) = server
        .create_key(json!({"user_id": "org:1", "name": "a"}))
        .await;
    server
        .create_key(json!({"user_id": "org:1", "name": "b"}))
        .await;
    let revoked = server
        .admin(Method::POST, "/v1/users/org:1/revoke-keys", None)
        .await;
    assert_eq!(revoked.body, json!({"revoked": 2}));
    assert_eq!(server.verify_code(&key).await, "REVOKED");

    let (key3, _) = server
        .create_key(json!({"user_id": "org:3", "name": "c"}))
        .await;
    let deleted = server.admin(Method::DELETE, "/v1/users/org:3", None).await;
    assert_eq!(deleted.status, 200);
    assert!(deleted.body["deleted_at"].is_string());
    let read = server.admin(Method::GET, "/v1/users/org:3", None).await;
    assert_eq!(read.status, 200, "a deleted user can still be read");
    assert_eq!(server.verify_code(&key3).await, "REVOKED");
    server
        .admin_call(Method::GET, "/v1/users/nobody", None)
        .await
        .assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn plans_are_listed_openly_and_replaced_by_the_admin() {
    let server = TestServer::spawn_app().await;
    let plans = server
        .send(server.client.get(server.url("/v1/plans")))
        .await;
    assert_eq!(plans.status, 200);
    let names: Vec<&str> = plans.body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["free", "pro", "enterprise"]);
    let gold = json!({"limits": [{"window_seconds": 60, "max": 10}], "max_keys": 2, "features": ["read"],
        "price": {"base_cents": 100, "included_requests": 1000, "overage_cents_per_1000": 5}});
    let put = server
        .admin(Method::PUT, "/v1/plans/gold", Some(gold))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["name"], "gold");
    let mismatch = server
        .admin_call(
            Method::PUT,
            "/v1/plans/gold",
            Some(json!({"name": "silver", "limits": []})),
        )
        .await;
    mismatch.assert_problem(422, "VALIDATION_FAILED");
    let unauthenticated = server
        .send(
            server
                .client
                .put(server.url("/v1/plans/gold"))
                .json(&json!({"limits": []})),
        )
        .await;
    unauthenticated.assert_problem(401, "UNAUTHORIZED");
}
