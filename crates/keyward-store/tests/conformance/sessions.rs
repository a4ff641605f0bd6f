//! The store conformance suite — Sessions: dashboard and portal sessions and one-time
//! portal links, the same on every backend.

use super::helpers::*;
use keyward_store::{NewWebSession, SessionHolder};

fn session(hash: &str, holder: SessionHolder, expires_in: Duration) -> NewWebSession {
    let now = Utc::now();
    NewWebSession {
        token_hash: hash.to_owned(),
        idle: if holder.is_portal() {
            Duration::minutes(60)
        } else {
            Duration::minutes(30)
        },
        holder,
        admin_token_hash: None,
        csrf_token: format!("csrf-{hash}"),
        created_at: now,
        expires_at: now + expires_in,
    }
}

pub async fn sessions_live_until_idle_expiry_or_their_admin_key_ends(store: &dyn Store) {
    let mut with_token = session("a", SessionHolder::Admin(None), Duration::hours(12));
    with_token.admin_token_hash = Some("fingerprint".to_owned());
    store.create_web_session(&with_token).await.unwrap();
    let now = Utc::now();
    let live = store
        .touch_web_session("a", false, now)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(live.holder, SessionHolder::Admin(None));
    assert_eq!(live.admin_token_hash.as_deref(), Some("fingerprint"));
    assert_eq!(live.csrf_token, "csrf-a");
    assert!(
        store
            .touch_web_session("nope", false, now)
            .await
            .unwrap()
            .is_none()
    );
    // Idle too long: gone, and stays gone.
    let later = now + Duration::minutes(31);
    assert!(
        store
            .touch_web_session("a", false, later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .touch_web_session("a", false, now)
            .await
            .unwrap()
            .is_none()
    );
    // Past its end, however active.
    store
        .create_web_session(&session(
            "b",
            SessionHolder::Admin(None),
            Duration::minutes(5),
        ))
        .await
        .unwrap();
    assert!(
        store
            .touch_web_session("b", false, now + Duration::minutes(4))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .touch_web_session("b", false, now + Duration::minutes(6))
            .await
            .unwrap()
            .is_none()
    );
    // An admin key's session ends with the key.
    let (_, key) = keyward_store::issue_admin_key(
        store,
        "ui",
        &[keyward_core::Permission::KeysRead],
        None,
        &admin(),
    )
    .await
    .unwrap();
    store
        .create_web_session(&session(
            "c",
            SessionHolder::Admin(Some(key.id.clone())),
            Duration::hours(1),
        ))
        .await
        .unwrap();
    assert!(
        store
            .touch_web_session("c", false, Utc::now())
            .await
            .unwrap()
            .is_some()
    );
    store.revoke_admin_key(&key.id, &admin()).await.unwrap();
    assert!(
        store
            .touch_web_session("c", false, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    // Signing out.
    store
        .create_web_session(&session(
            "d",
            SessionHolder::Admin(None),
            Duration::hours(1),
        ))
        .await
        .unwrap();
    store.delete_web_session("d").await.unwrap();
    store.delete_web_session("d").await.unwrap();
    assert!(
        store
            .touch_web_session("d", false, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
}

/// The session a portal link opens (its holder is the link's user).
fn entry() -> NewWebSession {
    session(
        &format!("entry-{}", keyward_core::monotonic_ulid()),
        SessionHolder::Admin(None),
        Duration::hours(1),
    )
}

pub async fn portal_links_open_once_and_end_with_their_user(store: &dyn Store) {
    let acme = user("acme");
    // Only an existing user gets a link.
    assert!(matches!(
        store
            .create_portal_link(&acme, "l0", Utc::now() + Duration::minutes(15), &admin())
            .await,
        Err(StoreError::NotFound(_))
    ));
    issue_key(store, &spec("acme", "k"), &admin())
        .await
        .unwrap();
    store
        .create_portal_link(&acme, "l1", Utc::now() + Duration::minutes(15), &admin())
        .await
        .unwrap();
    let now = Utc::now();
    let opened = session("s1", SessionHolder::Admin(None), Duration::hours(1));
    assert_eq!(
        store.open_portal_session("l1", &opened, now).await.unwrap(),
        Some(acme.clone())
    );
    // The session it opened is the user's portal session, and only a portal one.
    let live = store
        .touch_web_session("s1", true, now)
        .await
        .unwrap()
        .expect("opened");
    assert_eq!(live.holder, SessionHolder::Portal(acme.clone()));
    assert!(
        store
            .touch_web_session("s1", false, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .touch_web_session("s1", true, now)
            .await
            .unwrap()
            .is_some(),
        "untouched by the other kind"
    );
    assert_eq!(
        store
            .open_portal_session("l1", &entry(), now)
            .await
            .unwrap(),
        None,
        "once"
    );
    assert_eq!(
        store
            .open_portal_session("unknown", &entry(), now)
            .await
            .unwrap(),
        None
    );
    // Expired.
    store
        .create_portal_link(&acme, "l2", now - Duration::seconds(1), &admin())
        .await
        .unwrap();
    assert_eq!(
        store
            .open_portal_session("l2", &entry(), now)
            .await
            .unwrap(),
        None
    );
    // Revoking the user's portal sessions ends its sessions and unused links.
    store
        .create_web_session(&session(
            "p",
            SessionHolder::Portal(acme.clone()),
            Duration::hours(1),
        ))
        .await
        .unwrap();
    assert!(
        store
            .touch_web_session("p", true, Utc::now())
            .await
            .unwrap()
            .is_some()
    );
    store
        .create_portal_link(&acme, "l3", Utc::now() + Duration::minutes(15), &admin())
        .await
        .unwrap();
    // s1 and p, and the unused l3.
    assert_eq!(
        store.revoke_portal_sessions(&acme, &admin()).await.unwrap(),
        3
    );
    assert!(
        store
            .touch_web_session("p", true, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .open_portal_session("l3", &entry(), Utc::now())
            .await
            .unwrap(),
        None
    );
    let actions: Vec<String> = store
        .list_audit(&AuditFilter {
            user_id: Some(acme.clone()),
            page: page(100, None),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "portal_session.create")
            .count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "portal_session.revoke")
            .count(),
        1,
        "{actions:?}"
    );
    // A deleted user's sessions end with it.
    store
        .create_web_session(&session(
            "q",
            SessionHolder::Portal(acme.clone()),
            Duration::hours(1),
        ))
        .await
        .unwrap();
    store.delete_user(&acme, &admin()).await.unwrap();
    assert!(
        store
            .touch_web_session("q", true, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .create_portal_link(&acme, "l4", Utc::now() + Duration::minutes(15), &admin())
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Pruning removes what ended.
    store
        .create_web_session(&session(
            "r",
            SessionHolder::Admin(None),
            Duration::seconds(1),
        ))
        .await
        .unwrap();
    assert!(
        store
            .prune_web_sessions(Utc::now() + Duration::seconds(2))
            .await
            .unwrap()
            >= 1
    );
}
