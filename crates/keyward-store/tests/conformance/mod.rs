//! The store conformance suite: written once, expanded for every backend with
//! `store_conformance!(backend_name, async { make_store().await })`, where the expression
//! yields `(Box<dyn Store>, guard)` for a fresh, unmigrated database kept alive by `guard`.

pub mod suite;

#[macro_export]
macro_rules! store_conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let (store, _guard) = $make;
                        store.migrate().await.expect("migrations apply");
                        $crate::conformance::suite::$name(&*store).await;
                    }
                };
            }

            case!(creating_a_key_creates_its_user_and_finds_it_by_hash);
            case!(listing_is_newest_first_and_pages_without_gaps);
            case!(inactive_keys_are_listed_only_on_request);
            case!(revoking_is_idempotent);
            case!(rotation_copies_settings_and_honours_the_grace_period);
            case!(rotating_a_revoked_key_conflicts);
            case!(expiry_is_judged_against_now);
            case!(max_keys_caps_open_keys);
            case!(updates_merge_metadata_and_audit_enable_and_disable);
            case!(unknown_plans_and_deleted_users_are_refused);
            case!(the_change_feed_reports_every_change);
            case!(users_are_created_listed_updated_and_deleted);
            case!(plans_start_with_the_defaults_and_can_be_replaced);
            case!(imports_skip_duplicates_and_refuse_invalid_files_whole);
            case!(the_audit_log_filters_and_pages);
            case!(usage_bookkeeping_accumulates_without_being_a_change);
            case!(settings_are_written_once);
            case!(quota_usage_accumulates_per_user_and_month);

            #[tokio::test]
            async fn migrations_roll_back_exactly_and_keep_other_tables_rows() {
                let (store, _guard) = $make;
                $crate::conformance::suite::migrations_roll_back_exactly_and_keep_other_tables_rows(&*store).await;
            }
        }
    };
}
