//! What to do when Redis fails (`--redis-failure-mode`): `local` falls back to this node's
//! in-process limiter (logged once, counted, reported as degraded) and returns to Redis by
//! itself; `open` admits; `closed` fails the check (answered 503).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::{Check, Limiter, LimiterError, MemoryLimiter, Month, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    #[default]
    Local,
    Open,
    Closed,
}

#[derive(Debug)]
pub struct FailoverLimiter {
    shared: Arc<dyn Limiter>,
    local: Arc<MemoryLimiter>,
    mode: FailureMode,
    degraded: AtomicBool,
}

impl FailoverLimiter {
    pub fn new(shared: Arc<dyn Limiter>, local: Arc<MemoryLimiter>, mode: FailureMode) -> Self {
        Self {
            shared,
            local,
            mode,
            degraded: AtomicBool::new(false),
        }
    }

    /// Asks the shared backend whether it answers, entering or leaving the degraded state
    /// accordingly, so readiness is right even while no request arrives (startup with Redis
    /// down, an outage on an idle node).
    pub async fn probe(&self) {
        match self.shared.ping().await {
            Ok(()) => self.recovered(),
            Err(error) => self.failed(&error),
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis is back: rate limits are shared again");
        }
    }

    fn failed(&self, error: &LimiterError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, mode = ?self.mode, "Redis failed: rate limits fall back per the failure mode");
        }
    }

    /// True while the shared backend is failing.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Why limits are not shared right now, for readiness reports.
    pub fn degraded_reason(&self) -> Option<&'static str> {
        self.is_degraded().then_some(match self.mode {
            FailureMode::Local => {
                "redis unreachable: rate limits and monthly quotas are kept per node until it is back, so N nodes may admit up to N times a window's max and N times a quota's remainder"
            }
            FailureMode::Open => "redis unreachable: requests are admitted without rate limits",
            FailureMode::Closed => "redis unreachable: rate-limited requests are refused",
        })
    }
}

#[async_trait]
impl Limiter for FailoverLimiter {
    /// While Redis answers, it keeps the quota; during an outage the caller does.
    fn shares_quota(&self) -> bool {
        !self.is_degraded() && self.shared.shares_quota()
    }

    async fn seed_quota(
        &self,
        group: &str,
        period: Month,
        units_by_node: &[(String, u64)],
        ttl_seconds: u64,
    ) -> Result<(), LimiterError> {
        self.shared
            .seed_quota(group, period, units_by_node, ttl_seconds)
            .await
    }

    async fn check(&self, check: &Check<'_>) -> Result<Outcome, LimiterError> {
        match self.shared.check(check).await {
            Ok(outcome) => {
                self.recovered();
                Ok(outcome)
            }
            Err(error) => {
                self.failed(&error);
                metrics::counter!("keyward_limiter_fallbacks_total").increment(1);
                match self.mode {
                    FailureMode::Local => Ok(self.local.check_now(check)),
                    FailureMode::Open => Ok(Outcome {
                        admitted: true,
                        limits: Vec::new(),
                        quota: None,
                    }),
                    FailureMode::Closed => Err(error),
                }
            }
        }
    }
}
