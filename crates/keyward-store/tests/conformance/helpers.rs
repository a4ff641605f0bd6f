//! What every role's cases share: the imports they use and small builders.

pub use chrono::{Duration, Utc};
pub use keyward_core::{
    Environment, KeyHash, KeyId, KeyPrefix, Plan, PlanName, PlanSpec, Scope, UserId, Window,
};
pub use keyward_store::{
    Actor, AuditAction, AuditFilter, Entity, ImportMode, ImportRow, KeyFilter, KeyPatch, KeySpec,
    KeyStatus, KeyUsage, Metadata, NewUser, PageRequest, Rotation, Store, StoreError, UserFilter,
    UserPatch, UserProfile, issue_key, rotate_key,
};
pub use serde_json::json;

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub fn plan(name: &str) -> PlanName {
    PlanName::parse(name).unwrap()
}

pub fn admin() -> Actor {
    Actor::admin(Some("192.0.2.7".parse().unwrap()))
}

pub fn spec(user_id: &str, name: &str) -> KeySpec {
    KeySpec::new(user(user_id), name)
}

pub async fn enterprise_user(store: &dyn Store, id: &str) {
    store
        .create_user(
            &NewUser {
                user_id: user(id),
                plan: plan("enterprise"),
                profile: UserProfile::default(),
            },
            &admin(),
        )
        .await
        .unwrap();
}

pub fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { limit, cursor }
}

pub async fn audit_actions(store: &dyn Store, key_id: &KeyId) -> Vec<String> {
    let filter = AuditFilter {
        key_id: Some(key_id.clone()),
        page: page(100, None),
        ..AuditFilter::default()
    };
    let mut actions: Vec<String> = store
        .list_audit(&filter)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.action)
        .collect();
    actions.reverse();
    actions
}
