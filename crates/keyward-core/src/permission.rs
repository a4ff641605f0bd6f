//! What an admin key may do. The admin token holds every permission; an admin key holds
//! the ones it was given, or `*` (all of them).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One permission an admin key can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    KeysRead,
    KeysWrite,
    UsersRead,
    UsersWrite,
    PlansWrite,
    UsageRead,
    BillingRead,
    AuditRead,
    WebhooksWrite,
    AdminManage,
    /// Every permission, including ones added later.
    All,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Self::KeysRead,
        Self::KeysWrite,
        Self::UsersRead,
        Self::UsersWrite,
        Self::PlansWrite,
        Self::UsageRead,
        Self::BillingRead,
        Self::AuditRead,
        Self::WebhooksWrite,
        Self::AdminManage,
        Self::All,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeysRead => "keys:read",
            Self::KeysWrite => "keys:write",
            Self::UsersRead => "users:read",
            Self::UsersWrite => "users:write",
            Self::PlansWrite => "plans:write",
            Self::UsageRead => "usage:read",
            Self::BillingRead => "billing:read",
            Self::AuditRead => "audit:read",
            Self::WebhooksWrite => "webhooks:write",
            Self::AdminManage => "admin:manage",
            Self::All => "*",
        }
    }

    pub fn parse(value: &str) -> Result<Self, InvalidPermission> {
        Self::ALL
            .into_iter()
            .find(|permission| permission.as_str() == value)
            .ok_or(InvalidPermission)
    }

    /// Whether only the admin token or a `*` key may grant or revoke a key holding it.
    pub const fn is_sovereign(self) -> bool {
        matches!(self, Self::All | Self::AdminManage)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a permission is one of keys:read, keys:write, users:read, users:write, plans:write, usage:read, billing:read, audit:read, webhooks:write, admin:manage or *"
)]
pub struct InvalidPermission;

/// Whether `held` grants `needed` (`*` grants everything).
pub fn grants(held: &[Permission], needed: Permission) -> bool {
    held.iter()
        .any(|permission| *permission == Permission::All || *permission == needed)
}

/// Whether a holder of `held` may grant or revoke a key holding `other`: every one of
/// `other`'s permissions must be its own, and `*` or `admin:manage` keys are handled only
/// by a `*` holder.
pub fn may_manage(held: &[Permission], other: &[Permission]) -> bool {
    let all = held.contains(&Permission::All);
    other
        .iter()
        .all(|permission| all || (!permission.is_sovereign() && held.contains(permission)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for permission in Permission::ALL {
            assert_eq!(Permission::parse(permission.as_str()), Ok(permission));
        }
        assert!(Permission::parse("keys:delete").is_err());
        assert!(Permission::parse("").is_err());
        assert!(serde_json::from_str::<Permission>("\"keys:read\"").is_ok());
    }

    #[test]
    fn star_grants_everything_and_others_only_themselves() {
        assert!(grants(&[All], AuditRead));
        assert!(grants(&[KeysRead, UsageRead], UsageRead));
        assert!(!grants(&[KeysRead], KeysWrite));
        assert!(!grants(&[], KeysRead));
    }

    #[test]
    fn a_key_manages_only_keys_within_its_own_permissions() {
        assert!(may_manage(&[AdminManage, KeysRead, KeysWrite], &[KeysRead]));
        assert!(!may_manage(
            &[AdminManage, KeysRead],
            &[KeysRead, KeysWrite]
        ));
        assert!(!may_manage(&[AdminManage, KeysRead], &[AdminManage]));
        assert!(!may_manage(&[AdminManage, KeysRead], &[All]));
        assert!(may_manage(&[All], &[All]));
        assert!(may_manage(&[All], &[AdminManage, AuditRead]));
    }
}
