//! Signing in to the dashboard and out of it or the portal, and opening a portal link.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use keyward_store::{NewWebSession, SessionHolder};

use super::cookies::{
    ADMIN_COOKIE, PORTAL_COOKIE, SIGN_IN_COOKIE, clear_cookie, cookie, set_cookie,
};
use super::layout::{self, Form, Notice, Params};
use super::session::{PORTAL_IDLE, csrf_matches, csrf_refused, is_https, new_token, token_hash};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::state::AppState;

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
    let (key_id, admin_token_hash) = match &caller {
        Caller::Admin(Some(key)) => (Some(key.id.clone()), None),
        _ => (None, Some(state.admin_token.fingerprint())),
    };
    let session = NewWebSession {
        token_hash: token_hash(&token),
        holder: SessionHolder::Admin(key_id),
        admin_token_hash,
        idle: chrono::Duration::from_std(state.config.ui.session_idle)
            .unwrap_or(chrono::Duration::minutes(30)),
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
    end_session(&state, &parts, &form, false, "/ui/sign-in").await
}

/// Ends the portal session.
pub async fn portal_sign_out(State(state): State<AppState>, parts: Parts, form: Form) -> Response {
    end_session(&state, &parts, &form, true, "/portal/signed-out").await
}

async fn end_session(
    state: &AppState,
    parts: &Parts,
    form: &Form,
    portal: bool,
    to: &str,
) -> Response {
    let (name, path) = if portal {
        (PORTAL_COOKIE, "/portal")
    } else {
        (ADMIN_COOKIE, "/ui")
    };
    let https = is_https(parts, state);
    let Some(token) = cookie(&parts.headers, name) else {
        return Redirect::to(to).into_response();
    };
    let hash = token_hash(&token);
    // The CSRF token must be this session's: another site cannot sign anyone out. (A
    // session already ended needs no signing out.)
    match state
        .store
        .touch_web_session(&hash, portal, Utc::now())
        .await
    {
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
    // A browser says what kind of request this is: only opening the page uses the link. An
    // image or script pointing at a link from another page neither uses it up nor counts
    // as a failure against the visitor's address.
    if parts
        .headers
        .get("sec-fetch-mode")
        .is_some_and(|mode| mode.as_bytes() != b"navigate")
    {
        return layout::message(
            StatusCode::BAD_REQUEST,
            "Open this link in the browser",
            "A portal link is opened by following it, not loaded by another page.",
        );
    }
    let token = query.token.unwrap_or_default();
    let now = Utc::now();
    let session_token = new_token();
    let session = NewWebSession {
        token_hash: token_hash(&session_token),
        // Replaced by the link's user.
        holder: SessionHolder::Admin(None),
        admin_token_hash: None,
        idle: chrono::Duration::from_std(PORTAL_IDLE).unwrap_or(chrono::Duration::hours(1)),
        csrf_token: new_token(),
        created_at: now,
        expires_at: now
            + chrono::Duration::from_std(state.config.ui.session_max)
                .unwrap_or(chrono::Duration::hours(12)),
    };
    let user = if token.is_empty() || token.len() > 128 {
        None
    } else {
        match state
            .store
            .open_portal_session(&token_hash(&token), &session, now)
            .await
        {
            Ok(user) => user,
            Err(error) => return ApiError::from(error).into_response(),
        }
    };
    if user.is_none() {
        state.verifier.guard().record_failure(client.client);
        return layout::message(
            StatusCode::UNAUTHORIZED,
            "This link cannot be used",
            "Portal links work once, for a short time. This one is unknown, expired or \
             already used: ask for a new one.",
        );
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
