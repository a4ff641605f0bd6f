//! The API key format: `{prefix}_{body}` where the body is 43 base62
//! digits of 32 CSPRNG bytes followed by 6 base62 digits of CRC-32 over everything before.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::base62;

/// Length of the random part of the body.
const RANDOM_DIGITS: usize = base62::DIGITS_FOR_32_BYTES;
/// Length of the checksum part of the body.
const CHECKSUM_DIGITS: usize = 6;
/// Length of the whole body (random part + checksum).
pub const BODY_LEN: usize = RANDOM_DIGITS + CHECKSUM_DIGITS;
/// Body characters shown in a key's display prefix.
const HINT_DIGITS: usize = 4;
/// 2^256 - 1 in 43 base62 digits: the largest random part a key can have.
const MAX_RANDOM_DIGITS: &[u8; RANDOM_DIGITS] = b"yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1";
/// Longest string accepted as a foreign (imported) key; anything longer is rejected unread.
const FOREIGN_MAX_LEN: usize = 512;

/// Why a presented string is not a usable key. Every variant is decided without I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key is malformed")]
    Malformed,
    #[error("the key's checksum does not match")]
    BadChecksum,
}

/// The environment a key belongs to. `test` keys are limited like any other but count toward
/// neither quota nor billing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Live,
    Test,
}

impl Environment {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    pub fn parse(value: &str) -> Result<Self, InvalidEnvironment> {
        match value {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            _ => Err(InvalidEnvironment),
        }
    }

    /// The prefix a key of this environment gets when the caller names none.
    pub fn default_prefix(self) -> KeyPrefix {
        KeyPrefix(format!("sk_{}", self.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("environment must be `live` or `test`")]
pub struct InvalidEnvironment;

/// A key prefix such as `sk_live`: `^[a-z][a-z0-9]{0,11}(_[a-z0-9]{1,11})?$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyPrefix(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "prefix must be a lowercase letter, up to 11 lowercase letters or digits, and optionally `_` and 1 to 11 more"
)]
pub struct InvalidKeyPrefix;

impl KeyPrefix {
    pub fn parse(value: &str) -> Result<Self, InvalidKeyPrefix> {
        if is_valid_prefix(value.as_bytes()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidKeyPrefix)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `_`-separated segments of the prefix (one or two).
    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('_')
    }

    /// Whether a user key may carry this prefix in `environment`: the first segment
    /// `kwadm` belongs to admin keys, and a prefix never claims the other environment
    /// (a `test` key's segments are never `live` or `prod`; a `live` key's never `test`), so
    /// what a key looks like downstream is what it is.
    pub fn check_user_key(&self, environment: Environment) -> Result<(), PrefixNotAllowed> {
        if self.segments().next() == Some(ADMIN_KEY_PREFIX) {
            return Err(PrefixNotAllowed::Reserved);
        }
        let claims_other = self.segments().any(|segment| match environment {
            Environment::Test => segment == "live" || segment == "prod",
            Environment::Live => segment == "test",
        });
        if claims_other {
            return Err(PrefixNotAllowed::OtherEnvironment(environment));
        }
        Ok(())
    }
}

/// The prefix of admin keys; never a user key's.
pub const ADMIN_KEY_PREFIX: &str = "kwadm";

/// Why a well-formed prefix cannot be used for a user key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixNotAllowed {
    #[error("the prefix `kwadm` is reserved for admin keys")]
    Reserved,
    #[error("a {} key's prefix must not name another environment (`live`, `prod` or `test`)", .0.as_str())]
    OtherEnvironment(Environment),
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn is_lower_alnum(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

fn is_valid_prefix(bytes: &[u8]) -> bool {
    let (head, tail) = match bytes.iter().position(|&b| b == b'_') {
        Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
        None => (bytes, None),
    };
    let head_ok = matches!(head.first(), Some(b) if b.is_ascii_lowercase())
        && head.len() <= 12
        && head.iter().copied().all(is_lower_alnum);
    let tail_ok = match tail {
        None => true,
        Some(tail) => (1..=11).contains(&tail.len()) && tail.iter().copied().all(is_lower_alnum),
    };
    head_ok && tail_ok
}

/// The SHA-256 of a key: all the store ever holds of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key hash is 64 hexadecimal characters")]
pub struct InvalidKeyHash;

impl KeyHash {
    /// Hashes any presented key string (keyward's own or an imported one).
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_hex(value: &str) -> Result<Self, InvalidKeyHash> {
        let mut bytes = [0u8; 32];
        if value.len() != 64 {
            return Err(InvalidKeyHash);
        }
        hex::decode_to_slice(value, &mut bytes).map_err(|_| InvalidKeyHash)?;
        Ok(Self(bytes))
    }

    /// Lowercase hex, the form stored in the database.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

/// A keyward API key in plaintext. It exists only at creation (to be shown once) and while a
/// presented key is verified. `Debug`, `Display` and `Serialize` print a redacted form; the
/// memory is zeroized on drop. The only way to the secret is [`PlainKey::expose_secret`].
#[derive(Clone)]
pub struct PlainKey {
    text: Zeroizing<String>,
    /// Byte offset of the last `_` (the end of the prefix).
    split: usize,
}

impl PlainKey {
    /// A new key from the operating system's CSPRNG.
    pub fn generate(prefix: &KeyPrefix) -> Result<Self, rand::rand_core::OsError> {
        Self::generate_with(prefix, &mut OsRng)
    }

    /// A new key whose 32 random bytes come from `rng` (tests inject a deterministic one).
    pub fn generate_with<R: TryRngCore + ?Sized>(
        prefix: &KeyPrefix,
        rng: &mut R,
    ) -> Result<Self, R::Error> {
        let mut random = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(random.as_mut())?;
        Ok(Self::from_random_bytes(prefix, &random))
    }

    fn from_random_bytes(prefix: &KeyPrefix, random: &[u8; 32]) -> Self {
        let prefix = prefix.as_str();
        let mut text = Zeroizing::new(String::with_capacity(prefix.len() + 1 + BODY_LEN));
        text.push_str(prefix);
        text.push('_');
        let mut digits = Zeroizing::new([0u8; RANDOM_DIGITS]);
        // 62^43 > 2^256, so 32 bytes always fit.
        let fits = base62::encode_into(random, digits.as_mut());
        debug_assert!(fits);
        text.extend(digits.iter().map(|&d| char::from(d)));
        let checksum = base62::encode_u32(crc32fast::hash(text.as_bytes()));
        text.extend(checksum.iter().map(|&d| char::from(d)));
        Self {
            text,
            split: prefix.len(),
        }
    }

    /// Parses a string in keyward's format, checking the checksum. No I/O.
    pub fn parse(value: &str) -> Result<Self, KeyFormatError> {
        let split = value.rfind('_').ok_or(KeyFormatError::Malformed)?;
        let (prefix, body) = (&value.as_bytes()[..split], &value.as_bytes()[split + 1..]);
        if body.len() != BODY_LEN
            || !is_valid_prefix(prefix)
            || !body.iter().all(|&b| base62::digit_value(b).is_some())
        {
            return Err(KeyFormatError::Malformed);
        }
        let (signed, checksum) = value.as_bytes().split_at(value.len() - CHECKSUM_DIGITS);
        if base62::encode_u32(crc32fast::hash(signed)) != checksum {
            return Err(KeyFormatError::BadChecksum);
        }
        // Fixed-width base62 in ASCII digit order compares like the numbers it writes, so
        // this rejects a body above 2^256 - 1 without decoding it.
        if &body[..RANDOM_DIGITS] > MAX_RANDOM_DIGITS.as_slice() {
            return Err(KeyFormatError::Malformed);
        }
        Ok(Self {
            text: Zeroizing::new(value.to_owned()),
            split,
        })
    }

    /// Whether this is an admin key (`kwadm_…`).
    pub fn is_admin_key(&self) -> bool {
        self.prefix() == ADMIN_KEY_PREFIX
    }

    /// The secret itself. Call it only to hand the key to the user who created it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.text)
    }

    /// The prefix part, e.g. `sk_live`.
    pub fn prefix(&self) -> &str {
        &self.text[..self.split]
    }

    /// The prefix part as a [`KeyPrefix`] (always valid: it parsed or was generated).
    pub fn key_prefix(&self) -> KeyPrefix {
        KeyPrefix(self.prefix().to_owned())
    }

    /// What may be shown of the key: prefix, `_`, the first 4 body characters and `…`.
    pub fn display_prefix(&self) -> String {
        format!("{}…", &self.text[..self.split + 1 + HINT_DIGITS])
    }

    /// The 32 random bytes the body encodes.
    pub fn random_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut random = Zeroizing::new([0u8; 32]);
        let start = self.split + 1;
        let decoded = base62::decode_into(
            &self.text.as_bytes()[start..start + RANDOM_DIGITS],
            random.as_mut(),
        );
        debug_assert!(decoded, "a PlainKey always holds a decodable body");
        random
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey([REDACTED])")
    }
}

impl fmt::Display for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Serializing a key by accident leaks nothing; responses that must carry the plaintext
/// copy [`PlainKey::expose_secret`] into their own field deliberately.
impl Serialize for PlainKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[REDACTED]")
    }
}

/// A presented key that is not in keyward's format: a key imported from another system,
/// known only by its SHA-256. Redacted and zeroized like [`PlainKey`].
pub struct ForeignKey(Zeroizing<String>);

impl ForeignKey {
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

impl fmt::Debug for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignKey([REDACTED])")
    }
}

/// What a presented credential turned out to be, decided without I/O.
#[derive(Debug)]
pub enum PresentedKey {
    /// In keyward's format with a valid checksum.
    Native(PlainKey),
    /// Not in keyward's format; worth a lookup only if the store holds imported keys.
    Foreign(ForeignKey),
}

impl PresentedKey {
    /// Classifies a presented string. A string shaped like a keyward key with a bad checksum
    /// is an error (`INVALID` with no I/O), as is anything empty, over 512 bytes
    /// or outside visible ASCII.
    pub fn classify(value: &str) -> Result<Self, KeyFormatError> {
        // An admin key is never a user key: refused before any lookup.
        if value
            .strip_prefix(ADMIN_KEY_PREFIX)
            .is_some_and(|rest| rest.starts_with('_'))
        {
            return Err(KeyFormatError::Malformed);
        }
        match PlainKey::parse(value) {
            Ok(key) => Ok(Self::Native(key)),
            Err(KeyFormatError::BadChecksum) => Err(KeyFormatError::BadChecksum),
            Err(KeyFormatError::Malformed) if looks_native(value) => Err(KeyFormatError::Malformed),
            Err(KeyFormatError::Malformed) => {
                if value.is_empty()
                    || value.len() > FOREIGN_MAX_LEN
                    || !value.bytes().all(|b| b.is_ascii_graphic())
                {
                    Err(KeyFormatError::Malformed)
                } else {
                    Ok(Self::Foreign(ForeignKey(Zeroizing::new(value.to_owned()))))
                }
            }
        }
    }

    pub fn hash(&self) -> KeyHash {
        match self {
            Self::Native(key) => key.hash(),
            Self::Foreign(key) => key.hash(),
        }
    }
}

/// True for a string with a valid prefix and a 49-character base62 body (whatever its
/// checksum or value): such a string can only ever be a keyward key.
fn looks_native(value: &str) -> bool {
    value.rfind('_').is_some_and(|split| {
        let body = &value.as_bytes()[split + 1..];
        body.len() == BODY_LEN
            && is_valid_prefix(&value.as_bytes()[..split])
            && body.iter().all(|&b| base62::digit_value(b).is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_never_claim_the_other_environment_or_the_admin_prefix() {
        let prefix = |p: &str| KeyPrefix::parse(p).unwrap();
        assert!(prefix("sk_live").check_user_key(Environment::Live).is_ok());
        assert!(prefix("sk_test").check_user_key(Environment::Test).is_ok());
        assert!(prefix("acme").check_user_key(Environment::Test).is_ok());
        assert!(prefix("live").check_user_key(Environment::Live).is_ok());
        for (p, env) in [
            ("sk_live", Environment::Test),
            ("prod", Environment::Test),
            ("acme_prod", Environment::Test),
            ("sk_test", Environment::Live),
            ("test_x", Environment::Live),
        ] {
            assert_eq!(
                prefix(p).check_user_key(env),
                Err(PrefixNotAllowed::OtherEnvironment(env)),
                "{p}"
            );
        }
        assert_eq!(
            prefix("kwadm").check_user_key(Environment::Live),
            Err(PrefixNotAllowed::Reserved)
        );
        assert_eq!(
            prefix("kwadm_x").check_user_key(Environment::Live),
            Err(PrefixNotAllowed::Reserved)
        );
    }

    #[test]
    fn admin_keys_are_never_user_keys() {
        let admin = PlainKey::generate(&KeyPrefix::parse("kwadm").unwrap()).unwrap();
        assert!(PlainKey::parse(admin.expose_secret()).is_ok());
        assert!(matches!(
            PresentedKey::classify(admin.expose_secret()),
            Err(KeyFormatError::Malformed)
        ));
    }

    #[test]
    fn the_largest_random_part_is_the_encoding_of_all_ones() {
        let mut digits = [0u8; RANDOM_DIGITS];
        assert!(base62::encode_into(&[0xff; 32], &mut digits));
        assert_eq!(&digits, MAX_RANDOM_DIGITS);
    }
}
