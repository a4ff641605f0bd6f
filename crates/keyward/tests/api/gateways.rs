//! The shipped gateway configurations (deploy/nginx, deploy/caddy) run for real: nginx and
//! Caddy (Debian packages; scripts/test.sh installs them) in front of a tiny upstream that
//! echoes what it receives, each checking every request with keyward's /v1/authorize.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestServer, free_port};
use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};

/// An upstream API that answers every request with the X-Keyward-* headers it received.
async fn echo_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        axum::Json(json!({
            "key_id": get("x-keyward-key-id"),
            "user_id": get("x-keyward-user-id"),
            "plan": get("x-keyward-plan"),
        }))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// A gateway process, stopped on drop.
struct Gateway {
    child: Child,
    base: String,
    name: &'static str,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, name: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shipped file with its example addresses replaced by this test's.
fn shipped(path: &str, replacements: &[(&str, String)]) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let mut text = std::fs::read_to_string(&file).expect("the shipped configuration");
    for (from, to) in replacements {
        assert!(text.contains(from), "{path} no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn start_nginx(dir: &Path, keyward: &str, upstream: u16) -> Gateway {
    let port = free_port();
    let site = shipped(
        "deploy/nginx/keyward.conf",
        &[
            ("127.0.0.1:8080", keyward.to_owned()),
            ("127.0.0.1:9000", format!("127.0.0.1:{upstream}")),
            ("listen 8000;", format!("listen 127.0.0.1:{port};")),
        ],
    );
    std::fs::write(dir.join("keyward.conf"), site).unwrap();
    let d = dir.display();
    let user = if running_as_root() { "user root;" } else { "" };
    let main = format!(
        "{user}\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/keyward.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let log = dir.join("nginx.out");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("nginx is installed (scripts/test.sh installs it)");
    wait_for_port(port, "nginx", &dir.join("error.log"));
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "nginx",
    }
}

fn start_caddy(dir: &Path, keyward: &str, upstream: u16) -> Gateway {
    let port = free_port();
    let site = shipped(
        "deploy/caddy/Caddyfile",
        &[
            ("127.0.0.1:8080", keyward.to_owned()),
            ("127.0.0.1:9000", format!("127.0.0.1:{upstream}")),
            (":8001 {", format!("http://127.0.0.1:{port} {{")),
        ],
    );
    // No admin endpoint: several test runs may share the machine.
    std::fs::write(
        dir.join("Caddyfile"),
        format!("{{\n\tadmin off\n}}\n\n{site}"),
    )
    .unwrap();
    let log = dir.join("caddy.log");
    let child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("caddy is installed (scripts/test.sh installs it)");
    wait_for_port(port, "caddy", &log);
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "caddy",
    }
}

async fn get(client: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, HeaderMap, String) {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

async fn check_gateway(gateway: &Gateway, key: &str, key_id: &str) {
    let client = reqwest::Client::new();
    let url = format!("{}/orders?limit=5", gateway.base);
    let name = gateway.name;

    let (status, headers, body) = get(&client, &url, None).await;
    assert_eq!(status, 401, "{name}: no key: {body}");
    assert_eq!(
        headers.get_all("www-authenticate").iter().count(),
        1,
        "{name}: one challenge: {headers:?}"
    );
    let (status, _, body) = get(&client, &url, Some("sk_live_notakey")).await;
    assert_eq!(status, 401, "{name}: invalid key: {body}");

    // Admitted: the upstream sees who called, whatever the client claimed.
    let response = client
        .get(&url)
        .bearer_auth(key)
        .header("X-Keyward-User-Id", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{name}: valid key");
    assert_eq!(
        response.headers()["x-ratelimit-remaining"],
        "2",
        "{name}: the rate-limit headers reach the client"
    );
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["key_id"], key_id, "{name}: {echoed}");
    assert_eq!(echoed["user_id"], "gw-user", "{name}: {echoed}");
    assert_eq!(echoed["plan"], "gateway", "{name}: {echoed}");

    for _ in 0..2 {
        let (status, _, body) = get(&client, &url, Some(key)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, headers, body) = get(&client, &url, Some(key)).await;
    assert_eq!(status, 429, "{name}: exhausted: {body}");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    // At most the window plus one sub-bucket (60 s + 2.5 s).
    assert!((1..=63).contains(&retry), "{name}: Retry-After {retry}");
    assert_eq!(headers["x-ratelimit-remaining"], "0", "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_caddy_with_the_shipped_configurations() {
    let keyward = TestServer::start_with(&["--trusted-proxy", "127.0.0.1/32"], &[]).await;
    let put = keyward
        .admin(
            Method::PUT,
            "/v1/plans/gateway",
            Some(json!({"limits": [{"window_seconds": 60, "max": 3}]})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let mut keys = Vec::new();
    for name in ["nginx", "caddy"] {
        let (key, object) = keyward
            .create_key(json!({"user_id": "gw-user", "name": name, "plan": "gateway"}))
            .await;
        keys.push((key, object["id"].as_str().unwrap().to_owned()));
    }
    let upstream = echo_upstream().await;
    let address = keyward.base.trim_start_matches("http://").to_owned();

    let dir = tempfile::tempdir().unwrap();
    let nginx_dir = dir.path().join("nginx");
    let caddy_dir = dir.path().join("caddy");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    std::fs::create_dir_all(&caddy_dir).unwrap();
    let nginx = start_nginx(&nginx_dir, &address, upstream);
    let caddy = start_caddy(&caddy_dir, &address, upstream);

    check_gateway(&nginx, &keys[0].0, &keys[0].1).await;
    check_gateway(&caddy, &keys[1].0, &keys[1].1).await;
}
