//! What the store holds and returns, and the inputs of its operations, by role.

mod admin;
mod audit;
mod billing;
mod keys;
mod paging;
mod sessions;
mod usage;
mod users;
mod webhooks;

pub use admin::*;
pub use audit::*;
pub use billing::*;
pub use keys::*;
pub use paging::*;
pub use sessions::*;
pub use usage::*;
pub use users::*;
pub use webhooks::*;
