//! `aegis import`: fail2ban's database and log files, idempotently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aegis_core::fail2ban::{open_log, parse_log_line, Fail2banDb, ImportItem};
use aegis_core::geo::Geolocator;
use aegis_core::{BanEvent, BatchOutcome, Storage, Tz};
use std::io::BufRead as _;

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::task::JoinHandle;

/// Events per transaction: larger batches rewrite fewer index pages per event.
const BATCH: usize = 100_000;

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    /// Records read.
    pub read: u64,
    /// Events newly stored.
    pub imported: u64,
    /// Events already stored.
    pub duplicates: u64,
    /// Records skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Where the first few of each reason's records are (`file:line`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub first_skipped: BTreeMap<String, Vec<String>>,
}

/// Places of skipped records named per reason.
const PLACES_SHOWN: usize = 5;

impl ImportSummary {
    fn print(&self, json: bool) -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        let skipped: u64 = self.skipped.values().sum();
        println!(
            "read {}, imported {}, duplicates {}, skipped {}",
            self.read, self.imported, self.duplicates, skipped
        );
        for (reason, n) in &self.skipped {
            match self.first_skipped.get(reason) {
                Some(places) => println!("  skipped {n}: {reason} ({})", places.join(", ")),
                None => println!("  skipped {n}: {reason}"),
            }
        }
        Ok(())
    }
}

/// Feeds events to the store in batches and keeps the tally. One batch is
/// stored while the next is read: the store works on its own thread.
struct Importer<'a> {
    store: Arc<dyn Storage>,
    geo: Option<&'a Geolocator>,
    pending: Vec<BanEvent>,
    in_flight: Option<JoinHandle<aegis_core::Result<BatchOutcome>>>,
    summary: ImportSummary,
}

impl<'a> Importer<'a> {
    fn new(store: Arc<dyn Storage>, geo: Option<&'a Geolocator>) -> Self {
        Importer {
            store,
            geo,
            pending: Vec::with_capacity(BATCH),
            in_flight: None,
            summary: ImportSummary::default(),
        }
    }

    /// Adds one record read at `place` (`file:line`, when it has one).
    async fn add(&mut self, item: ImportItem, place: Option<String>) -> Result<()> {
        self.summary.read += 1;
        // The readers clean every event and the geolocator every location;
        // checking again keeps one bad row from ever costing the whole batch.
        let item = item.and_then(|mut event| {
            if let Some(geo) = self.geo {
                event.geo = geo.locate(event.ip);
            }
            event.validate().map_err(|e| e.to_string())?;
            Ok(event)
        });
        match item {
            Ok(event) => {
                self.pending.push(event);
                if self.pending.len() >= BATCH {
                    self.flush().await?;
                }
            }
            Err(reason) => {
                // Group by the reason, not the row it came from.
                let reason = reason.split_once(": ").map_or(reason.as_str(), |(_, r)| r);
                let reason = reason.split(" \"").next().unwrap_or(reason).to_owned();
                if let Some(place) = place {
                    let places = self
                        .summary
                        .first_skipped
                        .entry(reason.clone())
                        .or_default();
                    if places.len() < PLACES_SHOWN {
                        places.push(place);
                    }
                }
                *self.summary.skipped.entry(reason).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Hands the pending batch to the store, once the one before it is stored.
    async fn flush(&mut self) -> Result<()> {
        self.settle().await?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
        let store = self.store.clone();
        self.in_flight = Some(tokio::spawn(
            async move { store.record_batch(&batch).await },
        ));
        // Lets the batch start before the caller reads on.
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Waits for the batch in flight and counts it.
    async fn settle(&mut self) -> Result<()> {
        if let Some(stored) = self.in_flight.take() {
            let outcome = stored.await.context("storing a batch failed")??;
            self.summary.imported += outcome.inserted;
            self.summary.duplicates += outcome.duplicates;
        }
        Ok(())
    }

    /// Stores what is pending, then brings the summaries up to date: the
    /// import pays for what it added, not the dashboard's next visitor.
    async fn finish(mut self) -> Result<ImportSummary> {
        self.flush().await?;
        self.settle().await?;
        // Even when nothing was new: the store may have set work aside for the load.
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{msg} {spinner} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message("updating summaries");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        self.store
            .maintain()
            .await
            .context("updating the summaries failed (the events are stored)")?;
        bar.finish_and_clear();
        Ok(self.summary)
    }
}

fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    // Draws only on a terminal: fine under cron and in pipes.
    let template = if len.is_some() {
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})"
    } else {
        "{msg} {spinner} {pos} lines ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// `aegis import fail2ban-db`
pub async fn fail2ban_db(
    store: Arc<dyn Storage>,
    geo: Option<&Geolocator>,
    path: &Path,
    host: &str,
    json: bool,
) -> Result<()> {
    let db = Fail2banDb::open(path, host)?;
    let rows = db.count()?;
    store.expect_bulk(rows).await?;
    let bar = progress(Some(rows), "importing");
    let mut importer = Importer::new(store, geo);
    let mut after = 0;
    loop {
        let (items, last) = db.read_page(after, BATCH as u32)?;
        let Some(last) = last else { break };
        after = last;
        bar.inc(items.len() as u64);
        for item in items {
            importer.add(item, None).await?;
        }
    }
    bar.finish_and_clear();
    importer.finish().await?.print(json)
}

/// `aegis import log`
pub async fn logs(
    store: Arc<dyn Storage>,
    geo: Option<&Geolocator>,
    paths: &[PathBuf],
    tz: Tz,
    host: &str,
    json: bool,
) -> Result<()> {
    let bar = progress(None, "reading logs");
    let mut importer = Importer::new(store, geo);
    for path in paths {
        let reader = open_log(path)?;
        let mut reader = reader;
        let mut raw = Vec::new();
        for n in 1.. {
            raw.clear();
            let read = reader
                .read_until(b'\n', &mut raw)
                .with_context(|| format!("reading {}", path.display()))?;
            if read == 0 {
                break;
            }
            // Logs carry what attackers sent: a line that is not UTF-8 is read
            // as well as it can be, never a reason to stop.
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            bar.inc(1);
            if let Some(item) = parse_log_line(line, tz, host) {
                let place = format!("{}:{n}", path.display());
                importer.add(item, Some(place)).await?;
            }
        }
    }
    bar.finish_and_clear();
    importer.finish().await?.print(json)
}
