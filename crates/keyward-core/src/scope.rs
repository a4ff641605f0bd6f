//! Scopes: free-form permission names chosen by the operator (`read`, `keys:manage`, …).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::string_newtype;

/// A permission a key may carry: 1–64 characters of `[A-Za-z0-9_.:*/-]`, starting with a
/// letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

string_newtype!(
    Scope,
    InvalidScope,
    "a scope is 1 to 64 characters of letters, digits and `_.:*/-`, starting with a letter or digit",
    |value| (1..=64).contains(&value.len())
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:*/-".contains(&b))
);

impl Scope {
    /// The scope that lets a key manage its own user's keys.
    pub const KEYS_MANAGE: &'static str = "keys:manage";
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_grammar() {
        for ok in ["read", "keys:manage", "files/write", "admin.*", "v2-beta_x"] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ":x", "has space", "é", &"a".repeat(65)] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }
}
