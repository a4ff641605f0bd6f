//! Plans: rate-limit windows, burst bucket, monthly quota, key cap, features
//! and price.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::string_newtype;
use crate::scope::Scope;

/// A plan's name: 1–64 characters of `[A-Za-z0-9_-]`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanName(String);

string_newtype!(
    PlanName,
    InvalidPlanName,
    "a plan name is 1 to 64 letters, digits, `_` or `-`, starting with a letter or digit",
    |value| (1..=64).contains(&value.len())
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
);

impl PlanName {
    pub fn free() -> Self {
        Self("free".to_owned())
    }
}

impl fmt::Debug for PlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rate-limit window: at most `max` units in any interval of `window_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WindowObject))]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub window_seconds: u64,
    pub max: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Window {
    pub fn new(window_seconds: u64, max: u64) -> Self {
        Self {
            window_seconds,
            max,
            name: None,
        }
    }

    /// The name used in headers: its own, else `minute`/`hour`/`day`, else `{W}s`.
    /// Allocates only for a window's own name or an unusual length.
    pub fn display_name(&self) -> std::borrow::Cow<'_, str> {
        match &self.name {
            Some(name) => std::borrow::Cow::Borrowed(name),
            None => window_length_name(self.window_seconds),
        }
    }
}

/// The name of a window without its own: `minute`, `hour`, `day`, else `{W}s`.
pub fn window_length_name(seconds: u64) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    match seconds {
        60 => Cow::Borrowed("minute"),
        3600 => Cow::Borrowed("hour"),
        86_400 => Cow::Borrowed("day"),
        seconds => Cow::Owned(format!("{seconds}s")),
    }
}

/// A GCRA token bucket: refills `rate_per_second`, holds at most `capacity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = BurstObject))]
#[serde(deny_unknown_fields)]
pub struct Burst {
    pub rate_per_second: f64,
    pub capacity: u64,
}

/// What a plan costs: a base fee per month, requests included, and the overage rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PriceObject))]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub base_cents: u64,
    pub included_requests: u64,
    pub overage_cents_per_1000: u64,
}

/// The most `max_key_lifetime_days` may be (100 years, as the most a key's expiry may be).
pub const MAX_KEY_LIFETIME_DAYS: u32 = 36_500;

/// A plan's settings, everything but its name. Absent optional fields mean "no such limit".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PlanSettings))]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    #[serde(default)]
    pub limits: Vec<Window>,
    #[serde(default)]
    pub burst: Option<Burst>,
    #[serde(default)]
    pub monthly_quota: Option<u64>,
    #[serde(default)]
    pub max_keys: Option<u64>,
    /// The scopes a key of this plan may use; none listed = every scope.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub features: Option<Vec<Scope>>,
    #[serde(default)]
    pub price: Option<Price>,
    /// The longest a key of this plan's users may live, in days (1–36500): new and rotated
    /// keys expire no later than that many days after they are made. Existing keys keep
    /// their expiry when it changes.
    #[serde(default)]
    pub max_key_lifetime_days: Option<u32>,
}

/// A named plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PlanObject))]
pub struct Plan {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: PlanName,
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub spec: PlanSpec,
}

/// Why a plan's settings cannot be used; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidPlan {
    pub field: &'static str,
    pub reason: &'static str,
}

const fn invalid(field: &'static str, reason: &'static str) -> InvalidPlan {
    InvalidPlan { field, reason }
}

/// Checks a list of windows (a plan's or a key's own `limits`).
pub fn validate_windows(windows: &[Window]) -> Result<(), InvalidPlan> {
    const LIMITS: &str = "limits";
    for (index, window) in windows.iter().enumerate() {
        if window.window_seconds == 0 || window.window_seconds > 31 * 86_400 {
            return Err(invalid(
                LIMITS,
                "window_seconds must be between 1 and 2678400",
            ));
        }
        if window.max == 0 {
            return Err(invalid(LIMITS, "max must be at least 1"));
        }
        if let Some(name) = &window.name
            && !is_token(name)
        {
            return Err(invalid(
                LIMITS,
                "a window name is 1 to 32 letters, digits, `_` or `-`",
            ));
        }
        let display = window.display_name();
        if windows[..index].iter().any(|other| {
            other.window_seconds == window.window_seconds || other.display_name() == display
        }) {
            return Err(invalid(LIMITS, "window lengths and names must be distinct"));
        }
        if display == "burst" || display == "month" {
            return Err(invalid(
                LIMITS,
                "`burst` and `month` are reserved window names",
            ));
        }
    }
    Ok(())
}

/// A structured-field token we are happy to emit unquoted in headers' keys.
fn is_token(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl PlanSpec {
    pub fn validate(&self) -> Result<(), InvalidPlan> {
        validate_windows(&self.limits)?;
        if let Some(burst) = &self.burst {
            if !(burst.rate_per_second.is_finite() && burst.rate_per_second > 0.0) {
                return Err(invalid(
                    "burst",
                    "rate_per_second must be a positive number",
                ));
            }
            if burst.capacity == 0 {
                return Err(invalid("burst", "capacity must be at least 1"));
            }
        }
        if let Some(days) = self.max_key_lifetime_days
            && !(1..=MAX_KEY_LIFETIME_DAYS).contains(&days)
        {
            return Err(invalid(
                "max_key_lifetime_days",
                "must be between 1 and 36500 (omit it for no limit)",
            ));
        }
        if self.monthly_quota == Some(0) {
            return Err(invalid(
                "monthly_quota",
                "must be at least 1 (omit it for no quota)",
            ));
        }
        if self.max_keys == Some(0) {
            return Err(invalid(
                "max_keys",
                "must be at least 1 (omit it for no cap)",
            ));
        }
        Ok(())
    }
}

/// The plans a new database starts with.
pub fn default_plans() -> Vec<Plan> {
    let plan = |name: &str, minute, hour, day, max_keys| Plan {
        name: PlanName(name.to_owned()),
        spec: PlanSpec {
            limits: vec![
                Window::new(60, minute),
                Window::new(3600, hour),
                Window::new(86_400, day),
            ],
            max_keys,
            ..PlanSpec::default()
        },
    };
    vec![
        plan("free", 60, 1_000, 10_000, Some(5)),
        plan("pro", 600, 20_000, 500_000, Some(50)),
        plan("enterprise", 6_000, 200_000, 10_000_000, None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plans_are_valid_and_as_documented() {
        let plans = default_plans();
        assert_eq!(plans.len(), 3);
        for plan in &plans {
            plan.spec.validate().expect("valid default plan");
        }
        let free = &plans[0].spec;
        assert_eq!(free.limits[0], Window::new(60, 60));
        assert_eq!(free.max_keys, Some(5));
        assert_eq!(plans[2].spec.max_keys, None);
        assert_eq!(plans[2].spec.limits[2].max, 10_000_000);
    }

    #[test]
    fn window_names_default_by_length() {
        assert_eq!(Window::new(60, 1).display_name(), "minute");
        assert_eq!(Window::new(3600, 1).display_name(), "hour");
        assert_eq!(Window::new(86_400, 1).display_name(), "day");
        assert_eq!(Window::new(10, 1).display_name(), "10s");
        let named = Window {
            name: Some("short".into()),
            ..Window::new(10, 1)
        };
        assert_eq!(named.display_name(), "short");
    }

    #[test]
    fn invalid_specs_name_their_field() {
        let duplicate = PlanSpec {
            limits: vec![Window::new(60, 1), Window::new(60, 2)],
            ..PlanSpec::default()
        };
        assert_eq!(duplicate.validate().unwrap_err().field, "limits");
        let zero = PlanSpec {
            limits: vec![Window::new(60, 0)],
            ..PlanSpec::default()
        };
        assert!(zero.validate().is_err());
        let burst = PlanSpec {
            burst: Some(Burst {
                rate_per_second: 0.0,
                capacity: 1,
            }),
            ..PlanSpec::default()
        };
        assert_eq!(burst.validate().unwrap_err().field, "burst");
        assert!(serde_json::from_str::<PlanSpec>(r#"{"limits": [], "bogus": 1}"#).is_err());
    }
}
