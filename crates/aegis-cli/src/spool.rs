//! A durable local spool for events the store could not take.
//!
//! One file per event, named by the event id: writes are fsync'd and renamed into
//! place, so concurrent writers never see half a file and a retried event is spooled
//! once. Draining records a batch and then deletes its files; two drains at once at
//! worst record an event twice, which the store's idempotence absorbs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aegis_core::{BanEvent, BatchOutcome, Storage};
use anyhow::{Context, Result};

/// Events read from the spool per batch.
const BATCH: usize = 2_000;

/// The spool directory.
pub struct Spool {
    dir: PathBuf,
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
    pub fn new(dir: PathBuf) -> Self {
        Spool { dir }
    }

    /// Where it lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `event` durably.
    pub fn push(&self, event: &BanEvent) -> Result<PathBuf> {
        aegis_core::create_private_dir(&self.dir).context("cannot create the spool")?;
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
            file.sync_all()?;
            fs::rename(&tmp, &target)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::Error::new(e)
                .context(format!("cannot write to the spool {}", self.dir.display()))
        })?;
        Ok(target)
    }

    /// Spooled event files, at most `limit`.
    fn pending(&self, limit: usize) -> Result<Vec<PathBuf>> {
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
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
                if files.len() == limit {
                    break;
                }
            }
        }
        Ok(files)
    }

    /// Whether anything waits in the spool (a cheap check for the ban path).
    pub fn has_pending(&self) -> bool {
        self.pending(1).is_ok_and(|f| !f.is_empty())
    }

    /// Records every spooled event into `store`, deleting files once stored.
    pub async fn drain(&self, store: &dyn Storage) -> Result<Drained> {
        let mut drained = Drained::default();
        loop {
            let files = self.pending(BATCH)?;
            if files.is_empty() {
                return Ok(drained);
            }
            let mut events = Vec::with_capacity(files.len());
            let mut stored = Vec::with_capacity(files.len());
            for path in files {
                let parsed = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<BanEvent>(&b).ok())
                    .filter(|e| e.validate().is_ok());
                match parsed {
                    Some(event) => {
                        events.push(event);
                        stored.push(path);
                    }
                    None if path.exists() => {
                        drained.unreadable += 1;
                        let _ = fs::rename(&path, path.with_extension("json.bad"));
                    }
                    None => {} // another drain took it
                }
            }
            let BatchOutcome {
                inserted,
                duplicates,
            } = store.record_batch(&events).await?;
            drained.inserted += inserted;
            drained.duplicates += duplicates;
            for path in stored {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).context(format!("cannot delete {}", path.display())),
                }
            }
        }
    }
}
