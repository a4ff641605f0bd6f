//! Follows the store's change feed and keeps this node's caches correct: a change made by
//! any process (API on another node, CLI, direct SQL) is honoured here within one poll.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::UserId;
use keyward_store::{Entity, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::verifier::Verifier;

/// How often the feed is polled (the contract allows 1 s end to end).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
const BATCH: u32 = 1000;

/// Starts following the feed from `after` (read before the caches were filled).
pub fn follow(
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    after: i64,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = after;
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => return,
            }
            loop {
                match store.changes_since(last, BATCH).await {
                    Ok(changes) => {
                        let full = changes.len() as u32 == BATCH;
                        if let Some(newest) = changes.last() {
                            last = newest.id;
                        }
                        apply(&verifier, changes).await;
                        if !full {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the change feed; cached keys keep being served");
                        break;
                    }
                }
            }
        }
    })
}

async fn apply(verifier: &Verifier, changes: Vec<keyward_store::ChangeEvent>) {
    if changes.is_empty() {
        return;
    }
    let cache = verifier.cache();
    let mut users = HashSet::new();
    let mut ids_without_hash = HashSet::new();
    let mut keys_changed = false;
    let mut plans_changed = false;
    for change in changes {
        match change.entity {
            Entity::Key => {
                keys_changed = true;
                match change.key_hash {
                    Some(hash) => cache.invalidate_hash(&hash),
                    None => {
                        ids_without_hash.insert(change.entity_id);
                    }
                }
            }
            Entity::User => {
                if let Ok(user) = UserId::parse(&change.entity_id) {
                    users.insert(user);
                }
            }
            Entity::Plan => plans_changed = true,
        }
    }
    cache.invalidate_users(users);
    cache.invalidate_ids(ids_without_hash);
    if plans_changed && let Err(error) = verifier.reload_plans().await {
        tracing::warn!(%error, "cannot reload plans");
    }
    if keys_changed && let Err(error) = verifier.refresh_imported().await {
        tracing::warn!(%error, "cannot refresh the imported-keys flag");
    }
}
