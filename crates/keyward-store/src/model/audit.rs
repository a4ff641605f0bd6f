//! Who did what: actors, audit records and the change feed's events.

use chrono::{DateTime, Utc};
use keyward_core::time::rfc3339;
use keyward_core::{KeyHash, KeyId, UserId};
use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;

use super::PageRequest;

/// Who performed a management action, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorKind {
    Admin,
    /// An admin key (`adk_…`).
    AdminKey(String),
    Cli,
    Key(KeyId),
    /// A secret-scanning partner's report (GitHub).
    GitHub,
    /// A user acting in its customer portal.
    Portal(UserId),
}

/// The actor and the client address of a management action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub ip: Option<IpAddr>,
}

impl Actor {
    pub fn cli() -> Self {
        Self {
            kind: ActorKind::Cli,
            ip: None,
        }
    }

    pub fn admin(ip: Option<IpAddr>) -> Self {
        Self {
            kind: ActorKind::Admin,
            ip,
        }
    }

    pub fn admin_key(id: &str, ip: Option<IpAddr>) -> Self {
        Self {
            kind: ActorKind::AdminKey(id.to_owned()),
            ip,
        }
    }

    pub fn key(id: KeyId, ip: Option<IpAddr>) -> Self {
        Self {
            kind: ActorKind::Key(id),
            ip,
        }
    }

    pub fn portal(user: &UserId, ip: Option<IpAddr>) -> Self {
        Self {
            kind: ActorKind::Portal(user.clone()),
            ip,
        }
    }

    /// An operator (the admin or the CLI), as opposed to a user acting on its own keys.
    pub fn is_operator(&self) -> bool {
        matches!(
            self.kind,
            ActorKind::Admin | ActorKind::AdminKey(_) | ActorKind::Cli
        )
    }

    /// `admin`, `admin:<admin key id>`, `cli`, `key:<key id>`, `portal:<user id>` or
    /// `github`.
    pub fn label(&self) -> String {
        match &self.kind {
            ActorKind::Admin => "admin".to_owned(),
            ActorKind::AdminKey(id) => format!("admin:{id}"),
            ActorKind::Cli => "cli".to_owned(),
            ActorKind::Key(id) => format!("key:{id}"),
            ActorKind::GitHub => "github".to_owned(),
            ActorKind::Portal(user) => format!("portal:{user}"),
        }
    }
}

/// The management actions the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuditAction {
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.update")]
    KeyUpdate,
    #[serde(rename = "key.disable")]
    KeyDisable,
    #[serde(rename = "key.enable")]
    KeyEnable,
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "keys.import")]
    KeysImport,
    #[serde(rename = "user.create")]
    UserCreate,
    #[serde(rename = "user.update")]
    UserUpdate,
    #[serde(rename = "user.delete")]
    UserDelete,
    #[serde(rename = "plan.update")]
    PlanUpdate,
    #[serde(rename = "admin_key.create")]
    AdminKeyCreate,
    #[serde(rename = "admin_key.revoke")]
    AdminKeyRevoke,
    #[serde(rename = "key.leak_reported")]
    KeyLeakReported,
    #[serde(rename = "webhook.create")]
    WebhookCreate,
    #[serde(rename = "webhook.update")]
    WebhookUpdate,
    #[serde(rename = "webhook.delete")]
    WebhookDelete,
    #[serde(rename = "webhook.rotate_secret")]
    WebhookRotateSecret,
    #[serde(rename = "webhook.replay")]
    WebhookReplay,
    #[serde(rename = "portal_session.create")]
    PortalSessionCreate,
    #[serde(rename = "portal_session.revoke")]
    PortalSessionRevoke,
}

impl AuditAction {
    pub const ALL: [AuditAction; 21] = [
        Self::KeyCreate,
        Self::KeyUpdate,
        Self::KeyDisable,
        Self::KeyEnable,
        Self::KeyRevoke,
        Self::KeyRotate,
        Self::KeysImport,
        Self::UserCreate,
        Self::UserUpdate,
        Self::UserDelete,
        Self::PlanUpdate,
        Self::AdminKeyCreate,
        Self::AdminKeyRevoke,
        Self::KeyLeakReported,
        Self::WebhookCreate,
        Self::WebhookUpdate,
        Self::WebhookDelete,
        Self::WebhookRotateSecret,
        Self::WebhookReplay,
        Self::PortalSessionCreate,
        Self::PortalSessionRevoke,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreate => "key.create",
            Self::KeyUpdate => "key.update",
            Self::KeyDisable => "key.disable",
            Self::KeyEnable => "key.enable",
            Self::KeyRevoke => "key.revoke",
            Self::KeyRotate => "key.rotate",
            Self::KeysImport => "keys.import",
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::UserDelete => "user.delete",
            Self::PlanUpdate => "plan.update",
            Self::AdminKeyCreate => "admin_key.create",
            Self::AdminKeyRevoke => "admin_key.revoke",
            Self::KeyLeakReported => "key.leak_reported",
            Self::WebhookCreate => "webhook.create",
            Self::WebhookUpdate => "webhook.update",
            Self::WebhookDelete => "webhook.delete",
            Self::WebhookRotateSecret => "webhook.rotate_secret",
            Self::WebhookReplay => "webhook.replay",
            Self::PortalSessionCreate => "portal_session.create",
            Self::PortalSessionRevoke => "portal_session.revoke",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == value)
    }
}

/// One audit record. Never holds key material.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub id: String,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    pub ip: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub key_id: Option<KeyId>,
    pub action: Option<AuditAction>,
    pub page: PageRequest,
}

/// What changed, for cache invalidation on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    Key,
    User,
    Plan,
}

/// What happened to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Increases with every change; poll with the last one seen.
    pub id: i64,
    pub entity: Entity,
    pub entity_id: String,
    pub op: ChangeOp,
    /// For keys, the key's hash: caches keyed by hash drop the entry directly.
    pub key_hash: Option<KeyHash>,
}
