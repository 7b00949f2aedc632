//! `aegis-core`: fail2ban ban events, the storage backends that keep them, and the
//! statistics Aegis shows.
//!
//! Open a store with [`connect`] and a [`StorageUrl`] (`sqlite:///path.db`,
//! `sqlite::memory:`, `mongodb://…`), record [`BanEvent`]s, and ask it for a
//! [`Summary`], [`DayCount`]s or rankings narrowed to a [`Scope`]. Every backend
//! passes the same conformance suite behind the one front that validates
//! inputs, so results do not depend on where events live.
//!
//! Features: `sqlite` (default: the embedded store and reading fail2ban's
//! database), `mongodb` (the store many hosts report to), `geo-online` (the
//! online geolocation provider of backfills). [`connect`] accepts the URL
//! schemes compiled in and names the feature a missing one needs.
//!
//! ```no_run
//! # async fn demo() -> aegis_core::Result<()> {
//! use aegis_core::{connect, parse_ip, BanEvent, EventKind, StatsQuery, StorageUrl, Utc};
//! let store = connect(&StorageUrl::parse("sqlite::memory:")?).await?;
//! let ip = parse_ip("203.0.113.7")?;
//! let event = BanEvent::new(EventKind::Ban, ip, "sshd", "web1", Utc::now())?;
//! store.record(&event).await?;
//! println!("{:?}", store.summary(&StatsQuery::last_days(7)).await?);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
// Without a backend only the model, geolocation and readers are of use.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "mongodb")),
    allow(dead_code, unused_imports, unused_variables)
)]

pub mod calendar;
mod config;
pub mod decision;
#[cfg(feature = "cli-docs")]
pub mod docs;
mod error;
mod event;
pub mod fail2ban;
pub mod geo;
mod ipkey;
mod query;
pub mod share;
mod storage;
mod timearg;

pub use config::{
    AgentSettings, AlertRule, AlertWhen, ChannelSettings, ChannelVia, GeoSettings, MailTransport,
    ReportSettings, Secret, Settings, ShareSettings, SmtpTls, StorageSettings, WebSettings,
    SYSTEM_CONFIG,
};
pub use error::{exit_code, Error, Result};
pub use event::{
    bound_matches, parse_country, parse_ip, parse_time, BanEvent, EventId, EventKind, Geo,
    MAX_MATCH_BYTES, MAX_MATCH_LINES,
};
pub use query::{
    day_start, network_of, spreadsheet_safe, BatchOutcome, Cursor, DayCount, EventFilter, Facet,
    Offender, Order, Page, Recorded, Scope, StatsQuery, StoredEvent, Summary, TopBy, TopEntry,
};
pub use storage::{
    connect, connect_for, destroy, throttled, DecisionLog, GeoCache, Storage, StorageUrl, Workload,
    ACCEPTED_URLS,
};
pub use timearg::{parse_age, parse_moment};

/// The version and the commit it was built from, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AEGIS_COMMIT"),
    ")"
);

pub use chrono::{DateTime, NaiveDate, Utc};
pub use chrono_tz::Tz;
pub use ipnetwork::IpNetwork;
