//! Exit codes, chosen in one place from the error.

use aegis_core::Error;

/// The event could be neither stored nor spooled: the one failure on the ban path.
#[derive(Debug, thiserror::Error)]
#[error("event lost: {0}")]
pub struct SpoolFailed(pub String);

/// 1 storage or I/O failure, 2 invalid input, 3 configuration, 4 nothing kept.
pub fn code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<SpoolFailed>().is_some() {
        return 4;
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Invalid(_) => 2,
                Error::Config(_) => 3,
                Error::Unavailable(_) | Error::Storage(_) | Error::Io { .. } => 1,
            };
        }
    }
    1
}
