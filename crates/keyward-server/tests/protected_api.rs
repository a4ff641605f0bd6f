//! Drives `examples/protected_api.rs`: the library layer in front of a real service.

#[path = "../examples/protected_api.rs"]
#[allow(dead_code)]
mod protected_api;

use keyward_core::{Scope, UserId};
use keyward_store::{Actor, KeySpec, issue_key};

#[tokio::test]
async fn the_example_service_admits_valid_keys_and_answers_problems_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("example.db").display());
    let (app, keyward) = protected_api::app(&url).await.unwrap();

    let mut reader = KeySpec::new(UserId::parse("alice").unwrap(), "reader");
    reader.scopes = vec![Scope::parse("reports:read").unwrap()];
    let (reader_key, reader_record) = issue_key(&**keyward.store(), &reader, &Actor::cli())
        .await
        .unwrap();
    let mut other = KeySpec::new(UserId::parse("bob").unwrap(), "other");
    other.scopes = vec![Scope::parse("misc").unwrap()];
    let (other_key, _) = issue_key(&**keyward.store(), &other, &Actor::cli())
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let client = reqwest::Client::new();

    let hello = client
        .get(format!("{base}/hello"))
        .bearer_auth(reader_key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    let text = hello.text().await.unwrap();
    assert!(
        text.contains("hello alice") && text.contains(reader_record.id.as_str()),
        "{text}"
    );

    let report = client
        .get(format!("{base}/reports"))
        .header("X-API-Key", reader_key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);

    let missing = client.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"keyward\""
    );
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "MISSING");

    let scope = client
        .get(format!("{base}/reports"))
        .bearer_auth(other_key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(scope.status(), 403);
    let body: serde_json::Value = scope.json().await.unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_SCOPE");

    keyward
        .store()
        .revoke_key(&reader_record.id, &Actor::cli())
        .await
        .unwrap();
    keyward.feed().catch_up().await;
    let revoked = client
        .get(format!("{base}/hello"))
        .bearer_auth(reader_key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
    let body: serde_json::Value = revoked.json().await.unwrap();
    assert_eq!(body["code"], "REVOKED");

    server.abort();
    let store = keyward.store().clone();
    keyward.shutdown().await;

    // Usage as the layer saw it: the service's own statuses, by route, with latencies (as
    // the usage endpoint answers it).
    let usage = serde_json::to_value(
        keyward_server::reports::key_usage(&*store, &reader_record.id, 1, chrono::Utc::now())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(usage["total_requests"], 3, "{usage}");
    assert_eq!(usage["rejected_requests"], 1, "{usage}");
    assert_eq!(usage["by_status"], serde_json::json!({"200": 2, "401": 1}));
    let endpoints: Vec<(String, u64)> = usage["by_endpoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap().to_owned(),
                e["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        [("/hello".to_owned(), 2), ("/reports".to_owned(), 1)]
    );
    assert!(usage["by_day"][0]["p50_ms"].is_u64(), "{usage}");
}
