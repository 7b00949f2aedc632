//! What Aegis's tests share, so each crate's tests and the end-to-end stories
//! read the same way:
//!
//! - [`TestStore`]: a store of its own per test, on any backend, dropped with
//!   the test (MongoDB databases too);
//! - [`Sandbox`]: the real `aegis` binary with a private configuration, store and
//!   spool, [`ReportWorld`] for `aegis-report`, and [`bin`] for any binary;
//! - [`traffic`]: seeded generated attack traffic and small event builders;
//! - [`fuzz`]: hostile text for the property tests of parsers;
//! - [`fail2ban`]: private fail2ban servers, several side by side;
//! - [`relay`]: a TCP relay to cut and restore, for stores that go away;
//! - [`mod@bench`]: the benchmarks' store sizes and directory.

pub mod bench;
pub mod fail2ban;
pub mod fuzz;
pub mod relay;
mod report;
mod sandbox;
mod store;
pub mod traffic;

pub use report::ReportWorld;
pub use sandbox::{bin, text, Sandbox};
pub use store::{mongodb_url, open_sqlite, sqlite_url, TestStore};
