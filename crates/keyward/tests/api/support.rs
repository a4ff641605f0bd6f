//! A keyward server on a free loopback port with its own SQLite database, driven over HTTP
//! like any client would: in this test process (`TestServer::spawn_app`, the default for
//! suites that need nothing of a process), or as a real `keyward serve` process
//! (`TestServer::start…`) for flags, environment, logs, signals, crashes and restarts.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijkl";

pub struct TestServer {
    child: Option<Child>,
    app: Option<InProcess>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stdout_rest: Option<std::thread::JoinHandle<String>>,
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"].is_string()
                && self.body["title"].is_string()
                && self.body["detail"].is_string()
        );
        if status == 401 {
            assert_eq!(
                self.header("www-authenticate"),
                Some("Bearer realm=\"keyward\"")
            );
        }
        if status == 429 {
            let retry: u64 = self
                .header("retry-after")
                .expect("Retry-After on 429")
                .parse()
                .unwrap();
            assert!(retry >= 1);
        }
    }
}

/// A server running in this test process, on a runtime (and threads) of its own, so a test
/// that blocks its own thread (the CLI, a sleep) cannot stall it.
struct InProcess {
    id: u64,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Panics on an in-process server's threads, by server: a handler's panic is answered 503
/// (which a test could take for an outage), so the test fails instead.
static APP_PANICS: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
const APP_THREAD: &str = "keyward-app-";

fn record_app_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // In-process servers log through the test's own output (shown for a failing test
        // only), warnings and errors only; the first subscriber installed is kept.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if let Some(id) = thread
                .name()
                .and_then(|name| name.strip_prefix(APP_THREAD))
                .and_then(|id| id.parse().ok())
            {
                APP_PANICS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((id, info.to_string()));
            }
            previous(info);
        }));
    });
}

impl TestServer {
    /// keyward in this process, with the settings `keyward serve` has without flags (the
    /// admin token, SQLite in a temporary directory, port 0).
    pub async fn spawn_app() -> Self {
        Self::spawn_app_with(|_| {}).await
    }

    /// [`TestServer::spawn_app`] with settings changed by `configure` — also values the
    /// command line would refuse, such as a one-second portal link.
    pub async fn spawn_app_with(configure: impl FnOnce(&mut keyward_server::ServerConfig)) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        record_app_panics();
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = keyward_server::ServerConfig {
            listen: "127.0.0.1:0".to_owned(),
            database_url: format!("sqlite://{}", dir.path().join("keyward.db").display()),
            admin_token: Some(zeroize::Zeroizing::new(ADMIN_TOKEN.to_owned())),
            ..keyward_server::ServerConfig::default()
        };
        configure(&mut config);
        let (ready, address) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(format!("{APP_THREAD}{id}"))
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                match keyward_server::Application::build(config).await {
                    Ok(app) => {
                        let _ = ready.send(Ok(app.address()));
                        let _ = app
                            .run_until(async {
                                let _ = stopped.await;
                            })
                            .await;
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                    }
                }
            });
        });
        let address = address
            .await
            .expect("the server thread answers")
            .unwrap_or_else(|error| panic!("keyward did not start: {error}"));
        Self {
            child: None,
            app: Some(InProcess {
                id,
                stop: Some(stop),
                thread: Some(thread),
            }),
            base: format!("http://{address}"),
            dir,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            stdout_rest: None,
        }
    }

    /// Stops an in-process server: in-flight requests finish and usage is flushed.
    fn stop_in_process(&mut self) {
        let Some(mut app) = self.app.take() else {
            return;
        };
        if let Some(stop) = app.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = app.thread.take() {
            let _ = thread.join();
        }
        if std::thread::panicking() {
            return;
        }
        let panics: Vec<String> = APP_PANICS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(id, _)| *id == app.id)
            .map(|(_, message)| message.clone())
            .collect();
        assert!(
            panics.is_empty(),
            "the server panicked during the test: {panics:?}"
        );
    }

    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    pub async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, args, env).await
    }

    pub async fn start_in(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .current_dir(dir.path())
            .env_remove("KEYWARD_CONFIG")
            .env(
                "KEYWARD_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("keyward.db").display()),
            )
            .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "debug")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("server.log")).expect("log file"));
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn keyward serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .strip_prefix("keyward listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                )
            })
            .to_owned();
        let stdout_rest = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
            rest
        });
        Self {
            child: Some(child),
            app: None,
            base,
            dir,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            stdout_rest: Some(stdout_rest),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("keyward.db").display())
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status < 500 || status == 503, "a {status}: {text}");
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    /// An admin call that must succeed: anything but a 2xx fails the test here, so a
    /// broken setup step can never pass for the behaviour under test. Calls whose answer
    /// the test checks itself use [`TestServer::admin_call`].
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let response = self.admin_call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&response.status),
            "{method} {path} answered {}: {}",
            response.status,
            response.text
        );
        response
    }

    /// An admin call answered with any status, for the test to check.
    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn as_key(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Creates a key as the admin; returns (plaintext, key object).
    pub async fn create_key(&self, body: Value) -> (String, Value) {
        let response = self
            .admin(reqwest::Method::POST, "/v1/keys", Some(body))
            .await;
        assert_eq!(response.status, 201, "{}", response.text);
        (
            response.body["key"].as_str().unwrap().to_owned(),
            response.body,
        )
    }

    /// `GET /v1/authorize` with `key` as a Bearer credential.
    pub async fn authorize(&self, key: &str) -> Response {
        self.send(self.client.get(self.url("/v1/authorize")).bearer_auth(key))
            .await
    }

    pub async fn verify(&self, body: Value) -> Response {
        self.send(self.client.post(self.url("/v1/verify")).json(&body))
            .await
    }

    pub async fn verify_code(&self, key: &str) -> String {
        let response = self.verify(json!({"key": key})).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.body["code"].as_str().unwrap().to_owned()
    }

    /// Runs the CLI against this server's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .current_dir(self.dir.path())
            .env_remove("KEYWARD_CONFIG")
            .env("KEYWARD_DATABASE_URL", self.database_url())
            .args(args)
            .output()
            .expect("run keyward")
    }

    pub fn log_path(&self) -> PathBuf {
        assert!(
            self.app.is_none(),
            "log_path() needs a server process (start…)"
        );
        self.dir.path().join("server.log")
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the server process.
    pub fn signal(&self, name: &str) {
        let child = self
            .child
            .as_ref()
            .expect("signal() needs a server process (start…)");
        let sent = Command::new("kill")
            .args([format!("-{name}"), child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Kills the process at once (SIGKILL): nothing is flushed.
    pub fn kill(&mut self) {
        assert!(self.app.is_none(), "kill() needs a server process (start…)");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process; returns its status and everything it printed.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        assert!(self.app.is_none(), "stop() needs a server process (start…)");
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("keyward serve did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self
            .stdout_rest
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        (status, format!("{stdout}{log}"))
    }
}

impl Drop for TestServer {
    /// Stops the server, and fails the test if the server panicked at any point: a
    /// handler's panic is answered 503, which a test could otherwise take for an outage.
    fn drop(&mut self) {
        if self.app.is_some() {
            self.stop_in_process();
            return;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            return;
        }
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        if let Some(at) = log.find("panicked") {
            let start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let excerpt: String = log[start..].chars().take(2000).collect();
            panic!("the server panicked during the test:\n{excerpt}");
        }
    }
}

/// Waits, when the next UTC hour is less than a minute away, until it has begun. Usage is
/// counted per hour, day and month, so a test that compares counts must not straddle an
/// hour (midnight and a month's end are hours too).
pub async fn clear_of_hour_boundary() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_hour = now.as_secs() % 3600;
    if into_hour >= 3600 - 60 {
        let wait = Duration::from_secs(3600 - into_hour + 1);
        eprintln!("waiting {wait:?} for the next UTC hour to begin");
        tokio::time::sleep(wait).await;
    }
}

/// Polls `check` until it holds or `within` passes; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh, empty database on the test PostgreSQL server that scripts/test.sh starts
/// (`KEYWARD_TEST_DATABASE_URL`); panics without one — these tests never skip.
pub async fn postgres_database() -> String {
    use sqlx::{Connection, Executor};
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("KEYWARD_TEST_DATABASE_URL").expect(
        "KEYWARD_TEST_DATABASE_URL must name a PostgreSQL server (scripts/test.sh starts one)",
    );
    let name = format!(
        "kw_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test PostgreSQL server answers");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let (server, _) = admin.rsplit_once('/').expect("a URL with a database name");
    format!("{server}/{name}")
}

/// The test Redis that scripts/test.sh starts (`KEYWARD_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("KEYWARD_TEST_REDIS_URL")
        .expect("KEYWARD_TEST_REDIS_URL must name a Redis server (scripts/test.sh starts one)")
}

pub fn redis_cluster_url() -> String {
    std::env::var("KEYWARD_TEST_REDIS_CLUSTER_URL").expect(
        "KEYWARD_TEST_REDIS_CLUSTER_URL must name a Redis Cluster (scripts/test.sh starts one)",
    )
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL cluster of a test's own (scripts/postgres.sh), for tests that stop and
/// start the server. Stopped and deleted on drop.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn postgres_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = Self {
            dir,
            port: free_port(),
        };
        postgres.start_again();
        postgres
    }

    pub fn url(&self) -> String {
        format!("postgres://keyward@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server again on the same data and port.
    pub fn start_again(&self) {
        let status = Command::new("bash")
            .arg(postgres_script())
            .arg("start")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/postgres.sh");
        assert!(status.success(), "PostgreSQL did not start");
    }

    /// Stops the server at once (connections are cut; nothing is lost that was committed).
    pub fn stop(&self) {
        let status = Command::new("bash")
            .arg(postgres_script())
            .arg("stop")
            .arg(self.dir.path())
            .status()
            .expect("run scripts/postgres.sh");
        assert!(status.success(), "PostgreSQL did not stop");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(postgres_script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
        let log = format!("{}.initdb.log", self.dir.path().display());
        let _ = std::fs::remove_file(log);
    }
}
