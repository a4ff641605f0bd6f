//! Building and running keyward: the [`Engine`] (store, verifier, background tasks) used by
//! both the server and the library layer, and the [`Application`] that serves HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyward_store::{ChangeListener, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{AdminToken, AdminTokenError};
use crate::config::ServerConfig;
use crate::feed::ChangeFeed;
use crate::layer::{KeywardLayer, LayerOptions};
use crate::state::{AppState, Shared};
use crate::usage::UsageWriter;
use crate::verifier::{Verifier, VerifierSettings};
use crate::{routes, telemetry};
use keyward_limiter::{FailoverLimiter, FailureMode, RedisLimiter};
use keyward_limiter::{Limiter, MemoryLimiter};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot use Redis: {0}")]
    Redis(#[from] keyward_limiter::LimiterError),
    #[error("cannot serve HTTPS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("--github-public-keys: {0}")]
    GitHubKeys(#[from] crate::leaks::LeakKeysError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the engine needs: the database and the verifier's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub database_url: String,
    /// Most connections to PostgreSQL (SQLite keeps its own small pool).
    pub database_max_connections: u32,
    /// Redis for shared limits, and what to do when it fails.
    pub redis: Option<(String, FailureMode)>,
    pub verifier: VerifierSettings,
    /// Usage analytics (rollups and raw events); `request_count`, `last_used_at` and quota
    /// usage are kept either way.
    pub usage: bool,
    /// Days raw usage events are kept.
    pub usage_retention_days: u32,
    /// How often usage is written (the most a killed node loses).
    pub usage_flush_interval: Duration,
    /// Billing sinks; the metering and delivery task runs when one is configured.
    pub billing: crate::billing::BillingSettings,
    /// Event webhooks (the delivery task always runs: endpoints are data).
    pub webhooks: crate::webhooks::WebhookSettings,
}

impl EngineConfig {
    /// Defaults for an embedded engine on `database_url`: the server's defaults
    /// ([`ServerConfig::default`], their one home), without billing sinks.
    pub fn embedded(database_url: &str) -> Self {
        let mut config = ServerConfig {
            database_url: database_url.to_owned(),
            ..ServerConfig::default()
        };
        config.billing = crate::billing::BillingSettings::default();
        Self::of(&config)
    }

    /// The engine's part of a server's settings.
    pub fn of(config: &ServerConfig) -> Self {
        Self {
            database_url: config.database_url.clone(),
            database_max_connections: config.database_max_connections,
            redis: config
                .redis_url
                .clone()
                .map(|url| (url, config.redis_failure_mode)),
            verifier: VerifierSettings {
                failure_limit: config.failure_limit,
                failure_window: config.failure_window,
                failure_ipv6_prefix: config.failure_ipv6_prefix,
                cache_bytes: config.key_cache_mb.saturating_mul(1024 * 1024),
            },
            usage: config.usage,
            usage_retention_days: config.usage_retention_days,
            usage_flush_interval: config.usage_flush_interval,
            billing: config.billing.clone(),
            webhooks: config.webhooks.clone(),
        }
    }
}

/// The store, the verifier and the tasks that keep them current.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    /// The Redis limiter with its failure policy, when Redis is configured.
    failover: Option<Arc<FailoverLimiter>>,
    feed: Arc<ChangeFeed>,
    stop: watch::Sender<bool>,
    follower: JoinHandle<()>,
    usage: UsageWriter,
}

impl Engine {
    /// Opens the store (applying pending migrations), fills the verifier and starts
    /// following the change feed.
    pub async fn open(config: &EngineConfig) -> Result<Self, StartupError> {
        let postgres = keyward_store::PostgresOptions {
            max_connections: config.database_max_connections,
            ..keyward_store::PostgresOptions::default()
        };
        let store = keyward_store::connect_with(&config.database_url, &postgres).await?;
        store.migrate().await?;
        // Read the feed position before loading anything, so no change can slip between.
        let after = store.latest_change().await?;
        let (usage, recorder) = UsageWriter::start(
            store.clone(),
            config.usage_flush_interval,
            config.usage_retention_days,
            config.usage,
        );
        let memory_limiter = Arc::new(MemoryLimiter::new());
        let (limiter, failover): (Arc<dyn Limiter>, _) = match &config.redis {
            None => (memory_limiter.clone(), None),
            Some((url, mode)) => {
                // Only a malformed URL stops the start; an unreachable Redis is an outage
                // like any other, handled by the failure mode until Redis answers.
                let redis: Arc<dyn Limiter> = Arc::new(RedisLimiter::new(url)?);
                let failover = Arc::new(FailoverLimiter::new(redis, memory_limiter.clone(), *mode));
                failover.probe().await;
                (failover.clone(), Some(failover))
            }
        };
        let verifier =
            Arc::new(Verifier::new(store.clone(), limiter, recorder, &config.verifier).await?);
        let (stop, stopped) = watch::channel(false);
        spawn_limiter_sweeper(memory_limiter, stopped.clone());
        if let Some(failover) = &failover {
            spawn_redis_probe(failover.clone(), stopped.clone());
        }
        spawn_store_probe(store.clone(), verifier.clone(), stopped.clone());
        if config.billing.is_enabled() {
            crate::billing::spawn(store.clone(), config.billing.clone(), stopped.clone());
        }
        crate::webhooks::spawn(store.clone(), config.webhooks.clone(), stopped.clone());
        let feed = Arc::new(ChangeFeed::new(store.clone(), verifier.clone(), after));
        let listener = match ChangeListener::connect(&config.database_url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for change notifications; polling only");
                None
            }
        };
        let follower = feed.spawn(listener, stopped);
        Ok(Self {
            store,
            verifier,
            failover,
            feed,
            stop,
            follower,
            usage,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    pub fn feed(&self) -> &Arc<ChangeFeed> {
        &self.feed
    }

    /// The tower layer that checks every request's key (see [`crate::layer`]).
    pub fn layer(&self) -> KeywardLayer {
        KeywardLayer::new(self.verifier.clone(), LayerOptions::default())
    }

    /// Stops the background tasks, flushing pending usage writes.
    pub async fn shutdown(self) {
        // Fails only when every task has already ended, which is what this asks for.
        let _ = self.stop.send(true);
        if let Err(error) = self.follower.await {
            tracing::error!(%error, "the change-feed follower ended abnormally");
        }
        self.usage.shutdown().await;
    }
}

/// Drops in-process limiter state that no longer affects any decision, every 30 s.
fn spawn_limiter_sweeper(limiter: Arc<MemoryLimiter>, mut stopped: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
                    limiter.evict_idle(now);
                }
                _ = stopped.changed() => return,
            }
        }
    });
}

/// Pings Redis every second so readiness follows it even when no request arrives.
fn spawn_redis_probe(failover: Arc<FailoverLimiter>, mut stopped: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => failover.probe().await,
                _ = stopped.changed() => return,
            }
        }
    });
}

/// Pings the store every 250 ms, so that once it is known to be unreachable every request
/// that needs it is answered 503 at once (and `/readyz` too), while this task keeps looking
/// for it in the background.
fn spawn_store_probe(
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let reachable = store.ping().await.is_ok();
                    verifier.set_store_down(!reachable);
                }
                _ = stopped.changed() => return,
            }
        }
    });
}

/// The HTTP server, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    engine: Engine,
    listener: TcpListener,
    address: SocketAddr,
    router: axum::Router,
    limits: crate::serve::ConnectionLimits,
    tls: Option<Arc<crate::tls::Tls>>,
    github_keys: Option<Arc<crate::leaks::GitHubKeys>>,
}

impl Application {
    pub async fn build(config: ServerConfig) -> Result<Self, StartupError> {
        telemetry::init_tracing();
        // Installed before anything registers its metric handles.
        let metrics = telemetry::prometheus();
        telemetry::register_quiet_metrics();
        // A short admin token is refused before anything else happens.
        if let Some(token) = &config.admin_token {
            crate::admin::check_strength(token)?;
        }
        // An unusable certificate or key is refused before anything else is opened.
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(crate::tls::Tls::load(files.clone())?)),
            None => None,
        };
        let github_keys = match &config.github_public_keys {
            Some(path) => Some(Arc::new(crate::leaks::GitHubKeys::load(path)?)),
            None => None,
        };
        let engine = Engine::open(&EngineConfig::of(&config)).await?;
        let admin_token =
            AdminToken::resolve(config.admin_token.as_ref(), &**engine.store()).await?;
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    address: config.listen.clone(),
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| StartupError::Bind {
            address: config.listen.clone(),
            source,
        })?;
        tracing::info!(
            database = %crate::config::redact_url(&config.database_url),
            limiter = %config.redis_url.as_deref().map_or_else(
                || "in process".to_owned(),
                |url| format!("Redis at {}", crate::config::redact_url(url)),
            ),
            admin_token = if config.admin_token.is_some() {
                "given (KEYWARD_ADMIN_TOKEN or the admin token file)"
            } else {
                "its hash stored in the database"
            },
            tls = tls.is_some(),
            %address,
            "keyward is starting"
        );
        if config.require_https && tls.is_none() && !address.ip().is_loopback() {
            tracing::warn!(
                %address,
                "credentials are refused over plain HTTP from clients outside --https-exempt-network, and this server listens beyond loopback without TLS: serve it with --tls-cert and --tls-key, or behind a TLS proxy named by --trusted-proxy that sets X-Forwarded-Proto"
            );
        }
        let state = AppState::new(Shared {
            store: engine.store().clone(),
            verifier: engine.verifier().clone(),
            feed: engine.feed().clone(),
            failover: engine.failover.clone(),
            admin_token: Arc::new(admin_token),
            config: Arc::new(config),
            metrics,
            github_keys: github_keys.clone(),
        });
        let router = routes::router(state.clone());
        let limits = crate::serve::ConnectionLimits {
            header_read_timeout: state.config.header_read_timeout,
            body_read_timeout: state.config.body_read_timeout,
            idle_timeout: state.config.idle_timeout,
            max_connections: state.config.max_connections,
        };
        Ok(Self {
            engine,
            listener,
            address,
            router,
            limits,
            tls,
            github_keys,
        })
    }

    /// GitHub's secret-scanning public keys, to reload them (`None` when not configured).
    pub fn github_keys(&self) -> Option<Arc<crate::leaks::GitHubKeys>> {
        self.github_keys.clone()
    }

    /// The certificate pair being served, to reload it (`None` for plain HTTP).
    pub fn tls(&self) -> Option<Arc<crate::tls::Tls>> {
        self.tls.clone()
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, stops the
    /// background tasks and flushes pending writes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served =
            crate::serve::serve(self.listener, self.router, self.limits, self.tls, shutdown).await;
        tracing::info!("shutting down: flushing pending writes");
        self.engine.shutdown().await;
        served
    }
}
