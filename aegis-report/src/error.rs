//! Report errors, each phrased as advice.

/// Why a report could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Bad or missing configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] aegis_core::Error),
    /// A template failed to render.
    #[error("template: {0}")]
    Template(String),
    /// The mail could not be delivered.
    #[error("not sent: {0}")]
    Send(String),
}
