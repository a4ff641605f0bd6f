//! The in-process key cache: validated keys by hash, and a bounded negative cache of hashes
//! the store does not know. Holds what decisions need ([`CachedKey`], in compact form: a
//! million cached keys must fit in well under 512 MiB), never a plaintext key. Kept correct
//! by the change feed (`crate::feed`), with a time-to-live as a safety net.
//!
//! `quick_cache` rather than moka: measured, moka's bookkeeping alone costs ~350 bytes per
//! entry, which puts a million keys over the 512 MiB budget (documentation/benchmarks.md).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::{Environment, KeyHash, KeyId, PlanName, Scope, UserId, Window};
use keyward_store::{KeyRecord, Metadata};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::value::RawValue;
use ulid::Ulid;

use crate::usage::UsageKey;

/// Seconds a known key stays cached without being reloaded.
const KNOWN_TTL: u32 = 600;
/// Seconds an unknown hash is remembered.
const UNKNOWN_TTL: u32 = 60;
const UNKNOWN_CAPACITY: usize = 100_000;

/// Bytes a cached entry costs beyond its key's fields and heap: the 32-byte hash, the
/// `Arc`'s counts, the cache's slot and table and the allocator's rounding (calibrated
/// with `cargo bench -p keyward-server --bench cache_memory`, which prints both figures).
const ENTRY_OVERHEAD: usize = 190;

/// Keys weigh what they hold, so the cache is bounded in bytes, not in keys: keys with
/// large metadata mean fewer cached keys, never more memory.
#[derive(Debug, Clone, Copy)]
struct BySize;

impl Weighter<KeyHash, Arc<CachedKey>> for BySize {
    fn weight(&self, _hash: &KeyHash, key: &Arc<CachedKey>) -> u64 {
        u64::from(key.weight)
    }
}

#[derive(Debug)]
pub struct KeyCache {
    known: Cache<KeyHash, Arc<CachedKey>, BySize>,
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
    /// A cache whose known keys take at most `max_bytes` (as [`CachedKey::weight`] counts
    /// them).
    pub fn new(max_bytes: u64) -> Self {
        // A typical key with little metadata weighs ~450 bytes: a hint for the table's size.
        let typical = usize::try_from(max_bytes / 450)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            known: Cache::with_weighter(typical, max_bytes.max(1), BySize),
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

/// What the verifier keeps of a key: only what decisions, responses and limits need.
#[derive(Debug, Clone)]
pub struct CachedKey {
    id: Ulid,
    /// The rate-limit lineage (the first key of a rotation chain).
    pub lineage: Ulid,
    pub key_prefix: Box<str>,
    pub user_id: UserId,
    /// The key's own plan override.
    pub plan: Option<PlanName>,
    pub user_plan: PlanName,
    pub environment: Environment,
    pub is_active: bool,
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: Option<Box<[IpNet]>>,
    pub scopes: Box<[Scope]>,
    /// The metadata as compact JSON (`None` when empty): a map of a few entries takes
    /// several times its text's size in memory, and answers only ever serialize it.
    metadata: Option<Box<RawValue>>,
    pub rate_limit_per_hour: Option<u64>,
    pub limits: Option<Box<[Window]>>,
    /// When the cache loaded it (seconds on the cache's clock), for its time-to-live.
    pub(crate) loaded_at: u32,
    /// What it weighs in the cache, in bytes (see [`CachedKey::weight`]).
    weight: u32,
}

impl CachedKey {
    pub fn from_record(record: &KeyRecord) -> Self {
        let id = record.id.ulid();
        let lineage = KeyId::parse(&record.lineage_id).map_or(id, |lineage| lineage.ulid());
        Self {
            id,
            lineage,
            key_prefix: record.key_prefix.clone().into_boxed_str(),
            user_id: record.user_id.clone(),
            plan: record.plan.clone(),
            user_plan: record.user_plan.clone(),
            environment: record.environment,
            is_active: record.is_active,
            enabled: record.enabled,
            expires_at: record.expires_at,
            allowed_ips: record.allowed_ips.clone().map(Vec::into_boxed_slice),
            scopes: record.scopes.clone().into_boxed_slice(),
            metadata: (!record.metadata.is_empty())
                .then(|| serde_json::value::to_raw_value(&record.metadata).ok())
                .flatten(),
            rate_limit_per_hour: record.rate_limit_per_hour,
            limits: record.limits.clone().map(Vec::into_boxed_slice),
            loaded_at: 0,
            weight: 0,
        }
        .weighed()
    }

    /// What a user's portal acts as: an unrestricted `live` key of the user (every scope,
    /// any address, no expiry, no limits of its own). It is never cached nor checked.
    pub fn portal(user_id: &UserId, user_plan: &PlanName) -> Self {
        Self {
            id: Ulid::nil(),
            lineage: Ulid::nil(),
            key_prefix: Box::from(""),
            user_id: user_id.clone(),
            plan: None,
            user_plan: user_plan.clone(),
            environment: Environment::Live,
            is_active: true,
            enabled: true,
            expires_at: None,
            allowed_ips: None,
            scopes: Box::new([]),
            metadata: None,
            rate_limit_per_hour: None,
            limits: None,
            loaded_at: 0,
            weight: 0,
        }
    }

    /// Sets the key's weight: its fields, what they hold on the heap, and the cache entry.
    fn weighed(mut self) -> Self {
        let heap = self.key_prefix.len()
            + self.user_id.as_str().len()
            + self.plan.as_ref().map_or(0, |plan| plan.as_str().len())
            + self.user_plan.as_str().len()
            + self
                .allowed_ips
                .as_ref()
                .map_or(0, |nets| std::mem::size_of_val(&**nets))
            + self
                .scopes
                .iter()
                .map(|scope| std::mem::size_of::<Scope>() + scope.as_str().len())
                .sum::<usize>()
            + self.limits.as_ref().map_or(0, |windows| {
                windows
                    .iter()
                    .map(|w| std::mem::size_of::<Window>() + w.name.as_ref().map_or(0, String::len))
                    .sum()
            })
            + self
                .metadata
                .as_ref()
                .map_or(0, |metadata| metadata.get().len());
        let total = std::mem::size_of::<Self>() + ENTRY_OVERHEAD + heap;
        self.weight = u32::try_from(total).unwrap_or(u32::MAX);
        self
    }

    /// What the key weighs in the cache, in bytes.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub fn id(&self) -> KeyId {
        KeyId::from_ulid(self.id)
    }

    pub fn ulid(&self) -> Ulid {
        self.id
    }

    /// The key id for display and serialization, without allocating.
    pub fn id_display(&self) -> KeyIdDisplay {
        KeyIdDisplay(self.id)
    }

    /// Names the key in the request's span, which exists at debug level only (its
    /// formatting is skipped on the hot path otherwise).
    pub fn record_in_span_for_response(&self) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            self.record_in_span();
        }
    }

    /// Names the key (id and display prefix, never the key) in the request's span.
    pub fn record_in_span(&self) {
        tracing::Span::current().record(
            "key",
            tracing::field::display(format_args!("{} {}", self.id_display(), self.key_prefix)),
        );
    }

    /// The key's state at `now` (the one rule every part of keyward follows).
    pub fn status(&self, now: DateTime<Utc>) -> keyward_core::KeyStatus {
        keyward_core::KeyStatus::of(self.is_active, self.enabled, self.expires_at, now)
    }

    /// The key's own plan, else its user's.
    pub fn effective_plan(&self) -> &PlanName {
        self.plan.as_ref().unwrap_or(&self.user_plan)
    }

    /// The key as usage records it.
    pub fn for_usage(&self) -> UsageKey<'_> {
        UsageKey {
            id: self.id,
            user_id: &self.user_id,
            user_plan: &self.user_plan,
            environment: self.environment,
        }
    }

    pub fn metadata(&self) -> Metadata {
        self.metadata
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }

    /// The metadata without copying it (`None` when empty).
    pub fn metadata_ref(&self) -> Option<&RawValue> {
        self.metadata.as_deref()
    }
}

/// Writes `key_<ULID>` (a key id) without allocating.
#[derive(Debug, Clone, Copy)]
pub struct KeyIdDisplay(Ulid);

impl std::fmt::Display for KeyIdDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key_{}", self.0)
    }
}

impl serde::Serialize for KeyIdDisplay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
