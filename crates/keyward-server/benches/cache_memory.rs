//! Resident memory of the key cache holding N distinct keys (default 1,000,000), measured
//! as the growth of the process's RSS (Linux `/proc/self/statm`). Not a timing benchmark:
//! it prints one figure. `KEYWARD_BENCH_KEYS` changes N; `KEYWARD_BENCH_METADATA_BYTES`
//! gives each key a metadata entry of about that many bytes of JSON (default 0). The cache is
//! given room for every key; it also prints what the cache's weigher counted, which should
//! stay close to the measured growth (the cache's memory bound relies on it).

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

fn record(i: usize, metadata_bytes: usize) -> KeyRecord {
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
        metadata: if metadata_bytes == 0 {
            Default::default()
        } else {
            // {"note":"…"}: 11 bytes of JSON around the text.
            let text = "x".repeat(metadata_bytes.saturating_sub(11));
            serde_json::json!({ "note": text })
                .as_object()
                .cloned()
                .unwrap_or_default()
        },
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
    let metadata_bytes: usize = std::env::var("KEYWARD_BENCH_METADATA_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cache = KeyCache::new(u64::MAX / 2);
    let before = resident_bytes();
    let mut weighed = 0u64;
    for i in 0..keys {
        let key = CachedKey::from_record(&record(i, metadata_bytes));
        weighed += u64::from(key.weight());
        cache.insert_known(KeyHash::of(&format!("bench-key-{i}")), key);
    }
    let entries = cache.len();
    let after = resident_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "key cache: {entries} entries, {metadata_bytes} bytes of metadata each, resident memory grew by {:.1} MiB ({} bytes per key); weighed {} bytes per key; a CachedKey is {} bytes before what it holds on the heap",
        grown as f64 / (1024.0 * 1024.0),
        grown / (entries.max(1) as u64),
        weighed / (keys.max(1) as u64),
        std::mem::size_of::<CachedKey>()
    );
}
