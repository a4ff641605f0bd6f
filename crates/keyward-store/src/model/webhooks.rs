//! Event webhooks: endpoints, the events raised with the changes they describe, and each
//! event's delivery to each endpoint.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use keyward_core::time::rfc3339;

/// A registered receiver of events. Its secrets never leave the store but to sign.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WebhookObject))]
pub struct WebhookRecord {
    /// `whk_` + ULID.
    pub id: String,
    pub url: String,
    /// Event types it receives, or `["*"]` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
    /// Signs every delivery (`whsec_` + base64 of 32 random bytes).
    #[serde(skip)]
    pub secret: String,
    /// The secret before the last rotation, which signs deliveries too until
    /// `previous_secret_until`.
    #[serde(skip)]
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    /// The first failed attempt since the endpoint last answered 2xx.
    #[serde(skip)]
    pub failing_since: Option<DateTime<Utc>>,
}

impl WebhookRecord {
    /// Whether it receives events of `kind`.
    pub fn subscribes_to(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind)
    }

    /// The secrets that sign a delivery made at `now`: the current one, and the previous
    /// one during its overlap.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some((previous, until)) = &self.previous_secret
            && *until > now
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// A new endpoint (the caller checked the URL and the event types).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
}

/// A change to an endpoint: `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// An event, as raised: what its `data` is made of (`subject`) and when.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `msg_` + ULID: the `webhook-id` of every delivery of it.
    pub id: String,
    pub kind: String,
    /// The records its data is rendered from (a key record, a key and its predecessor, …).
    pub subject: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookDeliveryStatus {
    /// Not attempted yet.
    Pending,
    Succeeded,
    /// Its last attempt failed; another is due at `next_attempt_at`.
    Failed,
    /// Every attempt failed (or the endpoint is gone): no more attempts.
    Dead,
}

impl WebhookDeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Dead]
            .into_iter()
            .find(|status| status.as_str() == raw)
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// `dlv_` + ULID.
    pub id: String,
    pub event: WebhookEvent,
    pub endpoint_id: String,
    pub status: WebhookDeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    /// The claim holding it (set by a claim; only that claim records its outcome).
    pub claim: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAttempt {
    /// A 2xx answer: never sent again.
    Succeeded { status: u16, body: String },
    /// Another attempt at `retry_at`; `None` when there is none left (dead).
    Failed {
        status: Option<u16>,
        body: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// 410 Gone: the endpoint is disabled at once and this delivery is dead.
    Gone { body: String },
}

/// The most of an answer's body the deliveries log keeps.
pub const MAX_RESPONSE_BODY: usize = 1024;
