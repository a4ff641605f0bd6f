//! Timestamps as the contract writes them: RFC 3339, UTC, whole seconds.

use chrono::{DateTime, SecondsFormat, Utc};

/// Serde helpers for `DateTime<Utc>` fields: written as `2026-11-22T13:05:00Z`, read from any
/// RFC 3339 time.
pub mod rfc3339 {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let raw = std::borrow::Cow::<str>::deserialize(deserializer)?;
        parse(&raw).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<DateTime<Utc>>` (null when absent).
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            value: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => serializer.serialize_str(&format(value)),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?
                .map(|raw| parse(&raw).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// Formats as the contract shows timestamps.
pub fn format(value: &DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses any RFC 3339 time into UTC.
pub fn parse(value: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_converted_to_utc_and_written_in_seconds() {
        let t = parse("2026-11-22T14:05:00.250+01:00").unwrap();
        assert_eq!(format(&t), "2026-11-22T13:05:00Z");
    }
}
