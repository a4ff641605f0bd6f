//! Usage bookkeeping off the request path. Each checked request adds to in-memory tallies
//! (sharded maps, a short lock): per key (`request_count`, `last_used_at`), per user and
//! month (quota), per hour × key × endpoint × status × code × plan (the rollups analytics
//! and invoices read), and a bounded buffer of raw events. A writer task takes everything
//! every flush interval (200 ms by default) and stores it in one transaction, so the figures
//! always agree; what is not written yet is flushed on shutdown, and a failed write is kept
//! and retried. A node killed without a chance to flush loses at most its last interval.
//!
//! Counts are never dropped: the tallies are bounded by the number of distinct keys and
//! tuples in use, not by traffic. Raw events are the one thing shed under overload (beyond
//! [`MAX_PENDING_EVENTS`] waiting), each shed event counted in
//! `keyward_usage_events_shed_total`.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyward_core::{Code, Environment, PlanName, UserId};
use keyward_limiter::{Month, QuotaBook};
use keyward_store::Store;
use ulid::Ulid;

mod drain;
mod tallies;
mod writer;

use tallies::Tallies;
#[cfg(test)]
use tallies::{endpoint_of, method_label};
pub use writer::UsageWriter;

const SHARDS: usize = 16;

/// How often the writer stores what was recorded, unless configured otherwise: a node
/// killed without a chance to flush (SIGKILL, power loss) loses at most the admissions of
/// this last interval and of a write still in flight.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Raw events waiting for the writer, at most (the rest are shed and counted).
pub const MAX_PENDING_EVENTS: usize = 200_000;

/// Longest endpoint kept, in bytes (longer ones are cut at a character boundary).
const MAX_ENDPOINT: usize = 256;

/// Distinct endpoints recorded per key per hour on one node; further ones are recorded as
/// [`OTHER_ENDPOINT`], so clients choosing paths cannot grow the rollups without bound.
const MAX_ENDPOINTS_PER_KEY_HOUR: usize = 100;
const OTHER_ENDPOINT: &str = "other";

/// The key a request was checked with, as usage records it.
#[derive(Debug, Clone, Copy)]
pub struct UsageKey<'a> {
    pub id: Ulid,
    pub user_id: &'a UserId,
    /// The user's plan (what invoices price the hour at).
    pub user_plan: &'a PlanName,
    pub environment: Environment,
}

/// One checked request, as the usage pipeline records it.
#[derive(Debug, Clone, Copy)]
pub struct UsageRecord<'a> {
    pub key: UsageKey<'a>,
    pub code: Code,
    /// The status the client received.
    pub status: u16,
    /// The endpoint the request was for (`""` when not known); its query string is dropped.
    pub endpoint: &'a str,
    pub method: &'a str,
    pub latency: Option<Duration>,
    /// The request's cost (counted as units only when admitted).
    pub cost: u64,
    pub at: DateTime<Utc>,
}

/// The recording side, held by the verifier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    tallies: Arc<Tallies>,
    /// Where the writer stores the tallies (read back for monthly quotas).
    store: Arc<dyn Store>,
    /// This node process's id (a ULID chosen at start), which its quota units are stored
    /// under.
    node: Arc<str>,
    /// How often the writer stores what was recorded.
    interval: Duration,
    /// Rollups and raw events (`--usage on`); without them only what enforcement and the
    /// key object need is kept (`request_count`, `last_used_at`, quota usage).
    analytics: bool,
}

/// The monthly quota's view of usage: what this node admitted (written or not) and what
/// is stored.
#[async_trait]
impl QuotaBook for UsageRecorder {
    fn node(&self) -> &str {
        &self.node
    }

    fn admitted_here(&self, user: &UserId, month: Month) -> u64 {
        self.tallies.quota_total(user, month)
    }

    /// Counts admitted units toward a user's monthly quota (stored by the writer).
    fn add_units(&self, user: &UserId, month: Month, units: u64) {
        self.tallies.add_quota(user, month, units);
    }

    /// How long after a shared limiter lost a quota figure every node (flushing as often
    /// as this one) has written what it admitted before the loss: two flush intervals, at
    /// most 1 s.
    fn settle_time(&self) -> Duration {
        (self.interval * 2).min(Duration::from_secs(1))
    }

    async fn stored(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<u64, Box<dyn Error + Send + Sync>> {
        Ok(self.store.quota_usage(user, &month.label()).await?)
    }

    async fn stored_by_node(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<Vec<(String, u64)>, Box<dyn Error + Send + Sync>> {
        Ok(self.store.quota_usage_by_node(user, &month.label()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::tallies::{RollupHead, RollupShard, Sample, lock};
    use super::*;

    #[test]
    fn endpoints_lose_their_query_and_are_cut_at_a_character_boundary() {
        assert_eq!(endpoint_of("/orders?key=sk_live_x"), "/orders");
        assert_eq!(endpoint_of("/a#frag"), "/a");
        let long = "é".repeat(150);
        let cut = endpoint_of(&long);
        assert!(cut.len() <= 256 && cut.len() >= 255 && long.starts_with(cut));
    }

    #[test]
    fn methods_are_known_values_or_other() {
        assert_eq!(method_label("get"), "GET");
        assert_eq!(method_label(""), "");
        assert_eq!(method_label(&"X".repeat(400_000)), "other");
    }

    #[test]
    fn a_key_gets_100_distinct_endpoints_an_hour_then_other() {
        let mut shard = RollupShard::default();
        let key = Ulid::new();
        for i in 0..100 {
            assert!(shard.admit_endpoint(key, 7, &format!("/e/{i}")));
        }
        assert!(!shard.admit_endpoint(key, 7, "/e/new"));
        assert!(shard.admit_endpoint(key, 7, "/e/5"), "a known one stays");
        assert!(shard.admit_endpoint(Ulid::new(), 7, "/e/new"), "per key");
        assert!(shard.admit_endpoint(key, 8, "/e/new"), "per hour");
        let tallies = Tallies::default();
        lock(&tallies.rollups[0]).endpoints = shard.endpoints;
        tallies.forget_endpoints_before(9);
        assert!(
            tallies
                .rollups
                .iter()
                .all(|shard| lock(shard).endpoints.is_empty())
        );
    }

    #[test]
    fn checks_of_one_rollup_add_up_and_a_failed_write_is_restored() {
        let tallies = Tallies::default();
        let user = UserId::parse("alice").unwrap();
        let (free, pro) = (
            PlanName::parse("free").unwrap(),
            PlanName::parse("pro").unwrap(),
        );
        let id = Ulid::new();
        let key = |plan| UsageKey {
            id,
            user_id: &user,
            user_plan: plan,
            environment: Environment::Live,
        };
        let head = RollupHead::new(id, 7, 200, Code::Valid);
        let sample = |rejected, units, latency_bucket| Sample::new(rejected, units, latency_bucket);
        assert!(tallies.add_check(head, "/a", &key(&free), sample(false, 2, Some(0))));
        assert!(tallies.add_check(head, "/a", &key(&free), sample(true, 0, Some(3))));
        assert!(tallies.add_check(head, "/a", &key(&pro), sample(false, 1, None)));
        let mut taken = tallies.take_rollups();
        taken.sort_by(|a, b| a.0.plan.cmp(&b.0.plan));
        assert_eq!(taken.len(), 2, "one rollup per plan");
        let (first, counts) = &taken[0];
        assert_eq!((&*first.endpoint, first.hour, first.status), ("/a", 7, 200));
        assert_eq!((counts.requests, counts.rejected, counts.units), (2, 1, 2));
        assert_eq!((counts.latency[0], counts.latency[3]), (1, 1));
        assert!(tallies.take_rollups().is_empty(), "taken means gone");
        for (key, counts) in taken {
            tallies.restore_rollup(key, counts);
        }
        assert!(tallies.add_check(head, "/a", &key(&free), sample(false, 5, None)));
        let restored = tallies.take_rollups();
        assert_eq!(restored.len(), 2);
        let free_counts = &restored.iter().find(|(k, _)| k.plan == free).unwrap().1;
        assert_eq!((free_counts.requests, free_counts.units), (3, 7));
    }

    #[test]
    fn a_nodes_quota_totals_count_every_unit_per_user_and_month() {
        let tallies = Tallies::default();
        let month = |raw: &str| Month::parse(raw).unwrap();
        let (alice, bob) = (
            UserId::parse("alice").unwrap(),
            UserId::parse("bob").unwrap(),
        );
        tallies.add_quota(&alice, month("2026-10"), 2);
        tallies.add_quota(&alice, month("2026-11"), 3);
        tallies.add_quota(&alice, month("2026-11"), 4);
        tallies.add_quota(&bob, month("2026-11"), 1);
        assert_eq!(tallies.quota_total(&alice, month("2026-11")), 7);
        assert_eq!(tallies.quota_total(&alice, month("2026-10")), 2);
        assert_eq!(tallies.quota_total(&bob, month("2026-11")), 1);
        assert_eq!(tallies.quota_total(&bob, month("2026-10")), 0);
        // Written or not, they stay: taking the pending units leaves the totals.
        assert_eq!(tallies.take_quota().len(), 3);
        assert_eq!(tallies.quota_total(&alice, month("2026-11")), 7);
        tallies.forget_quota_totals_before(month("2026-11"));
        assert_eq!(tallies.quota_total(&alice, month("2026-10")), 0);
        assert_eq!(tallies.quota_total(&alice, month("2026-11")), 7);
    }
}
