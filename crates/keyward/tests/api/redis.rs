//! Rate limits shared through Redis by several `keyward serve` processes, and what happens
//! when Redis goes away. Each test runs its own throwaway Redis (`redis-server` is
//! installed by scripts/test.sh).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestServer, eventually, free_port};
use reqwest::Method;
use serde_json::json;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two `keyward serve` nodes on one database and one Redis, a user on `plan` (created from
/// `plan_body`) and a key of it that both nodes know. The directory keeps the database.
async fn two_nodes(
    redis: &Redis,
    plan: &str,
    plan_body: serde_json::Value,
) -> (tempfile::TempDir, TestServer, TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("shared.db").display());
    let redis_url = redis.url();
    let args = [
        "--database-url",
        database.as_str(),
        "--redis-url",
        redis_url.as_str(),
    ];
    let a = TestServer::start_with(&args, &[]).await;
    let b = TestServer::start_with(&args, &[]).await;
    let put = a
        .admin(Method::PUT, &format!("/v1/plans/{plan}"), Some(plan_body))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    a.admin(
        Method::POST,
        "/v1/users",
        Some(json!({"user_id": "u", "plan": plan})),
    )
    .await;
    let (key, _) = a.create_key(json!({"user_id": "u", "name": "k"})).await;
    eventually(Duration::from_secs(1), || async {
        b.verify_code(&key).await != "INVALID"
    })
    .await;
    (dir, a, b, key)
}

#[tokio::test]
async fn two_nodes_sharing_redis_admit_no_more_than_one_would() {
    let redis = Redis::start();
    let (_dir, a, b, key) = two_nodes(
        &redis,
        "shared",
        json!({"limits": [{"window_seconds": 60, "max": 25}]}),
    )
    .await;

    let mut admitted = 0;
    for i in 0..80 {
        let node = if i % 2 == 0 { &a } else { &b };
        let response = node
            .send(node.client.get(node.url("/v1/authorize")).bearer_auth(&key))
            .await;
        match response.status {
            200 => admitted += 1,
            429 => assert_eq!(response.code(), "RATE_LIMITED"),
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    // Exactly one probe of the setup was admitted (on b, the check that first found the key;
    // INVALID answers consume nothing), so exactly 24 more fit.
    assert_eq!(admitted, 24, "{admitted} admitted through two nodes");
    assert_eq!(a.verify_code(&key).await, "RATE_LIMITED");
    assert_eq!(b.verify_code(&key).await, "RATE_LIMITED");
}

#[tokio::test]
async fn local_mode_survives_a_redis_outage_and_closed_mode_answers_503() {
    let mut redis = Redis::start();
    let port = redis.port;
    let local = TestServer::start_with(&["--redis-url", &redis.url()], &[]).await;
    let closed = TestServer::start_with(
        &[
            "--redis-url",
            &redis.url(),
            "--redis-failure-mode",
            "closed",
        ],
        &[],
    )
    .await;
    let (key, _) = local
        .create_key(json!({"user_id": "u", "name": "k", "plan": "enterprise"}))
        .await;
    let (closed_key, _) = closed
        .create_key(json!({"user_id": "u", "name": "k", "plan": "enterprise"}))
        .await;
    assert_eq!(local.verify_code(&key).await, "VALID");
    assert_eq!(
        local
            .send(local.client.get(local.url("/readyz")))
            .await
            .body["status"],
        "ok"
    );

    redis.stop();
    for _ in 0..5 {
        let response = local
            .send(
                local
                    .client
                    .get(local.url("/v1/authorize"))
                    .bearer_auth(&key),
            )
            .await;
        assert_eq!(
            response.status, 200,
            "local mode keeps answering: {}",
            response.text
        );
    }
    let ready = local.send(local.client.get(local.url("/readyz"))).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["status"], "degraded");
    let reason = ready.body["reasons"][0].as_str().unwrap();
    assert!(reason.contains("redis"), "{reason}");
    assert!(
        reason.contains("quota") && reason.contains("N times"),
        "the reason states what local mode gives up: {reason}"
    );
    let refused = closed
        .send(
            closed
                .client
                .get(closed.url("/v1/authorize"))
                .bearer_auth(&closed_key),
        )
        .await;
    refused.assert_problem(503, "UNAVAILABLE");

    let _back = Redis::start_on(port);
    eventually(Duration::from_secs(10), || async {
        local.verify_code(&key).await == "VALID"
            && local
                .send(local.client.get(local.url("/readyz")))
                .await
                .body["status"]
                == "ok"
    })
    .await;
}

/// A node whose Redis is down when it starts still starts: the failure mode applies until
/// Redis answers, and then limits are shared without a restart.
#[tokio::test]
async fn a_node_starts_while_redis_is_down_and_joins_it_when_it_is_back() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let local = TestServer::start_with(&["--redis-url", &url], &[]).await;
    let open =
        TestServer::start_with(&["--redis-url", &url, "--redis-failure-mode", "open"], &[]).await;
    let closed = TestServer::start_with(
        &["--redis-url", &url, "--redis-failure-mode", "closed"],
        &[],
    )
    .await;
    for server in [&local, &open, &closed] {
        let ready = server.send(server.client.get(server.url("/readyz"))).await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        assert_eq!(ready.body["status"], "degraded", "{}", ready.text);
    }
    let plan = json!({"limits": [{"window_seconds": 60, "max": 2}]});
    let mut keys = Vec::new();
    for server in [&local, &open, &closed] {
        let put = server
            .admin(Method::PUT, "/v1/plans/two", Some(plan.clone()))
            .await;
        assert_eq!(put.status, 200, "{}", put.text);
        let (key, _) = server
            .create_key(json!({"user_id": "u", "name": "k", "plan": "two"}))
            .await;
        keys.push(key);
    }
    // local: this node's own limits; open: admitted; closed: 503.
    let statuses = [
        local.authorize(&keys[0]).await.status,
        local.authorize(&keys[0]).await.status,
        local.authorize(&keys[0]).await.status,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    for _ in 0..3 {
        assert_eq!(open.authorize(&keys[1]).await.status, 200);
    }
    closed
        .authorize(&keys[2])
        .await
        .assert_problem(503, "UNAVAILABLE");

    let _redis = Redis::start_on(port);
    eventually(Duration::from_secs(10), || async {
        closed
            .send(closed.client.get(closed.url("/readyz")))
            .await
            .body["status"]
            == "ok"
    })
    .await;
    // Redis answers now: the closed node checks through it.
    let statuses = [
        closed.authorize(&keys[2]).await.status,
        closed.authorize(&keys[2]).await.status,
        closed.authorize(&keys[2]).await.status,
    ];
    assert_eq!(statuses, [200, 200, 429]);
}

/// `INFO commandstats` of a Redis, as command → calls.
fn command_stats(url: &str) -> std::collections::HashMap<String, u64> {
    let port = url.rsplit(':').next().unwrap();
    let output = Command::new("redis-cli")
        .args(["-p", port, "INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[tokio::test]
async fn each_check_is_one_evalsha_and_nothing_else() {
    let redis = Redis::start();
    let server = TestServer::start_with(&["--redis-url", &redis.url()], &[]).await;
    let (key, _) = server
        .create_key(json!({"user_id": "u", "name": "k", "plan": "enterprise"}))
        .await;
    assert_eq!(
        server.verify_code(&key).await,
        "VALID",
        "warm: the script is loaded"
    );
    let before = command_stats(&redis.url());
    let started = Instant::now();
    for _ in 0..1000 {
        let response = server
            .send(
                server
                    .client
                    .get(server.url("/v1/authorize"))
                    .bearer_auth(&key),
            )
            .await;
        assert_eq!(response.status, 200);
    }
    let after = command_stats(&redis.url());
    let elapsed = started.elapsed().as_secs();
    let grown =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    assert_eq!(grown("evalsha"), 1000, "one EVALSHA per check");
    // The readiness probe pings once a second, whatever the traffic: not per check.
    assert!(
        grown("ping") <= elapsed + 2,
        "{} pings in {elapsed} s",
        grown("ping")
    );
    // Commands the script runs are counted too; they are the script's own work, not round trips.
    let script_commands = [
        "evalsha", "get", "set", "hmget", "hincrby", "hset", "time", "info",
    ];
    for (name, calls) in &after {
        if !script_commands.contains(&name.as_str()) && name != "ping" {
            let before_calls = before.get(name).copied().unwrap_or(0);
            assert_eq!(*calls, before_calls, "`{name}` ran outside the script");
        }
    }
}

#[tokio::test]
async fn two_nodes_share_the_monthly_quota_and_it_is_rebuilt_when_redis_loses_it() {
    crate::support::clear_of_hour_boundary().await;
    let redis = Redis::start();
    let plan = json!({"limits": [{"window_seconds": 60, "max": 1000}], "monthly_quota": 10});
    let (_dir, a, b, key) = two_nodes(&redis, "metered", plan).await;

    let mut admitted = 0;
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        match node.verify_code(&key).await.as_str() {
            "VALID" => admitted += 1,
            "QUOTA_EXCEEDED" => {}
            other => panic!("unexpected {other}"),
        }
    }
    // The setup's one admitted probe on b counted as well: exactly 9 more fit.
    assert_eq!(
        admitted, 9,
        "{admitted} admitted through two nodes against a quota of 10"
    );

    // Redis loses everything at once, before the nodes wrote what they admitted: the
    // figure is rebuilt from stored usage and what each node knows it admitted.
    let port = redis.port.to_string();
    let flushed = Command::new("redis-cli")
        .args(["-p", &port, "FLUSHALL"])
        .output()
        .unwrap();
    assert!(flushed.status.success());
    assert_eq!(
        a.verify_code(&key).await,
        "QUOTA_EXCEEDED",
        "rebuilt from stored usage"
    );
    assert_eq!(b.verify_code(&key).await, "QUOTA_EXCEEDED");
}

/// Runs `redis-cli FLUSHALL` on the Redis at `port`.
fn flush_all(port: u16) {
    let flushed = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "FLUSHALL"])
        .output()
        .expect("redis-cli");
    assert!(flushed.status.success(), "FLUSHALL failed: {flushed:?}");
}

/// Three nodes under load lose their Redis twice (FLUSHALL at 100 and at 200 admitted, with
/// units admitted and not written yet on every node): the quota of 300 is still admitted
/// exactly — the rebuilt figure counts the stored units and each node's unwritten ones,
/// none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_admit_exactly_the_quota_when_redis_loses_it_under_load() {
    crate::support::clear_of_hour_boundary().await;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("shared.db").display());
    let redis_url = redis.url();
    let args = [
        "--database-url",
        database.as_str(),
        "--redis-url",
        redis_url.as_str(),
    ];
    let nodes = Arc::new([
        TestServer::start_with(&args, &[]).await,
        TestServer::start_with(&args, &[]).await,
        TestServer::start_with(&args, &[]).await,
    ]);
    let plan = json!({"limits": [{"window_seconds": 60, "max": 100000}], "monthly_quota": 300});
    let put = nodes[0]
        .admin(Method::PUT, "/v1/plans/metered", Some(plan))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let user = nodes[0]
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": "u", "plan": "metered"})),
        )
        .await;
    assert_eq!(user.status, 201, "{}", user.text);
    let (key, _) = nodes[0]
        .create_key(json!({"user_id": "u", "name": "k", "environment": "live"}))
        .await;

    let admitted = Arc::new(AtomicU64::new(0));
    let flushes = Arc::new(AtomicU64::new(0));
    let port = redis.port;
    let mut workers = Vec::new();
    for worker in 0..6usize {
        let (nodes, key) = (nodes.clone(), key.clone());
        let (admitted, flushes) = (admitted.clone(), flushes.clone());
        workers.push(tokio::spawn(async move {
            let mut exceeded = 0;
            let mut round = worker;
            while exceeded < 10 {
                let node = &nodes[round % 3];
                round += 1;
                match node.verify_code(&key).await.as_str() {
                    "VALID" => {
                        let now = admitted.fetch_add(1, Ordering::SeqCst) + 1;
                        // Whoever admits the 100th and the 200th unit empties Redis.
                        if now == 100 || now == 200 {
                            flush_all(port);
                            flushes.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    "QUOTA_EXCEEDED" => exceeded += 1,
                    other => panic!("unexpected {other}"),
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(flushes.load(Ordering::SeqCst), 2, "Redis was emptied twice");
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        300,
        "exactly the quota, across three nodes and two losses of Redis"
    );
}

/// Two nodes sharing limits through a Redis Cluster of three masters admit exactly the
/// window's maximum, for users whose keys live on different masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_exact_limits_through_a_redis_cluster() {
    let cluster = crate::support::redis_cluster_url();
    let database = crate::support::postgres_database().await;
    let args = [
        "--database-url",
        database.as_str(),
        "--redis-url",
        cluster.as_str(),
    ];
    let nodes = [
        TestServer::start_with(&args, &[]).await,
        TestServer::start_with(&args, &[]).await,
    ];
    nodes[0]
        .admin(
            Method::PUT,
            "/v1/plans/five",
            Some(json!({"limits": [{"window_seconds": 60, "max": 5}]})),
        )
        .await;
    let ready = nodes[1]
        .send(nodes[1].client.get(nodes[1].url("/readyz")))
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    // Users whose hash tags land in different slots, so on different masters.
    for user in ["alice", "bob", "carol", "dave"] {
        let (key, _) = nodes[0]
            .create_key(json!({"user_id": user, "name": "k", "plan": "five"}))
            .await;
        let mut admitted = 0;
        for attempt in 0..8 {
            let node = &nodes[attempt % 2];
            if node.authorize(&key).await.status == 200 {
                admitted += 1;
            }
        }
        assert_eq!(
            admitted, 5,
            "{user}: 8 checks over two nodes against a window of 5"
        );
    }
}

/// A Redis Cluster of this test's own: three masters with a replica each, on ports below
/// 55536 (a cluster node also listens on its port + 10000). Stopped on drop.
struct PrivateCluster {
    nodes: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut candidate = 20_000 + (std::process::id() % 20_000) as u16;
        while nodes.len() < 6 {
            candidate += 1;
            let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
            if !free(candidate) || !free(candidate + 10_000) {
                continue;
            }
            let child = Command::new("redis-server")
                .args(["--port", &candidate.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                ])
                .args([
                    "--cluster-node-timeout",
                    "1000",
                    "--repl-diskless-sync-delay",
                    "0",
                ])
                .arg("--cluster-config-file")
                .arg(dir.path().join(format!("nodes-{candidate}.conf")))
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/test.sh installs it)");
            nodes.push((candidate, child));
        }
        let cluster = Self { nodes, _dir: dir };
        for (port, _) in &cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|(port, _)| format!("127.0.0.1:{port}")),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(created.status.success(), "{created:?}");
        cluster
    }

    fn cli(port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|(port, _)| *port)
            .filter(|port| Self::cli(*port, &["role"]).starts_with("master"))
            .collect()
    }

    /// Every running node sees the cluster as ok, there are three masters, and every
    /// replica has synced with its master (a replica that never did cannot take over).
    fn healthy(&self) -> bool {
        self.nodes.iter().all(|(port, _)| {
            !Self::cli(*port, &["ping"]).contains("PONG")
                || (Self::cli(*port, &["cluster", "info"]).contains("cluster_state:ok")
                    && (Self::cli(*port, &["role"]).starts_with("master")
                        || Self::cli(*port, &["info", "replication"])
                            .contains("master_link_status:up")))
        }) && self.masters().len() == 3
    }

    fn kill(&mut self, port: u16) {
        if let Some((_, child)) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The master holding a key's limit state is killed: its replica takes over. Meanwhile no
/// check fails with a 5xx (in `local` mode the node limits in process), and afterwards the
/// node counts in the cluster again, on the promoted replica.
#[tokio::test]
async fn a_cluster_master_failover_serves_every_check_and_then_uses_the_new_master() {
    let mut cluster = PrivateCluster::start();
    eventually(Duration::from_secs(20), || async { cluster.healthy() }).await;
    let masters = cluster.masters();
    let url = format!(
        "redis+cluster://{}",
        masters
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("failover.db").display());
    let node =
        TestServer::start_with(&["--database-url", &database, "--redis-url", &url], &[]).await;
    node.admin(
        Method::PUT,
        "/v1/plans/roomy",
        Some(json!({"limits": [{"window_seconds": 60, "max": 100000}]})),
    )
    .await;
    let (key, _) = node
        .create_key(json!({"user_id": "failover", "name": "k", "plan": "roomy"}))
        .await;
    assert_eq!(node.authorize(&key).await.status, 200);
    let owner = masters
        .iter()
        .copied()
        .find(|port| PrivateCluster::cli(*port, &["dbsize"]).trim() != "0")
        .expect("one master holds the key's state");

    cluster.kill(owner);
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let answer = node.authorize(&key).await;
        assert_eq!(
            answer.status, 200,
            "check {checks} after the kill: {}",
            answer.text
        );
        checks += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(checks > 50, "the node kept answering: {checks} checks");

    // The replica was promoted: the node's checks reach the cluster again.
    eventually(Duration::from_secs(20), || async {
        let promoted = cluster.masters();
        let counted = promoted.iter().any(|port| {
            *port != owner && !masters.contains(port) && {
                let before = PrivateCluster::cli(*port, &["info", "commandstats"]);
                before.contains("cmdstat_evalsha")
            }
        });
        let answer = node.authorize(&key).await;
        let ready = node.send(node.client.get(node.url("/readyz"))).await;
        answer.status == 200 && counted && ready.body["status"] == "ok"
    })
    .await;
}
