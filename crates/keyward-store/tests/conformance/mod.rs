//! The store conformance suite: written once, expanded for every backend with
//! `store_conformance!(backend_name, async { make_store().await })`, where the expression
//! yields `(Box<dyn Store>, guard)` for a fresh, unmigrated database kept alive by `guard`.

pub mod admin;
pub mod billing;
pub mod feed;
pub mod helpers;
pub mod keys;
pub mod sessions;
pub mod usage;
pub mod users;
pub mod webhooks;

#[macro_export]
macro_rules! store_conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($role:ident :: $name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let (store, _guard) = $make;
                        store.migrate().await.expect("migrations apply");
                        $crate::conformance::$role::$name(&*store).await;
                    }
                };
            }

            case!(keys::creating_a_key_creates_its_user_and_finds_it_by_hash);
            case!(keys::listing_is_newest_first_and_pages_without_gaps);
            case!(keys::inactive_keys_are_listed_only_on_request);
            case!(keys::revoking_is_idempotent);
            case!(keys::rotation_copies_settings_and_honours_the_grace_period);
            case!(keys::rotating_a_revoked_key_conflicts);
            case!(keys::expiry_is_judged_against_now);
            case!(keys::max_keys_caps_open_keys);
            case!(keys::updates_merge_metadata_and_audit_enable_and_disable);
            case!(users::unknown_plans_and_deleted_users_are_refused);
            case!(feed::the_change_feed_reports_every_change);
            case!(users::users_are_created_listed_updated_and_deleted);
            case!(users::plans_start_with_the_defaults_and_can_be_replaced);
            case!(keys::imports_skip_duplicates_and_refuse_invalid_files_whole);
            case!(feed::the_audit_log_filters_and_pages);
            case!(usage::usage_bookkeeping_accumulates_without_being_a_change);
            case!(admin::settings_are_written_once);
            case!(usage::quota_usage_accumulates_per_user_and_month);
            case!(usage::usage_batches_add_up_in_rollups_and_are_pruned);
            case!(billing::plan_segments_and_prices_have_history);
            case!(billing::the_billing_outbox_claims_retries_and_finishes);
            case!(billing::metering_records_revisions_once);
            case!(keys::rotation_happens_at_most_once_and_only_to_active_keys);
            case!(keys::disabling_and_operator_metadata_are_attributed);
            case!(keys::the_users_plan_caps_new_key_lifetimes);
            case!(keys::leak_reports_act_once_and_audit_every_report);
            case!(keys::leak_reports_are_bounded_and_name_keys_in_order);
            case!(keys::the_lifetime_cap_counts_from_creation_on_change);
            case!(webhooks::events_reach_subscribed_enabled_endpoints_once);
            case!(webhooks::endpoint_changes_are_audited_without_the_secret);
            case!(webhooks::gone_and_failing_endpoints_are_disabled_and_replays_resend);
            case!(admin::admin_keys_are_found_by_hash_listed_revoked_and_touched);
            case!(sessions::sessions_live_until_idle_expiry_or_their_admin_key_ends);
            case!(sessions::portal_links_open_once_and_end_with_their_user);
            case!(keys::listings_search_and_filter_by_state_and_plan);

            #[tokio::test]
            async fn migrations_roll_back_exactly_and_keep_other_tables_rows() {
                let (store, _guard) = $make;
                $crate::conformance::admin::migrations_roll_back_exactly_and_keep_other_tables_rows(&*store).await;
            }
        }
    };
}

/// What only raw SQL on the backend's own pool can show, the same on every backend:
/// `raw_sql_conformance!(backend_name, async { migrated_store().await })`, where the
/// expression yields `(store, guard)` for a fresh, migrated store with a `pool()`.
#[macro_export]
macro_rules! raw_sql_conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            use keyward_store::{Actor, Entity, KeySpec, issue_key};
            use sqlx::Row;

            #[tokio::test]
            async fn direct_sql_edits_reach_the_change_feed_and_usage_bookkeeping_does_not() {
                let (store, _guard) = $make;
                let spec = KeySpec::new("u1".parse().unwrap(), "k");
                let (_, key) = issue_key(&store, &spec, &Actor::cli()).await.unwrap();
                let before = store.latest_change().await.unwrap();

                sqlx::query("UPDATE api_keys SET last_used_at = '2026-01-01T00:00:00.000Z', request_count = 5 WHERE id = $1")
                    .bind(key.id.as_str())
                    .execute(store.pool())
                    .await
                    .unwrap();
                assert_eq!(
                    store.latest_change().await.unwrap(),
                    before,
                    "bookkeeping is not a change"
                );

                sqlx::query("UPDATE api_keys SET enabled = FALSE WHERE id = $1")
                    .bind(key.id.as_str())
                    .execute(store.pool())
                    .await
                    .unwrap();
                let changes = store.changes_since(before, 10).await.unwrap();
                assert_eq!(changes.len(), 1);
                assert_eq!(changes[0].entity, Entity::Key);
                assert_eq!(changes[0].entity_id, key.id.as_str());
                let hash: String = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1")
                    .bind(key.id.as_str())
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
                assert_eq!(changes[0].key_hash.map(|h| h.to_hex()), Some(hash));
            }

            /// The one status rule lives in Rust (`KeyStatus::of`) and in SQL (listings,
            /// `max_keys`, `key_count`, the view): on the same rows, in every state, they agree.
            #[tokio::test]
            async fn the_status_rule_is_the_same_in_sql_and_in_rust() {
                let (store, _guard) = $make;
                let past = "2020-01-01T00:00:00.000Z";
                let far = "9999-12-31T23:59:59.000Z";
                // (name, is_active, enabled, expires_at)
                let states: [(&str, bool, bool, Option<&str>); 8] = [
                    ("active", true, true, None),
                    ("active-far", true, true, Some(far)),
                    ("expired", true, true, Some(past)),
                    ("disabled", true, false, None),
                    ("disabled-expired", true, false, Some(past)),
                    ("revoked", false, true, None),
                    ("revoked-disabled-expired", false, false, Some(past)),
                    ("revoked-far", false, true, Some(far)),
                ];
                let user: keyward_core::UserId = "status-user".parse().unwrap();
                for (name, is_active, enabled, expires_at) in states {
                    let spec = KeySpec::new(user.clone(), name);
                    let (_, key) = issue_key(&store, &spec, &Actor::cli()).await.unwrap();
                    sqlx::query("UPDATE api_keys SET is_active = $2, enabled = $3, expires_at = $4 WHERE id = $1")
                        .bind(key.id.as_str())
                        .bind(is_active)
                        .bind(enabled)
                        .bind(expires_at)
                        .execute(store.pool())
                        .await
                        .unwrap();
                }
                let now = chrono::Utc::now();
                let all = store
                    .list_keys(&keyward_store::KeyFilter {
                        user_id: Some(user.clone()),
                        include_inactive: true,
                        page: keyward_store::PageRequest { limit: 100, cursor: None },
                        ..keyward_store::KeyFilter::default()
                    })
                    .await
                    .unwrap()
                    .items;
                assert_eq!(all.len(), states.len());
                let listed: Vec<String> = store
                    .list_keys(&keyward_store::KeyFilter {
                        user_id: Some(user.clone()),
                        include_inactive: false,
                        page: keyward_store::PageRequest { limit: 100, cursor: None },
                        ..keyward_store::KeyFilter::default()
                    })
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|k| k.name)
                    .collect();
                let mut active = 0;
                for key in &all {
                    let status = key.status(now);
                    let expected = key.name.split('-').next().unwrap();
                    assert_eq!(status.as_str(), expected, "Rust status of {}", key.name);
                    let view: String = sqlx::query_scalar("SELECT status FROM v_user_api_keys WHERE id = $1")
                        .bind(key.id.as_str())
                        .fetch_one(store.pool())
                        .await
                        .unwrap();
                    assert_eq!(view, status.as_str(), "view status of {}", key.name);
                    assert_eq!(listed.contains(&key.name), status.is_open(), "listing of {}", key.name);
                    active += u64::from(status == keyward_store::KeyStatus::Active);
                }
                assert_eq!(store.get_user(&user).await.unwrap().key_count, active);
                assert_eq!(active, 2);
            }

            #[tokio::test]
            async fn the_view_reports_status_and_validity_without_the_hash() {
                let (store, _guard) = $make;
                let (_, active) = issue_key(
                    &store,
                    &KeySpec::new("u1".parse().unwrap(), "a"),
                    &Actor::cli(),
                )
                .await
                .unwrap();
                let (_, revoked) = issue_key(
                    &store,
                    &KeySpec::new("u1".parse().unwrap(), "r"),
                    &Actor::cli(),
                )
                .await
                .unwrap();
                store.revoke_key(&revoked.id, &Actor::cli()).await.unwrap();

                let rows = sqlx::query("SELECT * FROM v_user_api_keys ORDER BY name")
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
                let columns: Vec<String> = rows[0]
                    .columns()
                    .iter()
                    .map(|c| sqlx::Column::name(c).to_owned())
                    .collect();
                assert!(!columns.iter().any(|c| c == "key_hash"), "{columns:?}");
                for expected in ["id", "key_prefix", "status", "is_valid", "request_count", "lineage_id"] {
                    assert!(columns.iter().any(|c| c == expected), "missing {expected}");
                }
                let by_name: Vec<(String, String, bool)> = rows
                    .iter()
                    .map(|r| (r.get("id"), r.get("status"), r.get("is_valid")))
                    .collect();
                assert_eq!(by_name[0], (active.id.to_string(), "active".to_owned(), true));
                assert_eq!(by_name[1], (revoked.id.to_string(), "revoked".to_owned(), false));
            }
        }
    };
}
