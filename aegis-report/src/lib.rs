//! `aegis-report`: the digest of a period's bans, rendered from templates and sent by
//! SMTP or an HTTP mail API, and alerts ([`alert`]) sent to chat, webhooks and e-mail.
//!
//! [`Digest::gather`] reads the store; [`Templates::render`] is a pure function of
//! the digest; [`Delivery`] sends the result.
#![warn(missing_docs)]

pub mod alert;
pub mod app;
mod chart;
mod digest;
mod error;
mod period;
mod render;
mod send;

pub use digest::{Bar, Digest, OffenderRow};
pub use error::ReportError;
pub use period::Period;
pub use render::{json, Rendered, Templates};
pub use send::Delivery;
