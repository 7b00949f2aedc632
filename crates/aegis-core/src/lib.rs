//! `aegis-core`: fail2ban ban events, the storage backends that keep them, and the
//! statistics Aegis shows.
//!
//! Open a store with [`connect`] and a [`StorageUrl`] (`sqlite:///path.db`,
//! `sqlite::memory:`, `mongodb://…`), record [`BanEvent`]s, and ask it for a
//! [`Summary`], [`DayCount`]s or rankings. Every backend passes the same
//! conformance suite, so results do not depend on where events live.
//!
//! ```no_run
//! # async fn demo() -> aegis_core::Result<()> {
//! use aegis_core::{connect, parse_ip, BanEvent, EventKind, StatsQuery, StorageUrl};
//! let store = connect(&StorageUrl::parse("sqlite::memory:")?).await?;
//! let ip = parse_ip("203.0.113.7")?;
//! let event = BanEvent::new(EventKind::Ban, ip, "sshd", "web1", chrono::Utc::now())?;
//! store.record(&event).await?;
//! println!("{:?}", store.summary(&StatsQuery::last_days(7)).await?);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod config;
mod error;
mod event;
pub mod fail2ban;
pub mod geo;
mod ipkey;
mod query;
mod storage;
mod timearg;

pub use config::{
    create_private_dir, data_dir, default_database_path, GeoSettings, ReportSettings, Settings,
    StorageSettings, WebSettings, EXAMPLE_CONFIG, SYSTEM_CONFIG,
};
pub use error::{Error, Result};
pub use event::{
    bound_matches, parse_country, parse_ip, parse_time, truncate_ms, BanEvent, EventId, EventKind,
    Geo, MAX_MATCH_BYTES, MAX_MATCH_LINES, TRUNCATED,
};
pub use query::{
    day_start, network_of, BatchOutcome, DayCount, EventFilter, Offender, Order, Page, Recorded,
    StatsQuery, StoredEvent, Summary, TopBy, TopEntry,
};
pub use storage::{
    connect, connect_for, SqliteStorage, Storage, StorageUrl, Workload, ACCEPTED_URLS,
};
pub use timearg::{parse_age, parse_moment};

pub use chrono_tz::Tz;
pub use ipnetwork::IpNetwork;
