//! The store's one error type. The server maps it to problem+json in one place.

/// What went wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such entity (`"key"`, `"user"`, `"plan"`, …).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (user exists, key revoked, `max_keys`).
    #[error("{0}")]
    Conflict(String),
    /// A value that only the database can judge (an unknown plan, a stale cursor).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The database cannot be reached or is too busy: worth retrying later.
    #[error("the database is unavailable ({0})")]
    Unavailable(#[source] sqlx::Error),
    /// Migrations could not be applied or rolled back.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Anything else: a bug or a corrupt row. The cause is for the log, not the client.
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Self {
        Self::Internal(format!("unreadable {what} in the database: {detail}"))
    }

    /// True when the connection broke under the operation (not a timeout): the same
    /// operation on a fresh connection may well succeed at once.
    pub fn is_broken_connection(&self) -> bool {
        match self {
            Self::Unavailable(sqlx::Error::Io(_)) => true,
            Self::Unavailable(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code == "57P01"),
            _ => false,
        }
    }

    /// True when retrying later may succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Self::Unavailable(error),
            _ => Self::Internal(error.to_string()),
        }
    }
}

/// SQLite's BUSY/LOCKED codes (primary and extended) and PostgreSQL's connection and
/// serialization classes are transient.
fn is_busy(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            matches!(
                code,
                "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "57P01"
            ) || code.starts_with("08")
        }
        None => false,
    }
}
