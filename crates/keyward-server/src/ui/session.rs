//! Dashboard and portal sessions: the cookies, signing in and out, portal links, and the
//! CSRF token every form carries.
//!
//! A session's cookie holds 256 random bits; the store keeps their SHA-256 only, so a copy
//! of the database opens no session. Cookies are `HttpOnly`, `SameSite=Strict`, limited to
//! `/ui` or `/portal`, and `Secure` whenever the request came over HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::cookies::{
    ADMIN_COOKIE, PORTAL_COOKIE, SIGN_IN_COOKIE, clear_cookie, cookie, has_session_cookie,
    set_cookie,
};
use super::layout::{self, Form, Notice, Params};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::serve::OverTls;
use crate::state::AppState;
use crate::verifier::CachedKey;
use keyward_store::{NewWebSession, SessionHolder};

/// A portal session ends after this long without a request.
pub const PORTAL_IDLE: Duration = Duration::from_secs(60 * 60);

/// A new random token: 256 bits, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether the request came over HTTPS (TLS, or a trusted proxy saying so).
pub fn is_https(parts: &Parts, state: &AppState) -> bool {
    let over_tls = parts.extensions.get::<OverTls>().is_some();
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(info) => crate::https::is_https(
            over_tls,
            info.0.ip().to_canonical(),
            &parts.headers,
            &state.config.trusted_proxies,
        ),
        None => over_tls,
    }
}

/// Where this keyward is reached: `--public-url`, else the request's scheme and `Host`.
pub fn public_origin(parts: &Parts, state: &AppState) -> String {
    if let Some(url) = &state.config.ui.public_url {
        return url.clone();
    }
    let scheme = if is_https(parts, state) {
        "https"
    } else {
        "http"
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Whether a form's CSRF token is the session's.
pub fn csrf_matches(expected: &str, form: &Form) -> bool {
    form.get("csrf")
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// The answer to a form posted without the session's CSRF token: nothing changed.
pub fn csrf_refused() -> Response {
    layout::message(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form did not carry this session's security token, so nothing was changed. \
         Reload the page and try again.",
    )
}

/// A signed-in dashboard request: who (the admin token or an admin key, with its
/// permissions) and from where.
pub struct AdminSession {
    pub caller: Caller,
    pub client: ClientAddr,
    pub csrf: String,
    /// Who is signed in, for the page header: `admin` or the admin key's name.
    pub who: String,
}

/// Never shows the CSRF token.
impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("who", &self.who)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AdminSession {
    /// Whether the session may use what `permission` guards.
    pub fn may(&self, permission: keyward_core::Permission) -> bool {
        keyward_core::permission::grants(self.caller.permissions(), permission)
    }

    /// A 403 page unless the session holds `permission`.
    pub fn refused(&self, permission: keyward_core::Permission) -> Option<Response> {
        if self.may(permission) {
            None
        } else {
            Some(layout::message(
                StatusCode::FORBIDDEN,
                "Not allowed",
                &format!("Signing in with an admin key that holds `{permission}` shows this page."),
            ))
        }
    }
}

/// A request without a live session: pages send the browser to sign in, forms are refused.
fn signed_out(parts: &Parts, name: &str, path: &str, https: bool, sign_in: &str) -> Response {
    let clear = clear_cookie(name, path, https);
    let mut response = if parts.method == Method::GET || parts.method == Method::HEAD {
        Redirect::to(sign_in).into_response()
    } else {
        layout::message(
            StatusCode::FORBIDDEN,
            "Signed out",
            "This session has ended, so nothing was changed. Sign in again.",
        )
    };
    if has_session_cookie(&parts.headers) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Ok(client) = ClientAddr::from_request_parts(parts, state).await;
        let https = is_https(parts, state);
        let out = |parts: &Parts| signed_out(parts, ADMIN_COOKIE, "/ui", https, "/ui/sign-in");
        let Some(token) = cookie(&parts.headers, ADMIN_COOKIE) else {
            return Err(out(parts));
        };
        auth::refuse_if_blocked(state, &client).map_err(IntoResponse::into_response)?;
        let idle = chrono::Duration::from_std(state.config.ui.session_idle)
            .unwrap_or(chrono::Duration::minutes(30));
        let session = state
            .store
            .touch_web_session(&token_hash(&token), Utc::now(), idle)
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        let Some(session) = session else {
            return Err(out(parts));
        };
        let (caller, who) = match session.holder {
            SessionHolder::Admin(None) => (Caller::Admin(None), "admin".to_owned()),
            SessionHolder::Admin(Some(id)) => {
                let key = state
                    .store
                    .get_admin_key(&id)
                    .await
                    .map_err(|error| ApiError::from(error).into_response())?;
                let who = key.name.clone();
                (Caller::Admin(Some(Arc::new(key))), who)
            }
            SessionHolder::Portal(_) => return Err(out(parts)),
        };
        Ok(Self {
            caller,
            client,
            csrf: session.csrf_token,
            who,
        })
    }
}

/// A portal request: the user, acting as an unrestricted `live` key of its own.
pub struct PortalSession {
    pub caller: Caller,
    pub client: ClientAddr,
    pub csrf: String,
    pub user: keyward_store::UserRecord,
}

/// Never shows the CSRF token.
impl std::fmt::Debug for PortalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalSession")
            .field("user", &self.user.user_id)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for PortalSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Ok(client) = ClientAddr::from_request_parts(parts, state).await;
        let https = is_https(parts, state);
        let out = |parts: &Parts| {
            signed_out(parts, PORTAL_COOKIE, "/portal", https, "/portal/signed-out")
        };
        let Some(token) = cookie(&parts.headers, PORTAL_COOKIE) else {
            return Err(out(parts));
        };
        auth::refuse_if_blocked(state, &client).map_err(IntoResponse::into_response)?;
        let idle = chrono::Duration::from_std(PORTAL_IDLE).unwrap_or(chrono::Duration::hours(1));
        let session = state
            .store
            .touch_web_session(&token_hash(&token), Utc::now(), idle)
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        let Some(keyward_store::WebSession {
            holder: SessionHolder::Portal(user_id),
            csrf_token,
            ..
        }) = session
        else {
            return Err(out(parts));
        };
        // Every portal request counts toward the user's self-service limit.
        auth::limit_self_service(state, &user_id)
            .await
            .map_err(IntoResponse::into_response)?;
        let user = state
            .store
            .get_user(&user_id)
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        let caller = Caller::Portal(Arc::new(CachedKey::portal(&user.user_id, &user.plan)));
        Ok(Self {
            caller,
            client,
            csrf: csrf_token,
            user,
        })
    }
}

/// `/ui` → `/ui/`.
pub async fn to_dashboard() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `/portal` → `/portal/`.
pub async fn to_portal() -> Redirect {
    Redirect::permanent("/portal/")
}

/// The sign-in form, with a fresh CSRF token held in a short-lived cookie.
pub async fn sign_in_page(State(state): State<AppState>, parts: Parts) -> Response {
    sign_in_form(&state, &parts, StatusCode::OK, None)
}

fn sign_in_form(
    state: &AppState,
    parts: &Parts,
    status: StatusCode,
    notice: Option<Notice>,
) -> Response {
    let csrf = new_token();
    let mut response = (status, layout::sign_in(&csrf, notice)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SIGN_IN_COOKIE,
            &csrf,
            "/ui",
            is_https(parts, state),
            Duration::from_secs(3600),
        ),
    );
    response
}

/// Signs in with the admin token or an admin key. A wrong credential counts as a failed
/// check for the brute-force guard.
pub async fn sign_in(State(state): State<AppState>, parts: Parts, form: Form) -> Response {
    let Ok(client) = ClientAddr::from_request_parts(&mut parts.clone(), &state).await;
    let https = is_https(&parts, &state);
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !csrf_matches(&expected, &form) {
        return csrf_refused();
    }
    let credential = form.get("credential").unwrap_or("").trim();
    let caller = match auth::admin_credential(&state, &client, credential).await {
        Ok(caller) => caller,
        Err(ApiError::Unauthorized(_)) => {
            return sign_in_form(
                &state,
                &parts,
                StatusCode::UNAUTHORIZED,
                Some(Notice::error(
                    "That is not the admin token or a usable admin key.",
                )),
            );
        }
        Err(error) => return error.into_response(),
    };
    let now = Utc::now();
    let token = new_token();
    let session = NewWebSession {
        token_hash: token_hash(&token),
        holder: SessionHolder::Admin(match &caller {
            Caller::Admin(Some(key)) => Some(key.id.clone()),
            _ => None,
        }),
        csrf_token: new_token(),
        created_at: now,
        expires_at: now
            + chrono::Duration::from_std(state.config.ui.session_max)
                .unwrap_or(chrono::Duration::hours(12)),
    };
    if let Err(error) = state.store.create_web_session(&session).await {
        return ApiError::from(error).into_response();
    }
    let mut response = Redirect::to("/ui/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            ADMIN_COOKIE,
            &token,
            "/ui",
            https,
            state.config.ui.session_max,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        clear_cookie(SIGN_IN_COOKIE, "/ui", https),
    );
    response
}

/// Ends the dashboard session.
pub async fn sign_out(State(state): State<AppState>, parts: Parts, form: Form) -> Response {
    end_session(&state, &parts, &form, ADMIN_COOKIE, "/ui", "/ui/sign-in").await
}

/// Ends the portal session.
pub async fn portal_sign_out(State(state): State<AppState>, parts: Parts, form: Form) -> Response {
    end_session(
        &state,
        &parts,
        &form,
        PORTAL_COOKIE,
        "/portal",
        "/portal/signed-out",
    )
    .await
}

async fn end_session(
    state: &AppState,
    parts: &Parts,
    form: &Form,
    name: &str,
    path: &str,
    to: &str,
) -> Response {
    let https = is_https(parts, state);
    let Some(token) = cookie(&parts.headers, name) else {
        return Redirect::to(to).into_response();
    };
    let hash = token_hash(&token);
    // The CSRF token must be this session's: another site cannot sign anyone out.
    let idle = chrono::Duration::days(1);
    match state.store.touch_web_session(&hash, Utc::now(), idle).await {
        Ok(Some(session)) if csrf_matches(&session.csrf_token, form) => {}
        Ok(Some(_)) => return csrf_refused(),
        Ok(None) => {}
        Err(error) => return ApiError::from(error).into_response(),
    }
    if let Err(error) = state.store.delete_web_session(&hash).await {
        return ApiError::from(error).into_response();
    }
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_cookie(name, path, https));
    response
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct EnterQuery {
    token: Option<String>,
}

/// Opens a portal link: used once, it becomes a portal session and the browser goes to
/// `/portal/` without the token. A bad, used or expired link counts as a failed check.
pub async fn enter_portal(
    State(state): State<AppState>,
    parts: Parts,
    Params(query): Params<EnterQuery>,
) -> Response {
    let Ok(client) = ClientAddr::from_request_parts(&mut parts.clone(), &state).await;
    if let Err(error) = auth::refuse_if_blocked(&state, &client) {
        return error.into_response();
    }
    let token = query.token.unwrap_or_default();
    let now = Utc::now();
    let user = if token.is_empty() || token.len() > 128 {
        None
    } else {
        match state
            .store
            .consume_portal_link(&token_hash(&token), now)
            .await
        {
            Ok(user) => user,
            Err(error) => return ApiError::from(error).into_response(),
        }
    };
    let Some(user) = user else {
        state.verifier.guard().record_failure(client.client);
        return layout::message(
            StatusCode::UNAUTHORIZED,
            "This link cannot be used",
            "Portal links work once, for a short time. This one is unknown, expired or \
             already used: ask for a new one.",
        );
    };
    let session_token = new_token();
    let session = NewWebSession {
        token_hash: token_hash(&session_token),
        holder: SessionHolder::Portal(user),
        csrf_token: new_token(),
        created_at: now,
        expires_at: now
            + chrono::Duration::from_std(state.config.ui.session_max)
                .unwrap_or(chrono::Duration::hours(12)),
    };
    if let Err(error) = state.store.create_web_session(&session).await {
        return ApiError::from(error).into_response();
    }
    let mut response = Redirect::to("/portal/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            PORTAL_COOKIE,
            &session_token,
            "/portal",
            is_https(&parts, &state),
            state.config.ui.session_max,
        ),
    );
    response
}

/// Where a portal without a session sends the browser.
pub async fn portal_signed_out() -> Response {
    layout::message(
        StatusCode::UNAUTHORIZED,
        "Your portal session has ended",
        "Open the portal with a new link from the service that gave you your keys. If you \
         have just opened a link, reload this page.",
    )
}
