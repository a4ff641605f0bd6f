//! Leaked keys reported by GitHub's secret scanning (the partner program): GitHub posts the
//! tokens it found in public, signed with an ECDSA P-256 key it publishes; keyward checks
//! the signature against the public keys the operator saved (`--github-public-keys`, no
//! network needed, re-read on SIGHUP), labels each token, and acts on the keys it knows
//! (`--leak-action`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyward_core::{PlainKey, PresentedKey};
use keyward_store::LeakReport;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The largest report accepted (GitHub sends batches well under this).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// The DER header of a P-256 public key (SubjectPublicKeyInfo: id-ecPublicKey, prime256v1,
/// an uncompressed point of 65 bytes follows). Every key GitHub publishes starts so.
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum LeakKeysError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not GitHub's public keys document: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The document GitHub publishes at its secret-scanning keys endpoint.
#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

/// GitHub's public keys by identifier (uncompressed P-256 points), reloadable.
#[derive(Debug)]
pub struct GitHubKeys {
    path: PathBuf,
    keys: RwLock<HashMap<String, Vec<u8>>>,
}

impl GitHubKeys {
    pub fn load(path: &Path) -> Result<Self, LeakKeysError> {
        Ok(Self {
            path: path.to_owned(),
            keys: RwLock::new(read_keys(path)?),
        })
    }

    /// Reads the file again; on an error the keys in use stay.
    pub fn reload(&self) -> Result<usize, LeakKeysError> {
        let keys = read_keys(&self.path)?;
        let count = keys.len();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) signs `body` with the
    /// key named `identifier`.
    fn verifies(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.get(identifier).is_some_and(|point| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(body, &signature)
                .is_ok()
        })
    }
}

fn read_keys(path: &Path) -> Result<HashMap<String, Vec<u8>>, LeakKeysError> {
    let invalid = |reason: String| LeakKeysError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| LeakKeysError::Read {
        path: path.to_owned(),
        source,
    })?;
    let document: KeysDocument =
        serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?;
    document
        .public_keys
        .into_iter()
        .map(|key| {
            let point = p256_point(&key.key).ok_or_else(|| {
                invalid(format!(
                    "key `{}` is not a PEM P-256 public key",
                    key.key_identifier
                ))
            })?;
            Ok((key.key_identifier, point))
        })
        .collect()
}

/// The uncompressed point of a PEM `PUBLIC KEY` holding a P-256 key.
fn p256_point(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).ok()?;
    let point = der.strip_prefix(&P256_SPKI_HEADER[..])?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

/// Reloads the public keys on every SIGHUP (a no-op without `--github-public-keys`).
pub async fn reload_on_hangup(keys: Option<Arc<GitHubKeys>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Some(keys) = keys else { return };
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: GitHub's public keys cannot be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match keys.reload() {
                Ok(count) => tracing::info!(count, "SIGHUP: reloaded GitHub's public keys"),
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: cannot reload GitHub's public keys; using the current ones")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(keys);
}

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
