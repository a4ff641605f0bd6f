//! Rate-limit algorithms, pure: time is passed in as milliseconds.
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
    use super::*;

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
