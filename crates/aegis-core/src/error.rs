use thiserror::Error;

/// Everything that can go wrong in `aegis-core`. Callers never see a driver error type.
#[derive(Debug, Error)]
pub enum Error {
    /// Input failed validation; the message says what was wrong and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The storage URL or configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be reached or refused the operation.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store answered, but the operation failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A filesystem operation failed.
    // The cause is part of the message, so it is not also a `source()`: error
    // chains would print it twice.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }
}

/// Result with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
