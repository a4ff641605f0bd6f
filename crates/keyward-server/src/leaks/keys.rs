//! GitHub's secret-scanning public keys: read from the document GitHub publishes (saved as
//! a file), checked to be P-256 keys, and read again on SIGHUP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

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
    pub(super) fn verifies(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
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
