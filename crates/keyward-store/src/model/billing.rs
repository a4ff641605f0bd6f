//! The billing outbox: events, their deliveries per sink, and what was metered.

use chrono::{DateTime, Utc};
use keyward_core::UserId;
use serde::Serialize;
use serde_json::Value;

/// An event for billing providers, with a stable id (a retried delivery is the same event).
#[derive(Debug, Clone, PartialEq)]
pub struct BillingEvent {
    pub id: String,
    /// `usage.metered` or `plan.changed`.
    pub kind: String,
    pub user_id: UserId,
    /// The JSON document delivered (includes `id` and `type`).
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Nothing to send to this sink (e.g. Stripe for a user without a customer id).
    Skipped,
    /// Given up after too many failures.
    Dead,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Skipped => "skipped",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Skipped, Self::Dead]
            .into_iter()
            .find(|status| status.as_str() == raw)
    }
}

/// One event's delivery to one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event: BillingEvent,
    pub sink: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    Skipped(String),
    Retry { at: DateTime<Utc>, error: String },
    Dead(String),
}

/// Units of one user, hour and plan already metered to billing providers, and in how many
/// `usage.metered` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredHour {
    pub user_id: UserId,
    pub hour: DateTime<Utc>,
    pub plan: String,
    pub units: u64,
    pub revisions: u32,
}
