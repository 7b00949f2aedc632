//! The `Storage` trait and `connect(url)`, which picks a backend from the URL scheme.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};
use crate::event::{BanEvent, Geo};
use crate::query::{
    BatchOutcome, DayCount, EventFilter, Offender, Page, Recorded, StatsQuery, StoredEvent,
    Summary, TopBy, TopEntry,
};

mod mongo;
mod sqlite;

pub use mongo::MongoStorage;
pub use sqlite::SqliteStorage;

/// Bans are counted per 15-minute slot: every time zone in use today is a
/// whole number of slots from UTC, so slots add up to exact local days.
pub(crate) const SLOT_MS: i64 = 900_000;

/// The slot a moment falls in.
pub(crate) fn slot_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis().div_euclid(SLOT_MS)
}

/// The local days a range touches, every one present, filled slot by slot:
/// what both backends' `bans_per_day` share.
pub(crate) struct LocalDays {
    tz: Tz,
    days: std::collections::BTreeMap<chrono::NaiveDate, u64>,
    /// From the start of the first day to the end of the last, in UTC.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl LocalDays {
    /// `None` for an empty range.
    pub fn of(q: &StatsQuery, tz: Tz) -> Option<Self> {
        if q.until <= q.since {
            return None;
        }
        let first = q.since.with_timezone(&tz).date_naive();
        let last = (q.until - chrono::Duration::milliseconds(1))
            .with_timezone(&tz)
            .date_naive();
        Some(LocalDays {
            tz,
            days: first
                .iter_days()
                .take_while(|d| *d <= last)
                .map(|d| (d, 0))
                .collect(),
            from: crate::query::day_start(tz, first),
            to: crate::query::day_start(tz, last + chrono::Duration::days(1)),
        })
    }

    /// Adds the bans of one slot to its local day.
    pub fn add(&mut self, slot: i64, bans: u64) -> Result<()> {
        let at = DateTime::from_timestamp_millis(slot * SLOT_MS)
            .ok_or_else(|| Error::Storage(format!("corrupt slot {slot}")))?;
        if let Some(n) = self.days.get_mut(&at.with_timezone(&self.tz).date_naive()) {
            *n += bans;
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<DayCount> {
        self.days
            .into_iter()
            .map(|(day, bans)| DayCount { day, bans })
            .collect()
    }
}

/// A store of ban events with the statistics Aegis shows.
///
/// Object-safe: front ends hold an `Arc<dyn Storage>` from [`connect`]. Every
/// method validates its input; recording is idempotent on [`BanEvent::id`].
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Stores one event, or reports that it is already stored.
    async fn record(&self, event: &BanEvent) -> Result<Recorded> {
        let outcome = self.record_batch(std::slice::from_ref(event)).await?;
        Ok(if outcome.inserted == 1 {
            Recorded::Inserted
        } else {
            Recorded::Duplicate
        })
    }

    /// Stores many events at once; events already stored (or repeated in the batch) count as duplicates.
    async fn record_batch(&self, events: &[BanEvent]) -> Result<BatchOutcome>;

    /// Lists events matching `filter`, ordered by time, one page at a time.
    async fn events(&self, filter: &EventFilter, page: Page) -> Result<Vec<StoredEvent>>;

    /// Counts events matching `filter`.
    async fn count_events(&self, filter: &EventFilter) -> Result<u64>;

    /// Headline figures for a range.
    async fn summary(&self, query: &StatsQuery) -> Result<Summary>;

    /// New bans in a range: [`Summary::bans`] alone, cheap enough for any range
    /// (the dashboard compares each period with the one before it).
    async fn ban_count(&self, query: &StatsQuery) -> Result<u64> {
        Ok(self.summary(query).await?.bans)
    }

    /// New bans per calendar day in `tz`, every day of the range present (zero-filled).
    ///
    /// The range is widened to whole local days.
    async fn bans_per_day(&self, query: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>>;

    /// The most banned addresses, most bans first (ties: most recent first, then address).
    async fn top_offenders(&self, query: &StatsQuery, limit: u32) -> Result<Vec<Offender>>;

    /// A ranking of countries, jails, hosts, ASNs or networks, most bans first (ties by key).
    async fn top(&self, query: &StatsQuery, by: TopBy, limit: u32) -> Result<Vec<TopEntry>>;

    /// Every stored event of one address, oldest first.
    async fn ip_history(&self, ip: IpAddr) -> Result<Vec<StoredEvent>>;

    /// Deletes events older than `before`; returns how many went.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64>;

    /// Sets the geolocation of every stored event of `ip`; returns how many changed.
    async fn set_geo(&self, ip: IpAddr, geo: &Geo) -> Result<u64>;

    /// [`Storage::set_geo`] for many addresses; backends override it to batch.
    async fn set_geo_many(&self, updates: &[(IpAddr, Geo)]) -> Result<u64> {
        let mut changed = 0;
        for (ip, geo) in updates {
            changed += self.set_geo(*ip, geo).await?;
        }
        Ok(changed)
    }

    /// Cached answers of the online geolocation provider for `ips` (absent: not cached;
    /// `None`: the provider knew nothing).
    async fn cached_geo(&self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>>;

    /// Caches answers of the online geolocation provider.
    async fn cache_geo(&self, answers: &[(IpAddr, Option<Geo>)]) -> Result<()>;

    /// Distinct stored addresses, in address order, after `after` (for backfills).
    async fn distinct_ips(&self, after: Option<IpAddr>, limit: u32) -> Result<Vec<IpAddr>>;
}

/// A storage URL whose `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageUrl(String);

/// The accepted URL forms, quoted in errors.
pub const ACCEPTED_URLS: &str = "sqlite:///absolute/path.db, sqlite://relative/path.db, \
sqlite::memory:, mongodb://[user:pass@]host[:port][/db][?options], mongodb+srv://…";

impl StorageUrl {
    /// Checks the form (scheme and path) without opening anything.
    pub fn parse(raw: &str) -> Result<Self> {
        let url = StorageUrl(raw.trim().to_owned());
        url.backend()?;
        Ok(url)
    }

    /// Whether the store is reached over the network (MongoDB), not a local file.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend(), Ok(Backend::Mongo))
    }

    /// A MongoDB URL with `name` as its database (the path), unless it names one.
    pub fn with_database(&self, name: &str) -> Result<Self> {
        if !self.is_remote() {
            return Err(Error::Config(
                "[storage] database applies to MongoDB URLs only".into(),
            ));
        }
        let bad = |c: char| "/\\. \"$".contains(c) || c.is_control();
        if name.is_empty() || name.len() > 63 || name.chars().any(bad) {
            return Err(Error::Config(format!(
                "[storage] database {name:?} is not a MongoDB database name: \
                 up to 63 characters, none of / \\ . space \" $"
            )));
        }
        let raw = self.0.as_str();
        let (base, query) = match raw.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (raw, None),
        };
        let hosts_start = raw.find("://").map_or(0, |i| i + 3);
        let (authority, path) = match base[hosts_start..].find('/') {
            Some(i) => base.split_at(hosts_start + i),
            None => (base, ""),
        };
        match path.trim_start_matches('/') {
            "" => {}
            same if same == name => return Ok(self.clone()),
            other => {
                return Err(Error::Config(format!(
                    "the storage URL names database {other:?} and [storage] database says {name:?}: keep one"
                )))
            }
        }
        let mut url = format!("{authority}/{name}");
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Ok(StorageUrl(url))
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn backend(&self) -> Result<Backend> {
        let raw = self.0.as_str();
        if raw == "sqlite::memory:" {
            return Ok(Backend::SqliteMemory);
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == "/" {
                return Err(Error::Config(format!(
                    "storage URL {self} has no database path; accepted forms: {ACCEPTED_URLS}"
                )));
            }
            return Ok(Backend::SqliteFile(PathBuf::from(path)));
        }
        if raw.starts_with("mongodb://") || raw.starts_with("mongodb+srv://") {
            return Ok(Backend::Mongo);
        }
        Err(Error::Config(format!(
            "unsupported storage URL {self}: accepted forms are {ACCEPTED_URLS}"
        )))
    }

    fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("****"));
                u.to_string()
            }
            Ok(_) => self.0.clone(),
            // Unparseable: hide anything between "://" and the last '@'.
            Err(_) => match (self.0.find("://"), self.0.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    format!("{}****{}", &self.0[..s + 3], &self.0[at..])
                }
                _ => self.0.clone(),
            },
        }
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageUrl({})", self.redacted())
    }
}

impl std::str::FromStr for StorageUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

enum Backend {
    SqliteMemory,
    SqliteFile(PathBuf),
    Mongo,
}

/// How a process uses its store: backends size caches and pools for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Workload {
    /// Commands and imports: generous caches for bulk writes (the default).
    #[default]
    Batch,
    /// A long-running server of reads, such as the dashboard: small, bounded memory.
    Serve,
}

/// Opens the store named by `url`, creating the database and its schema when needed.
pub async fn connect(url: &StorageUrl) -> Result<Arc<dyn Storage>> {
    connect_for(url, Workload::Batch).await
}

/// [`connect`], with caches sized for `workload`.
pub async fn connect_for(url: &StorageUrl, workload: Workload) -> Result<Arc<dyn Storage>> {
    match url.backend()? {
        Backend::SqliteMemory => Ok(Arc::new(SqliteStorage::open_in_memory()?)),
        Backend::SqliteFile(path) => {
            let storage =
                tokio::task::spawn_blocking(move || SqliteStorage::open_for(&path, workload))
                    .await
                    .map_err(|e| Error::Storage(format!("opening the database failed: {e}")))??;
            Ok(Arc::new(storage))
        }
        Backend::Mongo => Ok(Arc::new(MongoStorage::connect(url).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url =
            StorageUrl::parse("mongodb://aegis:s3cret@db.example:27017/aegis?authSource=admin")
                .unwrap();
        for shown in [format!("{url}"), format!("{url:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn url_forms() {
        assert!(matches!(
            StorageUrl::parse("sqlite::memory:").unwrap().backend(),
            Ok(Backend::SqliteMemory)
        ));
        match StorageUrl::parse("sqlite:///var/lib/aegis/aegis.db")
            .unwrap()
            .backend()
        {
            Ok(Backend::SqliteFile(p)) => assert_eq!(p, PathBuf::from("/var/lib/aegis/aegis.db")),
            _ => panic!("absolute path"),
        }
        match StorageUrl::parse("sqlite://data/aegis.db")
            .unwrap()
            .backend()
        {
            Ok(Backend::SqliteFile(p)) => assert_eq!(p, PathBuf::from("data/aegis.db")),
            _ => panic!("relative path"),
        }
        for bad in ["/var/lib/aegis.db", "postgres://x", "sqlite://", ""] {
            let err = StorageUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite::memory:"), "{bad}: {err}");
        }
    }
}
