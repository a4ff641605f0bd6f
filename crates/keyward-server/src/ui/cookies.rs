//! The dashboard's and the portal's cookies: their names, reading and writing them, and
//! which requests carry one (for the HTTPS-only rule). Depends on nothing else in keyward.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use cookie::{Cookie, SameSite};

/// The dashboard session (`Path=/ui`).
pub const ADMIN_COOKIE: &str = "kw_session";
/// The portal session (`Path=/portal`).
pub const PORTAL_COOKIE: &str = "kw_portal";
/// The sign-in form's CSRF token, before there is a session to hold one.
pub const SIGN_IN_COOKIE: &str = "kw_sign_in";

/// Whether a request carries a dashboard or portal credential: a session cookie, a portal
/// link's token, or the sign-in form.
pub fn carries_web_credential(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    let path = uri.path();
    // Browsers send the session cookies only under these paths (their `Path`), so no other
    // request — a key check least of all — pays for looking at cookies.
    if !(path.starts_with("/ui") || path.starts_with("/portal")) {
        return false;
    }
    (path == "/ui/sign-in" && method == Method::POST)
        || (path == "/portal/enter" && uri.query().is_some_and(|q| !q.is_empty()))
        || has_session_cookie(headers)
}

/// Whether the request carries a dashboard or portal session cookie.
pub fn has_session_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .any(|cookie| {
            matches!(cookie.name(), ADMIN_COOKIE | PORTAL_COOKIE) && !cookie.value().is_empty()
        })
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == name);
    let first = found.next()?;
    // Two cookies of one name: one was planted (by a sibling domain, say). Trust neither.
    if found.next().is_some() || first.value().is_empty() {
        return None;
    }
    Some(first.value().to_owned())
}

pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age: Duration,
) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

pub fn clear_cookie(name: &str, path: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", path, secure, Duration::ZERO)
}
