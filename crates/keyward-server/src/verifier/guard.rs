//! The brute-force guard: failed checks (codes 3–6) per client address, counted over a
//! window that starts with the address's first failure. From the (N+1)-th check of the
//! window on, every check from that address is refused until the window has passed.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

#[derive(Debug)]
pub struct FailureGuard {
    limit: u32,
    window: Duration,
    failures: Cache<IpAddr, Arc<AtomicU32>>,
    epoch: Instant,
    /// Milliseconds after `epoch` of the newest failure, plus one (0 = none yet): while no
    /// failure happened within a window, no address can be blocked and the lookup is skipped.
    last_failure: AtomicU64,
}

impl FailureGuard {
    /// `limit` failures per `window` (0 = off).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            // An entry lives exactly one window from the first failure, then the count resets.
            failures: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(window)
                .build(),
            epoch: Instant::now(),
            last_failure: AtomicU64::new(0),
        }
    }

    fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn is_blocked(&self, address: IpAddr) -> bool {
        if self.limit == 0 {
            return false;
        }
        let last = self.last_failure.load(Ordering::Relaxed);
        let window = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if last == 0 || self.now_millis() > last.saturating_add(window) {
            return false;
        }
        self.failures
            .get(&address)
            .is_some_and(|count| count.load(Ordering::Relaxed) >= self.limit)
    }

    pub fn record_failure(&self, address: IpAddr) {
        if self.limit > 0 {
            self.last_failure
                .store(self.now_millis() + 1, Ordering::Relaxed);
            self.failures
                .get_with(address, || Arc::new(AtomicU32::new(0)))
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_n_failures_pass_then_the_address_is_refused_until_the_window_ends() {
        let guard = FailureGuard::new(3, Duration::from_millis(300));
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let bystander: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(!guard.is_blocked(attacker));
            guard.record_failure(attacker);
        }
        assert!(guard.is_blocked(attacker));
        assert!(!guard.is_blocked(bystander));
        std::thread::sleep(Duration::from_millis(400));
        assert!(!guard.is_blocked(attacker), "the window passed");
    }

    #[test]
    fn a_zero_limit_turns_the_guard_off() {
        let guard = FailureGuard::new(0, Duration::from_secs(60));
        let address: IpAddr = "::1".parse().unwrap();
        for _ in 0..1000 {
            guard.record_failure(address);
        }
        assert!(!guard.is_blocked(address));
    }
}
