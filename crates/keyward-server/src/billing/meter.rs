//! Metering: every closed hour's admitted units of `live` keys become `usage.metered`
//! events in the outbox, with ids every node derives alike.

use chrono::{DateTime, TimeZone, Utc};
use keyward_core::{Environment, UserId};
use keyward_store::{BillingEvent, MeteredHour, Store, StoreError, UsageFilter, UsageGroup};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{BillingSettings, FIRST_RUN_LOOKBACK_HOURS, METERED_THROUGH, RECHECK_HOURS};

pub(super) fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(at.timestamp().div_euclid(3600) * 3600, 0)
        .single()
        .unwrap_or(at)
}

/// The stable id of a user's metered usage in one hour on one plan.
pub fn metered_event_id(user_id: &UserId, hour: DateTime<Utc>, plan: &str) -> String {
    let digest = Sha256::new()
        .chain_update(user_id.as_str())
        .chain_update([0])
        .chain_update(hour.timestamp().to_be_bytes())
        .chain_update([0])
        .chain_update(plan)
        .finalize();
    format!("um_{}", &hex::encode(digest)[..32])
}

/// A `usage.metered` event for `units` of one user, hour and plan; revision 1 carries the
/// hour's units when it is first metered, later revisions what arrived since.
pub(super) fn metered_event(
    user_id: &UserId,
    hour: DateTime<Utc>,
    plan: &str,
    units: u64,
    revision: u32,
    now: DateTime<Utc>,
) -> BillingEvent {
    let base = metered_event_id(user_id, hour, plan);
    let id = if revision <= 1 {
        base
    } else {
        format!("{base}_r{revision}")
    };
    BillingEvent {
        payload: json!({
            "type": "usage.metered",
            "id": id,
            "user_id": user_id,
            "period_start": keyward_core::time::format(&hour),
            "period_end": keyward_core::time::format(&(hour + chrono::Duration::hours(1))),
            "units": units,
            "plan": plan,
        }),
        id,
        kind: "usage.metered".to_owned(),
        user_id: user_id.clone(),
        created_at: now,
    }
}

/// Meters every hour in `[from, to)`: for each user and plan whose `live` units exceed
/// what was metered so far, one event with the difference (the first one with all of it).
pub(super) async fn meter_hours(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let filter = UsageFilter {
        environment: Some(Environment::Live),
        ..UsageFilter::between(from, to)
    };
    let metered: std::collections::HashMap<(String, DateTime<Utc>, String), (u64, u32)> = store
        .metered_hours(from, to)
        .await?
        .into_iter()
        .map(|m| {
            (
                (m.user_id.to_string(), m.hour, m.plan),
                (m.units, m.revisions),
            )
        })
        .collect();
    for total in store
        .usage_totals(&filter, UsageGroup::HourUserPlan)
        .await?
    {
        let [hour, user, plan] = total.group.as_slice() else {
            continue;
        };
        let (Ok(hour), Ok(user_id)) = (keyward_core::time::parse(hour), UserId::parse(user)) else {
            continue;
        };
        let (sent, revisions) = metered
            .get(&(user.clone(), hour, plan.clone()))
            .copied()
            .unwrap_or((0, 0));
        if total.units <= sent {
            continue;
        }
        let revision = revisions + 1;
        let event = metered_event(&user_id, hour, plan, total.units - sent, revision, now);
        let row = MeteredHour {
            user_id,
            hour,
            plan: plan.clone(),
            units: total.units,
            revisions: revision,
        };
        // Another node may have metered it a moment ago: then this changes nothing and the
        // next pass compares against what that node recorded.
        store.record_metering(&row, revisions, &event).await?;
    }
    Ok(())
}

/// Meters every hour that closed (plus the meter delay) since the last run; with
/// `recheck`, also looks again at the 24 hours before, for usage that reached the
/// database late.
pub(super) async fn meter(
    store: &dyn Store,
    settings: &BillingSettings,
    now: DateTime<Utc>,
    recheck: bool,
) -> Result<(), StoreError> {
    let first = hour_start(now) - chrono::Duration::hours(FIRST_RUN_LOOKBACK_HOURS);
    let stored = store.get_setting(METERED_THROUGH).await?;
    let mut through = stored
        .as_deref()
        .and_then(|raw| keyward_core::time::parse(raw).ok())
        .unwrap_or(first);
    // Nothing was metered before the first run: there is nothing to look at again.
    if recheck && stored.is_some() {
        meter_hours(
            store,
            through - chrono::Duration::hours(RECHECK_HOURS),
            through,
            now,
        )
        .await?;
    }
    let delay = chrono::Duration::from_std(settings.meter_delay).unwrap_or_default();
    while through + chrono::Duration::hours(1) + delay <= now {
        let end = through + chrono::Duration::hours(1);
        meter_hours(store, through, end, now).await?;
        through = end;
        store
            .put_setting(METERED_THROUGH, &keyward_core::time::format(&through))
            .await?;
    }
    Ok(())
}
