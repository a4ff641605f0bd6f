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

/// The layer leaves transport security to the service by default, and refuses credentials
/// in clear text from beyond its exempt networks when configured to.
#[tokio::test]
async fn the_layer_applies_https_only_credentials_when_configured_to() {
    use keyward_server::{EngineConfig, KeywardLayer, LayerOptions};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("layer.db").display());
    let keyward = keyward_server::Engine::open(&EngineConfig::embedded(&url))
        .await
        .unwrap();
    let (key, _) = issue_key(
        &**keyward.store(),
        &KeySpec::new(UserId::parse("alice").unwrap(), "k"),
        &Actor::cli(),
    )
    .await
    .unwrap();
    let loopback_proxy = vec!["127.0.0.1/32".parse().unwrap()];
    let serve = |options: LayerOptions| {
        let layer = KeywardLayer::new(keyward.verifier().clone(), options);
        let app = axum::Router::new()
            .route("/hello", axum::routing::get(|| async { "hello" }))
            .layer(layer);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .await
            });
            base
        }
    };
    let client = reqwest::Client::new();
    let remote = |base: String, proto: Option<&'static str>| {
        let mut request = client
            .get(format!("{base}/hello"))
            .header("X-API-Key", key.expose_secret())
            .header("X-Forwarded-For", "198.51.100.7");
        if let Some(proto) = proto {
            request = request.header("X-Forwarded-Proto", proto);
        }
        async move { request.send().await.unwrap() }
    };

    let default = serve(LayerOptions {
        trusted_proxies: loopback_proxy.clone(),
        ..LayerOptions::default()
    })
    .await;
    assert_eq!(remote(default, None).await.status(), 200);

    let strict = serve(LayerOptions {
        trusted_proxies: loopback_proxy,
        https_exempt_networks: Some(vec!["127.0.0.0/8".parse().unwrap()]),
        ..LayerOptions::default()
    })
    .await;
    let refused = remote(strict.clone(), Some("http")).await;
    assert_eq!(refused.status(), 403);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "HTTPS_REQUIRED");
    assert_eq!(remote(strict.clone(), Some("https")).await.status(), 200);
    let local = client
        .get(format!("{strict}/hello"))
        .header("X-API-Key", key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200, "loopback is exempt");
    keyward.shutdown().await;
}
