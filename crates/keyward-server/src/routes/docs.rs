//! The API reference at `/docs`: Redoc rendering `/openapi.json`, both served by this
//! binary, so the page works on a machine with no network access. Redoc's bundle is vendored
//! under `assets/redoc/` (its version, license and checksum are noted there).

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page: Redoc's element pointed at this server's document, and its script.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keyward API reference</title>
<style>body { margin: 0; }</style>
</head>
<body>
<redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
<noscript>The reference needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="/docs/redoc.standalone.js"></script>
</body>
</html>
"#;

/// Redoc 2.5.2's standalone bundle (MIT).
const REDOC: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

/// The page may load from this origin only (and Redoc's own inline styles, images and
/// search worker): a browser refuses anything from elsewhere, so the page can never reach
/// a CDN, and nothing injected into the document could load a script.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[utoipa::path(get, path = "/docs", operation_id = "docs", summary = "The API reference, for a browser", tag = "operations",
    responses((status = 200, description = "An HTML page that renders this document with Redoc, served by keyward itself (no network access needed)", content_type = "text/html")))]
pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// `/docs/redoc.standalone.js`: the page's script (not part of the API, so not in the
/// OpenAPI document).
pub async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        REDOC,
    )
        .into_response()
}
