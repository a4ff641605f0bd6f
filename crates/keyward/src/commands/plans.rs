//! `keyward plans list|set`.

use keyward_core::{Burst, Plan, PlanName, PlanSpec, Price, Window};
use keyward_store::{Actor, StoreError};
use serde_json::json;

use super::{Context, parse_arg};
use crate::cli::{PlansCommand, SetPlanArgs};
use crate::error::{CliError, CliResult};
use crate::output;

pub async fn run(context: &Context, command: PlansCommand) -> CliResult {
    match command {
        PlansCommand::List => {
            let plans = context.store.list_plans().await?;
            if context.json {
                return output::json(&json!({"plans": plans}));
            }
            let mut table = plan_table();
            for plan in &plans {
                table.add_row(plan_row(plan));
            }
            output::print_table(&table);
            Ok(())
        }
        PlansCommand::Set(args) => set(context, args).await,
    }
}

/// The table plans are printed in (one row per plan, see [`plan_row`]).
fn plan_table() -> comfy_table::Table {
    output::table([
        "PLAN",
        "LIMITS",
        "BURST",
        "MONTHLY QUOTA",
        "MAX KEYS",
        "FEATURES",
        "PRICE",
        "KEY LIFETIME",
    ])
}

fn plan_row(plan: &Plan) -> [String; 8] {
    let spec = &plan.spec;
    let limits = spec
        .limits
        .iter()
        .map(|w| format!("{}/{}", w.max, w.display_name()))
        .collect::<Vec<_>>()
        .join(", ");
    [
        plan.name.to_string(),
        if limits.is_empty() {
            "-".to_owned()
        } else {
            limits
        },
        output::or_dash(
            spec.burst
                .as_ref()
                .map(|b| format!("{}/s, {}", b.rate_per_second, b.capacity)),
        ),
        output::or_dash(spec.monthly_quota),
        output::or_dash(spec.max_keys),
        spec.features
            .as_deref()
            .map_or_else(|| "any".to_owned(), output::list),
        output::or_dash(spec.price.as_ref().map(|p| {
            format!(
                "{} ¢ + {} incl. + {} ¢/1000",
                p.base_cents, p.included_requests, p.overage_cents_per_1000
            )
        })),
        output::or_dash(spec.max_key_lifetime_days.map(|days| format!("{days} d"))),
    ]
}

/// Creates the plan, or changes only the given settings of an existing one.
async fn set(context: &Context, args: SetPlanArgs) -> CliResult {
    let name = parse_arg("NAME", &args.name, PlanName::parse)?;
    let mut spec = match context.store.get_plan(&name).await {
        Ok(plan) => plan.spec,
        Err(StoreError::NotFound(_)) => PlanSpec::default(),
        Err(error) => return Err(error.into()),
    };
    for (seconds, max) in [
        (60, args.per_minute),
        (3600, args.per_hour),
        (86_400, args.per_day),
    ] {
        if let Some(max) = max {
            match spec.limits.iter_mut().find(|w| w.window_seconds == seconds) {
                Some(window) => window.max = max,
                None => spec.limits.push(Window::new(seconds, max)),
            }
        }
    }
    spec.limits.sort_by_key(|w| w.window_seconds);
    if let Some(burst) = &args.burst {
        spec.burst = Some(parse_arg("--burst", burst, parse_burst)?);
    }
    if args.monthly_quota.is_some() {
        spec.monthly_quota = args.monthly_quota;
    }
    if args.max_keys.is_some() {
        spec.max_keys = args.max_keys;
    }
    if args.no_max_key_lifetime {
        spec.max_key_lifetime_days = None;
    } else if args.max_key_lifetime_days.is_some() {
        spec.max_key_lifetime_days = args.max_key_lifetime_days;
    }
    if let (Some(base_cents), Some(included_requests), Some(overage_cents_per_1000)) = (
        args.base_cents,
        args.included_requests,
        args.overage_cents_per_1000,
    ) {
        spec.price = Some(Price {
            base_cents,
            included_requests,
            overage_cents_per_1000,
        });
    }
    spec.validate()
        .map_err(|error| CliError::usage(error.to_string()))?;
    let plan = context
        .store
        .put_plan(&Plan { name, spec }, &Actor::cli())
        .await?;
    if context.json {
        return output::json(&plan);
    }
    let mut table = plan_table();
    table.add_row(plan_row(&plan));
    output::print_table(&table);
    Ok(())
}

/// `RATE/CAPACITY`, e.g. `10/50` or `0.5/5`.
fn parse_burst(value: &str) -> Result<Burst, String> {
    let invalid = || format!("`{value}` is not RATE/CAPACITY (e.g. 10/50)");
    let (rate, capacity) = value.split_once('/').ok_or_else(invalid)?;
    let rate_per_second: f64 = rate.trim().parse().map_err(|_| invalid())?;
    let capacity: u64 = capacity.trim().parse().map_err(|_| invalid())?;
    if !(rate_per_second.is_finite() && rate_per_second > 0.0) || capacity == 0 {
        return Err(invalid());
    }
    Ok(Burst {
        rate_per_second,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_parse_as_rate_and_capacity() {
        assert_eq!(
            parse_burst("10/50").unwrap(),
            Burst {
                rate_per_second: 10.0,
                capacity: 50
            }
        );
        assert_eq!(parse_burst("0.5/5").unwrap().rate_per_second, 0.5);
        for bad in ["10", "x/5", "0/5", "5/0", "-1/5"] {
            assert!(parse_burst(bad).is_err(), "{bad}");
        }
    }
}
