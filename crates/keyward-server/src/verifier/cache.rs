//! The in-process key cache: validated keys by hash, and a bounded negative cache of hashes
//! the store does not know. Holds what decisions need, never a plaintext key. Kept correct
//! by the change feed (`crate::feed`), with a TTL as a safety net.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::{KeyHash, UserId};
use keyward_store::KeyRecord;
use moka::sync::Cache;

#[derive(Debug, Clone)]
pub struct KeyCache {
    known: Cache<KeyHash, Arc<KeyRecord>>,
    unknown: Cache<KeyHash, ()>,
}

/// What the cache answers for a hash.
#[derive(Debug)]
pub enum Cached {
    Known(Arc<KeyRecord>),
    Unknown,
    Miss,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            known: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(600))
                .support_invalidation_closures()
                .build(),
            unknown: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    pub fn get(&self, hash: &KeyHash) -> Cached {
        if let Some(key) = self.known.get(hash) {
            Cached::Known(key)
        } else if self.unknown.contains_key(hash) {
            Cached::Unknown
        } else {
            Cached::Miss
        }
    }

    pub fn insert_known(&self, hash: KeyHash, key: Arc<KeyRecord>) {
        self.known.insert(hash, key);
    }

    pub fn insert_unknown(&self, hash: KeyHash) {
        self.unknown.insert(hash, ());
    }

    /// Drops everything cached about one key (it changed, or it was created or imported).
    pub fn invalidate_hash(&self, hash: &KeyHash) {
        self.known.invalidate(hash);
        self.unknown.invalidate(hash);
    }

    /// Drops the keys of these users (their plan changed, or they were deleted).
    pub fn invalidate_users(&self, users: HashSet<UserId>) {
        if users.is_empty() {
            return;
        }
        if self
            .known
            .invalidate_entries_if(move |_, key| users.contains(&key.user_id))
            .is_err()
        {
            self.known.invalidate_all();
        }
    }

    /// Drops the keys whose id is listed (a change that came without the key's hash).
    pub fn invalidate_ids(&self, ids: HashSet<String>) {
        if ids.is_empty() {
            return;
        }
        if self
            .known
            .invalidate_entries_if(move |_, key| ids.contains(key.id.as_str()))
            .is_err()
        {
            self.known.invalidate_all();
        }
    }

    pub fn invalidate_all(&self) {
        self.known.invalidate_all();
        self.unknown.invalidate_all();
    }

    pub fn len(&self) -> u64 {
        self.known.run_pending_tasks();
        self.known.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
