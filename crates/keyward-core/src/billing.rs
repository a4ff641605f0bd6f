//! Invoices: the billed span of a calendar month split into plan
//! segments, each billed its base fee prorated by the second and its overage beyond the
//! prorated included units, at the price its plan had when the segment began. Pure: the
//! caller supplies the segments, the prices and the usage.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

use crate::plan::{PlanName, Price};
use crate::time::rfc3339;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    /// Parses `YYYY-MM`.
    pub fn parse(raw: &str) -> Result<Self, InvalidPeriod> {
        let (year, month) = raw.split_once('-').ok_or(InvalidPeriod)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(InvalidPeriod);
        }
        let year: i32 = year.parse().map_err(|_| InvalidPeriod)?;
        let month: u32 = month.parse().map_err(|_| InvalidPeriod)?;
        if !(1970..=9998).contains(&year) || !(1..=12).contains(&month) {
            return Err(InvalidPeriod);
        }
        Ok(Self { year, month })
    }

    pub fn of(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The month's length in seconds (the D of proration: a segment is billed its seconds ÷ D of the base fee).
    pub fn seconds(self) -> i64 {
        (self.end() - self.start()).num_seconds()
    }

    /// `YYYY-MM`, as stored and shown.
    pub fn label(self) -> String {
        self.to_string()
    }

    /// Whole seconds from `now` to the month's end (at least 1).
    pub fn seconds_left(self, now: DateTime<Utc>) -> u64 {
        u64::try_from((self.end() - now).num_seconds().max(1)).unwrap_or(1)
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a month as YYYY-MM")]
pub struct InvalidPeriod;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    Base,
    Overage,
}

/// One line of an invoice: a plan's base fee for the time the user was on it, or the
/// overage beyond its included requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvoiceLine {
    pub kind: LineKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub plan: PlanName,
    #[serde(with = "rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub to: DateTime<Utc>,
    /// Seconds for a base line, units beyond the included ones for an overage line.
    pub quantity: u64,
    pub amount_cents: u64,
}

/// A user's invoice for one calendar month (UTC), in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invoice {
    pub user_id: String,
    /// `YYYY-MM`.
    pub period: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub currency: &'static str,
    pub lines: Vec<InvoiceLine>,
    pub total_cents: u64,
}

/// Admitted units of a user's `live` keys in one hour, tagged with the plan the user was
/// on when they were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourUnits {
    pub hour: DateTime<Utc>,
    pub plan: PlanName,
    pub units: u64,
}

/// What an invoice is computed from.
#[derive(Debug, Clone)]
pub struct InvoiceInput<'a> {
    pub user_id: &'a str,
    pub period: Period,
    pub user_created_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The user's plan segments (plan from `effective_at`), oldest first.
    pub segments: &'a [(PlanName, DateTime<Utc>)],
    pub usage: &'a [HourUnits],
}

/// `numerator / denominator` rounded half up.
fn half_up(numerator: u128, denominator: u128) -> u64 {
    u64::try_from((numerator * 2 + denominator) / (denominator * 2)).unwrap_or(u64::MAX)
}

/// Computes the invoice; `price_at(plan, t)` is the plan's price in effect at `t` (`None`:
/// the plan bills nothing).
pub fn invoice(
    input: &InvoiceInput<'_>,
    price_at: impl Fn(&PlanName, DateTime<Utc>) -> Option<Price>,
) -> Invoice {
    let period = input.period;
    let month = u128::try_from(period.seconds()).unwrap_or(1).max(1);
    let span_start = period.start().max(input.user_created_at);
    let span_end = period.end().min(input.now);
    let spans = spans(input.segments, span_start, span_end);
    let used = attribute(&spans, input.usage);
    let mut lines = Vec::new();
    for ((plan, from, to), used) in spans.into_iter().zip(used) {
        let seconds = u64::try_from((to - from).num_seconds()).unwrap_or(0);
        let price = price_at(&plan, from);
        let base = price.as_ref().map_or(0, |p| {
            half_up(u128::from(p.base_cents) * u128::from(seconds), month)
        });
        lines.push(InvoiceLine {
            kind: LineKind::Base,
            plan: plan.clone(),
            from,
            to,
            quantity: seconds,
            amount_cents: base,
        });
        let Some(price) = price else { continue };
        let included =
            u64::try_from(u128::from(price.included_requests) * u128::from(seconds) / month)
                .unwrap_or(u64::MAX);
        if used > included {
            let excess = used - included;
            lines.push(InvoiceLine {
                kind: LineKind::Overage,
                plan,
                from,
                to,
                quantity: excess,
                amount_cents: half_up(
                    u128::from(excess) * u128::from(price.overage_cents_per_1000),
                    1000,
                ),
            });
        }
    }
    let total_cents = lines.iter().map(|line| line.amount_cents).sum();
    Invoice {
        user_id: input.user_id.to_owned(),
        period: period.to_string(),
        currency: "usd",
        lines,
        total_cents,
    }
}

/// The segments clipped to `[start, end)`, empty ones dropped. The first segment reaches
/// back to `start` (a user's first segment opens with the user).
fn spans(
    segments: &[(PlanName, DateTime<Utc>)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(PlanName, DateTime<Utc>, DateTime<Utc>)> {
    let mut spans = Vec::new();
    for (index, (plan, effective_at)) in segments.iter().enumerate() {
        let next = segments.get(index + 1).map(|(_, at)| *at);
        let from = if index == 0 {
            start
        } else {
            (*effective_at).max(start)
        };
        let to = next.map_or(end, |next| next.min(end));
        if to > from {
            spans.push((plan.clone(), from, to));
        }
    }
    spans
}

/// Units per span. Usage is kept by hour, tagged with the plan it was checked under, so
/// each hour goes to one span: of the spans the hour overlaps, the first on the hour's own
/// plan (this splits the hour of a plan change exactly, unless the plan changes twice
/// within one hour), else the span the hour starts in.
fn attribute(spans: &[(PlanName, DateTime<Utc>, DateTime<Utc>)], usage: &[HourUnits]) -> Vec<u64> {
    let hour = chrono::Duration::hours(1);
    let mut used = vec![0u64; spans.len()];
    for row in usage {
        let overlapping = |(_, from, to): &&(PlanName, DateTime<Utc>, DateTime<Utc>)| {
            row.hour < *to && row.hour + hour > *from
        };
        let target = spans
            .iter()
            .position(|span| overlapping(&span) && span.0 == row.plan)
            .or_else(|| {
                spans
                    .iter()
                    .position(|(_, from, to)| row.hour >= *from && row.hour < *to)
            });
        if let Some(index) = target {
            used[index] += row.units;
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn plan(name: &str) -> PlanName {
        PlanName::parse(name).unwrap()
    }

    fn prices(plan: &PlanName, _at: DateTime<Utc>) -> Option<Price> {
        match plan.as_str() {
            "free" => None,
            "pro" => Some(Price {
                base_cents: 4900,
                included_requests: 1_000_000,
                overage_cents_per_1000: 50,
            }),
            "starter" => Some(Price {
                base_cents: 1000,
                included_requests: 30_000,
                overage_cents_per_1000: 7,
            }),
            _ => None,
        }
    }

    #[test]
    fn periods_parse_and_know_their_length() {
        assert_eq!(Period::parse("2026-11").unwrap().seconds(), 30 * 86_400);
        assert_eq!(Period::parse("2026-02").unwrap().seconds(), 28 * 86_400);
        assert_eq!(Period::parse("2028-02").unwrap().seconds(), 29 * 86_400);
        assert_eq!(Period::parse("2026-12").unwrap().seconds(), 31 * 86_400);
        assert_eq!(
            Period::parse("2026-12").unwrap().end(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let february = Period::of(Utc.with_ymd_and_hms(2028, 2, 10, 0, 0, 0).unwrap());
        assert_eq!(february.label(), "2028-02");
        let december = Period::parse("2026-12").unwrap();
        let last_minute = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap();
        assert_eq!(december.seconds_left(last_minute), 60);
        assert_eq!(december.seconds_left(december.end()), 1, "never zero");
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    /// Free until the 10th, pro from the 10th to the 20th, free again after: pro bills 10
    /// of 30 days: base 4900 · 10/30 = 1633.33 → 1633 cents; included 1,000,000 · 10/30 =
    /// 333,333; 400,000 units on pro → 66,667 over at 0.05 ¢ = 3333.35 → 3333 cents.
    #[test]
    fn an_upgrade_on_the_10th_and_a_downgrade_on_the_20th_bill_by_hand() {
        let segments = [
            (plan("free"), at(1, 0)),
            (plan("pro"), at(10, 0)),
            (plan("free"), at(20, 0)),
        ];
        let usage = [
            HourUnits {
                hour: at(5, 3),
                plan: plan("free"),
                units: 1000,
            },
            HourUnits {
                hour: at(12, 3),
                plan: plan("pro"),
                units: 250_000,
            },
            HourUnits {
                hour: at(19, 23),
                plan: plan("pro"),
                units: 150_000,
            },
            HourUnits {
                hour: at(25, 0),
                plan: plan("free"),
                units: 5000,
            },
        ];
        let invoice = invoice(
            &InvoiceInput {
                user_id: "u",
                period: Period::parse("2026-11").unwrap(),
                user_created_at: at(1, 0),
                now: Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap(),
                segments: &segments,
                usage: &usage,
            },
            prices,
        );
        let summary: Vec<(LineKind, &str, u64, u64)> = invoice
            .lines
            .iter()
            .map(|l| (l.kind, l.plan.as_str(), l.quantity, l.amount_cents))
            .collect();
        assert_eq!(
            summary,
            vec![
                (LineKind::Base, "free", 9 * 86_400, 0),
                (LineKind::Base, "pro", 10 * 86_400, 1633),
                (LineKind::Overage, "pro", 66_667, 3333),
                (LineKind::Base, "free", 11 * 86_400, 0),
            ]
        );
        assert_eq!(invoice.total_cents, 1633 + 3333);
        assert_eq!(invoice.currency, "usd");
        assert_eq!(invoice.period, "2026-11");
    }

    /// The current month bills up to now; a user created mid-month from then.
    #[test]
    fn the_span_starts_at_creation_and_ends_now() {
        let segments = [(plan("pro"), at(16, 0))];
        let invoice = invoice(
            &InvoiceInput {
                user_id: "u",
                period: Period::parse("2026-11").unwrap(),
                user_created_at: at(16, 0),
                now: at(22, 12),
                segments: &segments,
                usage: &[],
            },
            prices,
        );
        // 6.5 days of 30: 4900 · 561,600 / 2,592,000 = 1061.67 → 1062
        assert_eq!(invoice.lines.len(), 1);
        assert_eq!(invoice.lines[0].quantity, 561_600);
        assert_eq!(invoice.lines[0].amount_cents, 1062);
    }

    /// A change at the period boundary belongs to the month it starts; several changes in
    /// one day each get their own lines; rounding is half up per line.
    #[test]
    fn boundaries_and_several_changes_in_a_day() {
        let december = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let segments = [
            (plan("starter"), at(1, 0)),
            (plan("pro"), at(30, 6)),
            (plan("starter"), at(30, 12)),
            (plan("pro"), december),
        ];
        let invoice = invoice(
            &InvoiceInput {
                user_id: "u",
                period: Period::parse("2026-11").unwrap(),
                user_created_at: at(1, 0),
                now: december + chrono::Duration::days(2),
                segments: &segments,
                usage: &[],
            },
            prices,
        );
        let lines: Vec<(&str, u64, u64)> = invoice
            .lines
            .iter()
            .map(|l| (l.plan.as_str(), l.quantity, l.amount_cents))
            .collect();
        // starter 29.25 days: 1000 · 2,527,200 / 2,592,000 = 975.0 → 975
        // pro 6 h: 4900 · 21,600 / 2,592,000 = 40.83 → 41
        // starter 12 h: 1000 · 43,200 / 2,592,000 = 16.67 → 17
        assert_eq!(
            lines,
            vec![
                ("starter", 2_527_200, 975),
                ("pro", 21_600, 41),
                ("starter", 43_200, 17)
            ]
        );
        assert_eq!(invoice.total_cents, 975 + 41 + 17);
    }

    #[test]
    fn half_up_rounds_halves_up() {
        assert_eq!(half_up(5, 10), 1);
        assert_eq!(half_up(4, 10), 0);
        assert_eq!(half_up(15, 10), 2);
        assert_eq!(half_up(25, 10), 3);
    }

    #[test]
    fn months_of_28_29_30_and_31_days_prorate_by_their_own_length() {
        for (period, days) in [
            ("2026-02", 28),
            ("2028-02", 29),
            ("2026-11", 30),
            ("2026-12", 31),
        ] {
            let period = Period::parse(period).unwrap();
            let segments = [(plan("starter"), period.start())];
            let invoice = invoice(
                &InvoiceInput {
                    user_id: "u",
                    period,
                    user_created_at: period.start(),
                    now: period.end() + chrono::Duration::days(1),
                    segments: &segments,
                    usage: &[HourUnits {
                        hour: period.start(),
                        plan: plan("starter"),
                        units: 30_001,
                    }],
                },
                prices,
            );
            assert_eq!(invoice.lines[0].quantity, days * 86_400);
            assert_eq!(
                invoice.lines[0].amount_cents, 1000,
                "a whole month is the whole fee"
            );
            // 1 unit over 30,000 at 0.007 ¢ → 0.007 → 0
            assert_eq!(invoice.lines[1].quantity, 1);
            assert_eq!(invoice.lines[1].amount_cents, 0);
        }
    }
}
