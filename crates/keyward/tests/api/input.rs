//! Bad input always gets its documented 4xx problem, never a 5xx.

use crate::support::{ADMIN_TOKEN, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_get_their_documented_problem() {
    let server = TestServer::spawn_app().await;
    let post = |path: &str| {
        server
            .client
            .post(server.url(path))
            .bearer_auth(ADMIN_TOKEN)
    };

    let syntax = server
        .send(
            post("/v1/keys")
                .header("content-type", "application/json")
                .body("{\"user_id\": "),
        )
        .await;
    syntax.assert_problem(400, "BAD_REQUEST");
    let no_type = server
        .send(post("/v1/keys").body(r#"{"user_id":"u","name":"k"}"#))
        .await;
    no_type.assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    let text_type = server
        .send(
            post("/v1/verify")
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    text_type.assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    let huge = format!(
        r#"{{"user_id":"u","name":"k","metadata":{{"x":"{}"}}}}"#,
        "a".repeat(70 * 1024)
    );
    let too_large = server
        .send(
            post("/v1/keys")
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    too_large.assert_problem(413, "PAYLOAD_TOO_LARGE");
    let bytes = server
        .send(
            post("/v1/verify")
                .header("content-type", "application/json")
                .body(vec![0xff, 0xfe, 0x7b, 0x80]),
        )
        .await;
    bytes.assert_problem(400, "BAD_REQUEST");

    for (body, field) in [
        (
            json!({"user_id": "u", "name": "k", "colour": "red"}),
            "colour",
        ),
        (json!({"user_id": "u"}), "name"),
        (json!({"user_id": 5, "name": "k"}), "user_id"),
        (
            json!({"user_id": "u", "name": "k", "environment": "staging"}),
            "environment",
        ),
        (
            json!({"user_id": "u", "name": "k", "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips",
        ),
        (
            json!({"user_id": "u", "name": "k", "allowed_ips": ["not an ip"]}),
            "allowed_ips",
        ),
        (
            json!({"user_id": "u", "name": "k", "expires_in_days": -1}),
            "expires_in_days",
        ),
        (
            json!({"user_id": "u", "name": "k", "expires_in_days": 99_999_999_999u64}),
            "expires_in_days",
        ),
        (
            json!({"user_id": "u", "name": "k", "rate_limit_per_hour": 1e300}),
            "rate_limit_per_hour",
        ),
        (
            json!({"user_id": "u", "name": "k", "rate_limit_per_hour": 0}),
            "rate_limit_per_hour",
        ),
        (
            json!({"user_id": "u", "name": "k", "plan": "platinum"}),
            "plan",
        ),
        (
            json!({"user_id": "u", "name": "k", "prefix": "Not_Valid"}),
            "prefix",
        ),
        (json!({"user_id": "has space", "name": "k"}), "user_id"),
        (
            json!({"user_id": "u", "name": "k", "scopes": ["bad scope"]}),
            "scopes",
        ),
        (
            json!({"user_id": "u", "name": "k", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"user_id": "u", "name": "k", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"user_id": "u", "name": "k", "limits": [{"window_seconds": 0, "max": 1}]}),
            "limits",
        ),
        (json!({"user_id": "u", "name": ""}), "name"),
    ] {
        let response = server
            .admin_call(Method::POST, "/v1/keys", Some(body.clone()))
            .await;
        response.assert_problem(422, "VALIDATION_FAILED");
        let detail = response.body["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{body}: {detail}");
    }

    for body in [
        json!({"key": 5}),
        json!({"key": "k", "cost": 0}),
        json!({"key": "k", "cost": -3}),
        json!({"key": "k", "ip": "300.1.1.1"}),
        json!({"key": "k", "required_scopes": "read"}),
        json!({"key": "k", "extra": true}),
        json!([1, 2, 3]),
    ] {
        server
            .verify(body)
            .await
            .assert_problem(422, "VALIDATION_FAILED");
    }

    // An unknown key is 404 before the body's values are judged; a known one, 422.
    let rotate_unknown = server
        .admin_call(
            Method::POST,
            "/v1/keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV/rotate",
            Some(json!({"grace_period_seconds": 2_592_001})),
        )
        .await;
    rotate_unknown.assert_problem(404, "NOT_FOUND");
    let (_, known) = server
        .create_key(json!({"user_id": "rotating", "name": "k"}))
        .await;
    let rotate_bad = server
        .admin_call(
            Method::POST,
            &format!("/v1/keys/{}/rotate", known["id"].as_str().unwrap()),
            Some(json!({"grace_period_seconds": 2_592_001})),
        )
        .await;
    rotate_bad.assert_problem(422, "VALIDATION_FAILED");
    let bad_limit = server
        .admin_call(Method::GET, "/v1/keys?limit=0", None)
        .await;
    bad_limit.assert_problem(422, "VALIDATION_FAILED");
    let bad_bool = server
        .admin_call(Method::GET, "/v1/keys?include_inactive=maybe", None)
        .await;
    bad_bool.assert_problem(422, "VALIDATION_FAILED");
    let bad_cursor = server
        .admin_call(Method::GET, "/v1/keys?cursor=nope", None)
        .await;
    bad_cursor.assert_problem(422, "VALIDATION_FAILED");
    let future_plan = server
        .admin(Method::POST, "/v1/users", Some(json!({"user_id": "w"})))
        .await;
    assert_eq!(future_plan.status, 201);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    server
        .admin_call(
            Method::PATCH,
            "/v1/users/w",
            Some(json!({"plan": "pro", "plan_effective_at": later})),
        )
        .await
        .assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn odd_headers_paths_and_methods_are_4xx() {
    let server = TestServer::spawn_app().await;
    let long = "x".repeat(10 * 1024);
    let long_key = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .header("X-API-Key", &long),
        )
        .await;
    assert!((400..500).contains(&long_key.status), "{}", long_key.status);
    let long_bearer = server
        .send(server.client.get(server.url("/v1/keys")).bearer_auth(&long))
        .await;
    long_bearer.assert_problem(401, "UNAUTHORIZED");
    let binary = reqwest::header::HeaderValue::from_bytes(&[b'k', 0xff, 0xfe]).unwrap();
    let odd = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .header("X-API-Key", binary.clone()),
        )
        .await;
    assert!((400..500).contains(&odd.status));
    let odd_admin = server
        .send(
            server
                .client
                .get(server.url("/v1/users"))
                .header("Authorization", binary),
        )
        .await;
    odd_admin.assert_problem(401, "UNAUTHORIZED");

    server
        .send(server.client.get(server.url("/v1/nowhere")))
        .await
        .assert_problem(404, "NOT_FOUND");
    let wrong_method = server
        .send(server.client.put(server.url("/v1/verify")))
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.header("content-type"),
        Some("application/problem+json")
    );
    let absurd_path = server
        .admin_call(Method::GET, &format!("/v1/users/{}", "z".repeat(300)), None)
        .await;
    absurd_path.assert_problem(404, "NOT_FOUND");
}

/// A body must be a JSON object: an array that would fill the request's fields in order
/// (`["u", "k"]` for `{"user_id": "u", "name": "k"}`) is refused on every endpoint that
/// takes a body, and changes nothing.
#[tokio::test]
async fn an_array_never_stands_in_for_an_object() {
    let server = TestServer::spawn_app().await;
    let (secret, object) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let id = object["id"].as_str().unwrap();
    let calls = [
        (
            Method::POST,
            "/v1/keys".to_owned(),
            json!(["u", "positional"]),
        ),
        (Method::PATCH, format!("/v1/keys/{id}"), json!(["renamed"])),
        (
            Method::POST,
            format!("/v1/keys/{id}/rotate"),
            json!([null, null]),
        ),
        (Method::POST, "/v1/users".to_owned(), json!(["v"])),
        (Method::PATCH, "/v1/users/u".to_owned(), json!(["pro"])),
        (Method::PUT, "/v1/plans/p".to_owned(), json!([null])),
        (Method::POST, "/v1/verify".to_owned(), json!([secret])),
    ];
    for (method, path, body) in calls {
        let response = server.admin_call(method.clone(), &path, Some(body)).await;
        assert_eq!(response.status, 422, "{method} {path}: {}", response.text);
        assert_eq!(response.code(), "VALIDATION_FAILED", "{method} {path}");
    }
    let key = server
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(key.body["name"], "k");
    assert!(
        key.body["replaced_by"].is_null(),
        "not rotated: {}",
        key.text
    );
    let listed = server.admin(Method::GET, "/v1/keys", None).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
}
