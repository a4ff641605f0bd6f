//! The outcome of every key check, and the key state it starts from.
//!
//! A key's state is the one rule the verifier, the API's key objects, listings, `max_keys`
//! and `key_count` all follow (the stores mirror it in SQL, and a conformance test compares
//! the two on the same rows).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Every check of a key ends in exactly one code; the variants are in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    Missing,
    TooManyFailures,
    Invalid,
    Revoked,
    Disabled,
    Expired,
    IpNotAllowed,
    InsufficientScope,
    QuotaExceeded,
    RateLimited,
    Valid,
}

impl Code {
    pub const ALL: [Code; 11] = [
        Code::Missing,
        Code::TooManyFailures,
        Code::Invalid,
        Code::Revoked,
        Code::Disabled,
        Code::Expired,
        Code::IpNotAllowed,
        Code::InsufficientScope,
        Code::QuotaExceeded,
        Code::RateLimited,
        Code::Valid,
    ];

    /// The code's place in [`Code::ALL`] (what per-code tables are indexed by).
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "MISSING",
            Self::TooManyFailures => "TOO_MANY_FAILURES",
            Self::Invalid => "INVALID",
            Self::Revoked => "REVOKED",
            Self::Disabled => "DISABLED",
            Self::Expired => "EXPIRED",
            Self::IpNotAllowed => "IP_NOT_ALLOWED",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::RateLimited => "RATE_LIMITED",
            Self::Valid => "VALID",
        }
    }

    /// The HTTP status the decision is answered with where one is returned.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Valid => 200,
            Self::Missing | Self::Invalid | Self::Revoked | Self::Disabled | Self::Expired => 401,
            Self::IpNotAllowed | Self::InsufficientScope => 403,
            Self::TooManyFailures | Self::QuotaExceeded | Self::RateLimited => 429,
        }
    }

    /// Codes 1–6: no key, or one that cannot be used at all. Answers for them say nothing
    /// about the key's owner.
    pub const fn is_key_failure(self) -> bool {
        matches!(
            self,
            Self::Missing
                | Self::TooManyFailures
                | Self::Invalid
                | Self::Revoked
                | Self::Disabled
                | Self::Expired
        )
    }

    /// Failures the brute-force guard counts (codes 3–6).
    pub const fn counts_as_failure(self) -> bool {
        matches!(
            self,
            Self::Invalid | Self::Revoked | Self::Disabled | Self::Expired
        )
    }
}

/// The refusal, if any, of a check of a found key before its limits are asked: the key's
/// state (revoked, then disabled, then expired), then the client's address, then the
/// required scopes — the first that fails decides. The address and scope tests run only
/// when reached.
pub fn refusal_before_limits(
    status: crate::KeyStatus,
    address_allowed: impl FnOnce() -> bool,
    scopes_granted: impl FnOnce() -> bool,
) -> Option<Code> {
    if let Some(code) = status.refusal() {
        Some(code)
    } else if !address_allowed() {
        Some(Code::IpNotAllowed)
    } else if !scopes_granted() {
        Some(Code::InsufficientScope)
    } else {
        None
    }
}

/// Whether a key may use every scope a request requires: each must be among the key's own
/// scopes (a key with none may use every scope) and among its plan's features (a plan
/// that lists none allows every scope).
pub fn scopes_granted(
    required: &[crate::Scope],
    key_scopes: &[crate::Scope],
    plan_features: Option<&[crate::Scope]>,
) -> bool {
    required.iter().all(|scope| {
        (key_scopes.is_empty() || key_scopes.contains(scope))
            && plan_features.is_none_or(|features| features.contains(scope))
    })
}

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

    /// The state named `raw` (`active`, `disabled`, `expired`, `revoked`).
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Active, Self::Disabled, Self::Expired, Self::Revoked]
            .into_iter()
            .find(|status| status.as_str() == raw)
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
    use crate::KeyStatus;

    #[test]
    fn each_code_indexes_its_place_in_all() {
        for (place, code) in Code::ALL.iter().enumerate() {
            assert_eq!(code.index(), place, "{code:?}");
        }
    }

    #[test]
    fn the_state_then_the_address_then_the_scopes_decide() {
        use KeyStatus::*;
        let table = [
            // status, address allowed, scopes granted, refusal
            (Revoked, false, false, Some(Code::Revoked)),
            (Disabled, false, false, Some(Code::Disabled)),
            (Expired, false, false, Some(Code::Expired)),
            (Active, false, false, Some(Code::IpNotAllowed)),
            (Active, false, true, Some(Code::IpNotAllowed)),
            (Active, true, false, Some(Code::InsufficientScope)),
            (Active, true, true, None),
        ];
        for (status, address, scopes, expected) in table {
            assert_eq!(
                refusal_before_limits(status, || address, || scopes),
                expected,
                "{status:?} {address} {scopes}"
            );
        }
    }

    #[test]
    fn later_tests_do_not_run_once_one_refused() {
        let refused = refusal_before_limits(
            KeyStatus::Revoked,
            || panic!("the address is not asked about a revoked key"),
            || panic!("nor the scopes"),
        );
        assert_eq!(refused, Some(Code::Revoked));
        let refused = refusal_before_limits(KeyStatus::Active, || false, || panic!("not asked"));
        assert_eq!(refused, Some(Code::IpNotAllowed));
    }

    #[test]
    fn scopes_need_both_the_key_and_the_plan() {
        let scopes = |names: &[&str]| -> Vec<crate::Scope> {
            names
                .iter()
                .map(|name| crate::Scope::parse(name).unwrap())
                .collect()
        };
        let table = [
            // required, the key's scopes, the plan's features, granted
            (vec![], vec![], Some(vec![]), true),
            (vec!["read"], vec![], None, true),
            (vec!["read"], vec!["read"], None, true),
            (vec!["write"], vec!["read"], None, false),
            (vec!["read"], vec![], Some(vec!["read"]), true),
            (vec!["write"], vec![], Some(vec!["read"]), false),
            (vec!["write"], vec!["write"], Some(vec!["read"]), false),
            (
                vec!["read", "write"],
                vec!["read", "write"],
                Some(vec!["read"]),
                false,
            ),
        ];
        for (required, key, plan, granted) in table {
            let plan = plan.map(|names| scopes(&names));
            assert_eq!(
                scopes_granted(&scopes(&required), &scopes(&key), plan.as_deref()),
                granted,
                "{required:?} {key:?} {plan:?}"
            );
        }
    }

    #[test]
    fn wire_names_match_serde() {
        for code in Code::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}

#[cfg(test)]
mod status_tests {
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
