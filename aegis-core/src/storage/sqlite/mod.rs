//! The embedded default backend: one SQLite file (bundled library, nothing to install).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OpenFlags};

use super::{DecisionLog, GeoCache, Storage, Workload};
use crate::config::create_private_dir;
use crate::decision::{AgentReport, Applied, Decision};
use crate::error::{Error, Result};
use crate::event::{BanEvent, Geo};
use crate::query::{
    BatchOutcome, DayCount, EventFilter, Offender, Page, StatsQuery, StoredEvent, Summary, TopBy,
    TopEntry,
};

mod decisions;
mod key;
mod migrations;
mod read;
mod stats;
mod tally;
mod window;
mod write;

/// How long a writer waits for another process's lock before giving up.
/// Hundreds of concurrent `aegis ban` calls each hold it for about a millisecond.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for the write lock to use a rolling window before
/// it answers from the range path instead: other requests hold it for a
/// moment each, `maintain` or an import for long.
const WINDOW_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// A store in one SQLite database file, or in memory.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    writer: Mutex<Connection>,
    /// Read connections (file databases only); WAL lets them read while one writes.
    readers: Mutex<Readers>,
    /// Signalled when a read connection goes back to the pool.
    returned: Condvar,
    sizes: Sizes,
}

#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// Cache and pool sizes for a workload. Page caches fill as pages are read,
/// so in a long-running process their ceiling is its memory.
#[derive(Clone, Copy)]
struct Sizes {
    writer_cache_kib: i64,
    reader_cache_kib: i64,
    max_readers: usize,
    /// WAL pages written before they are copied back into the database: a
    /// page rewritten by many batches in between is copied once.
    checkpoint_pages: i64,
}

impl Sizes {
    fn of(workload: Workload) -> Self {
        match workload {
            // Large imports touch index pages all over a big file.
            Workload::Batch => Sizes {
                writer_cache_kib: 262_144,
                reader_cache_kib: 32_768,
                max_readers: 8,
                checkpoint_pages: 16_384,
            },
            // The dashboard reads summaries; the operating system caches the file.
            // Six readers: its throttled statistics take at most three.
            Workload::Serve => Sizes {
                writer_cache_kib: 8_192,
                reader_cache_kib: 4_096,
                max_readers: 6,
                checkpoint_pages: 1_000,
            },
        }
    }
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.path {
            Some(p) => write!(f, "SqliteStorage({})", p.display()),
            None => f.write_str("SqliteStorage(:memory:)"),
        }
    }
}

pub(crate) fn sql_err(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(code, ref msg)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::PermissionDenied
            ) =>
        {
            Error::Unavailable(msg.clone().unwrap_or_else(|| code.to_string()))
        }
        other => Error::Storage(other.to_string()),
    }
}

impl SqliteStorage {
    /// Opens (creating when needed) the database at `path`, with its directory,
    /// with caches sized for `workload`.
    pub fn open_for(path: &Path, workload: Workload) -> Result<Self> {
        let sizes = Sizes::of(workload);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
            share_with_group(dir, path)?;
        }
        let mut conn = open_conn(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| with_path(path, sql_err(e)))?;
        conn.pragma_update(None, "cache_size", -sizes.writer_cache_kib)
            .map_err(sql_err)?;
        conn.pragma_update(None, "wal_autocheckpoint", sizes.checkpoint_pages)
            .map_err(sql_err)?;
        migrations::migrate(&mut conn).map_err(|e| with_path(path, e))?;
        Ok(SqliteStorage {
            inner: Arc::new(Inner {
                path: Some(path.to_owned()),
                writer: Mutex::new(conn),
                readers: Mutex::default(),
                returned: Condvar::new(),
                sizes,
            }),
        })
    }

    /// A private in-memory database, gone when dropped.
    pub fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory().map_err(sql_err)?;
        conn.set_prepared_statement_cache_capacity(128);
        migrations::migrate(&mut conn)?;
        Ok(SqliteStorage {
            inner: Arc::new(Inner {
                path: None,
                writer: Mutex::new(conn),
                readers: Mutex::default(),
                returned: Condvar::new(),
                sizes: Sizes::of(Workload::Batch),
            }),
        })
    }

    /// Runs `f` on the writer connection in the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            // Each use of the writer sets the patience it needs (see `write_if_free`).
            let mut conn = lock(&inner.writer);
            conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer, committed when it succeeds.
    async fn write_tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let value = f(&tx).map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` on the writer connection when it is free within a moment;
    /// `Ok(None)` when it is not, or when the database refuses the write
    /// (locked for long by another process): the caller has another way.
    async fn write_if_free<T, F>(&self, f: F) -> Result<Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<Option<T>> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let Some(mut conn) = lock_within(&inner.writer, WINDOW_BUSY_TIMEOUT) else {
                return Ok(None);
            };
            conn.busy_timeout(WINDOW_BUSY_TIMEOUT).map_err(sql_err)?;
            match f(&mut conn) {
                Err(Error::Unavailable(_)) => Ok(None),
                other => other,
            }
        })
        .await
    }

    /// Runs `f` on a read connection (the writer for in-memory databases).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let Some(path) = &inner.path else {
                return f(&lock(&inner.writer));
            };
            let conn = inner.take_reader(path)?;
            // One snapshot for all of a read's statements: a statistic read in
            // parts (whole days, then the edges) never sees a batch land between them.
            let result = conn
                .unchecked_transaction()
                .map_err(sql_err)
                .and_then(|snapshot| f(&snapshot));
            lock(&inner.readers).idle.push(conn);
            inner.returned.notify_one();
            result
        })
        .await
    }
}

impl Inner {
    /// An idle read connection, a new one while fewer than the maximum are open,
    /// else the next one returned.
    fn take_reader(&self, path: &Path) -> Result<Connection> {
        let mut readers = lock(&self.readers);
        loop {
            if let Some(conn) = readers.idle.pop() {
                return Ok(conn);
            }
            if readers.open < self.sizes.max_readers {
                readers.open += 1;
                break;
            }
            readers = self
                .returned
                .wait(readers)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(readers);
        let opened = open_conn(path, OpenFlags::SQLITE_OPEN_READ_ONLY).and_then(|c| {
            c.pragma_update(None, "cache_size", -self.sizes.reader_cache_kib)
                .map_err(sql_err)?;
            Ok(c)
        });
        if opened.is_err() {
            lock(&self.readers).open -= 1;
            self.returned.notify_one();
        }
        opened
    }
}

/// In a directory its group may write (`install -d -g aegis -m 2770`), a new
/// database is made group-writable too, and SQLite gives its journal files the
/// same mode: the dashboard, running as a member of that group, can read what
/// the ban path (root) writes. Elsewhere the database stays owner-only.
fn share_with_group(dir: &Path, path: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let group_writable = std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o020 != 0);
    if !group_writable || path.exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o660)
        .open(path)
    {
        // The mode asked for, whatever the umask of the process.
        Ok(_) => std::fs::set_permissions(path, PermissionsExt::from_mode(0o660))
            .map_err(|e| Error::io(format!("cannot share {} with its group", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a usable connection; carry on.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `m` locked, unless others hold it for longer than `patience`.
fn lock_within<T>(m: &Mutex<T>, patience: Duration) -> Option<MutexGuard<'_, T>> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match m.try_lock() {
            Ok(guard) => return Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(500));
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Storage(format!("database task failed: {e}")))?
}

fn open_conn(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| with_path(path, sql_err(e)))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    // Room for every statement the backend prepares: re-preparing the ones that
    // fire triggers costs more than running them.
    conn.set_prepared_statement_cache_capacity(128);
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(sql_err)?;
    Ok(conn)
}

fn with_path(path: &Path, e: Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(format!("{}: {m}", path.display())),
        Error::Storage(m) => Error::Storage(format!("{}: {m}", path.display())),
        other => other,
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn record_batch(&self, events: &[BanEvent]) -> Result<BatchOutcome> {
        let events = events.to_vec();
        self.write(move |conn| write::insert(conn, &events)).await
    }

    async fn events(&self, filter: &EventFilter, page: Page) -> Result<Vec<StoredEvent>> {
        let filter = filter.clone();
        self.read(move |conn| read::events(conn, &filter, page))
            .await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let filter = filter.clone();
        self.read(move |conn| read::count(conn, &filter)).await
    }

    async fn summary(&self, query: &StatsQuery) -> Result<Summary> {
        let q = query.clone();
        let windowed = self
            .write_if_free(move |conn| {
                stats::windowed(conn, &q, |tx, win| {
                    let [bans, unique_ips, countries, jails, hosts] =
                        window::summary(tx, win).map_err(sql_err)?;
                    let currently_banned = stats::currently_banned(tx, &q, Utc::now())?;
                    Ok(Summary {
                        bans,
                        unique_ips,
                        countries,
                        jails,
                        hosts,
                        currently_banned,
                    })
                })
            })
            .await?;
        if let Some(summary) = windowed {
            return Ok(summary);
        }
        let query = query.clone();
        self.read(move |conn| stats::summary(conn, &query, Utc::now()))
            .await
    }

    async fn ban_count(&self, query: &StatsQuery) -> Result<u64> {
        let query = query.clone();
        self.read(move |conn| stats::ban_count(conn, &query)).await
    }

    async fn bans_per_day(&self, query: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>> {
        let query = query.clone();
        self.read(move |conn| stats::bans_per_day(conn, &query, tz))
            .await
    }

    async fn top_offenders(&self, query: &StatsQuery, limit: u32) -> Result<Vec<Offender>> {
        let q = query.clone();
        let windowed = self
            .write_if_free(move |conn| {
                stats::windowed(conn, &q, |tx, win| {
                    window::top_offenders(tx, win, &q, limit).map_err(sql_err)
                })
            })
            .await?;
        if let Some(top) = windowed {
            return Ok(top);
        }
        let query = query.clone();
        self.read(move |conn| stats::top_offenders(conn, &query, limit))
            .await
    }

    async fn top(&self, query: &StatsQuery, by: TopBy, limit: u32) -> Result<Vec<TopEntry>> {
        let q = query.clone();
        let windowed = self
            .write_if_free(move |conn| {
                stats::windowed(conn, &q, |tx, win| {
                    window::top(tx, win, by, limit).map_err(sql_err)
                })
            })
            .await?;
        if let Some(top) = windowed {
            return Ok(top);
        }
        let query = query.clone();
        self.read(move |conn| stats::top(conn, &query, by, limit))
            .await
    }

    async fn maintain(&self) -> Result<()> {
        self.write(write::restore_address_index).await?;
        let now = Utc::now().timestamp_millis();
        let kept = self.write_tx(move |tx| window::kept(tx, now)).await?;
        // One transaction per window: writers queue behind one window at a time.
        for win in kept {
            self.write_tx(move |tx| window::maintain(tx, win, now))
                .await?;
        }
        Ok(())
    }

    async fn expect_bulk(&self, events: u64) -> Result<()> {
        self.write(move |conn| write::expect_bulk(conn, events))
            .await
    }

    async fn ip_history(&self, ip: IpAddr) -> Result<Vec<StoredEvent>> {
        self.read(move |conn| read::ip_history(conn, ip)).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.write(move |conn| write::prune(conn, before)).await
    }

    async fn set_geo(&self, ip: IpAddr, geo: &Geo) -> Result<u64> {
        let geo = geo.clone();
        self.write(move |conn| write::set_geo(conn, ip, &geo)).await
    }

    async fn set_geo_many(&self, updates: &[(IpAddr, Geo)]) -> Result<u64> {
        let updates = updates.to_vec();
        self.write(move |conn| write::set_geo_many(conn, &updates))
            .await
    }

    async fn distinct_ips(&self, after: Option<IpAddr>, limit: u32) -> Result<Vec<IpAddr>> {
        self.read(move |conn| read::distinct_ips(conn, after, limit))
            .await
    }

    fn geo_cache(&self) -> &dyn GeoCache {
        self
    }

    fn decision_log(&self) -> &dyn DecisionLog {
        self
    }

    async fn state(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let name = name.to_owned();
        self.read(move |conn| read::state(conn, &name)).await
    }

    async fn set_state(&self, name: &str, value: &serde_json::Value) -> Result<()> {
        let (name, body) = (name.to_owned(), value.to_string());
        self.write(move |conn| write::set_state(conn, &name, &body))
            .await
    }
}

#[async_trait]
impl DecisionLog for SqliteStorage {
    async fn decide(&self, decision: &Decision) -> Result<Decision> {
        let decision = decision.clone();
        self.write(move |conn| decisions::decide(conn, &decision))
            .await
    }

    async fn after(&self, after: u64, limit: u32) -> Result<Vec<Decision>> {
        self.read(move |conn| decisions::after(conn, after, limit))
            .await
    }

    async fn on(&self, ip: IpAddr) -> Result<Vec<Decision>> {
        self.read(move |conn| decisions::on(conn, ip)).await
    }

    async fn made_from(&self, host: &str, since: DateTime<Utc>) -> Result<u64> {
        let host = host.to_owned();
        self.read(move |conn| decisions::made_from(conn, &host, since))
            .await
    }

    async fn record_applied(&self, applied: &[Applied]) -> Result<()> {
        let applied = applied.to_vec();
        self.write(move |conn| decisions::record_applied(conn, &applied))
            .await
    }

    async fn applied(&self, ids: &[u64]) -> Result<Vec<Applied>> {
        let ids = ids.to_vec();
        self.read(move |conn| decisions::applied(conn, &ids)).await
    }

    async fn report_agent(&self, report: &AgentReport) -> Result<()> {
        let report = report.clone();
        self.write(move |conn| decisions::report_agent(conn, &report))
            .await
    }

    async fn agents(&self) -> Result<Vec<AgentReport>> {
        self.read(decisions::agents).await
    }
}

#[async_trait]
impl GeoCache for SqliteStorage {
    async fn cached_geo(&self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>> {
        let ips = ips.to_vec();
        self.read(move |conn| read::cached_geo(conn, &ips)).await
    }

    async fn cache_geo(&self, answers: &[(IpAddr, Option<Geo>)]) -> Result<()> {
        let answers = answers.to_vec();
        self.write(move |conn| write::cache_geo(conn, &answers))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn a_group_writable_directory_shares_the_database_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2770)).unwrap();
        let store = SqliteStorage::open_for(&shared.join("aegis.db"), Workload::Batch).unwrap();
        drop(store);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&shared.join("aegis.db")), 0o660);

        let private = dir.path().join("private");
        SqliteStorage::open_for(&private.join("aegis.db"), Workload::Batch).unwrap();
        assert_eq!(mode(&private), 0o700);
        assert_eq!(
            mode(&private.join("aegis.db")) & 0o077 & !0o044,
            0,
            "no group write"
        );
    }

    /// A bulk load that outgrows the store goes without the per-address
    /// index, answers exactly meanwhile, and has it back after `maintain`.
    #[tokio::test]
    async fn a_bulk_load_sets_the_address_index_aside_until_maintain() {
        use crate::event::EventKind;
        use crate::query::EventFilter;

        let store = SqliteStorage::open_in_memory().unwrap();
        let has_index = |store: &SqliteStorage| -> bool {
            let conn = store.inner.writer.lock().unwrap();
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events_ip'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        };
        let ban = |n: u8| {
            let ip = format!("192.0.2.{n}").parse().unwrap();
            let time = Utc::now() - chrono::Duration::minutes(i64::from(n));
            BanEvent::new(EventKind::Ban, ip, "sshd", "web1", time).unwrap()
        };
        store.record(&ban(1)).await.unwrap();
        store.expect_bulk(1).await.unwrap();
        assert!(has_index(&store), "no bigger than the store: kept");

        store.expect_bulk(1_000).await.unwrap();
        assert!(!has_index(&store));
        let batch: Vec<BanEvent> = (2..=200).map(ban).collect();
        store.record_batch(&batch).await.unwrap();
        let one: IpAddr = "192.0.2.7".parse().unwrap();
        let filter = EventFilter {
            ip: Some(one),
            ..EventFilter::default()
        };
        assert_eq!(store.count_events(&filter).await.unwrap(), 1);
        store.maintain().await.unwrap();
        assert!(has_index(&store));
        assert_eq!(store.ip_history(one).await.unwrap().len(), 1);

        // An address that moves country during a bulk load has its earlier
        // bans moved through the index, which is built again for it.
        store.expect_bulk(1_000_000).await.unwrap();
        assert!(!has_index(&store));
        let mut moved = ban(7);
        moved.time += chrono::Duration::seconds(1);
        moved.geo = Some(crate::event::Geo {
            country: Some("FR".into()),
            ..Default::default()
        });
        store.record(&moved).await.unwrap();
        assert!(has_index(&store));
        let mut france = StatsQuery::last_days(1);
        france.scope.country = Some("FR".into());
        assert_eq!(store.ban_count(&france).await.unwrap(), 2);
    }
}
