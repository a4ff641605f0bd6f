//! Billing sinks against fake providers that fail first: every metered record and plan
//! change arrives exactly once by identifier, the webhook signature verifies, Stripe gets
//! form-encoded meter events, and a sink that always fails ends in dead-letter, visible in
//! `keyward billing outbox` and `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{TestServer, eventually};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Connection;

const SECRET: &str = "whsec-test-0123456789";

/// A fake provider: answers `fail_first` requests with 500, then 200 (or always 500),
/// and keeps every request it accepted.
#[derive(Default)]
struct Fake {
    seen: Mutex<u32>,
    accepted: Mutex<Vec<(HeaderMap, String)>>,
}

async fn start_fake(fake: Arc<Fake>, fail_first: u32) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let fake = fake.clone();
        async move {
            let attempt = {
                let mut seen = fake.seen.lock().unwrap();
                *seen += 1;
                *seen
            };
            if attempt <= fail_first {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            fake.accepted.lock().unwrap().push((headers, body));
            StatusCode::OK
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Decodes `application/x-www-form-urlencoded` (enough for these tests).
fn form(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn verify_signature(headers: &HeaderMap, body: &str) {
    let header = headers["keyward-signature"].to_str().unwrap();
    let (t, v1) = header
        .split_once(',')
        .map(|(t, v)| {
            (
                t.strip_prefix("t=").unwrap(),
                v.strip_prefix("v1=").unwrap(),
            )
        })
        .expect("t=…,v1=…");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        v1,
        "signature of {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metered_usage_and_plan_changes_arrive_exactly_once_through_failures() {
    // Usage first, on a node without sinks.
    let mut first = TestServer::start().await;
    for (user, metadata) in [
        ("cust", json!({"stripe_customer_id": "cus_123"})),
        ("nocust", json!({})),
    ] {
        let created = first
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"user_id": user, "plan": "enterprise", "metadata": metadata})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    for (user, environment, requests) in [
        ("cust", "live", 7),
        ("cust", "test", 3),
        ("nocust", "live", 4),
    ] {
        let (secret, _) = first
            .create_key(json!({"user_id": user, "name": "k", "environment": environment}))
            .await;
        for _ in 0..requests {
            assert_eq!(first.verify_code(&secret).await, "VALID");
        }
    }
    let (status, _) = first.stop();
    assert!(status.success());
    // Move that usage three hours back, so its hour has closed.
    let database = first.database_url();
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    sqlx::query("UPDATE usage_rollups SET hour = strftime('%Y-%m-%dT%H:%M:%fZ', hour, '-3 hours')")
        .execute(&mut db)
        .await
        .unwrap();
    let hour: String = sqlx::query_scalar("SELECT MIN(hour) FROM usage_rollups")
        .fetch_one(&mut db)
        .await
        .unwrap();

    // Providers that fail the first deliveries.
    let stripe = Arc::new(Fake::default());
    let webhook = Arc::new(Fake::default());
    let stripe_url = start_fake(stripe.clone(), 2).await;
    let webhook_url = start_fake(webhook.clone(), 3).await;
    let hook = format!("{webhook_url}/hooks/keyward");
    let second = TestServer::start_with(
        &[
            "--database-url",
            &database,
            "--billing-webhook-url",
            &hook,
            "--billing-webhook-secret",
            SECRET,
            "--stripe-base-url",
            &stripe_url,
            "--stripe-secret-key",
            "sk_test_fake",
            "--stripe-event-name",
            "api_calls",
            "--billing-max-attempts",
            "10",
            "--billing-retry-base-ms",
            "50",
            "--billing-meter-delay-seconds",
            "0",
            "--billing-recheck-seconds",
            "1",
        ],
        &[],
    )
    .await;
    let changed = second
        .admin(
            Method::PATCH,
            "/v1/users/cust",
            Some(json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);

    // Webhook: usage.metered for both users (live units only) and the plan change.
    eventually(Duration::from_secs(20), || async {
        webhook.accepted.lock().unwrap().len() >= 3 && !stripe.accepted.lock().unwrap().is_empty()
    })
    .await;
    // Let any stray duplicate show up before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let accepted = webhook.accepted.lock().unwrap().clone();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for (headers, body) in &accepted {
        verify_signature(headers, body);
        let event: Value = serde_json::from_str(body).unwrap();
        let id = event["id"].as_str().unwrap().to_owned();
        assert_eq!(headers["keyward-event-id"], id.as_str());
        assert!(by_id.insert(id, event).is_none(), "delivered twice: {body}");
    }
    assert_eq!(by_id.len(), 3, "{by_id:?}");
    let metered: HashMap<&str, &Value> = by_id
        .values()
        .filter(|e| e["type"] == "usage.metered")
        .map(|e| (e["user_id"].as_str().unwrap(), e))
        .collect();
    assert_eq!(metered["cust"]["units"], 7, "test keys are not billed");
    assert_eq!(metered["nocust"]["units"], 4);
    assert_eq!(metered["cust"]["plan"], "enterprise");
    assert_eq!(metered["cust"]["period_start"], hour.replace(".000Z", "Z"));
    let change = by_id
        .values()
        .find(|e| e["type"] == "plan.changed")
        .expect("plan.changed");
    assert_eq!(change["user_id"], "cust");
    assert_eq!(change["from_plan"], "enterprise");
    assert_eq!(change["to_plan"], "pro");

    // Stripe: one meter event, for the user with a customer id, identified by the event id.
    let accepted = stripe.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    let (headers, body) = &accepted[0];
    assert_eq!(headers["authorization"], "Bearer sk_test_fake");
    let fields = form(body);
    assert_eq!(fields["event_name"], "api_calls");
    assert_eq!(fields["payload[stripe_customer_id]"], "cus_123");
    assert_eq!(fields["payload[value]"], "7");
    assert_eq!(
        fields["identifier"],
        metered["cust"]["id"].as_str().unwrap()
    );
    assert!(fields["timestamp"].parse::<i64>().is_ok());
    assert_eq!(
        *stripe.seen.lock().unwrap(),
        3,
        "two failures, then one success"
    );

    // The outbox says the same; nothing is left pending. Stripe's skips of the plan change
    // are settled by its own delivery loop, which may still be backing off from the
    // failures above: wait until every delivery has settled, then look.
    let outbox_statuses = || {
        let outbox = first.cli(&["--json", "billing", "outbox"]);
        assert!(outbox.status.success(), "{outbox:?}");
        let outbox: Value = serde_json::from_slice(&outbox.stdout).unwrap();
        outbox["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().to_owned(),
                    d["sink"].as_str().unwrap().to_owned(),
                    d["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<(String, String, String)>>()
    };
    eventually(Duration::from_secs(20), || async {
        let statuses = outbox_statuses();
        statuses.len() >= 6 && statuses.iter().all(|(_, _, status)| status != "pending")
    })
    .await;
    let statuses = outbox_statuses();
    assert_eq!(statuses.len(), 6, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(_, _, status)| status != "pending" && status != "dead")
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|(_, sink, status)| sink == "stripe" && status == "skipped")
            .count(),
        2,
        "Stripe skips plan changes and users without a customer id"
    );

    // Usage of that hour that reaches the database late (a node that was cut off) follows
    // as a second event with the difference.
    sqlx::query(
        "UPDATE usage_rollups SET requests = requests + 5, units = units + 5
         WHERE user_id = 'cust' AND environment = 'live'",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let first_id = metered["cust"]["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(15), || async {
        stripe.accepted.lock().unwrap().len() == 2
    })
    .await;
    let (_, body) = stripe.accepted.lock().unwrap()[1].clone();
    let fields = form(&body);
    assert_eq!(fields["payload[value]"], "5");
    assert_eq!(fields["identifier"], format!("{first_id}_r2"));
    eventually(Duration::from_secs(15), || async {
        webhook.accepted.lock().unwrap().len() == 4
    })
    .await;
    let late: Value = serde_json::from_str(&webhook.accepted.lock().unwrap()[3].1).unwrap();
    assert_eq!(late["id"], format!("{first_id}_r2"));
    assert_eq!(late["units"], 5);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(webhook.accepted.lock().unwrap().len(), 4, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_always_fails_ends_in_dead_letter() {
    let broken = Arc::new(Fake::default());
    let url = start_fake(broken.clone(), u32::MAX).await;
    let server = TestServer::start_with(
        &[
            "--billing-webhook-url",
            &url,
            "--billing-webhook-secret",
            SECRET,
            "--billing-max-attempts",
            "3",
            "--billing-retry-base-ms",
            "20",
        ],
        &[],
    )
    .await;
    server
        .admin(Method::POST, "/v1/users", Some(json!({"user_id": "u"})))
        .await;
    let changed = server
        .admin(Method::PATCH, "/v1/users/u", Some(json!({"plan": "pro"})))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    eventually(Duration::from_secs(15), || async {
        let output = server.cli(&["--json", "billing", "outbox", "--status", "dead"]);
        let outbox: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        outbox["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    let output = server.cli(&["--json", "billing", "outbox", "--status", "dead"]);
    assert!(output.status.success(), "{output:?}");
    let outbox: Value = serde_json::from_slice(&output.stdout).unwrap();
    let dead = &outbox["deliveries"][0];
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["kind"], "plan.changed");
    assert!(dead["last_error"].as_str().unwrap().contains("500"));
    assert_eq!(*broken.seen.lock().unwrap(), 3, "no attempt after the last");
    let metrics = server
        .send(server.client.get(server.url("/metrics")))
        .await
        .text;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("keyward_billing_deliveries_total")
                && line.contains("result=\"dead\"")
                && line.ends_with(" 1")),
        "{metrics}"
    );
    // The table form names the dead delivery too.
    let table = server.cli(&["billing", "outbox", "--status", "dead"]);
    assert!(table.status.success(), "{table:?}");
    assert!(String::from_utf8_lossy(&table.stdout).contains("dead"));
}

/// A database whose usage (7 live units for `cust`, 4 for `nocust`) lies in an hour that
/// closed three hours ago, made by a node that is stopped again; returns the node (it
/// keeps the database's directory) and the database URL.
async fn closed_hour_of_usage() -> (TestServer, String) {
    let mut node = TestServer::start().await;
    for (user, requests) in [("cust", 7), ("nocust", 4)] {
        node.admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": user, "plan": "enterprise"})),
        )
        .await;
        let (secret, _) = node
            .create_key(json!({"user_id": user, "name": "k", "environment": "live"}))
            .await;
        for _ in 0..requests {
            assert_eq!(node.verify_code(&secret).await, "VALID");
        }
    }
    let (status, _) = node.stop();
    assert!(status.success());
    let database = node.database_url();
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    sqlx::query("UPDATE usage_rollups SET hour = strftime('%Y-%m-%dT%H:%M:%fZ', hour, '-3 hours')")
        .execute(&mut db)
        .await
        .unwrap();
    (node, database)
}

fn webhook_node_args<'a>(database: &'a str, hook: &'a str, lease: &'a str) -> Vec<&'a str> {
    vec![
        "--database-url",
        database,
        "--billing-webhook-url",
        hook,
        "--billing-webhook-secret",
        SECRET,
        "--billing-retry-base-ms",
        "50",
        "--billing-meter-delay-seconds",
        "0",
        "--billing-lease-seconds",
        lease,
    ]
}

/// A sink that records each request as it arrives and answers 200 after `delay_ms` (read
/// per request, so a test can change it).
async fn start_slow_fake(fake: Arc<Fake>, delay_ms: Arc<std::sync::atomic::AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let (fake, delay_ms) = (fake.clone(), delay_ms.clone());
        async move {
            let body = String::from_utf8_lossy(&body).into_owned();
            fake.accepted.lock().unwrap().push((headers, body));
            let delay = delay_ms.load(std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            StatusCode::OK
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    hook
}

/// The event ids a fake accepted, in order.
fn accepted_ids(fake: &Fake) -> Vec<String> {
    fake.accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(headers, body)| {
            verify_signature(headers, body);
            let event: Value = serde_json::from_str(body).unwrap();
            event["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Two nodes with the same sink, started together, meter the same hours and race for the
/// same deliveries, each answered after 1.5 s (so one node's delivery is in flight while
/// the other looks for work): each event reaches the sink once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once() {
    let (_first, database) = closed_hour_of_usage().await;
    let webhook = Arc::new(Fake::default());
    let delay = Arc::new(std::sync::atomic::AtomicU64::new(1500));
    let hook = start_slow_fake(webhook.clone(), delay).await;
    let args = webhook_node_args(&database, &hook, "60");
    let (a, b) = tokio::join!(
        TestServer::start_with(&args, &[]),
        TestServer::start_with(&args, &[]),
    );
    eventually(Duration::from_secs(15), || async {
        accepted_ids(&webhook).len() >= 2
    })
    .await;
    // A duplicate would be a second delivery racing the first: give it the time to land.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ids = accepted_ids(&webhook);
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "an event was delivered twice: {ids:?}");
    assert_eq!(ids.len(), 2, "one usage.metered per user: {ids:?}");
    drop((a, b));
}

/// A node killed after the sink accepted a delivery and before it recorded it: once its
/// lease runs out another node sends the same event again, with the same id, so a
/// receiver that de-duplicates by id bills it once — and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_short_by_a_crash_is_sent_again_with_the_same_id() {
    let (_first, database) = closed_hour_of_usage().await;
    // The sink answers only after 30 s at first: the node that sent the delivery is killed
    // meanwhile. Then it answers at once.
    let slow = Arc::new(Fake::default());
    let delay = Arc::new(std::sync::atomic::AtomicU64::new(30_000));
    let hook = start_slow_fake(slow.clone(), delay.clone()).await;

    let args = webhook_node_args(&database, &hook, "15");
    let mut doomed = TestServer::start_with(&args, &[]).await;
    eventually(Duration::from_secs(15), || async {
        !accepted_ids(&slow).is_empty()
    })
    .await;
    doomed.kill();
    delay.store(0, std::sync::atomic::Ordering::SeqCst);
    let sent_before = accepted_ids(&slow);
    assert_eq!(
        sent_before.len(),
        1,
        "the doomed node was waiting on its first delivery"
    );
    let first = sent_before[0].clone();

    let _successor = TestServer::start_with(&args, &[]).await;
    eventually(Duration::from_secs(40), || async {
        accepted_ids(&slow)
            .iter()
            .filter(|id| **id == first)
            .count()
            == 2
    })
    .await;
    // Both events end up delivered, each sent by the successor once.
    eventually(Duration::from_secs(10), || async {
        let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
        let delivered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM billing_deliveries WHERE status = 'delivered'",
        )
        .fetch_one(&mut db)
        .await
        .unwrap_or(0);
        delivered == 2
    })
    .await;
    let ids = accepted_ids(&slow);
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 2, "{ids:?}");
    for id in distinct {
        let expected = if *id == first { 2 } else { 1 };
        assert_eq!(
            ids.iter().filter(|seen| *seen == id).count(),
            expected,
            "{id}: {ids:?}"
        );
    }
}
