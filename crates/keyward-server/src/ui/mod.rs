//! The built-in dashboard (`/ui/`) and customer portal (`/portal/`).
//!
//! Pages are rendered on the server (maud escapes every value), charts are SVG drawn on
//! the server, and the only other files — one stylesheet and one small script — are
//! compiled into the binary: nothing is fetched from anywhere else, so both work offline
//! and under a `default-src 'self'` content security policy.
//!
//! Every figure comes from the functions the API answers with (`reports`, the store's
//! listings), and every action goes through the code the API's handler runs, so a page and
//! the API never disagree. Sessions live in the store (every node knows them); the cookie
//! holds a random token whose SHA-256 alone is stored. Every form carries the session's
//! CSRF token; a post without it is refused and changes nothing. None of this is on the
//! path of `/v1/verify` or `/v1/authorize`.

mod chart;
pub mod cookies;
mod keys;
mod layout;
mod overview;
mod parts;
mod plans;
mod portal;
mod records;
pub mod session;
mod sign_in;
mod users;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// The dashboard's and the portal's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(sign_in::to_dashboard))
        .route("/ui/", get(overview::page))
        .route(
            "/ui/sign-in",
            get(sign_in::sign_in_page).post(sign_in::sign_in),
        )
        .route("/ui/sign-out", post(sign_in::sign_out))
        .route("/ui/keys", get(keys::list))
        .route("/ui/keys/{id}", get(keys::detail))
        .route("/ui/keys/{id}/{action}", get(keys::confirm).post(keys::act))
        .route("/ui/users", get(users::users))
        .route("/ui/users/{id}", get(users::user))
        .route("/ui/users/{id}/plan", post(users::change_plan))
        .route("/ui/users/{id}/portal-link", post(users::portal_link))
        .route("/ui/plans", get(plans::plans))
        .route("/ui/plans/{name}", post(plans::edit_plan))
        .route("/ui/audit", get(records::audit))
        .route("/ui/webhooks", get(records::webhooks))
        .route("/ui/webhooks/{id}", get(records::webhook))
        .route("/ui/webhooks/{id}/replay", post(records::replay))
        .route("/ui/assets/{file}", get(layout::asset))
        .route("/portal", get(sign_in::to_portal))
        .route("/portal/", get(portal::page))
        .route("/portal/enter", get(sign_in::enter_portal))
        .route("/portal/signed-out", get(sign_in::portal_signed_out))
        .route("/portal/sign-out", post(sign_in::portal_sign_out))
        .route("/portal/keys", post(portal::create_key))
        .route(
            "/portal/keys/{id}/{action}",
            get(portal::confirm).post(portal::act),
        )
        .route("/portal/assets/{file}", get(layout::asset))
        .layer(middleware::from_fn(security_headers))
}

/// The headers every dashboard and portal answer carries: nothing from another origin,
/// never framed, no referrer (a portal link's token never leaks), never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
