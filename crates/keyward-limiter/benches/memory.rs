//! The in-process limiter: one check of a key with the free plan's three windows, on one
//! thread and on two (throughput scaling), and the memory an active key's state takes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyward_core::{UserId, Window};
use keyward_limiter::{Check, MemoryLimiter};

// The allocator the keyward binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn free_windows() -> [Window; 3] {
    [
        Window::new(60, 1_000_000),
        Window::new(3600, 1_000_000_000),
        Window::new(86_400, 1_000_000_000),
    ]
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn limiter(c: &mut Criterion) {
    let windows = free_windows();
    let user = UserId::parse("g").expect("a user id");
    let limiter = MemoryLimiter::new();
    let mut now = 1_700_000_000_000u64;
    let mut owner = 0u128;
    let mut group = c.benchmark_group("limiter/memory");
    group.throughput(Throughput::Elements(1));
    group.bench_function("check, 3 windows, 1024 keys", |b| {
        b.iter(|| {
            owner = (owner + 1) % 1024;
            now += 1;
            black_box(limiter.check_now(&Check {
                group: &user,
                quota: None,
                owner,
                windows: &windows,
                burst: None,
                cost: 1,
                now_ms: now,
            }))
        })
    });
    group.finish();

    // Scaling: the same number of checks on one thread, then split over two.
    let checks = 2_000_000u64;
    let run = |threads: u64| {
        let limiter = Arc::new(MemoryLimiter::new());
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    let windows = free_windows();
                    let user = UserId::parse("g").expect("a user id");
                    for i in 0..checks / threads {
                        let owner = u128::from(t * 1_000_003 + i % 1024);
                        limiter.check_now(&Check {
                            group: &user,
                            quota: None,
                            owner,
                            windows: &windows,
                            burst: None,
                            cost: 1,
                            now_ms: 1_700_000_000_000 + i,
                        });
                    }
                })
            })
            .collect();
        for handle in handles {
            let _ = handle.join();
        }
        checks as f64 / started.elapsed().as_secs_f64()
    };
    // Best of five runs each: the figure a quiet machine gives.
    let best = |threads: u64| (0..5).map(|_| run(threads)).fold(0.0, f64::max);
    let one = best(1);
    let two = best(2);
    println!(
        "limiter/memory scaling: {one:.0} checks/s on 1 thread, {two:.0} on 2 ({:.2}x)",
        two / one
    );

    let before = resident_bytes();
    let held = MemoryLimiter::new();
    for owner in 0..100_000u128 {
        held.check_now(&Check {
            group: &user,
            quota: None,
            owner,
            windows: &windows,
            burst: None,
            cost: 1,
            now_ms: 1_700_000_000_000,
        });
    }
    let grown = resident_bytes().saturating_sub(before);
    println!(
        "limiter/memory state: {} bytes per active key (3 windows, 100,000 keys)",
        grown / 100_000
    );
}

criterion_group!(benches, limiter);
criterion_main!(benches);
