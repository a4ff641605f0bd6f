//! The CLI's errors: one sentence for stderr and an exit code (1 failure, 2 bad usage).

use keyward_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command could not be carried out (exit 1).
    #[error("{0}")]
    Failure(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Failure(_) => 1,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self::Failure(message.into())
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        let message = match &error {
            StoreError::NotFound(what) => format!("{what} not found"),
            StoreError::Conflict(message) => message.clone(),
            StoreError::Invalid { field, message } => format!("{field}: {message}"),
            StoreError::Unavailable(cause) => format!("the database is unavailable: {cause}"),
            StoreError::Migration(cause) => format!("migration failed: {cause}"),
            StoreError::Internal(message) => message.clone(),
        };
        Self::Failure(message)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
