//! Administration: migrations and admin keys.

use chrono::{DateTime, Utc};
use keyward_core::time::rfc3339;
use serde::Serialize;

/// A migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
    #[serde(with = "rfc3339::option")]
    pub applied_at: Option<DateTime<Utc>>,
}

/// An admin key as stored: never its plaintext, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AdminKeyObject))]
pub struct AdminKeyRecord {
    /// `adk_` + ULID.
    pub id: String,
    pub name: String,
    /// The key's first characters, for recognising it (`kwadm_Lr4l…`).
    pub key_prefix: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub permissions: Vec<keyward_core::Permission>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used, to the minute.
    #[serde(with = "rfc3339::option")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl AdminKeyRecord {
    /// Whether it authenticates at `now`: not revoked, not expired.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A new admin key: its hash and display prefix (the plaintext stays with the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdminKey {
    pub name: String,
    pub permissions: Vec<keyward_core::Permission>,
    pub expires_at: Option<DateTime<Utc>>,
    pub hash: keyward_core::KeyHash,
    pub key_prefix: String,
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn an_admin_key_works_until_it_is_revoked_or_expires() {
        let now = Utc::now();
        let key = AdminKeyRecord {
            id: "adk_x".to_owned(),
            name: "n".to_owned(),
            key_prefix: "kwadm_abcd…".to_owned(),
            permissions: vec![keyward_core::Permission::KeysRead],
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        assert!(key.is_usable(now));
        let expiring = AdminKeyRecord {
            expires_at: Some(now),
            ..key.clone()
        };
        assert!(expiring.is_usable(now - Duration::seconds(1)));
        assert!(
            !expiring.is_usable(now),
            "expired at its expires_at instant"
        );
        let revoked = AdminKeyRecord {
            revoked_at: Some(now),
            ..key
        };
        assert!(!revoked.is_usable(now));
    }
}
