//! The `Storage` trait and `connect(url)`, which picks a backend from the URL
//! scheme and hands it out behind the one front that validates every input.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::decision::{AgentReport, Applied, Decision};
use crate::error::{Error, Result};
use crate::event::{BanEvent, Geo};
use crate::query::{
    BatchOutcome, DayCount, EventFilter, Offender, Page, Recorded, StatsQuery, StoredEvent,
    Summary, TopBy, TopEntry,
};

mod checked;
#[cfg(feature = "mongodb")]
mod mongo;
pub(crate) mod shared;
#[cfg(feature = "sqlite")]
mod sqlite;
mod url;

pub use checked::throttled;
use checked::Checked;
use url::Backend;
pub use url::{StorageUrl, ACCEPTED_URLS};

/// A store of ban events with the statistics Aegis shows.
///
/// Object-safe: front ends hold an `Arc<dyn Storage>` from [`connect`], whose
/// inputs have been validated and normalised (addresses canonical, pages
/// bounded, events and locations checked) before any backend sees them.
/// Recording is idempotent on [`BanEvent::id`].
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

    /// Distinct stored addresses, in address order, after `after` (for backfills).
    async fn distinct_ips(&self, after: Option<IpAddr>, limit: u32) -> Result<Vec<IpAddr>>;

    /// Brings the summaries behind the dashboard's ranges up to date, building
    /// those missing: the end of an import, or a server's background task, does
    /// the work that would otherwise fall on the first request after it.
    /// Statistics are exact without it; it only moves work out of requests.
    async fn maintain(&self) -> Result<()> {
        Ok(())
    }

    /// Announces about `events` new events in large batches (an import), so
    /// that the store may set aside work it does better once for all of them;
    /// [`Storage::maintain`], which the importer calls when done, catches up.
    /// Every answer stays exact meanwhile, some only slower.
    async fn expect_bulk(&self, events: u64) -> Result<()> {
        let _ = events;
        Ok(())
    }

    /// The cache of the online geolocation provider's answers kept beside the events.
    fn geo_cache(&self) -> &dyn GeoCache;

    /// The decisions kept beside the events, and what the agents report.
    fn decision_log(&self) -> &dyn DecisionLog;

    /// State a long-running service keeps in the store, so that it survives
    /// restarts and moves with the store (the watcher's alerts in force), as
    /// JSON; `None` when never set.
    async fn state(&self, name: &str) -> Result<Option<serde_json::Value>>;

    /// Replaces the state called `name`.
    async fn set_state(&self, name: &str, value: &serde_json::Value) -> Result<()>;
}

/// Decisions in the order they were stored, and the agents' reports.
///
/// Ids are given by the store in the order decisions become visible, so a
/// reader that has seen id `n` misses nothing by asking for what follows `n`,
/// whatever the clocks of the hosts that made them.
#[async_trait]
pub trait DecisionLog: Send + Sync {
    /// Stores `decision` under the next id and returns it as stored; when one
    /// with the same [`Decision::key`] is stored already, returns that one.
    async fn decide(&self, decision: &Decision) -> Result<Decision>;

    /// The decisions after id `after`, oldest first, at most `limit`.
    async fn after(&self, after: u64, limit: u32) -> Result<Vec<Decision>>;

    /// The decisions whose target holds `ip`, oldest first.
    async fn on(&self, ip: IpAddr) -> Result<Vec<Decision>>;

    /// How many decisions the sharing policy made from `host`'s bans since `since`.
    async fn made_from(&self, host: &str, since: DateTime<Utc>) -> Result<u64>;

    /// Records what agents did with decisions; a host's later record of the
    /// same decision replaces its earlier one.
    async fn record_applied(&self, applied: &[Applied]) -> Result<()>;

    /// What every host's agent did with each of `decisions`, by decision then host.
    async fn applied(&self, decisions: &[u64]) -> Result<Vec<Applied>>;

    /// Keeps an agent's report, replacing its last one.
    async fn report_agent(&self, report: &AgentReport) -> Result<()>;

    /// Every agent's last report, by host.
    async fn agents(&self) -> Result<Vec<AgentReport>>;
}

/// Answers of the online geolocation provider, kept so that no address is asked twice.
#[async_trait]
pub trait GeoCache: Send + Sync {
    /// Cached answers for `ips` (absent: not cached; `None`: the provider knew nothing).
    async fn cached_geo(&self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>>;

    /// Caches answers.
    async fn cache_geo(&self, answers: &[(IpAddr, Option<Geo>)]) -> Result<()>;
}

/// How a process uses its store: backends size caches and pools for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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
        #[cfg(feature = "sqlite")]
        Backend::SqliteMemory => Ok(Arc::new(Checked::new(
            sqlite::SqliteStorage::open_in_memory()?,
        ))),
        #[cfg(feature = "sqlite")]
        Backend::SqliteFile(path) => {
            let storage = tokio::task::spawn_blocking(move || {
                sqlite::SqliteStorage::open_for(&path, workload)
            })
            .await
            .map_err(|e| Error::Storage(format!("opening the database failed: {e}")))??;
            Ok(Arc::new(Checked::new(storage)))
        }
        #[cfg(feature = "mongodb")]
        Backend::Mongo => Ok(Arc::new(Checked::new(
            mongo::MongoStorage::connect(url).await?,
        ))),
        #[allow(unreachable_patterns)] // every backend compiled in
        backend => Err(not_compiled(url, &backend)),
    }
}

/// Deletes the store named by `url` and everything in it: the SQLite file with
/// its journal, or the MongoDB database. There is no undo; test suites and
/// throw-away stores use it.
pub async fn destroy(url: &StorageUrl) -> Result<()> {
    match url.backend()? {
        Backend::SqliteMemory => Ok(()),
        #[cfg(feature = "sqlite")]
        Backend::SqliteFile(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                match std::fs::remove_file(&file) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::io(format!("cannot remove {}", path.display()), e))
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        #[cfg(feature = "mongodb")]
        Backend::Mongo => {
            mongo::MongoStorage::connect(url)
                .await?
                .drop_database()
                .await
        }
        #[allow(unreachable_patterns)] // every backend compiled in
        backend => Err(not_compiled(url, &backend)),
    }
}

/// A URL whose backend this build of the library leaves out.
fn not_compiled(url: &StorageUrl, backend: &Backend) -> Error {
    let feature = match backend {
        Backend::Mongo => "mongodb",
        Backend::SqliteMemory | Backend::SqliteFile(_) => "sqlite",
    };
    Error::Config(format!(
        "storage URL {url} needs the `{feature}` feature of aegis-core, which this build leaves out"
    ))
}
