//! What a user's own key may do through the management API. The rule behind every check
//! here: self-service only narrows what an admin set, and a key it makes or rotates is never
//! more than the caller itself.
//!
//! The checks are pure: handlers fetch what they need (the target key, who disabled it),
//! validate the input (422) and only then ask these functions (403).

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::{Environment, Scope};
use keyward_store::{KeyPatch, KeyRecord, KeySpec, Metadata, merge_metadata};

use crate::error::{ApiError, ApiResult};
use crate::verifier::CachedKey;

fn forbidden(field: &str, why: &str) -> ApiError {
    ApiError::Forbidden(format!("`{field}`: {why}"))
}

/// Every network of `inner` lies inside one network of `outer`.
pub fn networks_inside(inner: &[IpNet], outer: &[IpNet]) -> bool {
    inner
        .iter()
        .all(|net| outer.iter().any(|allowed| allowed.contains(net)))
}

/// A `test` key acts only on `test` keys.
pub fn check_environment(caller: &CachedKey, target: Environment) -> ApiResult<()> {
    if caller.environment == Environment::Test && target != Environment::Test {
        return Err(forbidden(
            "environment",
            "a test key acts only on test keys",
        ));
    }
    Ok(())
}

/// A key created by self-service inherits the caller's restrictions: its environment (a
/// `test` caller makes `test` keys), allowed networks, expiry, plan override, limits and
/// hourly rate, and a non-empty subset of its scopes.
pub fn restrict_new_key(
    caller: &CachedKey,
    spec: &mut KeySpec,
    environment_given: bool,
    expiry_field: &str,
) -> ApiResult<()> {
    if caller.environment == Environment::Test {
        if environment_given && spec.environment != Environment::Test {
            return Err(forbidden(
                "environment",
                "a test key creates only test keys",
            ));
        }
        spec.environment = Environment::Test;
    }
    if let Some(own) = &caller.allowed_ips {
        match &spec.allowed_ips {
            None => spec.allowed_ips = Some(own.to_vec()),
            Some(given) if !networks_inside(given, own) => {
                return Err(forbidden(
                    "allowed_ips",
                    "every network must lie inside one of the calling key's",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(own) = caller.expires_at {
        match spec.expires_at {
            None => spec.expires_at = Some(own),
            Some(given) if given > own => {
                return Err(forbidden(
                    expiry_field,
                    "the new key must not expire later than the calling key",
                ));
            }
            Some(_) => {}
        }
    }
    spec.plan.clone_from(&caller.plan);
    spec.limits = caller.limits.as_deref().map(<[_]>::to_vec);
    spec.rate_limit_per_hour = caller.rate_limit_per_hour;
    Ok(())
}

/// The scopes of a key a scoped caller creates: omitted copies the caller's; otherwise a
/// non-empty subset of them.
pub fn new_key_scopes(caller: &CachedKey, requested: Option<Vec<Scope>>) -> ApiResult<Vec<Scope>> {
    if caller.scopes.is_empty() {
        return Ok(requested.unwrap_or_default());
    }
    let scopes = requested.unwrap_or_else(|| caller.scopes.to_vec());
    if scopes.is_empty() || scopes.iter().any(|s| !caller.scopes.contains(s)) {
        return Err(forbidden(
            "scopes",
            "a key may only create keys with a non-empty subset of its own scopes",
        ));
    }
    Ok(scopes)
}

/// Whether a change of `target` by its user's own key only narrows it. `disabled_by_own_user`:
/// the key was disabled by a key of the same user or its portal (so the user may enable it).
pub fn check_patch(
    caller: &CachedKey,
    target: &KeyRecord,
    patch: &KeyPatch,
    disabled_by_own_user: bool,
) -> ApiResult<()> {
    check_environment(caller, target.environment)?;
    if patch.enabled == Some(true) && !target.enabled && !disabled_by_own_user {
        return Err(forbidden(
            "enabled",
            "only an admin may enable a key an admin disabled",
        ));
    }
    if let Some(expires_at) = patch.expires_at
        && expires_at != target.expires_at
    {
        let narrows = match (expires_at, target.expires_at) {
            (Some(new), Some(current)) => new <= current,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !narrows {
            return Err(forbidden(
                "expires_at",
                "may be set or moved earlier, never cleared or moved later",
            ));
        }
    }
    if let Some(allowed_ips) = &patch.allowed_ips
        && *allowed_ips != target.allowed_ips
    {
        let narrows = match (allowed_ips, &target.allowed_ips) {
            (Some(new), Some(current)) => networks_inside(new, current),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if !narrows {
            return Err(forbidden(
                "allowed_ips",
                "may be set, or replaced by networks inside the current ones, never widened or cleared",
            ));
        }
    }
    if let Some(scopes) = &patch.scopes
        && *scopes != target.scopes
    {
        let narrows = !scopes.is_empty()
            && (target.scopes.is_empty() || scopes.iter().all(|s| target.scopes.contains(s)));
        if !narrows {
            return Err(forbidden("scopes", "a key may only narrow scopes"));
        }
    }
    if let Some(metadata) = &patch.metadata {
        check_locked_metadata(target, metadata)?;
    }
    Ok(())
}

/// Members an admin set are read-only to self-service: a patch may name one only to leave
/// it as it is.
fn check_locked_metadata(target: &KeyRecord, patch: &Metadata) -> ApiResult<()> {
    for member in patch.keys() {
        if !target.locked_metadata.iter().any(|locked| locked == member) {
            continue;
        }
        let current = target.metadata.get(member);
        let mut merged = Metadata::new();
        if let Some(current) = current {
            merged.insert(member.clone(), current.clone());
        }
        let mut one = Metadata::new();
        one.insert(member.clone(), patch[member].clone());
        merge_metadata(&mut merged, &one);
        if merged.get(member) != current {
            return Err(forbidden(
                "metadata",
                &format!("the member `{member}` was set by an admin and is read-only"),
            ));
        }
    }
    Ok(())
}

/// Self-service may rotate only a key it could have made itself, and never into one that
/// outlives it.
pub fn check_rotation(
    caller: &CachedKey,
    target: &KeyRecord,
    new_expiry: Option<DateTime<Utc>>,
) -> ApiResult<()> {
    check_environment(caller, target.environment)?;
    let scopes_covered = caller.scopes.is_empty()
        || (!target.scopes.is_empty() && target.scopes.iter().all(|s| caller.scopes.contains(s)));
    if !scopes_covered {
        return Err(forbidden(
            "scopes",
            "the calling key may rotate only keys whose scopes its own cover",
        ));
    }
    if let Some(own) = &caller.allowed_ips {
        let covered = target
            .allowed_ips
            .as_deref()
            .is_some_and(|nets| networks_inside(nets, own));
        if !covered {
            return Err(forbidden(
                "allowed_ips",
                "the calling key may rotate only keys limited to networks inside its own",
            ));
        }
    }
    if let Some(own) = caller.expires_at
        && target.expires_at.is_none_or(|at| at > own)
    {
        return Err(forbidden(
            "expires_at",
            "the calling key may rotate only keys that expire no later than itself",
        ));
    }
    if caller.plan.is_some() && caller.plan != target.plan {
        return Err(forbidden(
            "plan",
            "the calling key may rotate only keys with its own plan override",
        ));
    }
    if caller.limits.is_some() && caller.limits.as_deref() != target.limits.as_deref() {
        return Err(forbidden(
            "limits",
            "the calling key may rotate only keys with its own limits",
        ));
    }
    if caller.rate_limit_per_hour.is_some()
        && caller.rate_limit_per_hour != target.rate_limit_per_hour
    {
        return Err(forbidden(
            "rate_limit_per_hour",
            "the calling key may rotate only keys with its own hourly rate",
        ));
    }
    if let (Some(new), Some(current)) = (new_expiry, target.expires_at)
        && new > current
    {
        return Err(forbidden(
            "expires_in_days",
            "the new key may not outlive the key it replaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_inside_requires_every_network_in_one_of_the_outer_ones() {
        let outer: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let inside: Vec<IpNet> = vec![
            "10.1.0.0/16".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ];
        assert!(networks_inside(&inside, &outer));
        let wider: Vec<IpNet> = vec!["10.0.0.0/7".parse().unwrap()];
        assert!(!networks_inside(&wider, &outer));
        let elsewhere: Vec<IpNet> = vec!["192.0.2.1/32".parse().unwrap()];
        assert!(!networks_inside(&elsewhere, &outer));
    }
}
