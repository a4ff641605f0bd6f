//! Administration: migrations.

use chrono::{DateTime, Utc};
use keyward_core::time::rfc3339;
use serde::Serialize;

/// A migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
    #[serde(with = "rfc3339::option")]
    pub applied_at: Option<DateTime<Utc>>,
}
