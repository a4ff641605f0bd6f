//! Reading `serve`'s settings one by one: a number within its range, a duration within its
//! bounds — with the same message whether the value came from a flag, the environment or
//! the configuration file — and the dashboard's group of settings.

use std::time::Duration;

use keyward_server::config::UiSettings;

use crate::cli::ServeArgs;
use crate::error::{CliError, CliResult};

/// A number from a flag, its environment variable or the config file (`value`), else
/// `default`; outside `range` it is refused with the same message whatever its source.
pub(super) fn ranged<T>(
    setting: &str,
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> CliResult<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    match value {
        None => Ok(default),
        Some(value) if range.contains(&value) => Ok(value),
        Some(value) => Err(out_of_range(
            setting,
            value,
            &format!("{} to {}", range.start(), range.end()),
        )),
    }
}

/// The one message for a setting outside its range, whatever its source.
pub(super) fn out_of_range(setting: &str, value: impl std::fmt::Display, range: &str) -> CliError {
    CliError::usage(format!(
        "{setting} must be {range} (got {value}); set by the flag, its KEYWARD_ environment variable or the config file"
    ))
}

/// The dashboard's and the portal's sessions and links.
pub(super) fn ui_settings(args: &ServeArgs, defaults: &UiSettings) -> CliResult<UiSettings> {
    let bounded = |setting: &str, raw: Option<&str>, default: Duration, most: u64, range: &str| {
        duration_in(
            setting,
            raw,
            default,
            (Duration::from_secs(60), Duration::from_secs(most)),
            range,
        )
    };
    let public_url = args
        .public_url
        .as_deref()
        .map(|raw| {
            UiSettings::public_url(raw)
                .map_err(|why| CliError::usage(format!("--public-url: `{raw}` {why}")))
        })
        .transpose()?;
    Ok(UiSettings {
        session_idle: bounded(
            "--ui-session-idle",
            args.ui_session_idle.as_deref(),
            defaults.session_idle,
            86_400,
            "between 1m and 24h",
        )?,
        session_max: bounded(
            "--ui-session-max",
            args.ui_session_max.as_deref(),
            defaults.session_max,
            7 * 86_400,
            "between 1m and 7d",
        )?,
        portal_link_ttl: duration_in(
            "--portal-link-ttl",
            args.portal_link_ttl.as_deref(),
            defaults.portal_link_ttl,
            (Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
            "between 1s and 7d",
        )?,
        public_url: public_url.or_else(|| defaults.public_url.clone()),
    })
}

/// A duration setting: humantime (`90s`, `10m`) or whole seconds, from 1 second to 1 day.
pub(super) fn duration_setting(
    setting: &str,
    raw: Option<&str>,
    default: Duration,
) -> CliResult<Duration> {
    duration_in(
        setting,
        raw,
        default,
        (Duration::from_secs(1), Duration::from_secs(86_400)),
        "between 1s and 24h",
    )
}

/// A duration setting (humantime such as `200ms`, `90s`, or whole seconds) within `bounds`.
pub(super) fn duration_in(
    setting: &str,
    raw: Option<&str>,
    default: Duration,
    (least, most): (Duration, Duration),
    range: &str,
) -> CliResult<Duration> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(raw).map_err(|_| {
            CliError::usage(format!(
                "{setting}: `{raw}` is not a duration; try 10s, 2m or a number of seconds"
            ))
        })?,
    };
    if parsed < least || parsed > most {
        return Err(out_of_range(setting, raw, range));
    }
    Ok(parsed)
}
