//! `keyward keys create|list|show|revoke|rotate`.

use chrono::{Duration, Utc};
use keyward_core::{Environment, KeyId, KeyName, KeyPrefix, PlainKey, PlanName, UserId};
use keyward_store::{
    Actor, KeyFilter, KeyPatch, KeyRecord, KeySpec, PageRequest, Rotation, UserProfile, issue_key,
    rotate_key,
};
use serde_json::{Value, json};

use super::{Context, named_not_found, pages, parse_arg, parse_meta, print_next_page};
use crate::cli::{CreateKeyArgs, EnvironmentArg, KeysCommand, PageArgs, UpdateKeyArgs};
use crate::error::{CliError, CliResult};
use crate::output;
use crate::output::outln;
use keyward_server::routes::keys::{ips_field, rate_field, scopes_field};
use keyward_server::views::KeyObject;

pub async fn run(context: &Context, command: KeysCommand) -> CliResult {
    match command {
        KeysCommand::Create(args) => create(context, args).await,
        KeysCommand::List {
            user_id,
            include_inactive,
            page,
        } => list(context, user_id, include_inactive, &page).await,
        KeysCommand::Update(args) => update(context, args).await,
        KeysCommand::Show {
            key_id: Some(key_id),
            ..
        } => {
            let id = key_id_arg(&key_id)?;
            let key = context
                .store
                .get_key(&id)
                .await
                .map_err(|e| named_not_found(e, "key", &key_id))?;
            print_key(context, &key)
        }
        KeysCommand::Show { key_id: None, .. } => {
            let hash = hash_from_stdin()?;
            let key = context.store.lookup(&hash).await?.ok_or_else(|| {
                CliError::failure("no key of this database matches the key read from stdin")
            })?;
            print_key(context, &key)
        }
        KeysCommand::Disable { key_id } => set_enabled(context, &key_id, false).await,
        KeysCommand::Enable { key_id } => set_enabled(context, &key_id, true).await,
        KeysCommand::Revoke { key_id, yes } => {
            let id = key_id_arg(&key_id)?;
            output::confirm(
                &format!("Revoke key {id}? It stops working on every node and cannot be restored."),
                yes,
            )?;
            let key = context
                .store
                .revoke_key(&id, &Actor::cli())
                .await
                .map_err(|e| named_not_found(e, "key", &key_id))?;
            print_key(context, &key)
        }
        KeysCommand::Rotate {
            key_id,
            grace_period,
            expires_in_days,
        } => rotate(context, &key_id, &grace_period, expires_in_days).await,
        KeysCommand::Usage { key_id, days } => {
            let id = key_id_arg(&key_id)?;
            super::usage::key(context, &id, days).await
        }
    }
}

/// A key id argument. A malformed id names no key, so it is "not found" (exit 1), as an
/// unknown id is, and as the API answers 404 for both.
fn key_id_arg(value: &str) -> CliResult<KeyId> {
    KeyId::parse(value).map_err(|_| CliError::failure(format!("key `{value}` not found")))
}

async fn create(context: &Context, args: CreateKeyArgs) -> CliResult {
    let user_id = parse_arg("--user-id", &args.user_id, UserId::parse)?;
    let name = parse_arg("--name", &args.name, KeyName::parse)?;
    let mut spec = KeySpec::new(user_id, name.into_inner());
    spec.environment = match args.environment {
        EnvironmentArg::Live => Environment::Live,
        EnvironmentArg::Test => Environment::Test,
    };
    spec.prefix = args
        .prefix
        .as_deref()
        .map(|p| parse_arg("--prefix", p, KeyPrefix::parse))
        .transpose()?;
    if let Some(prefix) = &spec.prefix {
        prefix
            .check_user_key(spec.environment)
            .map_err(|error| CliError::usage(format!("--prefix: {error}")))?;
    }
    spec.plan = args
        .plan
        .as_deref()
        .map(|p| parse_arg("--plan", p, PlanName::parse))
        .transpose()?;
    spec.expires_at = args
        .expires_in_days
        .map(|days| Utc::now() + Duration::days(i64::from(days)));
    spec.rate_limit_per_hour = args
        .rate_limit_per_hour
        .map(|rate| api_rule("--rate-limit-per-hour", rate_field(rate)))
        .transpose()?;
    spec.scopes = api_rule("--scope", scopes_field(&args.scopes))?;
    if !args.allow_ips.is_empty() {
        spec.allowed_ips = Some(api_rule("--allow-ip", ips_field(&args.allow_ips))?);
    }
    spec.metadata = parse_meta(&args.meta)?;
    for (field, value) in [("email", &args.email), ("company", &args.company)] {
        if let Some(value) = value {
            spec.metadata
                .insert(field.to_owned(), Value::String(value.clone()));
        }
    }
    spec.new_user = UserProfile {
        email: args.email,
        company: args.company,
        ..UserProfile::default()
    };

    let (plain, key) = issue_key(&*context.store, &spec, &Actor::cli()).await?;
    print_new_key(context, &plain, &key, None)
}

/// A value checked by the same rule the API applies, refused as a usage error naming the
/// option (the rule's message without the API's field name).
fn api_rule<T>(option: &str, checked: keyward_server::error::ApiResult<T>) -> CliResult<T> {
    checked.map_err(|error| {
        let message = error.to_string();
        let reason = message
            .split_once(": ")
            .map_or(message.as_str(), |(_, r)| r);
        CliError::usage(format!("{option}: {reason}"))
    })
}

/// Names the key in a not-found error.
/// Accepts a CIDR or a single address (as a /32 or /128).
pub fn parse_cidr(value: &str) -> Result<ipnet::IpNet, String> {
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{value}` is not an IP address or CIDR range"))
}

/// Prints a freshly issued key: its plaintext exactly once.
fn print_new_key(
    context: &Context,
    plain: &PlainKey,
    key: &KeyRecord,
    old: Option<&KeyRecord>,
) -> CliResult {
    eprintln!("warning: store this key now; it cannot be shown again.");
    let now = Utc::now();
    if context.json {
        let mut new = serde_json::to_value(KeyObject::of(key, now))
            .map_err(|e| CliError::failure(e.to_string()))?;
        new["key"] = Value::String(plain.expose_secret().to_owned());
        return match old {
            Some(old) => {
                output::json_secret(&json!({"key": new, "old_key": KeyObject::of(old, now)}))
            }
            None => output::json_secret(&new),
        };
    }
    // Written at once, the key last: if any of it cannot be written, the command fails.
    let replaces = old.map_or_else(String::new, |old| {
        format!(
            "\nreplaces {} ({}), which stops working at {}\n",
            old.id,
            old.key_prefix,
            output::time(old.expires_at)
        )
    });
    output::secret_line(format_args!(
        "{}\n{replaces}\n{}",
        output::escape_nonprintable(&key_fields(key).to_string()),
        plain.expose_secret()
    ))
}

async fn list(
    context: &Context,
    user_id: Option<String>,
    include_inactive: bool,
    paging: &PageArgs,
) -> CliResult {
    let user_id = user_id
        .as_deref()
        .map(|u| parse_arg("--user-id", u, UserId::parse))
        .transpose()?;
    let page = pages(paging, |page: PageRequest| {
        let filter = KeyFilter {
            user_id: user_id.clone(),
            include_inactive,
            page,
            ..KeyFilter::default()
        };
        async move { context.store.list_keys(&filter).await }
    })
    .await?;
    let keys = page.items;
    let now = Utc::now();
    if context.json {
        let views: Vec<_> = keys.iter().map(|k| KeyObject::of(k, now)).collect();
        return output::json(&json!({"keys": views, "next_cursor": page.next_cursor}));
    }
    let mut table = output::table([
        "ID",
        "PREFIX",
        "USER",
        "NAME",
        "ENV",
        "PLAN",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    for key in &keys {
        table.add_row([
            key.id.to_string(),
            key.key_prefix.clone(),
            key.user_id.to_string(),
            key.name.clone(),
            key.environment.as_str().to_owned(),
            key.effective_plan().to_string(),
            key.status(now).as_str().to_owned(),
            output::time(Some(key.created_at)),
            output::time(key.expires_at),
            output::time(key.last_used_at),
        ]);
    }
    output::print_table(&table);
    if keys.is_empty() {
        outln!("no keys");
    }
    print_next_page(page.next_cursor.as_deref());
    Ok(())
}

/// `keys update`: the changes given, as `PATCH /v1/keys/{id}` by an admin.
async fn update(context: &Context, args: UpdateKeyArgs) -> CliResult {
    let id = key_id_arg(&args.key_id)?;
    let mut patch = KeyPatch {
        name: args
            .name
            .as_deref()
            .map(|n| parse_arg("--name", n, KeyName::parse).map(KeyName::into_inner))
            .transpose()?,
        ..KeyPatch::default()
    };
    if args.clear_scopes {
        patch.scopes = Some(Vec::new());
    } else if !args.scopes.is_empty() {
        patch.scopes = Some(api_rule("--scope", scopes_field(&args.scopes))?);
    }
    if args.any_ip {
        patch.allowed_ips = Some(None);
    } else if !args.allow_ips.is_empty() {
        patch.allowed_ips = Some(Some(api_rule("--allow-ip", ips_field(&args.allow_ips))?));
    }
    let mut metadata = parse_meta(&args.meta)?;
    for name in &args.remove_meta {
        if metadata.insert(name.clone(), Value::Null).is_some() {
            return Err(CliError::usage(format!(
                "--meta and --remove-meta both name `{name}`"
            )));
        }
    }
    if !metadata.is_empty() {
        patch.metadata = Some(metadata);
    }
    if args.no_expiry {
        patch.expires_at = Some(None);
    } else if let Some(days) = args.expires_in_days {
        patch.expires_at = Some(Some(Utc::now() + Duration::days(i64::from(days))));
    }
    if args.user_plan {
        patch.plan = Some(None);
    } else if let Some(plan) = &args.plan {
        patch.plan = Some(Some(parse_arg("--plan", plan, PlanName::parse)?));
    }
    patch.rate_limit_per_hour = args
        .rate_limit_per_hour
        .map(|rate| api_rule("--rate-limit-per-hour", rate_field(rate)).map(Some))
        .transpose()?;
    if patch == KeyPatch::default() {
        return Err(CliError::usage(
            "nothing to change: give at least one option (see `keyward keys update --help`)",
        ));
    }
    let key = context
        .store
        .update_key(&id, &patch, &Actor::cli())
        .await
        .map_err(|e| named_not_found(e, "key", &args.key_id))?;
    print_key(context, &key)
}

fn print_key(context: &Context, key: &KeyRecord) -> CliResult {
    if context.json {
        return output::json(&KeyObject::of(key, Utc::now()));
    }
    output::print_table(&key_fields(key));
    Ok(())
}

fn key_fields(key: &KeyRecord) -> comfy_table::Table {
    let now = Utc::now();
    output::fields(&[
        ("id", key.id.to_string()),
        ("key prefix", key.key_prefix.clone()),
        ("user", key.user_id.to_string()),
        ("name", key.name.clone()),
        ("environment", key.environment.as_str().to_owned()),
        (
            "plan",
            format!(
                "{}{}",
                key.effective_plan(),
                if key.plan.is_some() {
                    " (key override)"
                } else {
                    ""
                }
            ),
        ),
        ("status", key.status(now).as_str().to_owned()),
        ("created", output::time(Some(key.created_at))),
        ("expires", output::time(key.expires_at)),
        ("last used", output::time(key.last_used_at)),
        ("requests", key.request_count.to_string()),
        ("scopes", output::list(&key.scopes)),
        (
            "allowed ips",
            key.allowed_ips
                .as_deref()
                .map_or_else(|| "any".to_owned(), output::list),
        ),
        ("rate limit/hour", output::or_dash(key.rate_limit_per_hour)),
        ("replaced by", output::or_dash(key.replaced_by.as_ref())),
        ("metadata", Value::Object(key.metadata.clone()).to_string()),
    ])
}

async fn rotate(
    context: &Context,
    key_id: &str,
    grace: &str,
    expires_in_days: Option<u32>,
) -> CliResult {
    let id = key_id_arg(key_id)?;
    let grace = parse_grace(grace)?;
    let rotation = Rotation {
        grace,
        expires_at: expires_in_days.map(|days| Utc::now() + Duration::days(i64::from(days))),
        if_unchanged_since: None,
    };
    let (plain, new, old) = rotate_key(&*context.store, &id, &rotation, &Actor::cli())
        .await
        .map_err(|e| named_not_found(e, "key", key_id))?;
    print_new_key(context, &plain, &new, Some(&old))
}

async fn set_enabled(context: &Context, key_id: &str, enabled: bool) -> CliResult {
    let id = key_id_arg(key_id)?;
    let patch = KeyPatch {
        enabled: Some(enabled),
        ..KeyPatch::default()
    };
    let key = context
        .store
        .update_key(&id, &patch, &Actor::cli())
        .await
        .map_err(|e| named_not_found(e, "key", key_id))?;
    print_key(context, &key)
}

/// The SHA-256 of a key read from stdin (its first line, surrounding blanks removed). The
/// plaintext is dropped at once and never printed, not even in an error.
fn hash_from_stdin() -> CliResult<keyward_core::KeyHash> {
    use std::io::{BufRead, Read};
    // A key is well under 1 KiB: read no more than this, whatever is piped in.
    const MOST: u64 = 4096;
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .take(MOST + 1)
        .read_line(&mut line)
        .map_err(|error| CliError::failure(format!("cannot read a key from stdin: {error}")))?;
    if line.len() as u64 > MOST {
        return Err(CliError::usage(
            "--from-stdin: the first line is longer than any key (4096 bytes)",
        ));
    }
    let key = line.trim();
    if key.is_empty() {
        return Err(CliError::usage("--from-stdin: stdin holds no key"));
    }
    Ok(keyward_core::KeyHash::of(key))
}

/// `0` or a duration with its unit (`90s`, `24h`, `7d`), at most 30 days. A bare number
/// other than 0 is refused: `24` could mean hours as easily as seconds.
fn parse_grace(value: &str) -> CliResult<Duration> {
    let value = value.trim();
    let seconds = match value.parse::<u64>() {
        Ok(0) => 0,
        Ok(number) => {
            return Err(CliError::usage(format!(
                "--grace-period: `{number}` has no unit; write {number}h for hours or {number}s for seconds (or 7d, 90m)"
            )));
        }
        Err(_) => humantime::parse_duration(value)
            .map_err(|error| {
                CliError::usage(format!(
                    "--grace-period: `{value}` is not a duration ({error}); try 0, 90s, 24h or 7d"
                ))
            })?
            .as_secs(),
    };
    match i64::try_from(seconds) {
        Ok(seconds) if seconds <= keyward_core::MAX_GRACE_SECONDS as i64 => {
            Ok(Duration::seconds(seconds))
        }
        _ => Err(CliError::usage("--grace-period must be at most 30 days")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_accept_the_documented_forms() {
        assert_eq!(parse_grace("0").unwrap(), Duration::zero());
        assert_eq!(parse_grace("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_grace("24h").unwrap(), Duration::hours(24));
        assert_eq!(parse_grace("7d").unwrap(), Duration::days(7));
        assert!(parse_grace("31d").is_err());
        assert!(parse_grace("soon").is_err());
        let bare = parse_grace("24").unwrap_err().to_string();
        assert!(bare.contains("24h") && bare.contains("24s"), "{bare}");
    }

    #[test]
    fn single_addresses_are_accepted_as_host_ranges() {
        assert_eq!(parse_cidr("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(
            parse_cidr("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
