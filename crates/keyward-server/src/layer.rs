//! Library mode: the verification path as a tower [`Layer`] and an axum extractor, so a
//! Rust service protects its routes in three lines:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keyward_server::{AuthenticatedKey, Engine, EngineConfig};
//!
//! async fn hello(key: AuthenticatedKey) -> String {
//!     format!("hello {}", key.user_id)
//! }
//!
//! # async fn build() -> Result<Router, keyward_server::StartupError> {
//! let keyward = Engine::open(&EngineConfig::embedded("sqlite://keys.db")).await?;
//! let app: Router = Router::new().route("/hello", get(hello)).layer(keyward.layer());
//! # Ok(app)
//! # }
//! ```
//!
//! `examples/protected_api.rs` is a complete service.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use chrono::Utc;
use ipnet::IpNet;
use keyward_core::{Code, Environment, KeyId, PlanName, Scope, UserId};
use keyward_store::Metadata;
use tower::{Layer, Service};

use crate::error::{ApiError, refusal_response};
use crate::extract::{client_address, presented_key};
use crate::headers::rate_limit_headers;
use crate::serve::OverTls;
use crate::usage::UsageRecord;
use crate::verifier::{Check, Verifier};

/// The key a request was admitted with, for handlers behind [`KeywardLayer`].
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub key_id: KeyId,
    pub user_id: UserId,
    pub plan: PlanName,
    /// `Test` keys count toward neither quota nor billing: serve them test data.
    pub environment: Environment,
    pub scopes: Vec<Scope>,
    pub metadata: Metadata,
}

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(ApiError::Decision {
                code: Code::Missing,
                retry_after: None,
            })
    }
}

/// Options of the layer.
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    pub allow_query_key: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// Scopes every request through this layer needs.
    pub required_scopes: Vec<Scope>,
    /// HTTPS-only credentials: with `Some(networks)`, a request carrying a credential over
    /// plain HTTP from a client outside `networks` is refused (403 `HTTPS_REQUIRED`); the
    /// scheme is https over TLS or as a trusted proxy's `X-Forwarded-Proto` says. `None`
    /// (the default) leaves transport security to the service that embeds the layer.
    pub https_exempt_networks: Option<Vec<IpNet>>,
}

/// Checks every request's key before the inner service sees it.
#[derive(Debug, Clone)]
pub struct KeywardLayer {
    verifier: Arc<Verifier>,
    options: Arc<LayerOptions>,
}

impl KeywardLayer {
    pub fn new(verifier: Arc<Verifier>, options: LayerOptions) -> Self {
        Self {
            verifier,
            options: Arc::new(options),
        }
    }

    /// The same layer, requiring `scopes` as well.
    pub fn require_scopes(&self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut options = (*self.options).clone();
        options.required_scopes.extend(scopes);
        Self {
            verifier: self.verifier.clone(),
            options: Arc::new(options),
        }
    }
}

impl<S> Layer<S> for KeywardLayer {
    type Service = KeywardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeywardService {
            inner,
            verifier: self.verifier.clone(),
            options: self.options.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeywardService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    options: Arc<LayerOptions>,
}

impl<S> Service<Request<Body>> for KeywardService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let options = self.options.clone();
        Box::pin(async move {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
            let client = client_address(peer, request.headers(), &options.trusted_proxies);
            if let Some(exempt) = &options.https_exempt_networks
                && !crate::https::is_https(
                    request.extensions().get::<OverTls>().is_some(),
                    peer.to_canonical(),
                    request.headers(),
                    &options.trusted_proxies,
                )
                && crate::https::carries_credential(request.headers(), request.uri())
                && crate::https::outside(client, exempt)
            {
                return Ok(ApiError::HttpsRequired.into_response());
            }
            let presented = presented_key(
                request.headers(),
                request.uri().query(),
                options.allow_query_key,
            );
            // The route template when the layer sits on a router (`/orders/{id}`), else the path.
            let endpoint = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or_else(
                    || request.uri().path().to_owned(),
                    |m| m.as_str().to_owned(),
                );
            let method = request.method().as_str().to_owned();
            let started = std::time::Instant::now();
            let now = Utc::now();
            let check = Check {
                presented,
                client_ip: client,
                guard_ip: client,
                required_scopes: &options.required_scopes,
                cost: 1,
                counted: true,
                endpoint: &endpoint,
                method: &method,
                defer_usage: true,
            };
            let decision = match verifier.verify(&check, now).await {
                Ok(decision) => decision,
                Err(_) => return Ok(ApiError::Unavailable.into_response()),
            };
            let limits = decision.limits.clone();
            let mut response = match (decision.is_valid(), &decision.key) {
                (true, Some(key)) => {
                    request.extensions_mut().insert(AuthenticatedKey {
                        key_id: key.id(),
                        user_id: key.user_id.clone(),
                        plan: key.effective_plan().clone(),
                        environment: key.environment,
                        scopes: key.scopes.to_vec(),
                        metadata: key.metadata(),
                    });
                    inner.call(request).await?
                }
                _ => refusal_response(decision.code, decision.retry_after(), request.headers()),
            };
            if let Some(limits) = limits {
                rate_limit_headers(response.headers_mut(), &limits.limits);
            }
            // Usage with the status the client got (the downstream one when admitted) and
            // the time until the response was ready.
            if let Some(key) = &decision.key {
                verifier.record_usage(&UsageRecord {
                    key: key.for_usage(),
                    code: decision.code,
                    status: response.status().as_u16(),
                    endpoint: &endpoint,
                    method: &method,
                    latency: Some(started.elapsed()),
                    cost: 1,
                    at: now,
                });
            }
            Ok(response)
        })
    }
}
