//! The one verification path: `/v1/verify`, `/v1/authorize` and the tower layer only adapt
//! its input and output.
//!
//! Order: MISSING → TOO_MANY_FAILURES → INVALID → REVOKED → DISABLED →
//! EXPIRED → IP_NOT_ALLOWED → INSUFFICIENT_SCOPE → limits (QUOTA_EXCEEDED, RATE_LIMITED) →
//! VALID. The request path never writes to the database: usage goes to a batch writer.

mod cache;
mod guard;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use keyward_core::{Code, Environment, KeyHash, Plan, PlanName, PresentedKey, Scope};
use keyward_store::{Store, StoreError};

pub use cache::{Cached, CachedKey, KeyCache, KeyIdDisplay};
pub use guard::FailureGuard;

use keyward_limiter::{Ask, Limiter, Limits, Outcome, Windows};

use crate::usage::{UsageRecord, UsageRecorder};

/// One key check.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The presented credential, if any.
    pub presented: Option<&'a str>,
    /// Checked against the key's `allowed_ips`.
    pub client_ip: IpAddr,
    /// Failures are counted against this address.
    pub guard_ip: IpAddr,
    pub required_scopes: &'a [Scope],
    pub cost: u64,
    /// `true` for requests (limited and counted as usage); `false` for a key
    /// authenticating a management call.
    pub counted: bool,
    /// The endpoint and method the request was for, for usage analytics (`""` if unknown).
    pub endpoint: &'a str,
    pub method: &'a str,
    /// The caller records the usage itself once it knows the status the client got (the
    /// library layer: the downstream service's status and latency).
    pub defer_usage: bool,
}

/// The outcome of a check.
#[derive(Debug, Clone)]
pub struct Decision {
    pub code: Code,
    pub key: Option<Arc<CachedKey>>,
    /// The key's effective plan, once the key is known.
    pub plan: Option<Arc<Plan>>,
    pub limits: Option<Outcome>,
    /// For `TOO_MANY_FAILURES`: seconds until the address is admitted again.
    pub blocked_for: Option<u64>,
}

impl Decision {
    fn bare(code: Code) -> Self {
        Self {
            code,
            key: None,
            plan: None,
            limits: None,
            blocked_for: None,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.code == Code::Valid
    }

    /// Seconds to wait before retrying, for 429 answers.
    pub fn retry_after(&self) -> Option<u64> {
        self.blocked_for
            .or_else(|| self.limits.as_ref().and_then(Outcome::retry_after))
    }
}

/// A backend the check needed was unreachable: answered 503, never `INVALID`.
#[derive(Debug, thiserror::Error)]
#[error("a backend needed for the check is unavailable")]
pub struct Unavailable;

/// Metric handles registered once: a lookup by name and labels on every check costs more
/// than the check itself.
struct Meters {
    decisions: Vec<metrics::Counter>,
    decision_seconds: metrics::Histogram,
    cache_hit: metrics::Counter,
    cache_negative_hit: metrics::Counter,
    cache_miss: metrics::Counter,
}

impl Meters {
    fn register() -> Self {
        let cache =
            |result: &'static str| metrics::counter!("keyward_key_cache_total", "result" => result);
        Self {
            decisions: Code::ALL
                .iter()
                .map(|code| metrics::counter!("keyward_decisions_total", "code" => code.as_str()))
                .collect(),
            decision_seconds: metrics::histogram!("keyward_decision_seconds"),
            cache_hit: cache("hit"),
            cache_negative_hit: cache("negative_hit"),
            cache_miss: cache("miss"),
        }
    }
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meters")
    }
}

#[derive(Debug)]
pub struct Verifier {
    meters: Meters,
    store: Arc<dyn Store>,
    cache: KeyCache,
    plans: ArcSwap<HashMap<PlanName, Arc<Plan>>>,
    guard: FailureGuard,
    limits: Limits,
    usage: UsageRecorder,
    has_imported: AtomicBool,
    /// Set while the store is known to be unreachable (by the engine's store probe): checks
    /// that need it answer 503 at once instead of waiting for a connection that will not
    /// come.
    store_down: AtomicBool,
}

/// Settings of the verifier.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub failure_limit: u32,
    pub failure_window: Duration,
    /// IPv6 clients are counted per network of this many bits.
    pub failure_ipv6_prefix: u8,
    /// Most memory the key cache takes, in bytes.
    pub cache_bytes: u64,
}

impl Verifier {
    pub async fn new(
        store: Arc<dyn Store>,
        limiter: Arc<dyn Limiter>,
        usage: UsageRecorder,
        settings: &VerifierSettings,
    ) -> Result<Self, StoreError> {
        let verifier = Self {
            meters: Meters::register(),
            cache: KeyCache::new(settings.cache_bytes),
            plans: ArcSwap::from_pointee(HashMap::new()),
            limits: Limits::new(limiter, Arc::new(usage.clone())),
            guard: FailureGuard::new(
                settings.failure_limit,
                settings.failure_window,
                settings.failure_ipv6_prefix,
            ),
            has_imported: AtomicBool::new(false),
            store_down: AtomicBool::new(false),
            store,
            usage,
        };
        verifier.reload_plans().await?;
        verifier.refresh_imported().await?;
        Ok(verifier)
    }

    /// Records a check whose usage its caller deferred (see [`Check::defer_usage`]).
    pub fn record_usage(&self, record: &UsageRecord<'_>) {
        self.usage.record(record);
    }

    /// Whether the store is known to be unreachable right now.
    pub fn store_down(&self) -> bool {
        self.store_down.load(Ordering::Relaxed)
    }

    /// Records what the latest probe of the store found.
    pub fn set_store_down(&self, down: bool) {
        if self.store_down.swap(down, Ordering::Relaxed) != down {
            if down {
                tracing::error!("the store is unreachable: answering 503 at once until it is back");
            } else {
                tracing::info!("the store answers again");
            }
        }
    }

    /// The brute-force guard, shared with every other place a credential is checked.
    pub fn guard(&self) -> &FailureGuard {
        &self.guard
    }

    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    pub async fn reload_plans(&self) -> Result<(), StoreError> {
        let plans = self.store.list_plans().await?;
        self.plans.store(Arc::new(
            plans
                .into_iter()
                .map(|plan| (plan.name.clone(), Arc::new(plan)))
                .collect(),
        ));
        Ok(())
    }

    pub async fn refresh_imported(&self) -> Result<(), StoreError> {
        let has = self.store.has_imported_keys().await?;
        self.has_imported.store(has, Ordering::Relaxed);
        Ok(())
    }

    pub fn plan(&self, name: &PlanName) -> Option<Arc<Plan>> {
        self.plans.load().get(name).cloned()
    }

    /// Runs one check to its decision.
    pub async fn verify(
        &self,
        check: &Check<'_>,
        now: DateTime<Utc>,
    ) -> Result<Decision, Unavailable> {
        let started = Instant::now();
        let decision = self.decide(check, now).await;
        let elapsed = started.elapsed();
        if let Ok(decision) = &decision {
            if let Some(counter) = self.meters.decisions.get(decision.code.index()) {
                counter.increment(1);
            }
            self.meters.decision_seconds.record(elapsed.as_secs_f64());
            if check.counted
                && !check.defer_usage
                && let Some(key) = &decision.key
            {
                self.usage.record(&UsageRecord {
                    key: key.for_usage(),
                    code: decision.code,
                    status: decision.code.http_status(),
                    endpoint: check.endpoint,
                    method: check.method,
                    latency: Some(elapsed),
                    cost: check.cost,
                    at: now,
                });
            }
        }
        decision
    }

    async fn decide(&self, check: &Check<'_>, now: DateTime<Utc>) -> Result<Decision, Unavailable> {
        let Some(presented) = check.presented.filter(|p| !p.is_empty()) else {
            return Ok(Decision::bare(Code::Missing));
        };
        if let Some(seconds) = self.guard.blocked_for(check.guard_ip) {
            return Ok(Decision {
                blocked_for: Some(seconds),
                ..Decision::bare(Code::TooManyFailures)
            });
        }
        let Some(key) = self.find(presented).await? else {
            return Ok(self.fail(check, Decision::bare(Code::Invalid)));
        };
        let mut plan = self.plan(key.effective_plan());
        if plan.is_none() {
            // A plan created moments ago on another node: this node's map has not caught up.
            if let Err(error) = self.reload_plans().await {
                tracing::warn!(%error, "cannot reload plans");
            }
            plan = self.plan(key.effective_plan());
        }
        let mut decision = Decision {
            code: Code::Valid,
            plan,
            key: Some(key.clone()),
            limits: None,
            blocked_for: None,
        };
        let plan = decision.plan.clone();
        let refusal = keyward_core::refusal_before_limits(
            key.status(now),
            || {
                key.allowed_ips.as_ref().is_none_or(|allowed| {
                    let client = check.client_ip.to_canonical();
                    allowed.iter().any(|net| net.contains(&client))
                })
            },
            || {
                keyward_core::scopes_granted(
                    check.required_scopes,
                    &key.scopes,
                    plan.as_ref().and_then(|plan| plan.spec.features.as_deref()),
                )
            },
        );
        if let Some(code) = refusal {
            decision.code = code;
            // The key's own state counts as a failed check; an address or scope refusal
            // of a working key does not.
            return Ok(if code.counts_as_failure() {
                self.fail(check, decision)
            } else {
                decision
            });
        }
        if check.counted {
            let Some(plan) = plan else {
                // A key whose plan vanished cannot be limited correctly: refuse to guess.
                tracing::error!(key_id = %key.id(), plan = %key.effective_plan(), "key refers to an unknown plan");
                return Err(Unavailable);
            };
            let ask = Ask {
                owner: key.lineage.0,
                user: &key.user_id,
                windows: Windows {
                    plan: &plan.spec.limits,
                    own: key.limits.as_deref(),
                    per_hour: key.rate_limit_per_hour,
                },
                burst: plan.spec.burst.as_ref(),
                // Test keys never spend the quota.
                monthly_quota: match key.environment {
                    Environment::Live => self
                        .plan(&key.user_plan)
                        .and_then(|user_plan| user_plan.spec.monthly_quota),
                    Environment::Test => None,
                },
                cost: check.cost,
                now,
            };
            let verdict = self.limits.check(&ask).await.map_err(|_| Unavailable)?;
            decision.code = verdict.code;
            decision.limits = Some(verdict.outcome);
        }
        Ok(decision)
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
        self.limits
            .per_user_window("self-service", user, limit, now)
            .await
            .map_err(|_| Unavailable)
    }

    /// Counts a failed check (codes 3–6) against the guard address.
    fn fail(&self, check: &Check<'_>, decision: Decision) -> Decision {
        if decision.code.counts_as_failure() {
            self.guard.record_failure(check.guard_ip);
        }
        decision
    }

    /// The key a presented string names: from the cache, else the store. `None` = INVALID.
    async fn find(&self, presented: &str) -> Result<Option<Arc<CachedKey>>, Unavailable> {
        let Ok(candidate) = PresentedKey::classify(presented) else {
            return Ok(None);
        };
        if matches!(candidate, PresentedKey::Foreign(_))
            && !self.has_imported.load(Ordering::Relaxed)
        {
            return Ok(None);
        }
        let hash = candidate.hash();
        drop(candidate);
        match self.cache.get(&hash) {
            Cached::Known(key) => {
                self.meters.cache_hit.increment(1);
                Ok(Some(key))
            }
            Cached::Unknown => {
                self.meters.cache_negative_hit.increment(1);
                Ok(None)
            }
            Cached::Miss => {
                self.meters.cache_miss.increment(1);
                self.load(hash).await
            }
        }
    }

    async fn load(&self, hash: KeyHash) -> Result<Option<Arc<CachedKey>>, Unavailable> {
        if self.store_down() {
            return Err(Unavailable);
        }
        match self.store.lookup(&hash).await {
            Ok(Some(record)) => Ok(Some(
                self.cache
                    .insert_known(hash, CachedKey::from_record(&record)),
            )),
            Ok(None) => {
                self.cache.insert_unknown(hash);
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(%error, "key lookup failed");
                Err(Unavailable)
            }
        }
    }
}
