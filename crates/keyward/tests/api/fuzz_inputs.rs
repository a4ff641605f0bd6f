//! Hostile input, generated: arbitrary bytes and arbitrary JSON fed to the key parser, the
//! header extraction, the CSV importer and every request body the API takes. Nothing may
//! panic, and the server answers every one with a success or a problem+json 4xx — never a
//! 5xx, never a plain-text error.

use std::net::IpAddr;

use crate::support::TestServer;
use keyward_core::{KeyName, KeyPrefix, PlainKey, PresentedKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value, json};

/// Field names the API knows, so generated objects reach validation, not just the
/// unknown-field check.
const FIELDS: &[&str] = &[
    "user_id",
    "name",
    "environment",
    "prefix",
    "plan",
    "tier",
    "expires_in_days",
    "expires_at",
    "rate_limit_per_hour",
    "limits",
    "allowed_ips",
    "scopes",
    "metadata",
    "enabled",
    "grace_period_seconds",
    "key",
    "required_scopes",
    "endpoint",
    "method",
    "ip",
    "cost",
    "email",
    "company",
    "plan_effective_at",
    "burst",
    "monthly_quota",
    "max_keys",
    "features",
    "price",
    "window_seconds",
    "max",
    "rate_per_second",
    "capacity",
];

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("\u{1b}[2J\u{202e}".to_owned()),
        Just("0.0.0.0/0".to_owned()),
        Just("sk_live_0000000000000000000000000000000000000000000000000".to_owned()),
        Just("x".repeat(70_000)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(
                |members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

/// An object of known fields with arbitrary values (the shape most bodies expect).
fn json_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..8).prop_map(
            |members| Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            )
        ),
        json_value(),
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn the_key_parser_and_domain_parsers_never_panic() {
    runner(2_000)
        .run(&any::<Vec<u8>>(), |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let _ = PresentedKey::classify(&text);
            let _ = PlainKey::parse(&text);
            let _ = KeyName::parse(&text);
            let _ = KeyPrefix::parse(&text);
            let _ = keyward_core::time::parse(&text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn header_extraction_never_panics() {
    let trusted = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    runner(2_000)
        .run(
            &(
                any::<Vec<u8>>(),
                any::<Vec<u8>>(),
                any::<Vec<u8>>(),
                any::<String>(),
            ),
            |(authorization, api_key, forwarded, query)| {
                let mut headers = axum::http::HeaderMap::new();
                for (name, value) in [
                    ("authorization", authorization),
                    ("x-api-key", api_key),
                    ("x-forwarded-for", forwarded),
                ] {
                    if let Ok(value) = axum::http::HeaderValue::from_bytes(&value) {
                        headers.append(name, value);
                    }
                }
                let _ = keyward_server::extract::presented_key(&headers, Some(&query), true);
                let peer: IpAddr = "127.0.0.1".parse().unwrap();
                let _ = keyward_server::extract::client_address(peer, &headers, &trusted);
                Ok(())
            },
        )
        .unwrap();
}

#[tokio::test]
async fn the_csv_importer_answers_any_file_with_a_sentence_and_an_exit_code() {
    let server = TestServer::spawn_app().await;
    let file = server.dir.path().join("fuzz.csv");
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let csv = prop_oneof![
        any::<Vec<u8>>(),
        (hostile_string(), hostile_string(), hostile_string()).prop_map(move |(a, b, c)| {
            format!("key_hash,user_id,name,expires_at,metadata,is_active\n{hash},{a},\"{b}\",{c},{c},{a}\n")
                .into_bytes()
        }),
    ];
    runner(24)
        .run(&csv, |bytes| {
            std::fs::write(&file, &bytes).unwrap();
            let output = server.cli(&["import", "--from-csv", file.to_str().unwrap(), "--dry-run"]);
            let code = output.status.code();
            prop_assert!(matches!(code, Some(0..=2)), "exit {code:?}: {output:?}");
            if code != Some(0) {
                prop_assert!(!output.stderr.is_empty(), "a failure says why");
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_body_gets_a_success_or_a_problem() {
    let server =
        TestServer::start_with(&["--self-service-limit", "0", "--failure-limit", "0"], &[]).await;
    server
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "fuzz", "plan": "enterprise"})),
        )
        .await;
    let (key, object) = server
        .create_key(json!({"user_id": "fuzz", "name": "target"}))
        .await;
    let id = object["id"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Handle::current();
    let endpoints: Vec<(Method, String, bool)> = vec![
        (Method::POST, "/v1/keys".into(), false),
        (Method::POST, "/v1/keys".into(), true),
        (Method::PATCH, format!("/v1/keys/{id}"), false),
        (Method::PATCH, format!("/v1/keys/{id}"), true),
        (Method::POST, format!("/v1/keys/{id}/rotate"), true),
        (Method::POST, "/v1/users".into(), false),
        (Method::PATCH, "/v1/users/fuzz".into(), false),
        (Method::PUT, "/v1/plans/fuzzplan".into(), false),
        (Method::POST, "/v1/verify".into(), false),
    ];
    let body = prop_oneof![
        json_body().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        any::<Vec<u8>>(),
    ];
    let strategy = (prop::sample::select(endpoints), body);
    // A connection of its own per request: the server closes a connection whose body it did
    // not read (a 413), and a pooled connection could be reused in that instant.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    tokio::task::block_in_place(|| {
        runner(300)
            .run(&strategy, |((method, path, as_key), body)| {
                let credential = if as_key {
                    key.as_str()
                } else {
                    crate::support::ADMIN_TOKEN
                };
                let response = runtime.block_on(
                    server.send(
                        client
                            .request(method.clone(), server.url(&path))
                            .bearer_auth(credential)
                            .header("content-type", "application/json")
                            .body(body),
                    ),
                );
                prop_assert!(response.status < 500, "{method} {path}: {}", response.text);
                if response.status >= 400 {
                    prop_assert_eq!(
                        response.header("content-type"),
                        Some("application/problem+json"),
                        "{} {}: {}",
                        method,
                        path,
                        response.text
                    );
                    prop_assert!(response.body["code"].is_string(), "{}", response.text);
                }
                Ok(())
            })
            .unwrap();
    });
}
