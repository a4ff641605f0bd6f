//! [`Limits`]: the one call a request's limits take. It asks the monthly quota and the
//! windows and burst bucket in the right order and with the right strategy for the backend
//! (the quota shared with the windows in one Redis script, or reserved in this process
//! first), and answers with the decision code.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyward_core::{Burst, Code, UserId, Window};

use crate::quota::{LocalQuota, Month, QuotaBook, Reservation, month_status};
use crate::{Check, Limiter, LimiterError, Outcome, QuotaCheck, QuotaState};

/// What applies to one request.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Whose windows and burst bucket: a key's lineage (rotation keeps it).
    pub owner: u128,
    /// The key's user: its quota, and the group a shared backend keeps together.
    pub user: &'a UserId,
    pub windows: Windows<'a>,
    pub burst: Option<&'a Burst>,
    /// The user's monthly quota, when one applies (live keys of a plan that has one).
    pub monthly_quota: Option<u64>,
    pub cost: u64,
    pub now: DateTime<Utc>,
}

/// The windows that apply to a key: its own, if it has any, else its plan's; the key's
/// hourly limit then replaces the one-hour window's max, or adds a one-hour window.
#[derive(Debug, Clone, Copy)]
pub struct Windows<'a> {
    pub plan: &'a [Window],
    pub own: Option<&'a [Window]>,
    pub per_hour: Option<u64>,
}

impl<'a> Windows<'a> {
    /// Exactly these windows.
    pub const fn exactly(windows: &'a [Window]) -> Self {
        Self {
            plan: windows,
            own: None,
            per_hour: None,
        }
    }

    /// The windows to check, shortest first when an hour was added.
    pub fn applied(&self) -> Cow<'a, [Window]> {
        let base = self.own.unwrap_or(self.plan);
        let Some(per_hour) = self.per_hour else {
            return Cow::Borrowed(base);
        };
        let mut windows = base.to_vec();
        match windows.iter_mut().find(|w| w.window_seconds == 3600) {
            Some(hour) => hour.max = per_hour,
            None => {
                windows.push(Window::new(3600, per_hour));
                windows.sort_by_key(|w| w.window_seconds);
            }
        }
        Cow::Owned(windows)
    }
}

/// The limits' answer: `VALID`, `QUOTA_EXCEEDED` or `RATE_LIMITED`, and how every limit
/// stands (windows in order, the burst bucket, then the month).
#[derive(Debug, Clone)]
pub struct Verdict {
    pub code: Code,
    pub outcome: Outcome,
}

impl Verdict {
    fn of(outcome: Outcome) -> Self {
        let code = if outcome.admitted {
            Code::Valid
        } else {
            Code::RateLimited
        };
        Self { code, outcome }
    }
}

/// Every limit of a request, asked in one call.
#[derive(Debug)]
pub struct Limits {
    backend: Arc<dyn Limiter>,
    local_quota: LocalQuota,
    book: Arc<dyn QuotaBook>,
}

impl Limits {
    pub fn new(backend: Arc<dyn Limiter>, book: Arc<dyn QuotaBook>) -> Self {
        Self {
            backend,
            local_quota: LocalQuota::default(),
            book,
        }
    }

    /// Asks the monthly quota and the windows and burst bucket. Admitted only if every
    /// limit admits (consuming the cost everywhere); a rejected request consumes nothing.
    pub async fn check(&self, ask: &Ask<'_>) -> Result<Verdict, LimiterError> {
        let windows = ask.windows.applied();
        let check = Check {
            owner: ask.owner,
            group: ask.user,
            quota: None,
            windows: &windows,
            burst: ask.burst,
            cost: ask.cost,
            now_ms: u64::try_from(ask.now.timestamp_millis()).unwrap_or(0),
        };
        match ask.monthly_quota {
            None => Ok(Verdict::of(self.ask_backend(&check).await?)),
            Some(limit) if self.backend.shares_quota() => {
                self.shared_quota(ask, check, Month::of(ask.now), limit)
                    .await
            }
            Some(limit) => {
                self.local_quota(ask, check, Month::of(ask.now), limit)
                    .await
            }
        }
    }

    /// Counts one call of `user` against `limit` calls per 60-second window (exact, and
    /// shared through Redis when configured). `Some(seconds)` when it must be refused.
    pub async fn per_user_window(
        &self,
        scope: &str,
        user: &UserId,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, LimiterError> {
        if limit == 0 {
            return Ok(None);
        }
        let windows = [Window::new(60, u64::from(limit))];
        let outcome = self
            .ask_backend(&Check {
                owner: per_user_owner(scope, user),
                group: user,
                quota: None,
                windows: &windows,
                burst: None,
                cost: 1,
                now_ms: u64::try_from(now.timestamp_millis()).unwrap_or(0),
            })
            .await?;
        Ok((!outcome.admitted).then(|| outcome.retry_after().unwrap_or(1)))
    }

    /// The quota kept by the backend, in the same atomic step as the windows.
    async fn shared_quota(
        &self,
        ask: &Ask<'_>,
        mut check: Check<'_>,
        month: Month,
        limit: u64,
    ) -> Result<Verdict, LimiterError> {
        let user = ask.user;
        // The counter outlives the month by a week, so a late node still finds it.
        let ttl_seconds = month.seconds_left(ask.now) + 7 * 86_400;
        check.quota = Some(QuotaCheck {
            period: month,
            limit,
            ttl_seconds,
            node: self.book.node(),
            node_units: self.book.admitted_here(user, month),
        });
        let mut outcome = self.ask_backend(&check).await?;
        if outcome.quota == Some(QuotaState::Unknown) {
            // The shared figure is missing (first use this month, or Redis lost it):
            // rebuild it from stored usage per node, then ask again.
            let mut stored = self.stored_by_node(user, month).await?;
            if !stored.is_empty() || self.book.admitted_here(user, month) > 0 {
                // Units were admitted this month, so Redis lost a figure it had: other
                // nodes may hold units admitted before the loss and not stored yet. Give
                // them the time to store them (a rare wait, for this user's checks only),
                // then read again. A node that could not store raises its own figure at
                // its next check, from what it knows it admitted.
                tokio::time::sleep(self.book.settle_time()).await;
                stored = self.stored_by_node(user, month).await?;
            }
            self.backend
                .seed_quota(user.as_str(), month, &stored, ttl_seconds)
                .await
                .inspect_err(|error| tracing::warn!(%error, "cannot seed the shared quota"))?;
            outcome = self.ask_backend(&check).await?;
        }
        match outcome.quota {
            Some(QuotaState::Used { used, exceeded }) => {
                if outcome.admitted {
                    self.book.add_units(user, month, ask.cost);
                }
                outcome
                    .limits
                    .push(month_status(limit, used, month, ask.now, exceeded));
                let code = if exceeded {
                    Code::QuotaExceeded
                } else if outcome.admitted {
                    Code::Valid
                } else {
                    Code::RateLimited
                };
                Ok(Verdict { code, outcome })
            }
            Some(QuotaState::Unknown) => Err(LimiterError(
                "the shared quota is still missing after seeding".to_owned(),
            )),
            // The shared backend failed and its fallback keeps no quota: count it here.
            None if outcome.admitted => {
                Ok(self.count_after_admission(ask, month, limit, outcome).await)
            }
            None => Ok(Verdict::of(outcome)),
        }
    }

    /// The quota counted in this process: units reserved first, given back if a window
    /// rejects.
    async fn local_quota(
        &self,
        ask: &Ask<'_>,
        mut check: Check<'_>,
        month: Month,
        limit: u64,
    ) -> Result<Verdict, LimiterError> {
        let user = ask.user;
        let reservation = self
            .local_quota
            .reserve(&*self.book, user, month, limit, ask.cost)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot read quota usage");
                LimiterError("cannot read quota usage".to_owned())
            })?;
        let used = match reservation {
            Reservation::Reserved(used) => used,
            Reservation::Exceeded(used) => {
                // Report the windows as they stand, consuming nothing.
                check.cost = 0;
                let mut outcome = self.ask_backend(&check).await?;
                outcome.admitted = false;
                outcome
                    .limits
                    .push(month_status(limit, used, month, ask.now, true));
                return Ok(Verdict {
                    code: Code::QuotaExceeded,
                    outcome,
                });
            }
        };
        let mut outcome = match self.ask_backend(&check).await {
            Ok(outcome) => outcome,
            Err(error) => {
                self.local_quota.release(user, month, ask.cost);
                return Err(error);
            }
        };
        let used = if outcome.admitted {
            self.book.add_units(user, month, ask.cost);
            used
        } else {
            self.local_quota.release(user, month, ask.cost);
            used - ask.cost
        };
        outcome
            .limits
            .push(month_status(limit, used, month, ask.now, false));
        Ok(Verdict::of(outcome))
    }

    /// Counts an already admitted request against this process's quota figure (only while
    /// a quota-sharing backend is failing over to one that keeps none).
    async fn count_after_admission(
        &self,
        ask: &Ask<'_>,
        month: Month,
        limit: u64,
        mut outcome: Outcome,
    ) -> Verdict {
        let reservation = self
            .local_quota
            .reserve(&*self.book, ask.user, month, limit, ask.cost)
            .await;
        let (code, used, exceeded) = match reservation {
            Ok(Reservation::Reserved(used)) => {
                self.book.add_units(ask.user, month, ask.cost);
                (Code::Valid, used, false)
            }
            Ok(Reservation::Exceeded(used)) => {
                outcome.admitted = false;
                (Code::QuotaExceeded, used, true)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read quota usage; admitting");
                return Verdict {
                    code: Code::Valid,
                    outcome,
                };
            }
        };
        outcome
            .limits
            .push(month_status(limit, used, month, ask.now, exceeded));
        Verdict { code, outcome }
    }

    async fn stored_by_node(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<Vec<(String, u64)>, LimiterError> {
        self.book
            .stored_by_node(user, month)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot read quota usage");
                LimiterError("cannot read quota usage".to_owned())
            })
    }

    async fn ask_backend(&self, check: &Check<'_>) -> Result<Outcome, LimiterError> {
        self.backend
            .check(check)
            .await
            .inspect_err(|error| tracing::warn!(%error, "limiter unavailable"))
    }
}

/// The limiter state of a per-user window: an owner no key lineage can have (keys' owners
/// are their ULIDs; this is a hash in its own namespace).
fn per_user_owner(scope: &str, user: &UserId) -> u128 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("keyward {scope}\0{user}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_s_windows_replace_the_plan_s_and_its_hourly_limit_replaces_or_adds_an_hour() {
        let plan = [Window::new(60, 10), Window::new(3600, 100)];
        let windows = |own, per_hour| {
            Windows {
                plan: &plan,
                own,
                per_hour,
            }
            .applied()
            .into_owned()
        };
        assert_eq!(windows(None, None), plan);
        let own = [Window::new(1, 2)];
        assert_eq!(windows(Some(&own), None), own);
        assert_eq!(
            windows(None, Some(7)),
            [Window::new(60, 10), Window::new(3600, 7)]
        );
        assert_eq!(
            windows(Some(&[Window::new(86_400, 5)]), Some(7)),
            [Window::new(3600, 7), Window::new(86_400, 5)]
        );
        assert!(matches!(
            Windows::exactly(&plan).applied(),
            Cow::Borrowed(_)
        ));
    }
}
