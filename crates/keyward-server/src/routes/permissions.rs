//! Which permission an admin key needs for each admin endpoint: one table, read by the
//! extractors on every admin call, written into the OpenAPI document (`x-permissions` and
//! each operation's description) and checked by a test to cover every admin route. An
//! admin route missing from the table refuses every admin key (never the other way round).

use axum::http::Method;
use keyward_core::Permission::{self, *};

/// `(method, route template, permissions needed)`. `HEAD` takes `GET`'s row.
pub const TABLE: &[(&str, &str, &[Permission])] = &[
    ("GET", "/v1/keys", &[KeysRead]),
    ("POST", "/v1/keys", &[KeysWrite]),
    ("GET", "/v1/keys/{id}", &[KeysRead]),
    ("PATCH", "/v1/keys/{id}", &[KeysWrite]),
    ("DELETE", "/v1/keys/{id}", &[KeysWrite]),
    ("POST", "/v1/keys/{id}/rotate", &[KeysWrite]),
    ("GET", "/v1/keys/{id}/usage", &[KeysRead, UsageRead]),
    ("GET", "/v1/users", &[UsersRead]),
    ("POST", "/v1/users", &[UsersWrite]),
    ("GET", "/v1/users/{user_id}", &[UsersRead]),
    ("PATCH", "/v1/users/{user_id}", &[UsersWrite]),
    ("DELETE", "/v1/users/{user_id}", &[UsersWrite]),
    ("POST", "/v1/users/{user_id}/revoke-keys", &[UsersWrite]),
    (
        "POST",
        "/v1/users/{user_id}/portal-sessions",
        &[UsersWrite, KeysWrite],
    ),
    (
        "DELETE",
        "/v1/users/{user_id}/portal-sessions",
        &[UsersWrite, KeysWrite],
    ),
    ("GET", "/v1/users/{user_id}/usage", &[UsageRead]),
    ("GET", "/v1/users/{user_id}/invoice", &[BillingRead]),
    ("GET", "/v1/usage/summary", &[UsageRead]),
    ("GET", "/v1/audit", &[AuditRead]),
    ("PUT", "/v1/plans/{name}", &[PlansWrite]),
    ("POST", "/v1/admin-keys", &[AdminManage]),
    ("GET", "/v1/admin-keys", &[AdminManage]),
    ("DELETE", "/v1/admin-keys/{id}", &[AdminManage]),
    ("POST", "/v1/webhooks", &[WebhooksWrite]),
    ("GET", "/v1/webhooks", &[WebhooksWrite]),
    ("GET", "/v1/webhooks/{id}", &[WebhooksWrite]),
    ("PATCH", "/v1/webhooks/{id}", &[WebhooksWrite]),
    ("DELETE", "/v1/webhooks/{id}", &[WebhooksWrite]),
    ("GET", "/v1/webhooks/{id}/secret", &[WebhooksWrite]),
    ("POST", "/v1/webhooks/{id}/rotate-secret", &[WebhooksWrite]),
    ("GET", "/v1/webhooks/{id}/deliveries", &[WebhooksWrite]),
    ("POST", "/v1/webhooks/{id}/replay", &[WebhooksWrite]),
];

/// The permissions `method` on `route` needs; `None` for a route the table does not name.
pub fn needed(method: &Method, route: &str) -> Option<&'static [Permission]> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    TABLE
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, permissions)| *permissions)
}

/// The first of `needed` that `held` does not grant.
pub fn missing(held: &[Permission], needed: &[Permission]) -> Option<Permission> {
    needed
        .iter()
        .copied()
        .find(|permission| !keyward_core::permission::grants(held, *permission))
}
