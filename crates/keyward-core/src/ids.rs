//! Identifiers, each built only by parsing (or, for new key ids, by generation).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Defines `parse`, `as_str`, `Display`, `FromStr`, transparent `Serialize` and a
/// `Deserialize` that parses, for a string newtype with a validity predicate.
macro_rules! string_newtype {
    ($name:ident, $error:ident, $message:literal, $valid:expr) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
        #[error($message)]
        pub struct $error;

        impl $name {
            pub fn parse(value: &str) -> Result<Self, $error> {
                let valid: fn(&str) -> bool = $valid;
                if valid(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err($error)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = $error;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<str>::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_newtype;

/// A key's id: `key_` followed by a 26-character ULID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

string_newtype!(
    KeyId,
    InvalidKeyId,
    "a key id is `key_` followed by a 26-character ULID",
    |value| value.strip_prefix("key_").is_some_and(
        |ulid| ulid.len() == 26 && Ulid::from_str(ulid).is_ok_and(|u| u.to_string() == ulid)
    )
);

/// A fresh ULID that sorts after every one this process made before, also within one
/// millisecond (one monotonic generator for keys, audit records and events), so "newest
/// first" is exact for records made here.
pub fn monotonic_ulid() -> Ulid {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    generator
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| Ulid::new())
}

impl KeyId {
    /// A fresh id; ids sort by creation time (see [`monotonic_ulid`]).
    pub fn generate() -> Self {
        Self::from_ulid(monotonic_ulid())
    }

    pub fn from_ulid(ulid: Ulid) -> Self {
        Self(format!("key_{ulid}"))
    }

    /// The ULID part (16 bytes: what compact in-memory structures keep).
    pub fn ulid(&self) -> Ulid {
        // A KeyId only exists once `key_` + a canonical ULID parsed.
        Ulid::from_string(&self.0[4..]).unwrap_or_default()
    }
}

/// The caller's own identifier for one of its users: 1–255 chars of `[A-Za-z0-9_.@:+-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

string_newtype!(
    UserId,
    InvalidUserId,
    "a user id is 1 to 255 characters of letters, digits and `_.@:+-`",
    |value| (1..=255).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@:+-".contains(&b))
);

impl UserId {
    /// Which of `shards` sharded maps this user's entries live in (FNV-1a over the id):
    /// the same user always lands in the same shard.
    pub fn shard(&self, shards: usize) -> usize {
        let hash = self.0.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % shards.max(1) as u64) as usize
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_parse_only_in_canonical_form() {
        let id = KeyId::generate();
        assert_eq!(KeyId::parse(id.as_str()), Ok(id.clone()));
        assert!(KeyId::parse(&id.as_str().to_lowercase()).is_err());
        assert!(KeyId::parse("key_").is_err());
        assert!(KeyId::parse("usr_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_err());
        assert!(KeyId::parse("key_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
        assert!(KeyId::parse("key_01ARZ3NDEKTSV4RRFFQ69G5FA").is_err());
        assert_eq!(KeyId::from_ulid(id.ulid()), id);
    }

    #[test]
    fn generated_ids_increase() {
        let ids: Vec<KeyId> = (0..1000).map(|_| KeyId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn user_ids_follow_the_grammar() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("org:42+team_a-b.c").is_ok());
        assert!(UserId::parse(&"a".repeat(255)).is_ok());
        assert!(UserId::parse(&"a".repeat(256)).is_err());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a/b").is_err());
        assert!(serde_json::from_str::<UserId>("\"a b\"").is_err());
    }
}
