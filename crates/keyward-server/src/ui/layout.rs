//! The page shell every dashboard and portal page shares, forms, notices, and the two
//! files the pages use (a stylesheet and a small script), compiled into the binary.

use std::convert::Infallible;

use axum::extract::{FromRequest, Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use keyward_core::Permission;
use maud::{DOCTYPE, Markup, html};

const STYLESHEET: &str = include_str!("../../assets/ui/app.css");
const SCRIPT: &str = include_str!("../../assets/ui/app.js");

/// `GET /ui/assets/{file}` and `/portal/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// A posted form, as name–value pairs. An unreadable body reads as an empty form (which
/// then lacks its CSRF token and is refused).
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    /// A field, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Infallible> {
        Ok(Self(
            axum::Form::<Vec<(String, String)>>::from_request(request, state)
                .await
                .map(|form| form.0)
                .unwrap_or_default(),
        ))
    }
}

/// A page's query parameters. An unreadable query string reads as no parameters: a page
/// answers with its default view rather than an error.
#[derive(Debug, Default)]
pub struct Params<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default, S: Send + Sync> axum::extract::FromRequestParts<S>
    for Params<T>
{
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Infallible> {
        Ok(Self(
            axum::extract::Query::<T>::try_from_uri(&parts.uri)
                .map(|query| query.0)
                .unwrap_or_default(),
        ))
    }
}

/// A message shown above a page's content.
#[derive(Debug, Clone)]
pub struct Notice {
    pub error: bool,
    pub text: String,
}

impl Notice {
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            error: true,
            text: text.into(),
        }
    }

    pub fn done(text: impl Into<String>) -> Self {
        Self {
            error: false,
            text: text.into(),
        }
    }
}

/// The dashboard's sections, with the permission each needs.
const SECTIONS: [(&str, &str, Option<Permission>); 6] = [
    // The overview page itself says when the session cannot read usage.
    ("Overview", "/ui/", None),
    ("Keys", "/ui/keys", Some(Permission::KeysRead)),
    ("Users", "/ui/users", Some(Permission::UsersRead)),
    // Plans are public.
    ("Plans", "/ui/plans", None),
    ("Audit log", "/ui/audit", Some(Permission::AuditRead)),
    ("Webhooks", "/ui/webhooks", Some(Permission::WebhooksWrite)),
];

/// Who the page is for, to draw its header.
pub enum Viewer<'a> {
    Admin {
        who: &'a str,
        csrf: &'a str,
        permissions: &'a [Permission],
    },
    Portal {
        user: &'a str,
        csrf: &'a str,
    },
    Nobody,
}

/// Never shows the CSRF token.
impl std::fmt::Debug for Viewer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin { who, .. } => write!(f, "Viewer::Admin({who})"),
            Self::Portal { user, .. } => write!(f, "Viewer::Portal({user})"),
            Self::Nobody => f.write_str("Viewer::Nobody"),
        }
    }
}

/// A whole page: header, navigation (only the sections the viewer may open), notices and
/// the content.
pub fn page(title: &str, viewer: &Viewer<'_>, notice: Option<&Notice>, content: Markup) -> Markup {
    let base = match viewer {
        Viewer::Portal { .. } => "/portal",
        _ => "/ui",
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · keyward" }
                link rel="stylesheet" href={ (base) "/assets/app.css" };
                script src={ (base) "/assets/app.js" } defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "keyward" }
                    @match viewer {
                        Viewer::Admin { who, csrf, permissions } => {
                            nav aria-label="Sections" {
                                ul {
                                    @for (name, href, needed) in SECTIONS {
                                        @if needed.is_none_or(|needed| keyward_core::permission::grants(permissions, needed)) {
                                            li { a href=(href) { (name) } }
                                        }
                                    }
                                }
                            }
                            form.signout method="post" action="/ui/sign-out" {
                                input type="hidden" name="csrf" value=(csrf);
                                span.who { "Signed in as " (who) }
                                button type="submit" { "Sign out" }
                            }
                        }
                        Viewer::Portal { user, csrf } => {
                            span.who { "Portal of " (user) }
                            form.signout method="post" action="/portal/sign-out" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                        Viewer::Nobody => {}
                    }
                }
                main id="main" {
                    h1 { (title) }
                    @if let Some(notice) = notice {
                        p.notice.error[notice.error] role=(if notice.error { "alert" } else { "status" }) { (notice.text) }
                    }
                    (content)
                }
            }
        }
    }
}

/// A page holding only a message.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    (
        status,
        page(title, &Viewer::Nobody, None, html! { p { (text) } }),
    )
        .into_response()
}

/// The sign-in page.
pub fn sign_in(csrf: &str, notice: Option<Notice>) -> Markup {
    page(
        "Sign in",
        &Viewer::Nobody,
        notice.as_ref(),
        html! {
            form.card method="post" action="/ui/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="credential" { "Admin token or admin key" }
                input #credential type="password" name="credential" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The admin token is printed when keyward first starts (or set with KEYWARD_ADMIN_TOKEN). An admin key shows only what its permissions allow." }
        },
    )
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A time as the API writes it, shortened for tables (to the minute, UTC).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional time; `—` when absent.
pub fn when_opt(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), when)
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A plaintext key, shown this once, with a copy button (the script copies it).
pub fn secret_once(label: &str, key: &str) -> Markup {
    html! {
        section.secret aria-labelledby="secret-title" {
            h2 #secret-title { (label) }
            p { "Copy it now: keyward keeps only its hash and cannot show it again." }
            div.copyrow {
                input #new-key type="text" readonly value=(key) aria-label="The new key";
                button type="button" data-copy="new-key" { "Copy" }
            }
        }
    }
}

/// A value for a URL's path or query.
pub fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An amount of money: `1,234.50 USD`.
pub fn money(cents: u64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        count(cents / 100),
        cents % 100,
        currency.to_uppercase()
    )
}

/// The page for a thing that does not exist.
pub fn not_found(what: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what}."),
    )
}

/// A store failure, answered as the API answers it.
pub fn store_error(error: keyward_store::StoreError) -> Response {
    crate::error::ApiError::from(error).into_response()
}

/// `?done=…`: what the previous action did, for its notice.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}
