//! The verifier in process, without HTTP: an engine on a SQLite file and the in-process
//! limiter, every decision code reached through `Verifier::verify`, and the monthly quota
//! and windows counted exactly. Fast enough to run thousands of checks per test.

use std::net::IpAddr;

use chrono::{Duration, Utc};
use keyward_core::{Code, Plan, PlanName, PlanSpec, Scope, UserId, Window};
use keyward_server::verifier::Check;
use keyward_server::{Engine, EngineConfig};
use keyward_store::{Actor, KeyPatch, KeySpec, NewUser, Store, UserProfile, issue_key};

struct Fixture {
    engine: Engine,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("verifier.db").display());
        let mut config = EngineConfig::embedded(&url);
        config.verifier.failure_limit = 3;
        let engine = Engine::open(&config).await.unwrap();
        let plan = Plan {
            name: PlanName::parse("small").unwrap(),
            spec: PlanSpec {
                limits: vec![Window::new(60, 5)],
                monthly_quota: Some(8),
                ..PlanSpec::default()
            },
        };
        engine.store().put_plan(&plan, &Actor::cli()).await.unwrap();
        engine.verifier().reload_plans().await.unwrap();
        Self { engine, _dir: dir }
    }

    fn store(&self) -> &dyn Store {
        &**self.engine.store()
    }

    /// A live key of `user` (on plan `small`, created on first use), changed by `edit`
    /// before it is stored.
    async fn key(
        &self,
        user: &str,
        edit: impl FnOnce(&mut KeySpec),
    ) -> (String, keyward_core::KeyId) {
        let user = UserId::parse(user).unwrap();
        if self.store().get_user(&user).await.is_err() {
            let new = NewUser {
                user_id: user.clone(),
                plan: PlanName::parse("small").unwrap(),
                profile: UserProfile::default(),
            };
            self.store().create_user(&new, &Actor::cli()).await.unwrap();
        }
        let mut spec = KeySpec::new(user, "k");
        edit(&mut spec);
        let (plain, record) = issue_key(self.store(), &spec, &Actor::cli()).await.unwrap();
        (plain.expose_secret().to_owned(), record.id)
    }

    async fn check(&self, key: Option<&str>, from: &str, scopes: &[&str]) -> Code {
        let scopes: Vec<Scope> = scopes.iter().map(|s| Scope::parse(s).unwrap()).collect();
        let ip: IpAddr = from.parse().unwrap();
        let check = Check {
            presented: key,
            client_ip: ip,
            guard_ip: ip,
            required_scopes: &scopes,
            cost: 1,
            counted: true,
            endpoint: "/x",
            method: "GET",
            defer_usage: false,
        };
        self.engine
            .verifier()
            .verify(&check, Utc::now())
            .await
            .expect("the store answers")
            .code
    }
}

#[tokio::test]
async fn every_refusal_is_reached_in_its_order() {
    let fx = Fixture::new().await;
    let here = "10.0.0.1";
    assert_eq!(fx.check(None, here, &[]).await, Code::Missing);
    assert_eq!(fx.check(Some(""), here, &[]).await, Code::Missing);
    assert_eq!(
        fx.check(Some("sk_live_nope"), here, &[]).await,
        Code::Invalid
    );

    let (revoked, id) = fx.key("a", |_| {}).await;
    fx.store().revoke_key(&id, &Actor::cli()).await.unwrap();
    let (disabled, id) = fx.key("a", |_| {}).await;
    let off = KeyPatch {
        enabled: Some(false),
        ..KeyPatch::default()
    };
    fx.store()
        .update_key(&id, &off, &Actor::cli())
        .await
        .unwrap();
    let (expired, _) = fx
        .key("a", |spec| {
            spec.expires_at = Some(Utc::now() - Duration::seconds(1))
        })
        .await;
    let (fenced, _) = fx
        .key("a", |spec| {
            spec.allowed_ips = Some(vec!["10.0.0.0/8".parse().unwrap()]);
            spec.scopes = vec![Scope::parse("read").unwrap()];
        })
        .await;
    // A fresh address for each failing check, so the guard (3 failures) stays out of it.
    assert_eq!(
        fx.check(Some(&revoked), "10.1.0.1", &[]).await,
        Code::Revoked
    );
    assert_eq!(
        fx.check(Some(&disabled), "10.1.0.2", &[]).await,
        Code::Disabled
    );
    assert_eq!(
        fx.check(Some(&expired), "10.1.0.3", &[]).await,
        Code::Expired
    );
    assert_eq!(
        fx.check(Some(&fenced), "192.0.2.1", &["write"]).await,
        Code::IpNotAllowed
    );
    assert_eq!(
        fx.check(Some(&fenced), here, &["write"]).await,
        Code::InsufficientScope
    );
    assert_eq!(fx.check(Some(&fenced), here, &["read"]).await, Code::Valid);
}

#[tokio::test]
async fn the_brute_force_guard_refuses_from_the_fourth_failure_on() {
    let fx = Fixture::new().await;
    let (good, _) = fx.key("g", |_| {}).await;
    for _ in 0..3 {
        assert_eq!(
            fx.check(Some("sk_live_nope"), "10.2.0.1", &[]).await,
            Code::Invalid
        );
    }
    assert_eq!(
        fx.check(Some(&good), "10.2.0.1", &[]).await,
        Code::TooManyFailures,
        "even a good key, from that address"
    );
    assert_eq!(fx.check(Some(&good), "10.2.0.2", &[]).await, Code::Valid);
}

#[tokio::test]
async fn a_window_then_the_users_quota_are_counted_exactly() {
    let fx = Fixture::new().await;
    let (first, _) = fx.key("q", |_| {}).await;
    let (second, _) = fx.key("q", |_| {}).await;
    // Window: 5 a minute per key; quota: 8 a month for the user's live keys.
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(fx.check(Some(&first), "10.3.0.1", &[]).await);
    }
    assert_eq!(codes[..5], [Code::Valid; 5]);
    assert_eq!(codes[5], Code::RateLimited);
    let mut valid = 0;
    for _ in 0..6 {
        match fx.check(Some(&second), "10.3.0.1", &[]).await {
            Code::Valid => valid += 1,
            Code::QuotaExceeded => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        valid, 3,
        "8 units a month: 5 on the first key, 3 on the second"
    );
    assert_eq!(
        fx.check(Some(&first), "10.3.0.1", &[]).await,
        Code::QuotaExceeded,
        "over both its window and the quota: the quota decides"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_spend_the_quota_exactly() {
    let fx = std::sync::Arc::new(Fixture::new().await);
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(fx.key("c", |_| {}).await.0);
    }
    let mut tasks = Vec::new();
    for key in keys {
        let fx = fx.clone();
        tasks.push(tokio::spawn(async move {
            let mut valid = 0;
            for _ in 0..5 {
                if fx.check(Some(&key), "10.4.0.1", &[]).await == Code::Valid {
                    valid += 1;
                }
            }
            valid
        }));
    }
    let mut valid = 0;
    for task in tasks {
        valid += task.await.unwrap();
    }
    assert_eq!(valid, 8, "20 concurrent checks over 4 keys, a quota of 8");
}

/// The key cache holds as many keys as fit in its bytes: keys with large metadata weigh
/// more, so they mean fewer cached keys, never more memory; the weight follows what the
/// key holds.
#[tokio::test]
async fn the_key_cache_is_bounded_by_bytes_not_by_keys() {
    use keyward_core::KeyHash;
    use keyward_server::verifier::{CachedKey, KeyCache};

    let fixture = Fixture::new().await;
    let (_, id) = fixture.key("weights", |_| {}).await;
    let plain = fixture.store().get_key(&id).await.unwrap();
    let mut heavy = plain.clone();
    heavy
        .metadata
        .insert("note".to_owned(), serde_json::json!("x".repeat(4000)));
    let light = CachedKey::from_record(&plain).weight();
    let weight = CachedKey::from_record(&heavy).weight();
    assert!(
        weight >= light + 4000,
        "metadata counts: {light} → {weight}"
    );

    let budget = 200 * 1024;
    let cache = KeyCache::new(budget);
    for i in 0..200 {
        cache.insert_known(
            KeyHash::of(&format!("heavy-{i}")),
            CachedKey::from_record(&heavy),
        );
    }
    let held = cache.len() as u64;
    assert!(held > 0, "some heavy keys are cached");
    assert!(
        held * u64::from(weight) <= budget,
        "{held} keys of {weight} bytes exceed {budget} bytes"
    );
    let cache = KeyCache::new(budget);
    for i in 0..1000 {
        cache.insert_known(
            KeyHash::of(&format!("light-{i}")),
            CachedKey::from_record(&plain),
        );
    }
    assert!(
        cache.len() as u64 > held * 5,
        "light keys fit many more: {} vs {held}",
        cache.len()
    );
}
