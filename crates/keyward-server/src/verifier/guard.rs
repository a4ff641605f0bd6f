//! The brute-force guard: failed credentials per client address (IPv6 counted per network
//! prefix, /64 by default, since one host holds a whole /64). Failures are counted over a
//! sliding window (the current window's count plus the previous window's, weighted by how
//! much of it still overlaps the last `window`), so bursts straddling a window's edge are
//! caught. The N-th failure blocks the address for one window from that failure, and every
//! check carrying a credential from it is refused until then. Refused checks neither count
//! nor extend the block.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

#[derive(Debug, Default)]
struct Failures {
    /// Milliseconds (on the guard's clock) the current counting window began.
    window_start: u64,
    count: u32,
    /// Failures of the window before the current one.
    previous: u32,
    /// Milliseconds until which the address is refused (0 = not blocked).
    blocked_until: u64,
}

#[derive(Debug)]
pub struct FailureGuard {
    limit: u32,
    window: Duration,
    ipv6_prefix: u8,
    failures: Cache<IpAddr, Arc<Mutex<Failures>>>,
    epoch: Instant,
    /// Milliseconds after `epoch` of the newest failure, plus one (0 = none yet): while no
    /// failure happened within two windows, no address can be blocked and the lookup is
    /// skipped (the common case costs one atomic load).
    last_failure: std::sync::atomic::AtomicU64,
}

impl FailureGuard {
    /// `limit` failures per `window` (0 = off), IPv6 addresses counted per `/ipv6_prefix`.
    pub fn new(limit: u32, window: Duration, ipv6_prefix: u8) -> Self {
        Self {
            limit,
            window,
            ipv6_prefix: ipv6_prefix.min(128),
            // An entry matters for at most two windows after its last failure (a window of
            // counting, then a block of one window).
            failures: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(window.saturating_mul(2))
                .build(),
            epoch: Instant::now(),
            last_failure: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn window_millis(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX)
    }

    /// What the guard counts an address as: itself (IPv4, IPv4-mapped IPv6 as IPv4), or its
    /// IPv6 network.
    pub fn bucket(&self, address: IpAddr) -> IpAddr {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = match self.ipv6_prefix {
                    0 => 0,
                    prefix => u128::MAX << (128 - u32::from(prefix)),
                };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
            v4 => v4,
        }
    }

    /// `Some(seconds left)` (≥ 1) while `address` is refused.
    pub fn blocked_for(&self, address: IpAddr) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let last = self.last_failure.load(std::sync::atomic::Ordering::Relaxed);
        // No failure yet: no clock read, no lookup (the common case on the hot path).
        if last == 0 {
            return None;
        }
        let now = self.now_millis();
        if now > last.saturating_add(self.window_millis().saturating_mul(2)) {
            return None;
        }
        let entry = self.failures.get(&self.bucket(address))?;
        let failures = entry.lock().ok()?;
        (failures.blocked_until > now).then(|| (failures.blocked_until - now).div_ceil(1000).max(1))
    }

    pub fn is_blocked(&self, address: IpAddr) -> bool {
        self.blocked_for(address).is_some()
    }

    /// Counts one failure of `address`.
    pub fn record_failure(&self, address: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let now = self.now_millis();
        self.last_failure
            .store(now + 1, std::sync::atomic::Ordering::Relaxed);
        let entry = self.failures.get_with(self.bucket(address), || {
            Arc::new(Mutex::new(Failures::default()))
        });
        let Ok(mut failures) = entry.lock() else {
            return;
        };
        if failures.blocked_until > now {
            return;
        }
        let window = self.window_millis().max(1);
        let elapsed = now.saturating_sub(failures.window_start);
        if failures.count == 0 && failures.previous == 0 {
            failures.window_start = now;
        } else if elapsed >= window.saturating_mul(2) {
            failures.window_start = now;
            failures.previous = 0;
            failures.count = 0;
        } else if elapsed >= window {
            failures.window_start = failures.window_start.saturating_add(window);
            failures.previous = failures.count;
            failures.count = 0;
        }
        failures.count += 1;
        // The previous window's failures that still lie within the last `window`.
        let into_current = now.saturating_sub(failures.window_start).min(window);
        let overlap = u64::from(failures.previous) * (window - into_current) / window;
        if overlap + u64::from(failures.count) >= u64::from(self.limit) {
            failures.blocked_until = now.saturating_add(self.window_millis());
            failures.count = 0;
            failures.previous = 0;
            // Once per lockout, naming the address (never a key): what an operator looks
            // for when a customer says they are locked out.
            tracing::warn!(
                address = %self.bucket(address),
                failures = self.limit,
                block_seconds = self.window_millis().div_ceil(1000),
                "too many failed key checks from this address: refused until the block ends"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_n_failures_pass_then_the_address_is_refused_until_the_window_ends() {
        let guard = FailureGuard::new(3, Duration::from_millis(300), 64);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let bystander: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(!guard.is_blocked(attacker));
            guard.record_failure(attacker);
        }
        assert!(guard.is_blocked(attacker));
        assert_eq!(
            guard.blocked_for(attacker),
            Some(1),
            "whole seconds, at least 1"
        );
        assert!(!guard.is_blocked(bystander));
        std::thread::sleep(Duration::from_millis(400));
        assert!(!guard.is_blocked(attacker), "the window passed");
    }

    #[test]
    fn retry_after_is_the_time_left_and_refusals_do_not_extend_it() {
        let guard = FailureGuard::new(1, Duration::from_secs(60), 64);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        guard.record_failure(attacker);
        assert_eq!(guard.blocked_for(attacker), Some(60));
        guard.record_failure(attacker);
        assert_eq!(guard.blocked_for(attacker), Some(60));
    }

    #[test]
    fn failures_straddling_a_window_edge_are_still_counted() {
        let guard = FailureGuard::new(4, Duration::from_millis(400), 64);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        guard.record_failure(attacker);
        std::thread::sleep(Duration::from_millis(380));
        guard.record_failure(attacker);
        guard.record_failure(attacker);
        std::thread::sleep(Duration::from_millis(40));
        // A new window began; the two failures just before its edge are still recent.
        guard.record_failure(attacker);
        assert!(
            !guard.is_blocked(attacker),
            "three within the last window's length"
        );
        guard.record_failure(attacker);
        assert!(
            guard.is_blocked(attacker),
            "four failures within one window's length, across the edge"
        );
    }

    #[test]
    fn ipv6_addresses_count_per_prefix() {
        let guard = FailureGuard::new(3, Duration::from_secs(60), 64);
        for host in 1..=3 {
            let address: IpAddr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
            guard.record_failure(address);
        }
        assert!(guard.is_blocked("2001:db8:1:2:ffff::1".parse().unwrap()));
        assert!(!guard.is_blocked("2001:db8:1:3::1".parse().unwrap()));
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(guard.bucket(mapped), "192.0.2.9".parse::<IpAddr>().unwrap());
        let whole = FailureGuard::new(3, Duration::from_secs(60), 128);
        let host: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(whole.bucket(host), host);
    }

    #[test]
    fn a_zero_limit_turns_the_guard_off() {
        let guard = FailureGuard::new(0, Duration::from_secs(60), 64);
        let address: IpAddr = "::1".parse().unwrap();
        for _ in 0..1000 {
            guard.record_failure(address);
        }
        assert!(!guard.is_blocked(address));
    }
}
