//! Leaked keys reported by GitHub's secret scanning (the partner program): GitHub posts the
//! tokens it found in public, signed with an ECDSA P-256 key it publishes; keyward checks
//! the signature against the public keys the operator saved (`--github-public-keys`, no
//! network needed, re-read on SIGHUP), labels each token, and acts on the keys it knows
//! (`--leak-action`).

pub mod keys;

pub use keys::{GitHubKeys, LeakKeysError, reload_on_hangup};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use keyward_core::{PlainKey, PresentedKey};
use keyward_store::LeakReport;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The largest report accepted (GitHub sends batches well under this).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// One token of a report.
#[derive(Debug, Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// Whether a reported token is a key keyward issued (or imported).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenLabel {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive` for a key or admin key this deployment holds (whatever its status),
    /// else `false_positive`.
    pub label: &'static str,
}

#[utoipa::path(post, path = "/v1/secret-scanning/github", operation_id = "githubSecretScanning", summary = "Leaked keys reported by GitHub secret scanning", tag = "keys",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "Which of GitHub's keys signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the ASN.1 DER ECDSA P-256 SHA-256 signature of the raw body")),
    request_body(content = Vec<Object>, description = "GitHub's report: `[{token, type, url, source}]`, at most 1 MiB and 1,000 tokens; applied in one transaction (all or nothing)"),
    responses((status = 200, description = "Each token's label", body = Vec<TokenLabel>),
        (status = 401, description = "The signature does not verify with a known key; nothing changed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "More than 1,000 tokens in one report; nothing changed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not enabled (no `--github-public-keys`); a request without the two headers is 401 first", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<TokenLabel>>> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(identifier), Some(signature)) = (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) else {
        return Err(ApiError::Unauthorized(
            "a report needs Github-Public-Key-Identifier and Github-Public-Key-Signature",
        ));
    };
    let Some(keys) = &state.github_keys else {
        return Err(ApiError::NotFound("resource"));
    };
    if !keys.verifies(identifier, signature, &body) {
        return Err(ApiError::Unauthorized(
            "the report's signature does not verify with a known GitHub public key",
        ));
    }
    let reported: Vec<Reported> =
        serde_json::from_slice(&body).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    if reported.len() > keyward_store::MAX_REPORTED_TOKENS {
        return Err(ApiError::validation(
            "tokens",
            format!(
                "a report names at most {} tokens",
                keyward_store::MAX_REPORTED_TOKENS
            ),
        ));
    }
    // Tokens that could be keys of this deployment, decided without I/O; then one store
    // call for all of them, applied in one transaction.
    let candidates: Vec<(usize, keyward_core::KeyHash)> = reported
        .iter()
        .enumerate()
        .filter_map(|(index, item)| leaked_hash(&item.token).map(|hash| (index, hash)))
        .collect();
    let mut found = vec![None; reported.len()];
    if !candidates.is_empty() {
        if state.verifier.store_down() {
            return Err(ApiError::Unavailable);
        }
        let reports: Vec<_> = candidates
            .iter()
            .map(|(index, hash)| {
                let item = &reported[*index];
                (
                    *hash,
                    LeakReport {
                        url: item.url.clone(),
                        source: item.source.clone(),
                    },
                )
            })
            .collect();
        let results = state
            .store
            .report_leaks(&reports, state.config.leak_action)
            .await?;
        for ((index, _), result) in candidates.iter().zip(results) {
            found[*index] = result;
        }
        if found.iter().any(Option::is_some) {
            // This node's caches see the revocations before the answer leaves.
            state.feed.catch_up().await;
        }
    }
    let mut labels = Vec::with_capacity(reported.len());
    for (item, found) in reported.into_iter().zip(found) {
        if let Some(found) = &found {
            tracing::warn!(key = %found.id, action = found.action, url = ?item.url, "GitHub reported a leaked key");
        }
        labels.push(TokenLabel {
            token_hash: hex::encode(Sha256::digest(item.token.as_bytes())),
            token_type: item.token_type,
            label: if found.is_some() {
                "true_positive"
            } else {
                "false_positive"
            },
        });
    }
    Ok(Json(labels))
}

/// The hash to look a reported token up by, or `None` for a string keyward never holds
/// (a bad checksum, say) — decided without I/O.
fn leaked_hash(token: &str) -> Option<keyward_core::KeyHash> {
    match PlainKey::parse(token) {
        Ok(key) => Some(key.hash()),
        Err(_) => PresentedKey::classify(token).ok().map(|p| p.hash()),
    }
}
