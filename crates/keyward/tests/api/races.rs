//! Management calls that race: two requests released together on a barrier, on one node
//! and on two nodes sharing one PostgreSQL, each race tried many times. Whatever the order
//! the database serialises them in, the outcome must be one a serial order could give:
//! a key rotates at most once, a revoked key never gets a live successor, `max_keys` is
//! never exceeded, and a change to a key is never lost nor half-copied by its rotation.

use std::sync::Arc;

use crate::support::{Response, TestServer, postgres_database};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Barrier;

/// Tries of each race per topology.
const TRIES: usize = 24;

/// Where the racing requests go: one node, or two nodes on one database.
struct Topology {
    name: &'static str,
    nodes: Vec<Arc<TestServer>>,
}

impl Topology {
    async fn one_node_sqlite() -> Self {
        Self {
            name: "one node, SQLite",
            nodes: vec![Arc::new(TestServer::spawn_app().await)],
        }
    }

    async fn one_node_postgres() -> Self {
        let database = postgres_database().await;
        Self {
            name: "one node, PostgreSQL",
            nodes: vec![Arc::new(
                TestServer::start_with(&["--database-url", &database], &[]).await,
            )],
        }
    }

    async fn two_nodes_postgres() -> Self {
        let database = postgres_database().await;
        let args = ["--database-url", database.as_str()];
        Self {
            name: "two nodes, PostgreSQL",
            nodes: vec![
                Arc::new(TestServer::start_with(&args, &[]).await),
                Arc::new(TestServer::start_with(&args, &[]).await),
            ],
        }
    }

    async fn all() -> Vec<Self> {
        vec![
            Self::one_node_sqlite().await,
            Self::one_node_postgres().await,
            Self::two_nodes_postgres().await,
        ]
    }

    /// The node the `n`-th racer uses (alternating when there are two).
    fn node(&self, n: usize) -> Arc<TestServer> {
        self.nodes[n % self.nodes.len()].clone()
    }

    fn first(&self) -> &TestServer {
        &self.nodes[0]
    }
}

/// How much later than the other racer each racer of try `attempt` sends, in µs: the two
/// handlers do different amounts of work before they reach the database, so the tries
/// sweep the offset from one racer 2 ms ahead to the other 2 ms ahead, to land their
/// transactions on top of each other.
fn stagger(attempt: usize) -> [u64; 2] {
    let offset = (attempt * 4_000 / TRIES) as i64 - 2_000;
    [
        u64::try_from(-offset).unwrap_or(0),
        u64::try_from(offset).unwrap_or(0),
    ]
}

/// Sends two admin requests released together on a barrier (racer `n` through
/// `topology.node(n)`, after its stagger); returns both responses in racer order.
async fn race(
    topology: &Topology,
    attempt: usize,
    requests: [(Method, String, Option<Value>); 2],
) -> (Response, Response) {
    let barrier = Arc::new(Barrier::new(2));
    let mut handles = Vec::new();
    for ((n, (method, path, body)), delay) in requests.into_iter().enumerate().zip(stagger(attempt))
    {
        let node = topology.node(n);
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let mut request = node
                .client
                .request(method, node.url(&path))
                .bearer_auth(crate::support::ADMIN_TOKEN);
            if let Some(body) = body {
                request = request.json(&body);
            }
            barrier.wait().await;
            if delay > 0 {
                spin_for(std::time::Duration::from_micros(delay));
            }
            node.send(request).await
        }));
    }
    let second = handles.pop().unwrap().await.unwrap();
    let first = handles.pop().unwrap().await.unwrap();
    (first, second)
}

/// Waits without yielding (a timer is too coarse for microseconds).
fn spin_for(duration: std::time::Duration) {
    let until = std::time::Instant::now() + duration;
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

async fn new_user(node: &TestServer, user: &str, plan: &str) {
    let created = node
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"user_id": user, "plan": plan})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
}

/// A new user on `free` and one key of it (`extra` fields added to the key's body);
/// returns the plaintext and the key's id.
async fn user_with_key(node: &TestServer, user: &str, extra: Value) -> (String, String) {
    new_user(node, user, "free").await;
    let mut body = json!({"user_id": user, "name": "k"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (secret, object) = node.create_key(body).await;
    (secret, object["id"].as_str().unwrap().to_owned())
}

async fn key_object(node: &TestServer, id: &str) -> Value {
    let key = node
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(key.status, 200, "{}", key.text);
    key.body
}

/// The user's keys that are active now.
async fn active_keys(node: &TestServer, user: &str) -> Vec<Value> {
    let listed = node
        .admin(
            Method::GET,
            &format!("/v1/keys?user_id={user}&include_inactive=true&limit=100"),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of keys: {}", listed.text))
        .iter()
        .filter(|key| key["status"] == "active")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_rotations_of_one_key_exactly_one_wins() {
    for topology in Topology::all().await {
        for attempt in 0..TRIES {
            let user = format!("rr-{attempt}");
            let (secret, id) = user_with_key(topology.first(), &user, json!({})).await;
            let path = format!("/v1/keys/{id}/rotate");
            let (a, b) = race(
                &topology,
                attempt,
                [
                    (Method::POST, path.clone(), Some(json!({}))),
                    (Method::POST, path, Some(json!({}))),
                ],
            )
            .await;
            let mut statuses = [a.status, b.status];
            statuses.sort_unstable();
            assert_eq!(
                statuses,
                [201, 409],
                "{}: exactly one rotation wins: {} / {}",
                topology.name,
                a.text,
                b.text
            );
            let loser = if a.status == 409 { &a } else { &b };
            loser.assert_problem(409, "CONFLICT");
            let winner = if a.status == 201 { &a } else { &b };
            let successor = winner.body["key"]["id"].as_str().unwrap();
            let active = active_keys(topology.first(), &user).await;
            assert_eq!(
                active.len(),
                1,
                "{}: one live key, no orphan: {active:?}",
                topology.name
            );
            assert_eq!(active[0]["id"], successor);
            assert_eq!(
                key_object(topology.first(), &id).await["replaced_by"],
                successor
            );
            for node in &topology.nodes {
                assert_eq!(node.verify_code(&secret).await, "EXPIRED");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_key_never_gets_a_live_successor() {
    for topology in Topology::all().await {
        for attempt in 0..TRIES {
            let user = format!("vr-{attempt}");
            let (_, id) = user_with_key(topology.first(), &user, json!({})).await;
            let (revoked, rotated) = race(
                &topology,
                attempt,
                [
                    (Method::DELETE, format!("/v1/keys/{id}"), None),
                    (
                        Method::POST,
                        format!("/v1/keys/{id}/rotate"),
                        Some(json!({"grace_period_seconds": 3600})),
                    ),
                ],
            )
            .await;
            assert_eq!(revoked.status, 200, "{}", revoked.text);
            let old = key_object(topology.first(), &id).await;
            assert_eq!(old["status"], "revoked");
            let active = active_keys(topology.first(), &user).await;
            match rotated.status {
                // Rotated first, then revoked: the successor lives; the old key is revoked.
                201 => {
                    let successor = rotated.body["key"]["id"].as_str().unwrap();
                    assert_eq!(old["replaced_by"], successor);
                    assert_eq!(active.len(), 1, "{}: {active:?}", topology.name);
                    assert_eq!(active[0]["id"], successor);
                    let new_secret = rotated.body["key"]["key"].as_str().unwrap();
                    assert_eq!(topology.first().verify_code(new_secret).await, "VALID");
                }
                // Revoked first: no successor at all.
                409 => {
                    rotated.assert_problem(409, "CONFLICT");
                    assert!(old["replaced_by"].is_null(), "{}: {old}", topology.name);
                    assert!(active.is_empty(), "{}: {active:?}", topology.name);
                }
                other => panic!(
                    "{}: rotation answered {other}: {}",
                    topology.name, rotated.text
                ),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_creates_at_max_keys_minus_one_admit_exactly_one() {
    for topology in Topology::all().await {
        let plan = json!({"limits": [{"window_seconds": 60, "max": 100}], "max_keys": 3});
        let put = topology
            .first()
            .admin(Method::PUT, "/v1/plans/three", Some(plan))
            .await;
        assert_eq!(put.status, 200, "{}", put.text);
        for attempt in 0..TRIES {
            let user = format!("cc-{attempt}");
            new_user(topology.first(), &user, "three").await;
            for n in 0..2 {
                topology
                    .first()
                    .create_key(json!({"user_id": user, "name": format!("k{n}")}))
                    .await;
            }
            let body = json!({"user_id": user, "name": "racer"});
            let (a, b) = race(
                &topology,
                attempt,
                [
                    (Method::POST, "/v1/keys".to_owned(), Some(body.clone())),
                    (Method::POST, "/v1/keys".to_owned(), Some(body)),
                ],
            )
            .await;
            let mut statuses = [a.status, b.status];
            statuses.sort_unstable();
            assert_eq!(
                statuses,
                [201, 409],
                "{}: the third key fits once: {} / {}",
                topology.name,
                a.text,
                b.text
            );
            assert_eq!(active_keys(topology.first(), &user).await.len(), 3);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_racing_a_rotation_is_neither_lost_nor_half_copied() {
    for topology in Topology::all().await {
        for attempt in 0..TRIES {
            let user = format!("pr-{attempt}");
            let scopes = json!({"scopes": ["read", "write"]});
            let (_, id) = user_with_key(topology.first(), &user, scopes).await;
            let (patched, rotated) = race(
                &topology,
                attempt,
                [
                    (
                        Method::PATCH,
                        format!("/v1/keys/{id}"),
                        Some(json!({"scopes": ["read"], "name": "narrowed"})),
                    ),
                    (
                        Method::POST,
                        format!("/v1/keys/{id}/rotate"),
                        Some(json!({"grace_period_seconds": 3600})),
                    ),
                ],
            )
            .await;
            assert_eq!(rotated.status, 201, "{}: {}", topology.name, rotated.text);
            let successor = rotated.body["key"]["id"].as_str().unwrap().to_owned();
            let old = key_object(topology.first(), &id).await;
            let new = key_object(topology.first(), &successor).await;
            // The rotation's own changes to the old key are never undone by the change.
            assert_eq!(old["replaced_by"], successor.as_str(), "{}", topology.name);
            assert!(!old["expires_at"].is_null(), "{}: {old}", topology.name);
            match patched.status {
                200 => {
                    // Never lost: the old key has the change, whichever came first.
                    assert_eq!(old["scopes"], json!(["read"]), "{}", topology.name);
                    assert_eq!(old["name"], "narrowed");
                    // Copied whole or not at all: the change came before the rotation
                    // (the successor has all of it) or after (none of it).
                    let before = patched.body["replaced_by"].is_null();
                    let (scopes, name) = if before {
                        (json!(["read"]), "narrowed")
                    } else {
                        (json!(["read", "write"]), "k")
                    };
                    assert_eq!(new["scopes"], scopes, "{}: {new}", topology.name);
                    assert_eq!(new["name"], name, "{}: {new}", topology.name);
                }
                409 => {
                    // Refused after the rotation: nothing changed anywhere.
                    patched.assert_problem(409, "CONFLICT");
                    assert_eq!(old["scopes"], json!(["read", "write"]));
                    assert_eq!(new["scopes"], json!(["read", "write"]));
                }
                other => panic!(
                    "{}: PATCH answered {other}: {}",
                    topology.name, patched.text
                ),
            }
        }
    }
}
