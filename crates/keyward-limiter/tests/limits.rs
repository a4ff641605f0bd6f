//! `Limits`, the one call a request's limits take, against the in-process backend and a
//! book that keeps stored usage in memory: the order of the quota and the windows, what a
//! rejection consumes, and where the quota's figure comes from.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use keyward_core::{Burst, Code, UserId, Window};
use keyward_limiter::{Ask, LimitKind, Limits, MemoryLimiter, Month, QuotaBook, Windows};

#[derive(Debug, Default)]
struct Book {
    stored: Mutex<HashMap<(UserId, Month), u64>>,
    recorded: Mutex<HashMap<(UserId, Month), u64>>,
}

#[async_trait]
impl QuotaBook for Book {
    fn node(&self) -> &str {
        "node-a"
    }

    fn admitted_here(&self, user: &UserId, month: Month) -> u64 {
        let recorded = self.recorded.lock().unwrap();
        recorded.get(&(user.clone(), month)).copied().unwrap_or(0)
    }

    fn add_units(&self, user: &UserId, month: Month, units: u64) {
        *self
            .recorded
            .lock()
            .unwrap()
            .entry((user.clone(), month))
            .or_insert(0) += units;
    }

    fn settle_time(&self) -> Duration {
        Duration::ZERO
    }

    async fn stored(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<u64, Box<dyn Error + Send + Sync>> {
        let stored = self.stored.lock().unwrap();
        Ok(stored.get(&(user.clone(), month)).copied().unwrap_or(0))
    }

    async fn stored_by_node(
        &self,
        user: &UserId,
        month: Month,
    ) -> Result<Vec<(String, u64)>, Box<dyn Error + Send + Sync>> {
        Ok(vec![("old".to_owned(), self.stored(user, month).await?)])
    }
}

fn at(day: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, second)
        .single()
        .unwrap()
}

fn setup() -> (Limits, Arc<Book>, UserId) {
    let book = Arc::new(Book::default());
    let limits = Limits::new(Arc::new(MemoryLimiter::new()), book.clone());
    (limits, book, UserId::parse("alice").unwrap())
}

fn ask<'a>(user: &'a UserId, windows: &'a [Window], quota: Option<u64>, cost: u64) -> Ask<'a> {
    Ask {
        owner: 7,
        user,
        windows: Windows::exactly(windows),
        burst: None,
        monthly_quota: quota,
        cost,
        now: at(15, 0),
    }
}

#[tokio::test]
async fn the_quota_starts_from_the_stored_figure_and_refuses_past_it() {
    let (limits, book, user) = setup();
    let month = Month::of(at(15, 0));
    book.stored.lock().unwrap().insert((user.clone(), month), 8);
    let windows = [Window::new(60, 100)];
    let verdict = limits
        .check(&ask(&user, &windows, Some(10), 2))
        .await
        .unwrap();
    assert_eq!(verdict.code, Code::Valid);
    let month_status = verdict.outcome.limits.last().unwrap();
    assert_eq!(month_status.kind, LimitKind::Month);
    assert_eq!((month_status.limit, month_status.remaining), (10, 0));
    let verdict = limits
        .check(&ask(&user, &windows, Some(10), 1))
        .await
        .unwrap();
    assert_eq!(verdict.code, Code::QuotaExceeded);
    assert!(!verdict.outcome.admitted);
    assert!(verdict.outcome.retry_after().unwrap() > 0);
    // Only the admitted units were recorded, and the window was charged once.
    assert_eq!(book.admitted_here(&user, month), 2);
    assert_eq!(verdict.outcome.limits[0].remaining, 98);
}

#[tokio::test]
async fn a_window_that_rejects_gives_the_reserved_quota_back() {
    let (limits, book, user) = setup();
    let windows = [Window::new(60, 1)];
    let first = limits
        .check(&ask(&user, &windows, Some(10), 1))
        .await
        .unwrap();
    assert_eq!(first.code, Code::Valid);
    let second = limits
        .check(&ask(&user, &windows, Some(10), 1))
        .await
        .unwrap();
    assert_eq!(second.code, Code::RateLimited);
    let month_status = second.outcome.limits.last().unwrap();
    assert_eq!(
        month_status.remaining, 9,
        "the rejected request spent nothing"
    );
    assert_eq!(book.admitted_here(&user, Month::of(at(15, 0))), 1);
}

#[tokio::test]
async fn without_a_quota_only_the_windows_and_burst_answer() {
    let (limits, book, user) = setup();
    let windows = [Window::new(60, 5)];
    let burst = Burst {
        rate_per_second: 1.0,
        capacity: 2,
    };
    let mut request = ask(&user, &windows, None, 1);
    request.burst = Some(&burst);
    let kinds = |verdict: &keyward_limiter::Verdict| {
        verdict
            .outcome
            .limits
            .iter()
            .map(|l| l.kind)
            .collect::<Vec<_>>()
    };
    let first = limits.check(&request).await.unwrap();
    assert_eq!(kinds(&first), [LimitKind::Window, LimitKind::Burst]);
    assert_eq!(limits.check(&request).await.unwrap().code, Code::Valid);
    let third = limits.check(&request).await.unwrap();
    assert_eq!(third.code, Code::RateLimited, "the burst bucket holds two");
    assert_eq!(third.outcome.tightest_window().unwrap().remaining, 3);
    assert!(book.recorded.lock().unwrap().is_empty());
}

#[tokio::test]
async fn per_user_windows_are_kept_apart_from_keys_and_from_each_other() {
    let (limits, _, user) = setup();
    let now = at(15, 0);
    assert_eq!(
        limits.per_user_window("a", &user, 1, now).await.unwrap(),
        None
    );
    let refused = limits.per_user_window("a", &user, 1, now).await.unwrap();
    // At most the window plus one of its buckets (the window slides bucket by bucket).
    let longest = 60 + keyward_limiter::bucket_width_ms(60).div_ceil(1000);
    assert!(
        refused.is_some_and(|seconds| (1..=longest).contains(&seconds)),
        "{refused:?}"
    );
    assert_eq!(
        limits.per_user_window("b", &user, 1, now).await.unwrap(),
        None
    );
    let bob = UserId::parse("bob").unwrap();
    assert_eq!(
        limits.per_user_window("a", &bob, 1, now).await.unwrap(),
        None
    );
    assert_eq!(
        limits.per_user_window("a", &user, 0, now).await.unwrap(),
        None,
        "0 = off"
    );
}
