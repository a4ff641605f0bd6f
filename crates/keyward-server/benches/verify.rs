//! The in-process decision for a cached key: what every request through `/v1/verify`,
//! `/v1/authorize` or the tower layer costs once the key is known.

use std::hint::black_box;
use std::net::IpAddr;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::{Scope, UserId};
use keyward_server::verifier::Check;
use keyward_server::{Engine, EngineConfig};
use keyward_store::{Actor, KeySpec, issue_key};

fn cached_decision(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (engine, plain) = runtime.block_on(async {
        let engine = Engine::open(&EngineConfig::embedded(&url))
            .await
            .expect("engine");
        // Limits the benchmark never reaches, so every check is an admitted one (three windows
        // checked, as on the default plans).
        let unmetered = keyward_core::Plan {
            name: keyward_core::PlanName::parse("unmetered").expect("name"),
            spec: keyward_core::PlanSpec {
                limits: vec![
                    keyward_core::Window::new(60, u64::MAX / 4),
                    keyward_core::Window::new(3600, u64::MAX / 4),
                    keyward_core::Window::new(86_400, u64::MAX / 4),
                ],
                ..keyward_core::PlanSpec::default()
            },
        };
        engine
            .store()
            .put_plan(&unmetered, &Actor::cli())
            .await
            .expect("plan");
        engine.verifier().reload_plans().await.expect("plans");
        let mut spec = KeySpec::new(UserId::parse("bench").expect("user"), "bench");
        spec.plan = Some(unmetered.name.clone());
        spec.scopes = vec![Scope::parse("read").expect("scope")];
        spec.allowed_ips = Some(vec!["127.0.0.0/8".parse().expect("cidr")]);
        let (plain, _) = issue_key(&**engine.store(), &spec, &Actor::cli())
            .await
            .expect("key");
        (engine, plain)
    });
    let key = plain.expose_secret().to_owned();
    let scopes = [Scope::parse("read").expect("scope")];
    let client: IpAddr = "127.0.0.1".parse().expect("ip");
    let check = Check {
        presented: Some(&key),
        client_ip: client,
        guard_ip: client,
        required_scopes: &scopes,
        cost: 1,
        counted: true,
        endpoint: "/v1/orders",
        method: "GET",
        defer_usage: false,
    };
    let verifier = engine.verifier().clone();
    runtime.block_on(async {
        assert!(
            verifier
                .verify(&check, Utc::now())
                .await
                .expect("verify")
                .is_valid()
        );
    });
    c.bench_function(
        "verify/cached key, scopes, allowlist, 3 windows (VALID)",
        |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(verifier.verify(&check, Utc::now()).await) })
        },
    );
    let tampered = format!("{}A", &key[..key.len() - 1]);
    let bad = Check {
        presented: Some(&tampered),
        ..check
    };
    c.bench_function("verify/bad checksum (INVALID, no I/O)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(verifier.verify(&bad, Utc::now()).await) })
    });
    runtime.block_on(engine.shutdown());
}

criterion_group!(benches, cached_decision);
criterion_main!(benches);
