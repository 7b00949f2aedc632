//! fail2ban itself: its history (its SQLite database and its log files) and
//! its control socket.

#[cfg(unix)]
pub mod control;
#[cfg(feature = "sqlite")]
mod db;
mod log;

#[cfg(feature = "sqlite")]
pub use db::Fail2banDb;
pub use log::{open_log, parse_log_line};

/// Where fail2ban keeps its database on Debian and most distributions.
pub const DEFAULT_DB: &str = "/var/lib/fail2ban/fail2ban.sqlite3";

/// One record read from fail2ban: an event, or the reason it was skipped.
pub type ImportItem = Result<crate::BanEvent, String>;
