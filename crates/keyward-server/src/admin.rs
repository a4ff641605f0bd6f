//! The admin token: given by `KEYWARD_ADMIN_TOKEN` or an admin token file (≥ 32 characters,
//! ≥ 10 distinct; it wins over a stored one), or generated on first start, printed once to
//! stderr, and stored only as SHA-256.

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use keyward_store::{Store, StoreError};

const SETTING: &str = "admin_token_sha256";
pub const MIN_TOKEN_LEN: usize = 32;
/// Fewest distinct characters in a configured admin token (`TTTT…` is long, not strong).
pub const MIN_TOKEN_DISTINCT: usize = 10;

/// Refuses a configured admin token that is short or repetitive.
pub fn check_strength(token: &str) -> Result<(), AdminTokenError> {
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(AdminTokenError::TooShort);
    }
    let distinct: std::collections::HashSet<char> = token.chars().collect();
    if distinct.len() < MIN_TOKEN_DISTINCT {
        return Err(AdminTokenError::TooRepetitive);
    }
    Ok(())
}

/// The SHA-256 of the admin token; compares in constant time.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error(
        "the admin token (KEYWARD_ADMIN_TOKEN or the admin token file) must be at least {MIN_TOKEN_LEN} characters"
    )]
    TooShort,
    #[error(
        "the admin token (KEYWARD_ADMIN_TOKEN or the admin token file) must contain at least {MIN_TOKEN_DISTINCT} distinct characters (e.g. `openssl rand -hex 24`)"
    )]
    TooRepetitive,
    #[error("the stored admin token hash is unreadable")]
    Corrupt,
    #[error("cannot generate an admin token: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a presented secret equals the expected one, compared in constant time (by their
/// SHA-256, so lengths leak nothing either). Used for the admin and metrics tokens.
pub fn secrets_match(expected: &str, presented: &str) -> bool {
    AdminToken::of(expected).matches(presented)
}

impl AdminToken {
    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// What a dashboard session signed in with this token records of it: a hash of the
    /// token's hash (never the token, nor the hash the store keeps elsewhere), so that
    /// changing the token ends the session.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"keyward dashboard session\0");
        hasher.update(self.0);
        hex::encode(hasher.finalize())
    }

    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.0))
    }

    /// Resolves the token: the configured one, else the stored hash, else a new token
    /// (printed once to stderr).
    pub async fn resolve(
        configured: Option<&Zeroizing<String>>,
        store: &dyn Store,
    ) -> Result<Self, AdminTokenError> {
        if let Some(token) = configured {
            check_strength(token)?;
            return Ok(Self::of(token));
        }
        if let Some(stored) = store.get_setting(SETTING).await? {
            return Self::from_hex(&stored);
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| AdminTokenError::Random(e.to_string()))?;
        let token = Zeroizing::new(format!("kwadm_{}", hex::encode(bytes.as_ref())));
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if store
            .insert_setting_if_absent(SETTING, &hex::encode(hash))
            .await?
        {
            eprintln!(
                "keyward: generated an admin token; it is shown only this once, so store it now:\n  {}",
                token.as_str()
            );
            Ok(Self(hash))
        } else {
            // Another node won the race: use its token.
            let stored = store
                .get_setting(SETTING)
                .await?
                .ok_or(AdminTokenError::Corrupt)?;
            Self::from_hex(&stored)
        }
    }

    fn from_hex(stored: &str) -> Result<Self, AdminTokenError> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(stored, &mut hash).map_err(|_| AdminTokenError::Corrupt)?;
        Ok(Self(hash))
    }
}
