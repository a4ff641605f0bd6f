//! The monthly quota: units admitted for a user's live keys per calendar month (UTC).
//!
//! A backend that shares the quota (Redis) counts it with the windows in one atomic step;
//! otherwise this process counts it ([`LocalQuota`]): it loads the user's month-to-date
//! figure from the [`QuotaBook`] the first time it needs it, then counts in memory, and the
//! book persists what is admitted, so the figure survives restarts. Units are reserved
//! before the windows are asked and given back if they reject, so concurrent requests can
//! never overrun the quota.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyward_core::UserId;

use crate::{LimitKind, LimitStatus};

/// A calendar month (UTC): the quota's period, the same as an invoice's.
pub use keyward_core::billing::Period as Month;

/// What the quota needs from the rest of the service: where admitted units are recorded
/// and stored (the usage pipeline and the store), injected so this crate knows neither.
#[async_trait]
pub trait QuotaBook: Send + Sync + std::fmt::Debug {
    /// This node process's id (chosen at start): the shared quota keeps units per node.
    fn node(&self) -> &str;

    /// Every unit this node process has admitted toward `user`'s quota in `month`, stored
    /// or not.
    fn admitted_here(&self, user: &UserId, month: Month) -> u64;

    /// Records units just admitted (stored later, off the request path).
    fn add_units(&self, user: &UserId, month: Month, units: u64);

    /// How long until every node has stored what it admitted a moment ago.
    fn settle_time(&self) -> Duration;

    /// Units stored for `user` in `month`, all nodes together.
    async fn stored(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<u64, Box<dyn Error + Send + Sync>>;

    /// Units stored for `user` in `month`, per node process.
    async fn stored_by_node(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<Vec<(String, u64)>, Box<dyn Error + Send + Sync>>;
}

const SHARDS: usize = 16;

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved; units used after it.
    Reserved(u64),
    /// Not enough left; units used now.
    Exceeded(u64),
}

/// The quota counted in this process (when no backend shares it).
#[derive(Debug)]
pub struct LocalQuota {
    shards: Vec<Mutex<HashMap<(UserId, Month), u64>>>,
}

impl Default for LocalQuota {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl LocalQuota {
    fn shard(&self, user: &UserId) -> std::sync::MutexGuard<'_, HashMap<(UserId, Month), u64>> {
        self.shards[user.shard(SHARDS)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `cost` units of `quota` for `user` in `month`, loading the month-to-date
    /// figure from the book on first use.
    pub async fn reserve(
        &self,
        book: &dyn QuotaBook,
        user: &UserId,
        month: Month,
        quota: u64,
        cost: u64,
    ) -> Result<Reservation, Box<dyn Error + Send + Sync>> {
        let known = self.shard(user).contains_key(&(user.clone(), month));
        if !known {
            let stored = book.stored(user, month).await?;
            self.shard(user)
                .entry((user.clone(), month))
                .or_insert(stored);
        }
        let mut shard = self.shard(user);
        let used = shard.entry((user.clone(), month)).or_insert(0);
        if used.saturating_add(cost) > quota {
            return Ok(Reservation::Exceeded(*used));
        }
        *used += cost;
        Ok(Reservation::Reserved(*used))
    }

    /// Gives back units reserved for a request the windows then rejected.
    pub fn release(&self, user: &UserId, month: Month, cost: u64) {
        if let Some(used) = self.shard(user).get_mut(&(user.clone(), month)) {
            *used = used.saturating_sub(cost);
        }
    }
}

/// How the month stands, for the rate-limit headers (the `month` item).
pub fn month_status(
    quota: u64,
    used: u64,
    month: Month,
    now: DateTime<Utc>,
    exceeded: bool,
) -> LimitStatus {
    let left = month.seconds_left(now);
    LimitStatus {
        kind: LimitKind::Month,
        own_name: None,
        limit: quota,
        window_seconds: u64::try_from(month.seconds()).unwrap_or(0),
        remaining: quota.saturating_sub(used),
        reset_seconds: if used == 0 { 0 } else { left },
        retry_after: exceeded.then_some(left),
    }
}
