//! The in-process limiter: state per owner in sharded maps (no global lock), evicted once
//! it affects no decision.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use keyward_core::limits::{Gcra, LimitState, SlidingWindow, ceil_seconds};

use crate::{Check, LimitKind, LimitStatus, Limiter, LimiterError, Outcome, burst_window_seconds};

/// log2 of the shard count. Many small shards: two threads working on different keys
/// rarely share a shard, so they rarely pull each other's lock lines (measured: 64 shards
/// scaled 1.53× on two threads, see documentation/benchmarks.md).
const SHARD_BITS: u32 = 12;
const SHARDS: usize = 1 << SHARD_BITS;

/// Owners are ULIDs (80 random bits): one multiply spreads them well enough, much cheaper
/// than SipHash.
#[derive(Debug, Default, Clone, Copy)]
struct OwnerHasher(u64);

impl std::hash::Hasher for OwnerHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = (value as u64) ^ ((value >> 64) as u64).rotate_left(32);
    }
}

type Owners = HashMap<u128, OwnerState, std::hash::BuildHasherDefault<OwnerHasher>>;

/// One shard on its own cache lines, so threads working on different shards do not
/// invalidate each other's lines (false sharing).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Owners>);

#[derive(Debug, Default)]
struct OwnerState {
    /// By window length: a plan change that keeps a window's length keeps its counts.
    windows: Vec<(u64, SlidingWindow)>,
    burst: Gcra,
}

impl OwnerState {
    fn window(&mut self, seconds: u64) -> &mut SlidingWindow {
        let index = match self.windows.iter().position(|(s, _)| *s == seconds) {
            Some(index) => index,
            None => {
                self.windows.push((seconds, SlidingWindow::new()));
                self.windows.len() - 1
            }
        };
        &mut self.windows[index].1
    }

    /// Asks every limit of `check` in order (its windows, then the burst bucket), charging
    /// its cost when `commit`; `each` gets each limit's index and answer.
    fn ask(&mut self, check: &Check<'_>, commit: bool, mut each: impl FnMut(usize, LimitState)) {
        for (index, window) in check.windows.iter().enumerate() {
            let seconds = window.window_seconds;
            let answer =
                self.window(seconds)
                    .check(seconds, window.max, check.now_ms, check.cost, commit);
            each(index, answer);
        }
        if let Some(burst) = check.burst {
            let answer = self.burst.check(
                burst.rate_per_second,
                burst.capacity,
                check.now_ms,
                check.cost,
                commit,
            );
            each(check.windows.len(), answer);
        }
    }

    fn is_idle(&self, now_ms: u64) -> bool {
        self.burst.is_idle(now_ms)
            && self
                .windows
                .iter()
                .all(|(seconds, w)| w.is_idle(*seconds, now_ms))
    }
}

#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Vec<Shard>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// The status of `check`'s limit number `index` (its windows, then the burst bucket).
fn status_of(check: &Check<'_>, index: usize, state: LimitState) -> LimitStatus {
    let (kind, name, limit, window_seconds) = match (check.windows.get(index), check.burst) {
        (Some(window), _) => (
            LimitKind::Window,
            window.display_name(),
            window.max,
            window.window_seconds,
        ),
        (None, Some(burst)) => (
            LimitKind::Burst,
            Cow::Borrowed("burst"),
            burst.capacity,
            burst_window_seconds(burst),
        ),
        // `ask` names no other index.
        (None, None) => (LimitKind::Burst, Cow::Borrowed("burst"), 0, 0),
    };
    LimitStatus {
        kind,
        name,
        limit,
        window_seconds,
        remaining: state.remaining,
        reset_seconds: ceil_seconds(state.reset_ms),
        retry_after: state.retry_ms.map(ceil_seconds),
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self, owner: u128) -> &Mutex<Owners> {
        let folded = (owner as u64) ^ ((owner >> 64) as u64);
        // The top bits of a multiplicative hash pick the shard.
        &self.shards[(folded.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - SHARD_BITS)) as usize].0
    }

    /// Checks and (if every limit admits) commits, under the owner's shard lock.
    pub fn check_now(&self, check: &Check<'_>) -> Outcome {
        let mut shard = self
            .shard(check.owner)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = shard.entry(check.owner).or_default();
        // First pass: ask every limit without committing.
        let mut limits = Vec::with_capacity(check.windows.len() + 1);
        state.ask(check, false, |index, answer| {
            limits.push(status_of(check, index, answer));
        });
        let admitted = limits.iter().all(|limit| limit.retry_after.is_none());
        if admitted {
            // Second pass, only when admitted: charge every limit and report where it now stands.
            state.ask(check, true, |index, answer| {
                let limit = &mut limits[index];
                limit.remaining = answer.remaining;
                limit.reset_seconds = ceil_seconds(answer.reset_ms);
            });
        }
        if !admitted && state.is_idle(check.now_ms) {
            shard.remove(&check.owner);
        }
        Outcome {
            admitted,
            limits,
            quota: None,
        }
    }

    /// Drops every owner whose state no longer affects any decision.
    pub fn evict_idle(&self, now_ms: u64) -> usize {
        let mut evicted = 0;
        for shard in &self.shards {
            let mut shard = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, state| !state.is_idle(now_ms));
            evicted += before - shard.len();
        }
        evicted
    }

    /// Owners with state held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn check(&self, check: &Check<'_>) -> Result<Outcome, LimiterError> {
        Ok(self.check_now(check))
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::{Burst, Window};

    use super::*;

    fn check<'a>(windows: &'a [Window], burst: Option<&'a Burst>, now_ms: u64) -> Check<'a> {
        Check {
            owner: 7,
            group: "g",
            quota: None,
            windows,
            burst,
            cost: 1,
            now_ms,
        }
    }

    #[test]
    fn every_limit_must_admit_and_rejections_consume_nothing() {
        let limiter = MemoryLimiter::new();
        let windows = [Window::new(2, 5), Window::new(60, 6)];
        for i in 0..5 {
            assert!(
                limiter
                    .check_now(&check(&windows, None, 1_000 + i))
                    .admitted
            );
        }
        let rejected = limiter.check_now(&check(&windows, None, 1_100));
        assert!(!rejected.admitted);
        assert_eq!(rejected.limits[0].remaining, 0);
        assert_eq!(
            rejected.limits[1].remaining, 1,
            "the minute window was not charged"
        );
        let retry = rejected.retry_after().unwrap();
        assert!((1..=3).contains(&retry), "{retry}");
        let later = limiter.check_now(&check(&windows, None, 1_100 + retry * 1000));
        assert!(later.admitted);
        assert_eq!(later.limits[1].remaining, 0);
        assert_eq!(later.limits[0].name, "2s");
        assert_eq!(later.limits[1].name, "minute");
    }

    #[test]
    fn burst_reports_as_a_limit_and_idle_state_is_evicted() {
        let limiter = MemoryLimiter::new();
        let burst = Burst {
            rate_per_second: 2.0,
            capacity: 3,
        };
        let outcome = limiter.check_now(&check(&[], Some(&burst), 5_000));
        assert_eq!(outcome.limits[0].name, "burst");
        assert_eq!(outcome.limits[0].window_seconds, 2);
        assert_eq!(outcome.limits[0].remaining, 2);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.evict_idle(5_100), 0);
        assert_eq!(limiter.evict_idle(6_000), 1);
        assert!(limiter.is_empty());
    }
}
