//! keyward's storage: one [`Store`] trait, a SQLite backend (the default, embedded) and a
//! PostgreSQL backend (several nodes on one database). Both run the same SQL (`src/sql/`)
//! and pass the same conformance suite (`tests/conformance/`).
//!
//! The store never sees a plaintext key: callers issue keys with [`issue_key`] and
//! [`rotate_key`], which generate the secret, hand the store only its hash and display
//! prefix, and return the plaintext to be shown once.

mod error;
mod lifecycle;
mod model;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use keyward_core::{KeyHash, KeyId, Plan, PlanName, UserId};

pub use error::{StoreError, StoreResult};
pub use lifecycle::{issue_admin_key, issue_key, rotate_key};
pub use model::*;
pub use postgres::{ChangeListener, PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// Whether a database URL names PostgreSQL (else SQLite).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the store a database URL names (`sqlite:…` or `postgres://…`). Does not migrate.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    connect_with(url, &PostgresOptions::default()).await
}

/// [`connect`], with the pool settings used when the URL names PostgreSQL.
pub async fn connect_with(
    url: &str,
    postgres: &PostgresOptions,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    } else if is_postgres_url(url) {
        Ok(std::sync::Arc::new(
            PostgresStore::connect_with(url, postgres).await?,
        ))
    } else {
        Err(StoreError::Invalid {
            field: "database_url",
            message: "must start with sqlite: or postgres://".to_owned(),
        })
    }
}

/// Everything keyward keeps — keys, users and plans, the audit log and change feed, usage,
/// the billing outbox, settings and the schema — one trait per role; a backend implements
/// them all. Through `dyn Store` every method is at hand; code that holds a concrete backend
/// brings the roles it uses into scope (`use keyward_store::roles::*;`).
///
/// Every mutating operation writes its audit record and its change-feed entries in the same
/// transaction as the change itself.
pub trait Store:
    KeyStore
    + UserStore
    + FeedStore
    + UsageStore
    + BillingStore
    + WebhookStore
    + SessionStore
    + AdminStore
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: KeyStore
        + UserStore
        + FeedStore
        + UsageStore
        + BillingStore
        + WebhookStore
        + SessionStore
        + AdminStore
        + std::fmt::Debug
{
}

/// Every role trait, for `use keyward_store::roles::*;`.
pub mod roles {
    pub use crate::{
        AdminStore, BillingStore, FeedStore, KeyStore, SessionStore, UsageStore, UserStore,
        WebhookStore,
    };
}

/// Keys: create, read, change, revoke, rotate, look up by hash, import.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Creates a key; an unknown user is created on plan `free`. `Conflict` past the user's
    /// plan `max_keys` or for a deleted user; `Invalid` for an unknown plan.
    async fn create_key(
        &self,
        spec: &KeySpec,
        material: &KeyMaterial,
        actor: &Actor,
    ) -> StoreResult<KeyRecord>;
    async fn get_key(&self, id: &KeyId) -> StoreResult<KeyRecord>;
    /// Newest first.
    async fn list_keys(&self, filter: &KeyFilter) -> StoreResult<Page<KeyRecord>>;
    async fn update_key(
        &self,
        id: &KeyId,
        patch: &KeyPatch,
        actor: &Actor,
    ) -> StoreResult<KeyRecord>;
    /// Idempotent: revoking a revoked key returns it unchanged.
    async fn revoke_key(&self, id: &KeyId, actor: &Actor) -> StoreResult<KeyRecord>;
    /// Replaces `id` by a new key with the same settings and lineage; the old key expires
    /// after the grace period. `Conflict` for a revoked key. Returns (new, old).
    async fn rotate_key(
        &self,
        id: &KeyId,
        rotation: &Rotation,
        material: &KeyMaterial,
        actor: &Actor,
    ) -> StoreResult<(KeyRecord, KeyRecord)>;
    /// What a verifier needs about a key, by hash, in one indexed query.
    async fn lookup(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>>;
    /// A secret scanner reports keys leaked (at most 1,000 at a time): each user key that is
    /// active or disabled gets `action`, each admin key is revoked, and every report of a
    /// known key is audited as `key.leak_reported` (actor `github`) — all in one
    /// transaction, so a failed report changes nothing. One answer per report, in order:
    /// `None` when no key or admin key has that hash. A report naming no known key writes
    /// nothing.
    async fn report_leaks(
        &self,
        reports: &[(KeyHash, LeakReport)],
        action: LeakAction,
    ) -> StoreResult<Vec<Option<LeakFound>>>;
    /// Whether any imported key exists (only then is a foreign-format key worth a lookup).
    async fn has_imported_keys(&self) -> StoreResult<bool>;
    /// Imports keys known by hash: all rows or none. Rows whose hash exists are skipped.
    /// With [`ImportMode::DryRun`] everything is checked and reported the same way, and
    /// nothing is kept.
    async fn import_keys(
        &self,
        rows: &[ImportRow],
        mode: ImportMode,
        actor: &Actor,
    ) -> StoreResult<ImportReport>;
}

/// Users and plans.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Conflict` if the user exists (even deleted).
    async fn create_user(&self, user: &NewUser, actor: &Actor) -> StoreResult<UserRecord>;
    /// Deleted users can still be read.
    async fn get_user(&self, id: &UserId) -> StoreResult<UserRecord>;
    /// Users not deleted, newest first.
    async fn list_users(&self, filter: &UserFilter) -> StoreResult<Page<UserRecord>>;
    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        actor: &Actor,
    ) -> StoreResult<UserRecord>;
    /// Soft delete: revokes every key, keeps usage and invoices. Idempotent.
    async fn delete_user(&self, id: &UserId, actor: &Actor) -> StoreResult<UserRecord>;
    /// Revokes every key of the user that is not revoked yet; returns how many.
    async fn revoke_user_keys(&self, id: &UserId, actor: &Actor) -> StoreResult<u64>;
    async fn list_plans(&self) -> StoreResult<Vec<Plan>>;
    async fn get_plan(&self, name: &PlanName) -> StoreResult<Plan>;
    /// Creates or replaces a plan.
    async fn put_plan(&self, plan: &Plan, actor: &Actor) -> StoreResult<Plan>;
}

/// The audit log and the change feed every node follows.
#[async_trait]
pub trait FeedStore: Send + Sync {
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<AuditRecord>>;
    /// The newest change id (0 if none): where a fresh node starts following the feed.
    async fn latest_change(&self) -> StoreResult<i64>;
    /// Changes after `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEvent>>;
}

/// Usage: what the usage writer stores, what reports and invoices read, quotas.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds admitted checks to `request_count` and advances `last_used_at`, in one
    /// transaction. Not a change: caches are not invalidated by it.
    async fn record_key_usage(&self, usage: &[KeyUsage]) -> StoreResult<()>;
    /// Adds admitted units to users' monthly quota usage, in one transaction.
    async fn add_quota_usage(&self, usage: &[QuotaUsage]) -> StoreResult<()>;
    /// Stores one flush of the usage writer — `request_count`/`last_used_at`, quota usage,
    /// rollup counts (added to existing rows) and raw events — in one transaction, so the
    /// figures always agree with each other.
    async fn record_usage(&self, batch: &UsageBatch) -> StoreResult<()>;
    /// Rollup rows as stored (hours in `[from, to)`, by key and/or user).
    async fn usage_rollups(&self, filter: &UsageFilter) -> StoreResult<Vec<Rollup>>;
    /// Rollups added up per `group` (computed by the database).
    async fn usage_totals(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> StoreResult<Vec<UsageTotal>>;
    /// Deletes raw events and rollups older than the given times; returns rows deleted.
    async fn prune_usage(
        &self,
        events_before: chrono::DateTime<chrono::Utc>,
        rollups_before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64>;
    /// A user's plan segments, oldest first (the first opens when the user is created).
    async fn plan_segments(&self, user_id: &UserId) -> StoreResult<Vec<PlanSegment>>;
    /// Every plan's price changes, by plan, oldest first.
    async fn price_history(&self) -> StoreResult<Vec<PriceChange>>;
    /// A user's admitted units in a month (`YYYY-MM`), 0 if none.
    async fn quota_usage(&self, user_id: &UserId, period: &str) -> StoreResult<u64>;
    /// The same units per node process that admitted them (they add up to
    /// [`UsageStore::quota_usage`]), in no particular order.
    async fn quota_usage_by_node(
        &self,
        user_id: &UserId,
        period: &str,
    ) -> StoreResult<Vec<(String, u64)>>;
}

/// The billing outbox: metered events and their deliveries.
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// Adds events to the outbox; an id already there is the same event and is ignored.
    async fn add_billing_events(&self, events: &[BillingEvent]) -> StoreResult<()>;
    /// What has been metered for hours in `[from, to)`.
    async fn metered_hours(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<MeteredHour>>;
    /// Records `hour` as metered and adds `event` with it, in one transaction, if the
    /// stored revision is still `expected_revisions` (0: none yet); `false` when another
    /// node got there first (nothing changed).
    async fn record_metering(
        &self,
        hour: &MeteredHour,
        expected_revisions: u32,
        event: &BillingEvent,
    ) -> StoreResult<bool>;
    /// Opens deliveries to `sink` for events created since `since`, then claims up to
    /// `limit` due ones until `lease_until` (so no other node sends them meanwhile).
    async fn claim_deliveries(
        &self,
        sink: &str,
        since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records how an attempt ended (one more attempt counted).
    async fn finish_delivery(
        &self,
        event_id: &str,
        sink: &str,
        outcome: &DeliveryOutcome,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Deliveries, newest events first, optionally of one status.
    async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Outbox events created in `[from, to)`, oldest first.
    async fn billing_events(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<BillingEvent>>;
}

/// Sessions of the dashboard and the portal, kept here so that every node knows them, and
/// the one-time links that open portal sessions. Only hashes of their tokens are stored.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_web_session(&self, session: &NewWebSession) -> StoreResult<()>;
    /// The session of this kind (portal or dashboard) whose token hashes to `token_hash`,
    /// if it is live at `now` — seen within its idle time, before its `expires_at`, its
    /// admin key neither revoked nor expired, its portal user not deleted — and marks it
    /// seen at `now`. A session found dead is deleted; one of the other kind is untouched.
    async fn touch_web_session(
        &self,
        token_hash: &str,
        portal: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<WebSession>>;
    /// Ends a session (signing out); ending one that does not exist is not an error.
    async fn delete_web_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Stores a one-time portal link for an existing, undeleted user (`NotFound`
    /// otherwise), audited as `portal_session.create`.
    async fn create_portal_link(
        &self,
        user: &UserId,
        token_hash: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Uses a portal link and opens its session in one transaction (so revoking the
    /// user's sessions cannot fall between the two): the user it opens, the first time
    /// only and before it expires, whichever node asks. `session`'s holder is replaced by
    /// the link's user.
    async fn open_portal_session(
        &self,
        link_hash: &str,
        session: &NewWebSession,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<UserId>>;
    /// Ends every portal link and session of the user, audited as `portal_session.revoke`;
    /// how many ended.
    async fn revoke_portal_sessions(&self, user: &UserId, actor: &Actor) -> StoreResult<u64>;
    /// Deletes sessions and links that ended before `now`.
    async fn prune_web_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;
}

/// Event webhooks: endpoints, the events raised with the changes they describe (in the
/// same transaction), and each event's delivery to each endpoint subscribed to it.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Each change below is audited (`webhook.*`) by `actor` in its own transaction; the
    /// audit record never holds a secret.
    async fn create_webhook(&self, new: &NewWebhook, actor: &Actor) -> StoreResult<WebhookRecord>;
    async fn get_webhook(&self, id: &str) -> StoreResult<WebhookRecord>;
    /// Newest first.
    async fn list_webhooks(&self, page: &PageRequest) -> StoreResult<Page<WebhookRecord>>;
    async fn update_webhook(
        &self,
        id: &str,
        patch: &WebhookPatch,
        actor: &Actor,
    ) -> StoreResult<WebhookRecord>;
    /// Deletes the endpoint; its undelivered deliveries end as `dead`.
    async fn delete_webhook(&self, id: &str, actor: &Actor) -> StoreResult<WebhookRecord>;
    /// A new signing secret; the current one keeps signing until `overlap_until`.
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        overlap_until: chrono::DateTime<chrono::Utc>,
        actor: &Actor,
    ) -> StoreResult<WebhookRecord>;
    /// Raises an event no other change carries (found by a background task): kept, and
    /// opened to every enabled endpoint subscribed to `kind`. Returns its id.
    async fn raise_webhook_event(
        &self,
        kind: &str,
        subject: &serde_json::Value,
    ) -> StoreResult<String>;
    /// Claims up to `limit` due deliveries of enabled endpoints until `lease_until` (no
    /// other node attempts them meanwhile), each with its endpoint as it is now.
    async fn claim_webhook_deliveries(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(WebhookDelivery, WebhookRecord)>>;
    /// Records how an attempt ended, if `claim` still holds the delivery (a 2xx is never sent
    /// again; 410 disables the endpoint).
    async fn finish_webhook_delivery(
        &self,
        delivery_id: &str,
        claim: &str,
        attempt: &WebhookAttempt,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Disables endpoints whose attempts all failed since `failing_before`; how many.
    async fn disable_failing_webhooks(
        &self,
        failing_before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64>;
    /// An endpoint's deliveries, newest first.
    async fn list_webhook_deliveries(
        &self,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>>;
    /// Sends again every kept event since `since` the endpoint subscribes to now; how many.
    async fn replay_webhook_events(
        &self,
        endpoint_id: &str,
        since: chrono::DateTime<chrono::Utc>,
        actor: &Actor,
    ) -> StoreResult<u64>;
    /// Raises `key.expiring` (expiry within `notice`) and `key.expired` (expiry passed) for
    /// active keys not replaced by a rotation, once per key and expiry value whichever node
    /// asks, never for moments before `since`; at most `limit` of each a call. Returns how
    /// many were raised.
    async fn raise_expiry_notices(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        notice: chrono::Duration,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<u32>;
    /// Deletes events raised before `before` and their deliveries; rows deleted.
    async fn prune_webhook_events(&self, before: chrono::DateTime<chrono::Utc>)
    -> StoreResult<u64>;
}

/// Settings, retention, readiness and the schema.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Deletes change-feed entries older than `changes_before` (never the newest),
    /// finished outbox deliveries and their events older than `outbox_before`, and per-node
    /// quota figures not updated since `outbox_before` (their month is long over); returns
    /// rows deleted.
    async fn prune_history(
        &self,
        changes_before: chrono::DateTime<chrono::Utc>,
        outbox_before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64>;
    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>>;
    /// Sets a setting, replacing any value.
    async fn put_setting(&self, name: &str, value: &str) -> StoreResult<()>;
    /// Stores `value` unless the setting exists; returns whether it was stored (so that of
    /// several nodes starting at once, exactly one wins).
    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> StoreResult<bool>;
    /// Cheap round trip proving the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Stores a new admin key (its hash, never the key) under audit.
    async fn create_admin_key(
        &self,
        new: &NewAdminKey,
        actor: &Actor,
    ) -> StoreResult<AdminKeyRecord>;
    /// `NotFound` for an id that does not exist.
    async fn get_admin_key(&self, id: &str) -> StoreResult<AdminKeyRecord>;
    /// Newest first; revoked ones only with `include_revoked`.
    async fn list_admin_keys(
        &self,
        include_revoked: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<AdminKeyRecord>>;
    /// Idempotent: revoking a revoked key returns it unchanged.
    async fn revoke_admin_key(&self, id: &str, actor: &Actor) -> StoreResult<AdminKeyRecord>;
    /// The admin key with this hash, usable or not.
    async fn admin_key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<AdminKeyRecord>>;
    /// Notes a use of the key (`last_used_at`, to the minute).
    async fn touch_admin_key(&self, id: &str, at: chrono::DateTime<chrono::Utc>)
    -> StoreResult<()>;
    /// Applies pending migrations; returns the versions applied.
    async fn migrate(&self) -> StoreResult<Vec<i64>>;
    /// Reverts the newest `steps` applied migrations; returns the versions reverted.
    async fn rollback(&self, steps: u32) -> StoreResult<Vec<i64>>;
    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>>;
    /// A normalised description of the schema (tables, indexes, views, triggers), for
    /// checking that migrations undo exactly what they do.
    async fn schema_snapshot(&self) -> StoreResult<Vec<String>>;
}
