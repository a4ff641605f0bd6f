//! Monthly quotas: admitted units of a user's live keys per calendar month
//! (UTC). A node loads a user's month-to-date figure from the store the first time it
//! needs it, then counts in memory; the usage writer persists what it adds, so the figure
//! survives restarts. Units are reserved before the rate limits are asked and returned if
//! they reject, so concurrent requests can never overrun the quota.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use keyward_core::UserId;
use keyward_store::{Store, StoreError};

use crate::limiter::LimitStatus;

const SHARDS: usize = 16;

/// A calendar month (UTC): the quota's period, the same as an invoice's.
pub use keyward_core::billing::Period as Month;

/// Which of `shards` sharded maps a user's entries live in (FNV-1a over the id).
pub fn user_shard(user: &UserId, shards: usize) -> usize {
    let hash = user
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % shards as u64) as usize
}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved; units used after it.
    Reserved(u64),
    /// Not enough left; units used now.
    Exceeded(u64),
}

#[derive(Debug)]
pub struct QuotaTracker {
    shards: Vec<Mutex<HashMap<(UserId, Month), u64>>>,
}

impl Default for QuotaTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl QuotaTracker {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, user: &UserId) -> &Mutex<HashMap<(UserId, Month), u64>> {
        &self.shards[user_shard(user, SHARDS)]
    }

    /// Reserves `cost` units of `quota` for `user` in `month`, loading the month-to-date
    /// figure from the store on first use.
    pub async fn reserve(
        &self,
        store: &dyn Store,
        user: &UserId,
        month: Month,
        quota: u64,
        cost: u64,
    ) -> Result<Reservation, StoreError> {
        let known = self
            .shard(user)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&(user.clone(), month));
        if !known {
            let stored = store.quota_usage(user, &month.label()).await?;
            self.shard(user)
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry((user.clone(), month))
                .or_insert(stored);
        }
        let mut shard = self
            .shard(user)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let used = shard.entry((user.clone(), month)).or_insert(0);
        if used.saturating_add(cost) > quota {
            return Ok(Reservation::Exceeded(*used));
        }
        *used += cost;
        Ok(Reservation::Reserved(*used))
    }

    /// Gives back units reserved for a request the rate limits then rejected.
    pub fn release(&self, user: &UserId, month: Month, cost: u64) {
        let mut shard = self
            .shard(user)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(used) = shard.get_mut(&(user.clone(), month)) {
            *used = used.saturating_sub(cost);
        }
    }
}

/// The `month` item of the rate-limit headers.
pub fn month_status(
    quota: u64,
    used: u64,
    month: Month,
    now: DateTime<Utc>,
    exceeded: bool,
) -> LimitStatus {
    let left = month.seconds_left(now);
    LimitStatus {
        name: "month".into(),
        limit: quota,
        window_seconds: u64::try_from(month.seconds()).unwrap_or(0),
        remaining: quota.saturating_sub(used),
        reset_seconds: if used == 0 { 0 } else { left },
        retry_after: exceeded.then_some(left),
    }
}
