//! Resident memory of the key cache holding N distinct keys (default 1,000,000), measured
//! as the growth of the process's RSS (Linux `/proc/self/statm`). Not a timing benchmark:
//! it prints one figure. `KEYWARD_BENCH_KEYS` changes N.

use chrono::Utc;
use keyward_core::{Environment, KeyHash, KeyId, PlanName, UserId};
use keyward_server::verifier::{CachedKey, KeyCache};
use keyward_store::KeyRecord;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn record(i: usize) -> KeyRecord {
    let now = Utc::now();
    KeyRecord {
        id: KeyId::generate(),
        key_prefix: "sk_live_AbCd…".to_owned(),
        prefix: Some(Environment::Live.default_prefix()),
        user_id: UserId::parse(&format!("user-{}", i % 100_000)).expect("user id"),
        name: "production".to_owned(),
        environment: Environment::Live,
        plan: None,
        user_plan: PlanName::free(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        last_used_at: None,
        request_count: 0,
        is_active: true,
        enabled: true,
        revoked_at: None,
        replaced_by: None,
        rate_limit_per_hour: None,
        limits: None,
        allowed_ips: None,
        scopes: Vec::new(),
        metadata: Default::default(),
        lineage_id: format!("key_{i:026}"),
        imported: false,
        disabled_by: None,
        locked_metadata: Vec::new(),
    }
}

fn main() {
    // `cargo bench` passes filter arguments; this benchmark has none to honour.
    let keys: usize = std::env::var("KEYWARD_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cache = KeyCache::new(keys as u64 * 2);
    let before = resident_bytes();
    for i in 0..keys {
        cache.insert_known(
            KeyHash::of(&format!("bench-key-{i}")),
            CachedKey::from_record(&record(i)),
        );
    }
    let entries = cache.len();
    let after = resident_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "key cache: {entries} entries, resident memory grew by {:.1} MiB ({} bytes per key)",
        grown as f64 / (1024.0 * 1024.0),
        grown / (entries.max(1) as u64)
    );
}
