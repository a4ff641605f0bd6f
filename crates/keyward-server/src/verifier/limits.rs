//! The verifier's limits: the monthly quota (shared through Redis, or reserved in this
//! process) and the rate limits, asked once a key has passed its state, address and scope
//! checks.

use chrono::{DateTime, Utc};
use keyward_core::{Code, Environment, Plan};
use keyward_limiter::{QuotaCheck, QuotaState};

use super::{CachedKey, Unavailable, Verifier, self_service_owner};
use crate::limiter::{LimitCheck, Outcome, effective_windows};
use crate::quota::{Month, Reservation, month_status};

impl Verifier {
    /// Asks the monthly quota (the user's plan, live keys only) and the rate limits (the
    /// key's windows and its plan's burst bucket). Quota units are reserved first and given
    /// back if a window rejects, so concurrent requests cannot overrun the quota, and a
    /// rejected request consumes nothing.
    pub(super) async fn limit(
        &self,
        key: &CachedKey,
        plan: &Plan,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<(Code, Outcome), Unavailable> {
        let windows = effective_windows(key, plan);
        let mut limit_check = LimitCheck {
            owner: key.lineage.0,
            group: key.user_id.as_str(),
            quota: None,
            windows: &windows,
            burst: plan.spec.burst.as_ref(),
            cost,
            now_ms: u64::try_from(now.timestamp_millis()).unwrap_or(0),
        };
        let month = Month::of(now);
        let quota = match key.environment {
            Environment::Live => self.plan(&key.user_plan).and_then(|p| p.spec.monthly_quota),
            Environment::Test => None,
        };
        if let Some(limit) = quota
            && self.limiter.shares_quota()
        {
            let period = month.label();
            // The counter outlives the month by a week, so a late node still finds it.
            let ttl_seconds = month.seconds_left(now) + 7 * 86_400;
            limit_check.quota = Some(QuotaCheck {
                period: &period,
                limit,
                ttl_seconds,
                node: self.usage.node(),
                node_units: self.usage.quota_total(&key.user_id, &period),
            });
            let mut outcome = self.ask_limiter(&limit_check).await?;
            if outcome.quota == Some(QuotaState::Unknown) {
                // The shared figure is missing (first use this month, or Redis lost it):
                // rebuild it from stored usage per node, then ask again.
                let read = || async {
                    self.store
                        .quota_usage_by_node(&key.user_id, &period)
                        .await
                        .map_err(|error| {
                            tracing::warn!(%error, "cannot read quota usage");
                            Unavailable
                        })
                };
                let mut stored = read().await?;
                if !stored.is_empty() || self.usage.quota_total(&key.user_id, &period) > 0 {
                    // Units were admitted this month, so Redis lost a figure it had: other
                    // nodes may hold units admitted before the loss and not written yet.
                    // Give them the time to write them (a rare wait, for this user's checks
                    // only), then read again. A node that could not write raises its own
                    // figure at its next check, from what it knows it admitted.
                    tokio::time::sleep(self.usage.settle_time()).await;
                    stored = read().await?;
                }
                self.limiter
                    .seed_quota(key.user_id.as_str(), &period, &stored, ttl_seconds)
                    .await
                    .map_err(|error| {
                        tracing::warn!(%error, "cannot seed the shared quota");
                        Unavailable
                    })?;
                outcome = self.ask_limiter(&limit_check).await?;
            }
            match outcome.quota {
                Some(QuotaState::Used { used, exceeded }) => {
                    if outcome.admitted {
                        self.usage.record_quota(&key.user_id, &period, cost);
                    }
                    outcome
                        .limits
                        .push(month_status(limit, used, month, now, exceeded));
                    let code = if exceeded {
                        Code::QuotaExceeded
                    } else if outcome.admitted {
                        Code::Valid
                    } else {
                        Code::RateLimited
                    };
                    return Ok((code, outcome));
                }
                Some(QuotaState::Unknown) => return Err(Unavailable),
                // The shared backend failed and its fallback keeps no quota: count it here.
                None => {
                    if outcome.admitted {
                        return Ok(self
                            .count_quota_locally(key, limit, month, now, cost, outcome)
                            .await);
                    }
                    return Ok((Code::RateLimited, outcome));
                }
            }
        }
        let mut reserved = None;
        if let Some(quota) = quota {
            let reservation = self
                .quota
                .reserve(&*self.store, &key.user_id, month, quota, cost)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "cannot read quota usage");
                    Unavailable
                })?;
            match reservation {
                Reservation::Reserved(used) => reserved = Some((quota, used)),
                Reservation::Exceeded(used) => {
                    // Report the windows as they stand, consuming nothing.
                    limit_check.cost = 0;
                    let mut outcome = self.ask_limiter(&limit_check).await?;
                    outcome.admitted = false;
                    outcome
                        .limits
                        .push(month_status(quota, used, month, now, true));
                    return Ok((Code::QuotaExceeded, outcome));
                }
            }
        }
        let outcome = self.ask_limiter(&limit_check).await;
        let mut outcome = match outcome {
            Ok(outcome) => outcome,
            Err(unavailable) => {
                if reserved.is_some() {
                    self.quota.release(&key.user_id, month, cost);
                }
                return Err(unavailable);
            }
        };
        if let Some((quota, used)) = reserved {
            let used = if outcome.admitted {
                self.usage.record_quota(&key.user_id, &month.label(), cost);
                used
            } else {
                self.quota.release(&key.user_id, month, cost);
                used - cost
            };
            outcome
                .limits
                .push(month_status(quota, used, month, now, false));
        }
        let code = if outcome.admitted {
            Code::Valid
        } else {
            Code::RateLimited
        };
        Ok((code, outcome))
    }

    /// Counts an already admitted request against this node's quota figure (used only while
    /// a quota-sharing backend is failing over to one that keeps none).
    async fn count_quota_locally(
        &self,
        key: &CachedKey,
        limit: u64,
        month: Month,
        now: DateTime<Utc>,
        cost: u64,
        mut outcome: Outcome,
    ) -> (Code, Outcome) {
        match self
            .quota
            .reserve(&*self.store, &key.user_id, month, limit, cost)
            .await
        {
            Ok(Reservation::Reserved(used)) => {
                self.usage.record_quota(&key.user_id, &month.label(), cost);
                outcome
                    .limits
                    .push(month_status(limit, used, month, now, false));
                (Code::Valid, outcome)
            }
            Ok(Reservation::Exceeded(used)) => {
                outcome.admitted = false;
                outcome
                    .limits
                    .push(month_status(limit, used, month, now, true));
                (Code::QuotaExceeded, outcome)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read quota usage; admitting");
                (Code::Valid, outcome)
            }
        }
    }

    /// Counts one management call made with a key of `user` against `limit` calls per
    /// 60-second window (exact, and shared through Redis when configured). `Some(seconds)`
    /// when the call must be refused.
    pub async fn self_service_call(
        &self,
        user: &keyward_core::UserId,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, Unavailable> {
        if limit == 0 {
            return Ok(None);
        }
        let windows = [keyward_core::Window::new(60, u64::from(limit))];
        let outcome = self
            .ask_limiter(&LimitCheck {
                owner: self_service_owner(user),
                group: user.as_str(),
                quota: None,
                windows: &windows,
                burst: None,
                cost: 1,
                now_ms: u64::try_from(now.timestamp_millis()).unwrap_or(0),
            })
            .await?;
        Ok((!outcome.admitted).then(|| outcome.retry_after().unwrap_or(1)))
    }

    pub(super) async fn ask_limiter(&self, check: &LimitCheck<'_>) -> Result<Outcome, Unavailable> {
        self.limiter.check(check).await.map_err(|error| {
            tracing::warn!(%error, "limiter unavailable");
            Unavailable
        })
    }
}
