//! The durable local spool every recorded event passes through.
//!
//! One file per event, named by the event id: writes are fsync'd and renamed into
//! place, so concurrent writers never see half a file and a retried event is spooled
//! once. One writer at a time (an advisory lock on `.lock`) locates events and
//! moves them into the store, a batch at a time, deleting files once stored; a
//! crash between the two at worst records an event twice, which the store's
//! idempotence absorbs.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::fs::{self, File, TryLockError};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aegis_core::geo::Geolocator;
use aegis_core::share::SharePolicy;
use aegis_core::GeoSettings;
use aegis_core::{connect, BanEvent, BatchOutcome, Storage, StorageUrl};
use anyhow::{Context, Result};

use crate::system_log::SystemLog;

/// Events read from the spool per batch.
const BATCH: usize = 2_000;
/// Held by the one process storing spooled events.
const LOCK: &str = ".lock";
/// Why the last attempt to store spooled events failed; gone once one succeeds.
const LAST_FAILURE: &str = ".last-failure";
/// How long a writer waits for a network store to connect or to take a batch:
/// it is off fail2ban's clock, but a hung store must not keep a process alive
/// forever. What it leaves stays spooled, and the next call starts another.
/// Per step, so that a long backlog, stored batch by batch, is no failure.
const WRITER_PATIENCE: Duration = Duration::from_secs(60);

/// Who moves the spool into the store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Drainer {
    /// `aegis flush`: waits for a writer at work, then for the store, as long
    /// as it takes (its user can interrupt it).
    Flush,
    /// The writer `aegis ban` starts: leaves a spool another writer holds and
    /// gives a network store [`WRITER_PATIENCE`] per step.
    Writer,
}

/// The spool directory.
pub struct Spool {
    dir: PathBuf,
    /// Told when the store stops or starts taking events.
    log: SystemLog,
    /// Shares the bans stored, when `[share]` is on.
    policy: Option<SharePolicy>,
    /// Locates the events spooled without a location (`aegis ban` leaves that
    /// to the writer), opened at the first such event.
    geo: GeoSettings,
    geolocator: OnceCell<Option<Geolocator>>,
}

/// What a drain did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Drained {
    /// Events newly stored.
    pub inserted: u64,
    /// Events the store already had.
    pub duplicates: u64,
    /// Unreadable files, set aside with a `.bad` suffix.
    pub unreadable: u64,
}

impl Spool {
    /// The spool at `dir` (created on first write).
    pub fn new(dir: PathBuf, log: SystemLog) -> Self {
        Spool {
            dir,
            log,
            policy: None,
            geo: GeoSettings::default(),
            geolocator: OnceCell::new(),
        }
    }

    /// The same spool, sharing every batch it stores by `policy`.
    pub fn sharing(self, policy: Option<SharePolicy>) -> Self {
        Spool { policy, ..self }
    }

    /// The same spool, locating events by `geo`.
    pub fn locating(self, geo: GeoSettings) -> Self {
        Spool { geo, ..self }
    }

    /// Where it lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the spool, owner-only (0700) where newly made: it holds attackers'
    /// addresses and the hosts they hit.
    fn create_dir(&self) -> Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .with_context(|| format!("cannot create the spool {}", self.dir.display()))
    }

    /// Writes `event` durably.
    pub fn push(&self, event: &BanEvent) -> Result<PathBuf> {
        self.create_dir()?;
        let name = format!("{}.json", event.id());
        let target = self.dir.join(&name);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let tmp = self
            .dir
            .join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
        let body = serde_json::to_vec(event)?;
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(&body)?;
            // Renamed before the fsync: the file's and the name's changes then
            // reach the disk in one journal commit, and the directory's fsync
            // finds little left to do. A writer may store the event before the
            // fsync returns; that is harmless.
            fs::rename(&tmp, &target)?;
            file.sync_all()?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::Error::new(e)
                .context(format!("cannot write to the spool {}", self.dir.display()))
        })?;
        Ok(target)
    }

    /// Spooled event files but those in `skip`, at most `limit`.
    fn pending(&self, limit: usize, skip: &HashSet<PathBuf>) -> Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the spool {}", self.dir.display()))
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") && !skip.contains(&path) {
                files.push(path);
                if files.len() == limit {
                    break;
                }
            }
        }
        Ok(files)
    }

    /// Whether anything waits in the spool.
    fn has_pending(&self) -> bool {
        self.pending(1, &HashSet::new())
            .is_ok_and(|f| !f.is_empty())
    }

    /// Whether a writer is storing spooled events now. One that is will also
    /// store any event spooled before it lets go (see [`Spool::store_all`]).
    pub fn writer_running(&self) -> bool {
        File::open(self.dir.join(LOCK))
            .is_ok_and(|f| matches!(f.try_lock(), Err(TryLockError::WouldBlock)))
    }

    /// The writer's lock, waited for when `wait`; else `None` when another
    /// writer holds it.
    fn lock(&self, wait: bool) -> Result<Option<File>> {
        self.create_dir()?;
        let path = self.dir.join(LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if wait {
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
            return Ok(Some(file));
        }
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Stores every spooled event as the one writer, and keeps at it while events
    /// arrive: a call that found the lock taken leaves its event to the holder.
    /// `None` when another writer holds the lock and `drainer` is a writer. The store
    /// is opened only once the lock is held, so that a store that is slow to
    /// answer keeps one writer waiting, not one per ban. A failure is noted for
    /// the next `aegis ban` to report.
    pub async fn store_all(&self, url: &StorageUrl, drainer: Drainer) -> Result<Option<Drained>> {
        let Some(mut lock) = self.lock(drainer == Drainer::Flush)? else {
            return Ok(None);
        };
        let stored = async {
            let patience = drainer.patience(url);
            let store = within(patience, connect(url)).await?;
            let mut total = Drained::default();
            loop {
                self.drain(store.as_ref(), patience, &mut total).await?;
                if fs::remove_file(self.dir.join(LAST_FAILURE)).is_ok() {
                    self.log.notice(&format!(
                        "the store takes events again; {} waiting in {} stored",
                        total.inserted,
                        self.dir.display()
                    ));
                }
                drop(lock);
                // An event spooled while the lock was held may have been left to
                // us; if another writer has the lock now, it is theirs.
                if !self.has_pending() {
                    return Ok(Some(total));
                }
                match self.lock(false)? {
                    Some(again) => lock = again,
                    None => return Ok(Some(total)),
                }
            }
        };
        stored
            .await
            .inspect_err(|e: &anyhow::Error| self.set_failure(&format!("{e:#}")))
    }

    /// Notes why spooled events could not be stored, for the next `aegis ban` to
    /// say, and tells the system log when this starts.
    pub fn set_failure(&self, why: &str) {
        let line = why.lines().next().unwrap_or_default();
        let path = self.dir.join(LAST_FAILURE);
        if !path.exists() {
            self.log.warning(&format!(
                "events wait in {} because the store did not take them: {line}",
                self.dir.display()
            ));
        }
        // Replaced whole, so that a call reading it never sees it half written.
        let tmp = self
            .dir
            .join(format!("{LAST_FAILURE}.{}", std::process::id()));
        if fs::write(&tmp, line).is_ok() {
            let _ = fs::rename(&tmp, path);
        }
    }

    /// Why the last attempt to store spooled events failed, if it did.
    pub fn last_failure(&self) -> Option<String> {
        fs::read_to_string(self.dir.join(LAST_FAILURE))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Records every spooled event into `store`, deleting files once stored,
    /// and counts them into `drained`. A file that cannot be parsed as an event
    /// is set aside as `.bad`; one that cannot be read now (permissions, too many
    /// open files) stays for the next writer, and the drain ends with an error
    /// that says so.
    async fn drain(
        &self,
        store: &dyn Storage,
        patience: Option<Duration>,
        drained: &mut Drained,
    ) -> Result<()> {
        let mut unread: HashSet<PathBuf> = HashSet::new();
        let mut first_unread = None;
        loop {
            let files = self.pending(BATCH, &unread)?;
            if files.is_empty() {
                break;
            }
            let mut events = Vec::with_capacity(files.len());
            let mut stored = Vec::with_capacity(files.len());
            for path in files {
                match read_event(&path) {
                    Read::Event(mut event) => {
                        if event.geo.is_none() {
                            event.geo = self.geolocator().and_then(|g| g.locate(event.ip));
                        }
                        events.push(*event);
                        stored.push(path);
                    }
                    Read::Unparsable => {
                        drained.unreadable += 1;
                        let _ = fs::rename(&path, path.with_extension("json.bad"));
                    }
                    Read::Gone => {} // another drain took it
                    Read::NotNow(e) => {
                        first_unread.get_or_insert_with(|| format!("{}: {e}", path.display()));
                        unread.insert(path);
                    }
                }
            }
            let BatchOutcome {
                inserted,
                duplicates,
            } = within(patience, store.record_batch(&events)).await?;
            drained.inserted += inserted;
            drained.duplicates += duplicates;
            // Before the files go: should this fail, the next drain stores the
            // batch again (as duplicates) and shares it again, which decides
            // nothing twice.
            within(patience, self.share(store, &events)).await?;
            for path in stored {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).context(format!("cannot delete {}", path.display())),
                }
            }
        }
        match first_unread {
            None => Ok(()),
            Some(first) => anyhow::bail!(
                "{} spooled events cannot be read now and stay in the spool (first: {first})",
                unread.len()
            ),
        }
    }
}

impl Spool {
    /// The configured geolocation, or the built-in country data when it cannot
    /// be opened: the writer has no terminal, so the system log is told why.
    fn geolocator(&self) -> Option<&Geolocator> {
        self.geolocator
            .get_or_init(|| {
                Geolocator::from_settings_or_builtin(&self.geo, |e| {
                    let why = format!("{e:#}; locating by the built-in country data");
                    eprintln!("aegis: warning: {why}");
                    self.log.warning(&why);
                })
            })
            .as_ref()
    }

    async fn share(&self, store: &dyn Storage, events: &[BanEvent]) -> Result<()> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let shared = policy.share(store, events).await?;
        for host in shared.tripped {
            self.log.warning(&format!(
                "circuit breaker open for {host}: it made more shared bans in the last minute than [share] per_minute allows; its bans are kept but not shared"
            ));
        }
        Ok(())
    }
}

impl Drainer {
    /// How long this drainer waits for each step of `url`'s store: only a
    /// writer sets a bound, and only for a network store. A file store's work
    /// (a migration when it opens, 35 s for 10M events here; a batch) runs on
    /// a blocking thread that no timeout stops: a bound would only report as
    /// failed work that goes on and commits, and leave its events spooled.
    /// SQLite's busy timeout bounds its waits for the lock.
    fn patience(self, url: &StorageUrl) -> Option<Duration> {
        (self == Drainer::Writer && url.is_remote()).then_some(WRITER_PATIENCE)
    }
}

/// `step`, within `patience` when there is one.
async fn within<T, E>(
    patience: Option<Duration>,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T>
where
    anyhow::Error: From<E>,
{
    let Some(patience) = patience else {
        return Ok(step.await?);
    };
    match tokio::time::timeout(patience, step).await {
        Ok(done) => Ok(done?),
        Err(_) => anyhow::bail!("no answer from the store within {} s", patience.as_secs()),
    }
}

/// What reading one spooled file gave.
enum Read {
    /// An event, cleaned as every recorded event is.
    Event(Box<BanEvent>),
    /// Not an event, and never will be: set aside.
    Unparsable,
    /// Already taken by another drain.
    Gone,
    /// Unreadable for now: left in place.
    NotNow(std::io::Error),
}

fn read_event(path: &Path) -> Read {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Gone,
        Err(e) => return Read::NotNow(e),
    };
    let Ok(mut event) = serde_json::from_slice::<BanEvent>(&bytes) else {
        return Read::Unparsable;
    };
    // Written by an older version, or located with data that has since been
    // cleaned: the same rule as on the way in.
    event.clean();
    match event.validate() {
        Ok(()) => Read::Event(Box::new(event)),
        Err(_) => Read::Unparsable,
    }
}
