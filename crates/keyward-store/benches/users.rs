//! `Store::list_users` of one full page (1,000 users) on a SQLite store holding 1,000 users
//! with 10 keys each: every user object carries its active key count, which must come from
//! an index range rather than a scan per user.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::{KeyHash, KeyId};
use keyward_store::roles::*;
use keyward_store::{PageRequest, SqliteStore, UserFilter};

const USERS: usize = 1_000;
const KEYS_PER_USER: usize = 10;

async fn populated_store(dir: &std::path::Path) -> SqliteStore {
    let url = format!("sqlite://{}", dir.join("users.db").display());
    let store = SqliteStore::connect(&url).await.expect("open SQLite");
    store.migrate().await.expect("migrate");
    let mut tx = store.pool().begin().await.expect("begin");
    for user in 0..USERS {
        let user_id = format!("user-{user:04}");
        sqlx::query(
            "INSERT INTO users (user_id, plan, created_at, updated_at)
             VALUES ($1, 'free', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        )
        .bind(&user_id)
        .execute(&mut *tx)
        .await
        .expect("user");
        for key in 0..KEYS_PER_USER {
            let id = KeyId::generate();
            sqlx::query(
                "INSERT INTO api_keys (id, key_hash, key_prefix, prefix, user_id, name,
                     environment, created_at, updated_at, lineage_id)
                 VALUES ($1, $2, 'sk_live_bnch…', 'sk_live', $3, 'bench', 'live',
                     '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', $1)",
            )
            .bind(id.as_str())
            .bind(KeyHash::of(&format!("bench-{user}-{key}")).to_hex())
            .bind(&user_id)
            .execute(&mut *tx)
            .await
            .expect("insert key");
        }
    }
    tx.commit().await.expect("commit");
    store
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = runtime.block_on(populated_store(dir.path()));
    let filter = UserFilter {
        plan: None,
        page: PageRequest {
            limit: 1000,
            cursor: None,
        },
    };
    let page = runtime
        .block_on(store.list_users(&filter))
        .expect("list users");
    assert_eq!(page.items.len(), USERS);
    assert!(
        page.items
            .iter()
            .all(|user| user.key_count == KEYS_PER_USER as u64)
    );
    c.bench_function("list_users, 1,000 users with 10 keys each (SQLite)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(store.list_users(&filter).await.expect("list")) });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
