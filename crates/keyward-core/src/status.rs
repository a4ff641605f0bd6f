//! A key's state: the one rule the verifier, the API's key objects, listings, `max_keys` and
//! `key_count` all follow (the stores mirror it in SQL, and a conformance test compares the
//! two on the same rows).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Code;

/// The longest grace period a rotation gives the old key: 30 days (2,592,000 s).
pub const MAX_GRACE_SECONDS: u64 = 2_592_000;

/// A key's state, in the precedence of the decision order: revoked beats disabled beats
/// expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Disabled,
    Expired,
    Revoked,
}

impl KeyStatus {
    /// The status of a key with these fields at `now`. A key expires at its `expires_at`
    /// instant (inclusive).
    pub fn of(
        is_active: bool,
        enabled: bool,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        if !is_active {
            Self::Revoked
        } else if !enabled {
            Self::Disabled
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else {
            Self::Active
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// The decision a check of a key in this state ends in, when the state alone decides.
    pub const fn refusal(self) -> Option<Code> {
        match self {
            Self::Active => None,
            Self::Disabled => Some(Code::Disabled),
            Self::Expired => Some(Code::Expired),
            Self::Revoked => Some(Code::Revoked),
        }
    }

    /// Counted by `max_keys`: active or disabled (a disabled key can come back).
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Active | Self::Disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_revoked_then_disabled_then_expired() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let past = Some(now - chrono::Duration::seconds(1));
        let future = Some(now + chrono::Duration::seconds(1));
        let table = [
            // is_active, enabled, expires_at, status
            (false, false, past, KeyStatus::Revoked),
            (false, true, None, KeyStatus::Revoked),
            (true, false, past, KeyStatus::Disabled),
            (true, false, None, KeyStatus::Disabled),
            (true, true, past, KeyStatus::Expired),
            (true, true, Some(now), KeyStatus::Expired),
            (true, true, future, KeyStatus::Active),
            (true, true, None, KeyStatus::Active),
        ];
        for (is_active, enabled, expires_at, status) in table {
            assert_eq!(
                KeyStatus::of(is_active, enabled, expires_at, now),
                status,
                "{is_active} {enabled} {expires_at:?}"
            );
        }
    }
}
