//! Request extraction: JSON bodies with problem-shaped rejections, the presented key
//! and the client address behind trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// Bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body whose rejections are the API's problems (400, 413, 415, 422).
///
/// Parsed with plain serde_json; only when that fails on the data is the body parsed again
/// to name the failing field (`name: invalid type…`), so the common case pays nothing for
/// error paths.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(body) = JsonBody::from_request(request, state).await?;
        parse_json(&body).map(Self)
    }
}

/// The raw bytes of a JSON body (content type checked, size limited), for handlers that
/// deserialize it themselves, borrowing from it.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let RawBody(body) = RawBody::from_request(request, state).await?;
        Ok(Self(body))
    }
}

/// The raw bytes of a body of any type, with the API's problems for a body too large (413),
/// too slow (408) or broken (400).
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else if crate::serve::is_body_timeout(&rejection) {
                    ApiError::RequestTimeout
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })
    }
}

/// `Content-Type: application/json` or `application/<anything>+json`, parameters allowed.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.len() > "application/+json".len()
                    && mime[..12].eq_ignore_ascii_case("application/")
                    && mime[mime.len() - 5..].eq_ignore_ascii_case("+json"))
        })
}

/// Every request body is a JSON object: serde would also fill a struct from an array,
/// positionally, which no client means.
fn not_an_object() -> ApiError {
    ApiError::Validation("the body must be a JSON object".to_owned())
}

/// Parses a JSON document (an object): syntax errors are 400, data errors 422 naming the
/// field.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(not_an_object()),
            Err(error) => Err(ApiError::BadRequest(error.to_string())),
        };
    }
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(error) if error.is_data() => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
                Err(error) if error.path().iter().next().is_some() => Err(ApiError::Validation(
                    format!("{}: {}", error.path(), error.inner()),
                )),
                _ => Err(ApiError::Validation(error.to_string())),
            }
        }
        Err(error) => Err(ApiError::BadRequest(error.to_string())),
    }
}

/// The syntax half of [`parse_json`]: any JSON document (400 when it is not one). For
/// handlers that must look something up (404) before judging the body's values (422).
pub fn parse_json_syntax(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// The values half of [`parse_json`]: 422 naming the failing field.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if value.is_array() {
        return Err(not_an_object());
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            ApiError::Validation(error.inner().to_string())
        } else {
            ApiError::Validation(format!("{path}: {}", error.inner()))
        }
    })
}

/// The token of an `Authorization: Bearer <token>` header (trimmed, non-empty): where
/// admin and metrics credentials are read from, and nowhere else.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The key a request presents: `Authorization: Bearer`, then `X-API-Key`, then (when
/// allowed) the `api_key` query parameter. `None` when there is none.
pub fn presented_key<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    allow_query: bool,
) -> Option<&'a str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = token.trim();
            return (!token.is_empty()).then_some(token);
        }
    }
    if let Some(value) = headers.get("x-api-key") {
        let token = value.to_str().ok()?.trim();
        return (!token.is_empty()).then_some(token);
    }
    if allow_query {
        return query.and_then(query_key);
    }
    None
}

/// The `api_key` parameter of a query string, if any (keys are base62, so no decoding).
fn query_key(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "api_key")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The client's address: the socket peer, or — when the peer is a trusted proxy — the
/// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for entry in value.rsplit(',') {
            let Ok(address) = entry.trim().parse::<IpAddr>() else {
                return client;
            };
            let address = address.to_canonical();
            client = address;
            if !is_trusted(address, trusted) {
                return address;
            }
        }
    }
    client
}

pub fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    let address = address.to_canonical();
    trusted.iter().any(|net| net.contains(&address))
}

/// The socket peer and the client address derived from it (see [`client_address`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr {
    pub peer: IpAddr,
    pub client: IpAddr,
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        let client = client_address(peer, &parts.headers, &state.config.trusted_proxies);
        Ok(Self {
            peer: peer.to_canonical(),
            client,
        })
    }
}

/// Headers from `(name, value)` pairs, repeated names appended (for unit tests).
#[cfg(test)]
pub(crate) fn headers_of(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            *name,
            axum::http::HeaderValue::from_str(value).expect("a header value"),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        headers_of(pairs)
    }

    #[test]
    fn keys_come_from_bearer_then_header_then_query() {
        let both = headers(&[("authorization", "Bearer abc"), ("x-api-key", "def")]);
        assert_eq!(presented_key(&both, None, false), Some("abc"));
        let header = headers(&[("x-api-key", "def")]);
        assert_eq!(
            presented_key(&header, Some("api_key=ghi"), true),
            Some("def")
        );
        let none = HeaderMap::new();
        assert_eq!(presented_key(&none, Some("a=1&api_key=ghi"), false), None);
        assert_eq!(
            presented_key(&none, Some("a=1&api_key=ghi"), true),
            Some("ghi")
        );
        let basic = headers(&[("authorization", "Basic Zm9v")]);
        assert_eq!(presented_key(&basic, None, false), None);
        let lower = headers(&[("authorization", "bearer   abc  ")]);
        assert_eq!(presented_key(&lower, None, false), Some("abc"));
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.2, 10.0.0.7")]);
        let untrusted_peer: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_address(untrusted_peer, &xff, &trusted),
            untrusted_peer
        );
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        assert_eq!(
            client_address(proxy, &xff, &trusted),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        let v6 = headers(&[("x-forwarded-for", "2001:db8::5")]);
        assert_eq!(
            client_address("::1".parse().unwrap(), &v6, &trusted),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_address(proxy, &garbage, &trusted), proxy);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(is_trusted(mapped, &trusted));
    }
}
