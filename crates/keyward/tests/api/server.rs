//! The server process: start-up, health, metrics, OpenAPI, graceful shutdown, and the
//! guarantee that no plaintext key reaches its logs or its database.

use std::process::Command;
use std::time::Duration;

use crate::support::{ADMIN_TOKEN, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_open() {
    let server = TestServer::spawn_app().await;
    let health = server.send(server.client.get(server.url("/healthz"))).await;
    assert_eq!(
        (health.status, health.body.clone()),
        (200, json!({"status": "ok"}))
    );
    let ready = server.send(server.client.get(server.url("/readyz"))).await;
    assert_eq!(
        (ready.status, ready.body.clone()),
        (200, json!({"status": "ok"}))
    );

    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    server.verify(json!({"key": key})).await;
    server.verify(json!({"key": "garbage"})).await;
    let metrics = server.send(server.client.get(server.url("/metrics"))).await;
    assert_eq!(metrics.status, 200);
    for expected in [
        "keyward_http_requests_total",
        "keyward_decisions_total{code=\"VALID\"}",
        "keyward_decisions_total{code=\"INVALID\"}",
        "keyward_decision_seconds",
        "keyward_key_cache_total",
    ] {
        assert!(
            metrics.text.contains(expected),
            "{expected} missing from /metrics"
        );
    }
    assert!(!metrics.text.contains(&key));

    let openapi = server
        .send(server.client.get(server.url("/openapi.json")))
        .await;
    assert_eq!(openapi.body["openapi"], "3.1.0");
    let paths = openapi.body["paths"].as_object().unwrap();
    for path in [
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/keys/{id}/rotate",
        "/v1/users",
        "/v1/users/{user_id}",
        "/v1/users/{user_id}/revoke-keys",
        "/v1/plans",
        "/v1/plans/{name}",
        "/v1/verify",
        "/v1/authorize",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
}

#[tokio::test]
async fn every_documented_metric_is_on_the_first_scrape() {
    // Its own process: the in-process servers of other tests share one recorder.
    let server = TestServer::start_with(
        &[
            "--billing-webhook-url",
            "http://127.0.0.1:9/billing",
            "--billing-webhook-secret",
            "a-billing-secret",
        ],
        &[],
    )
    .await;
    let operations = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../documentation/operations.md"
    ))
    .unwrap();
    let start = operations.find("- `GET /metrics`").unwrap();
    let end = start + operations[start..].find("- `GET /openapi.json`").unwrap();
    let documented: Vec<&str> = operations[start..end]
        .split('`')
        .filter_map(|part| part.split('{').next())
        .filter(|name| name.starts_with("keyward_"))
        .collect();
    assert!(documented.len() >= 9, "{documented:?}");
    let metrics = server.send(server.client.get(server.url("/metrics"))).await;
    for name in documented {
        assert!(
            metrics
                .text
                .lines()
                .any(|line| line.starts_with(name) && line.ends_with(" 0")),
            "{name} is not on the first scrape at 0:\n{}",
            metrics.text
        );
    }
    assert!(
        metrics
            .text
            .contains("keyward_billing_deliveries_total{sink=\"webhook\",result=\"dead\"} 0")
    );
    assert!(metrics.text.contains(
        "keyward_http_requests_total{route=\"/v1/verify\",method=\"POST\",status=\"200\"} 0"
    ));
}

/// Undoes HTML's escaping of text, enough to compare a page's text with plain strings.
fn html_text(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_api_reference_renders_in_a_real_browser_from_this_server_alone() {
    let server = TestServer::spawn_app().await;
    let page = server.send(server.client.get(server.url("/docs"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'self';"),
        "{policy}"
    );
    assert!(
        !page.text.contains("://"),
        "the page names another origin: {}",
        page.text
    );
    let script = server
        .send(server.client.get(server.url("/docs/redoc.standalone.js")))
        .await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.text.len() > 500_000, "{} bytes", script.text.len());

    // Chromium renders the page under its policy (which forbids every other origin): every
    // operation's summary of /openapi.json must be on the page it draws.
    let document = server
        .send(server.client.get(server.url("/openapi.json")))
        .await
        .body;
    let summaries: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["summary"].as_str().map(str::to_owned))
        .collect();
    assert!(summaries.len() > 20, "{summaries:?}");
    let profile = tempfile::tempdir().unwrap();
    // The server runs on threads of its own: blocking this one waits for the browser only.
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(server.url("/docs"))
        .output()
        .expect("chromium is installed (scripts/test.sh installs it)");
    let dom = html_text(&String::from_utf8_lossy(&output.stdout));
    for summary in &summaries {
        assert!(
            dom.contains(summary.as_str()),
            "the rendered reference lacks `{summary}` ({} bytes of DOM; stderr: {})",
            dom.len(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_flushes_usage() {
    let mut server = TestServer::start().await;
    let (key, object) = server
        .create_key(json!({"user_id": "u", "name": "k", "scopes": ["read"]}))
        .await;
    for _ in 0..5 {
        assert_eq!(server.verify_code(&key).await, "VALID");
    }
    let rejected = server
        .verify(json!({"key": key, "required_scopes": ["x"]}))
        .await;
    assert_eq!(
        rejected.body["code"], "INSUFFICIENT_SCOPE",
        "not counted as a request"
    );
    let (status, _) = server.stop();
    assert_eq!(status.code(), Some(0));
    let shown = server.cli(&["--json", "keys", "show", object["id"].as_str().unwrap()]);
    assert!(shown.status.success(), "{shown:?}");
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown["request_count"], 5,
        "admitted checks, written on shutdown"
    );
    assert!(shown["last_used_at"].is_string());
}

#[tokio::test]
async fn usage_bookkeeping_is_written_in_the_background() {
    let server = TestServer::spawn_app().await;
    let (key, object) = server
        .create_key(json!({"user_id": "u", "name": "k"}))
        .await;
    for _ in 0..3 {
        server
            .send(
                server
                    .client
                    .get(server.url("/v1/authorize"))
                    .bearer_auth(&key),
            )
            .await;
    }
    let id = object["id"].as_str().unwrap().to_owned();
    crate::support::eventually(Duration::from_secs(3), || async {
        server
            .admin(Method::GET, &format!("/v1/keys/{id}"), None)
            .await
            .body["request_count"]
            == 3
    })
    .await;
}

#[test]
fn a_short_admin_token_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .env(
            "KEYWARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("k.db").display()),
        )
        .env("KEYWARD_ADMIN_TOKEN", "too-short")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEYWARD_ADMIN_TOKEN"));
    assert!(output.stdout.is_empty(), "never started listening");
}

#[tokio::test]
async fn a_generated_admin_token_is_printed_once_and_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut server = TestServer::start_in(dir, &[], &[("KEYWARD_ADMIN_TOKEN", "")]).await;
    let (_, first_log) = {
        // The token line is on stderr (the log file) at start.
        let log = std::fs::read_to_string(server.log_path()).unwrap();
        ((), log)
    };
    let token = first_log
        .split_whitespace()
        .find(|w| w.starts_with("kwadm_"))
        .expect("a generated token is printed")
        .to_owned();
    let listed = server
        .send(
            server
                .client
                .get(server.url("/v1/users"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(listed.status, 200);
    server
        .send(
            server
                .client
                .get(server.url("/v1/users"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await
        .assert_problem(401, "UNAUTHORIZED");
    server.stop();
    let bytes = std::fs::read(path.join("keyward.db")).unwrap();
    assert!(
        !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
        "only its hash is stored"
    );
}

/// A session that handles keys every way — made by the admin, by self-service and by the
/// CLI; verified in a body, a header, a query string and a forwarded URI; rotated, revoked,
/// tampered with, pasted into paths and broken bodies — then a graceful stop. Returns every
/// plaintext made and everything the server printed (at trace level).
async fn key_session(server: &mut TestServer, database_url: &str) -> (Vec<String>, String) {
    let mut keys = Vec::new();
    let (key, object) = server
        .create_key(json!({"user_id": "alice", "name": "a", "scopes": ["keys:manage", "read"]}))
        .await;
    keys.push(key.clone());
    let id = object["id"].as_str().unwrap().to_owned();
    server
        .verify(json!({"key": key, "required_scopes": ["read"]}))
        .await;
    server
        .verify(json!({"key": key, "required_scopes": ["write"]}))
        .await;
    server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/authorize?api_key={key}"))),
        )
        .await;
    server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .header("X-API-Key", &key),
        )
        .await;
    server
        .send(
            server
                .client
                .get(server.url("/v1/authorize"))
                .header("X-Original-URI", format!("/x?api_key={key}")),
        )
        .await;
    let own = server
        .as_key(
            &key,
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "self-made", "scopes": ["read"]})),
        )
        .await;
    keys.push(own.body["key"].as_str().unwrap().to_owned());
    let rotated = server
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_period_seconds": 60})),
        )
        .await;
    let new_key = rotated.body["key"]["key"].as_str().unwrap().to_owned();
    keys.push(new_key.clone());
    server.verify(json!({"key": new_key})).await;
    let mut tampered = new_key.clone();
    tampered.pop();
    tampered.push('Z');
    server.verify(json!({"key": tampered})).await;
    server
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    server.verify(json!({"key": key})).await;
    let cli = server.cli(&[
        "--database-url",
        database_url,
        "--json",
        "keys",
        "create",
        "--user-id",
        "bob",
        "--name",
        "cli",
    ]);
    assert!(cli.status.success(), "{cli:?}");
    let cli_key: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let cli_key = cli_key["key"].as_str().unwrap().to_owned();
    keys.push(cli_key.clone());
    // A key made by the CLI is known to the server at once (an unknown key is looked up).
    assert_eq!(server.verify_code(&cli_key).await, "VALID");
    server
        .send(
            server
                .client
                .post(server.url("/v1/verify"))
                .header("content-type", "application/json")
                .body(format!("{{\"key\": \"{cli_key}\", \"oops\": 1}}")),
        )
        .await;
    server
        .send(
            server
                .client
                .post(server.url("/v1/verify"))
                .header("content-type", "application/json")
                .body(format!("{{\"key\": \"{cli_key}\"")),
        )
        .await;

    // A key pasted into an unknown path, a revoked one in a management call, an unknown
    // method: the raw path must never become a span field or a log line.
    server
        .send(server.client.get(server.url(&format!("/{cli_key}/oops"))))
        .await;
    server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/keys/{cli_key}")))
                .bearer_auth(&cli_key),
        )
        .await;
    server
        .send(server.client.request(
            Method::from_bytes(b"PURGE").unwrap(),
            server.url(&format!("/x/{cli_key}")),
        ))
        .await;

    let (status, output) = server.stop();
    assert_eq!(status.code(), Some(0));
    assert!(
        output.contains("request"),
        "the log was captured at trace level"
    );
    (keys, output)
}

/// No key body (nor its first 16 characters) in `printed` or in `stored`.
fn assert_no_plaintext(keys: &[String], printed: &str, stored: &[u8]) {
    assert_eq!(keys.len(), 4, "the session made four keys");
    for key in keys {
        let body = &key[key.rfind('_').unwrap() + 1..];
        assert!(
            !printed.contains(body) && !printed.contains(&body[..16]),
            "a key body reached the log"
        );
        assert!(
            !stored.windows(16).any(|w| w == &body.as_bytes()[..16]),
            "a key body reached the database"
        );
    }
}

/// Everything a server printed in a full session, and its SQLite files (WAL included),
/// hold no plaintext key.
#[tokio::test]
async fn no_plaintext_key_reaches_the_logs_or_the_sqlite_database() {
    let mut server = TestServer::start_with(&["--allow-query-key"], &[("RUST_LOG", "trace")]).await;
    let database_url = server.database_url();
    let (keys, output) = key_session(&mut server, &database_url).await;
    let mut database = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(server.dir.path().join(format!("keyward.db{suffix}"))) {
            database.extend(bytes);
        }
    }
    assert!(!database.is_empty());
    assert_no_plaintext(&keys, &output, &database);
}

/// The same session on PostgreSQL: the server's output and every row of every table
/// (read back as text) hold no plaintext key.
#[tokio::test]
async fn no_plaintext_key_reaches_the_logs_or_the_postgres_database() {
    use sqlx::Connection;
    let database_url = crate::support::postgres_database().await;
    let mut server = TestServer::start_with(
        &["--allow-query-key", "--database-url", &database_url],
        &[("RUST_LOG", "trace")],
    )
    .await;
    let (keys, output) = key_session(&mut server, &database_url).await;
    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "api_keys"), "{tables:?}");
    let mut contents = String::new();
    for table in &tables {
        let rows: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t"
        ))
        .fetch_one(&mut db)
        .await
        .unwrap();
        contents.push_str(&rows.unwrap_or_default());
        contents.push('\n');
    }
    assert!(contents.contains("alice") && contents.contains("key.rotate"));
    assert_no_plaintext(&keys, &output, contents.as_bytes());
}

/// The admin token comes from `KEYWARD_ADMIN_TOKEN` or from a file named by
/// `--admin-token-file`, `KEYWARD_ADMIN_TOKEN_FILE` or the config file's `admin_token_file`
/// (its first line) — never from a flag holding the token itself, and never from both.
#[tokio::test]
async fn the_admin_token_can_come_from_a_file_and_never_from_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let token = "file-admin-token-0123456789abcdefghijklmnop";
    let path = dir.path().join("admin-token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, format!("admin_token_file = {path:?}\n")).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let no_env = ("KEYWARD_ADMIN_TOKEN", "");
    /// Flags and environment naming the file.
    type Source<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let sources: [Source; 3] = [
        (vec!["--admin-token-file", &path], vec![no_env]),
        (vec![], vec![no_env, ("KEYWARD_ADMIN_TOKEN_FILE", &path)]),
        (vec![], vec![no_env, ("KEYWARD_CONFIG", &config)]),
    ];
    for (args, env) in sources {
        let server = TestServer::start_with(&args, &env).await;
        let listed = server
            .send(
                server
                    .client
                    .get(server.url("/v1/users"))
                    .bearer_auth(token),
            )
            .await;
        assert_eq!(listed.status, 200, "{args:?} {env:?}: {}", listed.text);
        let old = server
            .send(
                server
                    .client
                    .get(server.url("/v1/users"))
                    .bearer_auth(ADMIN_TOKEN),
            )
            .await;
        old.assert_problem(401, "UNAUTHORIZED");
    }

    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .current_dir(dir.path())
            .env_remove("KEYWARD_CONFIG")
            .env_remove("KEYWARD_ADMIN_TOKEN")
            .env(
                "KEYWARD_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("k.db").display()),
            )
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        command.output().expect("run keyward serve")
    };
    // Both sources at once: refused, naming both.
    let both = serve(
        &["--admin-token-file", &path],
        &[("KEYWARD_ADMIN_TOKEN", token)],
    );
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    // A flag with the token itself does not exist.
    let flag = serve(&["--admin-token", token], &[]);
    assert_eq!(flag.status.code(), Some(2), "{flag:?}");
    // A missing, empty or weak file stops the start, and says why.
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (file, says) in [
        (dir.path().join("absent"), "cannot read"),
        (empty, "is empty"),
        (short, "at least 32 characters"),
    ] {
        let output = serve(&["--admin-token-file", file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(output.stdout.is_empty(), "it never listened");
    }
}

/// At `info`, the start says what the node runs on (no secret), and a lockout by the
/// brute-force guard is a warning naming the address, never the key.
#[tokio::test]
async fn startup_and_lockouts_are_logged_at_info_and_warn() {
    let mut server =
        TestServer::start_with(&["--failure-limit", "3"], &[("RUST_LOG", "info")]).await;
    for attempt in 0..4 {
        let guess = format!("sk_live_guess{attempt}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        server.authorize(&guess).await;
    }
    let locked = server
        .authorize("sk_live_guessAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    // What moves only when something goes wrong is there from the start, at 0.
    let metrics = server.send(server.client.get(server.url("/metrics"))).await;
    for quiet in [
        "keyward_limiter_fallbacks_total 0",
        "keyward_usage_events_shed_total 0",
        "keyward_usage_write_failures_total 0",
    ] {
        assert!(metrics.text.contains(quiet), "{quiet}: {}", metrics.text);
    }
    let (status, log) = server.stop();
    assert!(status.success());
    let start = log
        .lines()
        .find(|line| line.contains("keyward is starting"))
        .unwrap_or_else(|| panic!("a start line: {log}"));
    for field in [
        "database=sqlite://",
        "limiter=in process",
        "admin_token=\"given",
        "address=127.0.0.1:",
    ] {
        assert!(start.contains(field), "{field} in {start}");
    }
    let lockout = log
        .lines()
        .find(|line| line.contains("too many failed key checks"))
        .unwrap_or_else(|| panic!("a lockout warning: {log}"));
    assert!(
        lockout.contains("WARN") && lockout.contains("127.0.0.1"),
        "{lockout}"
    );
    assert!(!log.contains("sk_live_guess"), "no guessed key in the log");
}
