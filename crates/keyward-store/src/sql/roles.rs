//! The store's roles, implemented once for both backends: each method opens what it needs
//! and hands over to the module of its concern (`keys`, `users`, `plans`, `audit`, `usage`,
//! `billing`, `import`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyward_core::{KeyHash, KeyId, Plan, PlanName, UserId};

use super::super::{MIGRATOR, SCHEMA_SNAPSHOT};
use super::{
    Backend, add_key_usage, add_quota, admin_keys, audit, billing, import, keys, now, plans,
    retry_read, rows, sessions, usage, users, webhook_outbox, webhooks,
};
use crate::{
    Actor, AdminKeyRecord, AdminStore, AuditFilter, AuditRecord, BillingEvent, BillingStore,
    ChangeEvent, Delivery, DeliveryOutcome, DeliveryStatus, FeedStore, ImportMode, ImportReport,
    ImportRow, KeyFilter, KeyMaterial, KeyPatch, KeyRecord, KeySpec, KeyStore, KeyUsage,
    LeakAction, LeakFound, LeakReport, MeteredHour, MigrationInfo, NewAdminKey, NewUser,
    NewWebSession, NewWebhook, Page, PageRequest, PlanSegment, PriceChange, QuotaUsage, Rollup,
    Rotation, SessionStore, StoreResult, UsageBatch, UsageFilter, UsageGroup, UsageStore,
    UsageTotal, UserFilter, UserPatch, UserRecord, UserStore, WebSession, WebhookAttempt,
    WebhookDelivery, WebhookPatch, WebhookRecord, WebhookStore,
};

#[async_trait]
impl KeyStore for Backend {
    async fn create_key(
        &self,
        spec: &KeySpec,
        material: &KeyMaterial,
        actor: &Actor,
    ) -> StoreResult<KeyRecord> {
        keys::create(self, spec, material, actor).await
    }

    async fn get_key(&self, id: &KeyId) -> StoreResult<KeyRecord> {
        retry_read(|| async {
            let mut conn = self.pool.acquire().await?;
            keys::fetch(&mut conn, id).await
        })
        .await
    }

    async fn list_keys(&self, filter: &KeyFilter) -> StoreResult<Page<KeyRecord>> {
        retry_read(|| keys::list(self, filter)).await
    }

    async fn update_key(
        &self,
        id: &KeyId,
        patch: &KeyPatch,
        actor: &Actor,
    ) -> StoreResult<KeyRecord> {
        keys::update(self, id, patch, actor).await
    }

    async fn revoke_key(&self, id: &KeyId, actor: &Actor) -> StoreResult<KeyRecord> {
        keys::revoke(self, id, actor).await
    }

    async fn report_leaks(
        &self,
        reports: &[(KeyHash, LeakReport)],
        action: LeakAction,
    ) -> StoreResult<Vec<Option<LeakFound>>> {
        keys::report_leaks(self, reports, action).await
    }

    async fn rotate_key(
        &self,
        id: &KeyId,
        rotation: &Rotation,
        material: &KeyMaterial,
        actor: &Actor,
    ) -> StoreResult<(KeyRecord, KeyRecord)> {
        keys::rotate(self, id, rotation, material, actor).await
    }

    async fn lookup(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        retry_read(|| keys::lookup(self, hash)).await
    }

    async fn has_imported_keys(&self) -> StoreResult<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE imported = TRUE)")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn import_keys(
        &self,
        rows: &[ImportRow],
        mode: ImportMode,
        actor: &Actor,
    ) -> StoreResult<ImportReport> {
        import::import(self, rows, mode, actor).await
    }
}

#[async_trait]
impl UserStore for Backend {
    async fn create_user(&self, user: &NewUser, actor: &Actor) -> StoreResult<UserRecord> {
        users::create(self, user, actor).await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<UserRecord> {
        retry_read(|| async {
            let mut conn = self.pool.acquire().await?;
            users::fetch(&mut conn, id, now()).await
        })
        .await
    }

    async fn list_users(&self, filter: &UserFilter) -> StoreResult<Page<UserRecord>> {
        retry_read(|| users::list(self, filter)).await
    }

    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        actor: &Actor,
    ) -> StoreResult<UserRecord> {
        users::update(self, id, patch, actor).await
    }

    async fn delete_user(&self, id: &UserId, actor: &Actor) -> StoreResult<UserRecord> {
        users::delete(self, id, actor).await
    }

    async fn revoke_user_keys(&self, id: &UserId, actor: &Actor) -> StoreResult<u64> {
        users::revoke_keys(self, id, actor).await
    }

    async fn list_plans(&self) -> StoreResult<Vec<Plan>> {
        retry_read(|| plans::list(self)).await
    }

    async fn get_plan(&self, name: &PlanName) -> StoreResult<Plan> {
        retry_read(|| async {
            let mut conn = self.pool.acquire().await?;
            plans::fetch(&mut conn, name).await
        })
        .await
    }

    async fn put_plan(&self, plan: &Plan, actor: &Actor) -> StoreResult<Plan> {
        plans::put(self, plan, actor).await
    }
}

#[async_trait]
impl FeedStore for Backend {
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Page<AuditRecord>> {
        retry_read(|| audit::list(self, filter)).await
    }

    async fn latest_change(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM change_events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEvent>> {
        retry_read(|| audit::changes_since(self, after, limit)).await
    }
}

#[async_trait]
impl UsageStore for Backend {
    async fn record_key_usage(&self, usage: &[KeyUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        add_key_usage(&mut tx, usage).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_quota_usage(&self, usage: &[QuotaUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        add_quota(&mut tx, usage, now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_usage(&self, batch: &UsageBatch) -> StoreResult<()> {
        usage::record(self, batch).await
    }

    async fn usage_rollups(&self, filter: &UsageFilter) -> StoreResult<Vec<Rollup>> {
        retry_read(|| usage::rollups(self, filter)).await
    }

    async fn usage_totals(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> StoreResult<Vec<UsageTotal>> {
        retry_read(|| usage::totals(self, filter, group)).await
    }

    async fn prune_usage(
        &self,
        events_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        usage::prune(self, events_before, rollups_before).await
    }

    async fn plan_segments(&self, user_id: &UserId) -> StoreResult<Vec<PlanSegment>> {
        retry_read(|| usage::segments(self, user_id)).await
    }

    async fn price_history(&self) -> StoreResult<Vec<PriceChange>> {
        retry_read(|| usage::prices(self)).await
    }

    async fn quota_usage(&self, user_id: &UserId, period: &str) -> StoreResult<u64> {
        let units: Option<i64> =
            sqlx::query_scalar("SELECT units FROM quota_usage WHERE user_id = $1 AND period = $2")
                .bind(user_id.as_str())
                .bind(period)
                .fetch_optional(&self.pool)
                .await?;
        Ok(units.map_or(0, |u| u64::try_from(u).unwrap_or(0)))
    }

    async fn quota_usage_by_node(
        &self,
        user_id: &UserId,
        period: &str,
    ) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT node, units FROM quota_usage_by_node WHERE user_id = $1 AND period = $2",
        )
        .bind(user_id.as_str())
        .bind(period)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(node, units)| (node, u64::try_from(units).unwrap_or(0)))
            .collect())
    }
}

#[async_trait]
impl WebhookStore for Backend {
    async fn create_webhook(&self, new: &NewWebhook, actor: &Actor) -> StoreResult<WebhookRecord> {
        webhooks::create(self, new, actor).await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<WebhookRecord> {
        retry_read(|| webhooks::get(self, id)).await
    }

    async fn list_webhooks(&self, page: &PageRequest) -> StoreResult<Page<WebhookRecord>> {
        retry_read(|| webhooks::list(self, page)).await
    }

    async fn update_webhook(
        &self,
        id: &str,
        patch: &WebhookPatch,
        actor: &Actor,
    ) -> StoreResult<WebhookRecord> {
        webhooks::update(self, id, patch, actor).await
    }

    async fn delete_webhook(&self, id: &str, actor: &Actor) -> StoreResult<WebhookRecord> {
        webhooks::delete(self, id, actor).await
    }

    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        overlap_until: DateTime<Utc>,
        actor: &Actor,
    ) -> StoreResult<WebhookRecord> {
        webhooks::rotate_secret(self, id, secret, overlap_until, actor).await
    }

    async fn raise_webhook_event(
        &self,
        kind: &str,
        subject: &serde_json::Value,
    ) -> StoreResult<String> {
        webhook_outbox::raise_alone(self, kind, subject).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(WebhookDelivery, WebhookRecord)>> {
        webhook_outbox::claim(self, now, lease_until, limit).await
    }

    async fn finish_webhook_delivery(
        &self,
        delivery_id: &str,
        claim: &str,
        attempt: &WebhookAttempt,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        webhook_outbox::finish(self, delivery_id, claim, attempt, now).await
    }

    async fn disable_failing_webhooks(&self, failing_before: DateTime<Utc>) -> StoreResult<u64> {
        webhook_outbox::disable_failing(self, failing_before).await
    }

    async fn list_webhook_deliveries(
        &self,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>> {
        retry_read(|| webhook_outbox::deliveries(self, endpoint_id, page)).await
    }

    async fn replay_webhook_events(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
        actor: &Actor,
    ) -> StoreResult<u64> {
        webhook_outbox::replay(self, endpoint_id, since, actor).await
    }

    async fn raise_expiry_notices(
        &self,
        now: DateTime<Utc>,
        notice: chrono::Duration,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<u32> {
        keys::raise_expiry_notices(self, now, notice, since, limit).await
    }

    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let pruned = webhook_outbox::prune(&mut tx, before).await?;
        tx.commit().await?;
        Ok(pruned)
    }
}

#[async_trait]
impl BillingStore for Backend {
    async fn add_billing_events(&self, events: &[BillingEvent]) -> StoreResult<()> {
        billing::add_events(self, events).await
    }

    async fn metered_hours(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<MeteredHour>> {
        retry_read(|| billing::metered(self, from, to)).await
    }

    async fn record_metering(
        &self,
        hour: &MeteredHour,
        expected_revisions: u32,
        event: &BillingEvent,
    ) -> StoreResult<bool> {
        billing::record_metering(self, hour, expected_revisions, event).await
    }

    async fn claim_deliveries(
        &self,
        sink: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        billing::claim(self, sink, since, now, lease_until, limit).await
    }

    async fn finish_delivery(
        &self,
        event_id: &str,
        sink: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        billing::finish(self, event_id, sink, outcome, now).await
    }

    async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        retry_read(|| billing::list(self, status, limit)).await
    }

    async fn billing_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<BillingEvent>> {
        retry_read(|| billing::events(self, from, to)).await
    }
}

#[async_trait]
impl SessionStore for Backend {
    async fn create_web_session(&self, session: &NewWebSession) -> StoreResult<()> {
        sessions::create(self, session).await
    }

    async fn touch_web_session(
        &self,
        token_hash: &str,
        portal: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebSession>> {
        sessions::touch(self, token_hash, portal, now).await
    }

    async fn delete_web_session(&self, token_hash: &str) -> StoreResult<()> {
        sessions::delete(self, token_hash).await
    }

    async fn create_portal_link(
        &self,
        user: &UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        actor: &Actor,
    ) -> StoreResult<()> {
        sessions::create_link(self, user, token_hash, expires_at, actor).await
    }

    async fn open_portal_session(
        &self,
        link_hash: &str,
        session: &NewWebSession,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        sessions::open_portal(self, link_hash, session, now).await
    }

    async fn revoke_portal_sessions(&self, user: &UserId, actor: &Actor) -> StoreResult<u64> {
        sessions::revoke_user(self, user, actor).await
    }

    async fn prune_web_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        sessions::prune(self, now).await
    }
}

#[async_trait]
impl AdminStore for Backend {
    async fn prune_history(
        &self,
        changes_before: DateTime<Utc>,
        outbox_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // The newest change stays, whatever its age: followers resume after its id.
        let changes = sqlx::query(
            "DELETE FROM change_events WHERE at < $1
             AND id < (SELECT MAX(id) FROM change_events)",
        )
        .bind(rows::ts(changes_before))
        .execute(&mut *tx)
        .await?;
        let outbox = billing::prune(&mut tx, outbox_before).await?;
        let quota = sqlx::query("DELETE FROM quota_usage_by_node WHERE updated_at < $1")
            .bind(rows::ts(outbox_before))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(changes.rows_affected() + outbox + quota.rows_affected())
    }

    async fn create_admin_key(
        &self,
        new: &NewAdminKey,
        actor: &Actor,
    ) -> StoreResult<AdminKeyRecord> {
        admin_keys::create(self, new, actor).await
    }

    async fn get_admin_key(&self, id: &str) -> StoreResult<AdminKeyRecord> {
        retry_read(|| admin_keys::get(self, id)).await
    }

    async fn list_admin_keys(
        &self,
        include_revoked: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<AdminKeyRecord>> {
        retry_read(|| admin_keys::list(self, include_revoked, page)).await
    }

    async fn revoke_admin_key(&self, id: &str, actor: &Actor) -> StoreResult<AdminKeyRecord> {
        admin_keys::revoke(self, id, actor).await
    }

    async fn admin_key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<AdminKeyRecord>> {
        retry_read(|| admin_keys::by_hash(self, hash)).await
    }

    async fn touch_admin_key(
        &self,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        admin_keys::touch(self, id, at).await
    }

    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_setting(&self, name: &str, value: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(rows::ts(now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> StoreResult<bool> {
        let result = sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(rows::ts(now()))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let applied: Vec<i64> = self
            .applied_migrations()
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        MIGRATOR.run(&self.pool).await?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| m.version)
            .collect())
    }

    async fn rollback(&self, steps: u32) -> StoreResult<Vec<i64>> {
        let mut applied: Vec<i64> = self
            .applied_migrations()
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        applied.reverse();
        let steps = (steps as usize).min(applied.len());
        let target = applied.get(steps).copied().unwrap_or(0);
        MIGRATOR.undo(&self.pool, target).await?;
        Ok(applied[..steps].to_vec())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>> {
        let applied = self.applied_migrations().await?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| {
                let at = applied
                    .iter()
                    .find(|(v, _)| *v == m.version)
                    .map(|(_, at)| *at);
                MigrationInfo {
                    version: m.version,
                    description: m.description.to_string(),
                    applied: at.is_some(),
                    applied_at: at,
                }
            })
            .collect())
    }

    async fn schema_snapshot(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(SCHEMA_SNAPSHOT)
            .fetch_all(&self.pool)
            .await?)
    }
}
