//! Users: the stored record and the inputs of user operations.

use chrono::{DateTime, Utc};
use keyward_core::time::rfc3339;
use keyward_core::{PlanName, UserId};
use serde::Serialize;

use super::{Metadata, PageRequest};

/// A user of the operator's product.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UserObject))]
pub struct UserRecord {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub plan: PlanName,
    pub email: Option<String>,
    pub company: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Keys whose status is `active`.
    pub key_count: u64,
    /// When the user was deleted (its keys revoked); null while it exists.
    #[serde(with = "rfc3339::option")]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub plan: Option<PlanName>,
    pub page: PageRequest,
}

/// Profile fields for a user that a key creation makes on the fly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserProfile {
    pub email: Option<String>,
    pub company: Option<String>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub user_id: UserId,
    pub plan: PlanName,
    pub profile: UserProfile,
}

/// A partial update of a user. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub plan: Option<PlanName>,
    /// When the plan change takes effect for billing (≤ now, within the current month).
    pub plan_effective_at: Option<DateTime<Utc>>,
    pub email: Option<Option<String>>,
    pub company: Option<Option<String>>,
    /// Merged into the user's metadata (RFC 7396).
    pub metadata: Option<Metadata>,
}
