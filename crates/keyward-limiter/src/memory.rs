//! The in-process limiter: the limits' arithmetic, and the state it keeps per owner in
//! sharded maps (no global lock), evicted once it affects no decision.
//!
//! The arithmetic is pure (time is passed in as milliseconds); the Redis backend runs the
//! same arithmetic in its script, and both pass one conformance suite.
//!
//! **Windows.** A window `{W seconds, max N}` keeps `K + 1` sub-bucket counters of width
//! `w = ceil(W / K)` and admits a request only if the sum of the `K + 1` newest buckets (the
//! oldest counted whole) plus its cost stays ≤ N. Those buckets always span at least the
//! last W, so no interval of length W ever holds more than N admitted units — exactly, not
//! approximately — while under continuous overload it admits N·K/(K+1) per W in the long
//! run. With K = 24 that is 96 %.
//!
//! **Burst.** A GCRA token bucket: a request of cost c at t is admitted if
//! `max(TAT, t) + c·T − t ≤ C·T` (T = 1/rate, C = capacity), and then advances TAT.
//!
//! A check first asks every limit, then commits to all of them only if all admit, so a
//! rejected request consumes nothing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

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
    let (kind, own_name, limit, window_seconds) = match (check.windows.get(index), check.burst) {
        (Some(window), _) => (
            LimitKind::Window,
            window.name.clone(),
            window.max,
            window.window_seconds,
        ),
        (None, Some(burst)) => (
            LimitKind::Burst,
            None,
            burst.capacity,
            burst_window_seconds(burst),
        ),
        // `ask` names no other index.
        (None, None) => (LimitKind::Burst, None, 0, 0),
    };
    LimitStatus {
        kind,
        own_name,
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

/// Sub-buckets per window (the ring holds `K + 1`).
pub const SUB_BUCKETS: u64 = 24;
const RING: usize = SUB_BUCKETS as usize + 1;

/// The answer of one limit to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Units still admissible now (after the request, when it was admitted).
    pub remaining: u64,
    /// Milliseconds until `remaining` next increases (0 when nothing is counted).
    pub reset_ms: u64,
    /// For a rejection: milliseconds until this request could be admitted.
    pub retry_ms: Option<u64>,
}

/// One sliding window's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    /// Index of the newest bucket in `counts` (bucket number = time / width).
    newest: u64,
    /// Ring of counts; bucket `i` lives at `i % RING`.
    counts: [u64; RING],
}

impl Default for SlidingWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// Sub-bucket width in milliseconds for a window of `window_seconds`.
pub fn bucket_width_ms(window_seconds: u64) -> u64 {
    (window_seconds.saturating_mul(1000))
        .div_ceil(SUB_BUCKETS)
        .max(1)
}

impl SlidingWindow {
    pub const fn new() -> Self {
        Self {
            newest: 0,
            counts: [0; RING],
        }
    }

    /// Moves the ring forward to `now`'s bucket, clearing buckets that left.
    fn advance(&mut self, bucket: u64) {
        if bucket <= self.newest {
            return;
        }
        let steps = (bucket - self.newest).min(RING as u64);
        for offset in 1..=steps {
            self.counts[((self.newest + offset) % RING as u64) as usize] = 0;
        }
        self.newest = bucket;
    }

    /// The counts of the `K + 1` buckets ending at `bucket`, oldest first, with their index.
    fn buckets(&self, bucket: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let oldest = bucket.saturating_sub(SUB_BUCKETS);
        (oldest..=bucket).map(move |index| {
            let count = if index + (RING as u64) <= self.newest || index > self.newest {
                0
            } else {
                self.counts[(index % RING as u64) as usize]
            };
            (index, count)
        })
    }

    /// Asks whether `cost` more units fit at `now_ms`; commits them when `commit` and admitted.
    pub fn check(
        &mut self,
        window_seconds: u64,
        max: u64,
        now_ms: u64,
        cost: u64,
        commit: bool,
    ) -> LimitState {
        let width = bucket_width_ms(window_seconds);
        // Never step back (a clock that went backwards): that would reuse live ring slots.
        let bucket = (now_ms / width).max(self.newest);
        // Common case: the newest bucket is the current one, so the whole ring is in the
        // window and a plain sum (vectorised) suffices.
        let used: u64 = if bucket == self.newest {
            self.counts.iter().sum()
        } else {
            self.buckets(bucket).map(|(_, count)| count).sum()
        };
        let admitted = used.saturating_add(cost) <= max;
        if admitted && commit {
            self.advance(bucket);
            let slot = &mut self.counts[(bucket % RING as u64) as usize];
            *slot = slot.saturating_add(cost);
        }
        let used_after = if admitted && commit {
            used + cost
        } else {
            used
        };
        // When does the oldest non-empty bucket leave (bucket i leaves once the newest bucket
        // is i + K + 1)?
        let leave_ms = |index: u64| ((index + SUB_BUCKETS + 1) * width).saturating_sub(now_ms);
        // When the newest bucket holds everything counted (a long window, a quiet owner), it
        // is the oldest non-empty one: no scan.
        let reset_ms = if used_after == 0 {
            0
        } else if self.counts[(self.newest % RING as u64) as usize] == used_after {
            leave_ms(self.newest)
        } else {
            self.buckets(bucket)
                .find(|(_, count)| *count > 0)
                .map_or(0, |(index, _)| leave_ms(index))
        };
        let retry_ms = (!admitted).then(|| {
            if cost > max {
                return u64::MAX;
            }
            // Drop buckets oldest first until the request fits.
            let excess = used + cost - max;
            let mut freed = 0;
            for (index, count) in self.buckets(bucket) {
                freed += count;
                if freed >= excess {
                    return leave_ms(index);
                }
            }
            leave_ms(bucket)
        });
        LimitState {
            remaining: max.saturating_sub(used_after),
            reset_ms,
            retry_ms,
        }
    }

    /// True once every counted bucket has left the window: the state affects no decision.
    pub fn is_idle(&self, window_seconds: u64, now_ms: u64) -> bool {
        let bucket = now_ms / bucket_width_ms(window_seconds);
        self.buckets(bucket).all(|(_, count)| count == 0)
    }
}

/// A GCRA token bucket's state: the theoretical arrival time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    tat_us: u64,
}

impl Gcra {
    /// Asks whether `cost` tokens are available at `now_ms`; commits when `commit` and admitted.
    pub fn check(
        &mut self,
        rate_per_second: f64,
        capacity: u64,
        now_ms: u64,
        cost: u64,
        commit: bool,
    ) -> LimitState {
        // Microseconds per token (at least 1).
        let interval = ((1_000_000.0 / rate_per_second).round() as u64).max(1);
        let now = now_ms.saturating_mul(1000);
        let tolerance = capacity.saturating_mul(interval);
        let start = self.tat_us.max(now);
        let new_tat = start.saturating_add(cost.saturating_mul(interval));
        let admitted = new_tat - now <= tolerance;
        if admitted && commit {
            self.tat_us = new_tat;
        }
        let tat = if admitted && commit {
            new_tat
        } else {
            self.tat_us.max(now)
        };
        let backlog = tat - now;
        let remaining = (tolerance.saturating_sub(backlog)) / interval;
        // `remaining` grows by one once the backlog shrinks to (C − remaining − 1)·T.
        let reset_us = if backlog == 0 {
            0
        } else {
            let target = tolerance.saturating_sub((remaining + 1).saturating_mul(interval));
            backlog.saturating_sub(target)
        };
        let retry_ms = (!admitted).then(|| {
            if cost > capacity {
                return u64::MAX;
            }
            (new_tat - now - tolerance).div_ceil(1000)
        });
        LimitState {
            remaining,
            reset_ms: reset_us.div_ceil(1000),
            retry_ms,
        }
    }

    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.tat_us <= now_ms.saturating_mul(1000)
    }
}

/// Whole seconds for headers, rounding up (a client that waits that long is not early).
pub fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use keyward_core::{Burst, UserId, Window};

    use super::*;

    static USER: std::sync::LazyLock<UserId> =
        std::sync::LazyLock::new(|| UserId::parse("g").expect("a user id"));

    fn check<'a>(windows: &'a [Window], burst: Option<&'a Burst>, now_ms: u64) -> Check<'a> {
        Check {
            owner: 7,
            group: &USER,
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
        assert_eq!(later.limits[0].name(), "2s");
        assert_eq!(later.limits[1].name(), "minute");
    }

    #[test]
    fn burst_reports_as_a_limit_and_idle_state_is_evicted() {
        let limiter = MemoryLimiter::new();
        let burst = Burst {
            rate_per_second: 2.0,
            capacity: 3,
        };
        let outcome = limiter.check_now(&check(&[], Some(&burst), 5_000));
        assert_eq!(outcome.limits[0].name(), "burst");
        assert_eq!(outcome.limits[0].window_seconds, 2);
        assert_eq!(outcome.limits[0].remaining, 2);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.evict_idle(5_100), 0);
        assert_eq!(limiter.evict_idle(6_000), 1);
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_window_admits_max_then_rejects_until_the_oldest_units_leave() {
        let mut window = SlidingWindow::new();
        for i in 0..5 {
            let state = window.check(2, 5, 1_000 + i, 1, true);
            assert_eq!(state.retry_ms, None);
            assert_eq!(state.remaining, 4 - i);
        }
        let rejected = window.check(2, 5, 1_010, 1, true);
        let retry = rejected.retry_ms.expect("rejected");
        assert_eq!(rejected.remaining, 0);
        assert!(retry > 0 && retry <= 2_100, "{retry}");
        assert!(
            window
                .check(2, 5, 1_010 + retry - 1, 1, false)
                .retry_ms
                .is_some()
        );
        assert_eq!(window.check(2, 5, 1_010 + retry, 1, true).retry_ms, None);
    }

    #[test]
    fn reset_is_zero_when_nothing_is_counted() {
        let mut window = SlidingWindow::new();
        assert_eq!(window.check(60, 10, 5_000, 1, false).reset_ms, 0);
        assert!(window.is_idle(60, 5_000));
        window.check(60, 10, 5_000, 1, true);
        assert!(!window.is_idle(60, 5_000));
        assert!(window.is_idle(60, 5_000 + 63_000));
    }

    #[test]
    fn gcra_allows_a_burst_then_the_rate() {
        let mut bucket = Gcra::default();
        for _ in 0..3 {
            assert_eq!(bucket.check(1.0, 3, 10_000, 1, true).retry_ms, None);
        }
        let rejected = bucket.check(1.0, 3, 10_000, 1, true);
        assert_eq!(rejected.retry_ms, Some(1_000));
        assert_eq!(bucket.check(1.0, 3, 11_000, 1, true).retry_ms, None);
        assert!(bucket.check(1.0, 3, 11_000, 1, false).retry_ms.is_some());
    }
}
