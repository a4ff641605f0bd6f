//! Follows the store's change feed and keeps this node's caches correct: a change made by
//! any process (API on another node, CLI, direct SQL) is honoured here within one poll, and
//! a change made through this node's own API before its response is sent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::KeyId;
use keyward_core::UserId;
use keyward_store::{ChangeEvent, ChangeListener, ChangeOp, Entity, Store};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::verifier::Verifier;

/// How often the feed is polled (a change must reach every node within 1 s end to end).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
const BATCH: u32 = 1000;

/// This node's position in the change feed and the caches it keeps current.
#[derive(Debug)]
pub struct ChangeFeed {
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    /// The newest change applied; the lock also serialises catching up.
    last: Mutex<i64>,
}

impl ChangeFeed {
    /// Follows the feed from `after` (read before the caches were filled).
    pub fn new(store: Arc<dyn Store>, verifier: Arc<Verifier>, after: i64) -> Self {
        Self {
            store,
            verifier,
            last: Mutex::new(after),
        }
    }

    /// Applies every change not applied yet. Errors are logged: cached keys keep being
    /// served and the next poll retries.
    pub async fn catch_up(&self) {
        let mut last = self.last.lock().await;
        loop {
            match self.store.changes_since(*last, BATCH).await {
                Ok(changes) => {
                    let full = changes.len() as u32 == BATCH;
                    let Some(newest) = changes.last().map(|c| c.id) else {
                        return;
                    };
                    apply(&self.verifier, changes).await;
                    *last = newest;
                    if !full {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the change feed; cached keys keep being served");
                    return;
                }
            }
        }
    }

    /// Polls every [`POLL_INTERVAL`] until `stopped` changes, and also at once whenever
    /// `listener` (PostgreSQL's NOTIFY) announces a change.
    pub fn spawn(
        self: &Arc<Self>,
        mut listener: Option<ChangeListener>,
        mut stopped: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(POLL_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut listener_failed = false;
            loop {
                tokio::select! {
                    _ = ticker.tick() => feed.catch_up().await,
                    woke = notified(&mut listener) => match woke {
                        Ok(()) => {
                            listener_failed = false;
                            feed.catch_up().await;
                        }
                        Err(error) => {
                            if !listener_failed {
                                tracing::warn!(%error, "change notifications interrupted; polling every {POLL_INTERVAL:?} meanwhile");
                                listener_failed = true;
                            }
                            // The listener reconnects on its next use; do not spin meanwhile.
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                    _ = stopped.changed() => return,
                }
            }
        })
    }
}

/// The next change notification, or never without a listener.
async fn notified(listener: &mut Option<ChangeListener>) -> Result<(), keyward_store::StoreError> {
    match listener {
        Some(listener) => listener.changed().await,
        None => std::future::pending().await,
    }
}

async fn apply(verifier: &Verifier, changes: Vec<ChangeEvent>) {
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
                        if let Ok(id) = KeyId::parse(&change.entity_id) {
                            ids_without_hash.insert(id.ulid());
                        }
                    }
                }
            }
            // A new user has no keys yet: nothing cached can depend on it.
            Entity::User if change.op == ChangeOp::Insert => {}
            Entity::User => {
                if let Ok(user) = UserId::parse(&change.entity_id) {
                    users.insert(user);
                }
            }
            Entity::Plan => plans_changed = true,
        }
    }
    cache.invalidate_users(&users);
    cache.invalidate_ids(&ids_without_hash);
    if plans_changed && let Err(error) = verifier.reload_plans().await {
        tracing::warn!(%error, "cannot reload plans");
    }
    if keys_changed && let Err(error) = verifier.refresh_imported().await {
        tracing::warn!(%error, "cannot refresh the imported-keys flag");
    }
}
