//! The brute-force guard: failed checks (codes 3–6) per client address, counted over a
//! window that starts with the address's first failure. From the (N+1)-th check of the
//! window on, every check from that address is refused until the window has passed.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use moka::sync::Cache;

#[derive(Debug, Clone)]
pub struct FailureGuard {
    limit: u32,
    failures: Cache<IpAddr, Arc<AtomicU32>>,
}

impl FailureGuard {
    /// `limit` failures per `window` (0 = off).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            // An entry lives exactly one window from the first failure, then the count resets.
            failures: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(window)
                .build(),
        }
    }

    pub fn is_blocked(&self, address: IpAddr) -> bool {
        self.limit > 0
            && self
                .failures
                .get(&address)
                .is_some_and(|count| count.load(Ordering::Relaxed) >= self.limit)
    }

    pub fn record_failure(&self, address: IpAddr) {
        if self.limit > 0 {
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
