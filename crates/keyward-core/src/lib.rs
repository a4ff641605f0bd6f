//! keyward's domain: the key format, identifiers, scopes, plans and decision codes.
//!
//! Everything here is pure (no I/O, no async, no clock reads): values are built by parsing,
//! and time, where it matters, is passed in.

pub mod base62;
pub mod billing;
pub mod decision;
pub mod ids;
pub mod key;
pub mod name;
pub mod permission;
pub mod plan;
pub mod scope;
pub mod time;

pub use decision::{Code, KeyStatus, MAX_GRACE_SECONDS, refusal_before_limits, scopes_granted};
pub use ids::{InvalidKeyId, InvalidUserId, KeyId, UserId, monotonic_ulid};
pub use key::{
    Environment, ForeignKey, InvalidEnvironment, InvalidKeyHash, InvalidKeyPrefix, KeyFormatError,
    KeyHash, KeyPrefix, PlainKey, PrefixNotAllowed, PresentedKey,
};
pub use name::{InvalidKeyName, KeyName};
pub use permission::{InvalidPermission, Permission};
pub use plan::{Burst, InvalidPlan, InvalidPlanName, Plan, PlanName, PlanSpec, Price, Window};
pub use scope::{InvalidScope, Scope};
