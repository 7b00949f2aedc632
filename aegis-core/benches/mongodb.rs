//! MongoDB beside the embedded store, in the same run and on the same
//! generated traffic: record throughput (one event at a time, and a batch
//! per day of traffic), the dashboard statistics, and the documents MongoDB reads for
//! each of them at every range, beside what the pipelines before the
//! summaries read.
//!
//! `AEGIS_BENCH_MONGODB_URI=mongodb://127.0.0.1:27017 cargo bench -p aegis-core --bench mongodb`
//! (size: `AEGIS_BENCH_MONGODB_SIZE`, default 1000000). A database named
//! `aegis_bench_<pid>` is created on that server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::{
    connect, BanEvent, EventFilter, EventKind, StatsQuery, Storage, StorageUrl, TopBy,
};
use aegis_testkit::traffic::year_of_attacks;
use chrono::Utc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// p50 and p95 of `runs` calls.
async fn measure<F, Fut, T>(runs: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut samples: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f().await);
        samples.push(t.elapsed());
    }
    samples.sort();
    let at = |p: f64| samples[((runs - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95))
}

async fn one_at_a_time(store: &dyn Storage, events: &[BanEvent]) -> f64 {
    let t = Instant::now();
    for e in events {
        store.record(e).await.expect("record");
    }
    events.len() as f64 / t.elapsed().as_secs_f64()
}

/// One batch per UTC day of traffic: the test server scans a whole collection
/// for every update, so batches that share no day leave every summary
/// document to be inserted, never updated (real MongoDB updates by `_id`).
async fn bulk(store: &dyn Storage, events: &[BanEvent]) -> f64 {
    let t = Instant::now();
    for day in events.chunk_by(|a, b| a.time.date_naive() == b.time.date_naive()) {
        store.record_batch(day).await.expect("record_batch");
    }
    events.len() as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(uri) = std::env::var("AEGIS_BENCH_MONGODB_URI") else {
        eprintln!("set AEGIS_BENCH_MONGODB_URI to a MongoDB server (node tests/mongodb-server/start.mjs PORT starts the test server)");
        std::process::exit(2);
    };
    let n: usize = std::env::var("AEGIS_BENCH_MONGODB_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let (base, options) = uri.split_once('?').unwrap_or((&uri, ""));
    let url = format!(
        "{}/aegis_bench_{}?{options}",
        base.trim_end_matches('/'),
        std::process::id()
    );
    let mongo = connect(&StorageUrl::parse(&url).expect("URI"))
        .await
        .expect("MongoDB");
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite: Arc<dyn Storage> =
        connect(&StorageUrl::parse(&aegis_testkit::sqlite_url(dir.path())).expect("URL"))
            .await
            .expect("SQLite");
    let stores: [(&str, &dyn Storage); 2] =
        [("MongoDB", mongo.as_ref()), ("SQLite", sqlite.as_ref())];

    let end = Utc::now();
    let singles: Vec<BanEvent> = year_of_attacks(2_000, end, 7).collect();
    let events: Vec<BanEvent> = year_of_attacks(n, end, 42).collect();
    println!(
        "{n} generated events, MongoDB at {}",
        StorageUrl::parse(&url).unwrap()
    );
    println!("{:<36} {:>14} {:>14}", "record", "MongoDB", "SQLite");
    let mut single = Vec::new();
    let mut many = Vec::new();
    for (_, store) in stores {
        single.push(one_at_a_time(store, &singles).await);
        many.push(bulk(store, &events).await);
    }
    println!(
        "{:<36} {:>10.0} ev/s {:>10.0} ev/s",
        "one event per call", single[0], single[1]
    );
    println!(
        "{:<36} {:>10.0} ev/s {:>10.0} ev/s",
        "record_batch, one per day of traffic", many[0], many[1]
    );

    println!(
        "\n{:<36} {:>21} {:>21}",
        "statistic (p50 / p95)", "MongoDB", "SQLite"
    );
    for (label, days) in [("24 h", 1), ("7 days", 7), ("30 days", 30)] {
        let q = StatsQuery::last_days(days);
        for figure in FIGURES {
            let mut cells = Vec::new();
            for (_, store) in stores {
                // A server too slow for the driver's heartbeat fails: say so, go on.
                if let Err(e) = figure.ask(store, &q).await {
                    cells.push(format!("failed: {e}").chars().take(21).collect());
                    continue;
                }
                let (p50, p95) = measure(5, || async { figure.ask(store, &q).await.ok() }).await;
                cells.push(format!("{} / {}", ms(p50), ms(p95)));
            }
            println!(
                "{:<36} {:>21} {:>21}",
                format!("{}, {label}", figure.name()),
                cells[0],
                cells[1]
            );
        }
    }

    documents_read(mongo.as_ref(), end).await;
}

/// What the dashboard asks a store.
#[derive(Clone, Copy)]
enum Figure {
    Summary,
    BanCount,
    BansPerDay,
    TopOffenders,
    Top(TopBy),
}

const FIGURES: [Figure; 9] = [
    Figure::Summary,
    Figure::BanCount,
    Figure::BansPerDay,
    Figure::TopOffenders,
    Figure::Top(TopBy::Country),
    Figure::Top(TopBy::Jail),
    Figure::Top(TopBy::Host),
    Figure::Top(TopBy::Asn),
    Figure::Top(TopBy::Network),
];

impl Figure {
    fn name(self) -> String {
        match self {
            Figure::Summary => "summary".into(),
            Figure::BanCount => "ban count".into(),
            Figure::BansPerDay => "bans per day".into(),
            Figure::TopOffenders => "top offenders (10)".into(),
            Figure::Top(by) => format!("top {by:?} (10)").to_lowercase(),
        }
    }

    async fn ask(self, store: &dyn Storage, q: &StatsQuery) -> aegis_core::Result<()> {
        match self {
            Figure::Summary => store.summary(q).await.map(drop),
            Figure::BanCount => store.ban_count(q).await.map(drop),
            Figure::BansPerDay => store
                .bans_per_day(q, chrono_tz::Europe::Berlin)
                .await
                .map(drop),
            Figure::TopOffenders => store.top_offenders(q, 10).await.map(drop),
            Figure::Top(by) => store.top(q, by, 10).await.map(drop),
        }
    }

    /// How many pipelines over the range's events the statistics ran before
    /// the summaries (summary: a count and four distinct counts; "banned now"
    /// left out, as both read the bans in force).
    fn pipelines_before(self) -> u64 {
        match self {
            Figure::Summary => 5,
            _ => 1,
        }
    }
}

/// Documents read, as the backend logs them (`aegis_core::mongo::reads`).
static READ: AtomicU64 = AtomicU64::new(0);
static METERING: AtomicBool = AtomicBool::new(false);

struct Meter;

impl<S: tracing::Subscriber> Layer<S> for Meter {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        METERING.load(Ordering::Relaxed) && meta.target() == "aegis_core::mongo::reads"
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Documents(u64);
        impl Visit for Documents {
            fn record_u64(&mut self, field: &Field, value: u64) {
                if field.name() == "documents" {
                    self.0 += value;
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        let mut documents = Documents(0);
        event.record(&mut documents);
        READ.fetch_add(documents.0, Ordering::Relaxed);
    }
}

/// For every figure and range the dashboard offers: the documents MongoDB
/// reads for it (as its pipelines' `$match` stages select them), beside the
/// events in the range that the pipelines before the summaries read. Unlike
/// the test server's speed, these counts carry over to real MongoDB.
async fn documents_read(store: &dyn Storage, end: chrono::DateTime<Utc>) {
    tracing_subscriber::registry().with(Meter).init();
    let day = chrono::Duration::days(1);
    let ranges = [
        ("24 h", StatsQuery::range(end - day, end)),
        ("7 d", StatsQuery::range(end - day * 7, end)),
        ("30 d", StatsQuery::range(end - day * 30, end)),
        ("90 d", StatsQuery::range(end - day * 90, end)),
        ("365 d", StatsQuery::range(end - day * 365, end)),
        (
            "7 d a month ago",
            StatsQuery::range(end - day * 37, end - day * 30),
        ),
    ];
    println!("\ndocuments read, with summaries / before them (one run each, test server time)");
    print!("{:<22}", "");
    for (label, _) in &ranges {
        print!(" {label:>24}");
    }
    println!();
    for figure in FIGURES {
        print!("{:<22}", figure.name());
        for (_, q) in &ranges {
            let in_range = store
                .count_events(&EventFilter {
                    kind: Some(EventKind::Ban),
                    since: Some(q.since),
                    until: Some(q.until),
                    ..EventFilter::default()
                })
                .await
                .expect("count");
            READ.store(0, Ordering::Relaxed);
            METERING.store(true, Ordering::Relaxed);
            tracing::callsite::rebuild_interest_cache();
            let t = Instant::now();
            let answered = figure.ask(store, q).await;
            let took = t.elapsed();
            METERING.store(false, Ordering::Relaxed);
            let cell = match answered {
                Ok(()) => format!(
                    "{} / {} {:>5.1}s",
                    READ.load(Ordering::Relaxed),
                    in_range * figure.pipelines_before(),
                    took.as_secs_f64()
                ),
                Err(e) => format!("failed: {e}").chars().take(24).collect(),
            };
            print!(" {cell:>24}");
        }
        println!();
    }
}
