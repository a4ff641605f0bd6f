//! What every handler shares.

use std::sync::Arc;

use keyward_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::AdminToken;
use crate::config::ServerConfig;
use crate::feed::ChangeFeed;
use crate::verifier::Verifier;

/// Shared by every handler; one `Arc`, so extracting it per request is one atomic add.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    pub feed: Arc<ChangeFeed>,
    /// The Redis limiter and its failure policy, when Redis is configured.
    pub failover: Option<Arc<keyward_limiter::FailoverLimiter>>,
    pub admin_token: Arc<AdminToken>,
    pub config: Arc<ServerConfig>,
    pub metrics: Option<PrometheusHandle>,
    /// GitHub's secret-scanning public keys, when `--github-public-keys` is set.
    pub github_keys: Option<Arc<crate::leaks::keys::GitHubKeys>>,
}
