//! What every handler shares.

use std::sync::Arc;

use keyward_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::AdminToken;
use crate::config::ServerConfig;
use crate::feed::ChangeFeed;
use crate::verifier::Verifier;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    pub feed: Arc<ChangeFeed>,
    pub admin_token: Arc<AdminToken>,
    pub config: Arc<ServerConfig>,
    pub metrics: Option<PrometheusHandle>,
}
