//! The writer's side of the tallies: taking what is pending, putting back what a failed
//! write took, and forgetting hours and months no check needs any more. The request path
//! only adds (`tallies.rs`).

use keyward_core::UserId;
use keyward_limiter::Month;

use super::SHARDS;
use super::tallies::{
    PendingEvent, RollupCounts, RollupHead, RollupKey, Tallies, Tally, lock, shard_of,
};

impl Tallies {
    /// Puts back pending units a failed write took (the running totals already have them).
    pub(super) fn restore_quota(&self, user: &UserId, month: Month, units: u64) {
        *lock(&self.quota[user.shard(SHARDS)])
            .entry((user.clone(), month))
            .or_insert(0) += units;
    }

    /// Puts back a rollup a failed write took.
    pub(super) fn restore_rollup(&self, key: RollupKey, counts: RollupCounts) {
        let head = RollupHead {
            key: key.key,
            hour: key.hour,
            status: key.status,
            code: key.code,
        };
        lock(&self.rollups[shard_of(head.key)]).add(head, &key.endpoint, &key.plan, &counts);
    }

    /// Forgets the endpoints of hours before `hour` (keys not seen this hour).
    pub(super) fn forget_endpoints_before(&self, hour: i64) {
        if self
            .endpoints_hour
            .swap(hour, std::sync::atomic::Ordering::Relaxed)
            == hour
        {
            return;
        }
        for shard in &self.rollups {
            lock(shard)
                .endpoints
                .retain(|_, (seen_hour, _)| *seen_hour >= hour);
        }
    }

    /// Takes the pending quota units: (user, month, units).
    pub(super) fn take_quota(&self) -> Vec<(UserId, Month, u64)> {
        let mut all = Vec::new();
        for shard in &self.quota {
            let taken = std::mem::take(&mut *lock(shard));
            all.extend(
                taken
                    .into_iter()
                    .map(|((user, month), units)| (user, month, units)),
            );
        }
        all
    }

    /// Forgets the quota totals of months before `oldest`.
    pub(super) fn forget_quota_totals_before(&self, oldest: Month) {
        for shard in &self.quota_totals {
            lock(shard).retain(|_, totals| {
                totals.retain(|(month, _)| *month >= oldest);
                !totals.is_empty()
            });
        }
    }

    pub(super) fn take(&self) -> Tally {
        let mut all = Tally::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *lock(shard));
            if all.is_empty() {
                all = taken;
            } else {
                all.extend(taken);
            }
        }
        all
    }

    pub(super) fn take_rollups(&self) -> Vec<(RollupKey, RollupCounts)> {
        let mut all = Vec::new();
        for shard in &self.rollups {
            let taken = std::mem::take(&mut lock(shard).counts);
            for (head, rollups) in taken {
                all.extend(rollups.into_iter().map(|(endpoint, plan, counts)| {
                    let key = RollupKey {
                        key: head.key,
                        hour: head.hour,
                        endpoint,
                        status: head.status,
                        code: head.code,
                        plan,
                    };
                    (key, counts)
                }));
            }
        }
        all
    }

    pub(super) fn take_events(&self) -> Vec<(usize, Vec<PendingEvent>)> {
        self.events
            .iter()
            .enumerate()
            .map(|(shard, queue)| (shard, std::mem::take(&mut *lock(queue))))
            .filter(|(_, events)| !events.is_empty())
            .collect()
    }
}
