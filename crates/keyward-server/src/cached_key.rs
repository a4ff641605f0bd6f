//! What the verifier keeps of a key: only what decisions, responses and limits need, in
//! compact form (a million cached keys must fit in well under 512 MiB).

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::{Environment, KeyId, PlanName, Scope, UserId, Window};
use keyward_store::{KeyRecord, Metadata};
use ulid::Ulid;

#[derive(Debug, Clone, PartialEq)]
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
    metadata: Option<Box<Metadata>>,
    pub rate_limit_per_hour: Option<u64>,
    pub limits: Option<Box<[Window]>>,
    /// When the cache loaded it (seconds on the cache's clock), for its time-to-live.
    pub(crate) loaded_at: u32,
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
            metadata: (!record.metadata.is_empty()).then(|| Box::new(record.metadata.clone())),
            rate_limit_per_hour: record.rate_limit_per_hour,
            limits: record.limits.clone().map(Vec::into_boxed_slice),
            loaded_at: 0,
        }
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

    /// Names the key in the request's span when something logged later in the request can
    /// show it: after a decision, only the debug-level response event of the trace layer
    /// (and keyward's own debug events) can, so at the default `info` the formatting is
    /// skipped on the hot path.
    pub fn record_in_span_for_response(&self) {
        if tracing::enabled!(tracing::Level::DEBUG)
            || tracing::enabled!(target: "tower_http::trace::on_response", tracing::Level::DEBUG)
        {
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

    pub fn metadata(&self) -> Metadata {
        self.metadata.as_deref().cloned().unwrap_or_default()
    }

    /// The metadata without copying it (`None` when empty).
    pub fn metadata_ref(&self) -> Option<&Metadata> {
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
