//! Admin keys: least privilege for the management API. Each endpoint needs one permission
//! (from one table), a key grants and revokes only within its own permissions, revocation
//! holds on every node at once, wrong keys count with the brute-force guard, and the audit
//! log names the key that acted.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Response, TestServer, postgres_database};

/// Creates an admin key with the admin token; returns (key, id).
async fn admin_key(server: &TestServer, permissions: &[&str]) -> (String, String) {
    let created = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "integration", "permissions": permissions})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    (key, id)
}

async fn call(
    server: &TestServer,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    server.send(request).await
}

#[tokio::test]
async fn a_read_only_key_reads_keys_and_is_refused_the_rest_naming_the_permission() {
    let server = TestServer::spawn_app().await;
    let (user_key, created) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let (reader, id) = admin_key(&server, &["keys:read"]).await;
    assert!(reader.starts_with("kwadm_"), "{reader}");
    assert!(id.starts_with("adk_"), "{id}");

    let listed = call(&server, &reader, Method::GET, "/v1/keys", None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let key_id = created["id"].as_str().unwrap();
    let shown = call(
        &server,
        &reader,
        Method::GET,
        &format!("/v1/keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(shown.status, 200);

    let revoke = call(
        &server,
        &reader,
        Method::DELETE,
        &format!("/v1/keys/{key_id}"),
        None,
    )
    .await;
    revoke.assert_problem(403, "FORBIDDEN");
    assert!(
        revoke.body["detail"]
            .as_str()
            .unwrap()
            .contains("keys:write"),
        "{}",
        revoke.text
    );
    call(&server, &reader, Method::GET, "/v1/users", None)
        .await
        .assert_problem(403, "FORBIDDEN");
    // Its usage needs usage:read as well.
    let usage = call(
        &server,
        &reader,
        Method::GET,
        &format!("/v1/keys/{key_id}/usage"),
        None,
    )
    .await;
    usage.assert_problem(403, "FORBIDDEN");
    assert!(
        usage.body["detail"]
            .as_str()
            .unwrap()
            .contains("usage:read")
    );
    call(&server, &reader, Method::GET, "/v1/admin-keys", None)
        .await
        .assert_problem(403, "FORBIDDEN");
    // The user key still works: nothing was revoked.
    assert_eq!(server.verify_code(&user_key).await, "VALID");

    // Admin credentials are taken only as a bearer token.
    let as_header = server
        .send(
            server
                .client
                .get(server.url("/v1/users"))
                .header("X-API-Key", reader.clone()),
        )
        .await;
    assert_eq!(as_header.status, 401, "{}", as_header.text);
}

#[tokio::test]
async fn a_star_key_does_everything_and_the_audit_log_names_it() {
    let server = TestServer::spawn_app().await;
    let (all, id) = admin_key(&server, &["*"]).await;
    let user = call(
        &server,
        &all,
        Method::POST,
        "/v1/users",
        Some(json!({"user_id": "alice"})),
    )
    .await;
    assert_eq!(user.status, 201, "{}", user.text);
    let key = call(
        &server,
        &all,
        Method::POST,
        "/v1/keys",
        Some(json!({"user_id": "alice", "name": "k"})),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key_id = key.body["id"].as_str().unwrap();
    let revoked = call(
        &server,
        &all,
        Method::DELETE,
        &format!("/v1/keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 200);
    let plan = call(
        &server,
        &all,
        Method::PUT,
        "/v1/plans/team",
        Some(json!({"limits": [{"window_seconds": 60, "max": 10}]})),
    )
    .await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    let audit = call(
        &server,
        &all,
        Method::GET,
        &format!("/v1/audit?key_id={key_id}"),
        None,
    )
    .await;
    assert_eq!(audit.status, 200);
    let actors: Vec<&str> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert!(!actors.is_empty());
    assert!(
        actors.iter().all(|a| *a == format!("admin:{id}")),
        "{actors:?}"
    );

    // The listing shows when it was last used, and never a key or a hash.
    let listing = server.admin(Method::GET, "/v1/admin-keys", None).await;
    let mine = listing.body["admin_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(mine["last_used_at"].is_string(), "{mine}");
    assert!(
        mine.get("key").is_none() && mine.get("key_hash").is_none(),
        "{mine}"
    );
    assert_eq!(mine["permissions"], json!(["*"]));
    assert!(!listing.text.contains(&all));
}

#[tokio::test]
async fn an_admin_key_grants_and_revokes_only_within_its_own_permissions() {
    let server = TestServer::spawn_app().await;
    let (manager, _) = admin_key(&server, &["admin:manage", "keys:read"]).await;
    let grant = |permissions: Value| {
        call(
            &server,
            &manager,
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "sub", "permissions": permissions})),
        )
    };
    let granted = grant(json!(["keys:read"])).await;
    assert_eq!(granted.status, 201, "{}", granted.text);
    for beyond in [
        json!(["keys:write"]),
        json!(["admin:manage"]),
        json!(["*"]),
        json!(["keys:read", "audit:read"]),
    ] {
        grant(beyond.clone()).await.assert_problem(403, "FORBIDDEN");
    }
    grant(json!([]))
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    grant(json!(["keys:delete"]))
        .await
        .assert_problem(422, "VALIDATION_FAILED");

    // It revokes what it could have granted, and nothing more.
    let (writer, writer_id) = admin_key(&server, &["keys:write"]).await;
    call(
        &server,
        &manager,
        Method::DELETE,
        &format!("/v1/admin-keys/{writer_id}"),
        None,
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    let sub_id = granted.body["id"].as_str().unwrap();
    let revoked = call(
        &server,
        &manager,
        Method::DELETE,
        &format!("/v1/admin-keys/{sub_id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(revoked.body["revoked_at"].is_string());
    // Idempotent, and unknown ids are 404.
    let again = server
        .admin(Method::DELETE, &format!("/v1/admin-keys/{sub_id}"), None)
        .await;
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);
    server
        .admin_call(
            Method::DELETE,
            "/v1/admin-keys/adk_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            None,
        )
        .await
        .assert_problem(404, "NOT_FOUND");

    // A keys:write key may create a key only for an existing user: a new user needs
    // users:write.
    call(
        &server,
        &writer,
        Method::POST,
        "/v1/keys",
        Some(json!({"user_id": "nobody", "name": "k"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "somebody"})),
        )
        .await;
    let made = call(
        &server,
        &writer,
        Method::POST,
        "/v1/keys",
        Some(json!({"user_id": "somebody", "name": "k"})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);

    // The admin token grants sovereign keys.
    let (_, _) = admin_key(&server, &["admin:manage"]).await;
}

#[tokio::test]
async fn wrong_and_revoked_admin_keys_are_refused_and_counted_by_the_guard() {
    let server = TestServer::start_with(&["--failure-limit", "3"], &[]).await;
    let (key, id) = admin_key(&server, &["keys:read"]).await;
    server
        .admin(Method::DELETE, &format!("/v1/admin-keys/{id}"), None)
        .await;
    call(&server, &key, Method::GET, "/v1/keys", None)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    // Made-up admin keys: wrong checksum, right shape but unknown.
    call(
        &server,
        "kwadm_0000000000000000000000000000000000000000000000000",
        Method::GET,
        "/v1/keys",
        None,
    )
    .await
    .assert_problem(401, "UNAUTHORIZED");
    let unknown = server.cli(&[
        "admin-keys",
        "create",
        "--name",
        "x",
        "--permission",
        "keys:read",
        "--json",
    ]);
    assert!(
        unknown.status.success(),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let made: Value = serde_json::from_slice(&unknown.stdout).unwrap();
    let made_key = made["key"].as_str().unwrap().to_owned();
    let revoke = server.cli(&["admin-keys", "revoke", made["id"].as_str().unwrap()]);
    assert!(revoke.status.success());
    call(&server, &made_key, Method::GET, "/v1/keys", None)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    // Three failures: the address is now refused, whatever it sends.
    call(&server, &key, Method::GET, "/v1/keys", None)
        .await
        .assert_problem(429, "TOO_MANY_FAILURES");
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_admin_keys() {
    let server = TestServer::spawn_app().await;
    let created = server.cli(&[
        "admin-keys",
        "create",
        "--name",
        "ci",
        "--permission",
        "keys:read",
        "--permission",
        "usage:read",
        "--expires-in-days",
        "30",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let printed = String::from_utf8_lossy(&created.stdout);
    let key = printed
        .split_whitespace()
        .find(|word| word.starts_with("kwadm_") && !word.ends_with('…'))
        .expect("the new key, printed once")
        .to_owned();
    assert_eq!(
        call(&server, &key, Method::GET, "/v1/keys", None)
            .await
            .status,
        200
    );
    let listed = server.cli(&["admin-keys", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let entry = &listed["admin_keys"][0];
    assert_eq!(entry["permissions"], json!(["keys:read", "usage:read"]));
    assert!(entry["expires_at"].is_string());
    assert!(!String::from_utf8_lossy(&server.cli(&["admin-keys", "list"]).stdout).contains(&key));
    let refused = server.cli(&[
        "admin-keys",
        "create",
        "--name",
        "x",
        "--permission",
        "root",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let gone = server.cli(&["admin-keys", "revoke", "adk_01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert!(!gone.status.success());
    // Only the hash is stored.
    let database = std::fs::read(server.dir.path().join("keyward.db")).unwrap();
    let wal = std::fs::read(server.dir.path().join("keyward.db-wal")).unwrap_or_default();
    for bytes in [&database, &wal] {
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_admin_key_is_refused_by_every_node_at_once() {
    let database = postgres_database().await;
    let args = ["--database-url", database.as_str()];
    let first = TestServer::start_with(&args, &[]).await;
    let second = TestServer::start_with(&args, &[]).await;
    let (key, id) = admin_key(&first, &["keys:read"]).await;
    assert_eq!(
        call(&second, &key, Method::GET, "/v1/keys", None)
            .await
            .status,
        200
    );
    first
        .admin(Method::DELETE, &format!("/v1/admin-keys/{id}"), None)
        .await;
    let started = std::time::Instant::now();
    call(&second, &key, Method::GET, "/v1/keys", None)
        .await
        .assert_problem(401, "UNAUTHORIZED");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn hostile_requests_to_the_admin_key_endpoints_are_refused_cleanly() {
    let server = TestServer::spawn_app().await;
    // A user's own key cannot reach admin keys at all.
    let (user_key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let as_user = call(&server, &user_key, Method::GET, "/v1/admin-keys", None).await;
    assert_eq!(as_user.status, 401, "{}", as_user.text);
    let made_by_user = call(
        &server,
        &user_key,
        Method::POST,
        "/v1/admin-keys",
        Some(json!({"name": "x", "permissions": ["*"]})),
    )
    .await;
    assert_eq!(made_by_user.status, 401, "{}", made_by_user.text);

    let create = |body: Value| server.admin_call(Method::POST, "/v1/admin-keys", Some(body));
    for body in [
        json!({"name": "x".repeat(10_000), "permissions": ["keys:read"]}),
        json!({"name": "", "permissions": ["keys:read"]}),
        json!({"name": "x", "permissions": vec!["keys:read"; 1000]}),
        json!({"name": "x", "permissions": ["keys:read"], "expires_in_days": 0}),
        json!({"name": "x", "permissions": ["keys:read"], "expires_at": "2000-01-01T00:00:00Z"}),
        json!({"name": "x", "permissions": ["keys:read"], "expires_at": "10000-01-01T00:00:00Z"}),
    ] {
        create(body).await.assert_problem(422, "VALIDATION_FAILED");
    }
    create(json!({"name": "x", "permissions": ["keys:read"], "owner": "me"}))
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    for id in [
        "x".repeat(10_000),
        "adk_../../v1/keys".to_owned(),
        "key_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
    ] {
        let revoke = server
            .admin_call(Method::DELETE, &format!("/v1/admin-keys/{id}"), None)
            .await;
        assert!(matches!(revoke.status, 404 | 405), "{id}: {}", revoke.text);
    }
    let listed = server
        .admin_call(Method::GET, "/v1/admin-keys?limit=0", None)
        .await;
    listed.assert_problem(422, "VALIDATION_FAILED");
    let forged = server
        .admin_call(Method::GET, "/v1/admin-keys?cursor=not-a-cursor", None)
        .await;
    forged.assert_problem(422, "VALIDATION_FAILED");
}
