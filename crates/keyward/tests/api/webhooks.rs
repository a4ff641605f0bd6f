//! Event webhooks, received by a real Standard Webhooks verifier (the `standardwebhooks`
//! package from PyPI, which scripts/test.sh installs): each event once with a valid
//! signature, retries, 410, replays, secret rotation, and several nodes.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, eventually, postgres_database};

/// The receiver process, its secrets file and its log.
struct Receiver {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Receiver {
    fn start(options: &[&str]) -> Self {
        let python = std::env::var("KEYWARD_TEST_PYTHON").expect(
            "KEYWARD_TEST_PYTHON must name a Python with standardwebhooks (scripts/test.sh installs it)",
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets"), "").unwrap();
        let mut child = Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/api/webhook_receiver.py"
            ))
            .arg(dir.path().join("secrets"))
            .arg(dir.path().join("log"))
            .args(options)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the webhook receiver");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the receiver prints its port");
        Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}/hooks"),
        }
    }

    fn trust(&self, secrets: &[&str]) {
        std::fs::write(self.dir.path().join("secrets"), secrets.join("\n")).unwrap();
    }

    fn log(&self) -> Vec<Value> {
        let path: PathBuf = self.dir.path().join("log");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Deliveries answered 2xx, by type.
    fn accepted(&self, kind: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|entry| entry["status"] == 204 && entry["body"]["type"] == kind)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(server: &TestServer, receiver: &Receiver, events: Value) -> Value {
    let created = server
        .admin(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "events": events, "description": "tests"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.trust(&[secret]);
    created.body
}

const SCALE: [&str; 2] = ["--webhook-retry-scale", "0.001"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_delivered_once_with_a_valid_signature() {
    let receiver = Receiver::start(&[]);
    let server = TestServer::start_with(&SCALE, &[]).await;
    let webhook = register(&server, &receiver, json!(["*"])).await;
    let listed = server.admin(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed.body["webhooks"][0]["id"], webhook["id"]);
    assert!(
        listed.body["webhooks"][0].get("secret").is_none(),
        "{}",
        listed.text
    );

    let (_, key) = server
        .create_key(json!({"user_id": "acme", "name": "ci"}))
        .await;
    let id = key["id"].as_str().unwrap();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"name": "deploys"})),
        )
        .await;
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 60})),
        )
        .await;
    let new_id = rotated.body["key"]["id"].as_str().unwrap().to_owned();
    server
        .admin(Method::DELETE, &format!("/v1/keys/{new_id}"), None)
        .await;
    server
        .admin(
            Method::PATCH,
            "/v1/users/acme",
            Some(json!({"plan": "pro"})),
        )
        .await;
    // A change made with the CLI is delivered by the running server.
    let cli = server.cli(&[
        "keys",
        "create",
        "--user-id",
        "cli-user",
        "--name",
        "from the cli",
    ]);
    assert!(cli.status.success(), "{cli:?}");

    let kinds = [
        "key.created",
        "key.updated",
        "key.rotated",
        "key.revoked",
        "user.plan_changed",
    ];
    eventually(Duration::from_secs(10), || async {
        kinds.iter().all(|kind| !receiver.accepted(kind).is_empty())
    })
    .await;
    // Nothing more arrives: each event exactly once, every one verified.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = receiver.log();
    assert!(
        log.iter().all(|entry| entry["verified"] == true),
        "{log:#?}"
    );
    for kind in kinds {
        let expected = if kind == "key.created" { 2 } else { 1 };
        assert_eq!(receiver.accepted(kind).len(), expected, "{kind}: {log:#?}");
    }
    assert!(
        receiver
            .accepted("key.created")
            .iter()
            .any(|e| e["body"]["data"]["name"] == "from the cli")
    );
    let created_entry = receiver
        .accepted("key.created")
        .into_iter()
        .find(|e| e["body"]["data"]["id"] == key["id"])
        .unwrap();
    let created = &created_entry["body"];
    assert_eq!(created["data"]["id"], key["id"]);
    assert_eq!(created["data"]["status"], "active");
    assert_eq!(
        created["data"]["name"], "ci",
        "the data is the key as it was created"
    );
    assert!(
        created["data"].get("key").is_none(),
        "no key material: {created}"
    );
    let rotated = &receiver.accepted("key.rotated")[0]["body"]["data"];
    assert_eq!(rotated["old_key"]["id"], key["id"]);
    assert_eq!(rotated["key"]["id"], new_id.as_str());
    let revoked = &receiver.accepted("key.revoked")[0]["body"]["data"];
    assert_eq!(revoked["status"], "revoked");
    let plan = &receiver.accepted("user.plan_changed")[0]["body"]["data"];
    assert_eq!(
        (plan["from_plan"].as_str(), plan["to_plan"].as_str()),
        (Some("free"), Some("pro"))
    );

    // The deliveries log says the same.
    let deliveries = server
        .admin(
            Method::GET,
            &format!(
                "/v1/webhooks/{}/deliveries",
                webhook["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let entries = deliveries.body["deliveries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{}", deliveries.text);
    assert!(
        entries.iter().all(|d| d["status"] == "succeeded"
            && d["response_status"] == 204
            && d["attempt"] == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_event_once_after_retries_and_410_disables() {
    let receiver = Receiver::start(&["--fail-first", "3"]);
    let server = TestServer::start_with(&SCALE, &[]).await;
    let webhook = register(&server, &receiver, json!(["key.created"])).await;
    server
        .create_key(json!({"user_id": "acme", "name": "ci"}))
        .await;
    eventually(Duration::from_secs(15), || async {
        !receiver.accepted("key.created").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = receiver.log();
    assert_eq!(
        attempts.len(),
        4,
        "three failures, then once: {attempts:#?}"
    );
    assert!(
        attempts.iter().all(|a| a["id"] == attempts[0]["id"]),
        "one webhook-id"
    );
    let id = webhook["id"].as_str().unwrap();
    let deliveries = server
        .admin(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!(deliveries.body["deliveries"][0]["status"], "succeeded");
    assert_eq!(deliveries.body["deliveries"][0]["attempt"], 4);

    // A receiver answering 410: the endpoint is disabled at once, and nothing more is queued.
    let gone = Receiver::start(&["--gone"]);
    let webhook = register(&server, &gone, json!(["key.created"])).await;
    let id = webhook["id"].as_str().unwrap();
    server
        .create_key(json!({"user_id": "acme", "name": "second"}))
        .await;
    eventually(Duration::from_secs(10), || async {
        server
            .admin(Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await
            .body["enabled"]
            == false
    })
    .await;
    server
        .create_key(json!({"user_id": "acme", "name": "third"}))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gone.log().len(), 1, "{:#?}", gone.log());
    let deliveries = server
        .admin(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!(deliveries.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(deliveries.body["deliveries"][0]["status"], "dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_resend_and_both_secrets_verify_during_a_rotation() {
    let receiver = Receiver::start(&[]);
    let server = TestServer::start_with(&SCALE, &[]).await;
    let webhook = register(&server, &receiver, json!(["key.created"])).await;
    let id = webhook["id"].as_str().unwrap();
    let old_secret = webhook["secret"].as_str().unwrap().to_owned();
    server
        .create_key(json!({"user_id": "acme", "name": "ci"}))
        .await;
    eventually(Duration::from_secs(10), || async {
        receiver.accepted("key.created").len() == 1
    })
    .await;
    let first = receiver.accepted("key.created")[0].clone();

    // Replay: the same event again, with its id, type, time and data.
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let replayed = server
        .admin(
            Method::POST,
            &format!("/v1/webhooks/{id}/replay"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(
        (replayed.status, replayed.body["replayed"].as_u64()),
        (202, Some(1))
    );
    eventually(Duration::from_secs(10), || async {
        receiver.accepted("key.created").len() == 2
    })
    .await;
    let again = receiver.accepted("key.created")[1].clone();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["body"], first["body"]);
    let too_old = (chrono::Utc::now() - chrono::Duration::days(31)).to_rfc3339();
    server
        .admin_call(
            Method::POST,
            &format!("/v1/webhooks/{id}/replay"),
            Some(json!({"since": too_old})),
        )
        .await
        .assert_problem(422, "VALIDATION_FAILED");

    // A rotation: deliveries carry both signatures; a receiver with either secret verifies.
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            None,
        )
        .await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    let shown = server
        .admin(Method::GET, &format!("/v1/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(shown.body["secret"], new_secret.as_str());
    for (n, secret) in [(3, &old_secret), (4, &new_secret)] {
        receiver.trust(&[secret.as_str()]);
        server
            .create_key(json!({"user_id": "acme", "name": format!("k{n}")}))
            .await;
        eventually(Duration::from_secs(10), || async {
            receiver.accepted("key.created").len() == n
        })
        .await;
        let last = receiver.accepted("key.created").pop().unwrap();
        assert_eq!(last["signatures"], 2, "{last}");
    }
}

#[tokio::test]
async fn endpoints_are_checked_and_need_their_permission() {
    let server = TestServer::spawn_app().await;
    for body in [
        json!({"url": "ftp://example.com/x", "events": ["*"]}),
        json!({"url": "not a url", "events": ["*"]}),
        json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["*"]}),
        json!({"url": "http://127.0.0.1:9/x", "events": []}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["key.exploded"]}),
        json!({"url": "http://127.0.0.1:9/x"}),
        // Hostile sizes and shapes.
        json!({"url": format!("http://127.0.0.1:9/{}", "a".repeat(3000)), "events": ["*"]}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "description": "d".repeat(501)}),
        json!({"url": "http://127.0.0.1:9/x", "events": vec!["key.created"; 1000]}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "whsec_mine"}),
        json!({"url": "http://[::ffff:169.254.169.254]/", "events": ["*"]}),
    ] {
        let refused = server
            .admin_call(Method::POST, "/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(refused.status, 422, "{body}: {}", refused.text);
    }
    // A user's own key manages no webhooks.
    let (own, _) = server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    let refused = server
        .as_key(
            &own,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "events": ["*"]})),
        )
        .await;
    assert!(matches!(refused.status, 401 | 403), "{}", refused.text);
    let created = server
        .admin(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "events": ["key.created", "key.created"]})),
        )
        .await;
    assert_eq!(created.body["events"], json!(["key.created"]));
    let id = created.body["id"].as_str().unwrap();
    let patched = server
        .admin(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": false, "description": "paused"})),
        )
        .await;
    assert_eq!(
        (
            patched.body["enabled"].clone(),
            patched.body["description"].clone()
        ),
        (json!(false), json!("paused"))
    );
    server
        .admin_call(Method::GET, "/v1/webhooks/whk_nothing", None)
        .await
        .assert_problem(404, "NOT_FOUND");
    // A change is held to the same rules, and a refused one changes nothing.
    for body in [
        json!({"url": "http://169.254.169.254/"}),
        json!({"events": ["nope"]}),
        json!({"enabled": "yes"}),
    ] {
        let refused = server
            .admin_call(
                Method::PATCH,
                &format!("/v1/webhooks/{id}"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(refused.status, 422, "{body}: {}", refused.text);
    }
    let unchanged = server
        .admin(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(unchanged.body["url"], "http://127.0.0.1:9/x");
    for since in ["yesterday", "9999-99-99T00:00:00Z"] {
        let refused = server
            .admin_call(
                Method::POST,
                &format!("/v1/webhooks/{id}/replay"),
                Some(json!({"since": since})),
            )
            .await;
        assert_eq!(refused.status, 422, "{since}: {}", refused.text);
    }
    // An admin key without webhooks:write sees none of it.
    let reader = server
        .admin(
            Method::POST,
            "/v1/admin-keys",
            Some(json!({"name": "r", "permissions": ["keys:read"]})),
        )
        .await;
    let key = reader.body["key"].as_str().unwrap();
    let refused = server
        .as_key(key, Method::GET, &format!("/v1/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let deleted = server
        .admin(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(deleted.body["id"], id);
    server
        .admin_call(Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    // Each change is audited by the admin, with its address; refused ones are not.
    let audit = server.admin(Method::GET, "/v1/audit?limit=100", None).await;
    let records: Vec<&Value> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["details"]["webhook_id"] == id)
        .collect();
    let mut actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["webhook.create", "webhook.delete", "webhook.update"],
        "{records:?}"
    );
    for record in records {
        assert_eq!(record["actor"], "admin");
        assert!(record["ip"].is_string(), "{record}");
        assert!(!record.to_string().contains("whsec_"), "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_deliver_each_event_exactly_once() {
    let receiver = Receiver::start(&[]);
    let database = postgres_database().await;
    let args = ["--database-url", database.as_str(), SCALE[0], SCALE[1]];
    let first = TestServer::start_with(&args, &[]).await;
    let second = TestServer::start_with(&args, &[]).await;
    register(&first, &receiver, json!(["key.created"])).await;
    for n in 0..20 {
        let node = if n % 2 == 0 { &first } else { &second };
        node.create_key(json!({"user_id": format!("u{n}"), "name": "k"}))
            .await;
    }
    eventually(Duration::from_secs(20), || async {
        receiver.accepted("key.created").len() >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let accepted = receiver.accepted("key.created");
    let mut ids: Vec<&str> = accepted.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((accepted.len(), ids.len()), (20, 20), "{accepted:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_and_expired_keys_are_announced_once() {
    let receiver = Receiver::start(&[]);
    let server = TestServer::start_with(&SCALE, &[]).await;
    register(&server, &receiver, json!(["key.expiring", "key.expired"])).await;
    // Made inside its notice window (7 days): announced as expiring at once.
    let (_, soon) = server
        .create_key(json!({"user_id": "acme", "name": "three days", "expires_in_days": 3}))
        .await;
    // Expiring in two seconds: announced as expiring, then as expired.
    let (_, brief) = server
        .create_key(json!({"user_id": "acme", "name": "brief"}))
        .await;
    let brief_id = brief["id"].as_str().unwrap();
    let in_two_seconds = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{brief_id}"),
            Some(json!({"expires_at": in_two_seconds})),
        )
        .await;
    // Revoked before its expiry: never announced.
    let (_, revoked) = server
        .create_key(json!({"user_id": "acme", "name": "revoked"}))
        .await;
    let revoked_id = revoked["id"].as_str().unwrap();
    let in_a_second = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    server
        .admin(
            Method::PATCH,
            &format!("/v1/keys/{revoked_id}"),
            Some(json!({"expires_at": in_a_second})),
        )
        .await;
    server
        .admin(Method::DELETE, &format!("/v1/keys/{revoked_id}"), None)
        .await;

    eventually(Duration::from_secs(15), || async {
        !receiver.accepted("key.expired").is_empty() && receiver.accepted("key.expiring").len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expiring: Vec<Value> = receiver.accepted("key.expiring");
    let mut ids: Vec<&str> = expiring
        .iter()
        .map(|e| e["body"]["data"]["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![soon["id"].as_str().unwrap(), brief_id];
    expected.sort_unstable();
    assert_eq!(ids, expected, "{expiring:#?}");
    let expired = receiver.accepted("key.expired");
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert_eq!(expired[0]["body"]["data"]["id"], brief_id);
    assert_eq!(expired[0]["body"]["data"]["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_thresholds_fire_once_each_under_load_on_two_nodes() {
    let receiver = Receiver::start(&[]);
    let database = postgres_database().await;
    let args = ["--database-url", database.as_str(), SCALE[0], SCALE[1]];
    let first = TestServer::start_with(&args, &[]).await;
    let second = TestServer::start_with(&args, &[]).await;
    register(&first, &receiver, json!(["quota.threshold"])).await;
    first
        .admin(
            Method::PUT,
            "/v1/plans/metered",
            Some(json!({"limits": [{"window_seconds": 60, "max": 1000}], "monthly_quota": 20})),
        )
        .await;
    first
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "acme", "plan": "metered"})),
        )
        .await;
    let (key, _) = first
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    let checks = (0..30).map(|n| {
        let node = if n % 2 == 0 { &first } else { &second };
        let key = key.clone();
        async move { node.authorize(&key).await.status }
    });
    futures_util::future::join_all(checks).await;
    eventually(Duration::from_secs(15), || async {
        receiver.accepted("quota.threshold").len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // Deliveries may arrive in any order; the events' ids (ULIDs) give the order raised.
    let mut thresholds = receiver.accepted("quota.threshold");
    thresholds.sort_by_key(|e| e["id"].as_str().unwrap().to_owned());
    let percents: Vec<i64> = thresholds
        .iter()
        .map(|e| e["body"]["data"]["percent"].as_i64().unwrap())
        .collect();
    assert_eq!(percents, [80, 100], "{thresholds:#?}");
    let data = &thresholds[1]["body"]["data"];
    assert_eq!(
        (data["user_id"].as_str(), data["limit"].as_i64()),
        (Some("acme"), Some(20))
    );
    assert!(data["used"].as_i64().unwrap() >= 20, "{data}");
    assert_eq!(
        data["period"],
        chrono::Utc::now().format("%Y-%m").to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_is_announced_once_however_often_it_is_reported() {
    let receiver = Receiver::start(&[]);
    let scanner = crate::leaks::Scanner::new("gh");
    let keys_file = scanner.keys_file.path().to_str().unwrap().to_owned();
    let server = TestServer::start_with(
        &[SCALE[0], SCALE[1], "--github-public-keys", &keys_file],
        &[],
    )
    .await;
    register(&server, &receiver, json!(["key.leaked", "key.revoked"])).await;
    let (key, object) = server
        .create_key(json!({"user_id": "acme", "name": "leaky"}))
        .await;
    let report =
        json!([{"token": key, "type": "t", "url": "https://github.com/o/r", "source": "content"}])
            .to_string();
    for _ in 0..2 {
        let answered = scanner
            .report(
                &server,
                "gh",
                report.as_bytes(),
                &scanner.sign(report.as_bytes()),
            )
            .await;
        assert_eq!(answered.status, 200, "{}", answered.text);
    }
    eventually(Duration::from_secs(10), || async {
        !receiver.accepted("key.leaked").is_empty() && !receiver.accepted("key.revoked").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leaked = receiver.accepted("key.leaked");
    assert_eq!(leaked.len(), 1, "{leaked:#?}");
    let data = &leaked[0]["body"]["data"];
    assert_eq!(data["key"]["id"], object["id"]);
    assert_eq!(data["key"]["status"], "revoked");
    assert_eq!(
        (
            data["url"].as_str(),
            data["source"].as_str(),
            data["action"].as_str()
        ),
        (
            Some("https://github.com/o/r"),
            Some("content"),
            Some("revoked")
        )
    );
    assert_eq!(receiver.accepted("key.revoked").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metered_usage_reaches_event_webhooks_too() {
    use sqlx::Connection;
    let receiver = Receiver::start(&[]);
    // Usage, and the endpoint, on a node without billing sinks.
    let mut first = TestServer::start().await;
    register(&first, &receiver, json!(["usage.metered"])).await;
    let (key, _) = first
        .create_key(json!({"user_id": "metered", "name": "k"}))
        .await;
    for _ in 0..5 {
        assert_eq!(first.verify_code(&key).await, "VALID");
    }
    let (status, _) = first.stop();
    assert!(status.success());
    // That usage three hours back, so its hour has closed and can be metered.
    let database = first.database_url();
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    sqlx::query("UPDATE usage_rollups SET hour = strftime('%Y-%m-%dT%H:%M:%fZ', hour, '-3 hours')")
        .execute(&mut db)
        .await
        .unwrap();
    // A node that meters for a billing sink (here one that never answers).
    let _second = TestServer::start_with(
        &[
            "--database-url",
            &database,
            "--billing-webhook-url",
            "http://127.0.0.1:9/billing",
            "--billing-webhook-secret",
            "a-billing-secret-for-the-test",
            "--billing-meter-delay-seconds",
            "0",
            "--billing-recheck-seconds",
            "1",
            SCALE[0],
            SCALE[1],
        ],
        &[],
    )
    .await;
    eventually(Duration::from_secs(20), || async {
        !receiver.accepted("usage.metered").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metered = receiver.accepted("usage.metered");
    assert_eq!(metered.len(), 1, "{metered:#?}");
    let data = &metered[0]["body"]["data"];
    assert_eq!(data["type"], "usage.metered");
    assert_eq!(data["user_id"], "metered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_into_a_denied_network_is_never_posted_to() {
    let receiver = Receiver::start(&[]);
    let server = TestServer::start_with(
        &[SCALE[0], SCALE[1], "--webhook-deny-network", "127.0.0.0/8"],
        &[],
    )
    .await;
    // An address in the denied network is refused at creation…
    server
        .admin_call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "events": ["*"]})),
        )
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    // …and a name is checked on the address it resolves to, at every attempt.
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let created = server
        .admin(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": by_name, "events": ["key.created"]})),
        )
        .await;
    receiver.trust(&[created.body["secret"].as_str().unwrap()]);
    let id = created.body["id"].as_str().unwrap();
    server
        .create_key(json!({"user_id": "acme", "name": "k"}))
        .await;
    eventually(Duration::from_secs(10), || async {
        let log = server
            .admin(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None)
            .await;
        log.body["deliveries"][0]["attempt"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    let log = server
        .admin(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert!(
        log.body["deliveries"][0]["response_status"].is_null(),
        "{}",
        log.text
    );
    assert!(receiver.log().is_empty(), "{:#?}", receiver.log());
}
