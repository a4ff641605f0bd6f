//! `Store::lookup(hash)` on a SQLite store holding 1,000,000 keys: the one query an
//! uncached verification makes. Set `KEYWARD_BENCH_KEYS` to change the population.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::{KeyHash, KeyId};
use keyward_store::{SqliteStore, Store};

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

    let mut group = c.benchmark_group(format!("sqlite/{keys}_keys"));
    let mut next = 0usize;
    group.bench_function("lookup(hash) hit", |b| {
        b.to_async(&runtime).iter(|| {
            next = (next + 1) % probes.len();
            let store = &store;
            let hash = probes[next];
            async move { black_box(store.lookup(&hash).await.expect("lookup")) }
        })
    });
    group.bench_function("lookup(hash) miss", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(store.lookup(&missing).await.expect("lookup")) })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
