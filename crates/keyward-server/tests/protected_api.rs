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
    keyward.shutdown().await;
}
