use thiserror::Error;

/// Everything that can go wrong in `aegis-core`. Callers never see a driver error type.
#[derive(Debug, Error)]
#[non_exhaustive]
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
    /// An event could be neither spooled nor stored: the one failure of the ban path.
    #[error("event lost: {0}")]
    Lost(String),
    /// fail2ban's control socket could not be reached, or fail2ban refused a command.
    #[error("fail2ban: {0}")]
    Fail2ban(String),
}

impl Error {
    /// The exit code a command failing with this error ends with: 1 storage or
    /// I/O failure, 2 invalid input, 3 configuration, 4 an event was lost.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) => 2,
            Error::Config(_) => 3,
            Error::Lost(_) => 4,
            Error::Unavailable(_) | Error::Storage(_) | Error::Io { .. } | Error::Fail2ban(_) => 1,
        }
    }

    /// The same error with its message rewritten.
    #[cfg(feature = "mongodb")]
    pub(crate) fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Invalid(m) => Error::Invalid(f(m)),
            Error::Config(m) => Error::Config(f(m)),
            Error::Unavailable(m) => Error::Unavailable(f(m)),
            Error::Storage(m) => Error::Storage(f(m)),
            Error::Lost(m) => Error::Lost(f(m)),
            Error::Fail2ban(m) => Error::Fail2ban(f(m)),
            Error::Io { context, cause } => Error::Io {
                context: f(context),
                cause,
            },
        }
    }

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

/// The exit code of a failed command, the rule of every Aegis binary: the first
/// [`enum@Error`] among `err` and its causes decides ([`Error::exit_code`]);
/// any other failure is 1.
pub fn exit_code(err: &(dyn std::error::Error + 'static)) -> u8 {
    std::iter::successors(Some(err), |e| e.source())
        .find_map(|e| e.downcast_ref::<Error>())
        .map_or(1, Error::exit_code)
}

/// Result with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
