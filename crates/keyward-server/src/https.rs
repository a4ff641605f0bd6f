//! HTTPS-only credentials. A request that carries a credential over plain HTTP, from a
//! client outside the exempt networks (loopback by default), is refused with 403
//! `HTTPS_REQUIRED` before any other check and without a store lookup: the credential
//! crossed the network in clear text and must be treated as exposed. Such a refusal is not
//! a check of a key, not usage and not a brute-force failure. Responses whose scheme is
//! https carry `Strict-Transport-Security`.
//!
//! The scheme is `https` on a TLS connection; otherwise, from a trusted proxy, the last
//! value of its last `X-Forwarded-Proto` header; otherwise `http`. The client is the
//! address the request is judged by (behind trusted proxies, see `extract`), except for
//! `/v1/verify`, whose caller is the socket peer.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::Response;
use ipnet::IpNet;
use percent_encoding::percent_decode_str;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::extract::{client_address, is_trusted};
use crate::serve::OverTls;

/// `Strict-Transport-Security` on https responses: a year.
const HSTS: &str = "max-age=31536000";

/// Endpoints that report keys already exposed: they take them over any scheme.
const EXPOSED_KEY_REPORTS: [&str; 2] = ["/v1/keys/self-revoke", "/v1/secret-scanning/github"];

/// Whether the request's scheme is https (see the module's documentation).
pub fn is_https(over_tls: bool, peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    if over_tls {
        return true;
    }
    if !is_trusted(peer, trusted) {
        return false;
    }
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Whether the request carries a credential in its headers or query: a non-empty
/// `Authorization` or `X-API-Key`, or an `api_key` query parameter. (A `/v1/verify` body's
/// `key` is judged by its handler.)
pub fn carries_credential(headers: &HeaderMap, uri: &Uri) -> bool {
    let non_empty = |name| {
        headers
            .get_all(name)
            .iter()
            .any(|value| !value.as_bytes().iter().all(u8::is_ascii_whitespace))
    };
    non_empty(header::AUTHORIZATION.as_str())
        || non_empty("x-api-key")
        || uri.query().is_some_and(|query| {
            query.split('&').any(|pair| {
                let name = pair.split('=').next().unwrap_or("");
                percent_decode_str(name).decode_utf8_lossy() == "api_key"
            })
        })
}

/// Whether a credential from `client` over a plain-HTTP request must be refused.
pub fn refuses(config: &ServerConfig, client: IpAddr) -> bool {
    config.require_https && outside(client, &config.https_exempt_networks)
}

/// Whether `client` lies outside every network of `exempt` (IPv4-mapped IPv6 addresses are
/// judged as IPv4).
pub fn outside(client: IpAddr, exempt: &[IpNet]) -> bool {
    let client = client.to_canonical();
    !exempt.iter().any(|net| net.contains(&client))
}

/// The connection facts a request carries: the socket peer (when served over a socket) and
/// whether it arrived over TLS.
pub fn connection_of(request: &Request) -> (Option<IpAddr>, bool) {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    (peer, request.extensions().get::<OverTls>().is_some())
}

/// The HTTPS-only rule for one request: `Ok(true)` when it came over HTTPS (its response
/// then carries HSTS, see [`stamp`]), `Ok(false)` over plain HTTP, `Err` with the
/// `HTTPS_REQUIRED` problem when it carries a credential in clear text from a client
/// outside the exempt networks.
pub fn admit(config: &ServerConfig, request: &Request) -> Result<bool, ApiError> {
    let (peer, over_tls) = connection_of(request);
    // Served without a socket (the router called directly): nothing crossed a network.
    let Some(peer) = peer else {
        return Ok(false);
    };
    let https = is_https(over_tls, peer, request.headers(), &config.trusted_proxies);
    if !https && config.require_https {
        let path = request.uri().path();
        let client = if path == "/v1/verify" {
            peer
        } else {
            client_address(peer, request.headers(), &config.trusted_proxies)
        };
        if !EXPOSED_KEY_REPORTS.contains(&path)
            && (carries_credential(request.headers(), request.uri())
                || crate::ui::cookies::carries_web_credential(
                    request.method(),
                    request.uri(),
                    request.headers(),
                ))
            && refuses(config, client)
        {
            return Err(ApiError::HttpsRequired);
        }
    }
    Ok(https)
}

/// Adds HSTS to the response of a request [`admit`] found to come over HTTPS.
pub fn stamp(response: &mut Response) {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::headers_of as headers;

    #[test]
    fn the_scheme_is_https_over_tls_or_as_a_trusted_proxy_says_last() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        let https = headers(&[("x-forwarded-proto", "https")]);
        assert!(is_https(true, stranger, &HeaderMap::new(), &trusted));
        assert!(is_https(false, proxy, &https, &trusted));
        assert!(
            !is_https(false, stranger, &https, &trusted),
            "only a trusted proxy says"
        );
        assert!(!is_https(false, proxy, &HeaderMap::new(), &trusted));
        let last = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http, HTTPS"),
        ]);
        assert!(
            is_https(false, proxy, &last, &trusted),
            "last value of the last header"
        );
        let downgraded = headers(&[("x-forwarded-proto", "https, http")]);
        assert!(!is_https(false, proxy, &downgraded, &trusted));
        let forwarded = headers(&[("forwarded", "proto=https")]);
        assert!(
            !is_https(false, proxy, &forwarded, &trusted),
            "Forwarded is ignored"
        );
    }

    #[test]
    fn credentials_are_non_empty_headers_or_an_api_key_parameter() {
        let uri: Uri = "/v1/authorize".parse().unwrap();
        assert!(!carries_credential(&HeaderMap::new(), &uri));
        assert!(carries_credential(
            &headers(&[("authorization", "Bearer x")]),
            &uri
        ));
        assert!(carries_credential(&headers(&[("x-api-key", "k")]), &uri));
        assert!(!carries_credential(&headers(&[("x-api-key", " ")]), &uri));
        let query: Uri = "/v1/authorize?a=1&api_key=k".parse().unwrap();
        assert!(carries_credential(&HeaderMap::new(), &query));
        let encoded: Uri = "/v1/authorize?api%5Fkey=k".parse().unwrap();
        assert!(carries_credential(&HeaderMap::new(), &encoded));
        let other: Uri = "/v1/authorize?api_keys=k".parse().unwrap();
        assert!(!carries_credential(&HeaderMap::new(), &other));
    }

    #[test]
    fn loopback_is_exempt_by_default_and_mapped_addresses_count_as_ipv4() {
        let config = ServerConfig::default();
        assert!(!refuses(&config, "127.0.0.1".parse().unwrap()));
        assert!(!refuses(&config, "::1".parse().unwrap()));
        assert!(!refuses(&config, "::ffff:127.0.0.9".parse().unwrap()));
        assert!(refuses(&config, "192.0.2.1".parse().unwrap()));
        let off = ServerConfig {
            require_https: false,
            ..ServerConfig::default()
        };
        assert!(!refuses(&off, "192.0.2.1".parse().unwrap()));
        let nobody = ServerConfig {
            https_exempt_networks: Vec::new(),
            ..ServerConfig::default()
        };
        assert!(refuses(&nobody, "127.0.0.1".parse().unwrap()));
    }
}
