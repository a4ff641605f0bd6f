//! The HTTP API. `router` builds it without side effects, so tests and the
//! library layer can use it directly.

pub mod admin_keys;
pub mod authorize;
pub mod docs;
pub mod health;
mod inputs;
pub mod keys;
pub mod permissions;
pub mod plans;
pub mod usage;
pub mod users;
pub mod verify;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use percent_encoding::percent_decode_str;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::state::AppState;

pub use verify::{VerifyRequest, VerifyResponse};

/// Every route with its OpenAPI operation, registered once (from the handlers'
/// annotations): the management routes, and the others.
pub fn routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let management = OpenApiRouter::new()
        .routes(routes!(keys::create, keys::list::list))
        .routes(routes!(keys::show, keys::update, keys::revoke))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::self_revoke::self_revoke))
        .routes(routes!(usage::key_usage))
        .routes(routes!(usage::user_usage))
        .routes(routes!(usage::invoice))
        .routes(routes!(usage::summary))
        .routes(routes!(usage::audit))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::update, users::delete))
        .routes(routes!(users::revoke_keys))
        .routes(routes!(
            users::create_portal_session,
            users::revoke_portal_sessions
        ))
        .routes(routes!(plans::list))
        .routes(routes!(plans::put))
        .routes(routes!(admin_keys::create, admin_keys::list))
        .routes(routes!(admin_keys::revoke))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::show, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::secret))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::replay));
    // Forward-auth answers whatever method the gateway forwards: the document lists the
    // usual ones, the router takes any.
    // GitHub's reports may be up to 1 MiB, more than any other body.
    let (github_schemas, github_paths, github) = routes!(crate::leaks::github);
    let (schemas, paths, _) = routes!(authorize::authorize);
    let others = OpenApiRouter::new()
        .routes(routes!(verify::verify))
        .routes((
            github_schemas,
            github_paths,
            github.layer(DefaultBodyLimit::max(crate::leaks::MAX_REPORT_BYTES)),
        ))
        .routes((schemas, paths, any(authorize::authorize)))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::serve_document))
        .routes(routes!(docs::page))
        .route("/docs/redoc.standalone.js", get(docs::script));
    (management, others)
}

pub fn router(state: AppState) -> Router {
    let (management, others) = routes();
    // Management: writes here are applied to this node's caches before they are answered.
    let management = management.route_layer(middleware::from_fn_with_state(
        state.clone(),
        apply_own_writes,
    ));
    let (api, _) = management.merge(others).split_for_parts();
    // The dashboard and the portal: HTML, not part of the API's document.
    let api = api
        .merge(crate::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            (state.clone(), Arc::new(HttpMeters::documented())),
            envelope,
        ))
        .with_state(state);
    // The request's span and its response line exist at debug level only: at the default
    // `info` the trace layer would cost allocations and formatting on every request for
    // nothing logged (the level is fixed when the process starts). Server errors are logged
    // by the envelope at any level.
    let api = if tracing::enabled!(tracing::Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", tracing::Level::DEBUG)
    {
        api.layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    // The route template only: a raw path or query string may carry a key.
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or(UNMATCHED, MatchedPath::as_str);
                    tracing::debug_span!(
                        "request",
                        method = %method_label(request.method()),
                        route = %route,
                        // `key_<id> <display prefix>`, once the key is known (never the key).
                        key = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                )
                .on_failure(()),
        )
    } else {
        api
    };
    api
        // Marked sensitive before tracing sees them, so no layer ever logs them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            header::COOKIE,
        ]))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::Unavailable.into_response()
        }))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("resource")
}

async fn method_not_allowed() -> Response {
    let problem = crate::error::Problem {
        kind: "https://keyward.dev/problems/method-not-allowed".to_owned(),
        title: "Method Not Allowed".to_owned(),
        status: 405,
        detail: "this method is not allowed on this resource".to_owned(),
        code: "METHOD_NOT_ALLOWED".to_owned(),
    };
    crate::error::problem_response(&problem, None)
}

/// After a successful write through this node, its caches catch up with the change feed
/// before the response leaves: a client that revokes a key and then uses it sees `REVOKED`.
async fn apply_own_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Every management call needs the store: once it is known to be down, 503 at once.
    if state.verifier.store_down() {
        return ApiError::Unavailable.into_response();
    }
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        state.feed.catch_up().await;
    }
    response
}

/// The route label of requests no route matched: their paths are the client's to choose, so
/// they never become labels (or log fields).
const UNMATCHED: &str = "unmatched";

/// Metric and log labels take only known values: any other method is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What every request passes through around its route, in one layer: a path whose
/// percent-escapes do not decode to UTF-8 names nothing keyward has (404 as a problem,
/// before any extractor can answer in plain text); credentials sent in clear text are
/// refused before any route sees them (HSTS added over HTTPS); and the request is counted.
async fn envelope(
    State((state, meters)): State<(AppState, Arc<HttpMeters>)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // An `Arc<str>` inside: cloning it copies no string.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let path = request.uri().path();
    let response = if path.contains('%') && percent_decode_str(path).decode_utf8().is_err() {
        ApiError::NotFound("resource").into_response()
    } else {
        match crate::https::admit(&state.config, &request) {
            Err(refusal) => refusal.into_response(),
            Ok(https) => {
                let mut response = next.run(request).await;
                if https {
                    crate::https::stamp(&mut response);
                }
                response
            }
        }
    };
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if response.status().is_server_error() {
        tracing::error!(route, method, status, ?elapsed, "request failed");
    }
    meters.record(route, method, status, elapsed);
    response
}

/// `keyward_http_requests_total{route, method, status}` and
/// `keyward_http_request_seconds{route}`, their handles registered once per label set and
/// reused: building the labels and looking a metric up by them on every request costs
/// several allocations. Every label takes a bounded set of values (route templates, known
/// methods, status codes).
#[derive(Default)]
struct HttpMeters {
    routes: RwLock<HashMap<Box<str>, RouteMeters>>,
}

struct RouteMeters {
    seconds: metrics::Histogram,
    requests: RwLock<Vec<(&'static str, u16, metrics::Counter)>>,
}

impl HttpMeters {
    /// Meters with every documented operation registered at 0 (its route, method and first
    /// success status), so `/metrics` shows the families before the first request.
    fn documented() -> Self {
        let meters = Self::default();
        let document: serde_json::Value =
            serde_json::from_str(health::document_json()).unwrap_or_default();
        let paths = document["paths"].as_object().cloned().unwrap_or_default();
        for (route, item) in &paths {
            let Some(operations) = item.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let success = operation["responses"]
                    .as_object()
                    .and_then(|r| r.keys().find_map(|s| s.parse::<u16>().ok()))
                    .filter(|s| (200..300).contains(s));
                if let Some(status) = success {
                    meters.register(route, method_label(&method), status);
                }
            }
        }
        meters
    }

    fn register(&self, route: &str, method: &'static str, status: u16) {
        let mut routes = write(&self.routes);
        let meters = routes.entry(route.into()).or_insert_with(|| RouteMeters {
            seconds: metrics::histogram!("keyward_http_request_seconds", "route" => route.to_owned()),
            requests: RwLock::default(),
        });
        let mut requests = write(&meters.requests);
        if !requests
            .iter()
            .any(|(m, s, _)| *m == method && *s == status)
        {
            let counter = metrics::counter!(
                "keyward_http_requests_total",
                "route" => route.to_owned(),
                "method" => method,
                "status" => status.to_string()
            );
            counter.increment(0);
            requests.push((method, status, counter));
        }
    }

    fn record(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        if let Some(meters) = read(&self.routes).get(route) {
            meters.record(route, method, status, elapsed);
            return;
        }
        let mut routes = write(&self.routes);
        let meters = routes.entry(route.into()).or_insert_with(|| RouteMeters {
            seconds: metrics::histogram!("keyward_http_request_seconds", "route" => route.to_owned()),
            requests: RwLock::default(),
        });
        meters.record(route, method, status, elapsed);
    }
}

impl RouteMeters {
    fn record(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        self.seconds.record(elapsed.as_secs_f64());
        let same = |(m, s, _): &&(&str, u16, metrics::Counter)| *m == method && *s == status;
        if let Some((_, _, counter)) = read(&self.requests).iter().find(same) {
            counter.increment(1);
            return;
        }
        // First request of this method and status on this route (or a race to register it).
        let mut requests = write(&self.requests);
        match requests.iter().find(same) {
            Some((_, _, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!(
                    "keyward_http_requests_total",
                    "route" => route.to_owned(),
                    "method" => method,
                    "status" => status.to_string()
                );
                counter.increment(1);
                requests.push((method, status, counter));
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
