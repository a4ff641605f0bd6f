//! The limiter conformance suite, written once and run against every backend: in process,
//! and Redis (`KEYWARD_TEST_REDIS_URL`, started by scripts/test.sh; under `CI=true` a
//! missing Redis fails these tests instead of skipping them). Real time, short windows.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyward_core::{Burst, UserId, Window};
use keyward_limiter::{Check, Limiter, MemoryLimiter, RedisLimiter};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn owner() -> u128 {
    // A fresh owner per test, as a ULID would be.
    u128::from_le_bytes(*uuid_like())
}

fn uuid_like() -> &'static [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bytes = Box::leak(Box::new([0u8; 16]));
    let seed =
        now_ms() ^ (u64::from(std::process::id()) << 20) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&n.to_le_bytes());
    bytes
}

async fn check(
    limiter: &dyn Limiter,
    owner: u128,
    windows: &[Window],
    burst: Option<&Burst>,
    cost: u64,
) -> keyward_limiter::Outcome {
    limiter
        .check(&Check {
            group: &UserId::parse("g").expect("a user id"),
            quota: None,
            owner,
            windows,
            burst,
            cost,
            now_ms: now_ms(),
        })
        .await
        .expect("the limiter answers")
}

pub async fn admits_max_then_rejects_and_rejections_consume_nothing(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let windows = [Window::new(2, 3), Window::new(60, 4)];
    for remaining in (0..3).rev() {
        let outcome = check(&*limiter, owner, &windows, None, 1).await;
        assert!(outcome.admitted);
        assert_eq!(outcome.limits[0].remaining, remaining);
        assert_eq!(outcome.limits[0].name(), "2s");
        assert_eq!(outcome.limits[1].name(), "minute");
    }
    let rejected = check(&*limiter, owner, &windows, None, 1).await;
    assert!(!rejected.admitted);
    assert_eq!(
        rejected.limits[1].remaining, 1,
        "the other window was not charged"
    );
    let retry = rejected.retry_after().expect("a wait");
    assert!((1..=3).contains(&retry), "{retry}");
    assert!(rejected.limits[0].reset_seconds >= 1);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let after = check(&*limiter, owner, &windows, None, 1).await;
    assert!(after.admitted, "waiting Retry-After is enough");
    assert_eq!(after.limits[1].remaining, 0);
    let blocked = check(&*limiter, owner, &windows, None, 1).await;
    assert!(!blocked.admitted, "the minute window is full now");
}

pub async fn owners_are_independent_and_costs_count(limiter: Arc<dyn Limiter>) {
    let (a, b) = (owner(), owner());
    let windows = [Window::new(60, 10)];
    assert!(check(&*limiter, a, &windows, None, 7).await.admitted);
    assert!(!check(&*limiter, a, &windows, None, 4).await.admitted);
    assert!(check(&*limiter, a, &windows, None, 3).await.admitted);
    let other = check(&*limiter, b, &windows, None, 10).await;
    assert!(other.admitted);
    assert_eq!(other.limits[0].remaining, 0);
}

pub async fn the_burst_bucket_limits_with_the_windows(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let windows = [Window::new(60, 100)];
    let burst = Burst {
        rate_per_second: 1.0,
        capacity: 2,
    };
    assert!(
        check(&*limiter, owner, &windows, Some(&burst), 1)
            .await
            .admitted
    );
    let second = check(&*limiter, owner, &windows, Some(&burst), 1).await;
    assert!(second.admitted);
    assert_eq!(second.limits[1].name(), "burst");
    assert_eq!(second.limits[1].window_seconds, 2);
    let third = check(&*limiter, owner, &windows, Some(&burst), 1).await;
    assert!(!third.admitted);
    assert_eq!(
        third.limits[0].remaining, 98,
        "a burst rejection charges no window"
    );
    assert_eq!(third.retry_after(), Some(1));
}

/// Checks every 20 ms for 2.5 s against 10 per second: never more than 10 admitted in any
/// second (counting only admissions certainly inside it, whatever the latency), and about
/// the full rate admitted.
pub async fn a_steady_stream_never_exceeds_the_window(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let windows = [Window::new(1, 10)];
    let started = now_ms();
    let mut admitted = Vec::new();
    while now_ms() - started < 2500 {
        let before = now_ms();
        if check(&*limiter, owner, &windows, None, 1).await.admitted {
            // The backend decided somewhere between these two instants.
            admitted.push((before, now_ms()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, &(from, _)) in admitted.iter().enumerate() {
        // Admissions that certainly happened within [from, from + 1 s).
        let within = admitted[i..]
            .iter()
            .filter(|&&(_, until)| until < from + 1000)
            .count();
        assert!(
            within <= 10,
            "{within} admitted within a second from {from}: {admitted:?}"
        );
    }
    assert!(
        admitted.len() >= 20,
        "only {} admitted over 2.5 s at 10/s",
        admitted.len()
    );
}

/// Counts leave the window bucket by bucket: a batch admitted 600 ms after the first still
/// counts once the first has left.
pub async fn the_window_slides_bucket_by_bucket(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let windows = [Window::new(1, 10)];
    let started = tokio::time::Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(started + Duration::from_millis(ms));
    assert!(check(&*limiter, owner, &windows, None, 5).await.admitted);
    at(600).await;
    let second = check(&*limiter, owner, &windows, None, 5).await;
    assert!(second.admitted);
    assert_eq!(second.limits[0].remaining, 0);
    // The first batch has left (1 s + one 42 ms sub-bucket); the second has not.
    at(1150).await;
    let third = check(&*limiter, owner, &windows, None, 5).await;
    assert!(third.admitted, "the first batch left the window");
    let full = check(&*limiter, owner, &windows, None, 1).await;
    assert!(!full.admitted, "the second batch is still in the window");
    assert_eq!(full.retry_after(), Some(1));
    at(1750).await;
    let fourth = check(&*limiter, owner, &windows, None, 5).await;
    assert!(fourth.admitted, "the second batch left the window");
    assert_eq!(fourth.limits[0].remaining, 0);
}

/// A plan edit that adds or removes a window keeps the other windows' counts.
pub async fn windows_added_or_removed_keep_the_others(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let minute = || Window::new(60, 5);
    let hour = || Window::new(3600, 100);
    assert!(check(&*limiter, owner, &[minute()], None, 3).await.admitted);
    let both = check(&*limiter, owner, &[minute(), hour()], None, 1).await;
    assert!(both.admitted);
    assert_eq!(both.limits[0].remaining, 1);
    assert_eq!(both.limits[1].remaining, 99, "a new window starts empty");
    let minute_only = check(&*limiter, owner, &[minute()], None, 1).await;
    assert!(minute_only.admitted);
    assert_eq!(minute_only.limits[0].remaining, 0);
    let again = check(&*limiter, owner, &[hour(), minute()], None, 1).await;
    assert!(!again.admitted, "the minute window is full");
    assert_eq!(
        again.limits[0].remaining, 99,
        "the hour window kept its count"
    );
    assert_eq!(again.limits[1].name(), "minute");
}

/// Many callers on one owner at once (each reading the clock before its check, so times
/// arrive slightly out of order): exactly `max` admitted, never one more.
pub async fn concurrent_checks_admit_exactly_max(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let windows = [Window::new(60, 50)];
            let mut admitted = 0u64;
            for _ in 0..10 {
                if check(&*limiter, owner, &windows, None, 1).await.admitted {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(admitted, 50, "160 concurrent checks against a window of 50");
}

/// `reset` counts until the oldest counted bucket leaves the window (a window of W seconds
/// keeps 24 buckets of W/24 and one more): with everything in one bucket, W to W + W/24
/// from that bucket's start; once an older bucket holds units, from that one.
pub async fn reset_counts_from_the_oldest_counted_bucket(limiter: Arc<dyn Limiter>) {
    let owner = owner();
    let windows = [Window::new(86_400, 100), Window::new(60, 100)];
    let first = check(&*limiter, owner, &windows, None, 1).await;
    let (day, minute) = (&first.limits[0], &first.limits[1]);
    assert!((86_400..=90_000).contains(&day.reset_seconds), "{day:?}");
    assert!((60..=63).contains(&minute.reset_seconds), "{minute:?}");
    // A minute bucket is 2.5 s: wait into a later one, so two buckets hold units.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let second = check(&*limiter, owner, &windows, None, 1).await;
    let minute = &second.limits[1];
    assert_eq!(minute.remaining, 98);
    assert!(
        (57..=61).contains(&minute.reset_seconds),
        "the first bucket is the oldest counted: {minute:?}"
    );
}

macro_rules! limiter_conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let limiter: Arc<dyn Limiter> = $make;
                        super::$name(limiter).await;
                    }
                };
            }
            case!(admits_max_then_rejects_and_rejections_consume_nothing);
            case!(owners_are_independent_and_costs_count);
            case!(the_burst_bucket_limits_with_the_windows);
            case!(a_steady_stream_never_exceeds_the_window);
            case!(the_window_slides_bucket_by_bucket);
            case!(windows_added_or_removed_keep_the_others);
            case!(reset_counts_from_the_oldest_counted_bucket);

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_checks_admit_exactly_max() {
                let limiter: Arc<dyn Limiter> = $make;
                super::concurrent_checks_admit_exactly_max(limiter).await;
            }
        }
    };
}

limiter_conformance!(memory, Arc::new(MemoryLimiter::new()));
limiter_conformance!(redis, redis_limiter().await);
limiter_conformance!(redis_cluster, redis_cluster_limiter().await);

/// The same suite over a Redis Cluster of three masters (`KEYWARD_TEST_REDIS_CLUSTER_URL`,
/// started by scripts/test.sh): a user's keys share a slot through their hash tag.
async fn redis_cluster_limiter() -> Arc<dyn Limiter> {
    let url = std::env::var("KEYWARD_TEST_REDIS_CLUSTER_URL").expect(
        "KEYWARD_TEST_REDIS_CLUSTER_URL is not set: run the tests with scripts/test.sh, which starts a Redis Cluster",
    );
    Arc::new(
        RedisLimiter::connect(&url)
            .await
            .expect("connect to the test Redis Cluster"),
    )
}

async fn redis_limiter() -> Arc<dyn Limiter> {
    match std::env::var("KEYWARD_TEST_REDIS_URL") {
        Ok(url) => Arc::new(
            RedisLimiter::connect(&url)
                .await
                .expect("connect to the test Redis"),
        ),
        Err(_) => panic!(
            "KEYWARD_TEST_REDIS_URL is not set: run the tests with scripts/test.sh, which starts a Redis"
        ),
    }
}

/// The shared monthly quota (Redis only): a missing figure asks to be seeded; seeding is a
/// per-node "larger of" merge, so seeding twice or after a node raised its own figure counts
/// nothing twice; a node's figure is raised to what it says it admitted before the check.
mod redis_quota {
    use super::*;
    use keyward_limiter::{Month, QuotaCheck, QuotaState};

    fn november() -> Month {
        Month::parse("2026-11").expect("a month")
    }

    async fn ask(
        limiter: &dyn Limiter,
        group: &str,
        node: &str,
        node_units: u64,
        cost: u64,
    ) -> Option<QuotaState> {
        let windows = [Window::new(60, 1_000_000)];
        let outcome = limiter
            .check(&Check {
                group: &UserId::parse(group).expect("a user id"),
                quota: Some(QuotaCheck {
                    period: november(),
                    limit: 20,
                    ttl_seconds: 60,
                    node,
                    node_units,
                }),
                owner: owner(),
                windows: &windows,
                burst: None,
                cost,
                now_ms: now_ms(),
            })
            .await
            .expect("the limiter answers");
        outcome.quota
    }

    fn used(state: Option<QuotaState>) -> (u64, bool) {
        match state {
            Some(QuotaState::Used { used, exceeded }) => (used, exceeded),
            other => panic!("expected a figure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn seeds_merge_per_node_and_nodes_raise_their_own_figure() {
        let limiter = redis_limiter().await;
        let group = format!("quota-{}", owner());
        assert_eq!(
            ask(&*limiter, &group, "a", 0, 1).await,
            Some(QuotaState::Unknown),
            "no figure yet"
        );
        let stored = [("a".to_owned(), 6), ("b".to_owned(), 4)];
        limiter
            .seed_quota(&group, november(), &stored, 60)
            .await
            .unwrap();
        limiter
            .seed_quota(&group, november(), &stored, 60)
            .await
            .unwrap();
        assert_eq!(used(ask(&*limiter, &group, "a", 0, 1).await), (11, false));
        // b admitted 7 in all, 3 of them not stored: its figure rises from 4 to 7.
        assert_eq!(used(ask(&*limiter, &group, "b", 7, 1).await), (15, false));
        // A later seed with b's now-stored 7 (its field holds 8) changes nothing.
        let later = [("a".to_owned(), 7), ("b".to_owned(), 7)];
        limiter
            .seed_quota(&group, november(), &later, 60)
            .await
            .unwrap();
        assert_eq!(used(ask(&*limiter, &group, "c", 0, 5).await), (20, false));
        assert_eq!(
            used(ask(&*limiter, &group, "c", 0, 1).await),
            (20, true),
            "the 21st unit is refused and consumes nothing"
        );
    }

    #[tokio::test]
    async fn concurrent_checks_from_two_nodes_admit_exactly_the_quota() {
        let nodes = [redis_limiter().await, redis_limiter().await];
        let group = format!("quota-{}", owner());
        nodes[0]
            .seed_quota(&group, november(), &[], 60)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for worker in 0..16usize {
            let (limiter, group) = (nodes[worker % 2].clone(), group.clone());
            tasks.push(tokio::spawn(async move {
                let mut admitted = 0u64;
                for _ in 0..5 {
                    let node = if worker % 2 == 0 { "a" } else { "b" };
                    if !used(ask(&*limiter, &group, node, 0, 1).await).1 {
                        admitted += 1;
                    }
                }
                admitted
            }));
        }
        let mut admitted = 0;
        for task in tasks {
            admitted += task.await.unwrap();
        }
        assert_eq!(admitted, 20, "80 concurrent checks against a quota of 20");
    }
}
