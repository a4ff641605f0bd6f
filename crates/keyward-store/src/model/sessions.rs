//! Sessions of the built-in dashboard and the customer portal, and the one-time links that
//! open portal sessions. The store keeps only SHA-256 hashes of their tokens.

use chrono::{DateTime, Utc};
use keyward_core::UserId;

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionHolder {
    /// The dashboard, signed in with the admin token (`None`) or an admin key (its id).
    Admin(Option<String>),
    /// The portal of one user.
    Portal(UserId),
}

impl SessionHolder {
    /// Whether this is a portal session (else a dashboard one).
    pub fn is_portal(&self) -> bool {
        matches!(self, Self::Portal(_))
    }
}

/// A session to store: its token's hash and what it is for.
#[derive(Debug, Clone)]
pub struct NewWebSession {
    /// Hex SHA-256 of the cookie's token.
    pub token_hash: String,
    pub holder: SessionHolder,
    /// For a session signed in with the admin token: a fingerprint of that token, so that
    /// a new admin token ends the session.
    pub admin_token_hash: Option<String>,
    /// The session ends after this long without a request.
    pub idle: chrono::Duration,
    /// The token every form of the session carries.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    /// The latest it can last, however active.
    pub expires_at: DateTime<Utc>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub holder: SessionHolder,
    pub admin_token_hash: Option<String>,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
