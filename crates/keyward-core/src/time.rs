//! Timestamps as keyward writes them: RFC 3339, UTC, whole seconds.

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

/// Formats as every response shows timestamps (`2026-11-22T10:00:00Z`).
pub fn format(value: &DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Why an input time was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("must be an RFC 3339 time such as 2026-11-22T13:05:00Z")]
    Format,
    #[error("must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z once converted to UTC")]
    OutOfRange,
}

/// The earliest instant keyward accepts as input: the Unix epoch.
pub const MIN: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// The latest instant keyward accepts as input. Any later time would need a five-digit year,
/// which neither sorts nor round-trips as the fixed-width text the stores keep.
pub fn max() -> DateTime<Utc> {
    // 9999-12-31T23:59:59Z
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Refuses an instant outside [`MIN`]..=[`max`].
pub fn in_range(at: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    if at < MIN || at > max() {
        Err(TimeError::OutOfRange)
    } else {
        Ok(at)
    }
}

/// Parses any RFC 3339 time into UTC, refusing times outside 1970..=9999 (in UTC): an offset
/// can push `9999-12-31T23:59:59-23:59` into year 10000.
pub fn parse(value: &str) -> Result<DateTime<Utc>, TimeError> {
    let at = DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| TimeError::Format)?;
    in_range(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_converted_to_utc_and_written_in_seconds() {
        let t = parse("2026-11-22T14:05:00.250+01:00").unwrap();
        assert_eq!(format(&t), "2026-11-22T13:05:00Z");
    }

    #[test]
    fn times_outside_1970_to_9999_in_utc_are_refused() {
        assert_eq!(
            parse("9999-12-31T23:59:59-23:59"),
            Err(TimeError::OutOfRange),
            "an offset that pushes the time into year 10000"
        );
        assert_eq!(parse("1969-12-31T23:59:59Z"), Err(TimeError::OutOfRange));
        assert_eq!(
            parse("1970-01-01T00:30:00+01:00"),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(parse("9999-12-31T23:59:59.5Z"), Err(TimeError::OutOfRange));
        assert!(parse("9999-12-31T23:59:59Z").is_ok());
        assert!(parse("1970-01-01T00:00:00Z").is_ok());
        assert_eq!(parse("tomorrow"), Err(TimeError::Format));
    }
}
