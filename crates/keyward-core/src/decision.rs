//! The outcome of every key check.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyStatus;

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
    fn wire_names_match_serde() {
        for code in Code::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
