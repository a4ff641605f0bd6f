//! Dashboard and portal sessions: the cookies, signing in and out, portal links, and the
//! CSRF token every form carries.
//!
//! A session's cookie holds 256 random bits; the store keeps their SHA-256 only, so a copy
//! of the database opens no session. Cookies are `HttpOnly`, `SameSite=Strict`, limited to
//! `/ui` or `/portal`, and `Secure` whenever the request came over HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::cookies::{ADMIN_COOKIE, PORTAL_COOKIE, clear_cookie, cookie, has_session_cookie};
use super::layout::{self, Form, Viewer};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::serve::OverTls;
use crate::state::AppState;
use crate::verifier::CachedKey;
use keyward_store::SessionHolder;

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
    // HTTP/2 carries the host in the request's authority, HTTP/1.1 in `Host`.
    let host = parts
        .uri
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
        })
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
    /// Who the page is for, to draw its header and navigation.
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer::Admin {
            who: &self.who,
            csrf: &self.csrf,
            permissions: self.caller.permissions(),
        }
    }

    /// Whether the session may use what `permission` guards.
    pub fn may(&self, permission: keyward_core::Permission) -> bool {
        keyward_core::permission::grants(self.caller.permissions(), permission)
    }

    /// For a posted form: a 403 page unless it carries this session's CSRF token and the
    /// session holds every permission of `needed` (checked in that order, so a forged form
    /// learns nothing of the session's permissions).
    pub fn refuse_post(
        &self,
        form: &Form,
        needed: &[keyward_core::Permission],
    ) -> Option<Response> {
        if !csrf_matches(&self.csrf, form) {
            return Some(csrf_refused());
        }
        needed.iter().find_map(|needed| self.refused(*needed))
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
        let session = state
            .store
            .touch_web_session(&token_hash(&token), false, Utc::now())
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        let Some(session) = session else {
            return Err(out(parts));
        };
        let (caller, who) = match session.holder {
            // Signed in with the admin token: only while it is still the admin token.
            SessionHolder::Admin(None)
                if session.admin_token_hash.as_deref()
                    == Some(state.admin_token.fingerprint().as_str()) =>
            {
                (Caller::Admin(None), "admin".to_owned())
            }
            SessionHolder::Admin(None) => {
                state
                    .store
                    .delete_web_session(&token_hash(&token))
                    .await
                    .map_err(|error| ApiError::from(error).into_response())?;
                return Err(out(parts));
            }
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
        let session = state
            .store
            .touch_web_session(&token_hash(&token), true, Utc::now())
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
