//! `Store::lookup(hash)` on a store holding 1,000,000 keys: the one query an uncached
//! verification makes. SQLite always; PostgreSQL too when `KEYWARD_BENCH_DATABASE_URL`
//! names a server (scripts/postgres.sh makes a throwaway one; the bench creates its own
//! database on it). Criterion reports the mean and median; a plain loop of 20,000 lookups
//! afterwards prints p50 / p99. Set `KEYWARD_BENCH_KEYS` to change the population.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::{KeyHash, KeyId};
use keyward_store::roles::*;
use keyward_store::{PostgresOptions, PostgresStore, SqliteStore, Store};

fn population() -> usize {
    std::env::var("KEYWARD_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

async fn populated_store(dir: &std::path::Path, keys: usize) -> SqliteStore {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = SqliteStore::connect(&url).await.expect("open SQLite");
    store.migrate().await.expect("migrate");
    let mut tx = store.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO users (user_id, plan, created_at, updated_at)
         VALUES ('bench', 'enterprise', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    )
    .execute(&mut *tx)
    .await
    .expect("user");
    // Bulk rows straight into the table (the lifecycle API would write 1M audit records too).
    for i in 0..keys {
        let id = KeyId::generate();
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, key_prefix, prefix, user_id, name, environment,
                 created_at, updated_at, lineage_id)
             VALUES ($1, $2, 'sk_live_bnch…', 'sk_live', 'bench', 'bench', 'live',
                 '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', $1)",
        )
        .bind(id.as_str())
        .bind(KeyHash::of(&format!("bench-key-{i}")).to_hex())
        .execute(&mut *tx)
        .await
        .expect("insert key");
    }
    tx.commit().await.expect("commit");
    store
}

/// A fresh database on the PostgreSQL server `admin` names, filled server-side with `keys`
/// keys (same hashes as the SQLite population: SHA-256 of `bench-key-<i>`).
async fn populated_postgres(admin: &str, keys: usize) -> PostgresStore {
    use sqlx::{Connection, Executor};
    let name = format!("kw_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect");
    conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .expect("drop");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create");
    let (server, _) = admin.rsplit_once('/').expect("a URL with a database name");
    // The bulk load is one long statement: allow it more than the default 10 s.
    let options = PostgresOptions {
        statement_timeout: std::time::Duration::from_secs(600),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect_with(&format!("{server}/{name}"), &options)
        .await
        .expect("open PostgreSQL");
    store.migrate().await.expect("migrate");
    sqlx::query(
        "INSERT INTO users (user_id, plan, created_at, updated_at)
         VALUES ('bench', 'enterprise', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    )
    .execute(store.pool())
    .await
    .expect("user");
    // Triggers off for the bulk load: a million change events would only slow it down.
    sqlx::query("ALTER TABLE api_keys DISABLE TRIGGER USER")
        .execute(store.pool())
        .await
        .expect("disable triggers");
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, key_prefix, prefix, user_id, name, environment,
             created_at, updated_at, lineage_id)
         SELECT 'key_' || lpad(g::text, 26, '0'),
                encode(sha256(convert_to('bench-key-' || g, 'UTF8')), 'hex'),
                'sk_live_bnch…', 'sk_live', 'bench', 'bench', 'live',
                '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z',
                'key_' || lpad(g::text, 26, '0')
         FROM generate_series(0, $1 - 1) AS g",
    )
    .bind(i64::try_from(keys).expect("population"))
    .execute(store.pool())
    .await
    .expect("bulk insert");
    sqlx::query("ALTER TABLE api_keys ENABLE TRIGGER USER")
        .execute(store.pool())
        .await
        .expect("enable triggers");
    sqlx::query("ANALYZE api_keys")
        .execute(store.pool())
        .await
        .expect("analyze");
    store
}

/// p50 and p99 of `rounds` sequential lookups cycling through `probes`, in µs.
fn percentiles(
    runtime: &tokio::runtime::Runtime,
    store: &dyn Store,
    probes: &[KeyHash],
    rounds: usize,
) -> (f64, f64) {
    let mut samples: Vec<f64> = runtime.block_on(async {
        let mut samples = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let hash = probes[i % probes.len()];
            let started = std::time::Instant::now();
            black_box(store.lookup(&hash).await.expect("lookup"));
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        samples
    });
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = population();
    let store = runtime.block_on(populated_store(dir.path(), keys));
    // Probe keys spread over the whole population, so each lookup walks a cold-ish path.
    let probes: Vec<KeyHash> = (0..1024)
        .map(|i| KeyHash::of(&format!("bench-key-{}", (i * 7919) % keys)))
        .collect();
    let missing = KeyHash::of("not-a-stored-key");
    bench_store(c, &runtime, "sqlite", &store, keys, &probes, &missing);
    if let Ok(admin) = std::env::var("KEYWARD_BENCH_DATABASE_URL") {
        let postgres = runtime.block_on(populated_postgres(&admin, keys));
        bench_store(c, &runtime, "postgres", &postgres, keys, &probes, &missing);
    } else {
        println!("postgres: skipped (set KEYWARD_BENCH_DATABASE_URL to a PostgreSQL server)");
    }
}

fn bench_store(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    backend: &str,
    store: &dyn Store,
    keys: usize,
    probes: &[KeyHash],
    missing: &KeyHash,
) {
    let (p50, p99) = percentiles(runtime, store, probes, 20_000);
    println!(
        "{backend}/{keys}_keys lookup(hash) hit: p50 {p50:.0} µs, p99 {p99:.0} µs (20,000 sequential lookups)"
    );
    let mut group = c.benchmark_group(format!("{backend}/{keys}_keys"));
    let mut next = 0usize;
    group.bench_function("lookup(hash) hit", |b| {
        b.to_async(runtime).iter(|| {
            next = (next + 1) % probes.len();
            let hash = probes[next];
            async move { black_box(store.lookup(&hash).await.expect("lookup")) }
        })
    });
    group.bench_function("lookup(hash) miss", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(store.lookup(missing).await.expect("lookup")) })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
