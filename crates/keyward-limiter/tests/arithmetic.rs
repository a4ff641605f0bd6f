//! The limiter's algorithms against exact models: a sliding log for windows, a continuous
//! token bucket for the burst. Random arrival times and costs; time is injected.

use keyward_limiter::{Gcra, SUB_BUCKETS, SlidingWindow, bucket_width_ms};
use proptest::prelude::*;

fn requests() -> impl Strategy<Value = Vec<(u64, u64)>> {
    // (milliseconds since the previous request, cost)
    prop::collection::vec((0u64..400, 1u64..4), 1..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_interval_of_the_window_holds_more_than_max(
        window_seconds in 1u64..5,
        max in 1u64..20,
        start in 0u64..1_000_000,
        arrivals in requests(),
    ) {
        let window_ms = window_seconds * 1000;
        let mut window = SlidingWindow::new();
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        let mut now = start;
        for (gap, cost) in arrivals {
            now += gap;
            let before = window.clone();
            let state = window.check(window_seconds, max, now, cost, true);
            match state.retry_ms {
                None => {
                    admitted.push((now, cost));
                    // The exact sliding log: every interval (t - W, t] ending at an admission.
                    let in_window: u64 = admitted.iter().filter(|(t, _)| *t + window_ms > now).map(|(_, c)| c).sum();
                    prop_assert!(in_window <= max, "{in_window} > {max} at {now}");
                }
                Some(retry) => {
                    prop_assert_eq!(&window, &before, "a rejected request changes nothing");
                    prop_assert_eq!(state.remaining < cost, true);
                    if cost <= max {
                        // Truthful: waiting `retry` (and nothing else admitted) admits it…
                        let mut probe = window.clone();
                        prop_assert!(probe.check(window_seconds, max, now + retry, cost, false).retry_ms.is_none());
                        // …and it could not have been admitted a millisecond sooner.
                        prop_assert!(probe.check(window_seconds, max, now + retry - 1, cost, false).retry_ms.is_some());
                    }
                }
            }
            // `reset` is truthful: remaining grows exactly then.
            let probe_state = window.clone().check(window_seconds, max, now, 1, false);
            if probe_state.reset_ms > 0 {
                let at = now + probe_state.reset_ms;
                let later = window.clone().check(window_seconds, max, at, 1, false);
                let earlier = window.clone().check(window_seconds, max, at - 1, 1, false);
                prop_assert!(later.remaining > probe_state.remaining || later.remaining == max);
                prop_assert_eq!(earlier.remaining, probe_state.remaining);
            }
        }
    }

    /// Concurrent callers read the clock before they take the limiter's lock, so a check
    /// may carry an earlier time than the one before it. The window then counts it in its
    /// newest bucket (as if it came at the latest time seen): never more than `max` in any
    /// interval of the window, whatever the order.
    #[test]
    fn out_of_order_times_never_let_a_window_hold_more_than_max(
        window_seconds in 1u64..5,
        max in 1u64..20,
        start in 5_000u64..1_000_000,
        arrivals in prop::collection::vec((-800i64..400, 1u64..4), 1..300),
    ) {
        let window_ms = window_seconds * 1000;
        let mut window = SlidingWindow::new();
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        // `latest`: the latest clock reading the window has seen (none yet).
        let (mut now, mut latest) = (start, 0);
        for (step, cost) in arrivals {
            now = now.saturating_add_signed(step).max(1);
            latest = latest.max(now);
            let before = window.clone();
            let state = window.check(window_seconds, max, now, cost, true);
            if state.retry_ms.is_none() {
                admitted.push((latest, cost));
                let in_window: u64 = admitted
                    .iter()
                    .filter(|(t, _)| *t + window_ms > latest)
                    .map(|(_, c)| c)
                    .sum();
                prop_assert!(in_window <= max, "{in_window} > {max} at {latest} (clock read {now})");
            } else {
                prop_assert_eq!(&window, &before, "a rejected request changes nothing");
            }
        }
    }

    /// The burst bucket with out-of-order times: an earlier time refills nothing, so the
    /// bucket never admits more than its capacity plus what its rate refills between the
    /// earliest and the latest time seen.
    #[test]
    fn out_of_order_times_never_overfill_the_burst_bucket(
        rate in prop::sample::select(vec![1u64, 2, 5, 10, 50]),
        capacity in 1u64..20,
        start in 5_000u64..1_000_000,
        arrivals in prop::collection::vec((-800i64..400, 1u64..4), 1..300),
    ) {
        let mut bucket = Gcra::default();
        let (mut now, mut earliest, mut latest) = (start, start, start);
        let mut admitted = 0u64;
        for (step, cost) in arrivals {
            now = now.saturating_add_signed(step).max(1);
            earliest = earliest.min(now);
            latest = latest.max(now);
            if bucket.check(rate as f64, capacity, now, cost, true).retry_ms.is_none() {
                admitted += cost;
                let refilled = (latest - earliest) * rate / 1000;
                prop_assert!(
                    admitted <= capacity + refilled,
                    "{admitted} admitted; capacity {capacity}, refilled {refilled}"
                );
            }
        }
    }

    #[test]
    fn continuous_overload_is_admitted_at_nearly_the_full_rate(
        window_seconds in 1u64..10,
        max in 1u64..50,
        start in 0u64..1_000_000,
    ) {
        let window_ms = window_seconds * 1000;
        let horizon = 20 * window_ms;
        let step = (bucket_width_ms(window_seconds) / 4).max(1);
        let mut window = SlidingWindow::new();
        let mut admitted = 0u64;
        let mut now = start;
        while now < start + horizon {
            if window.check(window_seconds, max, now, 1, true).retry_ms.is_none() {
                admitted += 1;
            }
            now += step;
        }
        let floor = 0.95 * (max as f64) * (horizon as f64) / (window_ms as f64) - max as f64;
        prop_assert!(admitted as f64 >= floor, "{admitted} < {floor}");
    }

    #[test]
    fn the_burst_bucket_matches_a_continuous_token_bucket(
        rate in prop::sample::select(vec![1u64, 2, 4, 5, 10, 20, 50, 100]),
        capacity in 1u64..20,
        start in 0u64..1_000_000,
        arrivals in requests(),
    ) {
        // The reference: a level of micro-tokens, refilled continuously, capped at capacity.
        let interval = 1_000_000 / rate;
        let full = capacity * interval;
        let mut level = full;
        let mut last = start * 1000;
        let mut bucket = Gcra::default();
        let mut now = start;
        for (gap, cost) in arrivals {
            now += gap;
            level = (level + (now * 1000 - last)).min(full);
            last = now * 1000;
            let expected = level >= cost * interval;
            if expected {
                level -= cost * interval;
            }
            let before = bucket;
            let state = bucket.check(rate as f64, capacity, now, cost, true);
            prop_assert_eq!(state.retry_ms.is_none(), expected, "at {} cost {}", now, cost);
            prop_assert_eq!(state.remaining, level / interval);
            if let Some(retry) = state.retry_ms {
                prop_assert_eq!(bucket, before, "a rejected request changes nothing");
                if cost <= capacity {
                    prop_assert!(bucket.clone().check(rate as f64, capacity, now + retry, cost, false).retry_ms.is_none());
                }
            }
        }
    }
}

#[test]
fn the_ring_holds_one_more_bucket_than_its_sub_buckets() {
    // 60 s windows use 2.5 s buckets; the K + 1 newest always span at least the window.
    assert_eq!(bucket_width_ms(60) * SUB_BUCKETS, 60_000);
    assert!(bucket_width_ms(7) * SUB_BUCKETS >= 7_000);
}
