//! The in-process key cache: validated keys by hash, and a bounded negative cache of hashes
//! the store does not know. Holds what decisions need, never a plaintext key. Kept correct
//! by the change feed (`crate::feed`), with a time-to-live as a safety net.
//!
//! `quick_cache` rather than moka: measured, moka's bookkeeping alone costs ~350 bytes per
//! entry, which puts a million keys over the 512 MiB budget (documentation/benchmarks.md).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use keyward_core::{KeyHash, UserId};
use quick_cache::sync::Cache;
use ulid::Ulid;

use crate::cached_key::CachedKey;

/// Seconds a known key stays cached without being reloaded.
const KNOWN_TTL: u32 = 600;
/// Seconds an unknown hash is remembered.
const UNKNOWN_TTL: u32 = 60;
const UNKNOWN_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct KeyCache {
    known: Cache<KeyHash, Arc<CachedKey>>,
    /// Hash → when it was found unknown.
    unknown: Cache<KeyHash, u32>,
    epoch: Instant,
}

/// What the cache answers for a hash.
#[derive(Debug)]
pub enum Cached {
    Known(Arc<CachedKey>),
    Unknown,
    Miss,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            known: Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX).max(1)),
            unknown: Cache::new(UNKNOWN_CAPACITY),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    pub fn get(&self, hash: &KeyHash) -> Cached {
        let now = self.now();
        if let Some(key) = self.known.get(hash) {
            if now.saturating_sub(key.loaded_at) < KNOWN_TTL {
                return Cached::Known(key);
            }
        } else if let Some(at) = self.unknown.get(hash)
            && now.saturating_sub(at) < UNKNOWN_TTL
        {
            return Cached::Unknown;
        }
        Cached::Miss
    }

    pub fn insert_known(&self, hash: KeyHash, mut key: CachedKey) -> Arc<CachedKey> {
        key.loaded_at = self.now();
        let key = Arc::new(key);
        self.unknown.remove(&hash);
        self.known.insert(hash, key.clone());
        key
    }

    pub fn insert_unknown(&self, hash: KeyHash) {
        self.unknown.insert(hash, self.now());
    }

    /// Drops everything cached about one key (it changed, or it was created or imported).
    pub fn invalidate_hash(&self, hash: &KeyHash) {
        self.known.remove(hash);
        self.unknown.remove(hash);
    }

    /// Drops the keys of these users (their plan changed, or they were deleted). A scan:
    /// user changes are rare next to checks.
    pub fn invalidate_users(&self, users: &HashSet<UserId>) {
        if !users.is_empty() {
            self.known.retain(|_, key| !users.contains(&key.user_id));
        }
    }

    /// Drops the keys whose id is listed (a change that came without the key's hash).
    pub fn invalidate_ids(&self, ids: &HashSet<Ulid>) {
        if !ids.is_empty() {
            self.known.retain(|_, key| !ids.contains(&key.ulid()));
        }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}
