//! Usage pipeline throughput at the store: how many raw events (with their rollups and
//! key counters, as the writer sends them each second) `Store::record_usage` stores per
//! second. SQLite always; PostgreSQL when `KEYWARD_BENCH_DATABASE_URL` names a server.
//! Prints events/s for batches of 10,000 and 50,000 events over 100 keys.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use keyward_core::{Environment, KeyId, PlanName, UserId};
use keyward_store::{
    KeyUsage, LATENCY_BUCKETS, PostgresStore, Rollup, SqliteStore, Store, UsageBatch, UsageEvent,
};

fn batch(events: usize, keys: &[KeyId]) -> UsageBatch {
    let user = UserId::parse("bench").unwrap();
    let plan = PlanName::parse("enterprise").unwrap();
    let hour = Utc.with_ymd_and_hms(2026, 11, 22, 13, 0, 0).unwrap();
    let endpoints = ["/orders", "/users/{id}", "/search", "/reports"];
    let mut rollups = Vec::new();
    for key in keys {
        for endpoint in endpoints {
            let mut latency = [0; LATENCY_BUCKETS];
            latency[2] = (events / keys.len() / endpoints.len()) as u64;
            rollups.push(Rollup {
                hour,
                key_id: key.clone(),
                user_id: user.clone(),
                environment: Environment::Live,
                plan: plan.clone(),
                endpoint: endpoint.to_owned(),
                status_code: 200,
                code: "VALID".to_owned(),
                requests: latency[2],
                rejected: 0,
                units: latency[2],
                latency,
            });
        }
    }
    UsageBatch {
        keys: keys
            .iter()
            .map(|id| KeyUsage {
                id: id.clone(),
                admitted: (events / keys.len()) as u64,
                last_used_at: hour,
            })
            .collect(),
        quota: Vec::new(),
        rollups,
        events: (0..events)
            .map(|i| UsageEvent {
                key_id: keys[i % keys.len()].clone(),
                user_id: user.clone(),
                endpoint: endpoints[i % endpoints.len()].to_owned(),
                method: "GET".to_owned(),
                at: hour,
                response_time_ms: Some(3),
                status_code: 200,
                code: "VALID".to_owned(),
                cost: 1,
            })
            .collect(),
    }
}

async fn keys_in(store: &dyn Store) -> Vec<KeyId> {
    // On a plan without a key cap.
    store
        .create_user(
            &keyward_store::NewUser {
                user_id: "bench".parse().unwrap(),
                plan: PlanName::parse("enterprise").unwrap(),
                profile: Default::default(),
            },
            &keyward_store::Actor::cli(),
        )
        .await
        .expect("user");
    let mut ids = Vec::new();
    for i in 0..100 {
        let spec = keyward_store::KeySpec::new("bench".parse().unwrap(), format!("k{i}"));
        let (_, key) = keyward_store::issue_key(store, &spec, &keyward_store::Actor::cli())
            .await
            .expect("key");
        ids.push(key.id);
    }
    ids
}

async fn run(name: &str, store: &dyn Store) {
    store.migrate().await.expect("migrate");
    let keys = keys_in(store).await;
    for size in [10_000usize, 50_000] {
        let batch = batch(size, &keys);
        let mut rates = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            store.record_usage(&batch).await.expect("record");
            rates.push(size as f64 / started.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{name}: record_usage of {size} events (+{} rollups, {} key counters): median {:.0} events/s (runs: {})",
            batch.rollups.len(),
            batch.keys.len(),
            rates[2],
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" · ")
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("usage.db").display());
        let sqlite = SqliteStore::connect(&url).await.expect("SQLite");
        run("sqlite", &sqlite).await;
        match std::env::var("KEYWARD_BENCH_DATABASE_URL") {
            Ok(admin) => {
                use sqlx::{Connection, Executor};
                let name = format!("kw_usage_bench_{}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create");
                let (server, _) = admin.rsplit_once('/').expect("a database name");
                let postgres = PostgresStore::connect(&format!("{server}/{name}"))
                    .await
                    .expect("PostgreSQL");
                run("postgres", &postgres).await;
            }
            Err(_) => println!("postgres: skipped (set KEYWARD_BENCH_DATABASE_URL)"),
        }
    });
}
