//! The one error type of the HTTP API, mapped to problem+json (RFC 9457) in one place.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::Code;
use keyward_store::StoreError;
use serde::Serialize;

/// The codes of problems about the request itself (a refused key's problem carries its
/// decision code instead).
pub const REQUEST_PROBLEM_CODES: [&str; 12] = [
    "HTTPS_REQUIRED",
    "BAD_REQUEST",
    "UNSUPPORTED_MEDIA_TYPE",
    "VALIDATION_FAILED",
    "PAYLOAD_TOO_LARGE",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
    "REQUEST_TIMEOUT",
    "UNAVAILABLE",
];

/// A string schema whose values are `values`.
fn string_enum(
    values: impl IntoIterator<Item = &'static str>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .into()
}

/// The OpenAPI schema of a decision code: the values of [`Code`], in order of precedence.
#[derive(Debug)]
pub struct DecisionCode;

impl utoipa::PartialSchema for DecisionCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(Code::ALL.map(Code::as_str))
    }
}

impl utoipa::ToSchema for DecisionCode {}

/// The OpenAPI schema of a problem's `code`: a refused key's decision, or what was wrong
/// with the request.
#[derive(Debug)]
pub struct ProblemCode;

impl utoipa::PartialSchema for ProblemCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            Code::ALL
                .into_iter()
                .filter(|code| *code != Code::Valid)
                .map(Code::as_str)
                .chain(REQUEST_PROBLEM_CODES),
        )
    }
}

impl utoipa::ToSchema for ProblemCode {}

/// A problem document. `code` is the stable, machine-readable part.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[schema(value_type = ProblemCode)]
    pub code: String,
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    BadRequest(String),
    #[error("a JSON body needs `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("{0}")]
    Validation(String),
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("a backend is unavailable")]
    Unavailable,
    /// A credential arrived over plain HTTP from outside the exempt networks.
    #[error(
        "this credential was sent over plain HTTP and must be treated as exposed: rotate or revoke it. Send credentials over HTTPS: serve keyward with TLS (--tls-cert and --tls-key), or behind a TLS proxy named by --trusted-proxy that sets X-Forwarded-Proto; clients on networks allowed plain HTTP are listed with --https-exempt-network"
    )]
    HttpsRequired,
    #[error("the request body did not arrive within --body-read-timeout")]
    RequestTimeout,
    /// Management calls made with a user's keys exceeded `--self-service-limit`.
    #[error(
        "this user's keys made more than {limit} management calls in 60 seconds (--self-service-limit); retry later"
    )]
    SelfServiceLimited { limit: u32, retry_after: u64 },
    /// A key check that failed, answered with its decision's status and code.
    #[error("{}", decision_detail(*.code))]
    Decision {
        code: Code,
        retry_after: Option<u64>,
    },
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The answer to a refused check: its decision's problem, with `Retry-After` when waiting
/// helps. A request whose `Authorization` header has no `Bearer` scheme is told so instead
/// of only "no API key was presented".
pub fn refusal_response(code: Code, retry_after: Option<u64>, headers: &HeaderMap) -> Response {
    let mut problem = ApiError::Decision { code, retry_after }.problem();
    if code == Code::Missing
        && let Some(hint) = missing_scheme_hint(headers)
    {
        hint.clone_into(&mut problem.detail);
    }
    problem_response(&problem, retry_after)
}

fn decision_detail(code: Code) -> &'static str {
    match code {
        Code::Missing => "no API key was presented",
        Code::TooManyFailures => "too many failed key checks from this address; retry later",
        Code::Invalid => "the API key is invalid",
        Code::Revoked => "the API key has been revoked",
        Code::Disabled => "the API key is disabled",
        Code::Expired => "the API key has expired",
        Code::IpNotAllowed => "the API key may not be used from this address",
        Code::InsufficientScope => "the API key lacks a required scope",
        Code::QuotaExceeded => "the monthly quota is used up",
        Code::RateLimited => "the rate limit is exceeded",
        Code::Valid => "the API key is valid",
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::HttpsRequired => StatusCode::FORBIDDEN,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::SelfServiceLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Decision { code, .. } => {
                StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::UNAUTHORIZED)
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Unavailable => "UNAVAILABLE",
            Self::HttpsRequired => "HTTPS_REQUIRED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::SelfServiceLimited { .. } => "RATE_LIMITED",
            Self::Decision { code, .. } => code.as_str(),
        }
    }

    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Validation(format!("{field}: {message}"))
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let kind = match self {
            Self::Decision {
                code: Code::QuotaExceeded,
                ..
            } => "https://iana.org/assignments/http-problem-types#quota-exceeded".to_owned(),
            _ => format!(
                "https://keyward.dev/problems/{}",
                self.code().to_ascii_lowercase().replace('_', "-")
            ),
        };
        Problem {
            kind,
            title: title(status).to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
        }
    }
}

/// The response for a problem: JSON body, `WWW-Authenticate` on 401, `Retry-After` on 429.
pub fn problem_response(problem: &Problem, retry_after: Option<u64>) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    if problem.status == 401 {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyward\""),
        );
    }
    if problem.status == 429 {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.unwrap_or(1).max(1)),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::Decision { retry_after, .. } => *retry_after,
            Self::SelfServiceLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        problem_response(&self.problem(), retry_after)
    }
}

/// A backend a key check needed was unreachable (already logged where it failed).
impl From<crate::verifier::Unavailable> for ApiError {
    fn from(_: crate::verifier::Unavailable) -> Self {
        Self::Unavailable
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::Invalid { field, message } => {
                Self::Validation(format!("{field}: {message}"))
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable
            }
            error @ (StoreError::Migration(_) | StoreError::Internal(_)) => {
                // Not the client's fault and not worth a 500 that reveals internals: the store
                // is in a state it cannot serve from.
                tracing::error!(error = %error, "storage failure");
                Self::Unavailable
            }
        }
    }
}

/// Why no key was read although an `Authorization` header came: it has no `Bearer`
/// scheme (`Authorization: sk_live_…`, `Basic …`). Never repeats the header's value.
pub fn missing_scheme_hint(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let bearer = value
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    (!value.is_empty() && !bearer).then_some(
        "no API key was presented: the Authorization header has no `Bearer` scheme; send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
    )
}
