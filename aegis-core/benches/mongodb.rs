//! MongoDB beside the embedded store, in the same run and on the same
//! generated traffic: record throughput (one event at a time, and 10k bulk
//! batches) and the dashboard statistics.
//!
//! `AEGIS_BENCH_MONGODB_URI=mongodb://127.0.0.1:27017 cargo bench -p aegis-core --bench mongodb`
//! (size: `AEGIS_BENCH_MONGODB_SIZE`, default 1000000). A database named
//! `aegis_bench_<pid>` is created on that server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::{connect, BanEvent, StatsQuery, Storage, StorageUrl, TopBy};
use aegis_testkit::traffic::year_of_attacks;
use chrono::Utc;

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

async fn bulk(store: &dyn Storage, events: &[BanEvent]) -> f64 {
    let t = Instant::now();
    for chunk in events.chunks(10_000) {
        store.record_batch(chunk).await.expect("record_batch");
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
        "record_batch, 10k per batch", many[0], many[1]
    );

    println!(
        "\n{:<36} {:>21} {:>21}",
        "statistic (p50 / p95)", "MongoDB", "SQLite"
    );
    for (label, days) in [("24 h", 1), ("7 days", 7), ("30 days", 30)] {
        let q = move || StatsQuery::last_days(days);
        for name in [
            "summary",
            "bans per day",
            "top offenders (10)",
            "top countries (10)",
        ] {
            let mut cells = Vec::new();
            for (_, store) in stores {
                let ask = || async {
                    match name {
                        "summary" => store.summary(&q()).await.map(|_| ()),
                        "bans per day" => store
                            .bans_per_day(&q(), chrono_tz::Europe::Berlin)
                            .await
                            .map(|_| ()),
                        "top offenders (10)" => store.top_offenders(&q(), 10).await.map(|_| ()),
                        _ => store.top(&q(), TopBy::Country, 10).await.map(|_| ()),
                    }
                };
                // A server too slow for the driver's heartbeat fails: say so, go on.
                if let Err(e) = ask().await {
                    cells.push(format!("failed: {e}").chars().take(21).collect());
                    continue;
                }
                let (p50, p95) = measure(5, || async { ask().await.ok() }).await;
                cells.push(format!("{} / {}", ms(p50), ms(p95)));
            }
            println!(
                "{:<36} {:>21} {:>21}",
                format!("{name}, {label}"),
                cells[0],
                cells[1]
            );
        }
    }
}
