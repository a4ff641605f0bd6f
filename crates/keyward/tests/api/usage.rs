//! Usage analytics and invoices, end to end: every figure keyward reports — raw events,
//! rollups, `request_count`, the usage endpoints, the CLI and the invoice — agrees exactly
//! with what the test itself sent and saw, across a graceful restart.

use std::collections::BTreeMap;

use crate::support::TestServer;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

/// What the test saw for one key.
#[derive(Debug, Default, Clone)]
struct Seen {
    requests: u64,
    rejected: u64,
    units: u64,
    by_status: BTreeMap<String, u64>,
    by_endpoint: BTreeMap<String, u64>,
}

struct Key {
    secret: String,
    id: String,
    user: &'static str,
    live: bool,
}

async fn authorize(server: &TestServer, key: &Key, endpoint: &str, seen: &mut Seen) {
    let response = server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .bearer_auth(&key.secret)
                .header("X-Original-URI", format!("{endpoint}?page=2"))
                .header("X-Original-Method", "GET"),
        )
        .await;
    count(seen, endpoint, response.status, 1);
}

async fn verify(server: &TestServer, key: &Key, endpoint: &str, cost: u64, seen: &mut Seen) {
    let response = server
        .verify(json!({"key": key.secret, "endpoint": endpoint, "method": "POST", "cost": cost}))
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let status = match response.body["code"].as_str().unwrap() {
        "VALID" => 200,
        "RATE_LIMITED" | "QUOTA_EXCEEDED" => 429,
        other => panic!("unexpected decision {other}"),
    };
    count(seen, endpoint, status, cost);
}

fn count(seen: &mut Seen, endpoint: &str, status: u16, cost: u64) {
    assert!(status == 200 || status == 429, "status {status}");
    seen.requests += 1;
    if status == 200 {
        seen.units += cost;
    } else {
        seen.rejected += 1;
    }
    *seen.by_status.entry(status.to_string()).or_default() += 1;
    *seen.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
}

/// Sends a round of traffic over every key: authorize and verify calls on three endpoints,
/// some of cost 3, enough to push the small plan's key into rejections.
async fn traffic(server: &TestServer, keys: &[Key], seen: &mut [Seen], rounds: usize) {
    for round in 0..rounds {
        for (key, seen) in keys.iter().zip(seen.iter_mut()) {
            let endpoint = ["/orders", "/users/7", "/search"][round % 3];
            if round % 4 == 3 {
                verify(server, key, endpoint, 3, seen).await;
            } else {
                authorize(server, key, endpoint, seen).await;
            }
        }
    }
}

/// An invoice line without its end, which for the current month is "now".
fn without_to(line: &Value) -> Value {
    let mut line = line.clone();
    line.as_object_mut().map(|l| l.remove("to"));
    line
}

async fn admin_get(server: &TestServer, path: &str) -> Value {
    let response = server.admin(Method::GET, path, None).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text);
    response.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_agrees_with_the_requests_sent_across_a_graceful_restart() {
    crate::support::clear_of_hour_boundary().await;
    let mut first = TestServer::start().await;
    // `small` rejects (40 units a minute); `billed` has a price: 10 ¢ base a month, no
    // included units, 1 ¢ per unit over, so the overage line is the live units exactly.
    for (name, plan) in [
        (
            "small",
            json!({"limits": [{"window_seconds": 60, "max": 40}]}),
        ),
        (
            "billed",
            json!({"limits": [{"window_seconds": 60, "max": 100000}],
                   "price": {"base_cents": 10, "included_requests": 0, "overage_cents_per_1000": 1000}}),
        ),
    ] {
        let put = first
            .admin(Method::PUT, &format!("/v1/plans/{name}"), Some(plan))
            .await;
        assert_eq!(put.status, 200, "{}", put.text);
    }
    for (user, plan) in [("alice", "billed"), ("bob", "small")] {
        let created = first
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"user_id": user, "plan": plan})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let mut keys = Vec::new();
    for (user, name, environment) in [
        ("alice", "a-live", "live"),
        ("alice", "a-test", "test"),
        ("bob", "b-live", "live"),
    ] {
        let (secret, object) = first
            .create_key(json!({"user_id": user, "name": name, "environment": environment}))
            .await;
        keys.push(Key {
            secret,
            id: object["id"].as_str().unwrap().to_owned(),
            user,
            live: environment == "live",
        });
    }
    let mut seen = vec![Seen::default(); keys.len()];

    traffic(&first, &keys, &mut seen, 30).await;
    // A graceful restart: everything counted so far is flushed on the way down.
    let (status, _) = first.stop();
    assert!(status.success());
    let database = first.database_url();
    let second = TestServer::start_with(&["--database-url", &database], &[]).await;
    traffic(&second, &keys, &mut seen, 30).await;
    let (bob_rejected, bob_requests) = (seen[2].rejected, seen[2].requests);
    assert!(
        bob_rejected > 0,
        "the small plan rejected some of bob's {bob_requests}"
    );

    // The usage endpoints, once the writer has flushed every key's last requests (every
    // 200 ms: a flush may take one key's last request and leave another's to the next).
    crate::support::eventually(std::time::Duration::from_secs(5), || async {
        for (key, seen) in keys.iter().zip(&seen) {
            let report = admin_get(&second, &format!("/v1/keys/{}/usage?days=1", key.id)).await;
            if report["total_requests"] != seen.requests {
                return false;
            }
        }
        true
    })
    .await;
    for (key, seen) in keys.iter().zip(&seen) {
        let report = admin_get(&second, &format!("/v1/keys/{}/usage?days=1", key.id)).await;
        assert_eq!(report["total_requests"], seen.requests, "{}", key.id);
        assert_eq!(report["rejected_requests"], seen.rejected, "{}", key.id);
        assert_eq!(report["units"], seen.units, "{}", key.id);
        assert_eq!(report["by_status"], json!(seen.by_status), "{}", key.id);
        let by_endpoint: BTreeMap<String, u64> = report["by_endpoint"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["endpoint"].as_str().unwrap().to_owned(),
                    row["requests"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(by_endpoint, seen.by_endpoint, "{}", key.id);
        let day = &report["by_day"].as_array().unwrap()[0];
        assert_eq!(day["requests"], seen.requests);
        assert!(day["p50_ms"].is_u64(), "latency percentiles: {day}");
        // request_count counts admitted checks.
        let object = admin_get(&second, &format!("/v1/keys/{}", key.id)).await;
        assert_eq!(
            object["request_count"],
            seen.requests - seen.rejected,
            "{}",
            key.id
        );
        // The CLI (on the same database) prints the endpoint's document.
        let output = first.cli(&["--json", "keys", "usage", &key.id, "--days", "1"]);
        assert!(output.status.success(), "{output:?}");
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(printed, report);
    }

    // Per user, per month.
    for user in ["alice", "bob"] {
        let mine: Vec<&Seen> = keys
            .iter()
            .zip(&seen)
            .filter(|(k, _)| k.user == user)
            .map(|(_, s)| s)
            .collect();
        let report = admin_get(&second, &format!("/v1/users/{user}/usage")).await;
        assert_eq!(
            report["requests"],
            mine.iter().map(|s| s.requests).sum::<u64>()
        );
        assert_eq!(
            report["rejected"],
            mine.iter().map(|s| s.rejected).sum::<u64>()
        );
        assert_eq!(report["units"], mine.iter().map(|s| s.units).sum::<u64>());
        let output = first.cli(&["--json", "usage", user]);
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            serde_json::from_slice::<Value>(&output.stdout).unwrap(),
            report
        );
    }

    // The raw events and the rollups in the database say the same.
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    for (key, seen) in keys.iter().zip(&seen) {
        let (events, event_units): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM api_key_usage WHERE api_key_id = $1",
        )
        .bind(&key.id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(
            (events as u64, event_units as u64),
            (seen.requests, seen.units)
        );
        let (requests, rejected, units): (i64, i64, i64) = sqlx::query_as(
            "SELECT SUM(requests), SUM(rejected), SUM(units) FROM usage_rollups WHERE key_id = $1",
        )
        .bind(&key.id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(
            (requests as u64, rejected as u64, units as u64),
            (seen.requests, seen.rejected, seen.units)
        );
        // No plaintext key and no query string reached the events.
        let leaked: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_key_usage WHERE endpoint LIKE '%?%' OR endpoint LIKE $1",
        )
        .bind(format!("%{}%", key.secret))
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(leaked, 0);
    }

    // Alice's invoice: her live key's units at 1 ¢ each (test keys are not billed).
    let invoice = admin_get(&second, "/v1/users/alice/invoice").await;
    let live_units: u64 = keys
        .iter()
        .zip(&seen)
        .filter(|(k, _)| k.user == "alice" && k.live)
        .map(|(_, s)| s.units)
        .sum();
    let lines = invoice["lines"].as_array().unwrap();
    let overage = lines
        .iter()
        .find(|l| l["kind"] == "overage")
        .expect("an overage line");
    assert_eq!(overage["plan"], "billed");
    assert_eq!(overage["quantity"], live_units);
    assert_eq!(overage["amount_cents"], live_units);
    assert_eq!(
        invoice["total_cents"].as_u64().unwrap(),
        lines
            .iter()
            .map(|l| l["amount_cents"].as_u64().unwrap())
            .sum::<u64>()
    );
    assert_eq!(invoice["currency"], "usd");
    let output = first.cli(&["--json", "billing", "invoice", "alice"]);
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    // The same overage line (its `to` is "now", so it may be a second later).
    assert_eq!(
        without_to(&printed["lines"][1]),
        without_to(&invoice["lines"][1])
    );

    // The export: every user with an invoice, a deleted one with usage included.
    let deleted = second.admin(Method::DELETE, "/v1/users/bob", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let export = first.cli(&["billing", "export", "--format", "json"]);
    assert!(export.status.success(), "{export:?}");
    let export: Value = serde_json::from_slice(&export.stdout).unwrap();
    let users: Vec<&str> = export["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(
        without_to(&export["invoices"][0]["lines"][1]),
        without_to(&invoice["lines"][1])
    );
    let csv = first.cli(&["billing", "export", "--format", "csv"]);
    assert!(csv.status.success(), "{csv:?}");
    let csv = String::from_utf8(csv.stdout).unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("user_id,period,kind,plan,from,to,quantity,amount_cents,invoice_total_cents")
    );
    assert!(
        rows.any(|row| row.starts_with("alice,")
            && row.contains(",overage,billed,")
            && row.contains(&format!(",{live_units},{live_units},"))),
        "{csv}"
    );

    // The summary covers everyone.
    let summary = admin_get(&second, "/v1/usage/summary?days=1").await;
    let total: u64 = seen.iter().map(|s| s.requests).sum();
    assert_eq!(summary["requests"], total);
    assert_eq!(
        summary["rejected"],
        seen.iter().map(|s| s.rejected).sum::<u64>()
    );
    assert_eq!(summary["by_code"]["RATE_LIMITED"], bob_rejected);
    assert!(summary["latency_ms"]["p99"].is_u64());
    assert_eq!(summary["top_keys"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn usage_and_audit_inputs_are_checked() {
    let server = TestServer::spawn_app().await;
    let (_, key) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    let id = key["id"].as_str().unwrap();
    for path in [
        format!("/v1/keys/{id}/usage?days=0"),
        format!("/v1/keys/{id}/usage?days=401"),
        "/v1/users/u/usage?period=2026-13".to_owned(),
        "/v1/users/u/invoice?period=26-11".to_owned(),
        "/v1/usage/summary?days=x".to_owned(),
        "/v1/audit?action=key.explode".to_owned(),
        "/v1/audit?limit=0".to_owned(),
    ] {
        let response = server.admin_call(Method::GET, &path, None).await;
        response.assert_problem(422, "VALIDATION_FAILED");
    }
    server
        .admin_call(Method::GET, "/v1/users/nobody/usage", None)
        .await
        .assert_problem(404, "NOT_FOUND");
    server
        .admin_call(
            Method::GET,
            "/v1/keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV/usage",
            None,
        )
        .await
        .assert_problem(404, "NOT_FOUND");
    // The audit log: newest first, filtered, paged.
    let audit = server
        .admin(Method::GET, "/v1/audit?action=key.create&limit=1", None)
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    assert_eq!(audit.body["records"][0]["action"], "key.create");
    assert_eq!(audit.body["records"][0]["key_id"], id);
    let everything = server.admin(Method::GET, "/v1/audit", None).await;
    let actions: Vec<&str> = everything.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.create", "user.create"]);
    // A key's own usage is visible to the key; the summary is admin-only.
    let (secret, _) = server
        .create_key(json!({"user_id": "v", "name": "self"}))
        .await;
    let own = server
        .as_key(&secret, Method::GET, "/v1/usage/summary", None)
        .await;
    own.assert_problem(401, "UNAUTHORIZED");
}

/// `kill -9` under load: what was flushed is kept, and at most the last flush interval's
/// admitted requests (200 ms, plus one write in flight) are lost; what is kept is
/// consistent — `request_count`, rollups and raw events agree. The assertion allows 400 ms
/// (scheduling on a busy 2-core machine); the measured spans are in the operations guide.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loses_at_most_the_last_flush_interval_of_usage() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let mut server = TestServer::start().await;
    let plan = json!({"limits": [{"window_seconds": 60, "max": 1_000_000_000u64}]});
    let put = server
        .admin(Method::PUT, "/v1/plans/roomy", Some(plan))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let (secret, object) = server
        .create_key(json!({"user_id": "u", "name": "k", "plan": "roomy"}))
        .await;
    let id = object["id"].as_str().unwrap().to_owned();
    let admitted: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let client = reqwest::Client::new();
    let url = server.url("/v1/authorize");
    // The kill lands anywhere in a flush interval from run to run.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 200_000_000;
    let stop_at =
        Instant::now() + Duration::from_millis(2600) + Duration::from_nanos(jitter.into());
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
        let admitted = admitted.clone();
        load.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                if let Ok(response) = client.get(&url).bearer_auth(&secret).send().await
                    && response.status() == 200
                {
                    admitted.lock().unwrap().push(Instant::now());
                }
            }
        }));
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(
        stop_at - Duration::from_millis(100),
    ))
    .await;
    let killed_at = Instant::now();
    server.kill();
    for task in load {
        task.await.expect("a load task panicked");
    }
    let mut times = admitted.lock().unwrap().clone();
    times.sort();
    let total = times.len() as u64;
    let last_window = times
        .iter()
        .filter(|t| **t + Duration::from_millis(400) >= killed_at)
        .count() as u64;

    let database = server.database_url();
    let restarted = TestServer::start_with(&["--database-url", &database], &[]).await;
    let key = restarted
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    let stored = key.body["request_count"].as_u64().unwrap();
    let lost = total - stored.min(total);
    // The lost requests are (at most) the latest ones: how far back they reach.
    let span = times
        .get(usize::try_from(stored).unwrap())
        .map_or(Duration::ZERO, |first_lost| {
            killed_at.saturating_duration_since(*first_lost)
        });
    println!(
        "kill -9 under load: {total} admitted, {stored} stored, {lost} lost \
         (the last {} ms before the kill); {last_window} were admitted in the last 400 ms",
        span.as_millis()
    );
    assert!(stored <= total, "nothing is counted twice");
    assert!(stored > 0, "flushed usage survives a crash");
    assert!(
        lost <= last_window,
        "only the last flush interval may be lost: {lost} lost, {last_window} recent"
    );
    // What survived is consistent.
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_key_usage WHERE api_key_id = $1")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    let rolled: i64 =
        sqlx::query_scalar("SELECT SUM(requests) FROM usage_rollups WHERE key_id = $1")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!((events as u64, rolled as u64), (stored, stored));
}

/// `--usage off` keeps no analytics, but still counts `request_count` and quota usage, so a
/// monthly quota survives a restart.
#[tokio::test]
async fn usage_off_keeps_counters_and_quotas_but_no_analytics() {
    crate::support::clear_of_hour_boundary().await;
    let mut first = TestServer::start_with(&["--usage", "off"], &[]).await;
    let plan = json!({"limits": [{"window_seconds": 60, "max": 100}], "monthly_quota": 3});
    let put = first.admin(Method::PUT, "/v1/plans/tiny", Some(plan)).await;
    assert_eq!(put.status, 200, "{}", put.text);
    first
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "q", "plan": "tiny"})),
        )
        .await;
    let (secret, object) = first.create_key(json!({"user_id": "q", "name": "k"})).await;
    let id = object["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(first.verify_code(&secret).await, "VALID");
    }
    let (status, _) = first.stop();
    assert!(status.success());
    let database = first.database_url();
    let second =
        TestServer::start_with(&["--database-url", &database, "--usage", "off"], &[]).await;
    assert_eq!(second.verify_code(&secret).await, "QUOTA_EXCEEDED");
    let key = admin_get(&second, &format!("/v1/keys/{id}")).await;
    assert_eq!(key["request_count"], 3);
    let usage = admin_get(&second, &format!("/v1/keys/{id}/usage?days=1")).await;
    assert_eq!(usage["total_requests"], 0, "no analytics with --usage off");
}
